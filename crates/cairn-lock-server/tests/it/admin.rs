//! Beyond Airlock: the admin API behind its token, client tokens per group, leases that free
//! silent holders, and the metrics.

use std::time::Duration;

use cairn_lock::{EmbeddedStore, MemoryStore};
use cairn_lock_server::{spawn, GroupSettings, GroupsReport, Service, Settings};
use cairn_test_support::{http, HttpReply};

use super::{kind, lock, params, unlock, PROTOCOL};

const ADMIN: &str = "Authorization: Bearer admin-secret\r\n";

fn admin_settings() -> Settings {
    let mut settings = Settings::with_slots([("workers", 2)]);
    settings.admin_token = Some("admin-secret".into());
    settings
}

fn groups(addr: std::net::SocketAddr) -> GroupsReport {
    let reply = http(addr, "GET", "/v1/admin/groups", ADMIN, "");
    assert_eq!(reply.status, 200, "{}", reply.body);
    serde_json::from_str(&reply.body).unwrap()
}

fn holders(report: &GroupsReport, group: &str) -> Vec<String> {
    report
        .groups
        .iter()
        .find(|g| g.group == group)
        .unwrap_or_else(|| panic!("no group {group} in {report:?}"))
        .holders
        .iter()
        .map(|h| h.id.clone())
        .collect()
}

#[test]
fn the_admin_api_needs_its_token() {
    let server = spawn(
        Service::new(MemoryStore::new(), admin_settings()),
        "127.0.0.1:0".parse().unwrap(),
    )
    .unwrap();
    for header in [
        "",
        "Authorization: Bearer wrong\r\n",
        "Authorization: Bearer admin-secre\r\n",
        "Authorization: admin-secret\r\n",
    ] {
        let reply = http(server.addr, "GET", "/v1/admin/groups", header, "");
        assert_eq!(reply.status, 401, "{header:?}");
        assert_eq!(kind(&reply), "unauthorized");
        assert_eq!(
            reply.headers.get("www-authenticate").map(String::as_str),
            Some("Bearer")
        );
        let reply = http(
            server.addr,
            "DELETE",
            "/v1/admin/groups/default/holders/a",
            header,
            "",
        );
        assert_eq!(reply.status, 401);
    }
    // With no admin token configured, the admin API is off.
    let server = spawn(
        Service::new(MemoryStore::new(), Settings::default()),
        "127.0.0.1:0".parse().unwrap(),
    )
    .unwrap();
    let reply = http(server.addr, "GET", "/v1/admin/groups", ADMIN, "");
    assert_eq!(
        (reply.status, kind(&reply).as_str()),
        (403, "admin_disabled")
    );
}

#[test]
fn admin_lists_releases_and_sets_slots_and_the_slots_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    {
        let server = spawn(
            Service::new(EmbeddedStore::open(dir.path()).unwrap(), admin_settings()),
            "127.0.0.1:0".parse().unwrap(),
        )
        .unwrap();
        let addr = server.addr;
        assert_eq!(lock(addr, "w1", "workers").status, 200);
        assert_eq!(lock(addr, "w2", "workers").status, 200);
        let report = groups(addr);
        let names: Vec<&str> = report.groups.iter().map(|g| g.group.as_str()).collect();
        assert_eq!(names, ["default", "workers"]);
        let workers = &report.groups[1];
        assert_eq!((workers.slots, workers.configured_slots), (2, Some(2)));
        assert_eq!(holders(&report, "workers"), ["w1", "w2"]);
        let since = workers.holders[0].since.expect("since-when is recorded");
        assert!(since >= before && since <= before + 60, "{since}");

        // Release a holder that will never come back.
        let reply = http(
            addr,
            "DELETE",
            "/v1/admin/groups/workers/holders/w1",
            ADMIN,
            "",
        );
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert!(reply.body.contains("\"released\":true"), "{}", reply.body);
        let reply = http(
            addr,
            "DELETE",
            "/v1/admin/groups/workers/holders/w1",
            ADMIN,
            "",
        );
        assert!(reply.body.contains("\"released\":false"), "{}", reply.body);
        assert_eq!(holders(&groups(addr), "workers"), ["w2"]);

        // Raise the slots: a third and fourth machine get in.
        assert_eq!(lock(addr, "w3", "workers").status, 200);
        assert_eq!(lock(addr, "w4", "workers").status, 409);
        let reply = http(
            addr,
            "PUT",
            "/v1/admin/groups/workers/slots",
            ADMIN,
            r#"{"slots": 3}"#,
        );
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(lock(addr, "w4", "workers").status, 200);
        assert_eq!(lock(addr, "w5", "workers").status, 409);

        // Bad requests name what is wrong.
        for (target, body, status, expected) in [
            (
                "/v1/admin/groups/workers/slots",
                r#"{"slots": 0}"#,
                400,
                "invalid_request",
            ),
            (
                "/v1/admin/groups/workers/slots",
                r#"{"slot": 2}"#,
                400,
                "invalid_request",
            ),
            (
                "/v1/admin/groups/workers/slots",
                "three",
                400,
                "invalid_request",
            ),
            (
                "/v1/admin/groups/nobody/slots",
                r#"{"slots": 2}"#,
                404,
                "unknown_group",
            ),
            (
                "/v1/admin/groups/a%2Fb/slots",
                r#"{"slots": 2}"#,
                400,
                "invalid_group",
            ),
        ] {
            let reply = http(addr, "PUT", target, ADMIN, body);
            assert_eq!(
                (reply.status, kind(&reply)),
                (status, expected.to_string()),
                "{target} {body}"
            );
        }
    }
    // The override is in the store: after a restart the group still has 3 slots, all taken.
    let server = spawn(
        Service::new(EmbeddedStore::open(dir.path()).unwrap(), admin_settings()),
        "127.0.0.1:0".parse().unwrap(),
    )
    .unwrap();
    let addr = server.addr;
    let report = groups(addr);
    let workers = report.groups.iter().find(|g| g.group == "workers").unwrap();
    assert_eq!((workers.slots, workers.slots_override), (3, Some(3)));
    assert_eq!(holders(&report, "workers"), ["w2", "w3", "w4"]);
    assert_eq!(lock(addr, "w5", "workers").status, 409);
    // Back to the configured 2: nobody is evicted, nobody new gets in until two have left.
    let reply = http(
        addr,
        "PUT",
        "/v1/admin/groups/workers/slots",
        ADMIN,
        r#"{"slots": null}"#,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(unlock(addr, "w2", "workers").status, 200);
    assert_eq!(lock(addr, "w5", "workers").status, 409);
    assert_eq!(unlock(addr, "w3", "workers").status, 200);
    assert_eq!(lock(addr, "w5", "workers").status, 200);
}

