//! The root as the plan sees it: the real tree under an overlay of planned nodes.
//!
//! Reads go through the overlay first, so each step of the plan sees what earlier steps
//! planned; a directory the plan made afresh, or a path it removed, hides the real tree
//! below it. Paths are resolved inside the root as Ignition resolves them (symlinks in
//! the parent followed, `/` meaning the root), through planned and real symlinks alike.
//! [`View::changes`] compares the view with the real root and gives the list of
//! [`Change`]s that `txn` applies.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::plan::{at, PlanError, Result};
use crate::txn::Change;

/// A planned node. `File::contents` is `None` when the content is the one already on
/// disk (only mode or owner change).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    Dir {
        mode: u32,
        uid: u32,
        gid: u32,
        /// Made by the plan: whatever was at the path before is gone.
        fresh: bool,
    },
    File {
        contents: Option<Vec<u8>>,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    Symlink {
        target: String,
        uid: u32,
        gid: u32,
    },
    /// A hard link to the node at `target` (a resolved path).
    HardLink {
        target: String,
    },
    Absent,
}

/// What a path holds in the view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
    Symlink(String),
    Other,
}

#[derive(Clone, Debug)]
pub struct Stat {
    pub kind: Kind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// The identity of the inode: the real (dev, ino), or the planned path that makes it.
    pub(crate) identity: Identity,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Identity {
    Real(u64, u64),
    Planned(String),
}

/// The root as the plan sees it: the real tree under an overlay of planned nodes.
pub struct View {
    root: PathBuf,
    nodes: BTreeMap<String, Node>,
    /// Hard links in the order they were planned (they go last).
    hard_links: Vec<String>,
    /// `lstat` of the real tree, which does not change while a plan is made.
    real_stats: RefCell<HashMap<String, Option<Stat>>>,
}

pub(crate) fn parent_of(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

pub(crate) fn join(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

pub(crate) fn depth(path: &str) -> usize {
    path.split('/').filter(|c| !c.is_empty()).count()
}

/// `filepath.Clean` for the comparisons Ignition makes.
pub(crate) fn clean(path: &str) -> String {
    let absolute = path.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|l| *l != "..") {
                    out.pop();
                } else if !absolute {
                    out.push("..");
                }
            }
            c => out.push(c),
        }
    }
    let body = out.join("/");
    match (absolute, body.is_empty()) {
        (true, _) => format!("/{body}"),
        (false, true) => ".".into(),
        (false, false) => body,
    }
}

impl View {
    pub fn new(root: &Path) -> View {
        View {
            root: root.to_path_buf(),
            nodes: BTreeMap::new(),
            hard_links: Vec::new(),
            real_stats: RefCell::default(),
        }
    }

    fn real(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }

    fn real_stat(&self, path: &str) -> Option<Stat> {
        if let Some(known) = self.real_stats.borrow().get(path) {
            return known.clone();
        }
        let stat = self.lstat(path);
        self.real_stats
            .borrow_mut()
            .insert(path.to_string(), stat.clone());
        stat
    }

    fn lstat(&self, path: &str) -> Option<Stat> {
        let real = self.real(path);
        let m = fs::symlink_metadata(&real).ok()?;
        let kind = if m.file_type().is_symlink() {
            Kind::Symlink(fs::read_link(&real).ok()?.to_string_lossy().into_owned())
        } else if m.is_dir() {
            Kind::Dir
        } else if m.is_file() {
            Kind::File
        } else {
            Kind::Other
        };
        Some(Stat {
            kind,
            mode: m.mode() & 0o7777,
            uid: m.uid(),
            gid: m.gid(),
            identity: Identity::Real(m.dev(), m.ino()),
        })
    }

    /// Whether the real tree below `path`'s ancestors still shows through the overlay.
    fn real_visible(&self, path: &str) -> bool {
        let mut p = path;
        while p != "/" {
            p = parent_of(p);
            match self.nodes.get(p) {
                None | Some(Node::Dir { fresh: false, .. }) => {}
                Some(_) => return false,
            }
        }
        true
    }

