//! FleetLock v1 over real HTTP: every rule of the protocol, on the memory and the embedded
//! store, and holders kept across a restart; the admin API, client tokens, leases, metrics;
//! a thousand clients at once.

mod admin;
mod etcd;
mod load;

use std::net::SocketAddr;
use std::time::Duration;

use cairn_lock::{EmbeddedStore, MemoryStore};
use cairn_lock_server::{spawn, Service, Settings};
use cairn_test_support::{http, HttpReply};

/// One POST; `header` is the fleet-lock-protocol line or empty.
fn post(addr: SocketAddr, path: &str, header: &str, body: &str) -> HttpReply {
    http(addr, "POST", path, header, body)
}

const PROTOCOL: &str = "fleet-lock-protocol: true\r\n";

fn params(id: &str, group: &str) -> String {
    serde_json::json!({"client_params": {"id": id, "group": group}}).to_string()
}

fn lock(addr: SocketAddr, id: &str, group: &str) -> HttpReply {
    post(addr, "/v1/pre-reboot", PROTOCOL, &params(id, group))
}

fn unlock(addr: SocketAddr, id: &str, group: &str) -> HttpReply {
    post(addr, "/v1/steady-state", PROTOCOL, &params(id, group))
}

fn kind(reply: &HttpReply) -> String {
    let body: serde_json::Value = serde_json::from_str(&reply.body).unwrap_or_default();
    assert!(
        body["value"].as_str().is_some_and(|v| !v.is_empty()),
        "error without a value: {}",
        reply.body
    );
    body["kind"].as_str().unwrap_or_default().to_string()
}

fn settings() -> Settings {
    Settings::with_slots([("workers", 2)])
}

fn protocol_rules(addr: SocketAddr) {
    // The header is required, exactly `true`.
    for header in [
        "",
        "fleet-lock-protocol: false\r\n",
        "fleet-lock-protocol: yes\r\n",
    ] {
        let reply = post(addr, "/v1/pre-reboot", header, &params("a", "default"));
        assert_eq!(reply.status, 400, "{header:?}");
        assert_eq!(kind(&reply), "invalid_client_identity");
    }
    // Bad bodies and bad groups.
    for body in [
        "{".to_string(),
        "{}".to_string(),
        params("", "default"),
        params("a", ""),
        params("a", "bad/group"),
        params("a", "with space"),
        params(&"x".repeat(300), "default"),
    ] {
        let reply = post(addr, "/v1/pre-reboot", PROTOCOL, &body);
        assert_eq!(reply.status, 400, "{body}");
        assert_eq!(kind(&reply), "invalid_client_identity", "{body}");
    }
    let reply = lock(addr, "a", "nobody-configured-this");
    assert_eq!(
        (reply.status, kind(&reply).as_str()),
        (400, "unknown_group")
    );
    // The default group has one slot; a lock is re-entrant.
    assert_eq!(lock(addr, "a", "default").status, 200);
    assert_eq!(lock(addr, "a", "default").status, 200);
    let full = lock(addr, "b", "default");
    assert_eq!(full.status, 409, "{}", full.body);
    assert_eq!(kind(&full), "failed_lock_semaphore_full");
    // Giving back what one does not hold succeeds; giving back frees the slot.
    assert_eq!(unlock(addr, "b", "default").status, 200);
    assert_eq!(unlock(addr, "a", "default").status, 200);
    assert_eq!(unlock(addr, "a", "default").status, 200);
    assert_eq!(lock(addr, "b", "default").status, 200);
    assert_eq!(unlock(addr, "b", "default").status, 200);
    // A configured group with two slots.
    assert_eq!(lock(addr, "w1", "workers").status, 200);
    assert_eq!(lock(addr, "w2", "workers").status, 200);
    assert_eq!(lock(addr, "w3", "workers").status, 409);
    // Only POST on the two endpoints; a body too large is refused, not a 5xx.
    assert_eq!(post(addr, "/v1/other", PROTOCOL, "{}").status, 404);
    let huge = post(addr, "/v1/pre-reboot", PROTOCOL, &" ".repeat(64 * 1024));
    assert!((400..500).contains(&huge.status), "{}", huge.status);
}

#[test]
fn fleetlock_rules_on_the_memory_store() {
    let server = spawn(
        Service::new(MemoryStore::new(), settings()),
        "127.0.0.1:0".parse().unwrap(),
    )
    .unwrap();
    protocol_rules(server.addr);
}

#[test]
fn fleetlock_rules_on_the_embedded_store_and_holders_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let server = spawn(
            Service::new(store, settings()),
            "127.0.0.1:0".parse().unwrap(),
        )
        .unwrap();
        protocol_rules(server.addr);
    }
    // w1 and w2 still hold the workers group after the restart.
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let server = spawn(
        Service::new(store, settings()),
        "127.0.0.1:0".parse().unwrap(),
    )
    .unwrap();
    assert_eq!(lock(server.addr, "w3", "workers").status, 409);
    assert_eq!(
        lock(server.addr, "w1", "workers").status,
        200,
        "re-entrant after the restart"
    );
    assert_eq!(unlock(server.addr, "w2", "workers").status, 200);
    assert_eq!(lock(server.addr, "w3", "workers").status, 200);
}

#[test]
fn many_clients_never_hold_more_than_the_slots() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let server = spawn(
        Service::new(store, settings()),
        "127.0.0.1:0".parse().unwrap(),
    )
    .unwrap();
    let addr = server.addr;
    let holding = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let most = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let (holding, most) = (holding.clone(), most.clone());
            std::thread::spawn(move || {
                for round in 0..15 {
                    let id = format!("node-{t}-{round}");
                    // Retry until a slot is free, as an agent would.
                    while lock(addr, &id, "workers").status != 200 {
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    let now = holding.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                    most.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(1));
                    holding.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                    assert_eq!(unlock(addr, &id, "workers").status, 200);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert!(most.load(std::sync::atomic::Ordering::SeqCst) <= 2);
    // Every slot was given back: two new clients get one each.
    assert_eq!(lock(addr, "late-1", "workers").status, 200);
    assert_eq!(lock(addr, "late-2", "workers").status, 200);
}
