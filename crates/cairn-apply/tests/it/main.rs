//! cairn-apply's integration tests.

mod apply;
mod differential;
mod fetch;
mod passwd;
mod resolve;
mod txn;
