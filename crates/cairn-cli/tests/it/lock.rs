//! `cairn lock serve`: its config, and FleetLock through the binary with the embedded
//! store, holders kept across a restart of the process.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use crate::support::*;

/// Starts `cairn lock serve` on a free port; returns the child and its address.
fn serve(config: &std::path::Path, data: &std::path::Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["lock", "serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(config)
        .arg("--data-dir")
        .arg(data)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
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
