//! Checking a commit out into a directory, by hardlinks where the repository allows it.
//!
//! Nothing is ever written outside the destination: every name comes from a validated
//! dirtree (one path component, never `.`/`..`), files are created relative to directory
//! handles opened with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`, and new files are opened
//! with `O_EXCL | O_NOFOLLOW`, so a symlink in the tree (or already in the destination)
//! is never followed while writing.

use std::fs;
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;
use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags};

use crate::object::{Checksum, FileMeta, ObjectType, S_IFLNK, S_IFMT};
use crate::repo::{Entry, Error, IoContext, Repo, RepoMode, Result};
use crate::xattr;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HardlinkMode {
    /// Hardlink when the repository and filesystem allow it, copy otherwise.
    #[default]
    Auto,
    /// Fail rather than copy (ostree `-H`).
    Require,
    /// Always copy.
    Never,
}

#[derive(Clone, Debug, Default)]
pub struct CheckoutOptions {
    /// Ignore ownership and xattrs; strip setuid/setgid (ostree `-U`).
    pub user_mode: bool,
    pub hardlinks: HardlinkMode,
    /// Keep existing directories, replace existing files (ostree `--union`).
    pub union: bool,
    /// Check out only this directory of the commit.
    pub subpath: Option<String>,
    /// Re-hash each content object before using it.
    pub verify: bool,
}

#[derive(Debug, Default)]
pub struct CheckoutStats {
    pub files: u64,
    pub dirs: u64,
    pub hardlinked: u64,
    pub copied: u64,
}

struct PlanDir {
    /// Path relative to the destination, "" for its root.
    rel: String,
    meta: FileMeta,
    files: Vec<(String, Checksum)>,
}

fn io_err(path: &Path) -> impl Fn(rustix::io::Errno) -> Error + '_ {
    move |e| Error::Io {
        path: path.to_owned(),
        error: io::Error::from(e),
    }
}

/// Opens a directory below `root` without following any symlink.
fn open_beneath(root: &OwnedFd, rel: &str, dest: &Path) -> Result<OwnedFd> {
    let path = if rel.is_empty() { "." } else { rel };
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW;
    match rustix::fs::openat2(
        root,
        path,
        flags,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
    ) {
        Err(rustix::io::Errno::NOSYS) => rustix::fs::openat(root, path, flags, Mode::empty()),
        other => other,
    }
    .map_err(io_err(&dest.join(rel)))
}

