//! The default [`Store`]: durable and crash-safe, one JSON file per group in a data directory.
//!
//! Layout of the data directory:
//!
//! - `lock`: held with `flock(LOCK_EX)` for the store's lifetime, so that two servers never
//!   share a directory;
//! - `<group>.json`: `{"version": N, "state": {"total_slots": …, "holders": […]}}`;
//! - `<group>.json~`: a write in progress; leftovers of a crash are removed on open.
//!
//! Every write goes to the temp file, is fsynced, renamed over the group file, and the directory
//! is fsynced: after a crash each group file holds either the old or the new state, never a mix.
//! All groups are read at open (so a corrupt file stops the service at start, naming the file)
//! and then served from memory; the flock makes this process the only writer.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use rustix::fs::FlockOperation;
use serde::{Deserialize, Serialize};

use crate::store::{GroupName, GroupState, Store, StoreError, Versioned};

const LOCK_FILE_NAME: &str = "lock";
const GROUP_SUFFIX: &str = ".json";
const TEMP_SUFFIX: &str = ".json~";

/// The content of a group file (this crate's own format).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupFile {
    version: u64,
    state: GroupState,
}

#[derive(Debug)]
pub struct EmbeddedStore {
    dir: PathBuf,
    /// Holds the flock until the store is dropped.
    _lock_file: File,
    /// The state of every group on disk; the mutex also serialises writes.
    groups: Mutex<BTreeMap<GroupName, Versioned>>,
}

impl EmbeddedStore {
    /// Open (creating if needed) the data directory `dir`, lock it and read every group.
    pub fn open(dir: &Path) -> Result<EmbeddedStore, StoreError> {
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

        let mut groups = BTreeMap::new();
        for entry in fs::read_dir(dir).map_err(io_error("read data directory", dir))? {
            let entry = entry.map_err(io_error("read data directory", dir))?;
            let file_name = entry.file_name();
            let Some(file_name) = file_name.to_str() else {
                continue;
            };
            if file_name.ends_with(TEMP_SUFFIX) {
                let path = entry.path();
                fs::remove_file(&path).map_err(io_error("remove unfinished write", &path))?;
                continue;
            }
            let Some(group) = file_name
                .strip_suffix(GROUP_SUFFIX)
                .and_then(|name| name.parse::<GroupName>().ok())
            else {
                continue;
            };
            let path = entry.path();
            let bytes = fs::read(&path).map_err(io_error("read group file", &path))?;
            let file: GroupFile =
                serde_json::from_slice(&bytes).map_err(|source| StoreError::Corrupt {
                    path: path.clone(),
                    source,
                })?;
            groups.insert(
                group,
                Versioned {
                    state: file.state,
                    version: file.version,
                },
            );
        }

        Ok(EmbeddedStore {
            dir: dir.to_owned(),
            _lock_file: lock_file,
            groups: Mutex::new(groups),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn write_group_file(&self, group: &GroupName, file: &GroupFile) -> Result<(), StoreError> {
        let path = self.dir.join(format!("{group}{GROUP_SUFFIX}"));
        let temp_path = self.dir.join(format!("{group}{TEMP_SUFFIX}"));
        let bytes = serde_json::to_vec(file)
            .map_err(|e| io_error("serialise", &path)(io::Error::other(e)))?;
        let mut temp = File::create(&temp_path).map_err(io_error("create", &temp_path))?;
        temp.write_all(&bytes)
            .map_err(io_error("write", &temp_path))?;
        temp.sync_all().map_err(io_error("fsync", &temp_path))?;
        drop(temp);
        fs::rename(&temp_path, &path).map_err(io_error("rename into", &path))?;
        File::open(&self.dir)
            .and_then(|dir| dir.sync_all())
            .map_err(io_error("fsync data directory", &self.dir))?;
        Ok(())
    }
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
        let groups = self.groups.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(groups.get(group).cloned().unwrap_or_default())
    }

    fn compare_and_swap(
        &self,
        group: &GroupName,
        expected_version: u64,
        new: &GroupState,
    ) -> Result<Option<u64>, StoreError> {
        // The mutex is held across the disk write: memory never runs ahead of the disk, and a
        // failed write leaves both at the old version.
        let mut groups = self.groups.lock().unwrap_or_else(PoisonError::into_inner);
        let current_version = groups.get(group).map_or(0, |versioned| versioned.version);
        if current_version != expected_version {
            return Ok(None);
        }
        let file = GroupFile {
            version: current_version + 1,
            state: new.clone(),
        };
        self.write_group_file(group, &file)?;
        groups.insert(
            group.clone(),
            Versioned {
                state: file.state,
                version: file.version,
            },
        );
        Ok(Some(file.version))
    }

    fn groups(&self) -> Result<Vec<GroupName>, StoreError> {
        let groups = self.groups.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(groups.keys().cloned().collect())
    }
}
