//! Deleting objects that nothing keeps: not reachable from a ref (to a depth), nor, unless
//! `refs_only`, from any commit outside the refs' histories.

use std::collections::HashSet;
use std::fs;
use std::io;

use crate::object::{Checksum, ObjectType};
use crate::repo::{Error, IoContext, Repo, Result};

#[derive(Clone, Debug, Default)]
pub struct PruneOptions {
    /// Only refs keep objects alive; commits that no ref reaches go too.
    pub refs_only: bool,
    /// How many parents of each ref to keep; `None` keeps the whole history.
    pub depth: Option<u64>,
    /// Also keep every commit at least this recent (seconds since the epoch).
    pub keep_younger_than: Option<u64>,
    pub dry_run: bool,
}

#[derive(Debug, Default)]
pub struct PruneReport {
    pub total: u64,
    pub deleted: Vec<(Checksum, ObjectType)>,
    pub freed_bytes: u64,
}

/// Every loose object in the repository.
pub fn list_objects(repo: &Repo) -> Result<Vec<(Checksum, ObjectType)>> {
    let objects = repo.path().join("objects");
    let mut out = Vec::new();
    for prefix in fs::read_dir(&objects).at(&objects)? {
        let prefix = prefix.at(&objects)?;
        let prefix_name = prefix.file_name().to_string_lossy().into_owned();
        if prefix_name.len() != 2 {
            continue;
        }
        for entry in fs::read_dir(prefix.path()).at(&prefix.path())? {
            let entry = entry.at(&prefix.path())?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some((rest, ext)) = name.split_once('.') else {
                continue;
            };
            let (Ok(checksum), Some(kind)) = (
                format!("{prefix_name}{rest}").parse::<Checksum>(),
                ObjectType::from_extension(ext),
            ) else {
                continue;
            };
            out.push((checksum, kind));
        }
    }
    out.sort();
    Ok(out)
}

pub fn prune(repo: &Repo, options: &PruneOptions) -> Result<PruneReport> {
    let _lock = crate::lock::exclusive(repo)?;
    let all = list_objects(repo)?;
    let mut keep: HashSet<(Checksum, ObjectType)> = HashSet::new();
    let mut history = HashSet::new();
    for (_, head) in repo.list_refs()? {
        let mut next = Some(head);
        let mut depth = 0u64;
        while let Some(c) = next.take() {
            if !repo.has_object(&c, ObjectType::Commit) {
                break;
            }
            history.insert(c);
            let within = options.depth.is_none_or(|d| depth <= d);
            let commit = repo.read_commit(&c)?;
            if within
                || options
                    .keep_younger_than
                    .is_some_and(|t| commit.timestamp >= t)
            {
                mark_commit(repo, &c, &mut keep)?;
            }
            depth += 1;
            next = commit.parent;
        }
    }
    for (c, kind) in &all {
        if *kind != ObjectType::Commit {
            continue;
        }
        let orphan_root = !options.refs_only && !history.contains(c);
        let young = match options.keep_younger_than {
            Some(t) => repo.read_commit(c)?.timestamp >= t,
            None => false,
        };
        if orphan_root || young {
            mark_commit(repo, c, &mut keep)?;
        }
    }
    let mut report = PruneReport {
        total: all.len() as u64,
        ..Default::default()
    };
    for (c, kind) in all {
        if keep.contains(&(c, kind)) {
            continue;
        }
        let path = repo.object_path(&c, kind);
        report.freed_bytes += fs::symlink_metadata(&path).map(|m| m.len()).unwrap_or(0);
        if !options.dry_run {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::Io { path, error: e }),
            }
        }
        report.deleted.push((c, kind));
    }
    if !options.dry_run {
        // Staging directories of transactions that died; none is live while we hold the lock.
        let tmp = repo.path().join("tmp");
        if let Ok(entries) = fs::read_dir(&tmp) {
            for entry in entries.flatten() {
                if entry
                    .file_name()
                    .to_string_lossy()
                    .starts_with("staging-cairn-")
                {
                    let _ = fs::remove_dir_all(entry.path());
                }
            }
        }
    }
    Ok(report)
}

/// Marks a commit, its detached metadata and its whole tree as kept. A corrupt tree
/// object stops the prune: without it we cannot know what it keeps alive.
fn mark_commit(
    repo: &Repo,
    checksum: &Checksum,
    keep: &mut HashSet<(Checksum, ObjectType)>,
) -> Result<()> {
    if !keep.insert((*checksum, ObjectType::Commit)) {
        return Ok(());
    }
    keep.insert((*checksum, ObjectType::CommitMeta));
    let commit = repo.read_commit(checksum)?;
    mark_tree(repo, &commit.root_tree, &commit.root_meta, keep)
}

fn mark_tree(
    repo: &Repo,
    tree: &Checksum,
    meta: &Checksum,
    keep: &mut HashSet<(Checksum, ObjectType)>,
) -> Result<()> {
    keep.insert((*meta, ObjectType::DirMeta));
    if !keep.insert((*tree, ObjectType::DirTree)) {
        return Ok(());
    }
    let dirtree = match repo.read_dirtree(tree) {
        Ok(t) => t,
        Err(Error::MissingObject { .. }) => return Ok(()),
        Err(e) => return Err(e),
    };
    for (_, c) in &dirtree.files {
        keep.insert((*c, ObjectType::File));
    }
    for (_, t, m) in &dirtree.dirs {
        mark_tree(repo, t, m, keep)?;
    }
    Ok(())
}
