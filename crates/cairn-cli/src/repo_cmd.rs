//! `cairn repo …`: the store's verbs, with ostree's option names.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use cairn_store::checkout::{CheckoutOptions, HardlinkMode};
use cairn_store::commit::CommitOptions;
use cairn_store::gvariant::Value;
use cairn_store::object::{display_value, S_IFDIR, S_IFLNK, S_IFMT};
use cairn_store::prune::PruneOptions;
use cairn_store::repo::Entry;
use cairn_store::{Checksum, Repo, RepoMode};
use clap::{Args, Subcommand};
use serde::Serialize;

use crate::time;

#[derive(Args)]
pub struct RepoArgs {
    /// Path to the repository.
    #[arg(long, global = true, value_name = "PATH")]
    repo: Option<PathBuf>,
    #[command(subcommand)]
    verb: Verb,
}

#[derive(Subcommand)]
enum Verb {
    /// Create a repository.
    Init {
        /// archive, bare-user, bare or bare-user-only.
        #[arg(long, default_value = "bare")]
        mode: String,
    },
    /// Commit a directory to a branch; prints the commit checksum.
    Commit(CommitArgs),
    /// Show a branch's history.
    Log { rev: String },
    /// Show a commit.
    Show {
        rev: String,
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// List a commit's files.
    Ls {
        /// Recurse into directories.
        #[arg(short = 'R', long)]
        recursive: bool,
        rev: String,
        paths: Vec<String>,
    },
    /// Print a file of a commit.
    Cat { rev: String, path: String },
    /// Paths added (A), modified (M) and removed (D) between two commits.
    Diff { from: String, to: String },
    /// List refs, or create or delete them.
    Refs {
        /// Create ref NAME pointing at the given revision.
        #[arg(long, value_name = "NAME")]
        create: Option<String>,
        /// Delete the named refs.
        #[arg(long)]
        delete: bool,
        refs: Vec<String>,
    },
    /// Print the checksum a ref or revision names.
    RevParse { rev: String },
    /// Check a commit out into a directory.
    Checkout(CheckoutArgs),
    /// Verify every object reachable from the refs.
    Fsck {
        #[arg(long)]
        json: bool,
    },
    /// Delete objects nothing keeps.
    Prune {
        /// Only refs keep objects (commits outside ref histories go too).
        #[arg(long)]
        refs_only: bool,
        /// Keep this many parents of each ref (-1: all).
        #[arg(long, allow_negative_numbers = true, default_value_t = -1)]
        depth: i64,
        /// Also keep commits newer than this (e.g. "2 weeks ago", 2024-05-01T00:00:00Z).
        #[arg(long, value_name = "DATE")]
        keep_younger_than: Option<String>,
        /// Print what would be deleted, delete nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Regenerate (-u) or show the summary file.
    Summary {
        #[arg(short = 'u', long)]
        update: bool,
    },
}

#[derive(Args)]
struct CommitArgs {
    #[arg(short = 'b', long)]
    branch: Option<String>,
    #[arg(short = 's', long, default_value = "")]
    subject: String,
    #[arg(long, default_value = "")]
    body: String,
    /// KEY=VALUE string metadata; repeatable.
    #[arg(long = "add-metadata-string", value_name = "KEY=VALUE")]
    metadata: Vec<String>,
    /// Commit time (RFC 3339 or @EPOCH); now by default.
    #[arg(long)]
    timestamp: Option<String>,
    /// Source as `dir=PATH` (ostree's form); or give DIR positionally.
    #[arg(long = "tree", value_name = "dir=PATH")]
    tree: Vec<String>,
    /// Record no parent.
    #[arg(long)]
    orphan: bool,
    /// Do not record `ostree.ref-binding`.
    #[arg(long)]
    no_bindings: bool,
    /// uid/gid 0 and modes 0755/0644.
    #[arg(long)]
    canonical_permissions: bool,
    /// Hash every file, ignoring the cache of the previous commit.
    #[arg(long)]
    no_cache: bool,
    /// Deflate level for archive repositories (1–12).
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..=12))]
    compression_level: Option<i32>,
    /// Print statistics on stderr.
    #[arg(long)]
    stats: bool,
    dir: Option<PathBuf>,
}

