//! The graph service over real HTTP: answers, errors, caching headers, a source that turns
//! bad, and fuzzed queries.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cairn_graph::{build, filter, wire, PayloadKind};
use cairn_graph_server::{spawn, Settings};
use cairn_test_support::{http, HttpReply, Rng};

/// Halfway through the synthetic set's last rollout (41.20240408.3.0: from 25% at
/// 1712700000 to everyone 2880 minutes later): at 62.5%, wariness 0.5 sees it, 1.0 not.
const NOW: i64 = 1_712_700_000 + 1440 * 60;

fn synthetic() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../cairn-graph/tests/data/synthetic")
}

/// A copy of the synthetic sources, laid out as `{stream}` templates expect.
fn sources(dir: &Path) -> (String, String) {
    std::fs::copy(
        synthetic().join("releases.json"),
        dir.join("releases-stable.json"),
    )
    .unwrap();
    std::fs::copy(
        synthetic().join("updates-stable.json"),
        dir.join("updates-stable.json"),
    )
    .unwrap();
    (
        dir.join("releases-{stream}.json").display().to_string(),
        dir.join("updates-{stream}.json").display().to_string(),
    )
}

fn settings(dir: &Path) -> Settings {
    let (release_index, updates) = sources(dir);
    Settings {
        streams: vec!["stable".into()],
        release_index,
        updates,
        refresh: Duration::from_secs(3600),
        now: Some(NOW),
    }
}

/// One GET; `extra` headers as `Name: value\r\n` lines.
fn get(addr: SocketAddr, target: &str, extra: &str) -> HttpReply {
    http(addr, "GET", target, extra, "")
}

fn expected(wariness: f64, arch: &str, kind: PayloadKind) -> serde_json::Value {
    let index = wire::parse_release_index(
        &std::fs::read_to_string(synthetic().join("releases.json")).unwrap(),
    )
    .unwrap();
    let updates = wire::parse_updates(
        &std::fs::read_to_string(synthetic().join("updates-stable.json")).unwrap(),
    )
    .unwrap();
    let graph = build(&index, &updates, "stable", arch, kind).unwrap();
    serde_json::to_value(filter(&graph, NOW, wariness)).unwrap()
}

#[test]
fn answers_are_the_policy_applied_to_the_built_graph() {
    let dir = tempfile::tempdir().unwrap();
    let server = spawn(settings(dir.path()), "127.0.0.1:0".parse().unwrap()).unwrap();
    let mut edges = HashMap::new();
    for (query, wariness, arch, kind) in [
        (
            "basearch=x86_64&stream=stable&rollout_wariness=0",
            0.0,
            "x86_64",
            PayloadKind::Checksum,
        ),
        (
            "basearch=x86_64&stream=stable&rollout_wariness=1",
            1.0,
            "x86_64",
            PayloadKind::Checksum,
        ),
        (
            "basearch=aarch64&stream=stable&rollout_wariness=0.5",
            0.5,
            "aarch64",
            PayloadKind::Checksum,
        ),
        (
            "basearch=x86_64&stream=stable&rollout_wariness=0.5&oci=true",
            0.5,
            "x86_64",
            PayloadKind::Oci,
        ),
    ] {
        let reply = get(server.addr, &format!("/v1/graph?{query}"), "");
        assert_eq!(reply.status, 200, "{query}: {}", reply.body);
        let body: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
        assert_eq!(body, expected(wariness, arch, kind), "{query}");
        edges.insert(query, body["edges"].as_array().unwrap().len());
        assert_eq!(reply.headers["content-type"], "application/json");
        assert!(reply.headers["cache-control"].contains("max-age="));
        // The same answer again, conditionally: 304 without a body.
        let etag = &reply.headers["etag"];
        let again = get(
            server.addr,
            &format!("/v1/graph?{query}"),
            &format!("If-None-Match: {etag}\r\n"),
        );
        assert_eq!(again.status, 304, "{query}");
        assert!(again.body.is_empty());
    }
    // The rollout in progress reaches the eager client, not yet the wary one.
    assert!(
        edges["basearch=x86_64&stream=stable&rollout_wariness=0"]
            > edges["basearch=x86_64&stream=stable&rollout_wariness=1"],
        "{edges:?}"
    );
    // A derived wariness is the reference's, from the node UUID.
    let uuid = "f2f8b5b8a9f94c2e8f0b6e1c1e3f3a4b";
    let reply = get(
        server.addr,
        &format!("/v1/graph?basearch=x86_64&stream=stable&node_uuid={uuid}"),
        "",
    );
    let body: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    let wariness = cairn_graph::wariness_from_node_uuid(uuid);
    assert_eq!(body, expected(wariness, "x86_64", PayloadKind::Checksum));
    // An architecture without releases gets an empty graph.
    let reply = get(server.addr, "/v1/graph?basearch=riscv64&stream=stable", "");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, r#"{"nodes":[],"edges":[]}"#);
}

