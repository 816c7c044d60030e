//! `apply_config` end to end on a seeded root: all or nothing whatever fails (a refused
//! config, a full disk, a kill at every fault point), exactly once, and never a write
//! outside the root.
//!
//! A kill must stop the process for real, so those runs happen in a child: this test
//! binary run again on the ignored test [`child_apply`], with the root, the config and
//! `CAIRN_FAULT` in its environment (the fault setting is read once per process).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use cairn_apply::fetch::FetchOptions;
use cairn_apply::plan::{self, Context};
use cairn_apply::resolve::{self, ResolveOptions};
use cairn_apply::txn::{self, TxnError};
use cairn_apply::view::View;
use cairn_apply::{apply_config, ApplyError, ApplyOptions, Outcome};
use serde_json::{json, Value};

use crate::common::{self, create_dir, seed_etc, sha512, write_file, Site};

/// Applying sets owners, so these tests need root.
fn running_as_root() -> bool {
    common::running_as_root("applying a config")
}

// ---------------------------------------------------------------------------------------
// The seeded root

/// Sets `user.cairn=test`; false where the filesystem has no user xattrs.
fn tag(path: &Path) -> bool {
    match rustix::fs::lsetxattr(path, "user.cairn", b"test", rustix::fs::XattrFlags::empty()) {
        Ok(()) => true,
        Err(e) => {
            eprintln!("no user xattrs on {}: {e}", path.display());
            false
        }
    }
}

/// A small root: the peer's seeded `/etc` (account files, skeleton), a file to append to
/// (with an xattr), a file to overwrite, a directory with content, a symlink, two hard links, a tagged file.
fn seed(parent: &Path, name: &str) -> PathBuf {
    let root = parent.join(name);
    create_dir(&root, 0o755);
    seed_etc(&root);
    for dir in ["usr", "usr/share", "usr/share/zoneinfo", "var", "var/lib"] {
        create_dir(&root.join(dir), 0o755);
    }
    let etc = root.join("etc");
    write_file(&etc.join("skel/.bashrc"), b"# .bashrc\n", 0o644);
    write_file(&etc.join("motd"), b"old motd\n", 0o644);
    write_file(&etc.join("hosts"), b"127.0.0.1 localhost\n", 0o644);
    tag(&etc.join("hosts"));
    write_file(&etc.join("tagged"), b"tagged\n", 0o644);
    tag(&etc.join("tagged"));
    create_dir(&etc.join("existing-dir"), 0o750);
    std::os::unix::fs::chown(etc.join("existing-dir"), Some(0), Some(10)).unwrap();
    write_file(&etc.join("existing-dir/keep"), b"kept\n", 0o600);
    write_file(&root.join("usr/share/zoneinfo/UTC"), b"TZif\n", 0o644);
    std::os::unix::fs::symlink("../usr/share/zoneinfo/UTC", etc.join("localtime")).unwrap();
    write_file(&etc.join("hard-a"), b"one inode\n", 0o644);
    fs::hard_link(etc.join("hard-a"), etc.join("hard-b")).unwrap();
    root
}

// ---------------------------------------------------------------------------------------
// Snapshots

#[derive(Clone, PartialEq, Eq)]
enum Kind {
    Dir,
    File(Vec<u8>),
    Symlink(PathBuf),
    Other,
}

/// One path of a tree: everything but times (and inode numbers).
#[derive(Clone, PartialEq, Eq)]
struct Entry {
    kind: Kind,
    mode: u32,
    uid: u32,
    gid: u32,
    /// Links to a regular file (0 for the rest).
    nlink: u64,
    xattrs: BTreeMap<String, Vec<u8>>,
}

impl fmt::Debug for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kind::Dir => write!(f, "dir"),
            Kind::File(content) => write!(f, "file {:?}", String::from_utf8_lossy(content)),
            Kind::Symlink(target) => write!(f, "symlink -> {}", target.display()),
            Kind::Other => write!(f, "other"),
        }
    }
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} {:o} {}:{} nlink {}",
            self.kind, self.mode, self.uid, self.gid, self.nlink
        )?;
        for (name, value) in &self.xattrs {
            write!(f, " {name}={:?}", String::from_utf8_lossy(value))?;
        }
        Ok(())
    }
}

