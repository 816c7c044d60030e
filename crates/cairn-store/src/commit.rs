//! Committing a directory: scan, hash, write new objects through a staging area, move the ref.
//!
//! The order of writes is what makes a crash harmless: objects are written into
//! `tmp/staging-…/`, flushed with `syncfs`, renamed into `objects/`, flushed again, and
//! only then does the ref move (temp file, fsync, rename). A crash at any point leaves
//! the ref at the old commit, or at the new one with every object present.
//!
//! Speed comes from three things: files are hashed and compressed on every core;
//! only objects the repository lacks are compressed and written; and a cache keyed by
//! (device, inode) with size, mtime and ctime remembers the checksum of every file of
//! the last commit, so that an unchanged file is neither read nor hashed again.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rayon::prelude::*;

use crate::gvariant::{Type, Value};
use crate::object::{
    self, Checksum, Commit, DirTree, FileMeta, ObjectType, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG,
};
use crate::repo::{Error, IoContext, Repo, RepoMode, Result, BARE_USER_XATTR};
use crate::{fault, xattr};

/// What to record in a new commit.
#[derive(Clone, Debug, Default)]
pub struct CommitOptions {
    /// The branch to move; its current commit becomes the parent.
    pub branch: Option<String>,
    pub subject: String,
    pub body: String,
    /// Extra commit metadata, such as `version`.
    pub metadata: Vec<(String, Value)>,
    /// Seconds since the epoch; now when unset.
    pub timestamp: Option<u64>,
    /// Record no parent even when the branch exists.
    pub orphan: bool,
    /// Leave out `ostree.ref-binding` (ostree `--no-bindings`).
    pub no_bindings: bool,
    /// uid/gid 0 and modes reduced to 0755/0644 (ostree `--canonical-permissions`).
    pub canonical_permissions: bool,
    /// Skip the (device, inode) cache and hash every file.
    pub no_cache: bool,
    /// Deflate level for archive repositories (1–12, libdeflate's scale).
    pub compression_level: Option<i32>,
}

/// What a commit did, for people and benchmarks.
#[derive(Clone, Debug, Default)]
pub struct CommitStats {
    pub files: u64,
    pub dirs: u64,
    pub new_objects: u64,
    pub cache_hits: u64,
    pub bytes_read: u64,
}

struct ScannedFile {
    name: String,
    path: PathBuf,
    meta: FileMeta,
    symlink_target: String,
    stamp: FileStamp,
    checksum: Option<Checksum>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

struct ScannedDir {
    meta: FileMeta,
    files: Vec<ScannedFile>,
    dirs: Vec<(String, ScannedDir)>,
}

/// A set of objects being written, not yet visible in `objects/`.
pub(crate) struct Transaction {
    repo: Repo,
    staging: PathBuf,
    staged: Mutex<HashSet<(Checksum, ObjectType)>>,
    /// Writers hold it shared from claim to the last byte; `flush` holds it alone, so it
    /// never renames a file that is still being written.
    gate: std::sync::RwLock<()>,
    _lock: fs::File,
}

impl Transaction {
    pub(crate) fn begin(repo: &Repo) -> Result<Self> {
        let lock = crate::lock::shared(repo)?;
        let staging = repo.new_staging_dir()?;
        for i in 0..=255u8 {
            let dir = staging.join(format!("{i:02x}"));
            fs::create_dir(&dir).at(&dir)?;
        }
        Ok(Transaction {
            repo: repo.clone(),
            staging,
            staged: Mutex::new(HashSet::new()),
            gate: std::sync::RwLock::new(()),
            _lock: lock,
        })
    }

    fn staging_path(&self, checksum: &Checksum, kind: ObjectType) -> PathBuf {
        let (prefix, rest) = checksum.loose_prefix_and_rest();
        self.staging
            .join(prefix)
            .join(format!("{rest}.{}", kind.extension(self.repo.is_archive())))
    }

    /// Claims an object for writing; false when the repo has it or another thread writes it.
    fn claim(&self, checksum: &Checksum, kind: ObjectType) -> bool {
        if self.repo.has_object(checksum, kind) {
            return false;
        }
        self.staged
            .lock()
            .expect("staging set poisoned")
            .insert((*checksum, kind))
    }

    /// Writes a metadata object if the repository lacks it; returns its checksum.
    pub(crate) fn write_metadata(&self, kind: ObjectType, data: &[u8]) -> Result<Checksum> {
        let _gate = self.gate.read().expect("staging gate poisoned");
        let checksum = Checksum::of(data);
        if self.claim(&checksum, kind) {
            let path = self.staging_path(&checksum, kind);
            fs::write(&path, data).at(&path)?;
            fault::point(if kind == ObjectType::Commit {
                "commit"
            } else {
                "object"
            });
        }
        Ok(checksum)
    }

