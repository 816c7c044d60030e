//! Integration tests of the update agent.

mod config;
mod fleet;
mod http;
mod identity;
mod machine;
mod window;
