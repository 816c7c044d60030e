//! The agent's clients against cairn's real graph and lock services, and against a server
//! answering garbage.

use std::io::{Read, Write};
use std::time::Duration;

use cairn_agent::http::{GraphQuery, HttpGraph, HttpLock};
use cairn_agent::machine::{GraphClient, LockClient};
use cairn_lock::MemoryStore;
use cairn_lock_server::{GroupSettings, Service, Settings};

const TIMEOUT: Duration = Duration::from_secs(5);

fn query(uuid: &str, wariness: Option<f64>) -> GraphQuery {
    GraphQuery {
        basearch: "x86_64".into(),
        stream: "stable".into(),
        rollout_wariness: wariness,
        node_uuid: uuid.into(),
        group: "default".into(),
        os_version: "1".into(),
        os_checksum: "a".repeat(64),
    }
}

#[test]
fn fleet_lock_client_against_the_lock_service() {
    let mut settings = Settings::with_slots([("workers", 2)]);
    settings.groups.insert(
        "secure".into(),
        GroupSettings {
            slots: 1,
            lease: None,
            client_token: Some("t0ken".into()),
        },
    );
    let server = cairn_lock_server::spawn(
        Service::new(MemoryStore::new(), settings),
        "127.0.0.1:0".parse().unwrap(),
    )
    .unwrap();
    let url = format!("http://{}", server.addr);
    let client = |id: &str, group: &str, token: Option<&str>| {
        HttpLock::new(&url, id, group, token.map(str::to_string), TIMEOUT).unwrap()
    };
    let (mut a, mut b, mut c) = (
        client("a", "workers", None),
        client("b", "workers", None),
        client("c", "workers", None),
    );
    assert_eq!(a.pre_reboot().unwrap(), None);
    assert_eq!(a.pre_reboot().unwrap(), None, "re-entrant");
    assert_eq!(b.pre_reboot().unwrap(), None);
    let full = c.pre_reboot().unwrap().expect("the group is full");
    assert!(full.contains("all 2 slots are locked"), "{full}");
    a.steady_state().unwrap();
    a.steady_state().unwrap();
    assert_eq!(c.pre_reboot().unwrap(), None);
    // A group with a client token.
    let error = client("d", "secure", None).pre_reboot().unwrap_err();
    assert!(
        error.contains("401") && error.contains("invalid_client_token"),
        "{error}"
    );
    assert_eq!(
        client("d", "secure", Some("t0ken")).pre_reboot().unwrap(),
        None
    );
    // An unknown group is an error, not a wait.
    let error = client("e", "nobody", None).pre_reboot().unwrap_err();
    assert!(error.contains("unknown_group"), "{error}");
    drop(server);
    let error = a.steady_state().unwrap_err();
    assert!(error.contains(&url), "{error}");
}

#[test]
fn graph_client_against_the_graph_service() {
    let dir = tempfile::tempdir().unwrap();
    let index = serde_json::json!({
        "stream": "stable",
        "metadata": {"last-modified": "2026-01-01T00:00:00Z"},
        "releases": [
            {"version": "1", "metadata": "https://example.invalid/1", "commits": [{"architecture": "x86_64", "checksum": "a".repeat(64)}]},
            {"version": "2", "metadata": "https://example.invalid/2", "commits": [{"architecture": "x86_64", "checksum": "b".repeat(64)}]},
        ],
    });
    // Release 2 rolled out to everyone: the graph has the edge 1 → 2.
    let updates = serde_json::json!({
        "stream": "stable",
        "metadata": {"last-modified": "2026-01-01T00:00:00Z"},
        "releases": [
            {"version": "2", "metadata": {"rollout": {"start_epoch": 1_700_000_000, "start_percentage": 1.0}}},
        ],
    });
    std::fs::write(dir.path().join("releases-stable.json"), index.to_string()).unwrap();
    std::fs::write(dir.path().join("updates-stable.json"), updates.to_string()).unwrap();
    let server = cairn_graph_server::spawn(
        cairn_graph_server::Settings::from_dir(dir.path(), &["stable"], None),
        "127.0.0.1:0".parse().unwrap(),
    )
    .unwrap();
    let url = format!("http://{}", server.addr);
    let mut client = HttpGraph::new(&url, &query(&"0".repeat(32), Some(0.5)), TIMEOUT).unwrap();
    assert!(
        client.url().contains("rollout_wariness=0.5"),
        "{}",
        client.url()
    );
    let graph = client.graph().unwrap();
    let versions: Vec<&str> = graph.nodes.iter().map(|n| n.version.as_str()).collect();
    assert_eq!(versions, ["1", "2"]);
    assert_eq!(graph.edges, [(0, 1)]);
    // A stream the service does not serve is an error naming the URL and the answer.
    let mut other = HttpGraph::new(
        &url,
        &GraphQuery {
            stream: "next".into(),
            ..query(&"0".repeat(32), None)
        },
        TIMEOUT,
    )
    .unwrap();
    let error = other.graph().unwrap_err();
    assert!(error.contains("stream=next"), "{error}");
}

/// Serves `status` with `body` to every connection, for a few connections.
fn garbage_server(status: &str, body: &str) -> String {
    let answer = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(4) {
            let Ok(mut stream) = stream else { continue };
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    format!("http://{addr}")
}

#[test]
fn garbage_and_silence_are_errors_not_panics() {
    let url = garbage_server("200 OK", "not json!");
    let error = HttpGraph::new(&url, &query("u", None), TIMEOUT)
        .unwrap()
        .graph()
        .unwrap_err();
    assert!(error.contains("not an update graph"), "{error}");
    let url = garbage_server("200 OK", r#"{"nodes": [], "edges": [[0, 1]]}"#);
    let error = HttpGraph::new(&url, &query("u", None), TIMEOUT)
        .unwrap()
        .graph()
        .unwrap_err();
    assert!(error.contains("names a node outside"), "{error}");
    let url = garbage_server("500 Internal Server Error", "oops");
    let error = HttpLock::new(&url, "a", "default", None, TIMEOUT)
        .unwrap()
        .pre_reboot()
        .unwrap_err();
    assert!(error.contains("500"), "{error}");
    // Nobody listening.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let error = HttpLock::new(
        &format!("http://127.0.0.1:{port}"),
        "a",
        "default",
        None,
        TIMEOUT,
    )
    .unwrap()
    .steady_state()
    .unwrap_err();
    assert!(error.contains(&port.to_string()), "{error}");
}
