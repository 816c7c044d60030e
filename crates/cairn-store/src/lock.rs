//! The repository lock: writers share it, prune takes it alone (as ostree's `.lock`).

use std::fs;
use std::io;

use crate::repo::{IoContext, Repo, Result};

fn open(repo: &Repo) -> Result<fs::File> {
    let path = repo.path().join(".lock");
    fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .at(&path)
}

/// Held while objects are written; many writers may hold it at once.
pub(crate) fn shared(repo: &Repo) -> Result<fs::File> {
    let f = open(repo)?;
    rustix::fs::flock(&f, rustix::fs::FlockOperation::LockShared)
        .map_err(io::Error::from)
        .at(&repo.path().join(".lock"))?;
    Ok(f)
}

/// Held while objects are deleted, so that no writer dedups against an object being removed.
pub(crate) fn exclusive(repo: &Repo) -> Result<fs::File> {
    let f = open(repo)?;
    rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive)
        .map_err(io::Error::from)
        .at(&repo.path().join(".lock"))?;
    Ok(f)
}
