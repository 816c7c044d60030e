//! cairn-apply's integration tests.

mod fetch;
mod passwd;
mod txn;
