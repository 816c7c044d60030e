//! Publishing and pulling over HTTP: against ostree and nginx, with signatures, faults
//! and hostile servers.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cairn_store::{ObjectType, Repo};

use crate::httpd::{self, Fault};
use crate::support::*;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub(crate) struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on port {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub(crate) fn cairn_serve(repo: &Path) -> (Kill, String) {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args([
            "repo",
            "serve",
            "--repo",
            repo.to_str().unwrap(),
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_port(port);
    (Kill(child), format!("http://127.0.0.1:{port}/"))
}

fn nginx_serve(root: &Path, work: &Path) -> (Kill, String) {
    let port = free_port();
    let conf = work.join("nginx.conf");
    fs::create_dir_all(work.join("nginx-tmp")).unwrap();
    fs::write(
        &conf,
        format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {w}/nginx.pid;\nerror_log {w}/error.log;\nevents {{ worker_connections 256; }}\n\
             http {{ access_log off; client_body_temp_path {w}/nginx-tmp; proxy_temp_path {w}/nginx-tmp; fastcgi_temp_path {w}/nginx-tmp; uwsgi_temp_path {w}/nginx-tmp; scgi_temp_path {w}/nginx-tmp;\n\
             server {{ listen 127.0.0.1:{port}; root {root}; }} }}\n",
            w = work.display(),
            root = root.display()
        ),
    )
    .unwrap();
    let child = Command::new("nginx")
        .args(["-c", conf.to_str().unwrap(), "-p", work.to_str().unwrap()])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_port(port);
    (Kill(child), format!("http://127.0.0.1:{port}/"))
}

/// An archive repo with two commits of the sample tree, written by cairn.
fn source_repo(dir: &Path) -> (PathBuf, PathBuf, String) {
    let tree = dir.join("tree");
    build_tree(&tree, false);
    let repo = dir.join("src-repo");
    let r = repo.to_str().unwrap();
    cairn_ok(&["repo", "init", "--repo", r, "--mode", "archive"]);
    cairn_ok(&[
        "repo",
        "commit",
        "--repo",
        r,
        "-b",
        "os/stable",
        "-s",
        "one",
        tree.to_str().unwrap(),
    ]);
    fs::write(tree.join("usr/bin/tool"), b"#!/bin/sh\necho two\n").unwrap();
    let head = cairn_ok(&[
        "repo",
        "commit",
        "--repo",
        r,
        "-b",
        "os/stable",
        "-s",
        "two",
        tree.to_str().unwrap(),
    ])
    .trim()
    .to_owned();
    cairn_ok(&["repo", "summary", "-u", "--repo", r]);
    (repo, tree, head)
}

#[test]
fn ostree_pulls_from_cairn_serve() {
    if !have_peer("ostree") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (repo, tree, head) = source_repo(tmp.path());
    let (_server, url) = cairn_serve(&repo);
    for mode in ["archive", "bare-user"] {
        let dest = tmp.path().join(format!("ostree-{mode}"));
        let or = format!("--repo={}", dest.display());
        ostree_ok(&[&or, "init", &format!("--mode={mode}")]);
        ostree_ok(&[&or, "remote", "add", "--no-gpg-verify", "origin", &url]);
        ostree_ok(&[&or, "pull", "--depth=1", "origin", "os/stable"]);
        assert_eq!(
            ostree_ok(&[&or, "rev-parse", "origin:os/stable"]).trim(),
            head
        );
        ostree_fsck_ok(&or);
        let co = tmp.path().join(format!("co-{mode}"));
        ostree_ok(&[&or, "checkout", "origin:os/stable", co.to_str().unwrap()]);
        assert_same_tree(&snapshot(&tree, true, false), &snapshot(&co, true, false));
    }
    // The server refuses paths outside the repository, however they are spelled.
    let addr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    for path in [
        "/../config",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/objects/../../../etc/passwd",
        "//etc/passwd",
        "/%2E%2E%2Fsrc-repo%2Fconfig",
        "/refs/..%2f..%2fconfig",
    ] {
        let mut s = TcpStream::connect(&addr).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 404"),
            "{path}: {}",
            answer.lines().next().unwrap_or("")
        );
    }
}

#[test]
fn cairn_pulls_from_ostree_repo_behind_nginx() {
    if !have_peer("ostree") || !have_peer("nginx") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    build_tree(&tree, true);
    let src = tmp.path().join("ostree-repo");
    let or = format!("--repo={}", src.display());
    ostree_ok(&[&or, "init", "--mode=archive"]);
    let first = ostree_ok(&[
        &or,
        "commit",
        "-b",
        "os/stable",
        "-s",
        "one",
        &format!("--tree=dir={}", tree.display()),
    ])
    .trim()
    .to_owned();
    fs::write(tree.join("usr/bin/tool"), b"changed\n").unwrap();
    let head = ostree_ok(&[
        &or,
        "commit",
        "-b",
        "os/stable",
        "-s",
        "two",
        &format!("--tree=dir={}", tree.display()),
    ])
    .trim()
    .to_owned();
    ostree_ok(&[&or, "summary", "-u"]);
    let (_nginx, url) = nginx_serve(&src, tmp.path());
    for mode in ["archive", "bare-user"] {
        let dest = tmp.path().join(format!("cairn-{mode}"));
        let r = dest.to_str().unwrap();
        cairn_ok(&["repo", "init", "--repo", r, "--mode", mode]);
        cairn_ok(&[
            "repo",
            "remote",
            "add",
            "--repo",
            r,
            "--no-gpg-verify",
            "origin",
            &url,
        ]);
        let report: serde_json::Value = serde_json::from_str(&cairn_ok(&[
            "repo",
            "pull",
            "--repo",
            r,
            "--json",
            "--depth",
            "1",
            "origin",
            "os/stable",
        ]))
        .unwrap();
        assert_eq!(report["refs"][0]["commit"], head.as_str());
        assert_eq!(
            cairn_ok(&["repo", "rev-parse", "--repo", r, "origin:os/stable^"]).trim(),
            first
        );
        cairn_ok(&["repo", "fsck", "--repo", r]);
        ostree_fsck_ok(&format!("--repo={r}"));
        let co = tmp.path().join(format!("co-{mode}"));
        cairn_ok(&[
            "repo",
            "checkout",
            "--repo",
            r,
            "origin:os/stable",
            co.to_str().unwrap(),
        ]);
        assert_same_tree(&snapshot(&tree, true, false), &snapshot(&co, true, false));
        // A second pull has nothing to fetch.
        let again: serde_json::Value = serde_json::from_str(&cairn_ok(&[
            "repo",
            "pull",
            "--repo",
            r,
            "--json",
            "origin",
            "os/stable",
        ]))
        .unwrap();
        assert_eq!(again["objects_fetched"], 0, "{again}");
    }
}

const SECRET_SEED: [u8; 32] = [42; 32];

fn keys() -> (String, String) {
    cairn_store::sign::encode_keypair(&ed25519_dalek::SigningKey::from_bytes(&SECRET_SEED))
}

#[test]
fn ed25519_signatures_are_enforced() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, _tree, head) = source_repo(tmp.path());
    let r = repo.to_str().unwrap();
    let (secret, public) = keys();
    let server = httpd::start(repo.clone(), Fault::None);

    let pull_into = |name: &str, key: &str| {
        let dest = tmp.path().join(name);
        let d = dest.to_str().unwrap().to_owned();
        cairn_ok(&["repo", "init", "--repo", &d, "--mode", "archive"]);
        cairn_ok(&[
            "repo",
            "remote",
            "add",
            "--repo",
            &d,
            "--no-gpg-verify",
            "--sign-verify",
            &format!("ed25519=inline:{key}"),
            "origin",
            &server.url,
        ]);
        let out = cairn(&["repo", "pull", "--repo", &d, "origin", "os/stable"]);
        (dest, out)
    };

    // Unsigned: refused, nothing moves.
    let (dest, out) = pull_into("unsigned", &public);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no ed25519 signature"),
        "{}",
        stderr(&out)
    );
    assert!(Repo::open(&dest)
        .unwrap()
        .read_ref("origin:os/stable")
        .unwrap()
        .is_none());
    assert!(!Repo::open(&dest)
        .unwrap()
        .has_object(&head.parse().unwrap(), ObjectType::Commit));

    // Signed: accepted, and `verify` agrees.
    cairn_ok(&["repo", "sign", "--repo", r, &head, &secret]);
    let (dest, out) = pull_into("signed", &public);
    assert!(out.status.success(), "{}", stderr(&out));
    cairn_ok(&[
        "repo",
        "verify",
        "--repo",
        dest.to_str().unwrap(),
        &head,
        &public,
    ]);

    // Signed by another key: refused.
    let (_, other_public) =
        cairn_store::sign::encode_keypair(&ed25519_dalek::SigningKey::from_bytes(&[9; 32]));
    let (dest, out) = pull_into("wrong-key", &other_public);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("none of its 1 ed25519 signature(s) is valid"),
        "{}",
        stderr(&out)
    );
    assert!(Repo::open(&dest)
        .unwrap()
        .read_ref("origin:os/stable")
        .unwrap()
        .is_none());

    // One byte of the signature flipped: refused.
    let source = Repo::open(&repo).unwrap();
    let meta_path = source.object_path(&head.parse().unwrap(), ObjectType::CommitMeta);
    let good = fs::read(&meta_path).unwrap();
    let mut bad = good.clone();
    bad[30] ^= 0x80;
    fs::write(&meta_path, &bad).unwrap();
    let (dest, out) = pull_into("tampered-sig", &public);
    assert!(!out.status.success(), "a tampered signature was accepted");
    assert!(Repo::open(&dest)
        .unwrap()
        .read_ref("origin:os/stable")
        .unwrap()
        .is_none());
    fs::write(&meta_path, &good).unwrap();

    // One byte of the commit flipped in transit: refused by its checksum, nothing stored.
    let commit_path = source.object_path(&head.parse().unwrap(), ObjectType::Commit);
    let mut commit = fs::read(&commit_path).unwrap();
    let middle = commit.len() / 2;
    commit[middle] ^= 1;
    let (h, rest) = head.split_at(2);
    let evil = httpd::start(
        repo.clone(),
        Fault::WrongBytes(format!("{h}/{rest}.commit"), commit),
    );
    let dest = tmp.path().join("tampered-commit");
    let d = dest.to_str().unwrap();
    cairn_ok(&["repo", "init", "--repo", d, "--mode", "archive"]);
    let out = cairn(&["repo", "pull", "--repo", d, &evil.url, "os/stable"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&head) && stderr(&out).contains("not stored"),
        "{}",
        stderr(&out)
    );
    assert!(Repo::open(&dest)
        .unwrap()
        .read_ref("os/stable")
        .unwrap()
        .is_none());

    // Signed summaries: `sign --summary` writes summary.sig that verifies.
    cairn_ok(&["repo", "sign", "--repo", r, "--summary", &secret]);
    let sig = fs::read(repo.join("summary.sig")).unwrap();
    let detached = cairn_store::sign::parse_detached(&sig).unwrap();
    let key = cairn_store::sign::parse_public_key(&public).unwrap();
    assert!(cairn_store::sign::verify_ed25519(
        &detached,
        &[key],
        &fs::read(repo.join("summary")).unwrap()
    ));
}

