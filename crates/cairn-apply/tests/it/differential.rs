//! Differential test against Ignition 2.14's files stage: every config under
//! `tests/data/differential/` is applied by the real Ignition to one seeded root and by
//! `cairn_apply::apply_config` to another, and the two trees must be identical apart from
//! the differences listed (with their reasons) in `docs/protocols/provision-apply.md`.
//!
//! A case is a directory holding `config.ign`, optionally `seed.sh` (run with `$ROOT` set
//! on both roots after the common seed, [`seed_etc`]), optionally `expect-failure` (both
//! must fail, and cairn's root must be left as seeded; Ignition's partial writes are not
//! compared), and optionally `known-differences` (paths that differ on purpose, each
//! with its reason; each must really differ).
//! All cases run in one test so that one run reports every mismatch.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use cairn_apply::{apply_config, ApplyOptions};
use cairn_store::error_chain;

use crate::common::{self, create_dir, seed_etc};

const IGNITION: &str = "/usr/lib/dracut/modules.d/30ignition/ignition";

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The peer script, kept in the repository (a copy of `../shared/peers/`) so that a clean
/// clone runs it.
fn peer_script() -> PathBuf {
    manifest_dir().join("tests/peer/ignition-files-stage.sh")
}

fn cases_dir() -> PathBuf {
    manifest_dir().join("tests/data/differential")
}

/// Whether the peer can run: the Ignition binary is installed and we are root (it chowns
/// and runs `useradd --root`). Without either the test skips, unless `CAIRN_REQUIRE_PEERS`
/// is set.
fn peer_available() -> bool {
    if !cairn_test_support::have_peer(IGNITION) {
        return false;
    }
    common::running_as_root("the Ignition peer")
}

// ---------------------------------------------------------------------------------------
// Seeding

