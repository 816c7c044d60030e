//! The all-or-nothing switch: changes to the root are prepared beside it, then applied
//! as a journalled sequence of renames that a crash at any point can undo.
//!
//! 1. Every new file, symlink and hard link is written complete (content, mode, owner)
//!    under `<root>/.cairn-apply/stage/`, on the root's filesystem, and the filesystem
//!    is synced once (`syncfs`).
//! 2. The whole journal is written and synced before the first step: one line per step,
//!    `mkdir P` (a directory that did not exist), `meta P MODE UID GID` (the old mode and
//!    owner of something that changes only those), `backup P B` (what is at P moved to
//!    B), `put P S` (the staged S renamed to P).
//! 3. The steps run in order; the filesystem is synced; `commit` is appended and synced.
//!    Backups and the journal are then removed.
//!
//! Undo is idempotent and works from what is on disk, so one sync before the steps is
//! enough: a `put` whose staged object is still in the stage did not happen, one whose
//! staged object is gone is moved back there; a `backup` whose backup exists is moved
//! back; a `mkdir` is removed if present; a `meta` is restored. A run that finds a
//! journal without `commit` undoes it in reverse first, so the root is exactly as before
//! the interrupted run — and a crash during the undo is undone again the same way.
//!
//! Paths are resolved as Ignition resolves them, inside the root: a symlink met on the
//! way is followed with `/` meaning the root (`openat2(RESOLVE_IN_ROOT)`), so nothing is
//! ever written outside it.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags};

#[derive(Debug, thiserror::Error)]
pub enum TxnError {
    #[error("{path}: {error}")]
    Io { path: String, error: io::Error },
    #[error("{0}")]
    Invalid(String),
    /// A simulated crash (tests): the run stops dead, as a killed process would.
    #[error("simulated crash after {0} journal steps")]
    Crashed(usize),
}

type Result<T> = std::result::Result<T, TxnError>;

fn io_at(path: impl Into<String>) -> impl FnOnce(io::Error) -> TxnError {
    let path = path.into();
    move |error| TxnError::Io { path, error }
}

fn uid_of(uid: u32) -> rustix::fs::Uid {
    rustix::fs::Uid::from_raw(uid)
}

fn gid_of(gid: u32) -> rustix::fs::Gid {
    rustix::fs::Gid::from_raw(gid)
}

fn rustix_at(path: impl Into<String>) -> impl FnOnce(rustix::io::Errno) -> TxnError {
    let path = path.into();
    move |e| TxnError::Io {
        path,
        error: e.into(),
    }
}

/// One change to the root. Paths are absolute, as in the config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// A directory: created if missing, else its mode and owner set.
    Dir {
        path: String,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    /// A regular file, replacing whatever non-directory is there.
    File {
        path: String,
        contents: Vec<u8>,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    Symlink {
        path: String,
        target: String,
        uid: u32,
        gid: u32,
    },
    /// A hard link to `target`: a file an earlier change in the same list writes, or one
    /// already in the root.
    HardLink { path: String, target: String },
    /// New mode and owner for an existing file or directory, content untouched.
    Meta {
        path: String,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    /// Whatever is at `path` (a whole tree for a directory) is taken away.
    Remove { path: String },
}

impl Change {
    pub fn path(&self) -> &str {
        match self {
            Change::Dir { path, .. }
            | Change::File { path, .. }
            | Change::Symlink { path, .. }
            | Change::HardLink { path, .. }
            | Change::Meta { path, .. }
            | Change::Remove { path } => path,
        }
    }
}

const WORK: &str = ".cairn-apply";

fn work_dir(root: &Path) -> PathBuf {
    root.join(WORK)
}

fn fault() -> io::Result<()> {
    cairn_store::fault::io_point("apply")
}

/// Opens the root as a directory handle.
fn open_root(root: &Path) -> Result<OwnedFd> {
    rustix::fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(rustix_at(root.display().to_string()))
}

/// Resolves `path` inside the root: its parent with symlinks followed (`/` is the root),
/// the final name not followed. Returns the real path below `root`.
fn resolve(real_root: &Path, root_fd: &OwnedFd, path: &str) -> Result<PathBuf> {
    let clean = path.trim_start_matches('/');
    let (parent, name) = clean.rsplit_once('/').unwrap_or(("", clean));
    if name.is_empty() || name == "." || name == ".." || clean.split('/').any(|c| c == "..") {
        return Err(TxnError::Invalid(format!("path {path:?} is not clean")));
    }
    let fd = rustix::fs::openat2(
        root_fd,
        if parent.is_empty() { "." } else { parent },
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::PATH,
        Mode::empty(),
        ResolveFlags::IN_ROOT,
    )
    .map_err(rustix_at(format!("/{parent}")))?;
    // The kernel resolved it inside the root; read back where that is.
    let real = fs::read_link(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&fd)
    ))
    .map_err(io_at(format!("/{parent}")))?;
    if !real.starts_with(real_root) {
        return Err(TxnError::Invalid(format!(
            "/{parent} resolves outside the root"
        )));
    }
    Ok(real.join(name))
}

