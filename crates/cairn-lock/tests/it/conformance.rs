//! The storage conformance suite: written once over `&dyn Store`, run against every backend.

use std::collections::BTreeSet;
use std::sync::{Barrier, Mutex};

use cairn_lock::{EmbeddedStore, GroupName, GroupState, MemoryStore, Store};

pub fn group(name: &str) -> GroupName {
    name.parse().unwrap()
}

pub fn state(total_slots: u64, holders: &[&str]) -> GroupState {
    GroupState {
        total_slots,
        holders: holders.iter().map(|holder| holder.to_string()).collect(),
        ..Default::default()
    }
}

pub fn get_absent(store: &dyn Store) {
    let versioned = store.get(&group("absent")).unwrap();
    assert_eq!(versioned.version, 0);
    assert_eq!(versioned.state, GroupState::default());
}

pub fn cas_create(store: &dyn Store) {
    let written = state(2, &["a"]);
    let version = store
        .compare_and_swap(&group("create"), 0, &written)
        .unwrap();
    let version = version.expect("creating an absent group succeeds");
    assert!(version > 0);
    let read = store.get(&group("create")).unwrap();
    assert_eq!(read.version, version);
    assert_eq!(read.state, written);
}

pub fn cas_conflict(store: &dyn Store) {
    let first = state(1, &["a"]);
    let version = store
        .compare_and_swap(&group("conflict"), 0, &first)
        .unwrap()
        .unwrap();
    // Creating again, and writing at a stale or future version, all fail and change nothing.
    for expected in [0, version - 1, version + 1] {
        if expected == version {
            continue;
        }
        let outcome = store
            .compare_and_swap(&group("conflict"), expected, &state(1, &["b"]))
            .unwrap();
        assert_eq!(outcome, None, "expected version {expected}");
    }
    let read = store.get(&group("conflict")).unwrap();
    assert_eq!((read.version, read.state), (version, first));
}

pub fn cas_update(store: &dyn Store) {
    let mut version = store
        .compare_and_swap(&group("update"), 0, &state(1, &[]))
        .unwrap()
        .unwrap();
    let mut leased = state(3, &["a", "b"]);
    leased.leases.insert("a".to_owned(), 1_700_000_000);
    for new in [state(3, &["a"]), leased, state(1, &[])] {
        let next = store
            .compare_and_swap(&group("update"), version, &new)
            .unwrap()
            .expect("write at the current version succeeds");
        assert!(next > version, "versions increase");
        version = next;
        let read = store.get(&group("update")).unwrap();
        assert_eq!((read.version, read.state), (version, new));
    }
}

pub fn groups_listing(store: &dyn Store) {
    assert!(store.groups().unwrap().is_empty());
    for name in ["workers", "default", "db.eu-1"] {
        store
            .compare_and_swap(&group(name), 0, &state(1, &[]))
            .unwrap()
            .unwrap();
    }
    // A failed CAS and a read do not create a group.
    store.get(&group("ghost")).unwrap();
    store
        .compare_and_swap(&group("ghost"), 5, &state(1, &[]))
        .unwrap();
    assert_eq!(
        store.groups().unwrap(),
        [group("db.eu-1"), group("default"), group("workers")]
    );
}

/// 8 threads write at the same version at once, round after round: exactly one wins each round.
pub fn concurrent_cas_one_winner_per_version(store: &dyn Store) {
    const THREADS: usize = 8;
    const ROUNDS: usize = 20;
    let name = group("race");
    let barrier = Barrier::new(THREADS);
    let winners = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for thread in 0..THREADS {
            let (name, barrier, winners) = (&name, &barrier, &winners);
            scope.spawn(move || {
                for round in 0..ROUNDS {
                    barrier.wait();
                    let current = store.get(name).unwrap();
                    barrier.wait(); // everyone has read the same version
                    let mut new = current.state.clone();
                    new.total_slots = THREADS as u64;
                    new.holders.push(format!("{round}-{thread}"));
                    if let Some(version) =
                        store.compare_and_swap(name, current.version, &new).unwrap()
                    {
                        winners
                            .lock()
                            .unwrap()
                            .push((round, current.version, version));
                    }
                    barrier.wait(); // the round is over before anyone reads again
                }
            });
        }
    });
    let winners = winners.into_inner().unwrap();
    assert_eq!(winners.len(), ROUNDS, "one winner per round: {winners:?}");
    let rounds: BTreeSet<usize> = winners.iter().map(|(round, _, _)| *round).collect();
    assert_eq!(rounds.len(), ROUNDS);
    let final_state = store.get(&name).unwrap();
    assert_eq!(final_state.state.holders.len(), ROUNDS, "no write was lost");
}

/// Runs every conformance test against a fresh store from `new_store`.
macro_rules! conformance_suite {
    ($backend:ident, $new_store:expr) => {
        mod $backend {
            use super::*;

            #[test]
            fn get_absent() {
                let store = $new_store;
                super::get_absent(&*store);
            }

            #[test]
            fn cas_create() {
                let store = $new_store;
                super::cas_create(&*store);
            }

            #[test]
            fn cas_conflict() {
                let store = $new_store;
                super::cas_conflict(&*store);
            }

            #[test]
            fn cas_update() {
                let store = $new_store;
                super::cas_update(&*store);
            }

            #[test]
            fn groups_listing() {
                let store = $new_store;
                super::groups_listing(&*store);
            }

            #[test]
            fn concurrent_cas_one_winner_per_version() {
                let store = $new_store;
                super::concurrent_cas_one_winner_per_version(&*store);
            }
        }
    };
}

/// An embedded store in a temp dir that lives as long as the store.
pub struct TempEmbeddedStore {
    store: EmbeddedStore,
    _dir: tempfile::TempDir,
}

impl TempEmbeddedStore {
    pub fn new() -> TempEmbeddedStore {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        TempEmbeddedStore { store, _dir: dir }
    }
}

impl std::ops::Deref for TempEmbeddedStore {
    type Target = EmbeddedStore;

    fn deref(&self) -> &EmbeddedStore {
        &self.store
    }
}

conformance_suite!(memory, Box::new(MemoryStore::new()));
conformance_suite!(embedded, TempEmbeddedStore::new());

/// A store on the shared etcd under a prefix of its own; `None` (the test skips) when etcd is not
/// installed and `CAIRN_REQUIRE_PEERS` is unset.
fn shared_etcd_store() -> Option<Box<cairn_lock::EtcdStore>> {
    crate::etcd::store_on_shared_etcd().map(Box::new)
}

conformance_suite!(
    etcd,
    match shared_etcd_store() {
        Some(store) => store,
        None => return,
    }
);