type Tree = BTreeMap<String, Entry>;

fn xattrs(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut names = vec![0u8; 64 << 10];
    let Ok(len) = rustix::fs::llistxattr(path, &mut names[..]) else {
        return out;
    };
    for name in names[..len].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let name = String::from_utf8_lossy(name).into_owned();
        let mut value = vec![0u8; 64 << 10];
        let len = rustix::fs::lgetxattr(path, name.as_str(), &mut value[..]).unwrap();
        value.truncate(len);
        out.insert(name, value);
    }
    out
}

/// Every path below `root` and `root` itself (`.`), symlinks not followed.
fn snapshot(root: &Path) -> Tree {
    fn entry(path: &Path) -> Entry {
        let m = fs::symlink_metadata(path).unwrap();
        let kind = if m.file_type().is_symlink() {
            Kind::Symlink(fs::read_link(path).unwrap())
        } else if m.is_dir() {
            Kind::Dir
        } else if m.is_file() {
            Kind::File(fs::read(path).unwrap())
        } else {
            Kind::Other
        };
        Entry {
            nlink: if m.is_file() { m.nlink() } else { 0 },
            kind,
            mode: m.mode() & 0o7777,
            uid: m.uid(),
            gid: m.gid(),
            xattrs: xattrs(path),
        }
    }
    fn walk(root: &Path, dir: &Path, out: &mut Tree) {
        for e in fs::read_dir(dir).unwrap() {
            let path = e.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            let entry = entry(&path);
            if entry.kind == Kind::Dir {
                walk(root, &path, out);
            }
            out.insert(rel, entry);
        }
    }
    let mut out = Tree::new();
    out.insert(".".into(), entry(root));
    walk(root, root, &mut out);
    out
}

/// The tree with the time and boot of the run blanked in the result file and the marker:
/// the only things two runs of one config may differ in.
fn normalised(mut tree: Tree) -> Tree {
    fn blank(value: &mut Value) {
        if let Value::Object(map) = value {
            for (key, value) in map.iter_mut() {
                if key == "provisioningDate" || key == "provisioningBootID" {
                    *value = Value::String(String::new());
                } else {
                    blank(value);
                }
            }
        }
    }
    for path in ["etc/.ignition-result.json", "etc/.cairn-provision.json"] {
        if let Some(Entry {
            kind: Kind::File(content),
            ..
        }) = tree.get_mut(path)
        {
            if let Ok(mut value) = serde_json::from_slice::<Value>(content) {
                blank(&mut value);
                *content = serde_json::to_vec_pretty(&value).unwrap();
            }
        }
    }
    tree
}

/// The tree without cairn's work directory.
fn without_work_dir(mut tree: Tree) -> Tree {
    tree.retain(|path, _| path != ".cairn-apply" && !path.starts_with(".cairn-apply/"));
    tree
}

/// Each path where the trees differ, one line each.
fn differences(left: &Tree, right: &Tree) -> Vec<String> {
    let paths: BTreeSet<&String> = left.keys().chain(right.keys()).collect();
    paths
        .into_iter()
        .filter(|p| left.get(*p) != right.get(*p))
        .map(|p| format!("{p}: {:?} != {:?}", left.get(p), right.get(p)))
        .collect()
}

#[track_caller]
fn assert_same(actual: &Tree, expected: &Tree, what: &str) {
    let diff = differences(actual, expected);
    assert!(
        diff.is_empty(),
        "{what}: the tree differs (actual != expected):\n  {}",
        diff.join("\n  ")
    );
}

fn content(root: &Path, path: &str) -> String {
    String::from_utf8(fs::read(root.join(path)).unwrap()).unwrap()
}

// ---------------------------------------------------------------------------------------
// Configs

fn options() -> ApplyOptions {
    ApplyOptions {
        fetch: FetchOptions {
            retries: 0,
            backoff: Duration::from_millis(10),
            response_headers_timeout: Some(Duration::from_secs(5)),
            ..FetchOptions::default()
        },
        ..ApplyOptions::default()
    }
}

const SSH_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGNhaXJuIHRlc3Qga2V5IG5vdCBhIHJlYWwgb25l core@cairn";