/// Runs the case's `seed.sh`, if any, with `$ROOT` set (umask 022, so that `mkdir -p`
/// parents are the same everywhere).
fn seed_case(case: &Path, root: &Path) -> Result<(), String> {
    let script = case.join("seed.sh");
    if !script.exists() {
        return Ok(());
    }
    let out = Command::new("bash")
        .args([
            "-euo",
            "pipefail",
            "-c",
            r#"umask 022 && source "$SEED_SCRIPT""#,
        ])
        .env("ROOT", root)
        .env("SEED_SCRIPT", &script)
        .output()
        .unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "seed.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// A root directory that other users can traverse (Ignition writes SSH keys as the user).
fn new_root(parent: &Path, name: &str) -> PathBuf {
    let root = parent.join(name);
    create_dir(&root, 0o755);
    root
}

// ---------------------------------------------------------------------------------------
// Running both sides

/// Runs Ignition's fetch and files stages on `root`; on failure, the end of its log.
/// umask 022 as in a real initrd, since Ignition creates missing parents through it.
fn run_peer(config: &Path, root: &Path) -> Result<(), String> {
    let out = Command::new("bash")
        .args(["-c", r#"umask 022 && exec bash "$0" "$@""#])
        .arg(peer_script())
        .arg(config)
        .arg(root)
        .output()
        .unwrap();
    if out.status.success() {
        return Ok(());
    }
    let log = String::from_utf8_lossy(&out.stdout);
    let errors: Vec<&str> = log
        .lines()
        .filter(|l| l.starts_with("CRITICAL") || l.starts_with("ERROR"))
        .collect();
    Err(format!(
        "{}{}",
        errors.join("\n"),
        String::from_utf8_lossy(&out.stderr)
    ))
}

fn run_cairn(config: &[u8], root: &Path) -> Result<(), String> {
    match apply_config(root, config, &ApplyOptions::default()) {
        Ok(_) => Ok(()),
        Err(error) => Err(error_chain(&error)),
    }
}

// ---------------------------------------------------------------------------------------
// Trees

#[derive(Clone, PartialEq, Eq)]
enum Kind {
    Directory,
    File {
        content: Vec<u8>,
        /// The other paths of the tree that are the same inode.
        hard_links: Vec<String>,
    },
    Symlink {
        target: String,
    },
    Other,
}

/// One entry of a tree: what the comparison looks at (no sizes of directories, no times).
#[derive(Clone, PartialEq, Eq)]
struct Node {
    kind: Kind,
    mode: u32,
    uid: u32,
    gid: u32,
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (mode, uid, gid) = (self.mode, self.uid, self.gid);
        match &self.kind {
            Kind::Directory => write!(f, "dir {mode:04o} {uid}:{gid}"),
            Kind::File {
                content,
                hard_links,
            } => {
                write!(f, "file {mode:04o} {uid}:{gid} {} bytes", content.len())?;
                if !hard_links.is_empty() {
                    write!(f, " hard-linked with {}", hard_links.join(", "))?;
                }
                Ok(())
            }
            Kind::Symlink { target } => write!(f, "symlink {uid}:{gid} -> {target}"),
            Kind::Other => write!(f, "special file {mode:04o} {uid}:{gid}"),
        }
    }
}

type Tree = BTreeMap<String, Node>;

/// Every entry below `root` (not following symlinks), by path relative to `root`, less
/// the paths `ignored` drops; hard links are recorded between the entries that remain.
fn snapshot(root: &Path, ignored: fn(&str) -> bool) -> Tree {
    let mut tree = Tree::new();
    let mut inodes: HashMap<(u64, u64), Vec<String>> = HashMap::new();
    let mut pending = vec![root.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let relative = path.strip_prefix(root).unwrap().display().to_string();
            if ignored(&relative) {
                continue;
            }
            let meta = fs::symlink_metadata(&path).unwrap();
            let file_type = meta.file_type();
            let kind = if file_type.is_symlink() {
                Kind::Symlink {
                    target: fs::read_link(&path).unwrap().display().to_string(),
                }
            } else if file_type.is_dir() {
                pending.push(path.clone());
                Kind::Directory
            } else if file_type.is_file() {
                inodes
                    .entry((meta.dev(), meta.ino()))
                    .or_default()
                    .push(relative.clone());
                Kind::File {
                    content: fs::read(&path).unwrap(),
                    hard_links: Vec::new(),
                }
            } else {
                Kind::Other
            };
            let node = Node {
                kind,
                mode: meta.mode() & 0o7777,
                uid: meta.uid(),
                gid: meta.gid(),
            };
            tree.insert(relative, node);
        }
    }
    for paths in inodes.values().filter(|paths| paths.len() > 1) {
        for path in paths {
            if let Some(Node {
                kind: Kind::File { hard_links, .. },
                ..
            }) = tree.get_mut(path)
            {
                *hard_links = paths.iter().filter(|p| *p != path).cloned().collect();
                hard_links.sort();
            }
        }
    }
    tree
}

// ---------------------------------------------------------------------------------------
// Normalisation: each rule is one entry of docs/protocols/provision-apply-differences.md.

/// Left by shadow-utils' `lckpwdf`; cairn writes the account files in its own transaction.
const PASSWD_LOCK: &str = "etc/.pwd.lock";
const RESULT_FILE: &str = "etc/.ignition-result.json";
const PRESET_FILE: &str = "etc/systemd/system-preset/20-ignition.preset";
const SHADOW_FILES: [&str; 2] = ["etc/shadow", "etc/shadow-"];
const CAIRN_MARKER: &str = "etc/.cairn-provision.json";
const CAIRN_WORK_DIR: &str = ".cairn-apply";

fn ignored_on_peer(path: &str) -> bool {
    path == PASSWD_LOCK
}

fn is_cairn_work_path(path: &str) -> bool {
    path.split('/').any(|component| component == CAIRN_WORK_DIR)
}

fn ignored_on_cairn(path: &str) -> bool {
    path == PASSWD_LOCK || path == CAIRN_MARKER || is_cairn_work_path(path)
}

/// Rewrites the contents that legitimately differ run to run into a comparable form.
fn normalise(tree: &mut Tree) {
    for (path, node) in tree.iter_mut() {
        let Kind::File { content, .. } = &mut node.kind else {
            continue;
        };
        let text = String::from_utf8_lossy(content).into_owned();
        let normalised = match path.as_str() {
            RESULT_FILE => normalise_result_file(&text),
            PRESET_FILE => {
                let mut lines: Vec<&str> = text.split_inclusive('\n').collect();
                lines.sort_unstable();
                lines.concat()
            }
            path if SHADOW_FILES.contains(&path) => normalise_shadow(&text),
            _ => continue,
        };
        *content = normalised.into_bytes();
    }
}

/// Only the keys and `userConfigProvided`: the date and boot ID differ on every run.
fn normalise_result_file(text: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(fields)) => {
            let mut keys: Vec<&str> = fields.keys().map(String::as_str).collect();
            keys.sort_unstable();
            let provided = fields
                .get("userConfigProvided")
                .map_or("(absent)".to_owned(), |v| v.to_string());
            format!(
                "(normalised) keys: {}; userConfigProvided: {provided}\n",
                keys.join(", ")
            )
        }
        _ => format!("(not a JSON object) {text}"),
    }
}