#[derive(Args)]
struct CheckoutArgs {
    /// User mode: no ownership or xattrs, no setuid bits.
    #[arg(short = 'U', long = "user-mode")]
    user_mode: bool,
    /// Fail unless every file can be hardlinked.
    #[arg(short = 'H', long = "require-hardlinks")]
    require_hardlinks: bool,
    /// Copy every file.
    #[arg(long)]
    force_copy: bool,
    /// Merge into an existing directory, replacing files.
    #[arg(long)]
    union: bool,
    /// Check out only this directory.
    #[arg(long)]
    subpath: Option<String>,
    /// Skip re-hashing content before hardlinking (copies are always verified).
    #[arg(long)]
    no_verify: bool,
    rev: String,
    dest: PathBuf,
}

fn open_repo(path: &Option<PathBuf>) -> Result<Repo> {
    let path = path
        .as_ref()
        .context("no repository given: pass --repo PATH")?;
    Ok(Repo::open(path)?)
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub fn run(args: RepoArgs) -> Result<i32> {
    let out = std::io::stdout();
    let mut out = out.lock();
    match args.verb {
        Verb::Init { mode } => {
            let path = args
                .repo
                .as_ref()
                .context("no repository given: pass --repo PATH")?;
            let mode: RepoMode = mode.parse()?;
            Repo::init(path, mode)
                .with_context(|| format!("initialise repository {}", path.display()))?;
        }
        Verb::Commit(c) => {
            let repo = open_repo(&args.repo)?;
            let checksum = commit(&repo, c)?;
            writeln!(out, "{checksum}")?;
        }
        Verb::Log { rev } => {
            let repo = open_repo(&args.repo)?;
            let mut next = Some(repo.resolve_rev(&rev)?);
            while let Some(checksum) = next {
                if !repo.has_object(&checksum, cairn_store::ObjectType::Commit) {
                    writeln!(out, "<< History beyond this commit not fetched >>")?;
                    break;
                }
                let c = repo.read_commit(&checksum)?;
                print_commit(&mut out, &checksum, &c)?;
                next = c.parent;
            }
        }
        Verb::Show { rev, json } => {
            let repo = open_repo(&args.repo)?;
            let checksum = repo.resolve_rev(&rev)?;
            let c = repo.read_commit(&checksum)?;
            if json {
                serde_json::to_writer_pretty(&mut out, &CommitJson::new(&checksum, &c))?;
                writeln!(out)?;
            } else {
                print_commit(&mut out, &checksum, &c)?;
                for (k, v) in &c.metadata {
                    writeln!(out, "{k}: {}", display_value(v))?;
                }
            }
        }
        Verb::Ls {
            recursive,
            rev,
            paths,
        } => {
            let repo = open_repo(&args.repo)?;
            let checksum = repo.resolve_rev(&rev)?;
            let paths = if paths.is_empty() {
                vec!["/".to_owned()]
            } else {
                paths
            };
            for path in paths {
                let clean = normalize(&path);
                let entry = repo.lookup_path(&checksum, &clean)?;
                ls_entry(&repo, &mut out, &clean, &entry, recursive, true)?;
            }
        }
        Verb::Cat { rev, path } => {
            let repo = open_repo(&args.repo)?;
            let checksum = repo.resolve_rev(&rev)?;
            let clean = normalize(&path);
            match repo.lookup_path(&checksum, &clean)? {
                Entry::File(f) => {
                    let content = repo.read_content(&f, true)?;
                    if content.is_symlink() {
                        bail!(
                            "{clean} in {rev} is a symlink to {:?}, not a file",
                            content.symlink_target
                        );
                    }
                    out.write_all(&content.data)?;
                }
                Entry::Dir { .. } => bail!("{clean} in {rev} is a directory"),
            }
        }
        Verb::Diff { from, to } => {
            let repo = open_repo(&args.repo)?;
            let a = repo.resolve_rev(&from)?;
            let b = repo.resolve_rev(&to)?;
            let mut changes = cairn_store::diff::diff_commits(&repo, &a, &b)?;
            // ostree prints modified, then removed, then added paths.
            changes.sort_by_key(|c| match c {
                cairn_store::diff::Change::Modified(_) => 0,
                cairn_store::diff::Change::Removed(_) => 1,
                cairn_store::diff::Change::Added(_) => 2,
            });
            for change in changes {
                writeln!(out, "{}    {}", change.letter(), change.path())?;
            }
        }
        Verb::Refs {
            create,
            delete,
            refs,
        } => {
            let repo = open_repo(&args.repo)?;
            if let Some(name) = create {
                let [rev] = refs.as_slice() else {
                    bail!("refs --create NAME needs exactly one revision to point at")
                };
                if repo.read_ref(&name)?.is_some() {
                    bail!("ref {name:?} already exists");
                }
                let checksum = repo.resolve_rev(rev)?;
                repo.write_ref(&name, &checksum)?;
            } else if delete {
                if refs.is_empty() {
                    bail!("refs --delete needs the names of the refs to delete");
                }
                for name in refs {
                    repo.delete_ref(&name)?;
                }
            } else {
                for (name, _) in repo.list_refs()? {
                    if refs.is_empty() || refs.iter().any(|p| name.starts_with(p.as_str())) {
                        writeln!(out, "{name}")?;
                    }
                }
            }
        }
        Verb::RevParse { rev } => {
            let repo = open_repo(&args.repo)?;
            writeln!(out, "{}", repo.resolve_rev(&rev)?)?;
        }
        Verb::Checkout(c) => {
            let repo = open_repo(&args.repo)?;
            let checksum = repo.resolve_rev(&c.rev)?;
            let options = CheckoutOptions {
                user_mode: c.user_mode,
                hardlinks: if c.force_copy {
                    HardlinkMode::Never
                } else if c.require_hardlinks {
                    HardlinkMode::Require
                } else {
                    HardlinkMode::Auto
                },
                union: c.union,
                subpath: c.subpath,
                verify: !c.no_verify,
            };
            let stats = cairn_store::checkout::checkout(&repo, &checksum, &c.dest, &options)
                .with_context(|| format!("check out {} into {}", c.rev, c.dest.display()))?;
            tracing::info!(
                files = stats.files,
                dirs = stats.dirs,
                hardlinked = stats.hardlinked,
                copied = stats.copied,
                "checked out"
            );
        }
        Verb::Fsck { json } => {
            let repo = open_repo(&args.repo)?;
            let report = cairn_store::fsck::fsck(&repo)?;
            if json {
                serde_json::to_writer_pretty(
                    &mut out,
                    &serde_json::json!({
                        "refs": report.refs, "commits": report.commits, "dirtrees": report.dirtrees,
                        "dirmetas": report.dirmetas, "files": report.files, "problems": report.problems,
                    }),
                )?;
                writeln!(out)?;
            } else {
                writeln!(
                    out,
                    "Checked {} refs, {} commits, {} dirtrees, {} dirmetas, {} content objects",
                    report.refs, report.commits, report.dirtrees, report.dirmetas, report.files
                )?;
                for p in &report.problems {
                    eprintln!("error: {p}");
                }
            }
            if !report.problems.is_empty() {
                eprintln!("fsck: {} problem(s) found", report.problems.len());
                return Ok(1);
            }
        }
        Verb::Prune {
            refs_only,
            depth,
            keep_younger_than,
            dry_run,
        } => {
            let repo = open_repo(&args.repo)?;
            let keep_younger_than = keep_younger_than
                .map(|t| time::parse_timestamp(&t, now()).map_err(anyhow::Error::msg))
                .transpose()?;
            let options = PruneOptions {
                refs_only,
                depth: u64::try_from(depth).ok(),
                keep_younger_than,
                dry_run,
            };
            let report = cairn_store::prune::prune(&repo, &options)?;
            if dry_run {
                for (c, kind) in &report.deleted {
                    writeln!(out, "would delete {c}.{kind}")?;
                }
            }
            writeln!(
                out,
                "Total objects: {}\n{} {} objects, {} bytes freed",
                report.total,
                if dry_run { "Would delete" } else { "Deleted" },
                report.deleted.len(),
                report.freed_bytes
            )?;
        }
        Verb::Summary { update } => {
            let repo = open_repo(&args.repo)?;
            if update {
                cairn_store::summary::update_summary(&repo, now())?;
            } else {
                for (name, checksum) in repo.list_refs()? {
                    if !name.contains(':') {
                        writeln!(out, "* {name}\n    Latest Commit: {checksum}")?;
                    }
                }
            }
        }
    }
    Ok(0)
}

fn normalize(path: &str) -> String {
    let parts: Vec<&str> = path
        .split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .collect();
    format!("/{}", parts.join("/"))
}

fn commit(repo: &Repo, c: CommitArgs) -> Result<Checksum> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    for t in &c.tree {
        match t.split_once('=') {
            Some(("dir", d)) => dirs.push(d.into()),
            _ => bail!("--tree {t:?}: only --tree=dir=PATH is supported"),
        }
    }
    dirs.extend(c.dir.clone());
    let [dir] = dirs.as_slice() else {
        bail!("give exactly one directory to commit (DIR or --tree=dir=DIR)")
    };
    if c.branch.is_none() && !c.orphan {
        bail!("a branch is required: pass -b/--branch NAME (or --orphan for a commit without one)");
    }
    let mut metadata = Vec::new();
    for kv in &c.metadata {
        let (k, v) = kv
            .split_once('=')
            .with_context(|| format!("--add-metadata-string {kv:?}: expected KEY=VALUE"))?;
        metadata.retain(|(key, _): &(String, Value)| key != k);
        metadata.push((k.to_owned(), Value::Str(v.to_owned())));
    }
    let timestamp = c
        .timestamp
        .as_deref()
        .map(|t| time::parse_timestamp(t, now()).map_err(anyhow::Error::msg))
        .transpose()?;
    let options = CommitOptions {
        branch: c.branch,
        subject: c.subject,
        body: c.body,
        metadata,
        timestamp,
        orphan: c.orphan,
        no_bindings: c.no_bindings,
        canonical_permissions: c.canonical_permissions,
        no_cache: c.no_cache,
        compression_level: c.compression_level,
    };
    let started = std::time::Instant::now();
    let (checksum, stats) = cairn_store::commit::commit_directory(repo, dir, &options)
        .with_context(|| format!("commit {}", dir.display()))?;
    if c.stats {
        eprintln!(
            "files: {}, dirs: {}, new objects: {}, unchanged (cached): {}, bytes read: {}, {:.2}s",
            stats.files,
            stats.dirs,
            stats.new_objects,
            stats.cache_hits,
            stats.bytes_read,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(checksum)
}

fn print_commit(
    out: &mut impl Write,
    checksum: &Checksum,
    c: &cairn_store::object::Commit,
) -> Result<()> {
    writeln!(out, "commit {checksum}")?;
    if let Some(p) = &c.parent {
        writeln!(out, "Parent:  {p}")?;
    }
    writeln!(out, "ContentChecksum:  {}", c.content_checksum())?;
    writeln!(out, "Date:  {}", time::format_utc(c.timestamp))?;
    if let Some(v) = c.version() {
        writeln!(out, "Version: {v}")?;
    }
    writeln!(out)?;
    if !c.subject.is_empty() {
        writeln!(out, "    {}", c.subject)?;
    }
    if !c.body.is_empty() {
        writeln!(out)?;
        for line in c.body.lines() {
            writeln!(out, "    {line}")?;
        }
    }
    writeln!(out)?;
    Ok(())
}

fn ls_entry(
    repo: &Repo,
    out: &mut impl Write,
    path: &str,
    entry: &Entry,
    recursive: bool,
    top: bool,
) -> Result<()> {
    match entry {
        Entry::File(f) => {
            let (meta, target, size) = repo.read_content_meta(f)?;
            let kind = if meta.mode & S_IFMT == S_IFLNK {
                'l'
            } else {
                '-'
            };
            let suffix = if target.is_empty() {
                String::new()
            } else {
                format!(" -> {target}")
            };
            writeln!(
                out,
                "{kind}0{:04o} {} {} {size:>6} {path}{suffix}",
                meta.mode & 0o7777,
                meta.uid,
                meta.gid
            )?;
        }
        Entry::Dir { tree, meta } => {
            let m = repo.read_dirmeta(meta)?;
            debug_assert_eq!(m.mode & S_IFMT, S_IFDIR);
            writeln!(
                out,
                "d0{:04o} {} {} {:>6} {path}",
                m.mode & 0o7777,
                m.uid,
                m.gid,
                0
            )?;
            if top || recursive {
                let t = repo.read_dirtree(tree)?;
                let join = |name: &str| {
                    if path == "/" {
                        format!("/{name}")
                    } else {
                        format!("{path}/{name}")
                    }
                };
                for (name, c) in &t.files {
                    ls_entry(repo, out, &join(name), &Entry::File(*c), recursive, false)?;
                }
                for (name, t, m) in &t.dirs {
                    let child = Entry::Dir { tree: *t, meta: *m };
                    if recursive {
                        ls_entry(repo, out, &join(name), &child, recursive, false)?;
                    } else {
                        let dm = repo.read_dirmeta(m)?;
                        writeln!(
                            out,
                            "d0{:04o} {} {} {:>6} {}",
                            dm.mode & 0o7777,
                            dm.uid,
                            dm.gid,
                            0,
                            join(name)
                        )?;
                    }
                }
            }
        }
    }
    Ok(())
}

/// `cairn repo show --json`: cairn's own output format, versioned by its field names.
#[derive(Serialize)]
struct CommitJson {
    checksum: String,
    parent: Option<String>,
    subject: String,
    body: String,
    timestamp: u64,
    date: String,
    version: Option<String>,
    root_dirtree: String,
    root_dirmeta: String,
    content_checksum: String,
    metadata: serde_json::Map<String, serde_json::Value>,
}

impl CommitJson {
    fn new(checksum: &Checksum, c: &cairn_store::object::Commit) -> Self {
        CommitJson {
            checksum: checksum.to_hex(),
            parent: c.parent.map(|p| p.to_hex()),
            subject: c.subject.clone(),
            body: c.body.clone(),
            timestamp: c.timestamp,
            date: time::format_rfc3339(c.timestamp),
            version: c.version().map(str::to_owned),
            root_dirtree: c.root_tree.to_hex(),
            root_dirmeta: c.root_meta.to_hex(),
            content_checksum: c.content_checksum().to_hex(),
            metadata: c
                .metadata
                .iter()
                .map(|(k, v)| (k.clone(), value_json(v)))
                .collect(),
        }
    }
}

fn value_json(v: &Value) -> serde_json::Value {
    match v {
        Value::Str(s) | Value::ObjectPath(s) | Value::Signature(s) => s.clone().into(),
        Value::Bool(b) => (*b).into(),
        Value::Byte(x) => (*x).into(),
        Value::U16(x) => (*x).into(),
        Value::I16(x) => (*x).into(),
        Value::U32(x) => (*x).into(),
        Value::I32(x) => (*x).into(),
        Value::U64(x) => (*x).into(),
        Value::I64(x) => (*x).into(),
        Value::F64(x) => (*x).into(),
        Value::Bytes(b) => hex_string(b).into(),
        Value::Array(_, items) | Value::Struct(items) => items.iter().map(value_json).collect(),
        Value::Variant(inner) => value_json(inner),
        Value::Maybe(_, inner) => inner
            .as_ref()
            .map(|i| value_json(i))
            .unwrap_or(serde_json::Value::Null),
        Value::DictEntry(k, v) => serde_json::Value::Array(vec![value_json(k), value_json(v)]),
    }
}

fn hex_string(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