const UNIT: &str = "[Unit]\nDescription=hello\n[Service]\nExecStart=/bin/true\n\
                    [Install]\nWantedBy=multi-user.target\n";

/// A realistic first-boot config: a group, a user with SSH keys, a directory, new files
/// (one owned by the new user), an overwrite, an append, a symlink, a hard link, an
/// enabled unit with a drop-in, and a masked one.
fn good_config() -> Value {
    json!({
        "ignition": {"version": "3.4.0"},
        "passwd": {
            "groups": [{"name": "devs"}],
            "users": [{"name": "core", "groups": ["wheel", "devs"],
                "sshAuthorizedKeys": [SSH_KEY]}]
        },
        "storage": {
            "directories": [{"path": "/etc/app", "mode": 0o750, "group": {"name": "devs"}}],
            "files": [
                {"path": "/etc/app/app.conf", "mode": 0o600, "user": {"name": "core"},
                    "contents": {"source": "data:,key%3Dvalue%0A"}},
                {"path": "/etc/motd", "overwrite": true,
                    "contents": {"source": "data:,new%20motd%0A"}},
                {"path": "/etc/hosts", "append": [{"source": "data:,10.0.0.1%20cairn%0A"}]},
                {"path": "/var/lib/app/state", "contents": {"source": "data:;base64,AAEC"}}
            ],
            "links": [
                {"path": "/etc/motd-link", "target": "/etc/motd"},
                {"path": "/etc/app/hard", "target": "/etc/app/app.conf", "hard": true}
            ]
        },
        "systemd": {"units": [
            {"name": "cairn-hello.service", "enabled": true, "contents": UNIT,
                "dropins": [{"name": "10-env.conf", "contents": "[Service]\nEnvironment=A=1\n"}]},
            {"name": "cairn-masked.service", "mask": true}
        ]}
    })
}

/// `config` with `item` appended to the array at `pointer` (made if missing).
fn with(mut config: Value, pointer: &str, item: Value) -> Value {
    let mut at = &mut config;
    for key in pointer.split('/').filter(|k| !k.is_empty()) {
        at = at
            .as_object_mut()
            .unwrap()
            .entry(key)
            .or_insert_with(|| json!({}));
    }
    if !at.is_array() {
        *at = json!([]);
    }
    at.as_array_mut().unwrap().push(item);
    config
}

fn bytes(config: &Value) -> Vec<u8> {
    config.to_string().into_bytes()
}

/// The good config applied to a fresh root, normalised: what every recovery ends in.
fn reference(parent: &Path) -> Tree {
    let root = seed(parent, "reference");
    let outcome = apply_config(&root, &bytes(&good_config()), &options()).unwrap();
    assert!(matches!(outcome, Outcome::Applied { .. }), "{outcome:?}");
    normalised(snapshot(&root))
}

#[track_caller]
fn apply_good(root: &Path, reference: &Tree, what: &str) {
    match apply_config(root, &bytes(&good_config()), &options()) {
        Ok(Outcome::Applied { .. }) => {}
        other => panic!("{what}: the good config: {other:?}"),
    }
    assert_same(&normalised(snapshot(root)), reference, what);
}

// ---------------------------------------------------------------------------------------
// Acceptance 2: all or nothing

struct Case {
    name: &'static str,
    config: Value,
    options: ApplyOptions,
    /// Part of the error message.
    error: String,
}

