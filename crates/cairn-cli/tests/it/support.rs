//! Helpers: run cairn and the real `ostree`, build test trees, compare trees.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output};

use sha2::{Digest, Sha256};

pub fn cairn(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(args)
        .output()
        .expect("run cairn")
}

/// Runs cairn and insists on success; returns stdout.
pub fn cairn_ok(args: &[&str]) -> String {
    let out = cairn(args);
    assert!(
        out.status.success(),
        "cairn {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

pub use cairn_test_support::have_peer;

pub fn ostree(args: &[&str]) -> Output {
    Command::new("ostree")
        .args(args)
        .output()
        .expect("run ostree")
}

/// `ostree fsck` of a repository (given as `--repo=PATH`) must pass.
pub fn ostree_fsck_ok(repo_arg: &str) {
    let out = ostree(&[repo_arg, "fsck"]);
    assert!(
        out.status.success(),
        "ostree fsck {repo_arg}: {}",
        stderr(&out)
    );
}

pub fn ostree_ok(args: &[&str]) -> String {
    let out = ostree(args);
    assert!(
        out.status.success(),
        "ostree {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

/// A new repository of `mode` at `repo` with `tree` committed to `branch`; the checksum.
pub fn init_and_commit(repo: &str, mode: &str, branch: &str, tree: &str) -> String {
    cairn_ok(&["repo", "init", "--repo", repo, "--mode", mode]);
    cairn_ok(&["repo", "commit", "--repo", repo, "-b", branch, tree])
        .trim()
        .to_owned()
}

pub fn write(path: &Path, data: &[u8], mode: u32) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::write(path, data).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

pub fn set_xattr(path: &Path, name: &str, value: &[u8]) {
    cairn_store::xattr::set_all_path(path, &vec![(name.as_bytes().to_vec(), value.to_vec())])
        .unwrap();
}

/// The tree acceptance 1 asks for: symlinks, empty dirs, setuid and private modes, an
/// empty file, names with spaces and UTF-8, hardlinks, xattrs, and (if `big`) a file over 100 MB.
pub fn build_tree(root: &Path, big: bool) {
    write(&root.join("usr/bin/tool"), b"#!/bin/sh\necho tool\n", 0o755);
    write(
        &root.join("usr/bin/suid"),
        b"setuid binary stand-in\n",
        0o4755,
    );
    write(
        &root.join("etc/shadow"),
        b"root:*:19000:0:99999:7:::\n",
        0o600,
    );
    write(&root.join("etc/empty-file"), b"", 0o644);
    write(
        &root.join("usr/share/doc/with space/read me.txt"),
        b"spaces\n",
        0o644,
    );
    write(
        &root.join("usr/share/doc/ünïcødé/日本語.txt"),
        "UTF-8 names\n".as_bytes(),
        0o644,
    );
    write(
        &root.join("usr/lib/data.bin"),
        &(0..70_000u32)
            .flat_map(|i| i.wrapping_mul(2_654_435_761).to_le_bytes())
            .collect::<Vec<u8>>(),
        0o644,
    );
    write(&root.join("usr/lib/hard-a"), b"same inode twice\n", 0o644);
    fs::hard_link(root.join("usr/lib/hard-a"), root.join("usr/lib/hard-b")).unwrap();
    std::os::unix::fs::symlink("../lib/data.bin", root.join("usr/bin/link-rel")).unwrap();
    std::os::unix::fs::symlink("/usr/bin/tool", root.join("usr/bin/link-abs")).unwrap();
    std::os::unix::fs::symlink("dangling target", root.join("etc/dangling")).unwrap();
    fs::create_dir_all(root.join("var/empty/deeper")).unwrap();
    fs::create_dir_all(root.join("var/tmp")).unwrap();
    fs::set_permissions(root.join("var/tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    write(&root.join("etc/xattr-file"), b"has xattrs\n", 0o644);
    set_xattr(
        &root.join("etc/xattr-file"),
        "user.cairn.test",
        b"value one",
    );
    set_xattr(
        &root.join("etc/xattr-file"),
        "user.another",
        b"\x00\x01binary",
    );
    set_xattr(&root.join("etc"), "user.dir-attr", b"on a directory");
    if big {
        let block: Vec<u8> = (0..1u32 << 20)
            .map(|i| (i.wrapping_mul(31) >> 3) as u8)
            .collect();
        let mut data = Vec::with_capacity(101 << 20);
        for i in 0..101u8 {
            data.extend_from_slice(&block);
            data.push(i);
        }
        write(&root.join("usr/lib/big.img"), &data, 0o644);
    }
    let status = Command::new("chown")
        .args(["-h", "1000:1000"])
        .arg(root.join("etc/dangling"))
        .status()
        .unwrap();
    assert!(status.success());
    let status = Command::new("chown")
        .args(["12:34"])
        .arg(root.join("usr/share/doc/with space"))
        .status()
        .unwrap();
    assert!(status.success());
}

#[derive(Debug, PartialEq, Eq)]
pub struct Node {
    pub kind: char,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// SHA-256 of the content, or the symlink target.
    pub content: String,
    pub xattrs: Vec<(String, Vec<u8>)>,
}

/// Everything a checkout must reproduce, by path. `with_owner` and `with_xattrs` say
/// whether ownership and xattrs are expected to survive (not in user-mode checkouts).
pub fn snapshot(root: &Path, with_owner: bool, with_xattrs: bool) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    walk(root, root, with_owner, with_xattrs, &mut out);
    out
}

fn walk(
    root: &Path,
    dir: &Path,
    with_owner: bool,
    with_xattrs: bool,
    out: &mut BTreeMap<String, Node>,
) {
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        let rel = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let st = fs::symlink_metadata(&path).unwrap();
        let xattrs = if with_xattrs && !st.file_type().is_symlink() {
            cairn_store::xattr::list_all(&path)
                .unwrap()
                .into_iter()
                .filter(|(n, _)| n.starts_with(b"user.") && n != b"user.ostreemeta")
                .map(|(n, v)| (String::from_utf8(n).unwrap(), v))
                .collect()
        } else {
            vec![]
        };
        let (kind, content) = if st.file_type().is_symlink() {
            (
                'l',
                fs::read_link(&path).unwrap().to_string_lossy().into_owned(),
            )
        } else if st.is_dir() {
            walk(root, &path, with_owner, with_xattrs, out);
            ('d', String::new())
        } else {
            ('-', hex::encode(Sha256::digest(fs::read(&path).unwrap())))
        };
        let mode = if kind == 'l' {
            0o777
        } else {
            st.mode() & 0o7777
        };
        let (uid, gid) = if with_owner {
            (st.uid(), st.gid())
        } else {
            (0, 0)
        };
        out.insert(
            rel,
            Node {
                kind,
                mode,
                uid,
                gid,
                content,
                xattrs,
            },
        );
    }
}

pub fn assert_same_tree(expected: &BTreeMap<String, Node>, actual: &BTreeMap<String, Node>) {
    for (path, node) in expected {
        match actual.get(path) {
            Some(a) => assert_eq!(a, node, "{path} differs"),
            None => panic!("{path} is missing"),
        }
    }
    for path in actual.keys() {
        assert!(expected.contains_key(path), "{path} is extra");
    }
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The end state every test wants after writing a repo: `cairn fsck` is clean, and a
/// checkout of `rev` into `dest` reproduces `tree` (xattrs too when `with_xattrs`).
pub fn assert_checkout_matches(
    repo: &Path,
    rev: &str,
    tree: &Path,
    dest: &Path,
    with_xattrs: bool,
) {
    let r = repo.to_str().unwrap();
    cairn_ok(&["repo", "fsck", "--repo", r]);
    cairn_ok(&["repo", "checkout", "--repo", r, rev, dest.to_str().unwrap()]);
    assert_same_tree(
        &snapshot(tree, true, with_xattrs),
        &snapshot(dest, true, with_xattrs),
    );
}
