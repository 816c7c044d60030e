//! Integration tests of the update agent.

mod config;
mod http;
mod identity;
mod machine;
mod window;