#[test]
fn bad_queries_get_400_with_a_json_reason() {
    let dir = tempfile::tempdir().unwrap();
    let server = spawn(settings(dir.path()), "127.0.0.1:0".parse().unwrap()).unwrap();
    for (query, kind) in [
        ("stream=stable", "missing_parameter"),
        ("basearch=x86_64", "missing_parameter"),
        ("basearch=x86_64&stream=testing", "unknown_stream"),
        (
            "basearch=x86_64&stream=stable&rollout_wariness=2",
            "invalid_rollout_wariness",
        ),
        (
            "basearch=x86_64&stream=stable&rollout_wariness=NaN",
            "invalid_rollout_wariness",
        ),
        ("basearch=x86_64&stream=stable&oci=yes", "invalid_parameter"),
        ("basearch=%2e%2e%2fetc&stream=stable", "invalid_parameter"),
    ] {
        let reply = get(server.addr, &format!("/v1/graph?{query}"), "");
        assert_eq!(reply.status, 400, "{query}: {}", reply.body);
        let body: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
        assert_eq!(body["kind"], kind, "{query}");
        assert!(
            body["value"].as_str().is_some_and(|v| !v.is_empty()),
            "{query}"
        );
    }
    let reply = get(server.addr, "/v2/graph", "");
    assert_eq!(reply.status, 404);
}

#[test]
fn a_source_that_turns_bad_keeps_the_last_good_graph() {
    let dir = tempfile::tempdir().unwrap();
    let server = spawn(settings(dir.path()), "127.0.0.1:0".parse().unwrap()).unwrap();
    let query = "/v1/graph?basearch=x86_64&stream=stable&rollout_wariness=1";
    let good = get(server.addr, query, "").body;
    // The updates file now names a release the index does not have, then is not JSON.
    for bad in [
        r#"{"stream":"stable","metadata":{"last-modified":"2024-01-01T00:00:00Z"},"releases":[{"version":"99.1","metadata":{"barrier":{"reason":"x"}}}]}"#,
        "{ not json",
    ] {
        std::fs::write(dir.path().join("updates-stable.json"), bad).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let failures = runtime.block_on(server.service.refresh());
        assert_eq!(failures.len(), 1, "{failures:?}");
        let reply = get(server.addr, query, "");
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body, good, "the last good graph is still served");
        let status: serde_json::Value =
            serde_json::from_str(&get(server.addr, "/status", "").body).unwrap();
        let stable = &status["streams"]["stable"];
        assert_eq!(stable["serving"], true);
        let error = stable["error"].as_str().unwrap();
        assert!(error.contains("updates-stable.json"), "{error}");
        let metrics = get(server.addr, "/metrics", "").body;
        assert!(
            metrics.contains("cairn_graph_source_error{stream=\"stable\"} 1"),
            "{metrics}"
        );
        assert!(
            metrics.contains("cairn_graph_refresh_failures_total{stream=\"stable\"}"),
            "{metrics}"
        );
    }
    // Fixed again: the error clears.
    std::fs::copy(
        synthetic().join("updates-stable.json"),
        dir.path().join("updates-stable.json"),
    )
    .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    assert!(runtime.block_on(server.service.refresh()).is_empty());
    let status: serde_json::Value =
        serde_json::from_str(&get(server.addr, "/status", "").body).unwrap();
    assert!(status["streams"]["stable"]["error"].is_null());
}

