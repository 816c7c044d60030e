//! The group state, the group name, and the compare-and-swap storage trait every backend implements.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};

use crate::durable::Durability;

/// A FleetLock group name, valid by construction: `^[a-zA-Z0-9.-]+$` (FleetLock protocol v1).
///
/// The charset also makes `<name>.json` a safe file name (no `/`, never `.` or `..`);
/// the embedded store relies on that.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct GroupName(String);

impl TryFrom<String> for GroupName {
    type Error = InvalidGroupName;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        name.parse()
    }
}

impl From<GroupName> for String {
    fn from(name: GroupName) -> String {
        name.0
    }
}

/// A string that is not a valid [`GroupName`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid group name {0:?}: expected one or more of a-z, A-Z, 0-9, '.', '-'")]
pub struct InvalidGroupName(pub String);

impl GroupName {
    /// FleetLock's default group.
    pub fn default_group() -> GroupName {
        GroupName("default".to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for GroupName {
    type Err = InvalidGroupName;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        let valid = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
        if !valid {
            return Err(InvalidGroupName(name.to_owned()));
        }
        Ok(GroupName(name.to_owned()))
    }
}

impl fmt::Display for GroupName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The state of one group, as Airlock keeps it in etcd under
/// `com.coreos.airlock/groups/<group>/v1/semaphore`: `{"total_slots": N, "holders": [ids]}`
/// (coreos/airlock `internal/lock/semaphore.go`).
///
/// Airlock keeps `holders` sorted and finds ids by binary search, so we keep them sorted too.
/// `leases` is our addition: when each holder took its slot, in seconds since the Unix epoch.
/// Airlock decodes with Go's `encoding/json`, which ignores unknown fields, so it can still
/// read a value we wrote; when Airlock writes, the field is dropped, and holders without a
/// lease entry simply have an unknown acquisition time.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GroupState {
    pub total_slots: u64,
    /// Go encodes an empty slice as `[]` but a nil one as `null`: accept both.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub holders: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub leases: BTreeMap<String, u64>,
    /// Slots set by an operator through the admin API: they win over the configured number
    /// until cleared (our addition, ignored by Airlock, like `leases`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slots_override: Option<u64>,
}

fn null_as_empty<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(deserializer)?.unwrap_or_default())
}

impl GroupState {
    pub fn is_holder(&self, id: &str) -> bool {
        self.holders.iter().any(|holder| holder == id)
    }

    /// The slots in force: the operator's override, else the configured number.
    pub fn slots(&self, configured: u64) -> u64 {
        self.slots_override.unwrap_or(configured)
    }
}

/// A group's state with the version a compare-and-swap must name to replace it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Versioned {
    pub state: GroupState,
    /// 0 when the group has never been written; each successful write increases it
    /// (as etcd's per-key version does).
    pub version: u64,
}

impl Versioned {
    pub fn is_absent(&self) -> bool {
        self.version == 0
    }
}

/// Errors of a storage backend.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("corrupt group state in {path}")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("corrupt journal {path} line {line}: {reason}")]
    CorruptJournal {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("the store stopped after a failed write to {path} ({reason}); restart the service to read the journal again")]
    Stopped { path: PathBuf, reason: String },
    /// A value in a remote store (an etcd key) that is not a group state.
    #[error("corrupt group state in key {key} at {endpoint}")]
    CorruptValue {
        key: String,
        endpoint: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("data directory {path} is in use by another process")]
    DataDirInUse { path: PathBuf },
    /// A backend-specific failure (e.g. the etcd client's).
    #[error("storage backend")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Storage with compare-and-swap semantics: one value (a [`GroupState`]) per group.
///
/// Implementations must be linearizable per group: of concurrent `compare_and_swap` calls naming
/// the same version, at most one succeeds.
pub trait Store: Send + Sync {
    /// The group's current state and version; `version == 0` and a default state when absent.
    fn get(&self, group: &GroupName) -> Result<Versioned, StoreError>;

    /// Write `new` if the group is still at `expected_version` (0: still absent).
    /// Returns the new version, or `None` if someone else wrote first.
    fn compare_and_swap(
        &self,
        group: &GroupName,
        expected_version: u64,
        new: &GroupState,
    ) -> Result<Option<u64>, StoreError>;

    /// Every group that has been written, sorted.
    fn groups(&self) -> Result<Vec<GroupName>, StoreError>;

    /// Whether `version` of `group` (as written or read) is on disk yet.
    ///
    /// A backend may let calls see a write while it is still on its way to disk (the embedded
    /// store does, for group commit); before answering a client, wait on this. The default is
    /// for backends whose writes are durable when `compare_and_swap` returns.
    fn durability(&self, group: &GroupName, version: u64) -> Result<Durability, StoreError> {
        let _ = (group, version);
        Ok(Durability::Now)
    }

    /// Whether calls may block for long (network, disk): callers in async code then run them on
    /// a blocking pool. Backends that only take a mutex say `false`.
    fn may_block(&self) -> bool {
        true
    }
}

impl<S: Store + ?Sized> Store for &S {
    fn get(&self, group: &GroupName) -> Result<Versioned, StoreError> {
        (**self).get(group)
    }

    fn compare_and_swap(
        &self,
        group: &GroupName,
        expected_version: u64,
        new: &GroupState,
    ) -> Result<Option<u64>, StoreError> {
        (**self).compare_and_swap(group, expected_version, new)
    }

    fn groups(&self) -> Result<Vec<GroupName>, StoreError> {
        (**self).groups()
    }

    fn durability(&self, group: &GroupName, version: u64) -> Result<Durability, StoreError> {
        (**self).durability(group, version)
    }

    fn may_block(&self) -> bool {
        (**self).may_block()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_names() {
        for good in ["default", "a", "web-1.eu", ".", "..", "A9"] {
            assert_eq!(good.parse::<GroupName>().unwrap().as_str(), good);
        }
        for bad in ["", "a/b", "a b", "é", "a_b", "a\0"] {
            assert!(bad.parse::<GroupName>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn reads_airlock_values() {
        let state: GroupState =
            serde_json::from_str(r#"{"total_slots":2,"holders":["a","b"]}"#).unwrap();
        assert_eq!(state.total_slots, 2);
        assert_eq!(state.holders, ["a", "b"]);
        assert!(state.leases.is_empty());
        let state: GroupState =
            serde_json::from_str(r#"{"total_slots":1,"holders":null}"#).unwrap();
        assert!(state.holders.is_empty());
    }

    #[test]
    fn writes_airlock_values() {
        let mut state = GroupState {
            total_slots: 1,
            ..GroupState::default()
        };
        assert_eq!(
            serde_json::to_string(&state).unwrap(),
            r#"{"total_slots":1,"holders":[]}"#
        );
        state.holders.push("a".to_owned());
        state.leases.insert("a".to_owned(), 1_700_000_000);
        assert_eq!(
            serde_json::to_string(&state).unwrap(),
            r#"{"total_slots":1,"holders":["a"],"leases":{"a":1700000000}}"#
        );
    }
}
