//! The policy, as tables: rollout progress before, during and after a rollout, against
//! wariness 0, 0.5, 1 and wariness derived from node UUIDs.

use cairn_graph::wire::{self, Rollout, UpdateEntry, UpdateEntryMetadata, UpdatesMetadata};
use cairn_graph::{
    build, filter, rollout_progress, wariness_for_request, wariness_from_node_uuid, Graph,
    PayloadKind, RolloutProgress,
};

use crate::support::synthetic_index;

const START: i64 = 1_000_000;
const MINUTE: i64 = 60;
/// Wariness derived from these UUIDs (checked below).
const UUID_A: &str = "e0f3745b108f471cbd4883c6fbed8cdd";
const UUID_A_WARINESS: f64 = 0.6533234000651716;
const UUID_B_WARINESS: f64 = 0.6682990010065529;

/// Two releases; the second is rolled out with `rollout`.
fn graph_with_rollout(rollout: Rollout) -> Graph {
    let index = synthetic_index("stable", &["1.0", "2.0"]);
    let updates = UpdatesMetadata {
        stream: "stable".into(),
        metadata: wire::DocumentMetadata {
            last_modified: "2024-01-01T00:00:00Z".into(),
        },
        releases: vec![UpdateEntry {
            version: "2.0".into(),
            metadata: UpdateEntryMetadata {
                rollout: Some(rollout),
                ..Default::default()
            },
        }],
    };
    build(&index, &updates, "stable", "x86_64", PayloadKind::Checksum).unwrap()
}

fn sees(graph: &Graph, now: i64, wariness: f64) -> bool {
    let filtered = filter(graph, now, wariness);
    assert_eq!(filtered.nodes, graph.nodes, "nodes are kept");
    filtered.edges == [(0, 1)]
}

#[test]
fn derived_wariness_is_the_reference_value() {
    assert_eq!(wariness_from_node_uuid(UUID_A), UUID_A_WARINESS);
    assert_eq!(
        wariness_from_node_uuid("27e3ac02af3946af995c9940e18b0cce"),
        UUID_B_WARINESS
    );
    assert_eq!(wariness_from_node_uuid(""), 0.18848315746051456);
    assert_eq!(
        wariness_from_node_uuid("00000000000000000000000000000000"),
        0.31524762352660596
    );
}

#[test]
fn linear_rollout_table() {
    // 20% at START, everyone 100 minutes later: 20% + 0.8% a minute.
    let graph = graph_with_rollout(Rollout {
        duration_minutes: Some(100),
        start_epoch: Some(START),
        start_percentage: Some(0.2),
    });
    let derived = wariness_from_node_uuid(UUID_A);
    #[rustfmt::skip]
    let table: &[(&str, i64, [bool; 5])] = &[
        //                                   w=0    w=0.5  w=1    uuid A (0.65) w=0.2
        ("long before",   START - 86_400,   [false, false, false, false,       false]),
        ("a second before", START - 1,      [false, false, false, false,       false]),
        ("at the start",  START,            [true,  false, false, false,       true ]),
        ("after 25 min",  START + 25 * MINUTE, [true, false, false, false,     true ]), // 40%
        ("after 50 min",  START + 50 * MINUTE, [true, true,  false, false,     true ]), // 60%
        ("after 57 min",  START + 57 * MINUTE, [true, true,  false, true,      true ]), // 65.6%
        ("a second before the end", START + 100 * MINUTE - 1, [true, true, false, true, true]),
        ("at the end",    START + 100 * MINUTE, [true,  true,  true,  true,        true ]),
        ("long after",    START + 86_400 * 365, [true,  true,  true,  true,        true ]),
    ];
    for (when, now, expected) in table {
        let got = [0.0, 0.5, 1.0, derived, 0.2].map(|w| sees(&graph, *now, w));
        assert_eq!(&got, expected, "{when}");
    }
}

#[test]
fn progress_values() {
    let progress = |now| rollout_progress(START, 0.2, Some(100), now);
    assert_eq!(progress(START - 1), RolloutProgress::NotStarted);
    assert_eq!(progress(START), RolloutProgress::Started(0.2));
    match progress(START + 50 * MINUTE) {
        RolloutProgress::Started(fraction) => assert!((fraction - 0.6).abs() < 1e-12),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        progress(START + 100 * MINUTE),
        RolloutProgress::Started(1.0)
    );
    assert_eq!(progress(i64::MAX), RolloutProgress::Started(1.0));
    // No overflow at the ends of the ranges.
    assert_eq!(
        rollout_progress(i64::MIN, 0.0, Some(1), i64::MAX),
        RolloutProgress::Started(1.0)
    );
    assert!(matches!(
        rollout_progress(i64::MIN, 0.0, Some(u64::MAX), i64::MAX),
        RolloutProgress::Started(f) if f > 0.0 && f < 1.0
    ));
}

