//! The etcd store against real etcd (Debian's etcd-server): Airlock's values read and written
//! (checked with etcdctl), garbage values, authentication, TLS with client certificates, the
//! semaphore, calls from another runtime, and a three-member cluster that loses the member in use.
//!
//! [`EtcdCluster`] starts members on loopback in temp dirs; the conformance suite and most tests
//! here share one member ([`shared`]) and keep apart by key prefix ([`unique_prefix`]).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::conformance::{group, state};
use cairn_lock::etcd::EtcdError;
use cairn_lock::{
    error_chain, EtcdOptions, EtcdStore, GroupName, LockOutcome, Semaphore, SemaphoreError, Store,
    StoreError, UnlockOutcome,
};
use cairn_test_support::etcd::{
    etcdctl, free_ports, shared, unique_prefix, EtcdCluster, ServerTls, ETCDCTL,
};
use cairn_test_support::have_peer;
const NOW: u64 = 1_700_000_000;

pub fn options(endpoints: Vec<String>) -> EtcdOptions {
    EtcdOptions {
        endpoints,
        prefix: unique_prefix(),
        ..EtcdOptions::default()
    }
}

/// A store on the shared etcd, under a prefix of its own.
pub fn store_on_shared_etcd() -> Option<EtcdStore> {
    let cluster = shared()?;
    Some(EtcdStore::connect(options(cluster.client_urls())).unwrap())
}

