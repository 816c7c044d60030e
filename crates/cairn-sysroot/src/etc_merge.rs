//! The `/etc` three-way merge: the machine's changes to the old defaults, carried onto
//! the new defaults.
//!
//! Inputs are the old deployment's `/usr/etc` (its defaults) and `/etc` (the machine's),
//! and the new deployment's `/usr/etc`. The result starts as a copy of the new defaults;
//! then every path the admin changed relative to the old defaults is applied on top:
//!
//! | admin did (old `/etc` vs old `/usr/etc`) | result, whatever the new default did          |
//! |------------------------------------------|-----------------------------------------------|
//! | nothing                                  | the new default (changed, added or removed)   |
//! | modified a file or symlink               | the admin's version                           |
//! | added a file, symlink or directory       | the admin's version (whole directory)         |
//! | deleted a file, symlink or directory     | absent                                        |
//! | changed a directory's mode/owner/xattrs  | the admin's metadata, contents merged per path |
//! | replaced one type by another             | the admin's version                           |
//!
//! "Modified" compares type, mode, owner, group, xattrs and content (or link target).
//! Copies keep mode, owner, group and xattrs. Nothing is ever written through a symlink:
//! every directory on the way is checked with `lstat`.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use cairn_store::xattr;

use crate::error::{Error, IoContext, Result};

#[derive(Debug, Default, PartialEq, Eq)]
pub struct MergeReport {
    pub modified: Vec<String>,
    pub added: Vec<String>,
    pub removed: Vec<String>,
}

#[derive(Debug, PartialEq, Eq)]
enum Change {
    /// The whole entry from the machine's `/etc`.
    Replace,
    /// A directory whose own metadata changed; its contents are compared separately.
    DirMeta,
    Remove,
}

fn lstat(path: &Path) -> Result<Option<fs::Metadata>> {
    match fs::symlink_metadata(path) {
        Ok(m) => Ok(Some(m)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::Io {
            path: path.to_owned(),
            error: e,
        }),
    }
}

fn same_meta(a: &Path, am: &fs::Metadata, b: &Path, bm: &fs::Metadata) -> Result<bool> {
    if am.mode() != bm.mode() || am.uid() != bm.uid() || am.gid() != bm.gid() {
        return Ok(false);
    }
    Ok(xattr::list_all(a).at(a)? == xattr::list_all(b).at(b)?)
}

fn same_content(a: &Path, am: &fs::Metadata, b: &Path, bm: &fs::Metadata) -> Result<bool> {
    let (at, bt) = (am.file_type(), bm.file_type());
    if at.is_symlink() && bt.is_symlink() {
        return Ok(fs::read_link(a).at(a)? == fs::read_link(b).at(b)?);
    }
    if at.is_file() && bt.is_file() {
        return Ok(am.len() == bm.len() && fs::read(a).at(a)? == fs::read(b).at(b)?);
    }
    // Devices, fifos: equal if the same kind and device number.
    Ok(am.mode() & 0o170000 == bm.mode() & 0o170000 && am.rdev() == bm.rdev())
}

fn names(dir: &Path) -> Result<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    for entry in fs::read_dir(dir).at(dir)? {
        out.insert(entry.at(dir)?.file_name().to_string_lossy().into_owned());
    }
    Ok(out)
}

/// Collects the admin's changes below `rel` (relative path, "" for the top).
fn diff(defaults: &Path, machine: &Path, rel: &str, out: &mut Vec<(String, Change)>) -> Result<()> {
    let (d_dir, m_dir) = (defaults.join(rel), machine.join(rel));
    let d_names = names(&d_dir)?;
    let m_names = names(&m_dir)?;
    for name in d_names.union(&m_names) {
        let child = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        let (dp, mp) = (defaults.join(&child), machine.join(&child));
        match (lstat(&dp)?, lstat(&mp)?) {
            (Some(_), None) => out.push((child, Change::Remove)),
            (None, Some(_)) => out.push((child, Change::Replace)),
            (Some(dm), Some(mm)) => {
                if dm.is_dir() && mm.is_dir() {
                    if !same_meta(&dp, &dm, &mp, &mm)? {
                        out.push((child.clone(), Change::DirMeta));
                    }
                    diff(defaults, machine, &child, out)?;
                } else if dm.file_type() != mm.file_type()
                    || !same_meta(&dp, &dm, &mp, &mm)?
                    || !same_content(&dp, &dm, &mp, &mm)?
                {
                    out.push((child, Change::Replace));
                }
            }
            (None, None) => {}
        }
    }
    Ok(())
}

fn apply_meta(
    path: &Path,
    meta: &fs::Metadata,
    xattrs: &cairn_store::object::Xattrs,
) -> Result<()> {
    std::os::unix::fs::lchown(path, Some(meta.uid()), Some(meta.gid())).at(path)?;
    if !meta.file_type().is_symlink() {
        fs::set_permissions(path, fs::Permissions::from_mode(meta.mode() & 0o7777)).at(path)?;
    }
    let current = xattr::list_all(path).at(path)?;
    for (name, _) in &current {
        if !xattrs.iter().any(|(n, _)| n == name) {
            rustix::fs::lremovexattr(path, std::ffi::OsStr::from_bytes_ext(name))
                .map_err(io::Error::from)
                .at(path)?;
        }
    }
    xattr::set_all_path(path, xattrs).at(path)
}