#[test]
fn an_interrupted_pull_resumes_with_only_what_is_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, tree, head) = source_repo(tmp.path());
    let total = {
        let full = tmp.path().join("full");
        let f = full.to_str().unwrap();
        cairn_ok(&["repo", "init", "--repo", f, "--mode", "archive"]);
        let server = httpd::start(repo.clone(), Fault::None);
        cairn_ok(&["repo", "pull", "--repo", f, &server.url, "os/stable"]);
        server
            .object_requests
            .load(std::sync::atomic::Ordering::SeqCst)
    };
    assert!(total > 20, "the sample commit has {total} objects");
    let dest = tmp.path().join("dest");
    let d = dest.to_str().unwrap();
    cairn_ok(&["repo", "init", "--repo", d, "--mode", "bare-user"]);
    let dying = httpd::start(repo.clone(), Fault::DieAfterObjects(12));
    let out = cairn(&[
        "repo",
        "pull",
        "--repo",
        d,
        "--retries",
        "1",
        "--max-in-flight",
        "4",
        &dying.url,
        "os/stable",
    ]);
    assert!(!out.status.success(), "the pull survived its server");
    assert!(
        stderr(&out).contains(&dying.url),
        "the error names the URL: {}",
        stderr(&out)
    );
    let served_first = dying
        .object_requests
        .load(std::sync::atomic::Ordering::SeqCst);
    drop(dying);
    assert!(
        Repo::open(&dest)
            .unwrap()
            .read_ref("os/stable")
            .unwrap()
            .is_none(),
        "ref moved on a failed pull"
    );
    cairn_ok(&["repo", "fsck", "--repo", d]);

    let server = httpd::start(repo.clone(), Fault::None);
    cairn_ok(&["repo", "pull", "--repo", d, &server.url, "os/stable"]);
    let second = server
        .object_requests
        .load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        second + served_first,
        total,
        "the rerun fetched {second} objects after {served_first} of {total}"
    );
    assert_eq!(
        cairn_ok(&["repo", "rev-parse", "--repo", d, "os/stable"]).trim(),
        head
    );
    assert_checkout_matches(
        std::path::Path::new(d),
        "os/stable",
        &tree,
        &tmp.path().join("co"),
        true,
    );
}

