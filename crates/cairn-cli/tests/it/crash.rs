//! Acceptance 3: a commit killed at any write point leaves an fsck-clean repository
//! whose ref points at the old or the new commit, never at a missing object.

use std::fs;
use std::process::Command;

use crate::support::*;

#[test]
fn commit_killed_at_every_write_point_leaves_a_clean_repo() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    build_tree(&tree, false);
    for mode in ["archive", "bare-user"] {
        let repo = tmp.path().join(format!("repo-{mode}"));
        let r = repo.to_str().unwrap();
        cairn_ok(&["repo", "init", "--repo", r, "--mode", mode]);
        let old = cairn_ok(&[
            "repo",
            "commit",
            "--repo",
            r,
            "-b",
            "main",
            "--timestamp",
            "@1000",
            tree.to_str().unwrap(),
        ])
        .trim()
        .to_owned();
        let points = [
            "object:1",
            "object:3",
            "object:7",
            "commit:1",
            "publish:1",
            "publish:5",
            "publish:9",
            "ref:1",
        ];
        for (i, point) in points.iter().enumerate() {
            // Every round changes the tree, so there are new objects to write.
            fs::write(
                tree.join("usr/bin/tool"),
                format!("#!/bin/sh\necho {mode} round {i}\n"),
            )
            .unwrap();
            // Ten new content objects and new dirtrees each round: every point below is reached.
            for j in 0..10 {
                fs::write(
                    tree.join(format!("etc/new-{i}-{j}")),
                    format!("new file {mode} {i} {j}\n"),
                )
                .unwrap();
            }
            fs::create_dir_all(tree.join(format!("var/dir-{i}"))).unwrap();
            let before = cairn_ok(&["repo", "rev-parse", "--repo", r, "main"])
                .trim()
                .to_owned();
            let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
                .args([
                    "repo",
                    "commit",
                    "--repo",
                    r,
                    "-b",
                    "main",
                    "--no-cache",
                    tree.to_str().unwrap(),
                ])
                .env("CAIRN_FAULT", point)
                .output()
                .unwrap();
            assert!(
                !out.status.success(),
                "{mode} {point}: the fault did not fire: {}",
                stderr(&out)
            );
            assert!(
                stderr(&out).contains("fault injected"),
                "{mode} {point}: {}",
                stderr(&out)
            );

            let fsck = cairn(&["repo", "fsck", "--repo", r]);
            assert!(
                fsck.status.success(),
                "{mode} {point}: cairn fsck: {}",
                stderr(&fsck)
            );
            if have_peer("ostree") {
                ostree_fsck_ok(&format!("--repo={r}"));
            }
            let after = cairn_ok(&["repo", "rev-parse", "--repo", r, "main"])
                .trim()
                .to_owned();
            assert_eq!(
                after, before,
                "{mode} {point}: the ref moved although the commit was killed"
            );
            cairn_ok(&["repo", "show", "--repo", r, &after]);
        }
        // The next commit after all those crashes succeeds and is complete.
        let new = cairn_ok(&[
            "repo",
            "commit",
            "--repo",
            r,
            "-b",
            "main",
            tree.to_str().unwrap(),
        ])
        .trim()
        .to_owned();
        assert_ne!(new, old);
        cairn_ok(&["repo", "fsck", "--repo", r]);
        let dest = tmp.path().join(format!("co-{mode}"));
        cairn_ok(&[
            "repo",
            "checkout",
            "--repo",
            r,
            "main",
            dest.to_str().unwrap(),
        ]);
        assert_same_tree(
            &snapshot(&tree, true, mode != "archive"),
            &snapshot(&dest, true, mode != "archive"),
        );
        // Prune removes the staging directories the killed commits left in tmp/.
        cairn_ok(&["repo", "prune", "--repo", r]);
        let leftovers: Vec<_> = fs::read_dir(repo.join("tmp"))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("staging-"))
            .collect();
        assert!(
            leftovers.is_empty(),
            "staging directories left: {leftovers:?}"
        );
    }
}

#[test]
fn a_ref_written_after_a_crash_never_names_a_missing_object() {
    // Kill right before the ref moves: every object of the new commit must already be in
    // objects/, so even a ref pointed at it by hand is complete.
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    build_tree(&tree, false);
    let repo = tmp.path().join("repo");
    let r = repo.to_str().unwrap();
    cairn_ok(&["repo", "init", "--repo", r, "--mode", "archive"]);
    let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args([
            "repo",
            "commit",
            "--repo",
            r,
            "-b",
            "main",
            "--orphan",
            "--timestamp",
            "@5",
            tree.to_str().unwrap(),
        ])
        .env("CAIRN_FAULT", "ref:1")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let commits: Vec<String> =
        cairn_store::prune::list_objects(&cairn_store::Repo::open(&repo).unwrap())
            .unwrap()
            .into_iter()
            .filter(|(_, k)| *k == cairn_store::ObjectType::Commit)
            .map(|(c, _)| c.to_hex())
            .collect();
    assert_eq!(
        commits.len(),
        1,
        "the commit object was published before the ref"
    );
    cairn_ok(&[
        "repo",
        "refs",
        "--repo",
        r,
        "--create",
        "recovered",
        &commits[0],
    ]);
    cairn_ok(&["repo", "fsck", "--repo", r]);
}
