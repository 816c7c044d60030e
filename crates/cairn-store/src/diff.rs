//! Differences between two commits' trees, by path.

use crate::object::Checksum;
use crate::repo::{Repo, Result};

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Change {
    Added(String),
    Modified(String),
    Removed(String),
}

impl Change {
    pub fn path(&self) -> &str {
        match self {
            Change::Added(p) | Change::Modified(p) | Change::Removed(p) => p,
        }
    }

    /// The letter `ostree diff` prints.
    pub fn letter(&self) -> char {
        match self {
            Change::Added(_) => 'A',
            Change::Modified(_) => 'M',
            Change::Removed(_) => 'D',
        }
    }
}

/// Lists what changed from commit `a` to commit `b`; added and removed directories are
/// listed with everything in them.
pub fn diff_commits(repo: &Repo, a: &Checksum, b: &Checksum) -> Result<Vec<Change>> {
    let ca = repo.read_commit(a)?;
    let cb = repo.read_commit(b)?;
    let mut out = Vec::new();
    if ca.root_meta != cb.root_meta {
        out.push(Change::Modified("/".to_owned()));
    }
    diff_trees(repo, Some(&ca.root_tree), Some(&cb.root_tree), "", &mut out)?;
    Ok(out)
}

fn diff_trees(
    repo: &Repo,
    a: Option<&Checksum>,
    b: Option<&Checksum>,
    prefix: &str,
    out: &mut Vec<Change>,
) -> Result<()> {
    if a == b {
        return Ok(());
    }
    let ta = a
        .map(|c| repo.read_dirtree(c))
        .transpose()?
        .unwrap_or_default();
    let tb = b
        .map(|c| repo.read_dirtree(c))
        .transpose()?
        .unwrap_or_default();
    let path = |name: &str| format!("{prefix}/{name}");
    let (mut i, mut j) = (0, 0);
    while i < ta.files.len() || j < tb.files.len() {
        match (ta.files.get(i), tb.files.get(j)) {
            (Some(fa), Some(fb)) if fa.0 == fb.0 => {
                if fa.1 != fb.1 {
                    out.push(Change::Modified(path(&fa.0)));
                }
                i += 1;
                j += 1;
            }
            (Some(fa), Some(fb)) if fa.0 < fb.0 => {
                out.push(Change::Removed(path(&fa.0)));
                i += 1;
            }
            (Some(fa), None) => {
                out.push(Change::Removed(path(&fa.0)));
                i += 1;
            }
            (_, Some(fb)) => {
                out.push(Change::Added(path(&fb.0)));
                j += 1;
            }
            (None, None) => break,
        }
    }
    let (mut i, mut j) = (0, 0);
    while i < ta.dirs.len() || j < tb.dirs.len() {
        match (ta.dirs.get(i), tb.dirs.get(j)) {
            (Some(da), Some(db)) if da.0 == db.0 => {
                if da.2 != db.2 {
                    out.push(Change::Modified(path(&da.0)));
                }
                diff_trees(repo, Some(&da.1), Some(&db.1), &path(&da.0), out)?;
                i += 1;
                j += 1;
            }
            (Some(da), Some(db)) if da.0 < db.0 => {
                out.push(Change::Removed(path(&da.0)));
                diff_trees(repo, Some(&da.1), None, &path(&da.0), out)?;
                i += 1;
            }
            (Some(da), None) => {
                out.push(Change::Removed(path(&da.0)));
                diff_trees(repo, Some(&da.1), None, &path(&da.0), out)?;
                i += 1;
            }
            (_, Some(db)) => {
                out.push(Change::Added(path(&db.0)));
                diff_trees(repo, None, Some(&db.1), &path(&db.0), out)?;
                j += 1;
            }
            (None, None) => break,
        }
    }
    Ok(())
}
