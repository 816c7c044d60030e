//! cairn-apply's integration tests.

mod fetch;
mod txn;
