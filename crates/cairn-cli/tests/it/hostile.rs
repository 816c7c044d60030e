//! Acceptance 4 and 5: hostile repositories are refused, naming the object; checkouts
//! stay inside DEST; corrupt objects are named; errors are one clear line.

use std::fs;
use std::path::Path;

use cairn_store::gvariant::Value;
use cairn_store::object::{self, Checksum, Commit, DirTree, FileMeta};
use cairn_store::{ObjectType, Repo, RepoMode};

use crate::support::*;

fn put(repo: &Repo, kind: ObjectType, data: &[u8]) -> Checksum {
    let checksum = Checksum::of(data);
    let path = repo.object_path(&checksum, kind);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, data).unwrap();
    checksum
}

fn put_file(repo: &Repo, content: &[u8]) -> Checksum {
    let meta = FileMeta {
        uid: 0,
        gid: 0,
        mode: 0o100644,
        xattrs: vec![],
    };
    let checksum = object::content_checksum(&meta, "", content);
    let header = object::archive_header_bytes(&meta, "", content.len() as u64);
    let mut data = (header.len() as u32).to_be_bytes().to_vec();
    data.extend_from_slice(&[0; 4]);
    data.extend_from_slice(&header);
    let mut c = libdeflate_raw(content);
    data.append(&mut c);
    let path = repo.object_path(&checksum, ObjectType::File);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, data).unwrap();
    checksum
}

/// Raw deflate with stored blocks: valid input for any inflater, no compressor needed.
fn libdeflate_raw(content: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let chunks: Vec<&[u8]> = if content.is_empty() {
        vec![&[][..]]
    } else {
        content.chunks(65535).collect()
    };
    for (i, chunk) in chunks.iter().enumerate() {
        out.push(u8::from(i + 1 == chunks.len()));
        out.extend_from_slice(&(chunk.len() as u16).to_le_bytes());
        out.extend_from_slice(&(!(chunk.len() as u16)).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out
}

/// A repository whose root dirtree names a file `name`; returns the dirtree checksum.
fn repo_with_name(dir: &Path, name: &str) -> (Repo, Checksum) {
    let repo = Repo::init(dir, RepoMode::Archive).unwrap();
    let file = put_file(&repo, b"payload\n");
    let tree = DirTree {
        files: vec![(name.to_owned(), file)],
        dirs: vec![],
    };
    let tree_checksum = put(&repo, ObjectType::DirTree, &tree.to_bytes());
    let meta = put(
        &repo,
        ObjectType::DirMeta,
        &object::dirmeta_bytes(&FileMeta {
            uid: 0,
            gid: 0,
            mode: 0o40755,
            xattrs: vec![],
        }),
    );
    let commit = Commit {
        metadata: vec![],
        parent: None,
        subject: "hostile".into(),
        body: String::new(),
        timestamp: 0,
        root_tree: tree_checksum,
        root_meta: meta,
    };
    let c = put(&repo, ObjectType::Commit, &commit.to_bytes());
    repo.write_ref("main", &c).unwrap();
    (repo, tree_checksum)
}

#[test]
fn hostile_names_are_refused_naming_the_object() {
    for name in ["..", ".", "a/b", "", "nul\0byte", "../../etc/passwd"] {
        let tmp = tempfile::tempdir().unwrap();
        let (repo, tree) = repo_with_name(&tmp.path().join("repo"), name);
        let r = repo.path().to_str().unwrap();
        let dest = tmp.path().join("dest");
        for args in [
            vec!["repo", "ls", "-R", "--repo", r, "main"],
            vec![
                "repo",
                "checkout",
                "--repo",
                r,
                "main",
                dest.to_str().unwrap(),
            ],
            vec!["repo", "fsck", "--repo", r],
        ] {
            let out = cairn(&args);
            assert!(
                !out.status.success(),
                "{name:?}: {args:?} accepted a hostile dirtree"
            );
            let err = stderr(&out);
            assert!(
                err.contains(&tree.to_hex()),
                "{name:?}: {args:?} does not name the object: {err}"
            );
            assert!(!err.contains("panicked"), "{err}");
        }
        // Nothing was written outside the destination.
        let outside: Vec<_> = fs::read_dir(tmp.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(
            outside.iter().all(|n| n == "repo" || n == "dest"),
            "{name:?}: wrote {outside:?}"
        );
        if dest.exists() {
            assert_eq!(
                fs::read_dir(&dest).unwrap().count(),
                0,
                "{name:?}: wrote into dest"
            );
        }
    }
}

#[test]
fn checkout_never_follows_symlinks_out_of_dest() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    fs::create_dir(&outside).unwrap();
    // Commit 1: `usr` is a symlink to a directory outside; commit 2: `usr` is a directory.
    let t1 = tmp.path().join("t1");
    fs::create_dir_all(&t1).unwrap();
    std::os::unix::fs::symlink(&outside, t1.join("usr")).unwrap();
    std::os::unix::fs::symlink(outside.join("escaped"), t1.join("file-link")).unwrap();
    let t2 = tmp.path().join("t2");
    write(&t2.join("usr/bin/payload"), b"must stay inside\n", 0o644);
    write(
        &t2.join("file-link"),
        b"replaces the link, never writes through it\n",
        0o644,
    );
    let repo = tmp.path().join("repo");
    let r = repo.to_str().unwrap();
    init_and_commit(r, "archive", "one", t1.to_str().unwrap());
    cairn_ok(&[
        "repo",
        "commit",
        "--repo",
        r,
        "-b",
        "two",
        t2.to_str().unwrap(),
    ]);
    let dest = tmp.path().join("dest");
    cairn_ok(&[
        "repo",
        "checkout",
        "--repo",
        r,
        "one",
        dest.to_str().unwrap(),
    ]);
    cairn_ok(&[
        "repo",
        "checkout",
        "--repo",
        r,
        "--union",
        "two",
        dest.to_str().unwrap(),
    ]);
    assert_eq!(
        fs::read_dir(&outside).unwrap().count(),
        0,
        "checkout wrote through a symlink"
    );
    assert!(fs::symlink_metadata(dest.join("usr")).unwrap().is_dir());
    assert_eq!(
        fs::read(dest.join("usr/bin/payload")).unwrap(),
        b"must stay inside\n"
    );
}

#[test]
fn corrupt_objects_are_named_and_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    build_tree(&tree, false);
    for mode in ["archive", "bare-user"] {
        for damage in ["flip", "truncate"] {
            let repo_path = tmp.path().join(format!("repo-{mode}-{damage}"));
            let r = repo_path.to_str().unwrap();
            init_and_commit(r, mode, "main", tree.to_str().unwrap());
            let repo = Repo::open(&repo_path).unwrap();
            let commit = repo.resolve_rev("main").unwrap();
            let cairn_store::repo::Entry::File(victim) =
                repo.lookup_path(&commit, "/usr/lib/data.bin").unwrap()
            else {
                panic!()
            };
            let path = repo.object_path(&victim, ObjectType::File);
            let mut data = fs::read(&path).unwrap();
            let mut perms = fs::metadata(&path).unwrap().permissions();
            std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o644);
            fs::set_permissions(&path, perms).unwrap();
            let at = data.len() - 100;
            match damage {
                "flip" => data[at] ^= 0x01,
                _ => data.truncate(at),
            }
            if mode == "archive" {
                fs::write(&path, &data).unwrap();
            } else {
                // Keep the xattr: rewrite in place.
                use std::io::Write;
                let mut f = fs::OpenOptions::new()
                    .write(true)
                    .truncate(true)
                    .open(&path)
                    .unwrap();
                f.write_all(&data).unwrap();
            }
            let fsck = cairn(&["repo", "fsck", "--repo", r]);
            assert!(
                !fsck.status.success(),
                "{mode}/{damage}: fsck passed a corrupt object"
            );
            assert!(
                stderr(&fsck).contains(&victim.to_hex()),
                "{mode}/{damage}: {}",
                stderr(&fsck)
            );
            let cat = cairn(&["repo", "cat", "--repo", r, "main", "/usr/lib/data.bin"]);
            assert!(
                !cat.status.success() && cat.stdout.is_empty(),
                "{mode}/{damage}: cat served a corrupt object"
            );
            assert!(stderr(&cat).contains(&victim.to_hex()), "{}", stderr(&cat));
            let dest = tmp.path().join(format!("co-{mode}-{damage}"));
            let co = cairn(&[
                "repo",
                "checkout",
                "--repo",
                r,
                "-U",
                "main",
                dest.to_str().unwrap(),
            ]);
            assert!(
                !co.status.success(),
                "{mode}/{damage}: checkout used a corrupt object"
            );
            assert!(stderr(&co).contains(&victim.to_hex()), "{}", stderr(&co));
        }
    }
}

