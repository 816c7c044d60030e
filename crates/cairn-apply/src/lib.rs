//! cairn's applier: an Ignition config applied to a target root, all or nothing, once.
//!
//! - [`resolve`]: the fetch stage — the config read (Ignition JSON or cairn's YAML),
//!   merged and replaced configs fetched, every resource fetched, decompressed and
//!   verified, into one self-contained config.
//! - [`plan`]: the files stage, run against a [`view`] of the root without writing.
//! - [`txn`]: the journalled all-or-nothing switch of the planned changes.
//! - [`apply`]: the three together, with the exactly-once marker.
//!
//! See ARCHITECTURE.md and docs/protocols/provision-apply.md.

pub mod apply;
pub mod fetch;
pub mod passwd;
pub mod plan;
pub mod resolve;
pub mod txn;
pub mod view;

pub use apply::{apply_config, ApplyError, ApplyOptions, Outcome};
