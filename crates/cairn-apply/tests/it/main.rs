//! cairn-apply's integration tests.

mod apply;
mod common;
mod differential;
mod fetch;
mod passwd;
mod resolve;
mod txn;
