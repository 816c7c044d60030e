//! A short mutation fuzz run on the stable toolchain, in every test run: seeds from
//! Butane's examples and the error corpus, mutated (bit flips, byte insertions and
//! deletions, splices, truncations), fed to the YAML parser, the translator and the
//! Ignition parser. Any panic fails the test and prints the input. `fuzz/` holds the same
//! targets for cargo-fuzz (libFuzzer) for long runs; `CAIRN_FUZZ_SECONDS` sets the time
//! here (default 3 per target).

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use cairn_test_support::Rng;

const TOKENS: &[&[u8]] = &[
    b": ",
    b"- ",
    b"\n  ",
    b"{",
    b"}",
    b"[",
    b"]",
    b"&a ",
    b"*a",
    b"'",
    b"\"",
    b"inline: ",
    b"local: ",
    b"0o777",
    b"0x",
    b"~",
    b"\t",
    b"%",
    b"data:,",
    b"\xff",
    b"version: 1.6.0",
    b"path: /",
    b"..",
    b"!!binary ",
    b"? ",
    b"|\n",
    b">-\n",
];

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>], input: &mut Vec<u8>) {
    for _ in 0..=rng.below(4) {
        match rng.below(6) {
            0 if !input.is_empty() => {
                let i = rng.below(input.len());
                input[i] ^= 1 << rng.below(8);
            }
            1 => {
                let token = TOKENS[rng.below(TOKENS.len())];
                let i = rng.below(input.len() + 1);
                input.splice(i..i, token.iter().copied());
            }
            2 if !input.is_empty() => {
                let start = rng.below(input.len());
                let end = (start + rng.below(16)).min(input.len());
                input.drain(start..end);
            }
            3 => {
                let other = &seeds[rng.below(seeds.len())];
                if !other.is_empty() {
                    let start = rng.below(other.len());
                    let end = (start + rng.below(64)).min(other.len());
                    let i = rng.below(input.len() + 1);
                    input.splice(i..i, other[start..end].iter().copied());
                }
            }
            4 => input.truncate(rng.below(input.len() + 1)),
            _ => {
                let i = rng.below(input.len() + 1);
                input.insert(i, rng.next_u64() as u8);
            }
        }
    }
}

fn seeds() -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    for dir in [
        root.join("tests/data/butane-examples/cases"),
        root.join("tests/data/errors"),
    ] {
        if let Ok(entries) = fs::read_dir(dir) {
            for e in entries.flatten() {
                if let Ok(data) = fs::read(e.path()) {
                    out.push(data);
                }
            }
        }
    }
    out.push(Vec::new());
    out
}

fn run(name: &str, target: impl Fn(&[u8])) {
    let seconds = std::env::var("CAIRN_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let seeds = seeds();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ name.len() as u64);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut runs = 0u64;
    while Instant::now() < deadline {
        let mut input = seeds[rng.below(seeds.len())].clone();
        mutate(&mut rng, &seeds, &mut input);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| target(&input)));
        assert!(
            result.is_ok(),
            "{name} panicked on input {:?}",
            String::from_utf8_lossy(&input)
        );
        runs += 1;
    }
    eprintln!("{name}: {runs} inputs in {seconds}s, no panic");
}

#[test]
fn fuzz_yaml_parser() {
    run("yaml", |data| {
        let _ = cairn_provision::yaml::parse(&String::from_utf8_lossy(data));
    });
}

#[test]
fn fuzz_translate() {
    let dir = tempfile::tempdir().unwrap();
    let options = cairn_provision::Options {
        files_dir: Some(dir.path().to_owned()),
    };
    run("translate", |data| {
        let source = cairn_provision::Source {
            name: "fuzz.bu".into(),
            text: String::from_utf8_lossy(data).into_owned(),
        };
        if let Err(diagnostics) = cairn_provision::translate(&source, &options) {
            for d in diagnostics {
                let _ = d.to_string();
            }
        }
    });
}

#[test]
fn fuzz_ignition_parser() {
    run("ignition", |data| {
        let _ = cairn_ignition::parse(data);
    });
}
