//! The embedded store's durability: reopening keeps every holder, crashes leave old or new state,
//! a corrupt file names itself, and a data directory has one owner.

use cairn_lock::{EmbeddedStore, GroupName, Semaphore, Store, StoreError};

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
fn crash_mid_write_keeps_the_old_state() {
    let dir = tempfile::tempdir().unwrap();
    let group = GroupName::default_group();
    let before = {
        let semaphore = Semaphore::new(EmbeddedStore::open(dir.path()).unwrap());
        semaphore.lock(&group, "a", 2, NOW).unwrap();
        semaphore.store().get(&group).unwrap()
    };
    // What a crash between creating the temp file and renaming it leaves behind.
    std::fs::write(dir.path().join("default.json~"), b"{\"version\": 2, \"sta").unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(store.get(&group).unwrap(), before);
    assert!(
        !dir.path().join("default.json~").exists(),
        "leftover removed"
    );
    let semaphore = Semaphore::new(store);
    semaphore.lock(&group, "b", 2, NOW).unwrap();
    assert_eq!(
        semaphore.store().get(&group).unwrap().state.holders,
        ["a", "b"]
    );
}

#[test]
fn corrupt_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    {
        let semaphore = Semaphore::new(EmbeddedStore::open(dir.path()).unwrap());
        semaphore
            .lock(&GroupName::default_group(), "a", 1, NOW)
            .unwrap();
    }
    let path = dir.path().join("default.json");
    std::fs::write(
        &path,
        b"{\"version\": 1, \"state\": {\"total_slots\": \"two\"",
    )
    .unwrap();
    let error = EmbeddedStore::open(dir.path()).unwrap_err();
    assert!(
        matches!(&error, StoreError::Corrupt { path: named, .. } if *named == path),
        "{error:?}"
    );
    assert!(
        error.to_string().contains(&path.display().to_string()),
        "{error}"
    );
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
    std::fs::write(dir.path().join("not_a_group.json"), b"garbage").unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    assert!(store.groups().unwrap().is_empty());
}