#[test]
fn every_failure_leaves_the_root_as_it_was() {
    if !running_as_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let reference = reference(dir.path());
    let site = Site::new();
    let merged = site.put(
        "merged.ign",
        json!({"ignition": {"version": "3.4.0"}}).to_string(),
    );
    let file = |path: &str, extra: Value| {
        let mut f = json!({"path": path});
        f.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        with(good_config(), "/storage/files", f)
    };
    let long_name = format!("/var/zzz/{}", "n".repeat(300));
    let cases = vec![
        Case {
            name: "wrong verification hash",
            config: file(
                "/etc/verified",
                json!({"contents": {"source": "data:,hello",
                    "verification": {"hash": format!("sha512-{}", "0".repeat(128))}}}),
            ),
            options: options(),
            error: "hash mismatch".into(),
        },
        Case {
            name: "unreachable URL",
            config: file(
                "/etc/remote",
                json!({"contents": {"source": "http://127.0.0.1:9/x"}}),
            ),
            options: options(),
            error: "storage.files[4].contents: fetch http://127.0.0.1:9/x".into(),
        },
        Case {
            name: "unknown user as owner",
            config: file(
                "/etc/owned",
                json!({"contents": {"source": "data:,x"}, "user": {"name": "nosuchuser"}}),
            ),
            options: options(),
            error: "/etc/owned: no such user \"nosuchuser\" in the root".into(),
        },
        Case {
            name: "file over an existing directory",
            config: file(
                "/etc/existing-dir",
                json!({"contents": {"source": "data:,x"}}),
            ),
            options: options(),
            error: "/etc/existing-dir: a non regular file exists there already".into(),
        },
        Case {
            name: "hard link to a missing target",
            config: with(
                good_config(),
                "/storage/links",
                json!({"path": "/etc/dangling", "target": "/etc/missing", "hard": true}),
            ),
            options: options(),
            error: "hard link target /etc/missing does not exist".into(),
        },
        Case {
            name: "overwrite false over an existing file",
            config: file(
                "/etc/tagged",
                json!({"overwrite": false, "contents": {"source": "data:,new"}}),
            ),
            options: options(),
            error: "/etc/tagged: a file exists there already and overwrite is false".into(),
        },
        Case {
            name: "storage devices without skip_storage",
            config: with(
                good_config(),
                "/storage/disks",
                json!({"device": "/dev/vda", "wipeTable": true}),
            ),
            options: options(),
            error: "config sets up storage devices".into(),
        },
        Case {
            name: "group that already exists",
            config: with(good_config(), "/passwd/groups", json!({"name": "wheel"})),
            options: options(),
            error: "group 'wheel' already exists".into(),
        },
        Case {
            name: "a parent that is a regular file",
            config: file("/etc/passwd/x", json!({"contents": {"source": "data:,x"}})),
            options: options(),
            error: "/etc/passwd: exists and is not a directory".into(),
        },
        Case {
            name: "unverified remote merge with require_verification",
            config: with(
                good_config(),
                "/ignition/config/merge",
                json!({"source": merged}),
            ),
            options: ApplyOptions {
                require_verification: true,
                ..options()
            },
            error: format!(
                "ignition.config.merge[0].verification.hash is required \
                 (--require-verification) for {merged}"
            ),
        },
        Case {
            // Planned like any file; the rename into place fails part-way through the
            // switch, after the earlier steps happened.
            name: "a name longer than NAME_MAX",
            config: file(&long_name, json!({"contents": {"source": "data:,x"}})),
            options: options(),
            error: "File name too long".into(),
        },
    ];
    let mut failures = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        eprintln!("case: {}", case.name);
        let root = seed(dir.path(), &format!("case-{i}"));
        let before = snapshot(&root);
        match apply_config(&root, &bytes(&case.config), &case.options) {
            Err(e) if e.to_string().contains(&case.error) => eprintln!("  refused: {e}"),
            Err(e) => failures.push(format!(
                "{}: error {:?} does not contain {:?}",
                case.name,
                e.to_string(),
                case.error
            )),
            Ok(outcome) => failures.push(format!("{}: applied: {outcome:?}", case.name)),
        }
        let diff = differences(&snapshot(&root), &before);
        if !diff.is_empty() {
            failures.push(format!(
                "{}: the root changed:\n  {}",
                case.name,
                diff.join("\n  ")
            ));
            continue;
        }
        apply_good(&root, &reference, case.name);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------------------
// Acceptance 2: a full disk and a kill at every fault point, in a child process

const CHILD_ROOT: &str = "CAIRN_APPLY_CHILD_ROOT";
const CHILD_CONFIG: &str = "CAIRN_APPLY_CHILD_CONFIG";

/// Run by [`run_child`] in a child process; does nothing when run otherwise.
#[test]
#[ignore = "run by the fault tests in a child process"]
fn child_apply() {
    let (Some(root), Some(config)) = (std::env::var_os(CHILD_ROOT), std::env::var_os(CHILD_CONFIG))
    else {
        return;
    };
    let config = fs::read(config).unwrap();
    match apply_config(Path::new(&root), &config, &options()) {
        Ok(Outcome::Applied { .. }) => println!("child-outcome: applied"),
        Ok(Outcome::AlreadyProvisioned { .. }) => println!("child-outcome: already"),
        Err(e) => println!("child-outcome: error: {e}"),
    }
}

#[derive(Debug, PartialEq, Eq)]
enum ChildEnd {
    Applied,
    Failed(String),
    Killed,
}

/// Applies the config at `config` to `root` in a child process with `CAIRN_FAULT=fault`.
fn run_child(root: &Path, config: &Path, fault: &str) -> ChildEnd {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "apply::child_apply",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ROOT, root)
        .env(CHILD_CONFIG, config)
        .env("CAIRN_FAULT", fault)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // SIGABRT: `std::process::abort`, as the fault point stops the process.
    if out.status.signal() == Some(6) {
        assert!(
            stderr.contains("fault injected at apply"),
            "{fault}: aborted for another reason:\n{stderr}"
        );
        return ChildEnd::Killed;
    }
    assert!(
        out.status.success(),
        "{fault}: child failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    let line = stdout
        .lines()
        .find_map(|l| l.split_once("child-outcome: ").map(|(_, outcome)| outcome))
        .unwrap_or_else(|| panic!("{fault}: the child did not run:\n{stdout}\n{stderr}"));
    match line {
        "applied" => ChildEnd::Applied,
        other => ChildEnd::Failed(other.to_string()),
    }
}

#[test]
fn a_full_disk_at_any_fault_point_changes_nothing() {
    if !running_as_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let reference = reference(dir.path());
    let config = dir.path().join("config.ign");
    fs::write(&config, bytes(&good_config())).unwrap();
    let mut points = 0;
    for n in 1.. {
        assert!(n < 500, "the run never completed");
        let root = seed(dir.path(), &format!("enospc-{n}"));
        let before = snapshot(&root);
        match run_child(&root, &config, &format!("apply:{n}:enospc")) {
            ChildEnd::Applied => {
                assert_same(
                    &normalised(snapshot(&root)),
                    &reference,
                    "after the last point",
                );
                break;
            }
            ChildEnd::Failed(error) => {
                eprintln!("ENOSPC at point {n}: {error}");
                assert!(
                    error.contains("No space left on device"),
                    "point {n}: {error}"
                );
                assert_same(&snapshot(&root), &before, &format!("ENOSPC at point {n}"));
                apply_good(&root, &reference, &format!("after ENOSPC at point {n}"));
            }
            ChildEnd::Killed => panic!("point {n}: killed, not failed"),
        }
        points += 1;
    }
    // One point per staged change and one before the commit.
    assert!(points >= 10, "only {points} fault points");
}

#[test]
fn a_kill_at_any_fault_point_is_undone() {
    if !running_as_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let reference = reference(dir.path());
    let config = dir.path().join("config.ign");
    fs::write(&config, bytes(&good_config())).unwrap();
    let mut kills = 0;
    let mut mid_switch = 0;
    for n in 1.. {
        assert!(n < 500, "the run never completed");
        let fault = format!("apply:{n}");
        // Recovered by `txn::recover`, and by the next `apply_config`.
        let recovered = seed(dir.path(), &format!("kill-{n}-recover"));
        let reapplied = seed(dir.path(), &format!("kill-{n}-apply"));
        let before = snapshot(&recovered);
        let end = run_child(&recovered, &config, &fault);
        if end == ChildEnd::Applied {
            assert_same(
                &normalised(snapshot(&recovered)),
                &reference,
                "after the last point",
            );
            break;
        }
        assert_eq!(end, ChildEnd::Killed, "{fault}");
        assert_eq!(run_child(&reapplied, &config, &fault), ChildEnd::Killed);
        kills += 1;

        let left = without_work_dir(snapshot(&recovered));
        let state = if left == before {
            "before the switch"
        } else if normalised(left) == reference {
            mid_switch += 1;
            "switched, not committed"
        } else {
            mid_switch += 1;
            "part-way"
        };
        eprintln!("killed at point {n}: {state}");

        // A kill while staging leaves only the work directory, without a journal.
        let journal = recovered.join(".cairn-apply/journal").exists();
        assert_eq!(txn::recover(&recovered).unwrap(), journal, "{fault}");
        assert_same(
            &snapshot(&recovered),
            &before,
            &format!("recovered after {fault}"),
        );
        apply_good(
            &recovered,
            &reference,
            &format!("applied after {fault}, recovered"),
        );

        apply_good(&reapplied, &reference, &format!("applied over {fault}"));
    }
    assert!(kills >= 10, "only {kills} fault points");
    assert!(mid_switch >= 1, "no kill happened after the switch began");
}

/// The same plan cut before every journal step with `txn::apply_crashing_at`.
#[test]
fn a_crash_before_any_journal_step_of_a_real_plan_is_undone() {
    if !running_as_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let resolved = resolve::resolve(&bytes(&good_config()), &ResolveOptions::default()).unwrap();
    let ctx = Context {
        days_since_epoch: 20000,
        date: "2024-10-04T00:00:00Z".into(),
        boot_id: "boot".into(),
    };
    let changes = |root: &Path| {
        let mut view = View::new(root);
        plan::plan(&mut view, &resolved.config, &ctx).unwrap();
        view.changes()
    };
    let finished = seed(dir.path(), "finished");
    txn::apply(&finished, &changes(&finished)).unwrap();
    let after = snapshot(&finished);
    for n in 0.. {
        assert!(n < 1000, "the run never completed");
        let root = seed(dir.path(), &format!("crash-{n}"));
        let before = snapshot(&root);
        let planned = changes(&root);
        match txn::apply_crashing_at(&root, &planned, n) {
            Ok(()) => {
                assert_same(&snapshot(&root), &after, "uncut");
                assert!(n >= 10, "only {n} journal steps");
                break;
            }
            Err(TxnError::Crashed(_)) => {}
            Err(e) => panic!("step {n}: {e}"),
        }
        assert!(txn::recover(&root).unwrap());
        assert_same(&snapshot(&root), &before, &format!("crash before step {n}"));
        txn::apply(&root, &planned).unwrap();
        assert_same(&snapshot(&root), &after, &format!("rerun after step {n}"));
    }
}

// ---------------------------------------------------------------------------------------
// Acceptance 3: exactly once

#[test]
fn a_second_run_does_nothing_and_force_gives_one_run() {
    if !running_as_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = seed(dir.path(), "root");
    let config = bytes(&good_config());
    assert!(matches!(
        apply_config(&root, &config, &options()).unwrap(),
        Outcome::Applied { .. }
    ));
    let once = snapshot(&root);
    assert_eq!(
        content(&root, "etc/hosts"),
        "127.0.0.1 localhost\n10.0.0.1 cairn\n"
    );
    assert_eq!(content(&root, "etc/motd"), "new motd\n");
    assert_eq!(
        content(&root, "home/core/.ssh/authorized_keys.d/ignition"),
        format!("{SSH_KEY}\n")
    );
    assert_eq!(
        content(&root, "etc/systemd/system-preset/20-ignition.preset"),
        "enable cairn-hello.service\n"
    );
    assert!(content(&root, "etc/group").contains("\ndevs:x:"));
    let marker = fs::symlink_metadata(root.join("etc/.cairn-provision.json")).unwrap();
    assert_eq!(marker.mode() & 0o7777, 0o600);

    // Again, even with another config: nothing at all changes.
    for config in [
        config.clone(),
        bytes(&with(
            good_config(),
            "/passwd/groups",
            json!({"name": "more"}),
        )),
    ] {
        match apply_config(&root, &config, &options()).unwrap() {
            Outcome::AlreadyProvisioned { date } => assert!(!date.is_empty()),
            other => panic!("{other:?}"),
        }
        assert_same(&snapshot(&root), &once, "a second run");
    }

    // Forced, twice: the tree of one run (no doubled append, user or preset line).
    let forced = ApplyOptions {
        force: true,
        ..options()
    };
    for run in ["first", "second"] {
        assert!(matches!(
            apply_config(&root, &config, &forced).unwrap(),
            Outcome::Applied { .. }
        ));
        assert_same(
            &normalised(snapshot(&root)),
            &normalised(once.clone()),
            &format!("the {run} forced run"),
        );
    }
    let fresh = seed(dir.path(), "fresh");
    apply_config(&fresh, &config, &options()).unwrap();
    assert_same(
        &normalised(snapshot(&fresh)),
        &normalised(snapshot(&root)),
        "a forced run against one run on a fresh root",
    );
}

#[test]
fn a_garbage_marker_is_a_clear_error_and_changes_nothing() {
    if !running_as_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = seed(dir.path(), "root");
    write_file(
        &root.join("etc/.cairn-provision.json"),
        b"this is not json\n",
        0o600,
    );
    let before = snapshot(&root);
    for force in [false, true] {
        let options = ApplyOptions { force, ..options() };
        let err = apply_config(&root, &bytes(&good_config()), &options).unwrap_err();
        assert!(matches!(err, ApplyError::Marker(_)), "{err:?}");
        let text = err.to_string();
        assert!(
            text.starts_with("/etc/.cairn-provision.json: unreadable (")
                && text.ends_with("remove it to provision this root again"),
            "{text}"
        );
        assert_same(&snapshot(&root), &before, &format!("force {force}"));
    }
}

// ---------------------------------------------------------------------------------------
// Acceptance 4: safety

#[test]
fn symlinks_out_of_the_root_lead_back_into_it() {
    if !running_as_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = seed(dir.path(), "root");
    let outside = dir.path().join("outside");
    create_dir(&outside, 0o755);
    // A name nothing on the host has, for `..` escapes that would reach the host's `/`.
    let unique = format!(
        "cairn-escape-test-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let host_dir = format!("{unique}-dir");
    for name in [&unique, &host_dir] {
        assert!(!Path::new("/").join(name).exists());
    }
    std::os::unix::fs::symlink(&outside, root.join("etc/evil")).unwrap();
    std::os::unix::fs::symlink("../../..", root.join("up")).unwrap();
    std::os::unix::fs::symlink("../../outside", root.join("etc/rel")).unwrap();
    std::os::unix::fs::symlink(format!("/{host_dir}"), root.join("etc/host")).unwrap();
    let file = |path: String| json!({"path": path, "contents": {"source": "data:,x"}});
    let config = json!({
        "ignition": {"version": "3.4.0"},
        "storage": {
            "files": [
                file("/etc/evil/x".into()),
                file(format!("/up/{unique}")),
                file("/etc/rel/x".into()),
                file("/etc/host/x".into()),
            ],
            "directories": [{"path": "/etc/evil/d"}, {"path": "/etc/rel/d"}],
            "links": [{"path": "/etc/evil/l", "target": "/etc/passwd"}]
        }
    });
    apply_config(&root, &bytes(&config), &options()).unwrap();

    assert_eq!(
        fs::read_dir(&outside).unwrap().count(),
        0,
        "written outside the root"
    );
    for name in [&unique, &host_dir] {
        assert!(
            !Path::new("/").join(name).exists(),
            "written to the host's /"
        );
    }
    assert!(!dir.path().join("x").exists());
    // Each symlink read as Ignition reads it: `/` is the root, `..` stops there.
    let inside = root.join(outside.strip_prefix("/").unwrap());
    assert_eq!(fs::read_to_string(inside.join("x")).unwrap(), "x");
    assert!(inside.join("d").is_dir());
    assert_eq!(
        fs::read_link(inside.join("l")).unwrap(),
        Path::new("/etc/passwd")
    );
    assert_eq!(content(&root, &unique), "x");
    assert_eq!(content(&root, "outside/x"), "x");
    assert!(root.join("outside/d").is_dir());
    assert_eq!(content(&root, &format!("{host_dir}/x")), "x");
    // The symlinks themselves are still there.
    assert_eq!(fs::read_link(root.join("etc/evil")).unwrap(), outside);

    // A hard link cannot reach a file outside either: its target is looked up inside.
    let root = seed(dir.path(), "hard-links");
    let secrets = dir.path().join("secrets");
    create_dir(&secrets, 0o700);
    write_file(&secrets.join("secret"), b"secret\n", 0o600);
    std::os::unix::fs::symlink(&secrets, root.join("etc/secrets")).unwrap();
    std::os::unix::fs::symlink("../../secrets", root.join("etc/rel-secrets")).unwrap();
    for target in ["/etc/secrets/secret", "/etc/rel-secrets/secret"] {
        let before = snapshot(&root);
        let config = json!({"ignition": {"version": "3.4.0"}, "storage": {"links": [
            {"path": "/etc/stolen", "target": target, "hard": true}]}});
        let err = apply_config(&root, &bytes(&config), &options())
            .unwrap_err()
            .to_string();
        assert!(err.ends_with("does not exist"), "{target}: {err}");
        assert_same(&snapshot(&root), &before, target);
        assert_eq!(fs::metadata(secrets.join("secret")).unwrap().nlink(), 1);
    }
}

#[test]
fn an_unverified_remote_merge_is_refused_when_verification_is_required() {
    if !running_as_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = seed(dir.path(), "root");
    let site = Site::new();
    let merged_config = json!({"ignition": {"version": "3.4.0"},
        "storage": {"files": [{"path": "/etc/merged", "contents": {"source": "data:,merged"}}]}})
    .to_string();
    let merged = site.put("merged.ign", &merged_config);
    let strict = ApplyOptions {
        require_verification: true,
        ..options()
    };
    let before = snapshot(&root);

    let unverified = json!({"ignition": {"version": "3.4.0",
        "config": {"merge": [{"source": merged}]}}});
    let err = apply_config(&root, &bytes(&unverified), &strict).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "ignition.config.merge[0].verification.hash is required \
             (--require-verification) for {merged}"
        )
    );
    assert_same(&snapshot(&root), &before, "refused");

    let verified = json!({"ignition": {"version": "3.4.0",
        "config": {"merge": [{"source": merged,
            "verification": {"hash": sha512(&merged_config)}}]}}});
    assert!(matches!(
        apply_config(&root, &bytes(&verified), &strict).unwrap(),
        Outcome::Applied { .. }
    ));
    assert_eq!(content(&root, "etc/merged"), "merged");
}

