//! The all-or-nothing switch: changes to the root are prepared beside it, then applied
//! as a journalled sequence of renames that a crash at any point can undo.
//!
//! Every new file or symlink is first written complete (content, mode, owner) under
//! `<root>/.cairn-apply/stage/`, on the root's filesystem. Then, for each change, a
//! journal line is written and synced *before* the step it describes: `mkdir P` (a
//! directory that did not exist), `backup P B` (what was at P moved to B), `put P`
//! (the staged object renamed to P). `commit` ends a complete run; backups and the
//! journal are removed after it. A run that finds a journal without `commit` undoes it
//! in reverse first, so the root is exactly as before the interrupted run.
//!
//! Paths are resolved as Ignition resolves them, inside the root: a symlink met on the
//! way is followed with `/` meaning the root (`openat2(RESOLVE_IN_ROOT)`), so nothing is
//! ever written outside it.

use std::fs;
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
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

/// One change to the root. Paths are absolute, as in the config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Dir {
        path: String,
        mode: u32,
        uid: u32,
        gid: u32,
    },
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
}

impl Change {
    pub fn path(&self) -> &str {
        match self {
            Change::Dir { path, .. } | Change::File { path, .. } | Change::Symlink { path, .. } => {
                path
            }
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
    .map_err(|e| TxnError::Io {
        path: root.display().to_string(),
        error: e.into(),
    })
}

/// Resolves the parent directory of `path` inside the root (symlinks followed with `/`
/// as the root) and returns it as a real path below `root`, with the final name.
fn resolve_parent(root: &Path, root_fd: &OwnedFd, path: &str) -> Result<(PathBuf, String)> {
    let clean = path.trim_start_matches('/');
    let (parent, name) = match clean.rsplit_once('/') {
        Some((p, n)) => (p, n),
        None => ("", clean),
    };
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
    .map_err(|e| TxnError::Io {
        path: format!("/{parent}"),
        error: e.into(),
    })?;
    // The kernel resolved it inside the root; read back where that is.
    let real = fs::read_link(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&fd)
    ))
    .map_err(io_at(format!("/{parent}")))?;
    let real_root = root
        .canonicalize()
        .map_err(io_at(root.display().to_string()))?;
    if !real.starts_with(&real_root) {
        return Err(TxnError::Invalid(format!(
            "/{parent} resolves outside the root"
        )));
    }
    Ok((real, name.to_owned()))
}

struct Journal {
    file: fs::File,
    path: PathBuf,
    steps: usize,
    crash_at: Option<usize>,
}

impl Journal {
    fn create(root: &Path) -> Result<Journal> {
        let path = work_dir(root).join("journal");
        let file = fs::OpenOptions::new()
            .create_new(true)
            .append(true)
            .mode(0o600)
            .open(&path)
            .map_err(io_at(path.display().to_string()))?;
        Ok(Journal {
            file,
            path,
            steps: 0,
            crash_at: None,
        })
    }

    /// Appends a line and syncs it: written before the step it describes.
    fn log(&mut self, line: &str) -> Result<()> {
        fault().map_err(io_at(self.path.display().to_string()))?;
        if self.crash_at == Some(self.steps) {
            return Err(TxnError::Crashed(self.steps));
        }
        self.steps += 1;
        writeln!(self.file, "{line}")
            .and_then(|()| self.file.sync_data())
            .map_err(io_at(self.path.display().to_string()))
    }
}