    /// The node at a resolved path (not following a final symlink).
    pub fn stat(&self, path: &str) -> Option<Stat> {
        match self.nodes.get(path) {
            Some(Node::Absent) => None,
            Some(Node::Dir { mode, uid, gid, .. }) => Some(Stat {
                kind: Kind::Dir,
                mode: *mode,
                uid: *uid,
                gid: *gid,
                identity: Identity::Planned(path.to_string()),
            }),
            Some(Node::File {
                contents,
                mode,
                uid,
                gid,
            }) => {
                let identity = match contents {
                    None => self.real_stat(path)?.identity,
                    Some(_) => Identity::Planned(path.to_string()),
                };
                Some(Stat {
                    kind: Kind::File,
                    mode: *mode,
                    uid: *uid,
                    gid: *gid,
                    identity,
                })
            }
            Some(Node::Symlink { target, uid, gid }) => Some(Stat {
                kind: Kind::Symlink(target.clone()),
                mode: 0o777,
                uid: *uid,
                gid: *gid,
                identity: Identity::Planned(path.to_string()),
            }),
            Some(Node::HardLink { target }) => self.stat(target),
            None if self.real_visible(path) => self.real_stat(path),
            None => None,
        }
    }

    /// A regular file's content in the view.
    pub fn read(&self, path: &str) -> Result<Option<Vec<u8>>> {
        match self.nodes.get(path) {
            Some(Node::File {
                contents: Some(c), ..
            }) => Ok(Some(c.clone())),
            Some(Node::HardLink { target }) => {
                let target = target.clone();
                self.read(&target)
            }
            Some(Node::File { contents: None, .. }) => self.read_real(path),
            Some(_) => Ok(None),
            None if self.real_visible(path) => self.read_real(path),
            None => Ok(None),
        }
    }

    fn read_real(&self, path: &str) -> Result<Option<Vec<u8>>> {
        let real = self.real(path);
        match fs::symlink_metadata(&real) {
            Ok(m) if m.is_file() => fs::read(&real).map(Some).map_err(|error| PlanError::Io {
                path: path.to_string(),
                error,
            }),
            _ => Ok(None),
        }
    }

    /// The names in a directory of the view.
    pub(crate) fn list(&self, dir: &str) -> Vec<String> {
        let mut names: BTreeSet<String> = BTreeSet::new();
        if self.real_visible(dir)
            && !matches!(
                self.nodes.get(dir),
                Some(Node::Dir { fresh: true, .. }) | Some(Node::Absent)
            )
        {
            if let Ok(entries) = fs::read_dir(self.real(dir)) {
                for e in entries.flatten() {
                    names.insert(e.file_name().to_string_lossy().into_owned());
                }
            }
        }
        let prefix = if dir == "/" {
            "/".to_string()
        } else {
            format!("{dir}/")
        };
        for p in self.nodes.range(prefix.clone()..) {
            let Some(rest) = p.0.strip_prefix(&prefix) else {
                break;
            };
            if !rest.contains('/') {
                names.insert(rest.to_string());
            }
        }
        names
            .into_iter()
            .filter(|n| self.stat(&join(dir, n)).is_some())
            .collect()
    }

    pub fn set(&mut self, path: &str, node: Node) {
        if matches!(node, Node::HardLink { .. }) {
            self.hard_links.retain(|p| p != path);
            self.hard_links.push(path.to_string());
        }
        self.nodes.insert(path.to_string(), node);
    }

    /// `os.RemoveAll`: the path and everything below it leave the view.
    pub fn remove_all(&mut self, path: &str) {
        let prefix = format!("{path}/");
        let below: Vec<String> = self
            .nodes
            .range(prefix.clone()..)
            .take_while(|(p, _)| p.starts_with(&prefix))
            .map(|(p, _)| p.clone())
            .collect();
        for p in below {
            self.nodes.remove(&p);
        }
        self.hard_links
            .retain(|p| p != path && !p.starts_with(&prefix));
        if self.stat(path).is_some() || self.real_stat(path).is_some() {
            self.nodes.insert(path.to_string(), Node::Absent);
        } else {
            self.nodes.remove(path);
        }
    }