trait FromBytesExt {
    fn from_bytes_ext(b: &[u8]) -> &std::ffi::OsStr;
}

impl FromBytesExt for std::ffi::OsStr {
    fn from_bytes_ext(b: &[u8]) -> &std::ffi::OsStr {
        std::os::unix::ffi::OsStrExt::from_bytes(b)
    }
}

/// Copies `src` (file, symlink, directory tree) to `dst`, which must not exist, keeping
/// mode, owner, group and xattrs. Symlinks are copied, never followed.
pub fn copy_entry(src: &Path, dst: &Path) -> Result<()> {
    let meta = fs::symlink_metadata(src).at(src)?;
    let xattrs = xattr::list_all(src).at(src)?;
    let kind = meta.file_type();
    cairn_store::fault::io_point("sysroot").at(dst)?;
    if kind.is_symlink() {
        std::os::unix::fs::symlink(fs::read_link(src).at(src)?, dst).at(dst)?;
    } else if kind.is_dir() {
        fs::create_dir(dst).at(dst)?;
        for name in names(src)? {
            copy_entry(&src.join(&name), &dst.join(&name))?;
        }
    } else if kind.is_file() {
        let data = fs::read(src).at(src)?;
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(dst)
            .at(dst)?;
        f.write_all(&data).at(dst)?;
    } else {
        tracing::warn!("{}: special file not copied", src.display());
        return Ok(());
    }
    apply_meta(dst, &meta, &xattrs)
}

fn remove_entry(path: &Path) -> Result<()> {
    match lstat(path)? {
        None => Ok(()),
        Some(m) if m.is_dir() => fs::remove_dir_all(path).at(path),
        Some(_) => fs::remove_file(path).at(path),
    }
}

/// Makes every ancestor of `rel` below `top` a real directory, taking the admin's
/// version of a directory where the new defaults have none (or have a symlink or file).
fn ensure_parents(top: &Path, machine: &Path, rel: &str) -> Result<()> {
    let components: Vec<&str> = rel.split('/').collect();
    let mut path = top.to_path_buf();
    let mut source = machine.to_path_buf();
    for name in &components[..components.len().saturating_sub(1)] {
        path.push(name);
        source.push(name);
        match lstat(&path)? {
            Some(m) if m.is_dir() => {}
            existing => {
                if existing.is_some() {
                    remove_entry(&path)?;
                }
                let meta = fs::symlink_metadata(&source).at(&source)?;
                fs::create_dir(&path).at(&path)?;
                apply_meta(&path, &meta, &xattr::list_all(&source).at(&source)?)?;
            }
        }
    }
    Ok(())
}

/// Writes the merged `/etc` into `new_etc` (which must not exist).
pub fn merge(
    old_defaults: &Path,
    old_etc: &Path,
    new_defaults: &Path,
    new_etc: &Path,
) -> Result<MergeReport> {
    if new_defaults.is_dir() {
        copy_entry(new_defaults, new_etc)?;
    } else {
        fs::create_dir(new_etc).at(new_etc)?;
    }
    let mut report = MergeReport::default();
    if !old_etc.is_dir() {
        return Ok(report);
    }
    let mut changes = Vec::new();
    if old_defaults.is_dir() {
        diff(old_defaults, old_etc, "", &mut changes)?;
    } else {
        // No old defaults: everything in the machine's /etc is the admin's.
        for name in names(old_etc)? {
            changes.push((name, Change::Replace));
        }
    }
    changes.sort_by(|a, b| a.0.cmp(&b.0));
    for (rel, change) in changes {
        let target = new_etc.join(&rel);
        let source = old_etc.join(&rel);
        match change {
            Change::Remove => {
                if parents_are_dirs(new_etc, &rel)? && lstat(&target)?.is_some() {
                    cairn_store::fault::io_point("sysroot").at(&target)?;
                    remove_entry(&target)?;
                }
                report.removed.push(rel);
            }
            Change::Replace => {
                ensure_parents(new_etc, old_etc, &rel)?;
                let existed = lstat(&old_defaults.join(&rel))?.is_some();
                remove_entry(&target)?;
                copy_entry(&source, &target)?;
                if existed {
                    report.modified.push(rel);
                } else {
                    report.added.push(rel);
                }
            }
            Change::DirMeta => {
                ensure_parents(new_etc, old_etc, &rel)?;
                let meta = fs::symlink_metadata(&source).at(&source)?;
                match lstat(&target)? {
                    Some(m) if m.is_dir() => {}
                    existing => {
                        if existing.is_some() {
                            remove_entry(&target)?;
                        }
                        fs::create_dir(&target).at(&target)?;
                    }
                }
                apply_meta(&target, &meta, &xattr::list_all(&source).at(&source)?)?;
                report.modified.push(rel);
            }
        }
    }
    Ok(report)
}

/// Whether every ancestor of `rel` below `top` is a real directory (not a symlink).
fn parents_are_dirs(top: &Path, rel: &str) -> Result<bool> {
    let mut path = top.to_path_buf();
    let components: Vec<&str> = rel.split('/').collect();
    for name in &components[..components.len().saturating_sub(1)] {
        path.push(name);
        match lstat(&path)? {
            Some(m) if m.is_dir() => {}
            _ => return Ok(false),
        }
    }
    Ok(true)
}