#[test]
fn bad_servers_give_clear_bounded_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, _tree, head) = source_repo(tmp.path());
    let source = Repo::open(&repo).unwrap();
    let cairn_store::repo::Entry::File(victim) = source
        .lookup_path(&head.parse().unwrap(), "/usr/lib/data.bin")
        .unwrap()
    else {
        panic!()
    };
    let (vh, vrest) = victim.to_hex().split_at(2).clone_pair();
    let suffix = format!("{vh}/{vrest}.filez");
    let cases = [
        (
            "wrong bytes",
            Fault::WrongBytes(
                suffix.clone(),
                b"\0\0\0\x10\0\0\0\0garbage garbage!".to_vec(),
            ),
            victim.to_hex(),
        ),
        ("404", Fault::NotFound(suffix.clone()), "404".to_owned()),
        ("500", Fault::ServerError, "500".to_owned()),
        ("stall", Fault::Stall, "gave up after".to_owned()),
    ];
    for (name, fault, expect) in cases {
        let server = httpd::start(repo.clone(), fault);
        let dest = tmp.path().join(format!("dest-{}", name.replace(' ', "-")));
        let d = dest.to_str().unwrap();
        cairn_ok(&["repo", "init", "--repo", d, "--mode", "archive"]);
        let started = Instant::now();
        let out = cairn(&[
            "repo",
            "pull",
            "--repo",
            d,
            "--retries",
            "2",
            "--timeout",
            "1",
            &server.url,
            "os/stable",
        ]);
        let took = started.elapsed();
        assert!(!out.status.success(), "{name}: pull succeeded");
        let err = stderr(&out);
        assert!(err.contains(&expect), "{name}: {err}");
        assert!(
            err.contains(&server.url),
            "{name}: the error names no URL: {err}"
        );
        assert!(took < Duration::from_secs(20), "{name}: took {took:?}");
        assert!(
            !Repo::open(&dest)
                .unwrap()
                .has_object(&victim, ObjectType::File),
            "{name}: stored the object"
        );
        assert!(Repo::open(&dest)
            .unwrap()
            .read_ref("os/stable")
            .unwrap()
            .is_none());
        cairn_ok(&["repo", "fsck", "--repo", d]);
    }
}