fn set_owner_mode(path: &Path, uid: u32, gid: u32, mode: Option<u32>) -> Result<()> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))
        .map_err(io_at(path.display().to_string()))?;
    if let Some(mode) = mode {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
            .map_err(io_at(path.display().to_string()))?;
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
            if work.exists() {
                remove_any(&work).map_err(io_at(work.display().to_string()))?;
            }
            return Ok(false);
        }
        Err(e) => return Err(io_at(journal.display().to_string())(e)),
    };
    let lines: Vec<&str> = text.lines().collect();
    if !lines.contains(&"commit") {
        for line in lines.iter().rev() {
            let (op, rest) = line.split_once(' ').unwrap_or((line, ""));
            let undo = match op {
                "put" => remove_any(Path::new(rest)),
                "meta" => {
                    let f: Vec<&str> = rest.split('\t').collect();
                    match f.as_slice() {
                        [path, mode, uid, gid] => {
                            let (mode, uid, gid) = (
                                u32::from_str_radix(mode, 8).unwrap_or(0o755),
                                uid.parse().unwrap_or(0),
                                gid.parse().unwrap_or(0),
                            );
                            set_owner_mode(Path::new(path), uid, gid, Some(mode))
                                .map_err(|e| io::Error::other(e.to_string()))
                        }
                        _ => Ok(()),
                    }
                }
                "mkdir" => match fs::remove_dir(rest) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                    _ => Ok(()),
                },
                "backup" => {
                    let (target, backup) = rest.split_once('\t').unwrap_or((rest, ""));
                    if Path::new(backup).exists() || fs::symlink_metadata(backup).is_ok() {
                        remove_any(Path::new(target)).and_then(|()| fs::rename(backup, target))
                    } else {
                        Ok(())
                    }
                }
                _ => Ok(()),
            };
            undo.map_err(io_at(format!("undo {line}")))?;
        }
    }
    remove_any(&work).map_err(io_at(work.display().to_string()))?;
    Ok(true)
}

/// Applies `changes` in order, all or nothing.
pub fn apply(root: &Path, changes: &[Change]) -> Result<()> {
    run(root, changes, None)
}

/// For crash tests: stops dead before journal step `crash_at`, leaving the root as a
/// killed process would; [`recover`] must then restore it.
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
    let result = stage_and_switch(root, &work, changes, crash_at);
    match result {
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
                f.write_all(contents)
                    .and_then(|()| f.sync_all())
                    .map_err(io_at(change.path()))?;
                set_owner_mode(&staged, *uid, *gid, Some(*mode))?;
            }
            Change::Symlink {
                target, uid, gid, ..
            } => {
                std::os::unix::fs::symlink(target, &staged).map_err(io_at(change.path()))?;
                set_owner_mode(&staged, *uid, *gid, None)?;
            }
            Change::Dir { .. } => {}
        }
    }
    // 2. The journalled switch.
    let root_fd = open_root(root)?;
    let mut journal = Journal::create(root)?;
    journal.crash_at = crash_at;
    for (i, change) in changes.iter().enumerate() {
        let (parent, name) = resolve_parent(root, &root_fd, change.path())?;
        let target = parent.join(&name);
        let existing = fs::symlink_metadata(&target).ok();
        match change {
            Change::Dir { mode, uid, gid, .. } => {
                if let Some(m) = existing.as_ref().filter(|m| m.is_dir()) {
                    // The config names this directory: its mode and owner change; the
                    // journal keeps the old ones for an undo.
                    use std::os::unix::fs::MetadataExt;
                    journal.log(&format!(
                        "meta {}\t{:o}\t{}\t{}",
                        target.display(),
                        m.mode() & 0o7777,
                        m.uid(),
                        m.gid()
                    ))?;
                    set_owner_mode(&target, *uid, *gid, Some(*mode))?;
                    continue;
                }
                if existing.is_some() {
                    return Err(TxnError::Invalid(format!(
                        "{} exists and is not a directory",
                        change.path()
                    )));
                }
                journal.log(&format!("mkdir {}", target.display()))?;
                fs::DirBuilder::new()
                    .mode(0o700)
                    .create(&target)
                    .map_err(io_at(change.path()))?;
                set_owner_mode(&target, *uid, *gid, Some(*mode))?;
            }
            Change::File { .. } | Change::Symlink { .. } => {
                if existing.as_ref().is_some_and(|m| m.is_dir()) {
                    return Err(TxnError::Invalid(format!(
                        "{} is a directory",
                        change.path()
                    )));
                }
                if existing.is_some() {
                    let backup = backups.join(i.to_string());
                    journal.log(&format!(
                        "backup {}\t{}",
                        target.display(),
                        backup.display()
                    ))?;
                    fs::rename(&target, &backup).map_err(io_at(change.path()))?;
                }
                journal.log(&format!("put {}", target.display()))?;
                fs::rename(stage.join(i.to_string()), &target).map_err(io_at(change.path()))?;
            }
        }
    }
    rustix::fs::syncfs(&root_fd).map_err(|e| TxnError::Io {
        path: root.display().to_string(),
        error: e.into(),
    })?;
    journal.log("commit")?;
    drop(journal);
    remove_any(work).map_err(io_at(work.display().to_string()))?;
    Ok(())
}