// ---------------------------------------------------------------------------------------
// YAML input

#[test]
fn a_yaml_config_is_translated_and_applied() {
    if !running_as_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = seed(dir.path(), "root");
    let yaml = format!(
        "variant: fcos
version: 1.5.0
passwd:
  users:
    - name: core
      ssh_authorized_keys:
        - {SSH_KEY}
storage:
  directories:
    - path: /etc/app
      mode: 0750
  files:
    - path: /etc/hostname
      mode: 0644
      contents:
        inline: cairn-node
    - path: /etc/hosts
      append:
        - inline: |
            10.0.0.2 yaml
systemd:
  units:
    - name: hello.service
      enabled: true
      contents: |
        [Service]
        ExecStart=/bin/true
        [Install]
        WantedBy=multi-user.target
"
    );
    match apply_config(&root, yaml.as_bytes(), &options()).unwrap() {
        Outcome::Applied { changes, warnings } => {
            assert!(changes > 5, "{changes}");
            assert!(warnings.is_empty(), "{warnings:?}");
        }
        other => panic!("{other:?}"),
    }
    let s = snapshot(&root);
    assert_eq!(s["etc/hostname"].kind, Kind::File(b"cairn-node".to_vec()));
    assert_eq!(s["etc/hostname"].mode, 0o644);
    assert_eq!(s["etc/app"].kind, Kind::Dir);
    assert_eq!(s["etc/app"].mode, 0o750);
    assert_eq!(
        content(&root, "etc/hosts"),
        "127.0.0.1 localhost\n10.0.0.2 yaml\n"
    );
    assert!(content(&root, "etc/passwd").contains("\ncore:x:1000:1000::/home/core:/bin/sh\n"));
    let keys = &s["home/core/.ssh/authorized_keys.d/ignition"];
    assert_eq!(keys.kind, Kind::File(format!("{SSH_KEY}\n").into_bytes()));
    assert_eq!((keys.mode, keys.uid, keys.gid), (0o600, 1000, 1000));
    assert!(content(&root, "etc/systemd/system/hello.service").contains("ExecStart=/bin/true"));
    assert_eq!(
        content(&root, "etc/systemd/system-preset/20-ignition.preset"),
        "enable hello.service\n"
    );
    // The xattr on the appended file is gone with the old inode, as in Ignition; the
    // untouched one keeps it.
    if !s["etc/tagged"].xattrs.is_empty() {
        assert_eq!(s["etc/tagged"].xattrs["user.cairn"], b"test");
    }
}
