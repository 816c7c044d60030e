//! `cairn provision apply` from the command line: exit codes, the reason on stderr, stdin,
//! and the exactly-once message. The semantics are tested in cairn-apply's own tests.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::support::*;

fn seeded_root(dir: &std::path::Path) -> std::path::PathBuf {
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("etc/skel")).unwrap();
    std::fs::create_dir_all(root.join("home")).unwrap();
    for (name, text) in [
        ("passwd", "root:x:0:0:root:/root:/bin/bash\n"),
        ("group", "root:x:0:\nwheel:x:10:\n"),
        ("shadow", "root:*:19000:0:99999:7:::\n"),
        ("gshadow", "root:*::\nwheel:*::\n"),
    ] {
        std::fs::write(root.join("etc").join(name), text).unwrap();
    }
    root
}

fn is_root() -> bool {
    let root = rustix::process::geteuid().is_root();
    if !root {
        assert!(
            std::env::var_os("CAIRN_REQUIRE_PEERS").is_none(),
            "provisioning tests set owners and need root"
        );
        eprintln!("skipping: provisioning needs root");
    }
    root
}

#[test]
fn apply_once_then_nothing_to_do() {
    if !is_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = seeded_root(dir.path());
    let config = dir.path().join("config.ign");
    std::fs::write(
        &config,
        r#"{"ignition":{"version":"3.3.0"},
            "passwd":{"users":[{"name":"core","sshAuthorizedKeys":["ssh-ed25519 AAAA core"]}]},
            "storage":{"files":[{"path":"/etc/motd","contents":{"source":"data:,hello"},"mode":420}]}}"#,
    )
    .unwrap();
    let args = [
        "provision",
        "apply",
        "--root",
        root.to_str().unwrap(),
        config.to_str().unwrap(),
    ];
    let out = cairn_ok(&args);
    assert!(out.starts_with("provisioned "), "{out}");
    assert_eq!(
        std::fs::read_to_string(root.join("etc/motd")).unwrap(),
        "hello"
    );
    let motd = std::fs::metadata(root.join("etc/motd")).unwrap();
    let again = cairn_ok(&args);
    assert!(
        again.contains("nothing to do (--force applies again)"),
        "{again}"
    );
    let after = std::fs::metadata(root.join("etc/motd")).unwrap();
    assert_eq!(
        std::os::unix::fs::MetadataExt::ino(&motd),
        std::os::unix::fs::MetadataExt::ino(&after),
        "the second run wrote nothing"
    );
}

#[test]
fn a_failure_exits_non_zero_with_the_reason_and_changes_nothing() {
    if !is_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = seeded_root(dir.path());
    let before = snapshot(&root, true, true);
    let config = dir.path().join("bad.ign");
    std::fs::write(
        &config,
        r#"{"ignition":{"version":"3.3.0"},
            "storage":{"files":[
              {"path":"/etc/a","contents":{"source":"data:,fine"}},
              {"path":"/etc/b","contents":{"source":"data:,x","verification":{"hash":"sha512-00"}}}]}}"#,
    )
    .unwrap();
    let out = cairn(&[
        "provision",
        "apply",
        "--root",
        root.to_str().unwrap(),
        config.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("nothing was changed"), "{err}");
    assert!(err.contains("storage.files[1]"), "{err}");
    assert_same_tree(&before, &snapshot(&root, true, true));
}

#[test]
fn yaml_from_stdin() {
    if !is_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = seeded_root(dir.path());
    let mut child = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["provision", "apply", "--root", root.to_str().unwrap(), "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(
            b"variant: fcos\nversion: 1.5.0\nstorage:\n  files:\n    - path: /etc/hostname\n      contents:\n        inline: node-1\n",
        )
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(root.join("etc/hostname")).unwrap(),
        "node-1"
    );
}
