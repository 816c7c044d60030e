//! The default [`Store`]: durable and crash-safe, an append-only journal in a data directory,
//! with group commit.
//!
//! Layout of the data directory:
//!
//! - `lock`: held with `flock(LOCK_EX)` for the store's lifetime, so that two servers never
//!   share a directory;
//! - `journal`: one JSON record per line, `{"group": …, "version": N, "state": {…}}`; the last
//!   record of a group is its state;
//! - `journal.new`: a compaction in progress; a leftover of a crash is removed on open.
//!
//! **Durability.** A compare-and-swap queues its record in memory and returns; one thread
//! writes whatever is queued and syncs it (`fdatasync`) in one go, over and over (group
//! commit): one sync serves every write that arrived while the previous one ran, which is what
//! lets a single disk serve thousands of lock/unlock pairs a second. Reads and later writes see
//! a queued write at once; [`Store::durability`] says when it is on disk, and the semaphore
//! waits for that before any answer leaves the service.
//!
//! **Crash safety.** Records are appended, never rewritten: a crash can only cut the last line
//! short, and a line without its newline was never acknowledged, so it is dropped on open.
//! When the journal grows past a bound it is compacted: the state of every group is written to
//! `journal.new`, synced, and renamed over `journal`, and the directory is synced. A line that
//! does not parse anywhere else is corruption: the store refuses to open, naming the file and
//! line, rather than guess.
//!
//! **A failed write stops the store.** After a failed write or sync the state on disk is
//! unknown (the kernel may have dropped the dirty pages), so every later call fails until the
//! service is restarted and reads the journal again.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use rustix::fs::FlockOperation;
use serde::{Deserialize, Serialize};

use crate::durable::{Durability, SyncProgress};
use crate::store::{GroupName, GroupState, Store, StoreError, Versioned};

const LOCK_FILE_NAME: &str = "lock";
const JOURNAL_FILE_NAME: &str = "journal";
const COMPACTION_FILE_NAME: &str = "journal.new";
/// Compact once the journal is this large and at least [`COMPACTION_RATIO`] times the size of
/// a fresh snapshot.
const DEFAULT_COMPACT_AFTER_BYTES: u64 = 4 << 20;
const COMPACTION_RATIO: u64 = 4;

/// One line of the journal (this crate's own format).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Record {
    group: GroupName,
    version: u64,
    state: GroupState,
}

#[derive(Debug)]
pub struct EmbeddedStore {
    dir: PathBuf,
    shared: Arc<Shared>,
    /// Holds the flock until the store is dropped.
    _lock_file: File,
    /// The thread that writes and syncs the journal; it drains what is queued and ends on drop.
    syncer: Option<std::thread::JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    dir: PathBuf,
    journal_path: PathBuf,
    inner: Mutex<Inner>,
    /// Signalled when records are queued, or the store is dropped.
    queued: Condvar,
    progress: Arc<SyncProgress>,
    compact_after_bytes: u64,
}

#[derive(Debug)]
struct Inner {
    groups: BTreeMap<GroupName, Entry>,
    /// Where records are appended; replaced by compaction.
    journal: Arc<File>,
    journal_bytes: u64,
    /// Records appended in memory and not yet written.
    pending: Vec<u8>,
    /// Sequence number of the last record appended (in `pending` or on disk).
    appended: u64,
    /// Why the store stopped, once a write failed.
    failed: Option<String>,
    /// The store is being dropped: sync what is queued and end.
    closing: bool,
}

#[derive(Debug)]
struct Entry {
    versioned: Versioned,
    /// Sequence number of the record that wrote this version.
    seq: u64,
}

impl EmbeddedStore {
    /// Open (creating if needed) the data directory `dir`, lock it and read the journal.
    pub fn open(dir: &Path) -> Result<EmbeddedStore, StoreError> {
        EmbeddedStore::open_with_compaction(dir, DEFAULT_COMPACT_AFTER_BYTES)
    }

    /// As [`EmbeddedStore::open`], compacting once the journal passes `compact_after_bytes`.
    pub fn open_with_compaction(
        dir: &Path,
        compact_after_bytes: u64,
    ) -> Result<EmbeddedStore, StoreError> {
        fs::create_dir_all(dir).map_err(io_error("create data directory", dir))?;
        let lock_path = dir.join(LOCK_FILE_NAME);
        let lock_file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_error("open lock file", &lock_path))?;
        match rustix::fs::flock(&lock_file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => {
                return Err(StoreError::DataDirInUse {
                    path: dir.to_owned(),
                })
            }
            Err(errno) => return Err(io_error("lock", &lock_path)(errno.into())),
        }

