//! Acceptance 1 and 2: the same checksums as `ostree`, and each reads the other's repos.

use std::fs;
use std::path::Path;

use crate::support::*;

const TS1: &str = "2024-05-01T12:00:00Z";
const TS2: &str = "2024-05-02T12:00:00Z";

fn commit_both(
    cairn_repo: &Path,
    ostree_repo: &Path,
    tree: &Path,
    ts: &str,
    subject: &str,
) -> (String, String) {
    let tree_arg = format!("--tree=dir={}", tree.display());
    let common = [
        "-b",
        "os/x86_64/stable",
        "-s",
        subject,
        "--body",
        "A body\nwith two lines",
        "--add-metadata-string",
        "version=41.1",
        "--add-metadata-string",
        "custom.key=ünïcødé value",
    ];
    let ts_arg = format!("--timestamp={ts}");
    let cr = format!("--repo={}", cairn_repo.display());
    let or = format!("--repo={}", ostree_repo.display());
    let mut args = vec![
        "repo",
        "commit",
        cr.as_str(),
        ts_arg.as_str(),
        tree_arg.as_str(),
    ];
    args.extend(common);
    let ours = cairn_ok(&args).trim().to_owned();
    let mut args = vec![or.as_str(), "commit", ts_arg.as_str(), tree_arg.as_str()];
    args.extend(common);
    let theirs = ostree_ok(&args).trim().to_owned();
    (ours, theirs)
}

fn same_checksums_as_ostree(mode: &str) {
    if !have_peer("ostree") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    build_tree(&tree, true);
    let ours_repo = tmp.path().join("cairn-repo");
    let theirs_repo = tmp.path().join("ostree-repo");
    cairn_ok(&[
        "repo",
        "init",
        "--repo",
        ours_repo.to_str().unwrap(),
        "--mode",
        mode,
    ]);
    ostree_ok(&[
        &format!("--repo={}", theirs_repo.display()),
        "init",
        &format!("--mode={mode}"),
    ]);
    assert_eq!(
        fs::read_to_string(ours_repo.join("config")).unwrap(),
        fs::read_to_string(theirs_repo.join("config")).unwrap(),
        "config files differ"
    );

    let (ours, theirs) = commit_both(&ours_repo, &theirs_repo, &tree, TS1, "first");
    // Every dirtree, dirmeta and content checksum, as ostree lists them for each repo.
    let list = |repo: &Path| {
        ostree_ok(&[
            &format!("--repo={}", repo.display()),
            "ls",
            "-R",
            "-C",
            "-X",
            "os/x86_64/stable",
        ])
    };
    assert_eq!(
        list(&ours_repo),
        list(&theirs_repo),
        "per-object checksums differ ({mode})"
    );
    assert_eq!(ours, theirs, "commit checksums differ ({mode})");

    // A second commit: same parent, same change, same checksum.
    fs::write(tree.join("usr/bin/tool"), b"#!/bin/sh\necho tool v2\n").unwrap();
    fs::remove_file(tree.join("etc/empty-file")).unwrap();
    fs::create_dir_all(tree.join("usr/new dir")).unwrap();
    let (ours2, theirs2) = commit_both(&ours_repo, &theirs_repo, &tree, TS2, "second");
    assert_eq!(ours2, theirs2, "second commit checksums differ ({mode})");

    // ostree accepts the repository cairn wrote.
    let or = format!("--repo={}", ours_repo.display());
    ostree_fsck_ok(&or);
    cairn_ok(&[
        "repo",
        "summary",
        "-u",
        "--repo",
        ours_repo.to_str().unwrap(),
    ]);
    ostree_ok(&[&or, "summary", "-v"]);
}

#[test]
fn same_checksums_as_ostree_archive() {
    same_checksums_as_ostree("archive");
}

#[test]
fn same_checksums_as_ostree_bare_user() {
    same_checksums_as_ostree("bare-user");
}

#[test]
fn ostree_reads_what_cairn_writes() {
    if !have_peer("ostree") {
        return;
    }
    for mode in ["archive", "bare-user", "bare"] {
        let tmp = tempfile::tempdir().unwrap();
        let tree = tmp.path().join("tree");
        build_tree(&tree, false);
        let repo = tmp.path().join("repo");
        let r = repo.to_str().unwrap();
        cairn_ok(&["repo", "init", "--repo", r, "--mode", mode]);
        let checksum = cairn_ok(&[
            "repo",
            "commit",
            "--repo",
            r,
            "-b",
            "main",
            "-s",
            "s",
            tree.to_str().unwrap(),
        ]);
        assert_eq!(
            checksum.trim().len(),
            64,
            "commit prints the checksum alone"
        );
        let or = format!("--repo={r}");
        ostree_fsck_ok(&or);
        assert_eq!(
            ostree_ok(&[&or, "ls", "-R", "main"]),
            cairn_ok(&["repo", "ls", "-R", "--repo", r, "main"]),
            "ls ({mode})"
        );
        let dest = tmp.path().join("ostree-checkout");
        ostree_ok(&[&or, "checkout", "main", dest.to_str().unwrap()]);
        assert_same_tree(
            &snapshot(&tree, true, mode != "archive"),
            &snapshot(&dest, true, mode != "archive"),
        );
        if mode == "bare-user" {
            let dest = tmp.path().join("ostree-checkout-hardlinks");
            ostree_ok(&[&or, "checkout", "-U", "-H", "main", dest.to_str().unwrap()]);
        }
    }
}

