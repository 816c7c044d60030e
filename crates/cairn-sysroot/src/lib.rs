//! cairn's sysroot: deployments of store commits in OSTree's own layout, so that
//! `ostree admin` and cairn read each other's sysroots.
//!
//! A deployment is a hardlinked checkout under `/ostree/deploy/<stateroot>/deploy/`; the
//! boot loader entries under `/boot/loader.N/entries/` list deployments in boot order, and
//! the `/boot/loader` symlink names the live set. Every change builds a complete new set
//! beside the live one and swaps that symlink: the single commit point (`write`). Staging
//! (`stage`), the `/etc` three-way merge (`etc_merge`) and health checks with boot
//! counting (`health`) build on it. See ARCHITECTURE.md for the map.

pub mod bls;
pub mod deploy;
mod error;
pub mod etc_merge;
pub mod health;
pub mod kargs;
pub mod stage;
pub mod sysroot;
pub mod write;

pub use error::{Error, Result};
pub use sysroot::{Deployment, State, Sysroot};
