//! The lock service on a real etcd (Debian's etcd-server): every FleetLock rule, and a
//! three-member cluster losing the member in use while HTTP clients take and give back slots.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use std::net::SocketAddr;

use cairn_lock::{EtcdOptions, EtcdStore};
use cairn_lock_server::{spawn, Service, Settings};
use cairn_test_support::etcd::{etcdctl, shared, unique_prefix, EtcdCluster};
use cairn_test_support::try_http;

use super::{params, protocol_rules, settings, PROTOCOL};

fn options(endpoints: Vec<String>) -> EtcdOptions {
    EtcdOptions {
        endpoints,
        prefix: unique_prefix(),
        ..EtcdOptions::default()
    }
}

#[test]
fn fleetlock_rules_on_etcd_in_airlocks_format() {
    let Some(etcd) = shared() else {
        return;
    };
    let options = options(etcd.client_urls());
    let prefix = options.prefix.clone();
    let store = EtcdStore::connect(options).unwrap();
    let server = spawn(
        Service::new(store, settings()),
        "127.0.0.1:0".parse().unwrap(),
    )
    .unwrap();
    protocol_rules(server.addr);
    // What the rules left: w1 and w2 hold the workers group, in Airlock's value.
    let value = etcdctl(
        &etcd.client_urls().join(","),
        &[
            "get",
            "--print-value-only",
            &format!("{prefix}workers/v1/semaphore"),
        ],
    );
    let value: serde_json::Value = serde_json::from_str(value.trim()).unwrap();
    assert_eq!(value["total_slots"], 2);
    assert_eq!(value["holders"], serde_json::json!(["w1", "w2"]));
}

/// Clients retry what a real agent retries (a 5xx or a dropped connection); anything else is
/// an error. The member the service uses is killed mid-run.
#[test]
fn a_cluster_member_dies_under_load_and_clients_only_see_retries() {
    const CLIENTS: usize = 16;
    const SLOTS: usize = 2;
    let Some(mut cluster) = EtcdCluster::start(3) else {
        return;
    };
    let mut endpoints = cluster.client_urls();
    // The leader first: the store uses it, so the kill hits both the member in use and the leader.
    endpoints.rotate_left(cluster.leader().unwrap_or(0));
    let options = EtcdOptions {
        request_timeout: Duration::from_secs(2),
        ..options(endpoints)
    };
    let prefix = options.prefix.clone();
    let store = EtcdStore::connect(options).unwrap();
    let server = spawn(
        Service::new(store, Settings::with_slots([("workers", SLOTS as u64)])),
        "127.0.0.1:0".parse().unwrap(),
    )
    .unwrap();
    let addr = server.addr;
    let holding = AtomicUsize::new(0);
    let most = AtomicUsize::new(0);
    let cycles = AtomicU64::new(0);
    let retries = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let errors = Mutex::new(Vec::new());
    // Retries a request until it gets an answer that is not a 5xx or a lost connection.
    let ask = |request: &dyn Fn() -> Option<u16>| loop {
        match request() {
            Some(status) if status < 500 => return status,
            _ => {
                retries.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    };
    let (at_kill, killed) = std::thread::scope(|scope| {
        for client in 0..CLIENTS {
            let (holding, most, cycles, stop, errors, ask) =
                (&holding, &most, &cycles, &stop, &errors, &ask);
            scope.spawn(move || {
                let id = format!("machine-{client:02}");
                while !stop.load(Ordering::Relaxed) {
                    match ask(&|| status(addr, "/v1/pre-reboot", &id)) {
                        200 => {}
                        409 => {
                            std::thread::sleep(Duration::from_millis(5));
                            continue;
                        }
                        status => {
                            errors
                                .lock()
                                .unwrap()
                                .push(format!("{id}: pre-reboot {status}"));
                            continue;
                        }
                    }
                    let now = holding.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(2));
                    holding.fetch_sub(1, Ordering::SeqCst);
                    match ask(&|| status(addr, "/v1/steady-state", &id)) {
                        200 => {
                            cycles.fetch_add(1, Ordering::Relaxed);
                        }
                        status => errors
                            .lock()
                            .unwrap()
                            .push(format!("{id}: steady-state {status}")),
                    }
                }
            });
        }
        std::thread::sleep(Duration::from_secs(2));
        let at_kill = cycles.load(Ordering::SeqCst);
        let killed = cluster.leader().unwrap_or(0);
        cluster.kill(killed);
        std::thread::sleep(Duration::from_secs(4));
        stop.store(true, Ordering::SeqCst);
        (at_kill, killed)
    });
    let errors = errors.into_inner().unwrap();
    assert!(errors.is_empty(), "clients saw errors: {errors:?}");
    let total = cycles.load(Ordering::SeqCst);
    assert!(at_kill > 0, "no cycle before the kill");
    assert!(
        total > at_kill,
        "no cycle after member {killed} was killed ({total} in all)"
    );
    assert!(
        most.load(Ordering::SeqCst) <= SLOTS,
        "{} held at once",
        most.load(Ordering::SeqCst)
    );
    // Every slot came back: the group is empty in etcd, as the surviving members say.
    let survivors: Vec<String> = cluster
        .client_urls()
        .into_iter()
        .enumerate()
        .filter(|(index, _)| *index != killed)
        .map(|(_, url)| url)
        .collect();
    let value = etcdctl(
        &survivors.join(","),
        &[
            "get",
            "--print-value-only",
            &format!("{prefix}workers/v1/semaphore"),
        ],
    );
    let value: serde_json::Value = serde_json::from_str(value.trim()).unwrap();
    assert_eq!(value["holders"], serde_json::json!([]), "{value}");
    eprintln!(
        "{total} lock/unlock cycles, {at_kill} before the kill, {} retries",
        retries.load(Ordering::SeqCst)
    );
    drop(server);
}

/// The status of a FleetLock request, or `None` when the connection failed.
fn status(addr: SocketAddr, path: &str, id: &str) -> Option<u16> {
    let body = params(id, "workers");
    try_http(addr, "POST", path, PROTOCOL, &body)
        .ok()
        .map(|reply| reply.status)
}