#[test]
fn cairn_reads_what_ostree_writes() {
    if !have_peer("ostree") {
        return;
    }
    for mode in ["archive", "bare-user"] {
        let tmp = tempfile::tempdir().unwrap();
        let tree = tmp.path().join("tree");
        build_tree(&tree, false);
        let repo = tmp.path().join("repo");
        let r = repo.to_str().unwrap();
        let or = format!("--repo={r}");
        ostree_ok(&[&or, "init", &format!("--mode={mode}")]);
        ostree_ok(&[
            &or,
            "commit",
            "-b",
            "main",
            "-s",
            "one",
            &format!("--tree=dir={}", tree.display()),
        ]);
        fs::write(tree.join("usr/bin/tool"), b"changed\n").unwrap();
        fs::remove_file(tree.join("etc/shadow")).unwrap();
        fs::create_dir_all(tree.join("opt/added")).unwrap();
        fs::write(tree.join("opt/added/file"), b"new\n").unwrap();
        ostree_ok(&[
            &or,
            "commit",
            "-b",
            "main",
            "-s",
            "two",
            &format!("--tree=dir={}", tree.display()),
        ]);

        let fsck = cairn(&["repo", "fsck", "--repo", r]);
        assert!(
            fsck.status.success(),
            "cairn fsck on ostree's {mode} repo: {}",
            stderr(&fsck)
        );
        assert_eq!(
            cairn_ok(&["repo", "ls", "-R", "--repo", r, "main"]),
            ostree_ok(&[&or, "ls", "-R", "main"]),
            "ls ({mode})"
        );
        assert_eq!(
            cairn_ok(&["repo", "ls", "--repo", r, "main", "/usr"]),
            ostree_ok(&[&or, "ls", "main", "/usr"]),
            "ls dir ({mode})"
        );
        assert_eq!(
            cairn_ok(&["repo", "diff", "--repo", r, "main^", "main"]),
            ostree_ok(&[&or, "diff", "main^", "main"]),
            "diff ({mode})"
        );
        assert_eq!(
            cairn_ok(&["repo", "rev-parse", "--repo", r, "main"]),
            ostree_ok(&[&or, "rev-parse", "main"])
        );
        assert_eq!(
            cairn_ok(&[
                "repo",
                "cat",
                "--repo",
                r,
                "main",
                "/usr/share/doc/ünïcødé/日本語.txt"
            ]),
            "UTF-8 names\n"
        );
        assert_eq!(
            cairn_ok(&["repo", "cat", "--repo", r, "main", "/usr/bin/tool"]),
            "changed\n"
        );
        let log = cairn_ok(&["repo", "log", "--repo", r, "main"]);
        assert!(log.contains("    one") && log.contains("    two"), "{log}");
        let dest = tmp.path().join("checkout");
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
        // Both tools' summaries are byte-identical once the time is the same.
        ostree_ok(&[&or, "summary", "-u"]);
        let theirs = fs::read(repo.join("summary")).unwrap();
        let ours = cairn_store::summary::build_summary(
            &cairn_store::Repo::open(&repo).unwrap(),
            last_modified(&theirs),
        )
        .unwrap();
        assert_eq!(ours, theirs, "summary bytes differ ({mode})");
    }
}

/// Reads `ostree.summary.last-modified` out of a summary file.
fn last_modified(summary: &[u8]) -> u64 {
    use cairn_store::gvariant::{decode, Type, Value};
    let v = decode(&Type::parse("(a(s(taya{sv}))a{sv})").unwrap(), summary).unwrap();
    let Value::Struct(m) = v else {
        panic!("summary")
    };
    let meta = cairn_store::object::parse_metadata_dict(&m[1]).unwrap();
    let (_, Value::U64(t)) = meta
        .iter()
        .find(|(k, _)| k == "ostree.summary.last-modified")
        .unwrap()
    else {
        panic!("no last-modified")
    };
    t.swap_bytes()
}

