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

/// A small deterministic generator (xorshift64) for fuzz-style tests: the same seed gives
/// the same inputs, so a failure reproduces.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    pub fn pick<'a, T: ?Sized>(&mut self, items: &[&'a T]) -> &'a T {
        items[self.below(items.len())]
    }
}
