//! The graphs the reference fcos-graph-builder served for the synthetic inputs.

use cairn_graph::{build, filter, keys, PayloadKind};

use crate::support::{
    assert_invariants, edge_versions, graph, nodes_by_version, read, release_index, updates,
};

fn check(basearch: &str, kind: PayloadKind, expected_file: &str) {
    let index = release_index("synthetic/releases.json");
    let updates = updates("synthetic/updates-stable.json");
    let built = build(&index, &updates, "stable", basearch, kind).unwrap();
    let expected = graph(&format!("synthetic/{expected_file}"));

    // As the brief's comparison: nodes by version with metadata as maps, edges as sets.
    assert_eq!(nodes_by_version(&built), nodes_by_version(&expected));
    assert_eq!(edge_versions(&built), edge_versions(&expected));
    // And more: the same node order and the same edge order as the reference.
    assert_eq!(built, expected);
    // The JSON is the reference's, up to key order.
    let ours: serde_json::Value = serde_json::to_value(&built).unwrap();
    let theirs: serde_json::Value =
        serde_json::from_str(&read(&format!("synthetic/{expected_file}"))).unwrap();
    assert_eq!(ours, theirs);
    assert_invariants(&built);
}

#[test]
fn x86_64_checksum_equals_reference() {
    check(
        "x86_64",
        PayloadKind::Checksum,
        "expected-graph-builder-x86_64.json",
    );
}

#[test]
fn aarch64_checksum_equals_reference() {
    check(
        "aarch64",
        PayloadKind::Checksum,
        "expected-graph-builder-aarch64.json",
    );
}

#[test]
fn x86_64_oci_equals_reference() {
    check(
        "x86_64",
        PayloadKind::Oci,
        "expected-graph-builder-x86_64-oci.json",
    );
}

#[test]
fn age_index_counts_releases_missing_for_the_arch() {
    // 40.20240129.3.0 has no aarch64 commit: the aarch64 graph skips age_index 2, and the
    // OCI graph starts at 3. The reference outputs depend on this.
    let index = release_index("synthetic/releases.json");
    let updates = updates("synthetic/updates-stable.json");
    let aarch64 = build(&index, &updates, "stable", "aarch64", PayloadKind::Checksum).unwrap();
    let ages: Vec<&str> = aarch64
        .nodes
        .iter()
        .map(|n| n.metadata[keys::AGE_INDEX].as_str())
        .collect();
    assert_eq!(ages, ["0", "1", "3", "4", "5", "6", "7"]);
    let oci = build(&index, &updates, "stable", "x86_64", PayloadKind::Oci).unwrap();
    assert_eq!(oci.nodes[0].metadata[keys::AGE_INDEX], "3");
}

#[test]
fn unknown_arch_gives_an_empty_graph() {
    let index = release_index("synthetic/releases.json");
    let updates = updates("synthetic/updates-stable.json");
    let graph = build(&index, &updates, "stable", "s390x", PayloadKind::Checksum).unwrap();
    assert!(graph.nodes.is_empty() && graph.edges.is_empty());
}

#[test]
fn wrong_stream_is_refused() {
    let index = release_index("synthetic/releases.json");
    let updates = updates("synthetic/updates-stable.json");
    let error = build(&index, &updates, "testing", "x86_64", PayloadKind::Checksum).unwrap_err();
    assert_eq!(
        error.to_string(),
        "release index is for stream \"stable\", not \"testing\""
    );
}

#[test]
fn policy_on_the_synthetic_graph() {
    // 41.20240408.3.0 rolls out from 25% at 1712700000 over 2880 minutes (two days).
    let index = release_index("synthetic/releases.json");
    let updates = updates("synthetic/updates-stable.json");
    let graph = build(&index, &updates, "stable", "x86_64", PayloadKind::Checksum).unwrap();
    let into_newest = |g: &cairn_graph::Graph| {
        edge_versions(g)
            .into_iter()
            .filter(|(_, to)| to == "41.20240408.3.0")
            .count()
    };
    let start = 1_712_700_000;
    let day = 86_400;
    // Before the start: nobody, not even wariness 0.
    assert_eq!(into_newest(&filter(&graph, start - 1, 0.0)), 0);
    // At the start: 25%.
    assert_eq!(into_newest(&filter(&graph, start, 0.25)), 2);
    assert_eq!(into_newest(&filter(&graph, start, 0.26)), 0);
    // After a day: 62.5%.
    assert_eq!(into_newest(&filter(&graph, start + day, 0.625)), 2);
    assert_eq!(into_newest(&filter(&graph, start + day, 0.63)), 0);
    // After two days: everyone.
    assert_eq!(into_newest(&filter(&graph, start + 2 * day, 1.0)), 2);
    // The completed rollouts are visible to everyone at any time.
    let everyone = filter(&graph, start - 1, 1.0);
    assert_eq!(edge_versions(&everyone).len(), graph.edges.len() - 2);
}
