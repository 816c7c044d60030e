//! A repository on disk in OSTree's layout: config, loose objects, refs.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::object::{
    self, Checksum, Commit, DirTree, FileMeta, ObjectError, ObjectType, S_IFLNK, S_IFMT, S_IFREG,
};
use crate::xattr;

pub const BARE_USER_XATTR: &[u8] = b"user.ostreemeta";

/// How content objects are stored (ostree `docs/repo.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RepoMode {
    /// `.filez` objects: header plus raw deflate; servable by any web server.
    Archive,
    /// Files as themselves, with real owner, mode and xattrs.
    Bare,
    /// Files owned by the writer; the real metadata in the `user.ostreemeta` xattr.
    BareUser,
    /// Like bare-user, without the xattr (canonical permissions only).
    BareUserOnly,
}

impl RepoMode {
    /// The name `ostree init --mode` takes.
    pub fn cli_name(self) -> &'static str {
        match self {
            RepoMode::Archive => "archive",
            RepoMode::Bare => "bare",
            RepoMode::BareUser => "bare-user",
            RepoMode::BareUserOnly => "bare-user-only",
        }
    }

    /// The name written in `config`.
    pub fn config_name(self) -> &'static str {
        match self {
            RepoMode::Archive => "archive-z2",
            other => other.cli_name(),
        }
    }
}

