//! `cairn lock serve`: its config, and FleetLock through the binary with the embedded
//! store, holders kept across a restart of the process.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use crate::support::*;

/// A `cairn lock serve` process, killed when dropped (also when a test fails).
struct Served(Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Served {
    /// SIGKILL, as a crash.
    fn kill(&mut self) -> std::io::Result<()> {
        self.0.kill()
    }

    fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        self.0.wait()
    }
}

/// Starts `cairn lock serve` on a free port; returns the process and its address. Its stderr
/// is read to the end by a thread, so that the service never writes into a closed pipe.
fn serve(config: &std::path::Path, data: &std::path::Path) -> (Served, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["lock", "serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(config)
        .arg("--data-dir")
        .arg(data)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    let child = Served(child);
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    (child, addr)
}

fn post(addr: &str, path: &str, id: &str, group: &str) -> u16 {
    let body = serde_json::json!({"client_params": {"id": id, "group": group}}).to_string();
    cairn_test_support::http(addr, "POST", path, "fleet-lock-protocol: true\r\n", &body).status
}

#[test]
fn lock_serve_hands_out_slots_and_keeps_them_across_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("lock.toml");
    std::fs::write(&config, "[groups.workers]\nslots = 2\n").unwrap();
    let data = tmp.path().join("data");
    let (mut child, addr) = serve(&config, &data);
    assert_eq!(post(&addr, "/v1/pre-reboot", "a", "workers"), 200);
    assert_eq!(post(&addr, "/v1/pre-reboot", "b", "workers"), 200);
    assert_eq!(post(&addr, "/v1/pre-reboot", "c", "workers"), 409);
    assert_eq!(post(&addr, "/v1/pre-reboot", "d", "default"), 200);
    child.kill().unwrap();
    child.wait().unwrap();
    let (mut child, addr) = serve(&config, &data);
    assert_eq!(
        post(&addr, "/v1/pre-reboot", "c", "workers"),
        409,
        "a and b still hold"
    );
    assert_eq!(post(&addr, "/v1/steady-state", "a", "workers"), 200);
    assert_eq!(post(&addr, "/v1/pre-reboot", "c", "workers"), 200);
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_bad_config_names_the_file_and_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    for (text, expected) in [
        ("[groups.workers]\nslot = 2\n", "slot"),
        ("[groups.workers]\nslots = 0\n", "groups.workers.slots is 0"),
        ("[groups.\"a/b\"]\nslots = 1\n", "does not match"),
        ("[groups.workers]\nslots = -1\n", "slots"),
        (
            "[groups.workers]\nslots = 1\nlease_seconds = 0\n",
            "groups.workers.lease_seconds is 0",
        ),
        (
            "admin_token_file = \"/nonexistent/token\"\n",
            "admin_token_file",
        ),
        (
            "[groups.workers]\nslots = 1\nclient_token_file = \"/dev/null\"\n",
            "groups.workers.client_token_file: /dev/null is empty",
        ),
        (
            "[etcd]\nendpoints = [\"127.0.0.1:2379\"]\n",
            "is not an http",
        ),
        ("[etcd]\nendpoints = []\n", "etcd.endpoints is empty"),
        (
            "[etcd]\nendpoints = [\"http://127.0.0.1:2379\"]\nclient_cert_file = \"/c\"\n",
            "go together",
        ),
        (
            "[etcd]\nendpoint = [\"http://127.0.0.1:2379\"]\n",
            "endpoint",
        ),
    ] {
        let config = tmp.path().join("lock.toml");
        std::fs::write(&config, text).unwrap();
        let out = cairn(&[
            "lock",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--config",
            config.to_str().unwrap(),
            "--data-dir",
            tmp.path().join("data").to_str().unwrap(),
        ]);
        assert!(!out.status.success(), "{text}");
        let err = stderr(&out);
        assert!(
            err.contains("lock.toml") && err.contains(expected),
            "{text}: {err}"
        );
    }
}

