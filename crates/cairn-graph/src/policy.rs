//! The per-request policy (fcos-policy-engine's): hide rollouts that have not reached the
//! client yet, and drop edges out of dead ends. Time is a parameter.

use std::collections::HashSet;

use crate::graph::{drop_deadend_edges, Graph, Node};
use crate::keys;
use crate::wire::Rollout;

/// How far a rollout has gone at some instant.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RolloutProgress {
    /// `now` is before `start_epoch`: nobody sees the release yet.
    NotStarted,
    /// The fraction of the fleet that sees the release, in 0.0..=1.0.
    Started(f64),
}

impl RolloutProgress {
    /// Whether a client of this (already clamped, non-NaN) wariness sees the release.
    pub fn reaches(self, wariness: f64) -> bool {
        match self {
            RolloutProgress::NotStarted => false,
            RolloutProgress::Started(fraction) => wariness <= fraction,
        }
    }
}

/// Progress of a rollout at `now`.
///
/// Linear from `start_value` at `start_epoch` to 1.0 at `start_epoch + duration_minutes`;
/// held at `start_value` without a duration or with a zero one (the schema's "0 (i.e. no
/// progress)"). The result is clamped to 0.0..=1.0; NaN counts as 0.0.
pub fn rollout_progress(
    start_epoch: i64,
    start_value: f64,
    duration_minutes: Option<u64>,
    now: i64,
) -> RolloutProgress {
    if now < start_epoch {
        return RolloutProgress::NotStarted;
    }
    let fraction = match duration_minutes {
        Some(minutes) if minutes > 0 => {
            // i128: no overflow for any i64 epoch and u64 duration.
            let length = i128::from(minutes) * 60;
            let elapsed = i128::from(now) - i128::from(start_epoch);
            if elapsed >= length {
                1.0
            } else {
                start_value + (1.0 - start_value) * (elapsed as f64 / length as f64)
            }
        }
        _ => start_value,
    };
    let fraction = if fraction.is_nan() { 0.0 } else { fraction };
    RolloutProgress::Started(fraction.clamp(0.0, 1.0))
}

impl Rollout {
    /// Progress of this rollout at `now`, with the schema's defaults for absent fields.
    pub fn progress(&self, now: i64) -> RolloutProgress {
        rollout_progress(
            self.start_epoch.unwrap_or(0),
            self.start_percentage.unwrap_or(0.0),
            self.duration_minutes,
            now,
        )
    }
}

/// A rollout as a graph node carries it. Unparseable values take the defaults, as in the
/// reference.
#[derive(Clone, Copy, Debug, PartialEq)]
struct NodeRollout {
    start_epoch: i64,
    start_value: f64,
    duration_minutes: Option<u64>,
}

impl NodeRollout {
    fn of(node: &Node) -> Option<NodeRollout> {
        if !node.metadata.contains_key(keys::ROLLOUT) {
            return None;
        }
        fn parsed<T: std::str::FromStr>(node: &Node, key: &str) -> Option<T> {
            node.metadata.get(key).and_then(|value| value.parse().ok())
        }
        Some(NodeRollout {
            start_epoch: parsed(node, keys::START_EPOCH).unwrap_or(0),
            start_value: parsed(node, keys::START_VALUE).unwrap_or(0.0),
            duration_minutes: parsed(node, keys::DURATION),
        })
    }

    fn progress(self, now: i64) -> RolloutProgress {
        rollout_progress(
            self.start_epoch,
            self.start_value,
            self.duration_minutes,
            now,
        )
    }
}

/// Progress of the rollout of a graph node, if it is one.
pub fn node_rollout_progress(node: &Node, now: i64) -> Option<RolloutProgress> {
    NodeRollout::of(node).map(|rollout| rollout.progress(now))
}

/// The rollouts of one graph, read once, to answer many clients: which nodes a client
/// does not see yet is all that makes one client's graph differ from another's.
#[derive(Clone, Debug, Default)]
pub struct Rollouts {
    nodes: Vec<(u64, NodeRollout)>,
}

impl Rollouts {
    pub fn of(graph: &Graph) -> Rollouts {
        Rollouts {
            nodes: graph
                .nodes
                .iter()
                .enumerate()
                .filter_map(|(index, node)| Some((index as u64, NodeRollout::of(node)?)))
                .collect(),
        }
    }

    /// The rollout nodes a client of `wariness` does not see at `now`, in node order.
    /// `wariness` is clamped to 0.0..=1.0; NaN counts as 1.0 (the most cautious client).
    pub fn hidden(&self, now: i64, wariness: f64) -> Vec<u64> {
        let wariness = if wariness.is_nan() {
            1.0
        } else {
            wariness.clamp(0.0, 1.0)
        };
        self.nodes
            .iter()
            .filter(|(_, rollout)| !rollout.progress(now).reaches(wariness))
            .map(|(index, _)| *index)
            .collect()
    }
}

/// The graph without edges into `hidden` nodes and without edges out of dead ends.
pub fn without(graph: &Graph, hidden: &[u64]) -> Graph {
    let hidden: HashSet<u64> = hidden.iter().copied().collect();
    let mut filtered = Graph {
        nodes: graph.nodes.clone(),
        edges: graph
            .edges
            .iter()
            .copied()
            .filter(|(_, to)| !hidden.contains(to))
            .collect(),
    };
    drop_deadend_edges(&mut filtered);
    filtered
}

/// The graph a client of `wariness` sees at `now_epoch`: edges into a rollout are kept only
/// when the rollout has started and its progress is at least the client's wariness, and no
/// edge leaves a dead end. Nodes are kept, so indices stay valid.
///
/// `wariness` is clamped to 0.0..=1.0; NaN counts as 1.0 (the most cautious client).
pub fn filter(graph: &Graph, now_epoch: i64, wariness: f64) -> Graph {
    without(graph, &Rollouts::of(graph).hidden(now_epoch, wariness))
}