#[test]
fn hardlink_checkout_from_bare_user_shares_inodes() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    build_tree(&tree, false);
    let repo = tmp.path().join("repo");
    let r = repo.to_str().unwrap();
    init_and_commit(r, "bare-user", "main", tree.to_str().unwrap());
    let dest = tmp.path().join("co");
    cairn_ok(&[
        "repo",
        "checkout",
        "--repo",
        r,
        "-U",
        "-H",
        "main",
        dest.to_str().unwrap(),
    ]);
    use std::os::unix::fs::MetadataExt;
    assert!(
        fs::metadata(dest.join("usr/bin/tool")).unwrap().nlink() >= 2,
        "not hardlinked"
    );
    assert_eq!(
        fs::read_link(dest.join("usr/bin/link-rel"))
            .unwrap()
            .to_str(),
        Some("../lib/data.bin")
    );
    // --subpath and --union.
    let sub = tmp.path().join("sub");
    cairn_ok(&[
        "repo",
        "checkout",
        "--repo",
        r,
        "-U",
        "--subpath",
        "/usr/share",
        "main",
        sub.to_str().unwrap(),
    ]);
    assert!(sub.join("doc/with space/read me.txt").is_file());
    assert!(!sub.join("usr").exists());
    // Hardlinked files are the repository's objects: edit a copy, never the link.
    fs::remove_file(sub.join("doc/with space/read me.txt")).unwrap();
    fs::write(sub.join("doc/with space/read me.txt"), b"local edit").unwrap();
    fs::write(sub.join("local-only"), b"kept").unwrap();
    let again = cairn(&[
        "repo",
        "checkout",
        "--repo",
        r,
        "-U",
        "--subpath",
        "/usr/share",
        "main",
        sub.to_str().unwrap(),
    ]);
    assert!(
        !again.status.success(),
        "checkout into an existing directory without --union must fail"
    );
    cairn_ok(&[
        "repo",
        "checkout",
        "--repo",
        r,
        "-U",
        "--union",
        "--subpath",
        "/usr/share",
        "main",
        sub.to_str().unwrap(),
    ]);
    assert_eq!(
        fs::read(sub.join("doc/with space/read me.txt")).unwrap(),
        b"spaces\n"
    );
    assert_eq!(fs::read(sub.join("local-only")).unwrap(), b"kept");
}

#[test]
fn show_json_refs_and_prune() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    build_tree(&tree, false);
    let repo = tmp.path().join("repo");
    let r = repo.to_str().unwrap();
    cairn_ok(&["repo", "init", "--repo", r, "--mode", "archive"]);
    let c1 = cairn_ok(&[
        "repo",
        "commit",
        "--repo",
        r,
        "-b",
        "main",
        "-s",
        "one",
        "--add-metadata-string",
        "version=1",
        tree.to_str().unwrap(),
    ]);
    fs::write(tree.join("usr/bin/tool"), b"v2\n").unwrap();
    let c2 = cairn_ok(&[
        "repo",
        "commit",
        "--repo",
        r,
        "-b",
        "main",
        "-s",
        "two",
        tree.to_str().unwrap(),
    ]);
    let show: serde_json::Value =
        serde_json::from_str(&cairn_ok(&["repo", "show", "--repo", r, "--json", "main"])).unwrap();
    assert_eq!(show["checksum"], c2.trim());
    assert_eq!(show["parent"], c1.trim());
    assert_eq!(show["subject"], "two");
    assert_eq!(
        show["metadata"]["ostree.ref-binding"],
        serde_json::json!(["main"])
    );

    cairn_ok(&["repo", "refs", "--repo", r, "--create", "old", c1.trim()]);
    assert_eq!(cairn_ok(&["repo", "refs", "--repo", r]), "main\nold\n");
    cairn_ok(&["repo", "refs", "--repo", r, "--delete", "old"]);
    assert_eq!(cairn_ok(&["repo", "refs", "--repo", r]), "main\n");

    // With depth 0 only the head survives; the dry run deletes nothing.
    let dry = cairn_ok(&[
        "repo",
        "prune",
        "--repo",
        r,
        "--refs-only",
        "--depth",
        "0",
        "--dry-run",
    ]);
    assert!(
        dry.contains(&format!("would delete {}.commit", c1.trim())),
        "{dry}"
    );
    assert!(cairn_ok(&["repo", "rev-parse", "--repo", r, "main^"]).contains(c1.trim()));
    let wet = cairn_ok(&["repo", "prune", "--repo", r, "--refs-only", "--depth", "0"]);
    // The old commit, the old tool's content, and the dirtrees of /, /usr and /usr/bin.
    assert!(wet.contains("Deleted 5 objects"), "{wet}");
    cairn_ok(&["repo", "fsck", "--repo", r]);
    let log = cairn_ok(&["repo", "log", "--repo", r, "main"]);
    assert!(
        log.contains("History beyond this commit not fetched"),
        "{log}"
    );
    if have_peer("ostree") {
        ostree_fsck_ok(&format!("--repo={r}"));
    }
}
