//! Every historical version of Fedora CoreOS's updates metadata: parsed, checked against a
//! release index naming its versions, built and filtered; or refused with a clear error.

use cairn_graph::{build, check_updates, filter, wire, PayloadKind};

use crate::support::{assert_invariants, data_path, synthetic_index};

const LEGACY: &str = "testing/20190805T144349_e4465e08.json";
const INTEGER_START_PERCENTAGE: [&str; 2] = [
    "testing/20191016T131726_2e8cd6bb.json",
    "testing/20191127T122108_35be95c1.json",
];

fn history_files() -> Vec<(String, String, String)> {
    let root = data_path("updates-history");
    let mut files = Vec::new();
    for stream in ["next", "stable", "testing"] {
        let dir = root.join(stream);
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_string();
            let text = std::fs::read_to_string(&path).unwrap();
            files.push((stream.to_string(), format!("{stream}/{name}"), text));
        }
    }
    files.sort();
    files
}

#[test]
fn every_historical_file_is_accepted_or_refused_clearly() {
    let files = history_files();
    assert_eq!(files.len(), 691);
    let (mut accepted, mut refused_parse, mut refused_check) = (0, 0, 0);
    for (stream, name, text) in &files {
        let updates = match wire::parse_updates(text) {
            Ok(updates) => updates,
            Err(error) => {
                assert_eq!(name, LEGACY, "{name}: {error}");
                assert!(
                    error.to_string().starts_with(
                        "updates metadata: legacy pre-schema document (top-level `updates` object), not supported: missing field `stream`"
                    ),
                    "{error}"
                );
                refused_parse += 1;
                continue;
            }
        };
        assert_eq!(&updates.stream, stream, "{name}");

        let versions: Vec<&str> = updates
            .releases
            .iter()
            .map(|r| r.version.as_str())
            .collect();
        let index = synthetic_index(stream, &versions);
        match check_updates(&updates, &index) {
            Ok(()) => {
                assert!(!INTEGER_START_PERCENTAGE.contains(&name.as_str()), "{name}");
                accepted += 1;
            }
            Err(error) => {
                assert!(
                    INTEGER_START_PERCENTAGE.contains(&name.as_str()),
                    "{name}: {error}"
                );
                assert!(
                    error
                        .to_string()
                        .contains(".metadata.rollout.start_percentage: 100 is outside 0.0..=1.0"),
                    "{error}"
                );
                refused_check += 1;
            }
        }

        // Built and filtered either way: the graph service serves what upstream publishes,
        // as the reference does.
        let graph = build(&index, &updates, stream, "x86_64", PayloadKind::Checksum)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(graph.nodes.len(), index.releases.len(), "{name}");
        assert_invariants(&graph);
        for now in [0, 1_600_000_000, 1_700_000_000, 2_000_000_000] {
            for wariness in [0.0, 0.5, 1.0] {
                assert_invariants(&filter(&graph, now, wariness));
            }
        }

        // Writing back loses nothing and reads back the same.
        let written = wire::to_pretty_json(&updates);
        assert_eq!(wire::parse_updates(&written).unwrap(), updates, "{name}");
        let original: serde_json::Value = serde_json::from_str(text).unwrap();
        let rewritten: serde_json::Value = serde_json::from_str(&written).unwrap();
        assert_eq!(
            wire::fields_lost_on_rewrite(&original, &rewritten),
            Vec::<String>::new(),
            "{name}"
        );
    }
    assert_eq!((accepted, refused_parse, refused_check), (688, 1, 2));
}

#[test]
fn integer_start_percentage_is_read_as_the_reference_reads_it() {
    // The reference deserialises it into an f64 and puts "100" in the node metadata; the
    // policy then shows the release to everyone (from epoch 0), as a start at 1.0 would.
    let updates =
        crate::support::updates(&format!("updates-history/{}", INTEGER_START_PERCENTAGE[0]));
    let versions: Vec<&str> = updates
        .releases
        .iter()
        .map(|r| r.version.as_str())
        .collect();
    let index = synthetic_index("testing", &versions);
    let graph = build(&index, &updates, "testing", "x86_64", PayloadKind::Checksum).unwrap();
    let node = graph
        .nodes
        .iter()
        .position(|n| n.version == "30.20191002.0")
        .unwrap() as u64;
    assert_eq!(
        graph.nodes[node as usize].metadata[cairn_graph::keys::START_VALUE],
        "100"
    );
    assert_eq!(
        cairn_graph::node_rollout_progress(&graph.nodes[node as usize], 0),
        Some(cairn_graph::RolloutProgress::Started(1.0))
    );
}

#[test]
fn live_updates_files_round_trip_byte_for_byte() {
    for stream in ["stable", "testing", "next"] {
        let relative = format!("updates/{stream}.json");
        let text = crate::support::read(&relative);
        let updates = wire::parse_updates(&text).unwrap();
        assert_eq!(wire::to_pretty_json(&updates), text, "{relative}");
    }
}