    /// `os.MkdirAll(path, mode)` as root: missing directories are made with `mode`.
    pub fn mkdir_all(&mut self, path: &str, mode: u32, uid: u32, gid: u32) -> Result<()> {
        if path == "/" {
            return Ok(());
        }
        match self.stat(path) {
            Some(Stat {
                kind: Kind::Dir, ..
            }) => Ok(()),
            Some(Stat {
                kind: Kind::Symlink(_),
                ..
            }) => {
                // Reached only for a path the plan did not resolve (a symlink made by
                // this very config): MkdirAll follows it; so do we, inside the root.
                let resolved = self.resolve(&join(path, "x"))?;
                self.mkdir_all(parent_of(&resolved), mode, uid, gid)
            }
            Some(_) => Err(at(path, "exists and is not a directory")),
            None => {
                self.mkdir_all(parent_of(path), mode, uid, gid)?;
                self.set(
                    path,
                    Node::Dir {
                        mode,
                        uid,
                        gid,
                        fresh: true,
                    },
                );
                Ok(())
            }
        }
    }

    /// Resolves a config path inside the root: symlinks in the parent followed with `/`
    /// as the root (absolute targets) or from their directory (relative ones), `..` never
    /// above the root, the final name not followed.
    pub fn resolve(&self, path: &str) -> Result<String> {
        if !path.starts_with('/') {
            return Err(at(path, "path is not absolute"));
        }
        let mut pending: Vec<String> = path
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .rev()
            .map(str::to_string)
            .collect();
        let Some(last) = pending.first().cloned() else {
            return Err(at(path, "path names the root"));
        };
        if last == ".." {
            return Err(at(path, "path ends in .."));
        }
        pending.remove(0);
        let mut cur = "/".to_string();
        let mut hops = 0;
        while let Some(comp) = pending.pop() {
            if comp == ".." {
                cur = parent_of(&cur).to_string();
                continue;
            }
            let next = join(&cur, &comp);
            match self.stat(&next).map(|s| s.kind) {
                Some(Kind::Symlink(target)) => {
                    hops += 1;
                    if hops > 40 {
                        return Err(at(path, "too many levels of symbolic links"));
                    }
                    if target.starts_with('/') {
                        cur = "/".into();
                    }
                    for c in target
                        .split('/')
                        .filter(|c| !c.is_empty() && *c != ".")
                        .rev()
                    {
                        pending.push(c.to_string());
                    }
                }
                _ => cur = next,
            }
        }
        Ok(join(&cur, &last))
    }

    /// The changes that turn the real root into the view.
    pub fn changes(&self) -> Vec<Change> {
        self.settled().changes_of()
    }

    /// The same view with each fresh directory that lands on a real directory turned
    /// into "keep the directory, drop what the plan does not remake in it": the same
    /// tree, reached by removing less.
    fn settled(&self) -> View {
        let mut out = View {
            root: self.root.clone(),
            nodes: self.nodes.clone(),
            hard_links: self.hard_links.clone(),
            real_stats: self.real_stats.clone(),
        };
        let fresh: Vec<String> = self
            .nodes
            .iter()
            .filter(|(_, n)| matches!(n, Node::Dir { fresh: true, .. }))
            .map(|(p, _)| p.clone())
            .collect();
        for path in fresh {
            if !out.real_visible(&path)
                || !matches!(
                    out.real_stat(&path),
                    Some(Stat {
                        kind: Kind::Dir,
                        ..
                    })
                )
            {
                continue;
            }
            if let Some(Node::Dir { fresh, .. }) = out.nodes.get_mut(&path) {
                *fresh = false;
            }
            if let Ok(entries) = fs::read_dir(out.real(&path)) {
                for e in entries.flatten() {
                    let child = join(&path, &e.file_name().to_string_lossy());
                    out.nodes.entry(child).or_insert(Node::Absent);
                }
            }
        }
        out
    }