        let leftover = dir.join(COMPACTION_FILE_NAME);
        match fs::remove_file(&leftover) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error("remove unfinished compaction", &leftover)(e)),
        }

        let journal_path = dir.join(JOURNAL_FILE_NAME);
        let journal = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .append(true)
            .open(&journal_path)
            .map_err(io_error("open journal", &journal_path))?;
        let bytes = fs::read(&journal_path).map_err(io_error("read journal", &journal_path))?;
        let (groups, complete) = replay(&journal_path, &bytes)?;
        if complete < bytes.len() {
            // The tail of a write cut short by a crash: never acknowledged, so never lost.
            journal
                .set_len(complete as u64)
                .map_err(io_error("cut the unfinished last record of", &journal_path))?;
        }
        // What was read may be in the page cache only (the previous process died between its
        // write and its sync): make it durable before answering anyone from it.
        journal
            .sync_all()
            .map_err(io_error("sync", &journal_path))?;
        // The journal's directory entry must be durable before the first acknowledged write.
        sync_dir(dir)?;

        let shared = Arc::new(Shared {
            dir: dir.to_owned(),
            progress: SyncProgress::new(journal_path.clone()),
            journal_path,
            inner: Mutex::new(Inner {
                groups,
                journal: Arc::new(journal),
                journal_bytes: complete as u64,
                pending: Vec::new(),
                appended: 0,
                failed: None,
                closing: false,
            }),
            queued: Condvar::new(),
            compact_after_bytes,
        });
        let syncer = std::thread::Builder::new()
            .name("lock-journal".into())
            .spawn({
                let shared = Arc::clone(&shared);
                move || shared.sync_loop()
            })
            .map_err(io_error("start the journal thread for", dir))?;
        Ok(EmbeddedStore {
            dir: dir.to_owned(),
            shared,
            _lock_file: lock_file,
            syncer: Some(syncer),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        self.shared.lock().closing = true;
        self.shared.queued.notify_all();
        if let Some(syncer) = self.syncer.take() {
            let _ = syncer.join();
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn check(&self, inner: &Inner) -> Result<(), StoreError> {
        match &inner.failed {
            Some(reason) => Err(StoreError::Stopped {
                path: self.journal_path.clone(),
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    /// The journal thread: whenever records are queued, write them all and sync once
    /// (or compact), then tell the waiters.
    fn sync_loop(&self) {
        let mut inner = self.lock();
        loop {
            while inner.pending.is_empty() && !inner.closing {
                inner = self
                    .queued
                    .wait(inner)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            if inner.pending.is_empty() || inner.failed.is_some() {
                return;
            }
            let batch_end = inner.appended;
            let outcome;
            (inner, outcome) = self.write_queued(inner);
            match outcome {
                Ok(()) => self.progress.advance(batch_end),
                Err(reason) => {
                    inner.failed = Some(reason.clone());
                    self.progress.fail(reason);
                    return;
                }
            }
        }
    }

    /// Writes and syncs every queued record, or a snapshot of every group when the journal has
    /// grown enough; the mutex is released meanwhile.
    fn write_queued<'a>(
        &'a self,
        mut inner: MutexGuard<'a, Inner>,
    ) -> (MutexGuard<'a, Inner>, Result<(), String>) {
        let grown = inner.journal_bytes + inner.pending.len() as u64;
        if grown > self.compact_after_bytes
            && grown > COMPACTION_RATIO * snapshot_size(&inner.groups)
        {
            let snapshot = snapshot(&inner.groups);
            inner.pending.clear();
            drop(inner);
            let written = self.write_snapshot(&snapshot);
            let mut inner = self.lock();
            let outcome = written.map(|journal| {
                inner.journal = Arc::new(journal);
                inner.journal_bytes = snapshot.len() as u64;
            });
            return (inner, outcome);
        }
        let batch = std::mem::take(&mut inner.pending);
        let journal = Arc::clone(&inner.journal);
        drop(inner);
        let written = (&*journal)
            .write_all(&batch)
            .and_then(|()| journal.sync_data())
            .map_err(|e| format!("append to the journal: {e}"));
        let mut inner = self.lock();
        let outcome = written.map(|()| inner.journal_bytes += batch.len() as u64);
        (inner, outcome)
    }

    /// Writes `snapshot` as the new journal: temp file, sync, rename, sync the directory.
    fn write_snapshot(&self, snapshot: &[u8]) -> Result<File, String> {
        let temp_path = self.dir.join(COMPACTION_FILE_NAME);
        let write = || -> io::Result<File> {
            let mut temp = File::create(&temp_path)?;
            temp.write_all(snapshot)?;
            temp.sync_all()?;
            drop(temp);
            fs::rename(&temp_path, &self.journal_path)?;
            File::open(&self.dir)?.sync_all()?;
            OpenOptions::new().append(true).open(&self.journal_path)
        };
        write().map_err(|e| format!("compact the journal: {e}"))
    }
}

/// The journal's records, one line each, for the state of every group.
fn snapshot(groups: &BTreeMap<GroupName, Entry>) -> Vec<u8> {
    let mut bytes = Vec::new();
    for (group, entry) in groups {
        encode(&mut bytes, group, &entry.versioned);
    }
    bytes
}

/// A cheap estimate of [`snapshot`]'s size, to decide whether compaction pays.
fn snapshot_size(groups: &BTreeMap<GroupName, Entry>) -> u64 {
    groups
        .values()
        .map(|entry| {
            64 + entry
                .versioned
                .state
                .holders
                .iter()
                .map(|holder| 2 * holder.len() as u64 + 24)
                .sum::<u64>()
        })
        .sum()
}

fn encode(bytes: &mut Vec<u8>, group: &GroupName, versioned: &Versioned) {
    #[derive(Serialize)]
    struct RecordRef<'a> {
        group: &'a GroupName,
        version: u64,
        state: &'a GroupState,
    }
    let record = RecordRef {
        group,
        version: versioned.version,
        state: &versioned.state,
    };
    // Strings, integers and maps with string keys: serialising cannot fail.
    serde_json::to_writer(&mut *bytes, &record).unwrap_or_default();
    bytes.push(b'\n');
}

/// Replays the journal: the state of every group, and how many bytes hold complete records.
fn replay(path: &Path, bytes: &[u8]) -> Result<(BTreeMap<GroupName, Entry>, usize), StoreError> {
    let mut groups: BTreeMap<GroupName, Entry> = BTreeMap::new();
    let mut offset = 0;
    let mut line_number = 0;
    while let Some(length) = bytes[offset..].iter().position(|&b| b == b'\n') {
        line_number += 1;
        let line = &bytes[offset..offset + length];
        offset += length + 1;
        let corrupt = |reason: String| StoreError::CorruptJournal {
            path: path.to_owned(),
            line: line_number,
            reason,
        };
        let record: Record = serde_json::from_slice(line).map_err(|e| corrupt(e.to_string()))?;
        let previous = groups.get(&record.group).map_or(0, |e| e.versioned.version);
        if record.version <= previous {
            return Err(corrupt(format!(
                "group {} goes from version {previous} back to {}",
                record.group, record.version
            )));
        }
        groups.insert(
            record.group,
            Entry {
                versioned: Versioned {
                    state: record.state,
                    version: record.version,
                },
                seq: 0,
            },
        );
    }
    Ok((groups, offset))
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(io_error("sync data directory", dir))
}

fn io_error<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

impl Store for EmbeddedStore {
    fn get(&self, group: &GroupName) -> Result<Versioned, StoreError> {
        let inner = self.shared.lock();
        self.shared.check(&inner)?;
        Ok(inner
            .groups
            .get(group)
            .map(|entry| entry.versioned.clone())
            .unwrap_or_default())
    }

    /// Queues the record and returns at once: the write is seen by every later call, and is
    /// on disk once [`Store::durability`] says so.
    fn compare_and_swap(
        &self,
        group: &GroupName,
        expected_version: u64,
        new: &GroupState,
    ) -> Result<Option<u64>, StoreError> {
        let mut inner = self.shared.lock();
        self.shared.check(&inner)?;
        let current_version = inner
            .groups
            .get(group)
            .map_or(0, |entry| entry.versioned.version);
        if current_version != expected_version {
            return Ok(None);
        }
        let versioned = Versioned {
            state: new.clone(),
            version: current_version + 1,
        };
        encode(&mut inner.pending, group, &versioned);
        inner.appended += 1;
        let seq = inner.appended;
        inner.groups.insert(group.clone(), Entry { versioned, seq });
        drop(inner);
        self.shared.queued.notify_one();
        Ok(Some(current_version + 1))
    }

    fn durability(&self, group: &GroupName, version: u64) -> Result<Durability, StoreError> {
        let inner = self.shared.lock();
        self.shared.check(&inner)?;
        let seq = match inner.groups.get(group) {
            // A newer version's record comes later in the journal: waiting for it covers ours.
            Some(entry) if entry.versioned.version >= version => entry.seq,
            _ => 0,
        };
        drop(inner);
        Ok(self.shared.progress.ticket(seq))
    }

    fn may_block(&self) -> bool {
        false
    }

    fn groups(&self) -> Result<Vec<GroupName>, StoreError> {
        let inner = self.shared.lock();
        self.shared.check(&inner)?;
        Ok(inner.groups.keys().cloned().collect())
    }
}
