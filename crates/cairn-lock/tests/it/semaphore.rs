//! The semaphore's invariants under random interleavings of up to 1,000 clients: holders never
//! exceed slots, locks are re-entrant, and every slot taken is given back.

use std::collections::BTreeSet;
use std::sync::Arc;

use cairn_lock::{
    GroupName, GroupState, LockOutcome, MemoryStore, Op, Outcome, Semaphore, Store, StoreError,
    UnlockOutcome, Versioned,
};
use proptest::prelude::*;

const NOW: u64 = 1_700_000_000;

#[derive(Debug, Clone)]
enum Operation {
    Lock(usize),
    Unlock(usize),
}

/// Random operations by `clients` clients, half of them by a few busy clients so that
/// re-entry, unlock by a holder and contention for slots all happen often.
fn operations(clients: usize) -> impl Strategy<Value = Vec<Operation>> {
    let client = prop_oneof![0..clients.min(6), 0..clients];
    prop::collection::vec(
        prop_oneof![
            client.clone().prop_map(Operation::Lock),
            client.prop_map(Operation::Unlock),
        ],
        0..400,
    )
}

fn client_id(client: usize) -> String {
    format!("machine-{client:04}")
}

proptest! {
    /// Each operation's outcome is what a plain set of holders predicts, and the stored state
    /// never has more holders than slots.
    #[test]
    fn random_interleavings_follow_the_model(
        (_clients, ops) in (1usize..=1000).prop_flat_map(|clients| (Just(clients), operations(clients))),
        slots in 1u64..=4,
    ) {
        let group = GroupName::default_group();
        let semaphore = Semaphore::new(MemoryStore::new());
        let mut model = BTreeSet::new();
        for (step, op) in ops.iter().enumerate() {
            let now = NOW + step as u64;
            match *op {
                Operation::Lock(client) => {
                    let outcome = semaphore.lock(&group, &client_id(client), slots, now).unwrap();
                    let expected = if model.contains(&client) {
                        LockOutcome::AlreadyHeld
                    } else if (model.len() as u64) < slots {
                        model.insert(client);
                        LockOutcome::Acquired
                    } else {
                        LockOutcome::Full {
                            holders: model.iter().map(|&c| client_id(c)).collect(),
                            slots,
                        }
                    };
                    prop_assert_eq!(outcome, expected);
                }
                Operation::Unlock(client) => {
                    let outcome = semaphore.unlock(&group, &client_id(client)).unwrap();
                    let expected = if model.remove(&client) {
                        UnlockOutcome::Released
                    } else {
                        UnlockOutcome::NotHeld
                    };
                    prop_assert_eq!(outcome, expected);
                }
            }
            let state = semaphore.store().get(&group).unwrap().state;
            prop_assert!(state.holders.len() as u64 <= slots);
            let holders: Vec<String> = model.iter().map(|&c| client_id(c)).collect();
            prop_assert_eq!(&state.holders, &holders);
            prop_assert_eq!(state.leases.keys().cloned().collect::<Vec<_>>(), holders);
        }
        // Every slot taken is given back.
        for client in model.clone() {
            prop_assert_eq!(
                semaphore.unlock(&group, &client_id(client)).unwrap(),
                UnlockOutcome::Released
            );
        }
        let state = semaphore.store().get(&group).unwrap().state;
        prop_assert!(state.holders.is_empty());
        prop_assert!(state.leases.is_empty());
    }
}

