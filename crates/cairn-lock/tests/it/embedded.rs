//! The embedded store's durability: reopening keeps every holder, a torn last record is dropped,
//! a corrupt record names file and line, compaction loses nothing, concurrent writers are all
//! durable, and a data directory has one owner.

use cairn_lock::{EmbeddedStore, GroupName, LockOutcome, Semaphore, Store, StoreError};

const NOW: u64 = 1_700_000_000;

#[test]
fn reopened_store_keeps_every_holder() {
    let dir = tempfile::tempdir().unwrap();
    let workers: GroupName = "workers".parse().unwrap();
    let default = GroupName::default_group();
    let before = {
        let semaphore = Semaphore::new(EmbeddedStore::open(dir.path()).unwrap());
        for id in 0..5 {
            semaphore
                .lock(&workers, &format!("node-{id}"), 5, NOW + id)
                .unwrap();
        }
        semaphore.unlock(&workers, "node-2").unwrap();
        semaphore.lock(&default, "solo", 1, NOW).unwrap();
        (
            semaphore.store().get(&workers).unwrap(),
            semaphore.store().get(&default).unwrap(),
        )
    };
    let store = EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(store.groups().unwrap(), [default.clone(), workers.clone()]);
    let after = (store.get(&workers).unwrap(), store.get(&default).unwrap());
    assert_eq!(after, before);
    assert_eq!(
        after.0.state.holders,
        ["node-0", "node-1", "node-3", "node-4"]
    );
    assert_eq!(after.0.state.leases.get("node-4"), Some(&(NOW + 4)));
    // Versions carry on, so a CAS prepared before the restart cannot land twice.
    let version = after.0.version;
    assert_eq!(
        store
            .compare_and_swap(&workers, version - 1, &after.0.state)
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .compare_and_swap(&workers, version, &after.0.state)
            .unwrap(),
        Some(version + 1)
    );
}

#[test]
fn a_write_cut_short_by_a_crash_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let group = GroupName::default_group();
    let before = {
        let semaphore = Semaphore::new(EmbeddedStore::open(dir.path()).unwrap());
        semaphore.lock(&group, "a", 2, NOW).unwrap();
        semaphore.store().get(&group).unwrap()
    };
    // What a crash in the middle of appending a record leaves behind: a line without its end.
    let journal = dir.path().join("journal");
    let complete = std::fs::read(&journal).unwrap();
    let mut torn = complete.clone();
    torn.extend_from_slice(b"{\"group\":\"default\",\"version\":2,\"sta");
    std::fs::write(&journal, &torn).unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(store.get(&group).unwrap(), before);
    assert_eq!(
        std::fs::read(&journal).unwrap(),
        complete,
        "the torn tail is cut"
    );
    let semaphore = Semaphore::new(store);
    semaphore.lock(&group, "b", 2, NOW).unwrap();
    drop(semaphore);
    let store = EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(store.get(&group).unwrap().state.holders, ["a", "b"]);
}

#[test]
fn a_corrupt_record_is_an_error_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    {
        let semaphore = Semaphore::new(EmbeddedStore::open(dir.path()).unwrap());
        semaphore
            .lock(&GroupName::default_group(), "a", 1, NOW)
            .unwrap();
        semaphore.unlock(&GroupName::default_group(), "a").unwrap();
    }
    let path = dir.path().join("journal");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    lines[0] = r#"{"group":"default","version":1,"state":{"total_slots":"two"}}"#;
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let error = EmbeddedStore::open(dir.path()).unwrap_err();
    assert!(
        matches!(&error, StoreError::CorruptJournal { path: named, line: 1, .. } if *named == path),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("line 1"), "{message}");

    // A version going backwards is corruption too.
    let record = r#"{"group":"default","version":1,"state":{"total_slots":1,"holders":[]}}"#;
    std::fs::write(&path, format!("{record}\n{record}\n")).unwrap();
    let error = EmbeddedStore::open(dir.path()).unwrap_err();
    assert!(
        matches!(&error, StoreError::CorruptJournal { line: 2, .. }),
        "{error:?}"
    );
}

#[test]
fn compaction_keeps_every_group_and_bounds_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let groups: Vec<GroupName> = ["a", "b", "c"].iter().map(|g| g.parse().unwrap()).collect();
    let before: Vec<_> = {
        let store = EmbeddedStore::open_with_compaction(dir.path(), 4096).unwrap();
        let semaphore = Semaphore::new(store);
        for round in 0..500u64 {
            for group in &groups {
                let id = format!("node-{}", round % 7);
                semaphore.lock(group, &id, 3, NOW + round).unwrap();
                if round % 3 == 0 {
                    semaphore.unlock(group, &id).unwrap();
                }
            }
        }
        let journal = std::fs::metadata(dir.path().join("journal")).unwrap();
        assert!(
            journal.len() < 3 * 4096,
            "journal of {} bytes",
            journal.len()
        );
        groups
            .iter()
            .map(|group| semaphore.store().get(group).unwrap())
            .collect()
    };
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let after: Vec<_> = groups.iter().map(|g| store.get(g).unwrap()).collect();
    assert_eq!(after, before);
    // A compaction cut short leaves the journal as it was, and its leftover is removed.
    drop(store);
    std::fs::write(dir.path().join("journal.new"), b"{\"grou").unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(store.get(&groups[0]).unwrap(), before[0]);
    assert!(!dir.path().join("journal.new").exists());
}

/// Many threads at once share syncs (group commit), and every acknowledged write is on disk.
#[test]
fn concurrent_writers_are_all_durable() {
    let dir = tempfile::tempdir().unwrap();
    let group = GroupName::default_group();
    {
        let semaphore = Semaphore::new(EmbeddedStore::open(dir.path()).unwrap());
        std::thread::scope(|scope| {
            for thread in 0..16 {
                let (semaphore, group) = (&semaphore, &group);
                scope.spawn(move || {
                    for round in 0..20 {
                        let id = format!("t{thread}-{round}");
                        assert_eq!(
                            semaphore.lock(group, &id, 1000, NOW).unwrap(),
                            LockOutcome::Acquired
                        );
                        if round % 2 == 0 {
                            semaphore.unlock(group, &id).unwrap();
                        }
                    }
                });
            }
        });
    }
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let state = store.get(&group).unwrap();
    assert_eq!(state.version, 16 * 30, "every write is in the journal");
    let mut expected: Vec<String> = (0..16)
        .flat_map(|thread| {
            (1..20)
                .step_by(2)
                .map(move |round| format!("t{thread}-{round}"))
        })
        .collect();
    expected.sort();
    assert_eq!(state.state.holders, expected);
}

#[test]
fn data_dir_has_one_owner() {
    let dir = tempfile::tempdir().unwrap();
    let first = EmbeddedStore::open(dir.path()).unwrap();
    let error = EmbeddedStore::open(dir.path()).unwrap_err();
    assert!(
        matches!(error, StoreError::DataDirInUse { .. }),
        "{error:?}"
    );
    drop(first);
    EmbeddedStore::open(dir.path()).unwrap();
}

#[test]
fn unrelated_files_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("README"), b"hello").unwrap();
    std::fs::write(dir.path().join("default.json"), b"garbage").unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    assert!(store.groups().unwrap().is_empty());
}