impl FromStr for RepoMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Ok(match s {
            "archive" | "archive-z2" => RepoMode::Archive,
            "bare" => RepoMode::Bare,
            "bare-user" => RepoMode::BareUser,
            "bare-user-only" => RepoMode::BareUserOnly,
            other => {
                return Err(Error::Unsupported(format!(
                "repository mode {other:?} (expected archive, bare, bare-user or bare-user-only)"
            )))
            }
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no OSTree repository at {path}: {reason}")]
    NotARepo { path: PathBuf, reason: String },
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: io::Error },
    #[error("ref {0:?} not found")]
    RefNotFound(String),
    #[error("invalid ref name {name:?}: {why}")]
    BadRefName { name: String, why: &'static str },
    #[error("object {checksum}.{kind} is missing")]
    MissingObject {
        checksum: Checksum,
        kind: ObjectType,
    },
    #[error("object {checksum}.{kind} is corrupt: {what}")]
    Corrupt {
        checksum: Checksum,
        kind: ObjectType,
        what: String,
    },
    #[error(transparent)]
    Object(#[from] ObjectError),
    #[error("path {path:?} not found in commit {commit}")]
    PathNotFound { path: String, commit: Checksum },
    #[error("fetch {url}: {reason}")]
    Fetch { url: String, reason: String },
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) trait IoContext<T> {
    fn at(self, path: &Path) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: &Path) -> Result<T> {
        self.map_err(|error| Error::Io {
            path: path.to_owned(),
            error,
        })
    }
}

/// The content of a file object, read back from the repository.
#[derive(Debug)]
pub struct Content {
    pub meta: FileMeta,
    pub symlink_target: String,
    pub data: Vec<u8>,
}

impl Content {
    pub fn is_symlink(&self) -> bool {
        self.meta.mode & S_IFMT == S_IFLNK
    }

    pub fn checksum(&self) -> Checksum {
        object::content_checksum(&self.meta, &self.symlink_target, &self.data)
    }
}

/// An open repository.
#[derive(Clone, Debug)]
pub struct Repo {
    path: PathBuf,
    mode: RepoMode,
}

/// Checks a ref name as OSTree does: `/`-separated components, each starting with a
/// letter, digit or `_` and going on with letters, digits, `_`, `-` or `.`.
pub fn validate_ref_name(name: &str) -> Result<()> {
    let bad = |why| {
        Err(Error::BadRefName {
            name: name.to_owned(),
            why,
        })
    };
    if name.is_empty() {
        return bad("empty");
    }
    for component in name.split('/') {
        let Some(first) = component.bytes().next() else {
            return bad("empty path component");
        };
        if !(first.is_ascii_alphanumeric() || first == b'_') {
            return bad("each component must start with a letter, digit or `_`");
        }
        if !component
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
        {
            return bad("only letters, digits, `_`, `-`, `.` and `/` are allowed");
        }
    }
    Ok(())
}

impl Repo {
    /// Creates a repository (ostree `init`). Existing repositories are left as they are.
    pub fn init(path: &Path, mode: RepoMode) -> Result<Repo> {
        for dir in [
            "",
            "objects",
            "refs/heads",
            "refs/remotes",
            "refs/mirrors",
            "state",
            "tmp/cache",
            "extensions",
        ] {
            fs::create_dir_all(path.join(dir)).at(&path.join(dir))?;
        }
        let config = path.join("config");
        if !config.exists() {
            let text = format!("[core]\nrepo_version=1\nmode={}\n", mode.config_name());
            write_file_atomic(&config, text.as_bytes(), true)?;
        }
        Repo::open(path)
    }

    pub fn open(path: &Path) -> Result<Repo> {
        let config_path = path.join("config");
        let text = fs::read_to_string(&config_path).map_err(|e| Error::NotARepo {
            path: path.to_owned(),
            reason: if e.kind() == io::ErrorKind::NotFound {
                "no config file".to_owned()
            } else {
                format!("config: {e}")
            },
        })?;
        let mode = parse_core_mode(&text).map_err(|reason| Error::NotARepo {
            path: path.to_owned(),
            reason,
        })?;
        if !path.join("objects").is_dir() {
            return Err(Error::NotARepo {
                path: path.to_owned(),
                reason: "no objects directory".to_owned(),
            });
        }
        Ok(Repo {
            path: path.to_owned(),
            mode,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn mode(&self) -> RepoMode {
        self.mode
    }

    pub fn is_archive(&self) -> bool {
        self.mode == RepoMode::Archive
    }

    pub fn object_path(&self, checksum: &Checksum, kind: ObjectType) -> PathBuf {
        let (prefix, rest) = checksum.loose_prefix_and_rest();
        self.path
            .join("objects")
            .join(prefix)
            .join(format!("{rest}.{}", kind.extension(self.is_archive())))
    }

    /// The path relative to `objects/`, for `linkat` from a directory handle.
    pub fn object_relpath(&self, checksum: &Checksum, kind: ObjectType) -> String {
        let (prefix, rest) = checksum.loose_prefix_and_rest();
        format!("{prefix}/{rest}.{}", kind.extension(self.is_archive()))
    }

    pub fn has_object(&self, checksum: &Checksum, kind: ObjectType) -> bool {
        fs::symlink_metadata(self.object_path(checksum, kind)).is_ok()
    }

    /// Reads a metadata object and checks that its bytes hash to its name.
    pub fn read_metadata(&self, checksum: &Checksum, kind: ObjectType) -> Result<Vec<u8>> {
        let path = self.object_path(checksum, kind);
        let data = fs::read(&path).map_err(object_io_error(checksum, kind, &path))?;
        if kind != ObjectType::CommitMeta {
            let actual = Checksum::of(&data);
            if actual != *checksum {
                return Err(Error::Corrupt {
                    checksum: *checksum,
                    kind,
                    what: format!("content hashes to {actual}"),
                });
            }
        }
        Ok(data)
    }

    pub fn read_commit(&self, checksum: &Checksum) -> Result<Commit> {
        let data = self.read_metadata(checksum, ObjectType::Commit)?;
        Ok(Commit::parse(checksum, &data)?)
    }

    pub fn read_dirtree(&self, checksum: &Checksum) -> Result<DirTree> {
        let data = self.read_metadata(checksum, ObjectType::DirTree)?;
        Ok(DirTree::parse(checksum, &data)?)
    }

    pub fn read_dirmeta(&self, checksum: &Checksum) -> Result<FileMeta> {
        let data = self.read_metadata(checksum, ObjectType::DirMeta)?;
        Ok(object::parse_dirmeta(checksum, &data)?)
    }

    /// Reads a content object's metadata without its data (cheap for bare modes).
    pub fn read_content_meta(&self, checksum: &Checksum) -> Result<(FileMeta, String, u64)> {
        let path = self.object_path(checksum, ObjectType::File);
        let missing = object_io_error(checksum, ObjectType::File, &path);
        match self.mode {
            RepoMode::Archive => {
                // The header alone says it all: no need to inflate the data.
                let raw = fs::read(&path).map_err(&missing)?;
                let (meta, target, size, _) = split_filez(checksum, &raw)?;
                Ok((meta, target, size))
            }
            RepoMode::BareUser | RepoMode::BareUserOnly => {
                let stat = fs::symlink_metadata(&path).map_err(&missing)?;
                let meta = self.bare_user_meta(checksum, &path, &stat)?;
                if meta.mode & S_IFMT == S_IFLNK {
                    // ostree stores the target followed by a NUL byte.
                    let mut target = fs::read(&path).map_err(&missing)?;
                    if target.last() == Some(&0) {
                        target.pop();
                    }
                    let target = String::from_utf8(target).map_err(|_| Error::Corrupt {
                        checksum: *checksum,
                        kind: ObjectType::File,
                        what: "symlink target is not UTF-8".into(),
                    })?;
                    Ok((meta, target, 0))
                } else {
                    Ok((meta, String::new(), stat.len()))
                }
            }
            RepoMode::Bare => {
                let stat = fs::symlink_metadata(&path).map_err(&missing)?;
                let meta = FileMeta {
                    uid: stat.uid(),
                    gid: stat.gid(),
                    mode: stat.mode(),
                    xattrs: xattr::list_all(&path).at(&path)?,
                };
                if stat.file_type().is_symlink() {
                    let target = fs::read_link(&path).at(&path)?;
                    Ok((meta, target.to_string_lossy().into_owned(), 0))
                } else {
                    Ok((meta, String::new(), stat.len()))
                }
            }
        }
    }

    /// The mode a bare-user content object records, from its xattr alone (one syscall).
    pub fn bare_user_mode(&self, checksum: &Checksum) -> Result<u32> {
        let path = self.object_path(checksum, ObjectType::File);
        if self.mode == RepoMode::BareUserOnly {
            return Ok(fs::symlink_metadata(&path).at(&path)?.mode());
        }
        let raw = match xattr::get(&path, BARE_USER_XATTR) {
            Ok(Some(raw)) => raw,
            Ok(None) => {
                return Err(Error::Corrupt {
                    checksum: *checksum,
                    kind: ObjectType::File,
                    what: "no user.ostreemeta xattr".into(),
                })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::MissingObject {
                    checksum: *checksum,
                    kind: ObjectType::File,
                })
            }
            Err(e) => return Err(Error::Io { path, error: e }),
        };
        Ok(object::parse_bare_user_meta(checksum, &raw)?.mode)
    }

    fn bare_user_meta(
        &self,
        checksum: &Checksum,
        path: &Path,
        stat: &fs::Metadata,
    ) -> Result<FileMeta> {
        if self.mode == RepoMode::BareUserOnly {
            return Ok(FileMeta {
                uid: 0,
                gid: 0,
                mode: stat.mode(),
                xattrs: vec![],
            });
        }
        let raw = xattr::get(path, BARE_USER_XATTR)
            .at(path)?
            .ok_or_else(|| Error::Corrupt {
                checksum: *checksum,
                kind: ObjectType::File,
                what: "no user.ostreemeta xattr".into(),
            })?;
        Ok(object::parse_bare_user_meta(checksum, &raw)?)
    }

    /// Reads a content object in full; with `verify`, refuses it unless it hashes to its name.
    pub fn read_content(&self, checksum: &Checksum, verify: bool) -> Result<Content> {
        let path = self.object_path(checksum, ObjectType::File);
        let corrupt = |what: String| Error::Corrupt {
            checksum: *checksum,
            kind: ObjectType::File,
            what,
        };
        let content = match self.mode {
            RepoMode::Archive => {
                let raw =
                    fs::read(&path).map_err(object_io_error(checksum, ObjectType::File, &path))?;
                decode_filez(checksum, &raw)?
            }
            _ => {
                let (meta, symlink_target, _) = self.read_content_meta(checksum)?;
                let data = if meta.mode & S_IFMT == S_IFREG {
                    fs::read(&path).at(&path)?
                } else {
                    Vec::new()
                };
                Content {
                    meta,
                    symlink_target,
                    data,
                }
            }
        };
        if verify {
            let actual = content.checksum();
            if actual != *checksum {
                return Err(corrupt(format!("content hashes to {actual}")));
            }
        }
        Ok(content)
    }

    fn ref_path(&self, name: &str) -> Result<PathBuf> {
        if let Some((remote, rest)) = name.split_once(':') {
            validate_ref_name(remote)?;
            validate_ref_name(rest)?;
            Ok(self.path.join("refs/remotes").join(remote).join(rest))
        } else {
            validate_ref_name(name)?;
            Ok(self.path.join("refs/heads").join(name))
        }
    }

    /// The commit a ref points to, or `None` when the ref does not exist.
    pub fn read_ref(&self, name: &str) -> Result<Option<Checksum>> {
        let path = self.ref_path(name)?;
        match fs::read_to_string(&path) {
            Ok(text) => Ok(Some(Checksum::from_str(text.trim_end()).map_err(|_| {
                Error::Invalid(format!(
                    "ref {name:?} in {} does not hold a checksum",
                    path.display()
                ))
            })?)),
            Err(e)
                if e.kind() == io::ErrorKind::NotFound
                    || e.kind() == io::ErrorKind::NotADirectory =>
            {
                Ok(None)
            }
            Err(e) => Err(Error::Io { path, error: e }),
        }
    }

    /// Points a ref at a commit: written to a temp file, synced, renamed.
    pub fn write_ref(&self, name: &str, checksum: &Checksum) -> Result<()> {
        let path = self.ref_path(name)?;
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).at(parent)?;
        }
        crate::fault::point("ref");
        write_file_atomic(&path, format!("{checksum}\n").as_bytes(), true)
    }

    pub fn delete_ref(&self, name: &str) -> Result<()> {
        let path = self.ref_path(name)?;
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(Error::RefNotFound(name.to_owned()))
            }
            Err(e) => Err(Error::Io { path, error: e }),
        }
    }

    /// All refs, local ones by name and remote ones as `REMOTE:NAME`, sorted.
    pub fn list_refs(&self) -> Result<Vec<(String, Checksum)>> {
        let mut out = Vec::new();
        self.collect_refs(&self.path.join("refs/heads"), "", &mut out)?;
        let remotes = self.path.join("refs/remotes");
        if let Ok(entries) = fs::read_dir(&remotes) {
            for entry in entries {
                let entry = entry.at(&remotes)?;
                let name = entry.file_name().to_string_lossy().into_owned();
                self.collect_refs(&entry.path(), &format!("{name}:"), &mut out)?;
            }
        }
        out.sort();
        Ok(out)
    }

    fn collect_refs(
        &self,
        dir: &Path,
        prefix: &str,
        out: &mut Vec<(String, Checksum)>,
    ) -> Result<()> {
        let entries = match fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => {
                return Err(Error::Io {
                    path: dir.to_owned(),
                    error: e,
                })
            }
        };
        for entry in entries {
            let entry = entry.at(dir)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if entry.file_type().at(&path)?.is_dir() {
                self.collect_refs(&path, &format!("{prefix}{name}/"), out)?;
            } else {
                let text = fs::read_to_string(&path).at(&path)?;
                let checksum = Checksum::from_str(text.trim_end()).map_err(|_| {
                    Error::Invalid(format!(
                        "ref file {} does not hold a checksum",
                        path.display()
                    ))
                })?;
                out.push((format!("{prefix}{name}"), checksum));
            }
        }
        Ok(())
    }

    /// Resolves a ref name or full checksum, with optional trailing `^` for parents.
    pub fn resolve_rev(&self, rev: &str) -> Result<Checksum> {
        let base = rev.trim_end_matches('^');
        let parents = rev.len() - base.len();
        let mut checksum = if let Ok(c) = Checksum::from_str(base) {
            if !self.has_object(&c, ObjectType::Commit) {
                return Err(Error::MissingObject {
                    checksum: c,
                    kind: ObjectType::Commit,
                });
            }
            c
        } else {
            self.read_ref(base)?
                .ok_or_else(|| Error::RefNotFound(base.to_owned()))?
        };
        for _ in 0..parents {
            checksum = self
                .read_commit(&checksum)?
                .parent
                .ok_or_else(|| Error::Invalid(format!("commit {checksum} has no parent")))?;
        }
        Ok(checksum)
    }

    /// Finds the entry at `path` (absolute, `/`-separated) in a commit's tree.
    pub fn lookup_path(&self, commit: &Checksum, path: &str) -> Result<Entry> {
        let c = self.read_commit(commit)?;
        let mut current = Entry::Dir {
            tree: c.root_tree,
            meta: c.root_meta,
        };
        for component in path.split('/').filter(|s| !s.is_empty() && *s != ".") {
            let Entry::Dir { tree, .. } = current else {
                return Err(Error::PathNotFound {
                    path: path.to_owned(),
                    commit: *commit,
                });
            };
            let dirtree = self.read_dirtree(&tree)?;
            if let Ok(i) = dirtree
                .files
                .binary_search_by(|f| f.0.as_str().cmp(component))
            {
                current = Entry::File(dirtree.files[i].1);
            } else if let Ok(i) = dirtree
                .dirs
                .binary_search_by(|d| d.0.as_str().cmp(component))
            {
                current = Entry::Dir {
                    tree: dirtree.dirs[i].1,
                    meta: dirtree.dirs[i].2,
                };
            } else {
                return Err(Error::PathNotFound {
                    path: path.to_owned(),
                    commit: *commit,
                });
            }
        }
        Ok(current)
    }

    /// The staging area for new objects; renamed into `objects/` when a transaction commits.
    pub(crate) fn new_staging_dir(&self) -> Result<PathBuf> {
        let tmp = self.path.join("tmp");
        fs::create_dir_all(&tmp).at(&tmp)?;
        for attempt in 0..100u32 {
            let name = format!(
                "staging-cairn-{}-{}-{attempt}",
                std::process::id(),
                unique_suffix()
            );
            let dir = tmp.join(name);
            match fs::create_dir(&dir) {
                Ok(()) => return Ok(dir),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(Error::Io {
                        path: dir,
                        error: e,
                    })
                }
            }
        }
        Err(Error::Invalid(
            "could not create a staging directory".into(),
        ))
    }

    /// Flushes everything written to the repository's filesystem.
    pub(crate) fn sync(&self) -> Result<()> {
        let dir = fs::File::open(&self.path).at(&self.path)?;
        rustix::fs::syncfs(&dir)
            .map_err(io::Error::from)
            .at(&self.path)
    }
}

