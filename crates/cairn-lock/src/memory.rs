//! A volatile [`Store`] in a map behind a mutex: for tests, property tests and benchmarks.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use crate::store::{GroupName, GroupState, Store, StoreError, Versioned};

#[derive(Debug, Default)]
pub struct MemoryStore {
    groups: Mutex<BTreeMap<GroupName, Versioned>>,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }
}

impl Store for MemoryStore {
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
        let mut groups = self.groups.lock().unwrap_or_else(PoisonError::into_inner);
        let current = groups.entry(group.clone()).or_default();
        if current.version != expected_version {
            return Ok(None);
        }
        current.version += 1;
        current.state = new.clone();
        Ok(Some(current.version))
    }

    fn may_block(&self) -> bool {
        false
    }

    fn groups(&self) -> Result<Vec<GroupName>, StoreError> {
        let groups = self.groups.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(groups
            .iter()
            .filter(|(_, versioned)| !versioned.is_absent())
            .map(|(name, _)| name.clone())
            .collect())
    }
}
