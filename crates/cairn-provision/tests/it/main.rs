//! cairn-provision's integration tests: Butane's own examples, and error output.

mod errors;
mod examples;
mod fuzz_smoke;