/// An entry of a commit's tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    File(Checksum),
    Dir { tree: Checksum, meta: Checksum },
}

/// Maps an IO error on an object file: not found is a missing object, naming it.
fn object_io_error<'a>(
    checksum: &'a Checksum,
    kind: ObjectType,
    path: &'a Path,
) -> impl Fn(io::Error) -> Error + 'a {
    move |e| match e.kind() {
        io::ErrorKind::NotFound => Error::MissingObject {
            checksum: *checksum,
            kind,
        },
        _ => Error::Io {
            path: path.to_owned(),
            error: e,
        },
    }
}

/// The `[core] mode` of a repository config (bare when unset, as ostree reads it).
fn parse_core_mode(config: &str) -> Result<RepoMode, String> {
    let config = crate::keyfile::KeyFile::parse(config)?;
    RepoMode::from_str(config.get("core", "mode").unwrap_or("bare")).map_err(|e| e.to_string())
}

fn unique_suffix() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Splits a `.filez` object: `u32 BE header size`, 4 zero bytes, header, raw deflate.
fn split_filez<'a>(
    checksum: &Checksum,
    raw: &'a [u8],
) -> Result<(FileMeta, String, u64, &'a [u8])> {
    let corrupt = |what: &str| Error::Corrupt {
        checksum: *checksum,
        kind: ObjectType::File,
        what: what.to_owned(),
    };
    if raw.len() < 8 {
        return Err(corrupt("truncated header"));
    }
    let header_len = u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]) as usize;
    let header = raw
        .get(8..8 + header_len)
        .ok_or_else(|| corrupt("truncated header"))?;
    let (meta, symlink_target, size) = object::parse_archive_header(checksum, header)?;
    Ok((meta, symlink_target, size, &raw[8 + header_len..]))
}