/// `cairn lock status`, `release` and `slots` against a running service, with the admin token.
#[test]
fn lock_status_release_and_slots_through_the_admin_api() {
    let tmp = tempfile::tempdir().unwrap();
    let token = tmp.path().join("admin.token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let config = tmp.path().join("lock.toml");
    std::fs::write(
        &config,
        format!(
            "admin_token_file = \"{}\"\n[groups.workers]\nslots = 2\nlease_seconds = 7200\n",
            token.display()
        ),
    )
    .unwrap();
    let (mut child, addr) = serve(&config, &tmp.path().join("data"));
    let url = format!("http://{addr}");
    assert_eq!(post(&addr, "/v1/pre-reboot", "node-a", "workers"), 200);
    assert_eq!(post(&addr, "/v1/pre-reboot", "node-b", "workers"), 200);
    let admin = |args: &[&str], token: Option<&str>| {
        let mut all = vec!["lock"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--url", &url]);
        if let Some(token) = token {
            all.extend_from_slice(&["--token", token]);
        }
        cairn(&all)
    };

    let out = admin(&["status"], Some("s3cret"));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("group default: its 1 slot is free"), "{text}");
    assert!(
        text.contains(
            "group workers: 2 of 2 slots taken; a slot is freed after 2 h 0 min if not given back"
        ),
        "{text}"
    );
    assert!(text.contains("  node-a holds a slot since "), "{text}");
    assert!(
        text.contains("(0 s ago)") || text.contains("s ago)"),
        "{text}"
    );

    let out = admin(&["status", "--json"], Some("s3cret"));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["groups"][1]["holders"][1]["id"], "node-b");

    // A wrong or missing token is refused with the service's reason.
    let out = admin(&["status"], Some("wrong"));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("401"), "{}", stderr(&out));
    let out = admin(&["status"], None);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("needs a token"), "{}", stderr(&out));

    // An id with URL syntax in it names that id: releasing "node-a#x" does not free node-a.
    let out = admin(&["release", "workers", "node-a#x"], Some("s3cret"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("node-a#x held no reboot slot"));
    let out = admin(&["release", "workers", "node-a"], Some("s3cret"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("freed the reboot slot node-a"));
    let out = admin(&["slots", "workers", "3"], Some("s3cret"));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains("1 of 3 slots taken (set to 3 by an operator; configured 2)"),
        "{text}"
    );
    let out = admin(&["slots", "workers", "none"], Some("s3cret"));
    assert!(!out.status.success());
    child.kill().unwrap();
    child.wait().unwrap();
}