#[test]
fn malformed_ref_names_from_a_server_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, _tree, head) = source_repo(tmp.path());
    // A summary that lists a ref named "../../escape".
    use cairn_store::gvariant::{Type, Value};
    let bad = Value::Struct(vec![
        Value::Array(
            Type::parse("(s(taya{sv}))").unwrap(),
            vec![Value::Struct(vec![
                Value::Str("../../escape".into()),
                Value::Struct(vec![
                    Value::U64(1),
                    Value::Bytes(
                        head.parse::<cairn_store::Checksum>()
                            .unwrap()
                            .as_bytes()
                            .to_vec(),
                    ),
                    cairn_store::object::metadata_dict(&[]),
                ]),
            ])],
        ),
        cairn_store::object::metadata_dict(&[]),
    ]);
    fs::write(repo.join("summary"), bad.to_bytes()).unwrap();
    let server = httpd::start(repo.clone(), Fault::None);
    let dest = tmp.path().join("dest");
    let d = dest.to_str().unwrap();
    cairn_ok(&["repo", "init", "--repo", d, "--mode", "archive"]);
    let out = cairn(&["repo", "pull", "--repo", d, &server.url]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("invalid ref name"),
        "{}",
        stderr(&out)
    );
    assert!(!tmp.path().join("escape").exists());
    // A ref file holding something other than a checksum.
    fs::remove_file(repo.join("summary")).unwrap();
    fs::write(repo.join("refs/heads/os/stable"), "../../../etc/passwd\n").unwrap();
    let out = cairn(&["repo", "pull", "--repo", d, &server.url, "os/stable"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("does not hold a checksum"),
        "{}",
        stderr(&out)
    );
}

trait ClonePair {
    fn clone_pair(self) -> (String, String);
}
impl ClonePair for (&str, &str) {
    fn clone_pair(self) -> (String, String) {
        (self.0.to_owned(), self.1.to_owned())
    }
}

/// Makes a GPG key in a fresh home; returns (home, fingerprint, armored public key file).
fn gpg_key(dir: &Path, name: &str, algo: &str) -> (PathBuf, String, PathBuf) {
    let home = dir.join(format!("gnupg-{name}"));
    fs::create_dir_all(&home).unwrap();
    fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let gpg = |args: &[&str]| {
        let out = Command::new("gpg")
            .arg("--homedir")
            .arg(&home)
            .args(["--batch", "--pinentry-mode", "loopback", "--passphrase", ""])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "gpg {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    gpg(&[
        "--quick-gen-key",
        &format!("{name} <{name}@cairn.test>"),
        algo,
        "sign",
        "never",
    ]);
    let fpr = gpg(&["--list-keys", "--with-colons"])
        .lines()
        .find(|l| l.starts_with("fpr:"))
        .unwrap()
        .split(':')
        .nth(9)
        .unwrap()
        .to_owned();
    let public = dir.join(format!("{name}.asc"));
    fs::write(&public, gpg(&["--armor", "--export", &fpr])).unwrap();
    (home, fpr, public)
}

