//! The Cincinnati update graph of one (stream, basearch, payload kind), built from a release
//! index and updates metadata with Fedora CoreOS's rules (fcos-graph-builder's).
//!
//! `Graph` and `Node` are the wire format of Cincinnati's `/v1/graph` response (Zincati's
//! `docs/development/cincinnati/protocol.md`).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::keys;
use crate::wire::{ReleaseIndex, UpdatesMetadata};

/// A Cincinnati graph: releases and the allowed updates between them. `edges` hold indices
/// into `nodes`, `(from, to)`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Graph {
    pub nodes: Vec<Node>,
    pub edges: Vec<(u64, u64)>,
}

/// One release in the graph.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub version: String,
    /// String to string; keys in [`crate::keys`].
    pub metadata: BTreeMap<String, String>,
    /// OSTree commit checksum, or container image pull spec by digest.
    pub payload: String,
}

/// Which payloads the graph offers: OSTree commits or container images.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PayloadKind {
    Checksum,
    Oci,
}

impl PayloadKind {
    /// The value of the `org.fedoraproject.coreos.scheme` key.
    pub fn as_str(self) -> &'static str {
        match self {
            PayloadKind::Checksum => "checksum",
            PayloadKind::Oci => "oci",
        }
    }

    /// The kind a Cincinnati request asks for with its `oci` query parameter.
    pub fn from_oci_flag(oci: bool) -> Self {
        if oci {
            PayloadKind::Oci
        } else {
            PayloadKind::Checksum
        }
    }
}

impl fmt::Display for PayloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PayloadKind {
    type Err = UnknownPayloadKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "checksum" => Ok(PayloadKind::Checksum),
            "oci" => Ok(PayloadKind::Oci),
            other => Err(UnknownPayloadKind(other.to_string())),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown payload kind {0:?} (expected `checksum` or `oci`)")]
pub struct UnknownPayloadKind(pub String);

/// Why no graph could be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    #[error("{document} is for stream {found:?}, not {expected:?}")]
    StreamMismatch {
        document: &'static str,
        expected: String,
        found: String,
    },
    #[error("release index entry {position} has an empty version")]
    EmptyVersion { position: usize },
    #[error("release index names version {version:?} twice, at {first} and {second}")]
    DuplicateVersion {
        version: String,
        first: usize,
        second: usize,
    },
}

/// Build the graph of `stream` for `basearch` and payload `kind`.
///
/// Rules (fcos-graph-builder's `Graph::from_metadata`):
/// - a node per release of the index that has a non-empty payload of `kind` for `basearch`,
///   in index order; its `age_index` is its position in the *whole* index;
/// - barrier, dead end and rollout metadata from the updates entry of the same version;
/// - edges into every rollout from each earlier node back to (and including) the nearest
///   earlier barrier, or from the first node when there is none;
/// - edges into every barrier that is not a rollout from each node since the previous
///   barrier (inclusive);
/// - no edge out of a dead end.
///
/// Node and edge order match the reference, so the JSON is the same up to key order.
pub fn build(
    index: &ReleaseIndex,
    updates: &UpdatesMetadata,
    stream: &str,
    basearch: &str,
    kind: PayloadKind,
) -> Result<Graph, GraphError> {
    for (document, found) in [
        ("release index", &index.stream),
        ("updates metadata", &updates.stream),
    ] {
        if found != stream {
            return Err(GraphError::StreamMismatch {
                document,
                expected: stream.to_string(),
                found: found.clone(),
            });
        }
    }

    let mut nodes = Vec::new();
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (age_index, release) in index.releases.iter().enumerate() {
        // The last matching entry wins, as in the reference.
        let payload = match kind {
            PayloadKind::Checksum => release
                .commits
                .iter()
                .filter(|commit| commit.architecture == basearch && !commit.checksum.is_empty())
                .map(|commit| &commit.checksum)
                .next_back(),
            PayloadKind::Oci => release
                .oci_images
                .iter()
                .flatten()
                .filter(|image| image.architecture == basearch && !image.digest_ref.is_empty())
                .map(|image| &image.digest_ref)
                .next_back(),
        };
        let Some(payload) = payload else { continue };
        if release.version.is_empty() {
            return Err(GraphError::EmptyVersion {
                position: age_index,
            });
        }
        if let Some(&first) = seen.get(release.version.as_str()) {
            return Err(GraphError::DuplicateVersion {
                version: release.version.clone(),
                first,
                second: age_index,
            });
        }
        seen.insert(&release.version, age_index);

        let mut metadata = BTreeMap::new();
        metadata.insert(keys::AGE_INDEX.to_string(), age_index.to_string());
        metadata.insert(keys::SCHEME.to_string(), kind.as_str().to_string());
        add_updates_metadata(updates, &release.version, &mut metadata);
        nodes.push(Node {
            version: release.version.clone(),
            metadata,
            payload: payload.clone(),
        });
    }

    let mut graph = Graph {
        edges: compute_edges(&nodes),
        nodes,
    };
    drop_deadend_edges(&mut graph);
    Ok(graph)
}