/// Journal paths are escaped so that a name with a tab or newline stays one field.
fn escape(path: &Path) -> String {
    let s = path.to_string_lossy();
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out
}

fn unescape(s: &str) -> PathBuf {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(other) => out.push(other),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    PathBuf::from(out)
}

/// One journalled step, with real paths.
enum Step {
    Mkdir(PathBuf),
    Meta {
        path: PathBuf,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    Backup {
        path: PathBuf,
        backup: PathBuf,
    },
    Put {
        path: PathBuf,
        staged: PathBuf,
    },
}

impl Step {
    fn line(&self) -> String {
        match self {
            Step::Mkdir(p) => format!("mkdir\t{}", escape(p)),
            Step::Meta {
                path,
                mode,
                uid,
                gid,
            } => format!("meta\t{}\t{mode:o}\t{uid}\t{gid}", escape(path)),
            Step::Backup { path, backup } => {
                format!("backup\t{}\t{}", escape(path), escape(backup))
            }
            Step::Put { path, staged } => format!("put\t{}\t{}", escape(path), escape(staged)),
        }
    }

    fn parse(line: &str) -> Option<Step> {
        let f: Vec<&str> = line.split('\t').collect();
        Some(match f.as_slice() {
            ["mkdir", p] => Step::Mkdir(unescape(p)),
            ["meta", p, mode, uid, gid] => Step::Meta {
                path: unescape(p),
                mode: u32::from_str_radix(mode, 8).ok()?,
                uid: uid.parse().ok()?,
                gid: gid.parse().ok()?,
            },
            ["backup", p, b] => Step::Backup {
                path: unescape(p),
                backup: unescape(b),
            },
            ["put", p, s] => Step::Put {
                path: unescape(p),
                staged: unescape(s),
            },
            _ => return None,
        })
    }

    /// Undoes the step if (and as far as) it happened; safe to repeat.
    fn undo(&self) -> io::Result<()> {
        let exists = |p: &Path| fs::symlink_metadata(p).is_ok();
        match self {
            Step::Put { path, staged } => {
                if !exists(staged) && exists(path) {
                    fs::rename(path, staged)?;
                }
                Ok(())
            }
            Step::Backup { path, backup } => {
                if exists(backup) {
                    if exists(path) {
                        remove_any(path)?;
                    }
                    fs::rename(backup, path)?;
                }
                Ok(())
            }
            Step::Mkdir(path) => match fs::remove_dir(path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            },
            Step::Meta {
                path,
                mode,
                uid,
                gid,
            } => match set_owner_mode(path, *uid, *gid, Some(*mode)) {
                // Under a directory whose own step was already undone: nothing to do.
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                other => other,
            },
        }
    }
}

fn set_owner_mode(path: &Path, uid: u32, gid: u32, mode: Option<u32>) -> io::Result<()> {
    // Owner first: a chown clears set-id bits, so the mode comes after it.
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))?;
    if let Some(mode) = mode {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

fn remove_any(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Undoes an interrupted run (a journal without `commit`), or finishes a committed one.
/// Returns whether there was anything to do.
pub fn recover(root: &Path) -> Result<bool> {
    let work = work_dir(root);
    let journal = work.join("journal");
    let text = match fs::read_to_string(&journal) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if fs::symlink_metadata(&work).is_ok() {
                remove_any(&work).map_err(io_at(work.display().to_string()))?;
            }
            return Ok(false);
        }
        Err(e) => return Err(io_at(journal.display().to_string())(e)),
    };
    let lines: Vec<&str> = text.lines().collect();
    if !lines.contains(&"commit") {
        for line in lines.iter().rev() {
            let step = Step::parse(line)
                .ok_or_else(|| TxnError::Invalid(format!("journal line {line:?} unreadable")))?;
            step.undo().map_err(io_at(format!("undo {line}")))?;
        }
        if let Ok(dir) = fs::File::open(root) {
            let _ = rustix::fs::syncfs(&dir);
        }
    }
    remove_any(&work).map_err(io_at(work.display().to_string()))?;
    Ok(true)
}

/// Applies `changes` in order, all or nothing.
pub fn apply(root: &Path, changes: &[Change]) -> Result<()> {
    run(root, changes, None)
}

/// For crash tests: stops dead before step `crash_at` (0 = after the journal is
/// written, before any change), leaving the root as a killed process would; [`recover`]
/// must then restore it.
#[doc(hidden)]
pub fn apply_crashing_at(root: &Path, changes: &[Change], crash_at: usize) -> Result<()> {
    run(root, changes, Some(crash_at))
}