#[test]
fn gpg_signatures_from_ostree_verify_in_cairn() {
    if !have_peer("ostree") || !have_peer("gpg") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (repo, _tree, head) = source_repo(tmp.path());
    let or = format!("--repo={}", repo.display());
    for (name, algo) in [("rsa", "rsa2048"), ("eddsa", "ed25519")] {
        let (home, fpr, public) = gpg_key(tmp.path(), name, algo);
        let (_, _, stranger) = gpg_key(tmp.path(), &format!("{name}-stranger"), algo);
        ostree_ok(&[
            &or,
            "gpg-sign",
            &format!("--gpg-homedir={}", home.display()),
            &head,
            &fpr,
        ]);
        let _ = Command::new("gpgconf")
            .arg("--homedir")
            .arg(&home)
            .args(["--kill", "gpg-agent"])
            .status();
        // `cairn repo verify` against the signer's key, and against a stranger's.
        cairn_ok(&[
            "repo",
            "verify",
            "--repo",
            repo.to_str().unwrap(),
            "--sign-type",
            "gpg",
            &head,
            public.to_str().unwrap(),
        ]);
        let out = cairn(&[
            "repo",
            "verify",
            "--repo",
            repo.to_str().unwrap(),
            "--sign-type",
            "gpg",
            &head,
            stranger.to_str().unwrap(),
        ]);
        assert!(
            !out.status.success() && stderr(&out).contains("trusted key"),
            "{}",
            stderr(&out)
        );

        let server = httpd::start(repo.clone(), Fault::None);
        // A summary signed by ostree: verified with gpg-verify-summary, refused once unsigned.
        ostree_ok(&[
            &or,
            "summary",
            "-u",
            &format!("--gpg-sign={fpr}"),
            &format!("--gpg-homedir={}", home.display()),
        ]);
        let _ = Command::new("gpgconf")
            .arg("--homedir")
            .arg(&home)
            .args(["--kill", "gpg-agent"])
            .status();
        let summary_check = |name: &str| {
            let dest = tmp.path().join(name);
            let d = dest.to_str().unwrap().to_owned();
            cairn_ok(&["repo", "init", "--repo", &d, "--mode", "archive"]);
            cairn_ok(&[
                "repo",
                "remote",
                "add",
                "--repo",
                &d,
                "--set",
                &format!("gpgkeypath={}", public.display()),
                "--set",
                "gpg-verify-summary=true",
                "origin",
                &server.url,
            ]);
            cairn(&["repo", "pull", "--repo", &d, "origin", "os/stable"])
        };
        let out = summary_check(&format!("summary-signed-{name}"));
        assert!(out.status.success(), "{}", stderr(&out));
        cairn_ok(&["repo", "summary", "-u", "--repo", repo.to_str().unwrap()]);
        let out = summary_check(&format!("summary-unsigned-{name}"));
        assert!(
            !out.status.success() && stderr(&out).contains("summary is not signed"),
            "{}",
            stderr(&out)
        );
        for (trusted, expect_ok) in [(&public, true), (&stranger, false)] {
            let dest = tmp.path().join(format!("dest-{name}-{expect_ok}"));
            let d = dest.to_str().unwrap();
            cairn_ok(&["repo", "init", "--repo", d, "--mode", "archive"]);
            cairn_ok(&[
                "repo",
                "remote",
                "add",
                "--repo",
                d,
                "--set",
                &format!("gpgkeypath={}", trusted.display()),
                "origin",
                &server.url,
            ]);
            let out = cairn(&["repo", "pull", "--repo", d, "origin", "os/stable"]);
            assert_eq!(
                out.status.success(),
                expect_ok,
                "{name} trusted={}: {}",
                trusted.display(),
                stderr(&out)
            );
            let moved = Repo::open(&dest)
                .unwrap()
                .read_ref("origin:os/stable")
                .unwrap();
            assert_eq!(moved.is_some(), expect_ok);
            if !expect_ok {
                assert!(stderr(&out).contains("GPG signature"), "{}", stderr(&out));
            }
        }
    }
}

fn tweak(path: &Path, at: usize) {
    let mut data = fs::read(path).unwrap();
    data[at] ^= 0x5a;
    data.extend_from_slice(b"appended by the delta test");
    fs::write(path, data).unwrap();
}

#[test]
fn ostree_pulls_a_delta_generated_by_cairn() {
    if !have_peer("ostree") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (repo, tree, _) = source_repo(tmp.path());
    let r = repo.to_str().unwrap();
    let (_server, url) = cairn_serve(&repo);
    let dest = tmp.path().join("machine");
    let or = format!("--repo={}", dest.display());
    ostree_ok(&[&or, "init", "--mode=bare-user"]);
    ostree_ok(&[&or, "remote", "add", "--no-gpg-verify", "origin", &url]);
    ostree_ok(&[&or, "pull", "origin", "os/stable"]);

    tweak(&tree.join("usr/lib/data.bin"), 5000);
    fs::write(tree.join("etc/added-by-update"), b"new in this release\n").unwrap();
    let head = cairn_ok(&[
        "repo",
        "commit",
        "--repo",
        r,
        "-b",
        "os/stable",
        "-s",
        "three",
        tree.to_str().unwrap(),
    ])
    .trim()
    .to_owned();
    let generate = cairn(&[
        "repo",
        "static-delta",
        "generate",
        "--repo",
        r,
        "--to",
        "os/stable",
    ]);
    assert!(generate.status.success(), "{}", stderr(&generate));
    assert!(
        stderr(&generate).contains("(1 as bsdiff patches)"),
        "{}",
        stderr(&generate)
    );
    cairn_ok(&["repo", "summary", "-u", "--repo", r]);
    assert_eq!(
        ostree_ok(&[&format!("--repo={r}"), "static-delta", "list"])
            .lines()
            .count(),
        1
    );

    let pulled = ostree_ok(&[&or, "pull", "origin", "os/stable"]);
    assert!(
        pulled.contains("delta parts"),
        "ostree did not use the delta: {pulled}"
    );
    assert_eq!(
        ostree_ok(&[&or, "rev-parse", "origin:os/stable"]).trim(),
        head
    );
    ostree_fsck_ok(&or);
    let co = tmp.path().join("co");
    ostree_ok(&[&or, "checkout", "origin:os/stable", co.to_str().unwrap()]);
    assert_same_tree(&snapshot(&tree, true, false), &snapshot(&co, true, false));
}

