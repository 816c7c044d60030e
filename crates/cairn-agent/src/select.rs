//! Which update to take: from the booted release's edges in the graph, the newest reachable
//! release that is not a dead end, not recorded as bad on this machine, not a downgrade and not
//! past the configured cap. Pure: the graph and the facts come in, a choice comes out.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use cairn_graph::{keys, Graph, Node};

/// A release as the agent handles it: a version and its OSTree commit.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Release {
    pub version: String,
    pub checksum: String,
}

impl Release {
    pub fn of(node: &Node) -> Release {
        Release {
            version: node.version.clone(),
            checksum: node.payload.clone(),
        }
    }
}

/// What the graph says about the booted release and where it may go.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    /// The release to take, if any.
    pub target: Option<Release>,
    /// The booted release is a dead end: no update leaves it. The reason (a URL) is given.
    pub booted_dead_end: Option<String>,
    /// Releases the edges offer that were passed over, each with why.
    pub skipped: Vec<(Release, String)>,
    /// The booted release is not in the graph (too old, another stream, a local build).
    pub booted_unknown: bool,
}

/// Inputs of [`choose`] besides the graph.
#[derive(Debug, Clone, Default)]
pub struct Constraints {
    /// Commits recorded as bad on this machine (their health check failed), with the reason.
    pub bad: BTreeMap<String, String>,
    /// Never go past this version (`updates.max_version`).
    pub max_version: Option<String>,
    /// Zincati's `updates.allow_downgrade`.
    pub allow_downgrade: bool,
}

fn age_index(node: &Node) -> Option<u64> {
    node.metadata.get(keys::AGE_INDEX)?.parse().ok()
}

fn flag(node: &Node, key: &str) -> bool {
    node.metadata.get(key).is_some_and(|value| value == "true")
}

/// Compares Fedora CoreOS-style versions (`41.20241109.3.0`): dot-separated parts, numeric parts
/// numerically, others as text; a version with more parts is later when the rest is equal.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let mut left = a.split('.');
    let mut right = b.split('.');
    loop {
        match (left.next(), right.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let order = match (x.parse::<u64>(), y.parse::<u64>()) {
                    (Ok(x), Ok(y)) => x.cmp(&y),
                    _ => x.cmp(y),
                };
                if order != Ordering::Equal {
                    return order;
                }
            }
        }
    }
}

/// Chooses the update for a machine booted on `booted`.
pub fn choose(graph: &Graph, booted: &Release, constraints: &Constraints) -> Choice {
    let mut choice = Choice {
        target: None,
        booted_dead_end: None,
        skipped: Vec::new(),
        booted_unknown: false,
    };
    let Some(from) = graph
        .nodes
        .iter()
        .position(|node| node.payload == booted.checksum)
    else {
        choice.booted_unknown = true;
        return choice;
    };
    let booted_node = &graph.nodes[from];
    if flag(booted_node, keys::DEADEND) {
        choice.booted_dead_end = Some(
            booted_node
                .metadata
                .get(keys::DEADEND_REASON)
                .cloned()
                .unwrap_or_else(|| "generic".to_string()),
        );
    }
    let booted_age = age_index(booted_node);
    let mut best: Option<&Node> = None;
    for &(source, target) in &graph.edges {
        if source as usize != from {
            continue;
        }
        let Some(node) = graph.nodes.get(target as usize) else {
            continue;
        };
        let release = Release::of(node);
        let skip = if flag(node, keys::DEADEND) {
            Some("it is a dead end".to_string())
        } else if let Some(reason) = constraints.bad.get(&node.payload) {
            Some(format!("it failed on this machine before: {reason}"))
        } else if !constraints.allow_downgrade
            && matches!((age_index(node), booted_age), (Some(to), Some(now)) if to < now)
        {
            Some("it is older than the booted release".to_string())
        } else if let Some(cap) = &constraints.max_version {
            (compare_versions(&node.version, cap) == Ordering::Greater)
                .then(|| format!("it is past updates.max_version {cap}"))
        } else {
            None
        };
        match skip {
            Some(why) => choice.skipped.push((release, why)),
            None => {
                let newer = match best {
                    None => true,
                    Some(current) => match (age_index(node), age_index(current)) {
                        (Some(a), Some(b)) => a > b,
                        _ => compare_versions(&node.version, &current.version) == Ordering::Greater,
                    },
                };
                if newer {
                    best = Some(node);
                }
            }
        }
    }
    choice.target = best.map(Release::of);
    choice
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(version: &str, age: u64, extra: &[(&str, &str)]) -> Node {
        let mut metadata = BTreeMap::from([(keys::AGE_INDEX.to_string(), age.to_string())]);
        for (k, v) in extra {
            metadata.insert(k.to_string(), v.to_string());
        }
        Node {
            version: version.to_string(),
            metadata,
            payload: format!("c{age}"),
        }
    }

    fn release(age: u64, version: &str) -> Release {
        Release {
            version: version.to_string(),
            checksum: format!("c{age}"),
        }
    }

    #[test]
    fn versions_compare_part_by_part() {
        assert_eq!(
            compare_versions("41.20241109.3.0", "41.20241109.3.0"),
            Ordering::Equal
        );
        assert_eq!(
            compare_versions("41.20241109.3.0", "41.20241027.3.0"),
            Ordering::Greater
        );
        assert_eq!(compare_versions("9.1", "10.0"), Ordering::Less);
        assert_eq!(compare_versions("1.2", "1.2.1"), Ordering::Less);
    }

    #[test]
    fn takes_the_newest_edge_and_skips_dead_ends_bad_downgrades_and_the_cap() {
        let graph = Graph {
            nodes: vec![
                node("1", 0, &[]),
                node("2", 1, &[]),
                node("3", 2, &[(keys::DEADEND, "true")]),
                node("4", 3, &[]),
                node("5", 4, &[]),
            ],
            edges: vec![(1, 0), (1, 2), (1, 3), (1, 4)],
        };
        let booted = release(1, "2");
        let mut constraints = Constraints::default();
        assert_eq!(
            choose(&graph, &booted, &constraints).target,
            Some(release(4, "5"))
        );
        constraints
            .bad
            .insert("c4".into(), "health check failed".into());
        let choice = choose(&graph, &booted, &constraints);
        assert_eq!(choice.target, Some(release(3, "4")));
        let why: Vec<&str> = choice.skipped.iter().map(|(_, why)| why.as_str()).collect();
        assert_eq!(
            why,
            [
                "it is older than the booted release",
                "it is a dead end",
                "it failed on this machine before: health check failed"
            ]
        );
        constraints.max_version = Some("3".into());
        assert_eq!(choose(&graph, &booted, &constraints).target, None);
        constraints.allow_downgrade = true;
        assert_eq!(
            choose(&graph, &booted, &constraints).target,
            Some(release(0, "1"))
        );
    }

    #[test]
    fn a_booted_dead_end_and_an_unknown_booted_release_are_reported() {
        let graph = Graph {
            nodes: vec![node(
                "1",
                0,
                &[
                    (keys::DEADEND, "true"),
                    (keys::DEADEND_REASON, "https://example.com/issue/1"),
                ],
            )],
            edges: vec![],
        };
        let choice = choose(&graph, &release(0, "1"), &Constraints::default());
        assert_eq!(
            choice.booted_dead_end.as_deref(),
            Some("https://example.com/issue/1")
        );
        assert_eq!(choice.target, None);
        let choice = choose(&graph, &release(9, "9"), &Constraints::default());
        assert!(choice.booted_unknown);
    }
}
