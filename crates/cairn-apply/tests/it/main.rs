//! cairn-apply's integration tests.

mod differential;
mod fetch;
mod passwd;
mod resolve;
mod txn;
