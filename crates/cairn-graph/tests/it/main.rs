//! cairn-graph's integration tests: the reference's outputs, Fedora CoreOS's whole updates
//! history, the policy, invariants, wire formats and operator edits.

mod edit;
mod history;
mod policy;
mod properties;
mod support;
mod synthetic;
mod wire;