/// Checks `commit` out into `dest`, which must not exist unless `options.union` is set.
pub fn checkout(
    repo: &Repo,
    commit: &Checksum,
    dest: &Path,
    options: &CheckoutOptions,
) -> Result<CheckoutStats> {
    let subpath = options.subpath.as_deref().unwrap_or("/");
    let (tree, meta) = match repo.lookup_path(commit, subpath)? {
        Entry::Dir { tree, meta } => (tree, meta),
        Entry::File(_) => {
            return Err(Error::Unsupported(format!(
                "subpath {subpath:?} is a file; only directories can be checked out"
            )))
        }
    };
    let mut plan = Vec::new();
    plan_tree(repo, &tree, &meta, String::new(), &mut plan)?;

    match fs::symlink_metadata(dest) {
        Ok(st) if options.union && st.is_dir() => {}
        Ok(_) if options.union => {
            return Err(Error::Invalid(format!(
                "{}: exists and is not a directory",
                dest.display()
            )))
        }
        Ok(_) => {
            return Err(Error::Invalid(format!(
                "{}: destination already exists (use --union to merge into it)",
                dest.display()
            )))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => fs::create_dir(dest).at(dest)?,
        Err(e) => {
            return Err(Error::Io {
                path: dest.to_owned(),
                error: e,
            })
        }
    }
    let root = rustix::fs::open(
        dest,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::empty(),
    )
    .map_err(io_err(dest))?;

    // Pass 1: directories, parents first, writable by us until pass 3.
    for dir in plan.iter().skip(1) {
        let (parent_rel, name) = dir.rel.rsplit_once('/').unwrap_or(("", &dir.rel));
        let parent = open_beneath(&root, parent_rel, dest)?;
        make_dir(&parent, name, options.union, &dest.join(&dir.rel))?;
    }

    let objects_path = repo.path().join("objects");
    let objects = rustix::fs::open(
        &objects_path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(io_err(&objects_path))?;
    let same_fs = rustix::fs::fstat(&objects)
        .map_err(io_err(&objects_path))?
        .st_dev
        == rustix::fs::fstat(&root).map_err(io_err(dest))?.st_dev;
    let can_link = options.hardlinks != HardlinkMode::Never
        && match repo.mode() {
            RepoMode::Bare => !options.user_mode,
            RepoMode::BareUser => options.user_mode,
            RepoMode::BareUserOnly => true,
            RepoMode::Archive => false,
        };
    if options.hardlinks == HardlinkMode::Require && !(can_link && same_fs) {
        return Err(Error::Unsupported(format!(
            "cannot hardlink from a {} repository{} into {}",
            repo.mode().cli_name(),
            if same_fs {
                " in this checkout mode"
            } else {
                " on another filesystem"
            },
            dest.display()
        )));
    }
    let ctx = FileContext {
        repo,
        objects,
        options,
        link: can_link && same_fs,
        hardlinked: AtomicU64::new(0),
        copied: AtomicU64::new(0),
    };

    // Pass 2: files, one directory per task.
    plan.par_iter().try_for_each(|dir| -> Result<()> {
        let dirfd = open_beneath(&root, &dir.rel, dest)?;
        for (name, checksum) in &dir.files {
            ctx.place_file(&dirfd, name, checksum, &dest.join(&dir.rel).join(name))?;
        }
        Ok(())
    })?;

    // Pass 3: directory metadata, children before parents, so read-only modes come last.
    for dir in plan.iter().rev() {
        let path = dest.join(&dir.rel);
        let dirfd = open_beneath(&root, &dir.rel, dest)?;
        if !options.user_mode {
            rustix::fs::fchown(
                &dirfd,
                Some(rustix::fs::Uid::from_raw(dir.meta.uid)),
                Some(rustix::fs::Gid::from_raw(dir.meta.gid)),
            )
            .map_err(io_err(&path))?;
            xattr::set_all_fd(&dirfd, &dir.meta.xattrs).at(&path)?;
        }
        let mask = if options.user_mode { 0o1777 } else { 0o7777 };
        rustix::fs::fchmod(&dirfd, Mode::from_raw_mode(dir.meta.mode & mask))
            .map_err(io_err(&path))?;
        let zero = rustix::fs::Timestamps {
            last_access: rustix::fs::Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            last_modification: rustix::fs::Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
        };
        rustix::fs::futimens(&dirfd, &zero).map_err(io_err(&path))?;
    }
    let files = plan.iter().map(|d| d.files.len() as u64).sum();
    Ok(CheckoutStats {
        files,
        dirs: plan.len() as u64,
        hardlinked: ctx.hardlinked.into_inner(),
        copied: ctx.copied.into_inner(),
    })
}

fn plan_tree(
    repo: &Repo,
    tree: &Checksum,
    meta: &Checksum,
    rel: String,
    out: &mut Vec<PlanDir>,
) -> Result<()> {
    let dirtree = repo.read_dirtree(tree)?;
    let dirmeta = repo.read_dirmeta(meta)?;
    out.push(PlanDir {
        rel: rel.clone(),
        meta: dirmeta,
        files: dirtree.files,
    });
    for (name, t, m) in dirtree.dirs {
        let child = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        plan_tree(repo, &t, &m, child, out)?;
    }
    Ok(())
}

fn make_dir(parent: &OwnedFd, name: &str, union: bool, path: &Path) -> Result<()> {
    match rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o700)) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::EXIST) if union => {
            let st = rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(io_err(path))?;
            if st.st_mode & S_IFMT == 0o040000 {
                rustix::fs::chmodat(
                    parent,
                    name,
                    Mode::from_raw_mode((st.st_mode | 0o700) & 0o7777),
                    AtFlags::empty(),
                )
                .map_err(io_err(path))?;
                return Ok(());
            }
            // A file or symlink where the tree has a directory: replace it, never follow it.
            rustix::fs::unlinkat(parent, name, AtFlags::empty()).map_err(io_err(path))?;
            rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o700)).map_err(io_err(path))
        }
        Err(e) => Err(io_err(path)(e)),
    }
}

