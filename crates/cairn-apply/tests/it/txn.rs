//! The journalled switch: results, a crash before every journal step (then recovery),
//! a failure half-way, and writes through symlinks that must stay inside the root.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use cairn_apply::txn::{apply, apply_crashing_at, recover, Change, TxnError};

/// Every entry below `root`: (type, mode, uid, gid, content or link target).
fn snapshot(root: &Path) -> BTreeMap<String, (char, u32, u32, u32, Vec<u8>)> {
    let mut out = BTreeMap::new();
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, (char, u32, u32, u32, Vec<u8>)>) {
        for e in fs::read_dir(dir).unwrap() {
            let path = e.unwrap().path();
            let m = fs::symlink_metadata(&path).unwrap();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            let (kind, data) = if m.file_type().is_symlink() {
                (
                    'l',
                    fs::read_link(&path)
                        .unwrap()
                        .display()
                        .to_string()
                        .into_bytes(),
                )
            } else if m.is_dir() {
                walk(root, &path, out);
                ('d', vec![])
            } else {
                ('-', fs::read(&path).unwrap())
            };
            out.insert(rel, (kind, m.mode() & 0o7777, m.uid(), m.gid(), data));
        }
    }
    walk(root, root, &mut out);
    out
}

fn seed(root: &Path) {
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::create_dir_all(root.join("usr/share")).unwrap();
    fs::write(root.join("etc/motd"), "old motd\n").unwrap();
    fs::set_permissions(root.join("etc/motd"), fs::Permissions::from_mode(0o644)).unwrap();
    fs::create_dir(root.join("etc/existing")).unwrap();
}

fn changes() -> Vec<Change> {
    vec![
        Change::Dir {
            path: "/etc/app".into(),
            mode: 0o750,
            uid: 0,
            gid: 10,
        },
        Change::File {
            path: "/etc/app/app.conf".into(),
            contents: b"key=value\n".to_vec(),
            mode: 0o600,
            uid: 1000,
            gid: 1000,
        },
        Change::File {
            path: "/etc/motd".into(),
            contents: b"new motd\n".to_vec(),
            mode: 0o644,
            uid: 0,
            gid: 0,
        },
        Change::Dir {
            path: "/etc/existing".into(),
            mode: 0o700,
            uid: 0,
            gid: 0,
        },
        Change::Symlink {
            path: "/etc/localtime".into(),
            target: "../usr/share/zoneinfo/UTC".into(),
            uid: 0,
            gid: 0,
        },
        Change::File {
            path: "/usr/share/tool".into(),
            contents: b"#!/bin/sh\n".to_vec(),
            mode: 0o4755,
            uid: 0,
            gid: 0,
        },
    ]
}

#[test]
fn changes_land_with_modes_and_owners() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    seed(&root);
    apply(&root, &changes()).unwrap();
    let s = snapshot(&root);
    assert_eq!(s["etc/app"].0, 'd');
    assert_eq!((s["etc/app"].1, s["etc/app"].3), (0o750, 10));
    assert_eq!(
        s["etc/app/app.conf"],
        ('-', 0o600, 1000, 1000, b"key=value\n".to_vec())
    );
    assert_eq!(s["etc/motd"].4, b"new motd\n");
    assert_eq!(s["etc/existing"].1, 0o700);
    assert_eq!(s["etc/localtime"].4, b"../usr/share/zoneinfo/UTC");
    assert_eq!(s["usr/share/tool"].1, 0o4755);
    assert!(!root.join(".cairn-apply").exists());
}

#[test]
fn a_crash_before_any_journal_step_is_undone_by_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("template");
    seed(&template);
    let before = snapshot(&template);
    let reference = dir.path().join("reference");
    seed(&reference);
    apply(&reference, &changes()).unwrap();
    let after = snapshot(&reference);
    let mut crashes = 0;
    for n in 0.. {
        let root = dir.path().join(format!("run-{n}"));
        seed(&root);
        match apply_crashing_at(&root, &changes(), n) {
            Ok(()) => {
                assert_eq!(snapshot(&root), after);
                break;
            }
            Err(TxnError::Crashed(_)) => {}
            Err(e) => panic!("{e}"),
        }
        crashes += 1;
        assert!(root.join(".cairn-apply/journal").exists() || n == 0);
        assert!(recover(&root).unwrap());
        assert_eq!(snapshot(&root), before, "after a crash at step {n}");
        // And a good run afterwards succeeds.
        apply(&root, &changes()).unwrap();
        assert_eq!(snapshot(&root), after, "rerun after a crash at step {n}");
        assert!(n < 100);
    }
    assert!(crashes >= 8, "only {crashes} journal steps");
}

#[test]
fn a_failure_half_way_leaves_the_root_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    seed(&root);
    let before = snapshot(&root);
    let mut bad = changes();
    bad.push(Change::File {
        path: "/etc/existing".into(),
        contents: b"not a directory".to_vec(),
        mode: 0o644,
        uid: 0,
        gid: 0,
    });
    let err = apply(&root, &bad).unwrap_err().to_string();
    assert!(err.contains("/etc/existing is a directory"), "{err}");
    assert_eq!(snapshot(&root), before);
}

#[test]
fn symlinks_in_the_root_resolve_inside_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    seed(&root);
    let outside = dir.path().join("outside");
    fs::create_dir(&outside).unwrap();
    // An absolute symlink means the root's /…, as Ignition reads it.
    fs::create_dir_all(root.join("var/lib/data")).unwrap();
    std::os::unix::fs::symlink("/var/lib/data", root.join("etc/data")).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("etc/escape")).unwrap();
    std::os::unix::fs::symlink("../../..", root.join("etc/up")).unwrap();
    let file = |path: &str| Change::File {
        path: path.into(),
        contents: b"x".to_vec(),
        mode: 0o644,
        uid: 0,
        gid: 0,
    };
    apply(&root, &[file("/etc/data/through")]).unwrap();
    assert!(root.join("var/lib/data/through").is_file());
    for path in ["/etc/escape/x", "/etc/up/x"] {
        let _ = apply(&root, &[file(path)]);
    }
    assert_eq!(
        fs::read_dir(&outside).unwrap().count(),
        0,
        "nothing written outside"
    );
    assert!(!dir.path().join("x").exists());
    // `..` above the root stays at the root: `/etc/up/x` is the root's /x.
    assert!(root.join("x").is_file());
    assert!(apply(&root, &[file("/etc/../x")]).is_err());
}