/// The last-change day (field 3) as "numeric" or "empty": it is today's date, which can
/// move between the two runs.
fn normalise_shadow(text: &str) -> String {
    text.split_inclusive('\n')
        .map(|line| {
            let (line, newline) = match line.strip_suffix('\n') {
                Some(line) => (line, "\n"),
                None => (line, ""),
            };
            let mut fields: Vec<&str> = line.split(':').collect();
            if let Some(day) = fields.get_mut(2) {
                if !day.is_empty() && day.bytes().all(|b| b.is_ascii_digit()) {
                    *day = "<day>";
                }
            }
            fields.join(":") + newline
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Comparison

/// One line per differing path (`path: peer=… cairn=…`, with the two trees' `labels`),
/// followed by a line diff when the contents of two files differ.
fn differences(left: &Tree, right: &Tree, labels: [&str; 2]) -> Vec<String> {
    let [left_label, right_label] = labels;
    let mut out = Vec::new();
    let paths: BTreeSet<&String> = left.keys().chain(right.keys()).collect();
    for path in paths {
        let (p, c) = (left.get(path), right.get(path));
        if p == c {
            continue;
        }
        let show = |node: Option<&Node>| node.map_or("missing".to_owned(), |n| n.to_string());
        out.push(format!(
            "{path}: {left_label}={} {right_label}={}",
            show(p),
            show(c)
        ));
        if let (
            Some(Node {
                kind: Kind::File { content: a, .. },
                ..
            }),
            Some(Node {
                kind: Kind::File { content: b, .. },
                ..
            }),
        ) = (p, c)
        {
            if a != b {
                out.extend(content_diff(a, b, labels));
            }
        }
    }
    out
}

/// The lines only the left side has (`peer> …`) and those only the right side has
/// (`cairn> …`), or where binary contents first differ.
fn content_diff(left: &[u8], right: &[u8], labels: [&str; 2]) -> Vec<String> {
    let [left_label, right_label] = labels;
    let (Ok(left), Ok(right)) = (std::str::from_utf8(left), std::str::from_utf8(right)) else {
        let first = left.iter().zip(right).take_while(|(a, b)| a == b).count();
        return vec![format!("    binary contents differ from byte {first}")];
    };
    let mut unmatched: Vec<&str> = right.split_inclusive('\n').collect();
    let mut out = Vec::new();
    for line in left.split_inclusive('\n') {
        match unmatched.iter().position(|l| *l == line) {
            Some(i) => {
                unmatched.remove(i);
            }
            None => out.push(format!("    {left_label}> {line:?}")),
        }
    }
    out.extend(
        unmatched
            .iter()
            .map(|line| format!("    {right_label}> {line:?}")),
    );
    if out.is_empty() {
        out.push("    same lines, in another order".to_owned());
    }
    out
}

// ---------------------------------------------------------------------------------------
// Cases

/// Runs one case; `Err` holds the report of everything that went wrong.
fn run_case(case: &Path) -> Result<(), String> {
    let config_path = case.join("config.ign");
    let config = fs::read(&config_path).unwrap();
    let expect_failure = case.join("expect-failure").exists();

    let scratch = tempfile::tempdir().unwrap();
    fs::set_permissions(scratch.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let peer_root = new_root(scratch.path(), "peer");
    let cairn_root = new_root(scratch.path(), "cairn");
    for root in [&peer_root, &cairn_root] {
        seed_etc(root);
        seed_case(case, root)?;
    }
    let seeded = snapshot(&cairn_root, is_cairn_work_path);

    let peer_result = run_peer(&config_path, &peer_root);
    let cairn_result = run_cairn(&config, &cairn_root);

    if expect_failure {
        let mut problems = Vec::new();
        if peer_result.is_ok() {
            problems.push("the peer succeeded but the case expects a failure".to_owned());
        }
        if cairn_result.is_ok() {
            problems.push("cairn succeeded but the case expects a failure".to_owned());
        }
        let after = snapshot(&cairn_root, is_cairn_work_path);
        let changed = differences(&seeded, &after, ["seeded", "after"]);
        if !changed.is_empty() {
            problems.push("cairn failed but changed its root:".to_owned());
            problems.extend(changed);
        }
        return if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("\n"))
        };
    }

    match (peer_result, cairn_result) {
        (Ok(()), Ok(())) => {}
        (Err(peer), Ok(())) => return Err(format!("the peer failed:\n{peer}")),
        (Ok(()), Err(cairn)) => return Err(format!("cairn failed: {cairn}")),
        (Err(peer), Err(cairn)) => {
            return Err(format!(
                "both failed (the case expects success):\npeer: {peer}\ncairn: {cairn}"
            ))
        }
    }
    let mut peer_tree = snapshot(&peer_root, ignored_on_peer);
    let mut cairn_tree = snapshot(&cairn_root, ignored_on_cairn);
    normalise(&mut peer_tree);
    normalise(&mut cairn_tree);
    // Differences the docs list for this case (`known-differences`: a path, then why).
    // Each must still differ, so a stale entry cannot hide anything.
    if let Ok(known) = fs::read_to_string(case.join("known-differences")) {
        for line in known.lines().filter(|l| !l.trim().is_empty()) {
            let path = line.split_whitespace().next().unwrap_or_default();
            if peer_tree.get(path) == cairn_tree.get(path) {
                return Err(format!(
                    "{path} is listed in known-differences but does not differ"
                ));
            }
            peer_tree.remove(path);
            cairn_tree.remove(path);
        }
    }
    let differing = differences(&peer_tree, &cairn_tree, ["peer", "cairn"]);
    if differing.is_empty() {
        Ok(())
    } else {
        Err(differing.join("\n"))
    }
}

fn cases() -> Vec<PathBuf> {
    let mut cases: Vec<PathBuf> = fs::read_dir(cases_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("config.ign").is_file())
        .collect();
    cases.sort();
    cases
}

#[test]
fn corpus_is_large_enough() {
    assert!(
        cases().len() >= 32,
        "the corpus has {} cases",
        cases().len()
    );
}

#[test]
fn trees_match_ignition_files_stage() {
    if !peer_available() {
        return;
    }
    let mut failures = Vec::new();
    let cases = cases();
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        match run_case(case) {
            Ok(()) => eprintln!("{name}: same"),
            Err(report) => {
                eprintln!("{name}: DIFFERENT");
                failures.push(format!("== {name}\n{report}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ from Ignition:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn normalisation_keeps_what_matters() {
    let shadow = "root:*:19000:0:99999:7:::\nsvc:*:::::::\n";
    assert_eq!(
        normalise_shadow(shadow),
        "root:*:<day>:0:99999:7:::\nsvc:*:::::::\n"
    );
    let result = "{\n  \"provisioningBootID\": \"x\",\n  \"provisioningDate\": \"2024-01-01T00:00:00Z\",\n  \"userConfigProvided\": true\n}\n";
    assert_eq!(
        normalise_result_file(result),
        "(normalised) keys: provisioningBootID, provisioningDate, userConfigProvided; userConfigProvided: true\n"
    );
    assert_eq!(
        normalise_result_file("{\"userConfigProvided\":false}"),
        "(normalised) keys: userConfigProvided; userConfigProvided: false\n"
    );
    assert!(normalise_result_file("[1]").starts_with("(not a JSON object)"));
    assert!(ignored_on_cairn(".cairn-apply/journal"));
    assert!(ignored_on_cairn("etc/.cairn-provision.json"));
    assert!(!ignored_on_peer("etc/.cairn-provision.json"));
}