#[test]
fn errors_are_one_clear_line() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("no-such-repo");
    let repo = tmp.path().join("repo");
    let r = repo.to_str().unwrap();
    cairn_ok(&["repo", "init", "--repo", r, "--mode", "archive"]);
    let tree = tmp.path().join("tree");
    write(&tree.join("f"), b"x", 0o644);
    cairn_ok(&[
        "repo",
        "commit",
        "--repo",
        r,
        "-b",
        "main",
        tree.to_str().unwrap(),
    ]);
    let nodir = tmp.path().join("nodir");
    let zeros = "0".repeat(64);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["repo", "log", "--repo", missing.to_str().unwrap(), "main"],
            "no OSTree repository at",
        ),
        (
            vec!["repo", "log", "--repo", r, "nope"],
            "ref \"nope\" not found",
        ),
        (
            vec!["repo", "cat", "--repo", r, "main", "/not/there"],
            "path \"/not/there\" not found in commit",
        ),
        (vec!["repo", "ls", "--repo", r, "main", "/zzz"], "not found"),
        (
            vec!["repo", "rev-parse", "--repo", r, "bad ref"],
            "invalid ref name",
        ),
        (
            vec![
                "repo",
                "commit",
                "--repo",
                r,
                "-b",
                "main",
                nodir.to_str().unwrap(),
            ],
            "No such file",
        ),
        (
            vec!["repo", "init", "--repo", r, "--mode", "zip"],
            "repository mode",
        ),
        (vec!["repo", "show", "--repo", r, &zeros], "is missing"),
    ];
    for (args, expect) in cases {
        let out = cairn(&args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = stderr(&out);
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "{args:?}: not one line: {err}"
        );
        assert!(
            err.contains(expect),
            "{args:?}: {err:?} does not say {expect:?}"
        );
        assert!(!err.contains("panicked"));
    }
}

#[test]
fn metadata_strings_are_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo::init(&tmp.path().join("r"), RepoMode::BareUser).unwrap();
    let tree = tmp.path().join("t");
    write(&tree.join("f"), b"x", 0o644);
    let r = repo.path().to_str().unwrap();
    let c = cairn_ok(&[
        "repo",
        "commit",
        "--repo",
        r,
        "-b",
        "x",
        "--add-metadata-string",
        "version=7",
        tree.to_str().unwrap(),
    ]);
    let commit = repo.read_commit(&c.trim().parse().unwrap()).unwrap();
    assert_eq!(
        commit.metadata_value("version"),
        Some(&Value::Str("7".into()))
    );
}