fn add_updates_metadata(
    updates: &UpdatesMetadata,
    version: &str,
    metadata: &mut BTreeMap<String, String>,
) {
    fn reason_or_generic(reason: &str) -> String {
        if reason.is_empty() {
            "generic".to_string()
        } else {
            reason.to_string()
        }
    }
    let mut set = |key: &str, value: String| {
        metadata.insert(key.to_string(), value);
    };
    // Every entry of that version applies, later ones overriding earlier ones (the reference
    // does the same; check_updates refuses duplicates).
    for entry in updates.releases.iter().filter(|e| e.version == version) {
        if let Some(deadend) = &entry.metadata.deadend {
            set(keys::DEADEND, "true".to_string());
            set(keys::DEADEND_REASON, reason_or_generic(&deadend.reason));
        }
        if let Some(barrier) = &entry.metadata.barrier {
            set(keys::BARRIER, "true".to_string());
            set(keys::BARRIER_REASON, reason_or_generic(&barrier.reason));
        }
        if let Some(rollout) = &entry.metadata.rollout {
            set(keys::ROLLOUT, "true".to_string());
            if let Some(epoch) = rollout.start_epoch {
                set(keys::START_EPOCH, epoch.to_string());
            }
            if let Some(value) = rollout.start_percentage {
                set(keys::START_VALUE, value.to_string());
            }
            if let Some(minutes) = rollout.duration_minutes {
                set(keys::DURATION, minutes.to_string());
            }
        }
    }
}

fn compute_edges(nodes: &[Node]) -> Vec<(u64, u64)> {
    let marked = |key: &str| -> BTreeSet<u64> {
        (0..nodes.len() as u64)
            .filter(|&index| nodes[index as usize].metadata.contains_key(key))
            .collect()
    };
    let rollouts = marked(keys::ROLLOUT);
    let barriers = marked(keys::BARRIER);

    let mut edges = Vec::new();
    // Into rollouts, newest first, from the previous barrier on.
    for &target in rollouts.iter().rev() {
        let previous_barrier = barriers.range(..target).next_back().copied().unwrap_or(0);
        edges.extend((previous_barrier..target).map(|from| (from, target)));
    }
    // Into barriers that are not rollouts (a barrier being rolled out got its edges above).
    let mut start = 0;
    for &target in &barriers {
        if !rollouts.contains(&target) {
            edges.extend((start..target).map(|from| (from, target)));
        }
        start = target;
    }
    edges
}

pub(crate) fn is_deadend(node: &Node) -> bool {
    node.metadata.get(keys::DEADEND).map(String::as_str) == Some("true")
}

/// Remove every edge that leaves a dead end.
pub(crate) fn drop_deadend_edges(graph: &mut Graph) {
    let deadends: HashSet<u64> = (0..graph.nodes.len() as u64)
        .filter(|&index| is_deadend(&graph.nodes[index as usize]))
        .collect();
    graph.edges.retain(|(from, _)| !deadends.contains(from));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(marks: &[&str]) -> Node {
        Node {
            version: String::new(),
            metadata: marks
                .iter()
                .map(|key| (key.to_string(), "true".to_string()))
                .collect(),
            payload: String::new(),
        }
    }

    #[test]
    fn edges_from_barriers_and_rollouts() {
        // 0 plain, 1 barrier, 2 plain, 3 rollout, 4 barrier+rollout, 5 rollout, 6 barrier.
        let nodes = [
            node(&[]),
            node(&[keys::BARRIER]),
            node(&[]),
            node(&[keys::ROLLOUT]),
            node(&[keys::BARRIER, keys::ROLLOUT]),
            node(&[keys::ROLLOUT]),
            node(&[keys::BARRIER]),
        ];
        assert_eq!(
            compute_edges(&nodes),
            [
                (4, 5),
                (1, 4),
                (2, 4),
                (3, 4),
                (1, 3),
                (2, 3),
                (0, 1),
                (4, 6),
                (5, 6)
            ]
        );
    }

    #[test]
    fn payload_kind_names() {
        assert_eq!("oci".parse(), Ok(PayloadKind::Oci));
        assert_eq!(PayloadKind::from_oci_flag(false).to_string(), "checksum");
        assert_eq!(
            "ostree".parse::<PayloadKind>().unwrap_err().to_string(),
            "unknown payload kind \"ostree\" (expected `checksum` or `oci`)"
        );
    }
}