#[test]
fn cairn_pulls_deltas_generated_by_ostree() {
    if !have_peer("ostree") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    build_tree(&tree, false);
    let src = tmp.path().join("ostree-repo");
    let or = format!("--repo={}", src.display());
    let commit = |subject: &str| {
        ostree_ok(&[
            &or,
            "commit",
            "-b",
            "os/stable",
            "-s",
            subject,
            &format!("--tree=dir={}", tree.display()),
        ])
        .trim()
        .to_owned()
    };
    ostree_ok(&[&or, "init", "--mode=archive"]);
    commit("one");
    ostree_ok(&[&or, "summary", "-u"]);
    let server = httpd::start(src.clone(), Fault::None);
    let dest = tmp.path().join("machine");
    let d = dest.to_str().unwrap();
    cairn_ok(&["repo", "init", "--repo", d, "--mode", "bare-user"]);
    cairn_ok(&[
        "repo",
        "remote",
        "add",
        "--repo",
        d,
        "--no-gpg-verify",
        "origin",
        &server.url,
    ]);
    cairn_ok(&["repo", "pull", "--repo", d, "origin", "os/stable"]);

    tweak(&tree.join("usr/lib/data.bin"), 100);
    fs::write(tree.join("usr/bin/tool"), b"#!/bin/sh\necho three\n").unwrap();
    fs::write(tree.join("etc/added-by-update"), b"new\n").unwrap();
    let head = commit("two");
    ostree_ok(&[&or, "static-delta", "generate", "os/stable"]);
    ostree_ok(&[&or, "static-delta", "generate", "--empty", "os/stable"]);
    ostree_ok(&[&or, "summary", "-u"]);
    let before = server
        .object_requests
        .load(std::sync::atomic::Ordering::SeqCst);
    let report: serde_json::Value = serde_json::from_str(&cairn_ok(&[
        "repo",
        "pull",
        "--repo",
        d,
        "--json",
        "origin",
        "os/stable",
    ]))
    .unwrap();
    assert_eq!(report["deltas"].as_array().unwrap().len(), 1, "{report}");
    assert!(
        report["deltas"][0].as_str().unwrap().contains('-'),
        "a from→to delta: {report}"
    );
    assert_eq!(
        server
            .object_requests
            .load(std::sync::atomic::Ordering::SeqCst),
        before,
        "loose objects were fetched besides the delta"
    );
    assert_eq!(
        cairn_ok(&["repo", "rev-parse", "--repo", d, "origin:os/stable"]).trim(),
        head
    );
    assert_checkout_matches(
        std::path::Path::new(d),
        "origin:os/stable",
        &tree,
        &tmp.path().join("co"),
        true,
    );

    // A new machine takes the delta from scratch.
    let fresh = tmp.path().join("fresh");
    let f = fresh.to_str().unwrap();
    cairn_ok(&["repo", "init", "--repo", f, "--mode", "bare-user"]);
    let report: serde_json::Value = serde_json::from_str(&cairn_ok(&[
        "repo",
        "pull",
        "--repo",
        f,
        "--json",
        &server.url,
        "os/stable",
    ]))
    .unwrap();
    assert_eq!(report["deltas"][0], head.as_str(), "{report}");
    cairn_ok(&["repo", "fsck", "--repo", f]);
    ostree_fsck_ok(&format!("--repo={f}"));

    // A part with one flipped byte is refused before it is applied; nothing moves.
    let hostile = tmp.path().join("hostile");
    let h = hostile.to_str().unwrap();
    cairn_ok(&["repo", "init", "--repo", h, "--mode", "bare-user"]);
    let part = fs::read_dir(src.join("deltas"))
        .unwrap()
        .flatten()
        .flat_map(|p| fs::read_dir(p.path()).unwrap().flatten())
        .map(|d| d.path().join("0"))
        .find(|p| {
            p.exists()
                && !p
                    .parent()
                    .unwrap()
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .contains('-')
        })
        .unwrap();
    let mut bytes = fs::read(&part).unwrap();
    let last = bytes.len() - 10;
    bytes[last] ^= 1;
    let rel = part
        .strip_prefix(&src)
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let evil = httpd::start(src.clone(), Fault::WrongBytes(rel, bytes));
    let out = cairn(&["repo", "pull", "--repo", h, &evil.url, "os/stable"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("the superblock says"),
        "{}",
        stderr(&out)
    );
    assert!(Repo::open(&hostile)
        .unwrap()
        .read_ref("os/stable")
        .unwrap()
        .is_none());
    cairn_ok(&["repo", "fsck", "--repo", h]);
}

#[test]
fn commit_metadata_only_then_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, tree, head) = source_repo(tmp.path());
    let (secret, public) = keys();
    cairn_ok(&[
        "repo",
        "sign",
        "--repo",
        repo.to_str().unwrap(),
        "--summary",
        &secret,
    ]);
    let server = httpd::start(repo.clone(), Fault::None);
    let dest = tmp.path().join("dest");
    let d = dest.to_str().unwrap();
    cairn_ok(&["repo", "init", "--repo", d, "--mode", "bare-user"]);
    // sign-verify-summary on, commit signatures off: the ed25519-signed summary is checked.
    cairn_ok(&[
        "repo",
        "remote",
        "add",
        "--repo",
        d,
        "--no-gpg-verify",
        "--set",
        "sign-verify-summary=true",
        "--set",
        &format!("verification-ed25519-key={public}"),
        "origin",
        &server.url,
    ]);
    let meta: serde_json::Value = serde_json::from_str(&cairn_ok(&[
        "repo",
        "pull",
        "--repo",
        d,
        "--json",
        "--commit-metadata-only",
        "--depth",
        "1",
        "origin",
        "os/stable",
    ]))
    .unwrap();
    assert_eq!(
        meta["objects_fetched"], 2,
        "two commit objects, no tree: {meta}"
    );
    let fsck = cairn_ok(&["repo", "fsck", "--repo", d]);
    assert!(
        fsck.contains(&format!("commit {head} is partial")),
        "{fsck}"
    );
    assert!(cairn_ok(&["repo", "log", "--repo", d, "origin:os/stable"]).contains("    one"));
    let full: serde_json::Value = serde_json::from_str(&cairn_ok(&[
        "repo",
        "pull",
        "--repo",
        d,
        "--json",
        "origin",
        "os/stable",
    ]))
    .unwrap();
    assert!(full["objects_fetched"].as_u64().unwrap() > 10, "{full}");
    let fsck = cairn_ok(&["repo", "fsck", "--repo", d]);
    assert!(
        !fsck.contains(&format!("commit {head} is partial")),
        "{fsck}"
    );
    let co = tmp.path().join("co");
    cairn_ok(&[
        "repo",
        "checkout",
        "--repo",
        d,
        "origin:os/stable",
        co.to_str().unwrap(),
    ]);
    assert_same_tree(&snapshot(&tree, true, true), &snapshot(&co, true, true));
    // A summary signature that does not verify stops the pull before anything else.
    fs::write(repo.join("summary.sig"), b"garbage").unwrap();
    let out = cairn(&["repo", "pull", "--repo", d, "origin", "os/stable"]);
    assert!(!out.status.success(), "a bad summary.sig was accepted");
}

