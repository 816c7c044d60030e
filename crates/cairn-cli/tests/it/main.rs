//! cairn's integration tests: the real binary against the real `ostree`.

mod agent;
mod config;
mod crash;
mod graph;
mod hostile;
mod httpd;
mod interop;
mod lock;
mod provision;
mod pull;
mod quickstart;
mod support;
mod sysroot;
