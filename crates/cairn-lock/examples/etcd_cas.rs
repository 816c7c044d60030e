//! Compare-and-swap throughput of etcd through [`EtcdStore`], without and with the semaphore.
//!
//! ```text
//! cargo run --release -p cairn-lock --example etcd_cas -- \
//!     --endpoints http://127.0.0.1:2379 --clients 8 --seconds 10 [--mode cas|semaphore|both]
//! ```
//!
//! - `cas`: each client reads its own group and compare-and-swaps it (never a conflict): etcd's own
//!   CAS rate through the JSON gateway. One op = one read + one CAS.
//! - `semaphore`: every client locks and unlocks one group that has as many slots as clients, so
//!   slots never run out but writes conflict. One op = `lock` + `unlock`.
//!
//! Keys go under `cairn-bench/<pid>/` and are left there. Prints one line per mode on stdout.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cairn_lock::{EtcdOptions, EtcdStore, GroupName, LockOutcome, Semaphore, Store};

struct Settings {
    endpoints: Vec<String>,
    clients: usize,
    seconds: f64,
    modes: Vec<&'static str>,
}

fn main() {
    let settings = match parse_args(std::env::args().skip(1)) {
        Ok(settings) => settings,
        Err(message) => {
            eprintln!("error: {message}");
            eprintln!(
                "usage: etcd_cas --endpoints URL[,URL…] [--clients N] [--seconds S] \
                 [--mode cas|semaphore|both]"
            );
            std::process::exit(2);
        }
    };
    let store = match EtcdStore::connect(EtcdOptions {
        endpoints: settings.endpoints.clone(),
        prefix: format!("cairn-bench/{}/", std::process::id()),
        ..EtcdOptions::default()
    }) {
        Ok(store) => store,
        Err(error) => {
            let mut message = error.to_string();
            let mut source = std::error::Error::source(&error);
            while let Some(cause) = source {
                message.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            eprintln!("error: {message}");
            std::process::exit(1);
        }
    };
    for mode in &settings.modes {
        let duration = Duration::from_secs_f64(settings.seconds);
        let (ops, elapsed) = match *mode {
            "cas" => run_cas(&store, settings.clients, duration),
            _ => run_semaphore(&store, settings.clients, duration),
        };
        println!(
            "mode={mode} clients={} seconds={:.1} ops={ops} ops_per_second={:.0} mean_ms={:.2}",
            settings.clients,
            elapsed.as_secs_f64(),
            ops as f64 / elapsed.as_secs_f64(),
            elapsed.as_secs_f64() * 1000.0 * settings.clients as f64 / ops.max(1) as f64,
        );
    }
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Settings, String> {
    let mut settings = Settings {
        endpoints: Vec::new(),
        clients: 8,
        seconds: 10.0,
        modes: vec!["cas", "semaphore"],
    };
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--endpoints" => settings.endpoints = value()?.split(',').map(str::to_owned).collect(),
            "--clients" => {
                settings.clients = value()?
                    .parse()
                    .ok()
                    .filter(|&clients| clients > 0)
                    .ok_or("--clients: expected a positive number")?
            }
            "--seconds" => {
                settings.seconds = value()?
                    .parse()
                    .ok()
                    .filter(|&seconds: &f64| seconds > 0.0)
                    .ok_or("--seconds: expected a positive number")?
            }
            "--mode" => {
                settings.modes = match value()?.as_str() {
                    "cas" => vec!["cas"],
                    "semaphore" => vec!["semaphore"],
                    "both" => vec!["cas", "semaphore"],
                    other => return Err(format!("--mode: unknown mode {other:?}")),
                }
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if settings.endpoints.is_empty() {
        return Err("--endpoints is required".to_owned());
    }
    Ok(settings)
}

/// Runs `client` on `clients` threads for `duration`; returns the ops counted and the time taken.
fn run_clients(
    clients: usize,
    duration: Duration,
    client: impl Fn(usize, &AtomicBool, &AtomicU64) + Sync,
) -> (u64, Duration) {
    let stop = AtomicBool::new(false);
    let ops = AtomicU64::new(0);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for index in 0..clients {
            let (client, stop, ops) = (&client, &stop, &ops);
            scope.spawn(move || client(index, stop, ops));
        }
        std::thread::sleep(duration);
        stop.store(true, Ordering::Relaxed);
    });
    (ops.load(Ordering::Relaxed), started.elapsed())
}

fn run_cas(store: &EtcdStore, clients: usize, duration: Duration) -> (u64, Duration) {
    run_clients(clients, duration, |index, stop, ops| {
        let group: GroupName = format!("cas-{index}").parse().expect("a valid group name");
        while !stop.load(Ordering::Relaxed) {
            let current = store.get(&group).expect("read");
            let mut next = current.state;
            next.total_slots += 1;
            let written = store
                .compare_and_swap(&group, current.version, &next)
                .expect("compare-and-swap");
            assert!(written.is_some(), "nobody else writes this group");
            ops.fetch_add(1, Ordering::Relaxed);
        }
    })
}

fn run_semaphore(store: &EtcdStore, clients: usize, duration: Duration) -> (u64, Duration) {
    let semaphore = Semaphore::new(store);
    let group: GroupName = "semaphore".parse().expect("a valid group name");
    run_clients(clients, duration, |index, stop, ops| {
        let id = format!("client-{index}");
        while !stop.load(Ordering::Relaxed) {
            let outcome = semaphore
                .lock(&group, &id, clients as u64, 0)
                .expect("lock");
            // AlreadyHeld: a lock whose answer was lost, retried (see `etcd.rs`).
            assert!(matches!(
                outcome,
                LockOutcome::Acquired | LockOutcome::AlreadyHeld
            ));
            semaphore.unlock(&group, &id).expect("unlock");
            ops.fetch_add(1, Ordering::Relaxed);
        }
    })
}