#[test]
fn oversized_answers_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, _tree, _) = source_repo(tmp.path());
    // A summary is metadata: ostree's 10 MiB bound applies.
    let server = httpd::start(
        repo.clone(),
        Fault::WrongBytes("/summary".into(), vec![0; 11 << 20]),
    );
    let dest = tmp.path().join("dest");
    let d = dest.to_str().unwrap();
    cairn_ok(&["repo", "init", "--repo", d, "--mode", "archive"]);
    let out = cairn(&["repo", "pull", "--repo", d, &server.url, "os/stable"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("larger than the 10485760-byte limit"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("summary"), "{}", stderr(&out));
}

fn http_get(addr: &str, path: &str, extra: &str) -> (String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\n{extra}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    (
        String::from_utf8_lossy(&raw[..split]).into_owned(),
        raw[split + 4..].to_vec(),
    )
}

#[test]
fn large_objects_stream_with_ranges() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    // Incompressible, so that the archive object is well over the 1 MiB streaming threshold.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let data: Vec<u8> = (0..3 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    write(&tree.join("blob"), &data, 0o644);
    let repo = tmp.path().join("repo");
    let r = repo.to_str().unwrap();
    init_and_commit(r, "archive", "main", tree.to_str().unwrap());
    let source = Repo::open(&repo).unwrap();
    let head = source.resolve_rev("main").unwrap();
    let cairn_store::repo::Entry::File(blob) = source.lookup_path(&head, "/blob").unwrap() else {
        panic!()
    };
    let object = source.object_path(&blob, ObjectType::File);
    let on_disk = fs::read(&object).unwrap();
    assert!(on_disk.len() > 1 << 20);
    let rel = format!("/{}", object.strip_prefix(&repo).unwrap().display());
    let (_server, url) = cairn_serve(&repo);
    let addr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let (head_lines, body) = http_get(&addr, &rel, "");
    assert!(head_lines.starts_with("HTTP/1.1 200"), "{head_lines}");
    assert_eq!(body, on_disk, "a streamed body differs from the file");
    let (head_lines, body) = http_get(&addr, &rel, "Range: bytes=1500000-1500099\r\n");
    assert!(head_lines.starts_with("HTTP/1.1 206"), "{head_lines}");
    assert!(
        head_lines.to_ascii_lowercase().contains(&format!(
            "content-range: bytes 1500000-1500099/{}",
            on_disk.len()
        )),
        "{head_lines}"
    );
    assert_eq!(body, on_disk[1_500_000..1_500_100]);
    // And a client pulls it whole.
    let dest = tmp.path().join("dest");
    let d = dest.to_str().unwrap();
    cairn_ok(&["repo", "init", "--repo", d, "--mode", "bare-user"]);
    cairn_ok(&["repo", "pull", "--repo", d, &url, "main"]);
    assert_checkout_matches(&dest, "main", &tree, &tmp.path().join("co"), false);
}

