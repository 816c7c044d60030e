//! Extended attributes, read without following symlinks.

use std::io;
use std::os::fd::AsFd;
use std::path::Path;

use crate::object::Xattrs;

/// All xattrs of `path` (not following a final symlink), sorted by name.
pub fn list_all(path: &Path) -> io::Result<Xattrs> {
    let mut names = vec![0u8; 1024];
    let len = loop {
        match rustix::fs::llistxattr(path, &mut names[..]) {
            Ok(n) => break n,
            Err(rustix::io::Errno::RANGE) => {
                let need = rustix::fs::llistxattr_query(path)?;
                names.resize(need.max(names.len() * 2), 0);
            }
            Err(rustix::io::Errno::NOTSUP) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        }
    };
    let mut out = Vec::new();
    for name in names[..len].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        if let Some(value) = get(path, name)? {
            out.push((name.to_vec(), value));
        }
    }
    out.sort();
    Ok(out)
}

/// One xattr of `path`, or `None` when it is not set.
pub fn get(path: &Path, name: &[u8]) -> io::Result<Option<Vec<u8>>> {
    let name = std::ffi::OsStr::from_bytes_ext(name);
    let mut value = vec![0u8; 256];
    loop {
        match rustix::fs::lgetxattr(path, name, &mut value[..]) {
            Ok(n) => {
                value.truncate(n);
                return Ok(Some(value));
            }
            Err(rustix::io::Errno::RANGE) => {
                let need = rustix::fs::lgetxattr_query(path, name)?;
                value.resize(need.max(value.len() * 2), 0);
            }
            Err(rustix::io::Errno::NODATA) | Err(rustix::io::Errno::NOTSUP) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Sets every xattr on an open file.
pub fn set_all_fd<Fd: AsFd>(fd: Fd, xattrs: &Xattrs) -> io::Result<()> {
    for (name, value) in xattrs {
        rustix::fs::fsetxattr(
            &fd,
            std::ffi::OsStr::from_bytes_ext(name),
            value,
            rustix::fs::XattrFlags::empty(),
        )?;
    }
    Ok(())
}

/// Sets every xattr on a path without following a final symlink.
pub fn set_all_path(path: &Path, xattrs: &Xattrs) -> io::Result<()> {
    for (name, value) in xattrs {
        rustix::fs::lsetxattr(
            path,
            std::ffi::OsStr::from_bytes_ext(name),
            value,
            rustix::fs::XattrFlags::empty(),
        )?;
    }
    Ok(())
}

trait FromBytesExt {
    fn from_bytes_ext(b: &[u8]) -> &std::ffi::OsStr;
}

impl FromBytesExt for std::ffi::OsStr {
    fn from_bytes_ext(b: &[u8]) -> &std::ffi::OsStr {
        std::os::unix::ffi::OsStrExt::from_bytes(b)
    }
}
