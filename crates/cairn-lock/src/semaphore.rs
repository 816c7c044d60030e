//! FleetLock's slot semaphore over any [`Store`]: take a slot before rebooting, give it back when
//! healthy again.
//!
//! Rules (FleetLock protocol v1, plus what Airlock does and what its users asked for):
//!
//! - a lock is re-entrant: an id that already holds a slot gets it again, with no write;
//! - unlocking an id that holds nothing succeeds, with no write;
//! - the configured number of slots is the truth, also for existing state: if it shrinks below the
//!   number of holders, nobody is evicted, but nobody new gets a slot until enough have left;
//! - each holder's acquisition time is recorded in [`GroupState::leases`], so that the service can
//!   show since-when and free the slots of silent holders ([`Semaphore::release_expired`]).
//!
//! Every operation is a read-modify-CAS loop: a conflict means another writer succeeded, so the
//! loop always makes progress overall; it still gives up after [`MAX_ATTEMPTS`] as a safety net.
//! Time is a parameter (seconds since the Unix epoch), never read from a clock here.

use crate::durable::Durability;
use crate::store::{GroupName, GroupState, Store, StoreError};

/// How many conflicting compare-and-swaps one operation tolerates before giving up.
pub const MAX_ATTEMPTS: u32 = 10_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockOutcome {
    /// The id took a free slot.
    Acquired,
    /// The id already held a slot (re-entrant lock).
    AlreadyHeld,
    /// Every slot is taken by others.
    Full { holders: Vec<String>, slots: u64 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnlockOutcome {
    Released,
    /// The id held no slot; that is a success in FleetLock.
    NotHeld,
}

#[derive(Debug, thiserror::Error)]
pub enum SemaphoreError {
    #[error("empty client id")]
    EmptyId,
    #[error("group {group}: gave up after {attempts} conflicting writes")]
    Contention { group: GroupName, attempts: u32 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An outcome that may not be on disk yet: wait before telling anyone.
#[derive(Debug)]
#[must_use = "wait for the outcome to be durable before acting on it"]
pub struct Deferred<T> {
    value: T,
    durability: Durability,
}

impl<T> Deferred<T> {
    /// Blocks until the outcome is durable.
    pub fn wait(self) -> Result<T, SemaphoreError> {
        self.durability.wait()?;
        Ok(self.value)
    }

    /// Waits until the outcome is durable without blocking a thread.
    pub async fn wait_async(self) -> Result<T, SemaphoreError> {
        self.durability.wait_async().await?;
        Ok(self.value)
    }

    /// The outcome, and what to wait on before acting on it.
    pub fn into_parts(self) -> (T, Durability) {
        (self.value, self.durability)
    }
}

/// One operation on a group; [`Semaphore::apply`] runs several as one write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Take a slot for `id`, with `slots` the configured number of slots.
    Lock {
        id: String,
        slots: u64,
        now_unix_seconds: u64,
    },
    /// Give back the slot `id` holds, if any.
    Unlock { id: String },
    /// Free the slots of holders that took them more than `lease_seconds` ago.
    ReleaseExpired {
        lease_seconds: u64,
        now_unix_seconds: u64,
    },
    /// Set (`Some`) or clear (`None`) the operator's override of the slots; `configured` is
    /// recorded as Airlock's `total_slots` when cleared.
    SetSlots { slots: Option<u64>, configured: u64 },
}

/// What an [`Op`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Lock(LockOutcome),
    Unlock(UnlockOutcome),
    /// The ids whose slots were freed.
    Expired(Vec<String>),
    SlotsSet,
}

impl Op {
    /// Applies the operation to `state`; returns what it did and whether `state` changed.
    fn apply(&self, state: &mut GroupState) -> Result<(Outcome, bool), SemaphoreError> {
        Ok(match self {
            Op::Lock {
                id,
                slots,
                now_unix_seconds,
            } => {
                let (outcome, changed) = lock_in(state, id, *slots, *now_unix_seconds)?;
                (Outcome::Lock(outcome), changed)
            }
            Op::Unlock { id } => {
                let (outcome, changed) = unlock_in(state, id)?;
                (Outcome::Unlock(outcome), changed)
            }
            Op::ReleaseExpired {
                lease_seconds,
                now_unix_seconds,
            } => {
                let (expired, changed) =
                    release_expired_in(state, *lease_seconds, *now_unix_seconds);
                (Outcome::Expired(expired), changed)
            }
            Op::SetSlots { slots, configured } => {
                (Outcome::SlotsSet, set_slots_in(state, *slots, *configured))
            }
        })
    }
}

fn lock_in(
    state: &mut GroupState,
    id: &str,
    slots: u64,
    now_unix_seconds: u64,
) -> Result<(LockOutcome, bool), SemaphoreError> {
    if id.is_empty() {
        return Err(SemaphoreError::EmptyId);
    }
    if state.is_holder(id) {
        return Ok((LockOutcome::AlreadyHeld, false));
    }
    let slots = state.slots(slots);
    if state.holders.len() as u64 >= slots {
        let full = LockOutcome::Full {
            holders: state.holders.clone(),
            slots,
        };
        return Ok((full, false));
    }
    state.total_slots = slots;
    // Sorted, as Airlock keeps them (it finds ids by binary search).
    let position = state.holders.partition_point(|holder| holder.as_str() < id);
    state.holders.insert(position, id.to_owned());
    state.leases.insert(id.to_owned(), now_unix_seconds);
    Ok((LockOutcome::Acquired, true))
}

fn unlock_in(state: &mut GroupState, id: &str) -> Result<(UnlockOutcome, bool), SemaphoreError> {
    if id.is_empty() {
        return Err(SemaphoreError::EmptyId);
    }
    if !state.is_holder(id) {
        return Ok((UnlockOutcome::NotHeld, false));
    }
    state.holders.retain(|holder| holder != id);
    state.leases.remove(id);
    Ok((UnlockOutcome::Released, true))
}

fn release_expired_in(
    state: &mut GroupState,
    lease_seconds: u64,
    now_unix_seconds: u64,
) -> (Vec<String>, bool) {
    let mut changed = false;
    for holder in &state.holders {
        if !state.leases.contains_key(holder) {
            state.leases.insert(holder.clone(), now_unix_seconds);
            changed = true;
        }
    }
    let expired: Vec<String> = state
        .holders
        .iter()
        .filter(|holder| {
            let since = state.leases[holder.as_str()];
            // Times are whole seconds: strictly more than the lease means at least the lease
            // has passed, wherever in their seconds both times fell.
            now_unix_seconds.saturating_sub(since) > lease_seconds
        })
        .cloned()
        .collect();
    if !expired.is_empty() {
        state.holders.retain(|holder| !expired.contains(holder));
        changed = true;
    }
    (expired, changed)
}

fn set_slots_in(state: &mut GroupState, slots: Option<u64>, configured: u64) -> bool {
    let total = slots.unwrap_or(configured);
    if state.slots_override == slots && state.total_slots == total {
        return false;
    }
    state.slots_override = slots;
    state.total_slots = total;
    true
}

#[derive(Debug)]
pub struct Semaphore<S> {
    store: S,
}

impl<S: Store> Semaphore<S> {
    pub fn new(store: S) -> Semaphore<S> {
        Semaphore { store }
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    /// Runs `ops` in order on `group` as one compare-and-swap (retried as a whole on conflict),
    /// returning before the outcome is durable: wait on the result before telling anyone.
    ///
    /// This is how a service under load stays fast on any store: requests that arrive while a
    /// write is under way are applied together by the next one.
    pub fn apply(
        &self,
        group: &GroupName,
        ops: &[Op],
    ) -> Result<Deferred<Vec<Outcome>>, SemaphoreError> {
        self.update(group, |state| {
            let mut outcomes = Vec::with_capacity(ops.len());
            let mut changed = false;
            for op in ops {
                let (outcome, op_changed) = op.apply(state)?;
                outcomes.push(outcome);
                changed |= op_changed;
            }
            Ok((outcomes, changed))
        })
    }

    /// Take a slot in `group` for `id`, with `slots` the configured number of slots; returns
    /// once the outcome is durable.
    pub fn lock(
        &self,
        group: &GroupName,
        id: &str,
        slots: u64,
        now_unix_seconds: u64,
    ) -> Result<LockOutcome, SemaphoreError> {
        self.update(group, |state| lock_in(state, id, slots, now_unix_seconds))?
            .wait()
    }

    /// Give back the slot `id` holds in `group`, if any; returns once the outcome is durable.
    pub fn unlock(&self, group: &GroupName, id: &str) -> Result<UnlockOutcome, SemaphoreError> {
        self.update(group, |state| unlock_in(state, id))?.wait()
    }

    /// Free the slots of holders that took them more than `lease_seconds` ago, returning their
    /// ids.
    ///
    /// A holder without a recorded acquisition time (written by Airlock, or before leases were
    /// on) is stamped `now_unix_seconds`: its lease starts when it is first seen.
    pub fn release_expired(
        &self,
        group: &GroupName,
        lease_seconds: u64,
        now_unix_seconds: u64,
    ) -> Result<Vec<String>, SemaphoreError> {
        self.update(group, |state| {
            Ok(release_expired_in(state, lease_seconds, now_unix_seconds))
        })?
        .wait()
    }

    /// Set (`Some`) or clear (`None`) the operator's override of the slots of `group`;
    /// `configured` is recorded as Airlock's `total_slots` when cleared.
    pub fn set_slots_override(
        &self,
        group: &GroupName,
        slots: Option<u64>,
        configured: u64,
    ) -> Result<(), SemaphoreError> {
        self.update(group, |state| {
            Ok(((), set_slots_in(state, slots, configured)))
        })?
        .wait()
    }

    /// The CAS loop: read, change, write if changed, retry on conflict. The result carries
    /// the durability of the state it rests on: the one written, or the one read.
    fn update<T>(
        &self,
        group: &GroupName,
        change: impl Fn(&mut GroupState) -> Result<(T, bool), SemaphoreError>,
    ) -> Result<Deferred<T>, SemaphoreError> {
        for _ in 0..MAX_ATTEMPTS {
            let current = self.store.get(group)?;
            let mut state = current.state;
            let (value, changed) = change(&mut state)?;
            let version = if changed {
                // Drop lease entries of ids that are no longer holders (e.g. removed by Airlock).
                let holders = &state.holders;
                state
                    .leases
                    .retain(|id, _| holders.iter().any(|holder| holder == id));
                match self
                    .store
                    .compare_and_swap(group, current.version, &state)?
                {
                    Some(version) => version,
                    None => continue,
                }
            } else {
                current.version
            };
            let durability = self.store.durability(group, version)?;
            return Ok(Deferred { value, durability });
        }
        Err(SemaphoreError::Contention {
            group: group.clone(),
            attempts: MAX_ATTEMPTS,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;
    use crate::memory::MemoryStore;
    use crate::store::Versioned;

    const NOW: u64 = 1_700_000_000;

    fn group() -> GroupName {
        GroupName::default_group()
    }

    fn get(semaphore: &Semaphore<MemoryStore>) -> Versioned {
        semaphore.store().get(&group()).unwrap()
    }

    #[test]
    fn acquires_until_full() {
        let semaphore = Semaphore::new(MemoryStore::new());
        assert_eq!(
            semaphore.lock(&group(), "b", 2, NOW).unwrap(),
            LockOutcome::Acquired
        );
        assert_eq!(
            semaphore.lock(&group(), "a", 2, NOW).unwrap(),
            LockOutcome::Acquired
        );
        assert_eq!(
            semaphore.lock(&group(), "c", 2, NOW).unwrap(),
            LockOutcome::Full {
                holders: vec!["a".to_owned(), "b".to_owned()],
                slots: 2
            }
        );
        let state = get(&semaphore).state;
        assert_eq!(state.total_slots, 2);
        assert_eq!(state.holders, ["a", "b"], "sorted, as Airlock keeps them");
    }

    #[test]
    fn lock_is_reentrant_without_writing() {
        let semaphore = Semaphore::new(MemoryStore::new());
        semaphore.lock(&group(), "a", 1, NOW).unwrap();
        let before = get(&semaphore);
        assert_eq!(
            semaphore.lock(&group(), "a", 1, NOW + 60).unwrap(),
            LockOutcome::AlreadyHeld
        );
        assert_eq!(get(&semaphore), before);
    }

    #[test]
    fn unlock_of_nothing_succeeds_without_writing() {
        let semaphore = Semaphore::new(MemoryStore::new());
        assert_eq!(
            semaphore.unlock(&group(), "a").unwrap(),
            UnlockOutcome::NotHeld
        );
        assert!(get(&semaphore).is_absent());
        assert!(semaphore.store().groups().unwrap().is_empty());
        semaphore.lock(&group(), "a", 1, NOW).unwrap();
        let before = get(&semaphore);
        assert_eq!(
            semaphore.unlock(&group(), "b").unwrap(),
            UnlockOutcome::NotHeld
        );
        assert_eq!(get(&semaphore), before);
    }

    #[test]
    fn unlock_frees_the_slot() {
        let semaphore = Semaphore::new(MemoryStore::new());
        semaphore.lock(&group(), "a", 1, NOW).unwrap();
        assert_eq!(
            semaphore.unlock(&group(), "a").unwrap(),
            UnlockOutcome::Released
        );
        assert_eq!(
            semaphore.unlock(&group(), "a").unwrap(),
            UnlockOutcome::NotHeld
        );
        assert_eq!(
            semaphore.lock(&group(), "b", 1, NOW).unwrap(),
            LockOutcome::Acquired
        );
        assert_eq!(get(&semaphore).state.holders, ["b"]);
    }

    #[test]
    fn shrinking_slots_evicts_nobody_and_admits_nobody_until_enough_leave() {
        let semaphore = Semaphore::new(MemoryStore::new());
        for id in ["a", "b", "c"] {
            semaphore.lock(&group(), id, 3, NOW).unwrap();
        }
        assert!(matches!(
            semaphore.lock(&group(), "d", 1, NOW).unwrap(),
            LockOutcome::Full { slots: 1, .. }
        ));
        assert_eq!(get(&semaphore).state.holders, ["a", "b", "c"]);
        assert_eq!(
            semaphore.lock(&group(), "b", 1, NOW).unwrap(),
            LockOutcome::AlreadyHeld
        );
        semaphore.unlock(&group(), "a").unwrap();
        semaphore.unlock(&group(), "b").unwrap();
        assert!(matches!(
            semaphore.lock(&group(), "d", 1, NOW).unwrap(),
            LockOutcome::Full { .. }
        ));
        semaphore.unlock(&group(), "c").unwrap();
        assert_eq!(
            semaphore.lock(&group(), "d", 1, NOW).unwrap(),
            LockOutcome::Acquired
        );
        assert_eq!(get(&semaphore).state.total_slots, 1);
    }

    #[test]
    fn configured_slots_override_stored_total() {
        let semaphore = Semaphore::new(MemoryStore::new());
        // As Airlock would have left it: one slot, taken, no leases.
        let airlock_state = GroupState {
            total_slots: 1,
            holders: vec!["a".to_owned()],
            ..Default::default()
        };
        semaphore
            .store()
            .compare_and_swap(&group(), 0, &airlock_state)
            .unwrap();
        assert_eq!(
            semaphore.lock(&group(), "b", 2, NOW).unwrap(),
            LockOutcome::Acquired
        );
        let state = get(&semaphore).state;
        assert_eq!(state.total_slots, 2);
        assert_eq!(state.holders, ["a", "b"]);
        assert_eq!(state.leases.get("b"), Some(&NOW));
        assert_eq!(state.leases.get("a"), None);
    }

    #[test]
    fn leases_record_acquisition_and_go_with_the_holder() {
        let semaphore = Semaphore::new(MemoryStore::new());
        semaphore.lock(&group(), "a", 2, NOW).unwrap();
        semaphore.lock(&group(), "b", 2, NOW + 5).unwrap();
        semaphore.lock(&group(), "a", 2, NOW + 10).unwrap();
        let state = get(&semaphore).state;
        assert_eq!(
            state.leases.get("a"),
            Some(&NOW),
            "re-entry keeps the first time"
        );
        assert_eq!(state.leases.get("b"), Some(&(NOW + 5)));
        semaphore.unlock(&group(), "a").unwrap();
        assert_eq!(
            get(&semaphore).state.leases.keys().collect::<Vec<_>>(),
            ["b"]
        );
    }

    #[test]
    fn release_expired_frees_silent_holders() {
        let semaphore = Semaphore::new(MemoryStore::new());
        semaphore.lock(&group(), "a", 3, NOW).unwrap();
        semaphore.lock(&group(), "b", 3, NOW + 50).unwrap();
        assert!(semaphore
            .release_expired(&group(), 100, NOW + 100)
            .unwrap()
            .is_empty());
        assert_eq!(
            semaphore.release_expired(&group(), 100, NOW + 101).unwrap(),
            ["a"]
        );
        assert_eq!(get(&semaphore).state.holders, ["b"]);
        // A holder written without a lease (by Airlock) starts its lease when first seen.
        let mut state = get(&semaphore).state;
        state.holders.push("c".to_owned());
        let version = get(&semaphore).version;
        semaphore
            .store()
            .compare_and_swap(&group(), version, &state)
            .unwrap();
        assert!(semaphore
            .release_expired(&group(), 100, NOW + 120)
            .unwrap()
            .is_empty());
        assert_eq!(get(&semaphore).state.leases.get("c"), Some(&(NOW + 120)));
        assert_eq!(
            semaphore.release_expired(&group(), 100, NOW + 221).unwrap(),
            ["b", "c"]
        );
        assert!(get(&semaphore).state.holders.is_empty());
    }

    #[test]
    fn empty_id_is_an_error() {
        let semaphore = Semaphore::new(MemoryStore::new());
        assert!(matches!(
            semaphore.lock(&group(), "", 1, NOW),
            Err(SemaphoreError::EmptyId)
        ));
        assert!(matches!(
            semaphore.unlock(&group(), ""),
            Err(SemaphoreError::EmptyId)
        ));
    }

    #[test]
    fn a_batch_runs_in_order_as_one_write() {
        let semaphore = Semaphore::new(MemoryStore::new());
        let lock = |id: &str| Op::Lock {
            id: id.to_owned(),
            slots: 1,
            now_unix_seconds: NOW,
        };
        let outcomes = semaphore
            .apply(
                &group(),
                &[
                    lock("a"),
                    lock("b"),
                    lock("a"),
                    Op::Unlock { id: "a".into() },
                    lock("b"),
                    Op::Unlock { id: "c".into() },
                ],
            )
            .unwrap()
            .wait()
            .unwrap();
        assert_eq!(
            outcomes,
            [
                Outcome::Lock(LockOutcome::Acquired),
                Outcome::Lock(LockOutcome::Full {
                    holders: vec!["a".into()],
                    slots: 1
                }),
                Outcome::Lock(LockOutcome::AlreadyHeld),
                Outcome::Unlock(UnlockOutcome::Released),
                Outcome::Lock(LockOutcome::Acquired),
                Outcome::Unlock(UnlockOutcome::NotHeld),
            ]
        );
        let after = get(&semaphore);
        assert_eq!(after.version, 1, "one write for the whole batch");
        assert_eq!(after.state.holders, ["b"]);
        // A batch that changes nothing writes nothing; an invalid op fails the whole batch.
        semaphore
            .apply(&group(), &[lock("b")])
            .unwrap()
            .wait()
            .unwrap();
        assert_eq!(get(&semaphore).version, 1);
        assert!(matches!(
            semaphore.apply(&group(), &[Op::Unlock { id: "b".into() }, lock("")]),
            Err(SemaphoreError::EmptyId)
        ));
        assert_eq!(get(&semaphore).state.holders, ["b"]);
    }

    /// A store where another writer takes the last slot just before our first write.
    struct RacedStore {
        inner: MemoryStore,
        raced: AtomicBool,
    }

    impl Store for RacedStore {
        fn get(&self, group: &GroupName) -> Result<Versioned, StoreError> {
            self.inner.get(group)
        }

        fn compare_and_swap(
            &self,
            group: &GroupName,
            expected_version: u64,
            new: &GroupState,
        ) -> Result<Option<u64>, StoreError> {
            if !self.raced.swap(true, Ordering::SeqCst) {
                let other = GroupState {
                    total_slots: 1,
                    holders: vec!["other".to_owned()],
                    ..Default::default()
                };
                self.inner
                    .compare_and_swap(group, expected_version, &other)?;
            }
            self.inner.compare_and_swap(group, expected_version, new)
        }

        fn groups(&self) -> Result<Vec<GroupName>, StoreError> {
            self.inner.groups()
        }
    }

    #[test]
    fn conflict_is_retried_against_the_new_state() {
        let semaphore = Semaphore::new(RacedStore {
            inner: MemoryStore::new(),
            raced: AtomicBool::new(false),
        });
        assert_eq!(
            semaphore.lock(&group(), "a", 1, NOW).unwrap(),
            LockOutcome::Full {
                holders: vec!["other".to_owned()],
                slots: 1
            }
        );
    }
}