/// Pulling a given commit for a ref (`override_commit`, as the update agent does) verifies it
/// against the remote's keys even when the commit is already in the repository, e.g. from an
/// unverified pull of a URL: no ref may end up pointing at an unsigned commit.
#[test]
fn an_override_commit_already_present_is_still_verified() {
    use cairn_store::pull::{pull, PullOptions};
    use cairn_store::{Checksum, Repo};
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    std::fs::create_dir_all(tree.join("usr/bin")).unwrap();
    std::fs::write(tree.join("usr/bin/tool"), b"one\n").unwrap();
    let src = tmp.path().join("src");
    let s = src.to_str().unwrap();
    cairn_ok(&["repo", "init", "--repo", s, "--mode", "archive"]);
    let commit = |subject: &str| {
        cairn_ok(&[
            "repo",
            "commit",
            "--repo",
            s,
            "-b",
            "os/stable",
            "-s",
            subject,
            tree.to_str().unwrap(),
        ])
        .trim()
        .to_owned()
    };
    let c1 = commit("one");
    std::fs::write(tree.join("usr/bin/tool"), b"two\n").unwrap();
    let c2 = commit("two");
    let (secret, public) =
        cairn_store::sign::encode_keypair(&ed25519_dalek::SigningKey::from_bytes(&[42; 32]));
    cairn_ok(&["repo", "sign", "--repo", s, &c1, &secret]); // c1 signed, c2 not
    cairn_ok(&["repo", "summary", "-u", "--repo", s]);
    let server = cairn_repo_server::spawn(src.clone(), "127.0.0.1:0".parse().unwrap()).unwrap();
    let url = format!("http://{}/", server.addr);
    let setup = |name: &str| {
        let dest = tmp.path().join(name);
        let d = dest.to_str().unwrap().to_owned();
        cairn_ok(&["repo", "init", "--repo", &d, "--mode", "archive"]);
        cairn_ok(&[
            "repo",
            "remote",
            "add",
            "--repo",
            &d,
            "--no-gpg-verify",
            "--sign-verify",
            &format!("ed25519=inline:{public}"),
            "origin",
            &url,
        ]);
        dest
    };
    let c2: Checksum = c2.parse().unwrap();
    let options = PullOptions {
        refs: vec!["os/stable".into()],
        override_commit: Some(c2),
        progress: false,
        ..PullOptions::default()
    };
    // Fetched: refused.
    let repo = Repo::open(&setup("fetched")).unwrap();
    assert!(pull(&repo, &repo.remote("origin").unwrap(), &options).is_err());
    assert!(repo.read_ref("origin:os/stable").unwrap().is_none());
    // Already present from an unverified pull of the URL: refused as well.
    let dest = setup("present");
    cairn_ok(&[
        "repo",
        "pull",
        "--repo",
        dest.to_str().unwrap(),
        &url,
        "os/stable",
    ]);
    let repo = Repo::open(&dest).unwrap();
    let error = pull(&repo, &repo.remote("origin").unwrap(), &options).unwrap_err();
    assert!(error.to_string().contains("signature"), "{error}");
    assert!(repo.read_ref("origin:os/stable").unwrap().is_none());
    // The signed commit passes.
    let options = PullOptions {
        override_commit: Some(c1.parse().unwrap()),
        ..options
    };
    pull(&repo, &repo.remote("origin").unwrap(), &options).unwrap();
    assert_eq!(
        repo.read_ref("origin:os/stable")
            .unwrap()
            .unwrap()
            .to_string(),
        c1
    );
}