    /// Writes a content object if the repository lacks it; returns whether it was new.
    pub(crate) fn write_content(
        &self,
        checksum: &Checksum,
        meta: &FileMeta,
        symlink_target: &str,
        data: &[u8],
        level: i32,
    ) -> Result<bool> {
        let _gate = self.gate.read().expect("staging gate poisoned");
        if !self.claim(checksum, ObjectType::File) {
            return Ok(false);
        }
        let path = self.staging_path(checksum, ObjectType::File);
        match self.repo.mode() {
            RepoMode::Archive => {
                let size = if meta.mode & S_IFMT == S_IFREG {
                    data.len() as u64
                } else {
                    0
                };
                let header = object::archive_header_bytes(meta, symlink_target, size);
                let mut out = Vec::with_capacity(8 + header.len() + data.len() / 2 + 64);
                out.extend_from_slice(&(header.len() as u32).to_be_bytes());
                out.extend_from_slice(&[0u8; 4]);
                out.extend_from_slice(&header);
                if meta.mode & S_IFMT == S_IFREG {
                    deflate_into(data, level, &mut out);
                }
                fs::write(&path, &out).at(&path)?;
            }
            RepoMode::BareUser | RepoMode::BareUserOnly => {
                let is_link = meta.mode & S_IFMT == S_IFLNK;
                let disk_mode = if is_link {
                    0o644
                } else {
                    (meta.mode & 0o775) | 0o400
                };
                let mut f = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(disk_mode)
                    .open(&path)
                    .at(&path)?;
                if is_link {
                    // The target and a NUL byte, byte for byte as ostree writes it.
                    let mut target = symlink_target.as_bytes().to_vec();
                    target.push(0);
                    f.write_all(&target).at(&path)?;
                } else {
                    f.write_all(data).at(&path)?;
                }
                rustix::fs::fchmod(&f, rustix::fs::Mode::from_raw_mode(disk_mode))
                    .map_err(io::Error::from)
                    .at(&path)?;
                if self.repo.mode() == RepoMode::BareUser {
                    let value = object::bare_user_meta_bytes(meta);
                    xattr::set_all_fd(&f, &vec![(BARE_USER_XATTR.to_vec(), value)]).at(&path)?;
                }
                set_epoch_mtime(&f, &path)?;
            }
            RepoMode::Bare => {
                if meta.mode & S_IFMT == S_IFLNK {
                    std::os::unix::fs::symlink(symlink_target, &path).at(&path)?;
                    std::os::unix::fs::lchown(&path, Some(meta.uid), Some(meta.gid)).at(&path)?;
                    xattr::set_all_path(&path, &meta.xattrs).at(&path)?;
                } else {
                    let mut f = fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .mode(0o600)
                        .open(&path)
                        .at(&path)?;
                    f.write_all(data).at(&path)?;
                    rustix::fs::fchown(
                        &f,
                        Some(rustix::fs::Uid::from_raw(meta.uid)),
                        Some(rustix::fs::Gid::from_raw(meta.gid)),
                    )
                    .map_err(io::Error::from)
                    .at(&path)?;
                    rustix::fs::fchmod(&f, rustix::fs::Mode::from_raw_mode(meta.mode & 0o7777))
                        .map_err(io::Error::from)
                        .at(&path)?;
                    xattr::set_all_fd(&f, &meta.xattrs).at(&path)?;
                    set_epoch_mtime(&f, &path)?;
                }
            }
        }
        fault::point("object");
        Ok(true)
    }

    pub(crate) fn staged_count(&self) -> u64 {
        self.staged.lock().expect("staging set poisoned").len() as u64
    }

    /// Writes an archive content object exactly as received (the caller has verified it).
    pub(crate) fn write_raw_content(&self, checksum: &Checksum, raw: &[u8]) -> Result<bool> {
        let _gate = self.gate.read().expect("staging gate poisoned");
        if !self.claim(checksum, ObjectType::File) {
            return Ok(false);
        }
        let path = self.staging_path(checksum, ObjectType::File);
        fs::write(&path, raw).at(&path)?;
        fault::point("object");
        Ok(true)
    }

