use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use cairn_graph::wire::{
    self, DocumentMetadata, Release, ReleaseCommit, ReleaseIndex, UpdatesMetadata,
};
use cairn_graph::{keys, Graph};

pub fn data_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(relative)
}

pub fn read(relative: &str) -> String {
    let path = data_path(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

pub fn updates(relative: &str) -> UpdatesMetadata {
    wire::parse_updates(&read(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

pub fn release_index(relative: &str) -> ReleaseIndex {
    wire::parse_release_index(&read(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

pub fn graph(relative: &str) -> Graph {
    serde_json::from_str(&read(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

/// Fedora CoreOS versions compare component by component, numerically.
pub fn version_key(version: &str) -> Vec<u64> {
    version
        .split('.')
        .map(|part| part.parse().unwrap_or(u64::MAX))
        .collect()
}

/// A release index naming `versions` (sorted oldest first), each with an x86_64 commit.
pub fn synthetic_index(stream: &str, versions: &[&str]) -> ReleaseIndex {
    let mut versions = versions.to_vec();
    versions.sort_by_key(|v| version_key(v));
    versions.dedup();
    ReleaseIndex {
        note: None,
        releases: versions
            .iter()
            .enumerate()
            .map(|(position, version)| Release {
                commits: vec![ReleaseCommit {
                    architecture: "x86_64".into(),
                    checksum: format!("{position:064x}"),
                }],
                oci_images: None,
                version: version.to_string(),
                metadata: format!("https://example.invalid/{version}/release.json"),
            })
            .collect(),
        metadata: DocumentMetadata {
            last_modified: "2024-01-01T00:00:00Z".into(),
        },
        stream: stream.into(),
    }
}

/// Edges as (from version, to version).
pub fn edge_versions(graph: &Graph) -> BTreeSet<(String, String)> {
    graph
        .edges
        .iter()
        .map(|&(from, to)| {
            (
                graph.nodes[from as usize].version.clone(),
                graph.nodes[to as usize].version.clone(),
            )
        })
        .collect()
}

pub fn nodes_by_version(graph: &Graph) -> BTreeMap<String, (String, BTreeMap<String, String>)> {
    graph
        .nodes
        .iter()
        .map(|n| (n.version.clone(), (n.payload.clone(), n.metadata.clone())))
        .collect()
}

pub fn age_index(graph: &Graph, node: u64) -> u64 {
    graph.nodes[node as usize].metadata[keys::AGE_INDEX]
        .parse()
        .unwrap()
}

/// Check the graph invariants: indices in range, versions unique, edges towards a higher
/// age_index only, none out of a dead end, no cycle.
pub fn assert_invariants(graph: &Graph) {
    let count = graph.nodes.len() as u64;
    let versions: BTreeSet<_> = graph.nodes.iter().map(|n| &n.version).collect();
    assert_eq!(versions.len(), graph.nodes.len(), "duplicate versions");
    for &(from, to) in &graph.edges {
        assert!(
            from < count && to < count,
            "edge ({from}, {to}) out of range"
        );
        assert!(
            age_index(graph, from) < age_index(graph, to),
            "edge ({from}, {to}) goes to a lower age_index"
        );
        assert_ne!(
            graph.nodes[from as usize]
                .metadata
                .get(keys::DEADEND)
                .map(String::as_str),
            Some("true"),
            "edge ({from}, {to}) leaves a dead end"
        );
    }
    assert!(is_acyclic(graph), "graph has a cycle");
}

/// Kahn's algorithm: every node can be removed in topological order.
pub fn is_acyclic(graph: &Graph) -> bool {
    let count = graph.nodes.len();
    let mut incoming = vec![0usize; count];
    let mut outgoing = vec![Vec::new(); count];
    for &(from, to) in &graph.edges {
        incoming[to as usize] += 1;
        outgoing[from as usize].push(to as usize);
    }
    let mut ready: Vec<usize> = (0..count).filter(|&n| incoming[n] == 0).collect();
    let mut removed = 0;
    while let Some(node) = ready.pop() {
        removed += 1;
        for &next in &outgoing[node] {
            incoming[next] -= 1;
            if incoming[next] == 0 {
                ready.push(next);
            }
        }
    }
    removed == count
}