/// The service is killed (SIGKILL) while clients take and give back slots; after a restart,
/// every slot whose taking was acknowledged, and whose giving back was not, is still held, and
/// nothing is held that no client asked for.
#[test]
fn a_kill_mid_run_keeps_every_acknowledged_holder() {
    use std::collections::BTreeSet;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;

    let tmp = tempfile::tempdir().unwrap();
    let token = tmp.path().join("admin.token");
    std::fs::write(&token, "t").unwrap();
    let config = tmp.path().join("lock.toml");
    std::fs::write(
        &config,
        format!(
            "admin_token_file = \"{}\"\n[groups.fleet]\nslots = 100000\n",
            token.display()
        ),
    )
    .unwrap();
    let data = tmp.path().join("data");
    let (mut child, addr) = serve(&config, &data);
    // Per client: ids acknowledged as held, and ids whose last request got no answer.
    let held = Mutex::new(BTreeSet::new());
    let uncertain = Mutex::new(BTreeSet::new());
    let dead = AtomicBool::new(false);
    let send = |path: &str, id: &str| -> Option<u16> {
        let body = serde_json::json!({"client_params": {"id": id, "group": "fleet"}}).to_string();
        cairn_test_support::try_http(
            addr.as_str(),
            "POST",
            path,
            "fleet-lock-protocol: true\r\n",
            &body,
        )
        .ok()
        .map(|reply| reply.status)
        .filter(|status| *status != 0)
    };
    std::thread::scope(|scope| {
        for client in 0..8 {
            let (held, uncertain, dead, send) = (&held, &uncertain, &dead, &send);
            scope.spawn(move || {
                for round in 0.. {
                    let id = format!("c{client}-{round}");
                    match send("/v1/pre-reboot", &id) {
                        Some(200) => {
                            held.lock().unwrap().insert(id.clone());
                        }
                        Some(status) => panic!("{id}: pre-reboot answered {status}"),
                        None => {
                            uncertain.lock().unwrap().insert(id);
                            break;
                        }
                    }
                    if round % 3 == 0 {
                        match send("/v1/steady-state", &id) {
                            Some(200) => {
                                held.lock().unwrap().remove(&id);
                            }
                            Some(status) => panic!("{id}: steady-state answered {status}"),
                            None => {
                                uncertain.lock().unwrap().insert(id);
                                break;
                            }
                        }
                    }
                    if dead.load(Ordering::SeqCst) {
                        break;
                    }
                }
            });
        }
        std::thread::sleep(std::time::Duration::from_millis(700));
        child.kill().unwrap();
        child.wait().unwrap();
        dead.store(true, Ordering::SeqCst);
    });
    let held = held.into_inner().unwrap();
    let uncertain = uncertain.into_inner().unwrap();
    assert!(
        held.len() > 50,
        "only {} slots taken before the kill",
        held.len()
    );

    let (mut child, addr) = serve(&config, &data);
    let reply = cairn_test_support::http(
        addr.as_str(),
        "GET",
        "/v1/admin/groups",
        "Authorization: Bearer t\r\n",
        "",
    );
    let report: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    let fleet = report["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group"] == "fleet")
        .unwrap();
    let after: BTreeSet<String> = fleet["holders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_str().unwrap().to_string())
        .collect();
    let lost: Vec<_> = held
        .iter()
        .filter(|id| !after.contains(*id) && !uncertain.contains(*id))
        .collect();
    assert!(
        lost.is_empty(),
        "acknowledged holders lost in the crash: {lost:?}"
    );
    let invented: Vec<_> = after
        .iter()
        .filter(|id| !held.contains(*id) && !uncertain.contains(*id))
        .collect();
    assert!(
        invented.is_empty(),
        "holders nobody was told about: {invented:?}"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

/// `cairn lock serve` with `[etcd]` keeps the groups in etcd, in Airlock's key and value.
#[test]
fn lock_serve_on_etcd() {
    let Some(etcd) = cairn_test_support::etcd::shared() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let prefix = cairn_test_support::etcd::unique_prefix();
    let endpoints = etcd.client_urls();
    let config = tmp.path().join("lock.toml");
    std::fs::write(
        &config,
        format!(
            "[groups.workers]\nslots = 1\n[etcd]\nendpoints = [\"{}\"]\nprefix = \"{prefix}\"\n",
            endpoints[0]
        ),
    )
    .unwrap();
    let (mut child, addr) = serve(&config, &tmp.path().join("unused"));
    assert_eq!(post(&addr, "/v1/pre-reboot", "m1", "workers"), 200);
    assert_eq!(post(&addr, "/v1/pre-reboot", "m2", "workers"), 409);
    let value = cairn_test_support::etcd::etcdctl(
        &endpoints[0],
        &[
            "get",
            "--print-value-only",
            &format!("{prefix}workers/v1/semaphore"),
        ],
    );
    let value: serde_json::Value = serde_json::from_str(value.trim()).unwrap();
    assert_eq!(value["total_slots"], 1);
    assert_eq!(value["holders"], serde_json::json!(["m1"]));
    assert!(
        !tmp.path().join("unused").exists(),
        "no embedded store with [etcd]"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

/// The sample config in `dist/` is one `cairn lock serve` accepts.
#[test]
fn the_sample_config_in_dist_is_valid() {
    let tmp = tempfile::tempdir().unwrap();
    let config =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dist/cairn-lock.toml");
    let (_served, addr) = serve(&config, &tmp.path().join("data"));
    assert_eq!(post(&addr, "/v1/pre-reboot", "a", "workers"), 200);
    assert_eq!(post(&addr, "/v1/pre-reboot", "b", "workers"), 200);
    assert_eq!(post(&addr, "/v1/pre-reboot", "c", "workers"), 409);
}
