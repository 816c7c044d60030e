//! Node metadata keys of Fedora CoreOS's Cincinnati graph, as fcos-graph-builder writes them
//! and Zincati reads them. Every value is a string.

/// `checksum` (OSTree commit) or `oci` (container image by digest).
pub const SCHEME: &str = "org.fedoraproject.coreos.scheme";
/// Position of the release in the release index, counted before filtering by architecture.
pub const AGE_INDEX: &str = "org.fedoraproject.coreos.releases.age_index";
/// `true` when the release is a barrier.
pub const BARRIER: &str = "org.fedoraproject.coreos.updates.barrier";
/// URL of the reason, or `generic` when the metadata gave none.
pub const BARRIER_REASON: &str = "org.fedoraproject.coreos.updates.barrier_reason";
/// `true` when no update leaves the release.
pub const DEADEND: &str = "org.fedoraproject.coreos.updates.deadend";
/// URL of the reason, or `generic` when the metadata gave none.
pub const DEADEND_REASON: &str = "org.fedoraproject.coreos.updates.deadend_reason";
/// `true` when the release is being (or was) rolled out.
pub const ROLLOUT: &str = "org.fedoraproject.coreos.updates.rollout";
/// UNIX time of the rollout's start, present only when the metadata gives one.
pub const START_EPOCH: &str = "org.fedoraproject.coreos.updates.start_epoch";
/// Starting fraction (Rust's shortest `f64` text: `0.25`, `1`), present only when given.
pub const START_VALUE: &str = "org.fedoraproject.coreos.updates.start_value";
/// Rollout duration in minutes, present only when given.
pub const DURATION: &str = "org.fedoraproject.coreos.updates.duration_minutes";