#[test]
fn etcd_reads_what_airlock_wrote_and_etcdctl_reads_what_we_write() {
    let Some(cluster) = shared() else { return };
    if !have_peer(ETCDCTL) {
        return;
    }
    let endpoint = &cluster.client_urls()[0];
    let store = EtcdStore::connect(options(cluster.client_urls())).unwrap();
    let default = GroupName::default_group();
    let key = store.key(&default);
    assert_eq!(key, format!("{}default/v1/semaphore", store.prefix()));

    // As Airlock's ensureInit and RecursiveLock leave it.
    etcdctl(
        endpoint,
        &["put", &key, r#"{"total_slots":1,"holders":["a"]}"#],
    );
    let read = store.get(&default).unwrap();
    assert_eq!(read.state, state(1, &["a"]));
    let listed: serde_json::Value =
        serde_json::from_str(&etcdctl(endpoint, &["get", &key, "-w", "json"])).unwrap();
    assert_eq!(
        listed["kvs"][0]["mod_revision"].as_u64(),
        Some(read.version),
        "the version is the key's mod_revision"
    );
    // Go writes a nil slice as null.
    etcdctl(
        endpoint,
        &["put", &key, r#"{"total_slots":2,"holders":null}"#],
    );
    assert_eq!(store.get(&default).unwrap().state, state(2, &[]));

    let version = store.get(&default).unwrap().version;
    let written = store
        .compare_and_swap(&default, version, &state(1, &["b"]))
        .unwrap()
        .unwrap();
    assert!(written > version);
    let value = |key: &str| etcdctl(endpoint, &["get", "--print-value-only", key]);
    assert_eq!(value(&key), "{\"total_slots\":1,\"holders\":[\"b\"]}\n");

    let semaphore = Semaphore::new(&store);
    semaphore.unlock(&default, "b").unwrap();
    assert_eq!(
        semaphore.lock(&default, "c", 2, NOW).unwrap(),
        LockOutcome::Acquired
    );
    assert_eq!(
        value(&key),
        "{\"total_slots\":2,\"holders\":[\"c\"],\"leases\":{\"c\":1700000000}}\n"
    );
    assert_eq!(store.groups().unwrap(), [default]);
}

#[test]
fn etcd_garbage_value_is_an_error_naming_the_key() {
    let Some(cluster) = shared() else { return };
    if !have_peer(ETCDCTL) {
        return;
    }
    let endpoint = &cluster.client_urls()[0];
    let store = EtcdStore::connect(options(cluster.client_urls())).unwrap();
    let workers = group("workers");
    let key = store.key(&workers);
    etcdctl(endpoint, &["put", &key, "not json {"]);
    let error = store.get(&workers).unwrap_err();
    match &error {
        StoreError::CorruptValue {
            key: named,
            endpoint: at,
            ..
        } => {
            assert_eq!(named, &key);
            assert_eq!(at, endpoint);
        }
        other => panic!("expected a corrupt value, got {other:?}"),
    }
    let message = error_chain(&error);
    assert!(message.contains(&key), "{message}");
    assert!(message.contains(endpoint.as_str()), "{message}");

    let semaphore = Semaphore::new(&store);
    assert!(matches!(
        semaphore.lock(&workers, "a", 1, NOW),
        Err(SemaphoreError::Store(StoreError::CorruptValue { .. }))
    ));
    // A group whose value is not even JSON text, and keys that are no group's.
    etcdctl(endpoint, &["put", &key, "\u{1}\u{2}"]);
    assert!(store.get(&workers).is_err());
    for other in ["bad_name/v1/semaphore", "x/notes", "a/b/v1/semaphore"] {
        etcdctl(
            endpoint,
            &["put", &format!("{}{other}", store.prefix()), "{}"],
        );
    }
    assert_eq!(store.groups().unwrap(), [workers]);
}

#[test]
fn etcd_semaphore_takes_and_gives_back_slots() {
    let Some(store) = store_on_shared_etcd() else {
        return;
    };
    let semaphore = Semaphore::new(store);
    let workers = group("workers");
    assert_eq!(
        semaphore.lock(&workers, "b", 2, NOW).unwrap(),
        LockOutcome::Acquired
    );
    assert_eq!(
        semaphore.lock(&workers, "a", 2, NOW).unwrap(),
        LockOutcome::Acquired
    );
    assert_eq!(
        semaphore.lock(&workers, "a", 2, NOW).unwrap(),
        LockOutcome::AlreadyHeld
    );
    assert_eq!(
        semaphore.lock(&workers, "c", 2, NOW).unwrap(),
        LockOutcome::Full {
            holders: vec!["a".to_owned(), "b".to_owned()],
            slots: 2
        }
    );
    assert_eq!(
        semaphore.unlock(&workers, "a").unwrap(),
        UnlockOutcome::Released
    );
    assert_eq!(
        semaphore.unlock(&workers, "a").unwrap(),
        UnlockOutcome::NotHeld
    );
    assert_eq!(
        semaphore.lock(&workers, "c", 2, NOW).unwrap(),
        LockOutcome::Acquired
    );
    let stored = semaphore.store().get(&workers).unwrap().state;
    assert_eq!(stored.holders, ["b", "c"]);
    assert_eq!(stored.leases.get("c"), Some(&NOW));
    for id in ["b", "c"] {
        semaphore.unlock(&workers, id).unwrap();
    }
    assert!(semaphore
        .store()
        .get(&workers)
        .unwrap()
        .state
        .holders
        .is_empty());
    assert_eq!(semaphore.store().groups().unwrap(), [workers]);
}

/// The HTTP server calls stores from tokio's blocking pool: the store's own runtime must not
/// mind, on either kind of outer runtime, and dropping the store in async code must not panic.
#[test]
fn etcd_store_works_from_spawn_blocking_of_another_runtime() {
    let Some(cluster) = shared() else { return };
    let runtimes = [
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap(),
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap(),
    ];
    for runtime in runtimes {
        let options = options(cluster.client_urls());
        runtime.block_on(async move {
            let store = tokio::task::spawn_blocking(move || EtcdStore::connect(options))
                .await
                .unwrap()
                .unwrap();
            let semaphore = Arc::new(Semaphore::new(store));
            let workers = group("workers");
            let tasks: Vec<_> = (0..8)
                .map(|client| {
                    let (semaphore, workers) = (semaphore.clone(), workers.clone());
                    tokio::task::spawn_blocking(move || {
                        let id = format!("node-{client}");
                        let outcome = semaphore.lock(&workers, &id, 8, NOW).unwrap();
                        assert_eq!(outcome, LockOutcome::Acquired);
                        semaphore.unlock(&workers, &id).unwrap()
                    })
                })
                .collect();
            for task in tasks {
                assert_eq!(task.await.unwrap(), UnlockOutcome::Released);
            }
            let store_state = {
                let semaphore = semaphore.clone();
                let workers = workers.clone();
                tokio::task::spawn_blocking(move || semaphore.store().get(&workers).unwrap())
                    .await
                    .unwrap()
            };
            assert!(store_state.state.holders.is_empty());
            assert_eq!(store_state.state.total_slots, 8);
            drop(semaphore); // in async code
        });
    }
}

#[test]
fn etcd_unreachable_endpoint_fails_at_connect_naming_it() {
    let dead = format!("http://127.0.0.1:{}", free_ports(1)[0]);
    let started = Instant::now();
    let error = EtcdStore::connect(EtcdOptions {
        endpoints: vec![dead.clone()],
        ..EtcdOptions::default()
    })
    .unwrap_err();
    let message = error_chain(&error);
    assert!(message.contains(&dead), "{message}");
    assert!(message.contains("no etcd endpoint answered"), "{message}");
    assert!(started.elapsed() < Duration::from_secs(10));
    for (endpoints, complaint) in [
        (vec!["ftp://127.0.0.1:2379".to_owned()], "http://"),
        (vec![], "no endpoints"),
    ] {
        let error = EtcdStore::connect(EtcdOptions {
            endpoints,
            ..EtcdOptions::default()
        })
        .unwrap_err();
        assert!(error_chain(&error).contains(complaint), "{error:?}");
    }

    // A dead endpoint before a live one: the store settles on the live one.
    let Some(cluster) = shared() else { return };
    let live = cluster.client_urls()[0].clone();
    let store = EtcdStore::connect(options(vec![dead, live.clone()])).unwrap();
    assert_eq!(store.current_endpoint(), live);
    assert!(store
        .compare_and_swap(&group("g"), 0, &state(1, &[]))
        .unwrap()
        .is_some());
}

#[test]
fn etcd_authentication_with_username_and_password() {
    // Tokens that expire after a second, to see the store authenticate again.
    let Some(cluster) = EtcdCluster::start_with(1, &["--auth-token-ttl=1"], None) else {
        return;
    };
    if !have_peer(ETCDCTL) {
        return;
    }
    let endpoint = cluster.member(0).client_url().to_owned();
    etcdctl(&endpoint, &["user", "add", "root:secret"]);
    etcdctl(&endpoint, &["auth", "enable"]);
    let with = |username: Option<&str>, password: Option<&str>| {
        EtcdStore::connect(EtcdOptions {
            username: username.map(str::to_owned),
            password: password.map(str::to_owned),
            ..options(vec![endpoint.clone()])
        })
    };

    let message = error_chain(&with(None, None).unwrap_err());
    assert!(message.contains(&endpoint), "{message}");
    assert!(message.contains("authentication enabled"), "{message}");
    let message = error_chain(&with(Some("root"), Some("wrong")).unwrap_err());
    assert!(message.contains("authenticate as root"), "{message}");
    assert!(
        message.contains("check the username and password"),
        "{message}"
    );
    assert!(!message.contains("wrong"), "{message}");
    let error = with(Some("root"), None).unwrap_err();
    assert!(matches!(&error, StoreError::Backend(inner)
        if matches!(inner.downcast_ref::<EtcdError>(), Some(EtcdError::Options(_)))));

    let store = with(Some("root"), Some("secret")).unwrap();
    let semaphore = Semaphore::new(&store);
    let default = GroupName::default_group();
    assert_eq!(
        semaphore.lock(&default, "a", 1, NOW).unwrap(),
        LockOutcome::Acquired
    );
    std::thread::sleep(Duration::from_millis(2500)); // the token has expired
    assert_eq!(
        semaphore.unlock(&default, "a").unwrap(),
        UnlockOutcome::Released
    );
    assert_eq!(store.groups().unwrap(), [default]);
}

#[test]
fn etcd_over_tls_with_client_certificates() {
    if !have_peer("openssl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pki = make_test_pki(dir.path());
    let tls = ServerTls {
        ca: &pki.ca,
        cert: &pki.server_cert,
        key: &pki.server_key,
    };
    let Some(cluster) = EtcdCluster::start_with(1, &[], Some(&tls)) else {
        return;
    };
    let endpoint = cluster.member(0).client_url().to_owned();
    assert!(endpoint.starts_with("https://"));
    let with = |ca: Option<&Path>, client: bool| {
        EtcdStore::connect(EtcdOptions {
            ca_file: ca.map(Path::to_owned),
            client_cert: client.then(|| pki.client_cert.clone()),
            client_key: client.then(|| pki.client_key.clone()),
            request_timeout: Duration::from_secs(2),
            ..options(vec![endpoint.clone()])
        })
    };
    let store = with(Some(&pki.ca), true).unwrap();
    assert!(store
        .compare_and_swap(&group("tls"), 0, &state(1, &["a"]))
        .unwrap()
        .is_some());
    assert_eq!(store.get(&group("tls")).unwrap().state, state(1, &["a"]));
    // Without a client certificate, and without trusting the CA.
    for (ca, client) in [(Some(pki.ca.as_path()), false), (None, true)] {
        let message = error_chain(&with(ca, client).unwrap_err());
        assert!(message.contains(&endpoint), "{message}");
    }
    let message = error_chain(&with(Some(&dir.path().join("missing.pem")), true).unwrap_err());
    assert!(message.contains("missing.pem"), "{message}");
}

struct TestPki {
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, made by openssl.
fn make_test_pki(dir: &Path) -> TestPki {
    let openssl = |args: &[&str]| {
        let output = Command::new("openssl")
            .current_dir(dir)
            .args(args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    let new_key = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509"][..],
            &new_key,
            &["-keyout", "ca.key", "-out", "ca.crt", "-days", "2"],
            &["-subj", "/CN=cairn test CA"],
        ]
        .concat(),
    );
    // The server certificate is a client certificate too: etcd's gateway presents it to etcd's
    // own gRPC port (etcd-io/etcd#9785).
    for (name, extensions) in [
        (
            "server",
            "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n",
        ),
        ("client", "extendedKeyUsage=clientAuth\n"),
    ] {
        let (key, request, cert, extfile) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
            format!("{name}.ext"),
        );
        std::fs::write(dir.join(&extfile), extensions).unwrap();
        openssl(
            &[
                &["req"][..],
                &new_key,
                &["-keyout", &key, "-out", &request, "-subj"],
                &[&format!("/CN=cairn test {name}")],
            ]
            .concat(),
        );
        openssl(&[
            "x509",
            "-req",
            "-in",
            &request,
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &cert,
            "-days",
            "2",
            "-extfile",
            &extfile,
        ]);
    }
    TestPki {
        ca: dir.join("ca.crt"),
        server_cert: dir.join("server.crt"),
        server_key: dir.join("server.key"),
        client_cert: dir.join("client.crt"),
        client_key: dir.join("client.key"),
    }
}

/// Three members; the store starts on the leader; 12 threads lock and unlock one group of 2
/// slots; the member in use is killed mid-run. No call may fail, no more than 2 threads may ever
/// believe they hold a slot, the rest of the cluster must keep serving, and no slot may be left
/// taken at the end.
#[test]
fn etcd_cluster_keeps_the_semaphore_safe_when_the_member_in_use_dies() {
    const THREADS: usize = 12;
    const SLOTS: u64 = 2;
    let Some(mut cluster) = EtcdCluster::start(3) else {
        return;
    };
    let mut endpoints = cluster.client_urls();
    let leader = cluster.leader();
    endpoints.rotate_left(leader.unwrap_or(0));
    let store = EtcdStore::connect(EtcdOptions {
        request_timeout: Duration::from_secs(2),
        ..options(endpoints)
    })
    .unwrap();
    let semaphore = Semaphore::new(store);
    let workers = group("workers");

    let holding = AtomicUsize::new(0);
    let most_holding = AtomicUsize::new(0);
    let cycles = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let errors = Mutex::new(Vec::new());
    let started = Instant::now();
    let last_cycle = Mutex::new(started);
    let longest_stall = Mutex::new(Duration::ZERO);
    let (cycles_at_kill, cycles_before_last_second, killed, stall_window) =
        std::thread::scope(|scope| {
            for thread in 0..THREADS {
                let (semaphore, workers, holding, most_holding, cycles, stop, errors) = (
                    &semaphore,
                    &workers,
                    &holding,
                    &most_holding,
                    &cycles,
                    &stop,
                    &errors,
                );
                let (last_cycle, longest_stall) = (&last_cycle, &longest_stall);
                scope.spawn(move || {
                    let id = format!("node-{thread:02}");
                    while !stop.load(Ordering::Relaxed) {
                        match semaphore.lock(workers, &id, SLOTS, NOW) {
                            // AlreadyHeld: a lock whose answer was lost and that was retried.
                            Ok(LockOutcome::Acquired | LockOutcome::AlreadyHeld) => {
                                let now = holding.fetch_add(1, Ordering::SeqCst) + 1;
                                most_holding.fetch_max(now, Ordering::SeqCst);
                                holding.fetch_sub(1, Ordering::SeqCst);
                                match semaphore.unlock(workers, &id) {
                                    Ok(_) => {
                                        cycles.fetch_add(1, Ordering::Relaxed);
                                        let now = Instant::now();
                                        let mut last = last_cycle.lock().unwrap();
                                        let mut longest = longest_stall.lock().unwrap();
                                        *longest = (*longest).max(now - *last);
                                        *last = now;
                                    }
                                    Err(error) => errors
                                        .lock()
                                        .unwrap()
                                        .push(format!("unlock: {}", error_chain(&error))),
                                }
                            }
                            Ok(LockOutcome::Full { .. }) => {
                                std::thread::sleep(Duration::from_millis(2))
                            }
                            Err(error) => errors
                                .lock()
                                .unwrap()
                                .push(format!("lock: {}", error_chain(&error))),
                        }
                    }
                });
            }
            std::thread::sleep(Duration::from_secs(2));
            let in_use = semaphore.store().current_endpoint().to_owned();
            let victim = cluster
                .client_urls()
                .iter()
                .position(|url| *url == in_use)
                .unwrap();
            let cycles_at_kill = cycles.load(Ordering::Relaxed);
            *longest_stall.lock().unwrap() = Duration::ZERO;
            cluster.kill(victim);
            std::thread::sleep(Duration::from_secs(3));
            let stall_window = *longest_stall.lock().unwrap();
            let cycles_before_last_second = cycles.load(Ordering::Relaxed);
            std::thread::sleep(Duration::from_secs(1));
            stop.store(true, Ordering::Relaxed);
            (
                cycles_at_kill,
                cycles_before_last_second,
                victim,
                stall_window,
            )
        });
    let total = cycles.load(Ordering::Relaxed);
    eprintln!(
        "cluster test: {total} lock/unlock cycles in {:.1?} by {THREADS} threads; killed member \
         {killed} (leader: {leader:?}) after {cycles_at_kill}; longest pause after the kill: \
         {stall_window:.2?}; now on {}",
        started.elapsed(),
        semaphore.store().current_endpoint()
    );
    let errors = errors.into_inner().unwrap();
    assert!(errors.is_empty(), "{} errors: {errors:#?}", errors.len());
    let most = most_holding.load(Ordering::SeqCst);
    assert!(most <= SLOTS as usize, "{most} threads held a slot at once");
    assert!(cycles_at_kill > 0, "no progress before the kill");
    assert!(
        total > cycles_before_last_second,
        "no progress in the last second, well after the kill"
    );
    let left = semaphore.store().get(&workers).unwrap().state;
    assert!(left.holders.is_empty(), "slots left taken: {left:?}");
    assert!(left.leases.is_empty());
}
