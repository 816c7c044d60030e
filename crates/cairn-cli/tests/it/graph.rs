//! `cairn graph`: a one-shot build equal to the reference's graph, and the operator's
//! edits of `updates/<stream>.json` through the binary.

use std::path::{Path, PathBuf};

use crate::support::*;

fn synthetic() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../cairn-graph/tests/data/synthetic")
}

/// Nodes (version, metadata) and edges (from version, to version), each sorted.
type Shape = (Vec<(String, serde_json::Value)>, Vec<(String, String)>);

/// Nodes by version (metadata as maps) and edges as version pairs: order-free.
fn shape(graph: &serde_json::Value) -> Shape {
    let nodes = graph["nodes"].as_array().unwrap();
    let version = |i: &serde_json::Value| {
        nodes[i.as_u64().unwrap() as usize]["version"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let mut n: Vec<_> = nodes
        .iter()
        .map(|n| {
            (
                n["version"].as_str().unwrap().to_string(),
                n["metadata"].clone(),
            )
        })
        .collect();
    n.sort_by(|a, b| a.0.cmp(&b.0));
    let mut e: Vec<_> = graph["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|pair| (version(&pair[0]), version(&pair[1])))
        .collect();
    e.sort();
    (n, e)
}

#[test]
fn build_prints_the_reference_graph() {
    let dir = synthetic();
    for (arch, oci, expected) in [
        ("x86_64", false, "expected-graph-builder-x86_64.json"),
        ("aarch64", false, "expected-graph-builder-aarch64.json"),
        ("x86_64", true, "expected-graph-builder-x86_64-oci.json"),
    ] {
        let mut args = vec![
            "graph",
            "build",
            "--release-index",
            dir.join("releases.json").to_str().unwrap(),
            "--updates",
            dir.join("updates-stable.json").to_str().unwrap(),
            "--stream",
            "stable",
            "--basearch",
            arch,
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
        if oci {
            args.push("--oci".into());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out: serde_json::Value = serde_json::from_str(&cairn_ok(&args)).unwrap();
        let reference: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join(expected)).unwrap()).unwrap();
        assert_eq!(shape(&out), shape(&reference), "{expected}");
    }
}

#[test]
fn operators_edit_rollouts_barriers_and_dead_ends() {
    let tmp = tempfile::tempdir().unwrap();
    let updates = tmp.path().join("stable.json");
    std::fs::copy(synthetic().join("updates-stable.json"), &updates).unwrap();
    let index = synthetic().join("releases.json");
    let file = updates.to_str().unwrap();
    let idx = index.to_str().unwrap();
    let version = "41.20240408.3.0";
    let out = cairn_ok(&[
        "graph",
        "rollout",
        "start",
        "--updates",
        file,
        "--release-index",
        idx,
        "--start",
        "2030-01-01T00:00:00Z",
        "--start-percentage",
        "0.1",
        "--duration",
        "600",
        version,
    ]);
    assert!(out.contains(&format!("rollout of {version}")), "{out}");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&updates).unwrap()).unwrap();
    let entry = doc["releases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["version"] == version)
        .unwrap();
    assert_eq!(
        entry["metadata"]["rollout"]["start_epoch"],
        1_893_456_000i64
    );
    assert_eq!(entry["metadata"]["rollout"]["duration_minutes"], 600);
    let status = cairn_ok(&["graph", "status", "--updates", file, "--now", "1893474000"]);
    assert!(
        status.contains(&format!("rollout of {version} at ")),
        "{status}"
    );
    // Barriers and dead ends, added and removed.
    cairn_ok(&[
        "graph",
        "barrier",
        "add",
        "--updates",
        file,
        "--reason",
        "https://example.invalid/b",
        "41.20240325.3.0",
    ]);
    cairn_ok(&[
        "graph",
        "deadend",
        "add",
        "--updates",
        file,
        "--reason",
        "https://example.invalid/d",
        "41.20240311.3.0",
    ]);
    let status = cairn_ok(&["graph", "status", "--updates", file]);
    assert!(
        status.contains("barrier at 41.20240325.3.0: https://example.invalid/b"),
        "{status}"
    );
    assert!(status.contains("dead end at 41.20240311.3.0"), "{status}");
    cairn_ok(&[
        "graph",
        "deadend",
        "remove",
        "--updates",
        file,
        "41.20240311.3.0",
    ]);
    cairn_ok(&[
        "graph",
        "barrier",
        "remove",
        "--updates",
        file,
        "41.20240325.3.0",
    ]);
    cairn_ok(&["graph", "rollout", "stop", "--updates", file, version]);
    let status = cairn_ok(&["graph", "status", "--updates", file]);
    assert!(!status.contains("dead end at 41.20240311.3.0"), "{status}");
    assert!(!status.contains("barrier at 41.20240325.3.0"), "{status}");
    assert!(
        !status.contains(&format!("rollout of {version}")),
        "{status}"
    );
    // The edited file still builds a graph.
    cairn_ok(&[
        "graph",
        "build",
        "--release-index",
        idx,
        "--updates",
        file,
        "--stream",
        "stable",
        "--basearch",
        "x86_64",
    ]);
}

#[test]
fn edits_that_do_not_hold_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let updates = tmp.path().join("stable.json");
    std::fs::copy(synthetic().join("updates-stable.json"), &updates).unwrap();
    let before = std::fs::read(&updates).unwrap();
    let file = updates.to_str().unwrap();
    let idx = synthetic().join("releases.json");
    for args in [
        // A release the index does not have.
        vec![
            "graph",
            "barrier",
            "add",
            "--updates",
            file,
            "--release-index",
            idx.to_str().unwrap(),
            "--reason",
            "r",
            "99.0",
        ],
        // A start percentage that is not a fraction.
        vec![
            "graph",
            "rollout",
            "start",
            "--updates",
            file,
            "--start-percentage",
            "37",
            "--duration",
            "60",
            "41.20240408.3.0",
        ],
        // Nothing to remove.
        vec![
            "graph",
            "deadend",
            "remove",
            "--updates",
            file,
            "41.20240408.3.0",
        ],
    ] {
        let out = cairn(&args);
        assert!(!out.status.success(), "{args:?}");
        assert!(!stderr(&out).is_empty());
        assert_eq!(std::fs::read(&updates).unwrap(), before, "{args:?}");
    }
    // A file with a key cairn does not know is not rewritten (the key would be lost).
    let mut doc: serde_json::Value = serde_json::from_slice(&before).unwrap();
    doc["metadata"]["x-note"] = "kept by hand".into();
    std::fs::write(&updates, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    let out = cairn(&[
        "graph",
        "barrier",
        "add",
        "--updates",
        file,
        "--reason",
        "r",
        "41.20240408.3.0",
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("x-note"), "{}", stderr(&out));
}