#[test]
fn held_and_degenerate_rollouts() {
    // Without a duration, or with 0 (the schema's "no progress"), it holds at its start.
    for duration in [None, Some(0)] {
        let graph = graph_with_rollout(Rollout {
            duration_minutes: duration,
            start_epoch: Some(START),
            start_percentage: Some(0.5),
        });
        for now in [START, START + 86_400 * 365] {
            assert!(sees(&graph, now, 0.5), "{duration:?}");
            assert!(!sees(&graph, now, 0.51), "{duration:?}");
        }
        assert!(!sees(&graph, START - 1, 0.0), "{duration:?}");
    }
    // `start_percentage: 1.0` alone (how Fedora CoreOS marks a finished rollout): everyone,
    // at any time (no start_epoch is epoch 0).
    let graph = graph_with_rollout(Rollout {
        start_percentage: Some(1.0),
        ..Default::default()
    });
    assert!(sees(&graph, 0, 1.0));
    // An empty rollout object: started at epoch 0 at 0%, held: only wariness 0.
    let graph = graph_with_rollout(Rollout::default());
    assert!(sees(&graph, START, 0.0));
    assert!(!sees(&graph, START, 0.000_001));
}

#[test]
fn wariness_edge_values() {
    let graph = graph_with_rollout(Rollout {
        duration_minutes: Some(100),
        start_epoch: Some(START),
        start_percentage: Some(0.2),
    });
    let midway = START + 50 * MINUTE; // 60%
                                      // NaN counts as the most cautious client.
    assert!(!sees(&graph, midway, f64::NAN));
    assert!(sees(&graph, START + 100 * MINUTE, f64::NAN));
    // Out of range values are clamped.
    assert!(sees(&graph, START, -5.0));
    assert!(!sees(&graph, midway, 7.0));
    assert!(!sees(&graph, midway, f64::INFINITY));
    assert!(sees(&graph, START, f64::NEG_INFINITY));
}

#[test]
fn wariness_for_request_table() {
    let derived_a = wariness_from_node_uuid(UUID_A);
    let derived_empty = wariness_from_node_uuid("");
    #[rustfmt::skip]
    let table: &[(Option<&str>, Option<&str>, f64)] = &[
        (Some("0.3"),  Some(UUID_A), 0.3),
        (Some("0"),    None,         0.0),
        (Some("1"),    None,         1.0),
        (Some("2.5"),  None,         1.0),
        (Some("-1"),   None,         0.0),
        (Some("inf"),  None,         1.0),
        (Some("1e-3"), None,         0.001),
        (Some("NaN"),  Some(UUID_A), derived_a),
        (Some("abc"),  Some(UUID_A), derived_a),
        (Some(""),     Some(UUID_A), derived_a),
        (Some(" 0.3"), Some(UUID_A), derived_a), // Rust's f64 syntax: no spaces
        (None,         Some(UUID_A), derived_a),
        (None,         None,         derived_empty),
    ];
    for &(rollout_wariness, node_uuid, expected) in table {
        assert_eq!(
            wariness_for_request(rollout_wariness, node_uuid),
            expected,
            "{rollout_wariness:?} {node_uuid:?}"
        );
    }
}

#[test]
fn derived_wariness_is_never_zero() {
    for n in 0..10_000 {
        let w = wariness_from_node_uuid(&format!("{n:032x}"));
        assert!(w > 0.0 && w <= 1.0, "{w}");
    }
}

#[test]
fn filter_drops_edges_out_of_dead_ends_of_any_graph() {
    // A graph from elsewhere (say, an upstream Cincinnati) with an edge out of a dead end.
    let graph: Graph = serde_json::from_str(
        r#"{"nodes": [
             {"version": "1", "payload": "a", "metadata": {"org.fedoraproject.coreos.updates.deadend": "true"}},
             {"version": "2", "payload": "b", "metadata": {}},
             {"version": "3", "payload": "c", "metadata": {}}],
            "edges": [[0, 1], [1, 2], [0, 2]]}"#,
    )
    .unwrap();
    assert_eq!(filter(&graph, 0, 0.5).edges, [(1, 2)]);
}