#[test]
fn a_group_with_a_client_token_refuses_clients_without_it() {
    let mut settings = Settings::default();
    settings.groups.insert(
        "secure".into(),
        GroupSettings {
            slots: 1,
            lease: None,
            client_token: Some("group-secret".into()),
        },
    );
    let server = spawn(
        Service::new(MemoryStore::new(), settings),
        "127.0.0.1:0".parse().unwrap(),
    )
    .unwrap();
    let post = |path: &str, token: &str| -> HttpReply {
        let headers = format!("{PROTOCOL}{token}");
        http(server.addr, "POST", path, &headers, &params("a", "secure"))
    };
    for token in ["", "Authorization: Bearer nope\r\n"] {
        let reply = post("/v1/pre-reboot", token);
        assert_eq!(
            (reply.status, kind(&reply).as_str()),
            (401, "invalid_client_token")
        );
        let reply = post("/v1/steady-state", token);
        assert_eq!(reply.status, 401);
    }
    let good = "Authorization: Bearer group-secret\r\n";
    assert_eq!(post("/v1/pre-reboot", good).status, 200);
    assert_eq!(post("/v1/steady-state", good).status, 200);
    // Other groups need no token.
    assert_eq!(lock(server.addr, "b", "default").status, 200);
}

#[test]
fn a_silent_holder_loses_its_slot_when_its_lease_runs_out() {
    let mut settings = admin_settings();
    settings.groups.insert(
        "leased".into(),
        GroupSettings {
            slots: 1,
            lease: Some(Duration::from_secs(2)),
            client_token: None,
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let server = spawn(
        Service::new(EmbeddedStore::open(dir.path()).unwrap(), settings),
        "127.0.0.1:0".parse().unwrap(),
    )
    .unwrap();
    let addr = server.addr;
    assert_eq!(lock(addr, "silent", "leased").status, 200);
    assert_eq!(lock(addr, "waiting", "leased").status, 409);
    // Groups without a lease keep their holders forever.
    assert_eq!(lock(addr, "forever", "default").status, 200);
    // The sweeper frees the slot once the lease has run out (2 s, swept every second).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !holders(&groups(addr), "leased").is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the lease never ran out"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(lock(addr, "waiting", "leased").status, 200);
    assert_eq!(holders(&groups(addr), "default"), ["forever"]);
    let metrics = http(addr, "GET", "/metrics", "", "").body;
    assert!(
        metrics.contains("cairn_lock_lease_expired_total{group=\"leased\"} 1"),
        "{metrics}"
    );
}

#[test]
fn metrics_count_requests_and_show_holders() {
    let server = spawn(
        Service::new(MemoryStore::new(), Settings::with_slots([("workers", 2)])),
        "127.0.0.1:0".parse().unwrap(),
    )
    .unwrap();
    let addr = server.addr;
    assert_eq!(lock(addr, "a", "default").status, 200);
    assert_eq!(lock(addr, "b", "default").status, 409);
    assert_eq!(lock(addr, "c", "workers").status, 200);
    assert_eq!(lock(addr, "c", "nobody").status, 400);
    assert_eq!(unlock(addr, "a", "default").status, 200);
    let reply = http(addr, "GET", "/metrics", "", "");
    assert_eq!(reply.status, 200);
    assert!(reply.headers["content-type"].starts_with("text/plain"));
    for line in [
        "cairn_lock_requests_total{endpoint=\"pre-reboot\",outcome=\"ok\"} 2",
        "cairn_lock_requests_total{endpoint=\"pre-reboot\",outcome=\"failed_lock_semaphore_full\"} 1",
        "cairn_lock_requests_total{endpoint=\"pre-reboot\",outcome=\"unknown_group\"} 1",
        "cairn_lock_requests_total{endpoint=\"steady-state\",outcome=\"ok\"} 1",
        "cairn_lock_slots{group=\"workers\"} 2",
        "cairn_lock_holders{group=\"workers\"} 1",
        "cairn_lock_holders{group=\"default\"} 0",
        "cairn_lock_store_up{group=\"default\"} 1",
    ] {
        assert!(reply.body.lines().any(|l| l == line), "no {line:?} in\n{}", reply.body);
    }
}
