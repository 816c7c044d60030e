//! Test-only helpers shared by cairn's integration tests.

use std::process::Command;

/// Whether a peer program (a name on `PATH`, or an absolute path) is installed. Without
/// it a test skips, unless `CAIRN_REQUIRE_PEERS` is set (as in CI), where its absence is
/// a failure.
pub fn have_peer(program: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !found {
        if std::env::var_os("CAIRN_REQUIRE_PEERS").is_some() {
            panic!("{program} is required (CAIRN_REQUIRE_PEERS is set) but not installed");
        }
        eprintln!("skipping: {program} not installed");
    }
    found
}