#[test]
fn a_stream_that_never_loaded_answers_503_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = settings(dir.path());
    settings.streams.push("next".into());
    let server = spawn(settings, "127.0.0.1:0".parse().unwrap()).unwrap();
    let reply = get(server.addr, "/v1/graph?basearch=x86_64&stream=next", "");
    assert_eq!(reply.status, 503, "{}", reply.body);
    let body: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(body["kind"], "graph_unavailable");
    assert!(body["value"]
        .as_str()
        .unwrap()
        .contains("releases-next.json"));
}

#[test]
fn fuzzed_queries_never_get_a_5xx() {
    let dir = tempfile::tempdir().unwrap();
    let server = spawn(settings(dir.path()), "127.0.0.1:0".parse().unwrap()).unwrap();
    let names = [
        "basearch",
        "stream",
        "rollout_wariness",
        "node_uuid",
        "oci",
        "x",
        "",
        "%ff",
        "basearch%00",
    ];
    let values = [
        "x86_64",
        "stable",
        "0.5",
        "1e308",
        "-0",
        "inf",
        "NaN",
        "",
        "%",
        "%zz",
        "%c3%28",
        "true",
        "a+b",
        "=",
        "&&",
        "0x10",
        "1.0000000000000002",
        "aarch64",
        "stable%00",
    ];
    let mut rng = Rng(0x5eed_cafe_f00d_d00d);
    for _ in 0..1500 {
        let mut query = String::new();
        for _ in 0..(rng.next_u64() % 6) {
            if !query.is_empty() {
                query.push(if rng.next_u64().is_multiple_of(10) {
                    ';'
                } else {
                    '&'
                });
            }
            query.push_str(rng.pick(&names));
            if !rng.next_u64().is_multiple_of(8) {
                query.push('=');
                query.push_str(rng.pick(&values));
            }
        }
        // Raw bytes too, percent-encoded so the request line stays valid.
        if rng.next_u64().is_multiple_of(5) {
            let byte = (rng.next_u64() % 256) as u8;
            query.push_str(&format!("&basearch=%{byte:02x}"));
        }
        let reply = get(server.addr, &format!("/v1/graph?{query}"), "");
        assert!(
            reply.status == 200 || reply.status == 400,
            "{query}: {} {}",
            reply.status,
            reply.body
        );
    }
    let metrics = get(server.addr, "/metrics", "").body;
    assert!(!metrics.contains("code=\"5"), "{metrics}");
}

#[test]
fn sources_can_be_urls_with_the_stream_in_them() {
    let dir = tempfile::tempdir().unwrap();
    sources(dir.path());
    let files =
        cairn_repo_server::spawn(dir.path().to_owned(), "127.0.0.1:0".parse().unwrap()).unwrap();
    let base = format!("http://{}", files.addr);
    let settings = Settings {
        streams: vec!["stable".into()],
        release_index: format!("{base}/releases-{{stream}}.json"),
        updates: format!("{base}/updates-{{stream}}.json"),
        refresh: Duration::from_secs(3600),
        now: Some(NOW),
    };
    let server = spawn(settings, "127.0.0.1:0".parse().unwrap()).unwrap();
    let reply = get(
        server.addr,
        "/v1/graph?basearch=x86_64&stream=stable&rollout_wariness=0",
        "",
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let body: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(body, expected(0.0, "x86_64", PayloadKind::Checksum));
    // The file server goes away: the next refresh fails, the graph stays.
    drop(files);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    assert_eq!(runtime.block_on(server.service.refresh()).len(), 1);
    let again = get(
        server.addr,
        "/v1/graph?basearch=x86_64&stream=stable&rollout_wariness=0",
        "",
    );
    assert_eq!(again.body, reply.body);
}