    /// Writes detached metadata for a commit (not content-addressed: replaced if present).
    pub(crate) fn write_commitmeta(&self, commit: &Checksum, data: &[u8]) -> Result<()> {
        let _gate = self.gate.read().expect("staging gate poisoned");
        self.staged
            .lock()
            .expect("staging set poisoned")
            .insert((*commit, ObjectType::CommitMeta));
        let path = self.staging_path(commit, ObjectType::CommitMeta);
        fs::write(&path, data).at(&path)
    }

    /// Makes the objects staged so far durable and visible: sync, rename into `objects/`
    /// (content first, commits last), sync. The transaction stays usable.
    pub(crate) fn flush(&self) -> Result<()> {
        let _gate = self.gate.write().expect("staging gate poisoned");
        let mut staged: Vec<(Checksum, ObjectType)> = self
            .staged
            .lock()
            .expect("staging set poisoned")
            .drain()
            .collect();
        if staged.is_empty() {
            return Ok(());
        }
        self.repo.sync()?;
        // Content and trees before the commit that names them: `ostree fsck` checks every
        // commit object present, so a commit must never be visible before its tree.
        staged.sort_by_key(|(_, kind)| match kind {
            ObjectType::File => 0,
            ObjectType::DirMeta => 1,
            ObjectType::DirTree => 2,
            ObjectType::Commit => 3,
            ObjectType::CommitMeta => 4,
        });
        let objects = self.repo.path().join("objects");
        let mut made_dirs = HashSet::new();
        for (checksum, kind) in &staged {
            let (prefix, _) = checksum.loose_prefix_and_rest();
            if made_dirs.insert(prefix.clone()) {
                let dir = objects.join(&prefix);
                match fs::create_dir(&dir) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(e) => {
                        return Err(Error::Io {
                            path: dir,
                            error: e,
                        })
                    }
                }
            }
            let from = self.staging_path(checksum, *kind);
            let to = self.repo.object_path(checksum, *kind);
            fs::rename(&from, &to).at(&to)?;
            fault::point("publish");
        }
        self.repo.sync()
    }

    /// Publishes everything staged; the staging area goes when the transaction is dropped.
    pub(crate) fn publish(&self) -> Result<()> {
        self.flush()
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        // An abandoned transaction leaves nothing behind in `objects/`.
        let _ = fs::remove_dir_all(&self.staging);
    }
}

/// Bare objects carry mtime 0, as ostree's do, so that hardlinked checkouts are reproducible.
fn set_epoch_mtime(f: &fs::File, path: &Path) -> Result<()> {
    let zero = rustix::fs::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    rustix::fs::futimens(
        f,
        &rustix::fs::Timestamps {
            last_access: zero,
            last_modification: zero,
        },
    )
    .map_err(io::Error::from)
    .at(path)
}

thread_local! {
    static COMPRESSOR: std::cell::RefCell<Option<(i32, libdeflater::Compressor)>> = const { std::cell::RefCell::new(None) };
}

fn deflate_into(data: &[u8], level: i32, out: &mut Vec<u8>) {
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().map(|(l, _)| *l) != Some(level) {
            let lvl = libdeflater::CompressionLvl::new(level).unwrap_or_default();
            *slot = Some((level, libdeflater::Compressor::new(lvl)));
        }
        let (_, compressor) = slot.as_mut().expect("compressor just set");
        let start = out.len();
        out.resize(start + compressor.deflate_compress_bound(data.len()), 0);
        let n = compressor
            .deflate_compress(data, &mut out[start..])
            .expect("output sized by deflate_compress_bound");
        out.truncate(start + n);
    });
}

/// The default deflate level: libdeflate's 6 compresses like zlib's 6, several times faster.
pub const DEFAULT_COMPRESSION_LEVEL: i32 = 6;

