//! The wire formats: real documents parse, errors name document, field and position.

use cairn_graph::wire;
use cairn_graph::{Graph, PayloadKind};

use crate::support::read;

#[test]
fn real_documents_parse() {
    let index = wire::parse_release_index(&read("release-index/releases.json")).unwrap();
    assert_eq!(index.releases.len(), 26);
    assert_eq!(index.stream, "stable");
    assert!(index.releases[0].oci_images.is_some());
    let sample =
        wire::parse_release_index(&read("tracker-samples/release-index-sample.json")).unwrap();
    assert_eq!(sample.releases[1].version, "30.20190905.0");
    let updates = wire::parse_updates(&read("tracker-samples/updates-sample.json")).unwrap();
    assert_eq!(
        updates.releases[1]
            .metadata
            .rollout
            .as_ref()
            .unwrap()
            .duration_minutes,
        Some(1440)
    );

    for file in [
        "streams/stable.json",
        "streams/stream-metadata-rust-fcos-stream-fixture.json",
        "tracker-samples/stream-sample.json",
    ] {
        let stream =
            wire::parse_stream_metadata(&read(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let x86_64 = &stream.architectures["x86_64"];
        assert!(x86_64.artifacts.contains_key("metal"), "{file}");
        assert!(x86_64.images.aws.is_some(), "{file}");
    }
    let stable = wire::parse_stream_metadata(&read("streams/stable.json")).unwrap();
    assert_eq!(stable.architectures.len(), 4);
    assert_eq!(
        stable.architectures["x86_64"]
            .images
            .kubevirt
            .as_ref()
            .unwrap()
            .image,
        "quay.io/fedora/fedora-coreos-kubevirt:stable"
    );
}

#[test]
fn a_real_release_index_builds() {
    let index = wire::parse_release_index(&read("release-index/releases.json")).unwrap();
    let updates = wire::parse_updates(&read("updates/stable.json")).unwrap();
    let graph =
        cairn_graph::build(&index, &updates, "stable", "x86_64", PayloadKind::Checksum).unwrap();
    assert_eq!(graph.nodes.len(), 26);
    crate::support::assert_invariants(&graph);
    // Only the first release has an OCI image.
    let oci = cairn_graph::build(&index, &updates, "stable", "x86_64", PayloadKind::Oci).unwrap();
    assert_eq!(oci.nodes.len(), 1);
}

#[test]
fn zincati_example_response_round_trips() {
    let text = read("zincati/response.json");
    let graph: Graph = serde_json::from_str(&text).unwrap();
    assert!(!graph.nodes.is_empty());
    let ours = serde_json::to_value(&graph).unwrap();
    let theirs: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(ours, theirs);
}

#[test]
fn graph_json_shape() {
    let graph: Graph = serde_json::from_str(
        r#"{"nodes": [{"version": "1", "metadata": {"b": "2", "a": "1"}, "payload": "p"}], "edges": [[0, 0]]}"#,
    )
    .unwrap();
    assert_eq!(
        serde_json::to_string(&graph).unwrap(),
        r#"{"nodes":[{"version":"1","metadata":{"a":"1","b":"2"},"payload":"p"}],"edges":[[0,0]]}"#
    );
}

#[test]
fn errors_name_document_field_and_position() {
    let text = r#"{
  "stream": "stable",
  "metadata": {"last-modified": "2024-04-10T00:00:00Z"},
  "releases": [
    {"version": "1", "metadata": {}},
    {"version": "2", "metadata": {"rollout": {"start_epoch": "1565017200"}}}
  ]
}"#;
    let error = wire::parse_updates(text).unwrap_err();
    assert_eq!(error.path, "releases[1].metadata.rollout.start_epoch");
    assert_eq!(error.line, 6);
    assert_eq!(
        error.to_string(),
        "updates metadata: releases[1].metadata.rollout.start_epoch: invalid type: string \"1565017200\", expected i64 (line 6, column 73)"
    );

    let error = wire::parse_release_index(
        r#"{"stream": "s", "metadata": {"last-modified": ""}, "releases": [{"version": "1"}]}"#,
    )
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "release index: releases[0]: missing field `metadata` (line 1, column 80)"
    );

    let error = wire::parse_updates("").unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("updates metadata: EOF while parsing"),
        "{error}"
    );

    let error = wire::parse_updates(
        r#"{"stream": "s", "metadata": {"last-modified": ""}, "releases": []} x"#,
    )
    .unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("updates metadata: trailing characters"),
        "{error}"
    );

    let error =
        wire::parse_stream_metadata(r#"{"stream": "s", "metadata": {}, "architectures": {}}"#)
            .unwrap_err();
    assert_eq!(
        error.to_string(),
        "stream metadata: metadata: missing field `last-modified` (line 1, column 30)"
    );
}

#[test]
fn legacy_updates_document_is_refused() {
    let error = wire::parse_updates(&read(
        "updates-history/testing/20190805T144349_e4465e08.json",
    ))
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "updates metadata: legacy pre-schema document (top-level `updates` object), not supported: missing field `stream` (line 19, column 1)"
    );
}

#[test]
fn lost_fields_are_reported() {
    let text = r#"{"stream": "s", "metadata": {"last-modified": "x", "etag": "e"},
        "releases": [{"version": "1", "metadata": {"rollout": {"start_precentage": 0.5}}}]}"#;
    let updates = wire::parse_updates(text).unwrap();
    let original: serde_json::Value = serde_json::from_str(text).unwrap();
    let rewritten = serde_json::to_value(&updates).unwrap();
    assert_eq!(
        wire::fields_lost_on_rewrite(&original, &rewritten),
        [
            "metadata.etag",
            "releases[0].metadata.rollout.start_precentage"
        ]
    );
}

#[test]
fn missing_commits_read_as_empty() {
    // An OCI-only release, as the reference tolerates.
    let index = wire::parse_release_index(
        r#"{"stream": "s", "metadata": {"last-modified": ""}, "releases": [{"version": "1", "metadata": "",
            "oci-images": [{"architecture": "x86_64", "image": "i", "digest-ref": "i@sha256:00"}]}]}"#,
    )
    .unwrap();
    assert!(index.releases[0].commits.is_empty());
    let updates = wire::parse_updates(
        r#"{"stream": "s", "metadata": {"last-modified": ""}, "releases": []}"#,
    )
    .unwrap();
    let checksum =
        cairn_graph::build(&index, &updates, "s", "x86_64", PayloadKind::Checksum).unwrap();
    assert!(checksum.nodes.is_empty());
    let oci = cairn_graph::build(&index, &updates, "s", "x86_64", PayloadKind::Oci).unwrap();
    assert_eq!(oci.nodes[0].payload, "i@sha256:00");
}
