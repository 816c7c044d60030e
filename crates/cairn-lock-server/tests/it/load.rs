//! A thousand clients over HTTP in random interleavings: never more holders than slots, and
//! every slot taken is given back or expires.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_lock::EmbeddedStore;
use cairn_lock_server::{spawn, GroupSettings, GroupsReport, Service, Settings};
use cairn_test_support::{http, Rng};

use super::{lock, unlock};

const CLIENTS: usize = 1000;
const SLOTS: usize = 5;
/// Clients that take a slot and vanish (a machine that never comes back): their lease frees it.
const VANISHING: usize = 5;

#[test]
fn a_thousand_clients_never_exceed_the_slots_and_every_slot_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings {
        admin_token: Some("t".into()),
        ..Settings::default()
    };
    settings.groups.insert(
        "fleet".into(),
        GroupSettings {
            slots: SLOTS as u64,
            lease: Some(Duration::from_secs(4)),
            client_token: None,
        },
    );
    let server = spawn(
        Service::new(EmbeddedStore::open(dir.path()).unwrap(), settings),
        "127.0.0.1:0".parse().unwrap(),
    )
    .unwrap();
    let addr = server.addr;
    let holding = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let taken = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    // Server-side, all along: never more holders than slots.
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let monitor = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut most = 0;
            while !done.load(Ordering::SeqCst) {
                most = most.max(fleet_holders(addr).len());
                std::thread::sleep(Duration::from_millis(20));
            }
            most
        })
    };
    let threads: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (holding, most, taken) = (holding.clone(), most.clone(), taken.clone());
            std::thread::Builder::new()
                .stack_size(128 * 1024)
                .spawn(move || {
                    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (client as u64 + 1));
                    let id = format!("machine-{client}");
                    // Arrive at a random moment in the first second, as a fleet polls.
                    std::thread::sleep(Duration::from_millis(rng.below(1000) as u64));
                    loop {
                        let reply = lock(addr, &id, "fleet");
                        match reply.status {
                            200 => break,
                            409 => {
                                std::thread::sleep(Duration::from_millis(5 + rng.below(20) as u64))
                            }
                            status => panic!("{id}: pre-reboot answered {status}: {}", reply.body),
                        }
                    }
                    // Re-entrant: asking again while holding is a success, not a second slot.
                    if rng.below(4) == 0 {
                        assert_eq!(lock(addr, &id, "fleet").status, 200);
                    }
                    taken.fetch_add(1, Ordering::SeqCst);
                    if client < VANISHING {
                        return; // never gives the slot back
                    }
                    let now = holding.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(rng.below(3) as u64));
                    holding.fetch_sub(1, Ordering::SeqCst);
                    let reply = unlock(addr, &id, "fleet");
                    assert_eq!(reply.status, 200, "{id}: {}", reply.body);
                })
                .unwrap()
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    done.store(true, Ordering::SeqCst);
    let most_seen = monitor.join().unwrap();
    assert!(
        (1..=SLOTS).contains(&most_seen),
        "the service showed {most_seen} holders"
    );
    assert_eq!(
        taken.load(Ordering::SeqCst),
        CLIENTS,
        "every client got its turn"
    );
    // Client-side, at most SLOTS - (vanished holders at that time) held at once; never more
    // than SLOTS in any case.
    assert!(
        most.load(Ordering::SeqCst) <= SLOTS,
        "{} held at once",
        most.load(Ordering::SeqCst)
    );
    // The vanished clients' slots come back once their leases run out.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let holders = fleet_holders(addr);
        assert!(holders.len() <= SLOTS);
        if holders.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "still held: {holders:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!(
        "{CLIENTS} clients served in {:.1} s",
        start.elapsed().as_secs_f64()
    );
}

fn fleet_holders(addr: std::net::SocketAddr) -> Vec<String> {
    let reply = http(
        addr,
        "GET",
        "/v1/admin/groups",
        "Authorization: Bearer t\r\n",
        "",
    );
    let report: GroupsReport = serde_json::from_str(&reply.body).unwrap();
    let fleet = report.groups.iter().find(|g| g.group == "fleet").unwrap();
    fleet.holders.iter().map(|h| h.id.clone()).collect()
}
