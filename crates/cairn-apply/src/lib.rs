//! cairn's applier: an Ignition config applied to a target root, all or nothing.
//!
//! Work in progress (issue 6). What exists: `fetch`, which resolves every resource of a
//! config into verified bytes before anything in the root changes, and `txn`, the
//! journalled all-or-nothing switch of files, directories and symlinks. See ARCHITECTURE.md.

pub mod fetch;
pub mod passwd;
pub mod txn;