/// Decodes a `.filez` object, inflating its data.
pub fn decode_filez(checksum: &Checksum, raw: &[u8]) -> Result<Content> {
    let corrupt = |what: &str| Error::Corrupt {
        checksum: *checksum,
        kind: ObjectType::File,
        what: what.to_owned(),
    };
    let (meta, symlink_target, size, compressed) = split_filez(checksum, raw)?;
    let data = if meta.mode & S_IFMT == S_IFREG && size > 0 {
        let size = usize::try_from(size).map_err(|_| corrupt("size too large"))?;
        if size
            > compressed
                .len()
                .saturating_mul(1100)
                .saturating_add(1 << 20)
        {
            return Err(corrupt(
                "declared size is impossible for the compressed data",
            ));
        }
        let mut out = vec![0u8; size];
        let mut d = libdeflater::Decompressor::new();
        let n = d
            .deflate_decompress(compressed, &mut out)
            .map_err(|e| corrupt(&format!("deflate data: {e}")))?;
        if n != size {
            return Err(corrupt("decompressed size differs from header"));
        }
        out
    } else {
        Vec::new()
    };
    Ok(Content {
        meta,
        symlink_target,
        data,
    })
}

/// Writes a file atomically: temp file beside it, optional fsync, rename, fsync of the directory.
pub fn write_file_atomic(path: &Path, data: &[u8], durable: bool) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        ".{file_name}.tmp-{}-{}",
        std::process::id(),
        unique_suffix()
    ));
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)?;
        f.write_all(data)?;
        if durable {
            f.sync_all()?;
        }
        fs::rename(&tmp, path)?;
        if durable {
            fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.at(path)
}
