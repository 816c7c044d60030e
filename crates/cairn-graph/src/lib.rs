//! Fedora CoreOS's update graph, Cincinnati-compatible, as a pure library: no IO, no clock.
//!
//! - [`wire`]: the documents it is built from (release index, updates metadata, stream
//!   metadata), with parse functions whose errors name the document and field;
//! - [`build`]: the graph of one (stream, basearch, payload kind), by fcos-graph-builder's rules;
//! - [`filter`]: the per-request policy of fcos-policy-engine (rollouts against the client's
//!   wariness at a given time, dead ends);
//! - [`wariness_from_node_uuid`], [`wariness_for_request`]: the client's wariness;
//! - [`check_updates`]: validation of updates metadata against its release index;
//! - [`edit`]: operator edits of updates metadata and [`edit::describe`].
//!
//! ```
//! use cairn_graph::{build, filter, wire, PayloadKind};
//! let index = wire::parse_release_index(r#"{"stream": "stable",
//!     "metadata": {"last-modified": "2024-04-10T00:00:00Z"},
//!     "releases": [
//!       {"version": "1", "metadata": "", "commits": [{"architecture": "x86_64", "checksum": "aa"}]},
//!       {"version": "2", "metadata": "", "commits": [{"architecture": "x86_64", "checksum": "bb"}]}]}"#).unwrap();
//! let updates = wire::parse_updates(r#"{"stream": "stable",
//!     "metadata": {"last-modified": "2024-04-10T00:00:00Z"},
//!     "releases": [{"version": "2", "metadata": {"rollout": {
//!       "start_epoch": 1000, "start_percentage": 0.0, "duration_minutes": 100}}}]}"#).unwrap();
//! let graph = build(&index, &updates, "stable", "x86_64", PayloadKind::Checksum).unwrap();
//! assert_eq!(graph.edges, [(0, 1)]);
//! // Halfway through the rollout: a client of wariness 0.4 sees it, one of 0.6 not yet.
//! assert_eq!(filter(&graph, 1000 + 50 * 60, 0.4).edges, [(0, 1)]);
//! assert!(filter(&graph, 1000 + 50 * 60, 0.6).edges.is_empty());
//! ```
//!
//! `docs/protocols/graph.md` describes the rules and where cairn departs from the reference
//! (coreos/fedora-coreos-cincinnati).

mod check;
pub mod edit;
mod graph;
pub mod keys;
mod policy;
mod wariness;
pub mod wire;

pub use check::{check_updates, CheckError, Problem};
pub use graph::{build, Graph, GraphError, Node, PayloadKind, UnknownPayloadKind};
pub use policy::{
    filter, node_rollout_progress, rollout_progress, without, RolloutProgress, Rollouts,
};
pub use wariness::{wariness_for_request, wariness_from_node_uuid};
pub use wire::{ReleaseIndex, StreamMetadata, UpdatesMetadata};
