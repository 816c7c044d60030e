//! The update agent: every machine keeps itself current, like Zincati does on Fedora CoreOS.
//!
//! - [`config`]: Zincati's configuration (TOML fragments, later wins), plus cairn's keys.
//! - [`identity`]: the node UUID derived from `/etc/machine-id` as Zincati derives it, and the
//!   rollout wariness.
//! - [`window`]: maintenance windows of the `periodic` strategy, in a time zone.
//! - [`daemon`]: `cairn agent run`: the machine on the real ports, status, control, metrics.
//! - [`deployments`]: the sysroot port on a real sysroot (stage locked, finalize, reboot).
//! - [`http`]: the graph and FleetLock clients.
//! - [`select`]: which update to take from the graph.
//! - [`machine`]: the agent's work as a state machine without IO, driven through traits.

pub mod config;
pub mod daemon;
pub mod deployments;
pub mod http;
pub mod identity;
pub mod machine;
pub mod select;
pub mod window;