proptest! {
    /// A batch (as the server applies queued requests) gives each operation the outcome it
    /// would have had alone, in order, and the same final state, in one write.
    #[test]
    fn a_batch_equals_its_operations_one_by_one(
        (_clients, ops) in (1usize..=50).prop_flat_map(|clients| (Just(clients), operations(clients))),
        chunk in 1usize..=32,
        slots in 1u64..=4,
    ) {
        let group = GroupName::default_group();
        let op = |operation: &Operation| match *operation {
            Operation::Lock(client) => Op::Lock {
                id: client_id(client),
                slots,
                now_unix_seconds: NOW,
            },
            Operation::Unlock(client) => Op::Unlock { id: client_id(client) },
        };
        let alone = Semaphore::new(MemoryStore::new());
        let expected: Vec<Outcome> = ops
            .iter()
            .map(|operation| alone.apply(&group, &[op(operation)]).unwrap().wait().unwrap().remove(0))
            .collect();
        let batched = Semaphore::new(MemoryStore::new());
        let mut outcomes = Vec::new();
        let mut writes = 0;
        for batch in ops.chunks(chunk) {
            let before = batched.store().get(&group).unwrap().version;
            let ops: Vec<Op> = batch.iter().map(op).collect();
            outcomes.extend(batched.apply(&group, &ops).unwrap().wait().unwrap());
            let after = batched.store().get(&group).unwrap().version;
            prop_assert!(after - before <= 1, "a batch is at most one write");
            writes += after - before;
        }
        prop_assert_eq!(outcomes, expected);
        prop_assert_eq!(
            batched.store().get(&group).unwrap().state,
            alone.store().get(&group).unwrap().state
        );
        prop_assert!(writes <= ops.len().div_ceil(chunk) as u64);
    }
}

/// A store that checks, at every successful write, that holders never exceed `slots`.
struct CheckingStore {
    inner: MemoryStore,
    slots: u64,
}

impl Store for CheckingStore {
    fn get(&self, group: &GroupName) -> Result<Versioned, StoreError> {
        self.inner.get(group)
    }

    fn compare_and_swap(
        &self,
        group: &GroupName,
        expected_version: u64,
        new: &GroupState,
    ) -> Result<Option<u64>, StoreError> {
        assert!(
            new.holders.len() as u64 <= self.slots,
            "write with {} holders over {} slots",
            new.holders.len(),
            self.slots
        );
        self.inner.compare_and_swap(group, expected_version, new)
    }

    fn groups(&self) -> Result<Vec<GroupName>, StoreError> {
        self.inner.groups()
    }
}

/// 1,000 clients on 8 threads, really concurrent: each takes a slot (retrying while full),
/// re-enters, gives it back. Every client gets its turn and the group ends empty.
#[test]
fn concurrent_clients_never_exceed_slots_and_give_every_slot_back() {
    const CLIENTS: usize = 1000;
    const THREADS: usize = 8;
    const SLOTS: u64 = 3;
    let group = GroupName::default_group();
    let semaphore = Arc::new(Semaphore::new(CheckingStore {
        inner: MemoryStore::new(),
        slots: SLOTS,
    }));
    std::thread::scope(|scope| {
        for thread in 0..THREADS {
            let (semaphore, group) = (&semaphore, &group);
            scope.spawn(move || {
                for client in (thread..CLIENTS).step_by(THREADS) {
                    let id = client_id(client);
                    loop {
                        match semaphore.lock(group, &id, SLOTS, NOW).unwrap() {
                            LockOutcome::Acquired => break,
                            LockOutcome::Full { holders, slots } => {
                                assert_eq!(slots, SLOTS);
                                assert!(holders.len() as u64 <= SLOTS);
                                std::thread::yield_now();
                            }
                            LockOutcome::AlreadyHeld => panic!("{id} held before locking"),
                        }
                    }
                    assert_eq!(
                        semaphore.lock(group, &id, SLOTS, NOW).unwrap(),
                        LockOutcome::AlreadyHeld
                    );
                    assert_eq!(
                        semaphore.unlock(group, &id).unwrap(),
                        UnlockOutcome::Released
                    );
                    assert_eq!(
                        semaphore.unlock(group, &id).unwrap(),
                        UnlockOutcome::NotHeld
                    );
                }
            });
        }
    });
    let state = semaphore.store().get(&group).unwrap().state;
    assert!(state.holders.is_empty(), "{state:?}");
    assert!(state.leases.is_empty());
}