    fn changes_of(&self) -> Vec<Change> {
        let mut out = Vec::new();
        // Removals first: a planned node that cannot sit on what is there now.
        let mut removed: Vec<&str> = Vec::new();
        for (path, node) in &self.nodes {
            if removed.iter().any(|r| path.starts_with(&format!("{r}/"))) {
                continue;
            }
            let Some(real) = self.real_stat(path) else {
                continue;
            };
            let real_dir = real.kind == Kind::Dir;
            let replace = match node {
                Node::Absent => true,
                Node::Dir { fresh, .. } => *fresh || !real_dir,
                _ => real_dir,
            };
            if replace && self.ancestors_real(path) {
                out.push(Change::Remove { path: path.clone() });
                removed.push(path);
            }
        }
        let gone = |path: &str| {
            removed
                .iter()
                .any(|r| path == *r || path.starts_with(&format!("{r}/")))
        };
        for (path, node) in &self.nodes {
            let real = if gone(path) {
                None
            } else {
                self.real_stat(path)
            };
            match node {
                Node::Absent | Node::HardLink { .. } => {}
                Node::Dir { mode, uid, gid, .. } => match real {
                    Some(r) if r.kind == Kind::Dir => {
                        if (r.mode, r.uid, r.gid) != (*mode, *uid, *gid) {
                            out.push(Change::Meta {
                                path: path.clone(),
                                mode: *mode,
                                uid: *uid,
                                gid: *gid,
                            });
                        }
                    }
                    _ => out.push(Change::Dir {
                        path: path.clone(),
                        mode: *mode,
                        uid: *uid,
                        gid: *gid,
                    }),
                },
                Node::File {
                    contents,
                    mode,
                    uid,
                    gid,
                } => {
                    let same_content = match (contents, &real) {
                        (None, _) => true,
                        (Some(c), Some(r)) if r.kind == Kind::File => {
                            fs::read(self.real(path)).is_ok_and(|old| old == *c)
                        }
                        _ => false,
                    };
                    match (&real, contents) {
                        (Some(r), _) if same_content && r.kind == Kind::File => {
                            if (r.mode, r.uid, r.gid) != (*mode, *uid, *gid) {
                                out.push(Change::Meta {
                                    path: path.clone(),
                                    mode: *mode,
                                    uid: *uid,
                                    gid: *gid,
                                });
                            }
                        }
                        (_, Some(c)) => out.push(Change::File {
                            path: path.clone(),
                            contents: c.clone(),
                            mode: *mode,
                            uid: *uid,
                            gid: *gid,
                        }),
                        // Content "as on disk" with nothing on disk cannot happen: a
                        // node without content is only made over an existing file.
                        (_, None) => {}
                    }
                }
                Node::Symlink { target, uid, gid } => {
                    let same = real.as_ref().is_some_and(|r| {
                        r.kind == Kind::Symlink(target.clone()) && (r.uid, r.gid) == (*uid, *gid)
                    });
                    if !same {
                        out.push(Change::Symlink {
                            path: path.clone(),
                            target: target.clone(),
                            uid: *uid,
                            gid: *gid,
                        });
                    }
                }
            }
        }
        for path in &self.hard_links {
            let Some(Node::HardLink { target }) = self.nodes.get(path) else {
                continue;
            };
            let same = !gone(path)
                && matches!(
                    (self.real_stat(path), self.real_stat(target)),
                    (Some(a), Some(b)) if a.identity == b.identity
                )
                && !matches!(
                    self.nodes.get(target),
                    Some(Node::File {
                        contents: Some(_),
                        ..
                    })
                );
            if !same {
                out.push(Change::HardLink {
                    path: path.clone(),
                    target: target.clone(),
                });
            }
        }
        out
    }

    /// Whether every ancestor of `path` is a real directory the plan keeps.
    fn ancestors_real(&self, path: &str) -> bool {
        self.real_visible(path)
    }

    /// Whether the real root has something at `path` (its own lstat, not the overlay's).
    pub fn exists_in_root(&self, path: &str) -> bool {
        self.real_stat(path).is_some()
    }

    /// The planned node at a resolved path, if the plan made one.
    pub fn node(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path)
    }

    /// Paths the plan touches, for the exactly-once record of what was there before.
    pub fn touched(&self) -> impl Iterator<Item = &String> {
        self.nodes.keys()
    }
}