/// Commits the directory `root` and moves `options.branch` to the new commit.
pub fn commit_directory(
    repo: &Repo,
    root: &Path,
    options: &CommitOptions,
) -> Result<(Checksum, CommitStats)> {
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let root_stat = fs::symlink_metadata(root).at(root)?;
    if !root_stat.is_dir() {
        return Err(Error::Invalid(format!(
            "{}: not a directory",
            root.display()
        )));
    }
    let parent = match (&options.branch, options.orphan) {
        (Some(branch), false) => repo.read_ref(branch)?,
        _ => None,
    };
    let mut tree = scan_dir(root, root_stat, options.canonical_permissions)?;

    let cache_path = repo.path().join("extensions/cairn/commit-cache");
    let cache_tag = format!(
        "cairn-commit-cache v1 canonical={}",
        options.canonical_permissions
    );
    let cache = if options.no_cache {
        HashMap::new()
    } else {
        load_cache(&cache_path, &cache_tag)
    };

    let tx = Transaction::begin(repo)?;
    let level = options
        .compression_level
        .unwrap_or(DEFAULT_COMPRESSION_LEVEL);
    let mut files = Vec::new();
    collect_files(&mut tree, &mut files);
    // Largest first: a big file compressed last would leave the other cores idle.
    files.sort_by_key(|f| std::cmp::Reverse(f.stamp.size));
    let stats = Mutex::new(CommitStats {
        files: files.len() as u64,
        ..Default::default()
    });
    files.par_iter_mut().try_for_each(|file| -> Result<()> {
        if let Some(cached) = cache.get(&(file.stamp.dev, file.stamp.ino)) {
            if cached.0 == file.stamp
                && (repo.has_object(&cached.1, ObjectType::File)
                    || tx
                        .staged
                        .lock()
                        .expect("poisoned")
                        .contains(&(cached.1, ObjectType::File)))
            {
                file.checksum = Some(cached.1);
                stats.lock().expect("poisoned").cache_hits += 1;
                return Ok(());
            }
        }
        let data = if file.meta.mode & S_IFMT == S_IFREG {
            fs::read(&file.path).at(&file.path)?
        } else {
            Vec::new()
        };
        let checksum = object::content_checksum(&file.meta, &file.symlink_target, &data);
        let new = tx.write_content(&checksum, &file.meta, &file.symlink_target, &data, level)?;
        let mut s = stats.lock().expect("poisoned");
        s.bytes_read += data.len() as u64;
        s.new_objects += u64::from(new);
        file.checksum = Some(checksum);
        Ok(())
    })?;
    let mut stats = stats.into_inner().expect("poisoned");
    let remembered: Vec<(FileStamp, Checksum)> = files
        .iter()
        .filter_map(|f| Some((f.stamp, f.checksum?)))
        .collect();
    drop(files);

    let (root_tree, root_meta) = write_tree(&tx, &tree, &mut stats)?;
    let mut metadata = options.metadata.clone();
    if let (Some(branch), false) = (&options.branch, options.no_bindings) {
        metadata.push((
            "ostree.ref-binding".to_owned(),
            Value::Array(Type::Str, vec![Value::Str(branch.clone())]),
        ));
    }
    let commit = Commit {
        metadata,
        parent,
        subject: options.subject.clone(),
        body: options.body.clone(),
        timestamp: options.timestamp.unwrap_or(started as u64),
        root_tree,
        root_meta,
    };
    let checksum = tx.write_metadata(ObjectType::Commit, &commit.to_bytes())?;
    stats.new_objects = tx.staged_count();
    tx.publish()?;
    if let Some(branch) = &options.branch {
        repo.write_ref(branch, &checksum)?;
    }
    if !options.no_cache {
        // The cache is an optimisation: failing to save it must not fail the commit.
        if let Err(e) = save_cache(&cache_path, &cache_tag, &remembered, started) {
            tracing::warn!("could not save the commit cache: {e}");
        }
    }
    Ok((checksum, stats))
}

fn collect_files<'a>(dir: &'a mut ScannedDir, out: &mut Vec<&'a mut ScannedFile>) {
    for f in &mut dir.files {
        out.push(f);
    }
    for (_, d) in &mut dir.dirs {
        collect_files(d, out);
    }
}

fn write_tree(
    tx: &Transaction,
    dir: &ScannedDir,
    stats: &mut CommitStats,
) -> Result<(Checksum, Checksum)> {
    stats.dirs += 1;
    let mut tree = DirTree::default();
    for f in &dir.files {
        let checksum = f
            .checksum
            .ok_or_else(|| Error::Invalid(format!("{}: no checksum computed", f.path.display())))?;
        tree.files.push((f.name.clone(), checksum));
    }
    for (name, sub) in &dir.dirs {
        let (t, m) = write_tree(tx, sub, stats)?;
        tree.dirs.push((name.clone(), t, m));
    }
    let tree_checksum = tx.write_metadata(ObjectType::DirTree, &tree.to_bytes())?;
    let meta_checksum =
        tx.write_metadata(ObjectType::DirMeta, &object::dirmeta_bytes(&dir.meta))?;
    Ok((tree_checksum, meta_checksum))
}