fn run(root: &Path, changes: &[Change], crash_at: Option<usize>) -> Result<()> {
    recover(root)?;
    let work = work_dir(root);
    fs::DirBuilder::new()
        .mode(0o700)
        .create(&work)
        .map_err(io_at(work.display().to_string()))?;
    match stage_and_switch(root, &work, changes, crash_at) {
        Err(TxnError::Crashed(n)) => Err(TxnError::Crashed(n)),
        Err(e) => {
            recover(root)?;
            Err(e)
        }
        Ok(()) => Ok(()),
    }
}

fn stage_and_switch(
    root: &Path,
    work: &Path,
    changes: &[Change],
    crash_at: Option<usize>,
) -> Result<()> {
    let stage = work.join("stage");
    let backups = work.join("backup");
    for dir in [&stage, &backups] {
        fs::create_dir(dir).map_err(io_at(dir.display().to_string()))?;
    }
    let root_fd = open_root(root)?;
    let real_root = root
        .canonicalize()
        .map_err(io_at(root.display().to_string()))?;
    let creator = (
        rustix::process::geteuid().as_raw(),
        rustix::process::getegid().as_raw(),
    );
    // 1. Everything new is written complete beside the root.
    for (i, change) in changes.iter().enumerate() {
        let staged = stage.join(i.to_string());
        fault().map_err(io_at(staged.display().to_string()))?;
        match change {
            Change::File {
                contents,
                mode,
                uid,
                gid,
                ..
            } => {
                let mut f = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&staged)
                    .map_err(io_at(change.path()))?;
                f.write_all(contents).map_err(io_at(change.path()))?;
                // Owner first (a chown clears set-id bits), through the open file; a new
                // file already belongs to us.
                if (*uid, *gid) != creator {
                    rustix::fs::fchown(&f, Some(uid_of(*uid)), Some(gid_of(*gid)))
                        .map_err(rustix_at(change.path()))?;
                }
                rustix::fs::fchmod(&f, Mode::from_raw_mode(*mode))
                    .map_err(rustix_at(change.path()))?;
            }
            Change::Symlink {
                target, uid, gid, ..
            } => {
                std::os::unix::fs::symlink(target, &staged).map_err(io_at(change.path()))?;
                set_owner_mode(&staged, *uid, *gid, None).map_err(io_at(change.path()))?;
            }
            Change::HardLink { target, .. } => {
                let earlier = changes[..i].iter().rposition(|c| {
                    matches!(c, Change::File { .. } | Change::HardLink { .. }) && c.path() == target
                });
                let source = match earlier {
                    Some(j) => stage.join(j.to_string()),
                    None => {
                        let real = resolve(&real_root, &root_fd, target)?;
                        let m = fs::symlink_metadata(&real).map_err(io_at(target.clone()))?;
                        if m.is_dir() {
                            return Err(TxnError::Invalid(format!(
                                "hard link {} -> {target}: the target is a directory",
                                change.path()
                            )));
                        }
                        real
                    }
                };
                fs::hard_link(&source, &staged).map_err(io_at(change.path()))?;
            }
            Change::Dir { .. } | Change::Meta { .. } | Change::Remove { .. } => {}
        }
    }
    rustix::fs::syncfs(&root_fd).map_err(rustix_at(root.display().to_string()))?;

    // 2. The journal, whole, before the first step. Each change is resolved when its
    //    turn comes (an earlier one may create the directory a later one goes in), so
    //    the plan is checked against the root here, step by step, without changing it.
    let mut steps = Vec::with_capacity(changes.len());
    let mut planned: HashMap<String, PathBuf> = HashMap::new();
    let mut created: HashSet<PathBuf> = HashSet::new();
    let mut removed: Vec<PathBuf> = Vec::new();
    for (i, change) in changes.iter().enumerate() {
        let target = resolve_planned(&real_root, &root_fd, change.path(), &mut planned)?;
        let gone = removed.iter().any(|r| target.starts_with(r));
        // Nothing exists yet below a directory this run creates.
        let in_new_dir = target.parent().is_some_and(|p| created.contains(p));
        let existing = if gone || in_new_dir || created.contains(&target) {
            None
        } else {
            fs::symlink_metadata(&target).ok()
        };
        let staged = stage.join(i.to_string());
        let backup = backups.join(i.to_string());
        if let Change::Dir { path, .. } = change {
            planned.insert(path.trim_end_matches('/').to_string(), target.clone());
        }
        match change {
            Change::Dir { mode, uid, gid, .. } => match &existing {
                _ if created.contains(&target) => {
                    return Err(TxnError::Invalid(format!(
                        "{} is created twice",
                        change.path()
                    )))
                }
                Some(m) if m.is_dir() => {
                    steps.push((
                        Step::Meta {
                            path: target.clone(),
                            mode: m.mode() & 0o7777,
                            uid: m.uid(),
                            gid: m.gid(),
                        },
                        Some((*mode, *uid, *gid)),
                        change.path(),
                    ));
                }
                Some(_) => {
                    return Err(TxnError::Invalid(format!(
                        "{} exists and is not a directory",
                        change.path()
                    )))
                }
                None => {
                    steps.push((
                        Step::Mkdir(target.clone()),
                        Some((*mode, *uid, *gid)),
                        change.path(),
                    ));
                    created.insert(target.clone());
                }
            },
            Change::Meta { mode, uid, gid, .. } => {
                let m = existing.ok_or_else(|| {
                    TxnError::Invalid(format!("{} does not exist", change.path()))
                })?;
                steps.push((
                    Step::Meta {
                        path: target.clone(),
                        mode: m.mode() & 0o7777,
                        uid: m.uid(),
                        gid: m.gid(),
                    },
                    Some((*mode, *uid, *gid)),
                    change.path(),
                ));
            }
            Change::Remove { .. } => {
                if existing.is_some() {
                    steps.push((
                        Step::Backup {
                            path: target.clone(),
                            backup,
                        },
                        None,
                        change.path(),
                    ));
                    removed.push(target.clone());
                }
            }
            Change::File { .. } | Change::Symlink { .. } | Change::HardLink { .. } => {
                if existing.as_ref().is_some_and(|m| m.is_dir()) {
                    return Err(TxnError::Invalid(format!(
                        "{} is a directory",
                        change.path()
                    )));
                }
                if existing.is_some() {
                    steps.push((
                        Step::Backup {
                            path: target.clone(),
                            backup,
                        },
                        None,
                        change.path(),
                    ));
                }
                steps.push((
                    Step::Put {
                        path: target.clone(),
                        staged,
                    },
                    None,
                    change.path(),
                ));
                created.insert(target);
            }
        }
    }
    let journal_path = work.join("journal");
    let mut journal = fs::OpenOptions::new()
        .create_new(true)
        .append(true)
        .mode(0o600)
        .open(&journal_path)
        .map_err(io_at(journal_path.display().to_string()))?;
    let mut text = String::new();
    for (step, _, _) in &steps {
        text.push_str(&step.line());
        text.push('\n');
    }
    journal
        .write_all(text.as_bytes())
        .and_then(|()| journal.sync_all())
        .map_err(io_at(journal_path.display().to_string()))?;

    // 3. The steps.
    for (n, (step, meta, shown)) in steps.iter().enumerate() {
        if crash_at == Some(n) {
            return Err(TxnError::Crashed(n));
        }
        let done = match step {
            Step::Mkdir(path) => fs::DirBuilder::new().mode(0o700).create(path),
            Step::Meta { .. } => Ok(()),
            Step::Backup { path, backup } => fs::rename(path, backup),
            Step::Put { path, staged } => fs::rename(staged, path),
        };
        let path = match step {
            Step::Mkdir(p) | Step::Meta { path: p, .. } => p,
            Step::Backup { path, .. } | Step::Put { path, .. } => path,
        };
        done.map_err(io_at(*shown))?;
        if let Some((mode, uid, gid)) = meta {
            set_owner_mode(path, *uid, *gid, Some(*mode)).map_err(io_at(*shown))?;
        }
    }
    if crash_at == Some(steps.len()) {
        return Err(TxnError::Crashed(steps.len()));
    }
    rustix::fs::syncfs(&root_fd).map_err(rustix_at(root.display().to_string()))?;
    fault().map_err(io_at(journal_path.display().to_string()))?;
    journal
        .write_all(b"commit\n")
        .and_then(|()| journal.sync_all())
        .map_err(io_at(journal_path.display().to_string()))?;
    drop(journal);
    remove_any(work).map_err(io_at(work.display().to_string()))?;
    Ok(())
}

/// Resolves a change's path before the steps run: through the real root, unless its
/// parent is a directory an earlier change creates (not on disk yet).
fn resolve_planned(
    real_root: &Path,
    root_fd: &OwnedFd,
    path: &str,
    planned: &mut HashMap<String, PathBuf>,
) -> Result<PathBuf> {
    let (parent, name) = path
        .trim_end_matches('/')
        .rsplit_once('/')
        .unwrap_or(("", path));
    match planned.get(parent) {
        Some(real) => {
            if name.is_empty() || name == "." || name == ".." {
                return Err(TxnError::Invalid(format!("path {path:?} is not clean")));
            }
            Ok(real.join(name))
        }
        None => {
            let resolved = resolve(real_root, root_fd, path)?;
            // Siblings share the parent: it is resolved once.
            if let Some(dir) = resolved.parent() {
                planned.insert(parent.to_string(), dir.to_path_buf());
            }
            Ok(resolved)
        }
    }
}