struct FileContext<'a> {
    repo: &'a Repo,
    objects: OwnedFd,
    options: &'a CheckoutOptions,
    link: bool,
    hardlinked: AtomicU64,
    copied: AtomicU64,
}

impl FileContext<'_> {
    fn place_file(
        &self,
        dir: &OwnedFd,
        name: &str,
        checksum: &Checksum,
        path: &Path,
    ) -> Result<()> {
        if self.link {
            let is_link_object = match self.repo.mode() {
                RepoMode::Bare => false,
                _ => self.repo.bare_user_mode(checksum)? & S_IFMT == S_IFLNK,
            };
            if !is_link_object {
                if self.options.verify {
                    self.repo.read_content(checksum, true)?;
                }
                let rel = self.repo.object_relpath(checksum, ObjectType::File);
                let mut result =
                    rustix::fs::linkat(&self.objects, rel.as_str(), dir, name, AtFlags::empty());
                if result == Err(rustix::io::Errno::EXIST) && self.options.union {
                    remove_existing(dir, name, path)?;
                    result = rustix::fs::linkat(
                        &self.objects,
                        rel.as_str(),
                        dir,
                        name,
                        AtFlags::empty(),
                    );
                }
                match result {
                    Ok(()) => {
                        self.hardlinked.fetch_add(1, Ordering::Relaxed);
                        return Ok(());
                    }
                    Err(rustix::io::Errno::NOENT) => {
                        return Err(Error::MissingObject {
                            checksum: *checksum,
                            kind: ObjectType::File,
                        });
                    }
                    // Too many links on one inode, or a cross-device link: copy instead.
                    Err(rustix::io::Errno::MLINK | rustix::io::Errno::XDEV)
                        if self.options.hardlinks != HardlinkMode::Require => {}
                    Err(e) => return Err(io_err(path)(e)),
                }
            }
        }
        let content = self
            .repo
            .read_content(checksum, self.options.verify || !self.link)?;
        self.copied.fetch_add(1, Ordering::Relaxed);
        let user = self.options.user_mode;
        if content.is_symlink() {
            let mut result = rustix::fs::symlinkat(content.symlink_target.as_str(), dir, name);
            if result == Err(rustix::io::Errno::EXIST) && self.options.union {
                remove_existing(dir, name, path)?;
                result = rustix::fs::symlinkat(content.symlink_target.as_str(), dir, name);
            }
            result.map_err(io_err(path))?;
            if !user {
                rustix::fs::chownat(
                    dir,
                    name,
                    Some(rustix::fs::Uid::from_raw(content.meta.uid)),
                    Some(rustix::fs::Gid::from_raw(content.meta.gid)),
                    AtFlags::SYMLINK_NOFOLLOW,
                )
                .map_err(io_err(path))?;
            }
            return Ok(());
        }
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let mut result = rustix::fs::openat(dir, name, flags, Mode::from_raw_mode(0o600));
        if matches!(result, Err(rustix::io::Errno::EXIST)) && self.options.union {
            remove_existing(dir, name, path)?;
            result = rustix::fs::openat(dir, name, flags, Mode::from_raw_mode(0o600));
        }
        let fd = result.map_err(io_err(path))?;
        let mut file = fs::File::from(fd);
        file.write_all(&content.data).at(path)?;
        if !user {
            rustix::fs::fchown(
                file.as_fd(),
                Some(rustix::fs::Uid::from_raw(content.meta.uid)),
                Some(rustix::fs::Gid::from_raw(content.meta.gid)),
            )
            .map_err(io_err(path))?;
            xattr::set_all_fd(&file, &content.meta.xattrs).at(path)?;
        }
        let mask = if user { 0o1777 } else { 0o7777 };
        rustix::fs::fchmod(file.as_fd(), Mode::from_raw_mode(content.meta.mode & mask))
            .map_err(io_err(path))?;
        Ok(())
    }
}

fn remove_existing(dir: &OwnedFd, name: &str, path: &Path) -> Result<()> {
    let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).map_err(io_err(path))?;
    if st.st_mode & S_IFMT == 0o040000 {
        return Err(Error::Invalid(format!(
            "{}: is a directory in the destination but a file in the commit",
            path.display()
        )));
    }
    rustix::fs::unlinkat(dir, name, AtFlags::empty()).map_err(io_err(path))
}