fn file_meta(path: &Path, stat: &fs::Metadata, canonical: bool) -> Result<FileMeta> {
    let mut meta = FileMeta {
        uid: stat.uid(),
        gid: stat.gid(),
        mode: stat.mode(),
        xattrs: xattr::list_all(path).at(path)?,
    };
    if canonical {
        meta.uid = 0;
        meta.gid = 0;
        meta.xattrs.clear();
        let kind = meta.mode & S_IFMT;
        meta.mode = match kind {
            S_IFLNK => S_IFLNK | 0o777,
            _ if meta.mode & 0o100 != 0 || kind == S_IFDIR => kind | 0o755,
            _ => kind | 0o644,
        };
    }
    Ok(meta)
}

fn scan_dir(path: &Path, stat: fs::Metadata, canonical: bool) -> Result<ScannedDir> {
    let meta = file_meta(path, &stat, canonical)?;
    let mut files = Vec::new();
    let mut subdirs = Vec::new();
    for entry in fs::read_dir(path).at(path)? {
        let entry = entry.at(path)?;
        let child = entry.path();
        let name = entry.file_name().into_string().map_err(|n| {
            Error::Invalid(format!("{}: file name {n:?} is not UTF-8", path.display()))
        })?;
        let stat = fs::symlink_metadata(&child).at(&child)?;
        let ft = stat.file_type();
        if ft.is_dir() {
            subdirs.push((name, child, stat));
        } else if ft.is_file() || ft.is_symlink() {
            let symlink_target = if ft.is_symlink() {
                fs::read_link(&child)
                    .at(&child)?
                    .into_os_string()
                    .into_string()
                    .map_err(|t| {
                        Error::Invalid(format!(
                            "{}: symlink target {t:?} is not UTF-8",
                            child.display()
                        ))
                    })?
            } else {
                String::new()
            };
            let meta = file_meta(&child, &stat, canonical)?;
            let stamp = FileStamp {
                dev: stat.dev(),
                ino: stat.ino(),
                size: stat.len(),
                mtime: (stat.mtime(), stat.mtime_nsec()),
                ctime: (stat.ctime(), stat.ctime_nsec()),
            };
            files.push(ScannedFile {
                name,
                path: child,
                meta,
                symlink_target,
                stamp,
                checksum: None,
            });
        } else {
            return Err(Error::Unsupported(format!("{}: unsupported file type (only regular files, symlinks and directories can be committed)", child.display())));
        }
    }
    let mut dirs = subdirs
        .into_par_iter()
        .map(|(name, child, stat)| Ok((name, scan_dir(&child, stat, canonical)?)))
        .collect::<Result<Vec<_>>>()?;
    files.sort_by(|a, b| a.name.cmp(&b.name));
    dirs.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(ScannedDir { meta, files, dirs })
}

type Cache = HashMap<(u64, u64), (FileStamp, Checksum)>;

fn load_cache(path: &Path, tag: &str) -> Cache {
    let Ok(text) = fs::read_to_string(path) else {
        return HashMap::new();
    };
    let mut lines = text.lines();
    if lines.next() != Some(tag) {
        return HashMap::new();
    }
    let mut cache = HashMap::new();
    for line in lines {
        let fields: Vec<&str> = line.split(' ').collect();
        let [dev, ino, size, ms, mns, cs, cns, csum] = fields[..] else {
            continue;
        };
        let parsed = (|| {
            let stamp = FileStamp {
                dev: dev.parse().ok()?,
                ino: ino.parse().ok()?,
                size: size.parse().ok()?,
                mtime: (ms.parse().ok()?, mns.parse().ok()?),
                ctime: (cs.parse().ok()?, cns.parse().ok()?),
            };
            Some((stamp, csum.parse::<Checksum>().ok()?))
        })();
        if let Some((stamp, checksum)) = parsed {
            cache.insert((stamp.dev, stamp.ino), (stamp, checksum));
        }
    }
    cache
}

fn save_cache(path: &Path, tag: &str, files: &[(FileStamp, Checksum)], started: i64) -> Result<()> {
    use std::fmt::Write as _;
    let mut text = String::with_capacity(files.len() * 120);
    text.push_str(tag);
    text.push('\n');
    for (s, c) in files {
        // A file changed in the same second as the commit started could change again
        // without a visible ctime step ("racy" in git's terms): do not remember it.
        if s.ctime.0 >= started - 1 || s.mtime.0 >= started - 1 {
            continue;
        }
        let _ = writeln!(
            text,
            "{} {} {} {} {} {} {} {c}",
            s.dev, s.ino, s.size, s.mtime.0, s.mtime.1, s.ctime.0, s.ctime.1
        );
    }
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).at(parent)?;
    }
    crate::repo::write_file_atomic(path, text.as_bytes(), false)
}
