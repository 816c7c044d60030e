//! Verifying a repository: every object reachable from a ref is present, hashes to its
//! name and parses; names in trees are safe. Every problem is reported with its object.

use std::collections::HashSet;

use rayon::prelude::*;

use crate::object::{self, Checksum, DirTree, ObjectType};
use crate::repo::{Error, Repo, Result};

#[derive(Debug, Default)]
pub struct FsckReport {
    pub refs: u64,
    pub commits: u64,
    pub dirtrees: u64,
    pub dirmetas: u64,
    pub files: u64,
    /// Commits whose trees are incomplete on purpose (interrupted or metadata-only pulls).
    pub partial: Vec<Checksum>,
    /// One line per corrupt or missing object, naming it.
    pub problems: Vec<String>,
}

/// Checks everything reachable from every ref (local and remote), following parents
/// while they are present (a missing parent is a shallow history, not an error).
pub fn fsck(repo: &Repo) -> Result<FsckReport> {
    let mut report = FsckReport::default();
    let refs = repo.list_refs()?;
    report.refs = refs.len() as u64;
    let mut seen_commits = HashSet::new();
    let mut seen_trees = HashSet::new();
    let mut seen_metas = HashSet::new();
    let mut contents = HashSet::new();
    for (name, head) in refs {
        let mut next = Some(head);
        let mut first = true;
        while let Some(checksum) = next.take() {
            if !seen_commits.insert(checksum) {
                break;
            }
            if !first && !repo.has_object(&checksum, ObjectType::Commit) {
                break;
            }
            first = false;
            report.commits += 1;
            let commit = match repo.read_commit(&checksum) {
                Ok(c) => c,
                Err(e) => {
                    report
                        .problems
                        .push(format!("{e} (reached from ref {name})"));
                    break;
                }
            };
            if repo.is_commit_partial(&checksum) {
                report.partial.push(checksum);
                next = commit.parent;
                continue;
            }
            walk_tree(
                repo,
                &commit.root_tree,
                &commit.root_meta,
                &mut seen_trees,
                &mut seen_metas,
                &mut contents,
                &mut report,
            );
            next = commit.parent;
        }
    }
    report.files = contents.len() as u64;
    let contents: Vec<Checksum> = contents.into_iter().collect();
    let mut problems: Vec<String> = contents
        .par_iter()
        .filter_map(|c| repo.read_content(c, true).err().map(|e| e.to_string()))
        .collect();
    problems.sort();
    report.problems.extend(problems);
    Ok(report)
}

fn walk_tree(
    repo: &Repo,
    tree: &Checksum,
    meta: &Checksum,
    seen_trees: &mut HashSet<Checksum>,
    seen_metas: &mut HashSet<Checksum>,
    contents: &mut HashSet<Checksum>,
    report: &mut FsckReport,
) {
    if seen_metas.insert(*meta) {
        report.dirmetas += 1;
        match repo.read_metadata(meta, ObjectType::DirMeta) {
            Ok(data) => match object::parse_dirmeta(meta, &data) {
                Ok(m) if object::dirmeta_bytes(&m) != data => {
                    report.problems.push(format!(
                        "object {meta}.dirmeta is corrupt: not in GVariant normal form"
                    ));
                }
                Ok(_) => {}
                Err(e) => report.problems.push(e.to_string()),
            },
            Err(e) => report.problems.push(e.to_string()),
        }
    }
    if !seen_trees.insert(*tree) {
        return;
    }
    report.dirtrees += 1;
    let dirtree = match repo
        .read_metadata(tree, ObjectType::DirTree)
        .and_then(|data| {
            let parsed = DirTree::parse(tree, &data)?;
            if parsed.to_bytes() != data {
                return Err(Error::Corrupt {
                    checksum: *tree,
                    kind: ObjectType::DirTree,
                    what: "not in GVariant normal form".into(),
                });
            }
            Ok(parsed)
        }) {
        Ok(t) => t,
        Err(e) => {
            report.problems.push(e.to_string());
            return;
        }
    };
    for (_, c) in &dirtree.files {
        contents.insert(*c);
    }
    for (_, t, m) in &dirtree.dirs {
        walk_tree(repo, t, m, seen_trees, seen_metas, contents, report);
    }
}
