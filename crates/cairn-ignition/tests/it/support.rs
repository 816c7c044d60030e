//! Helpers: peers, the data directory, and assertions on reports.

use std::path::PathBuf;
use std::process::Command;

use cairn_ignition::{Report, Severity};
use serde_json::Value;

pub use cairn_test_support::have_peer;

pub fn data_dir(kind: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(kind)
}

/// The `*.json` files of a corpus directory, sorted, as (name without `.json`, path).
pub fn corpus(kind: &str) -> Vec<(String, PathBuf)> {
    let mut files: Vec<(String, PathBuf)> = std::fs::read_dir(data_dir(kind))
        .expect("read corpus directory")
        .map(|entry| entry.expect("corpus entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .map(|path| {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            (name, path)
        })
        .collect();
    files.sort();
    files
}

/// A config of `version` with `body` merged in at the top level (`ignition` merged too).
pub fn config(version: &str, body: Value) -> Value {
    let mut config = serde_json::json!({"ignition": {"version": version}});
    if let Value::Object(body) = body {
        for (key, value) in body {
            match (key.as_str(), value) {
                ("ignition", Value::Object(ignition)) => {
                    let target = config["ignition"].as_object_mut().unwrap();
                    target.extend(ignition);
                }
                (_, value) => {
                    config[key] = value;
                }
            }
        }
    }
    config
}

pub fn report(version: &str, body: Value) -> Report {
    let value = config(version, body);
    match cairn_ignition::parse_value(&value) {
        Ok((_, _, report)) => report,
        Err(e) => panic!("{value}: {e}"),
    }
}

fn describe(report: &Report) -> String {
    if report.is_empty() {
        "(empty report)".into()
    } else {
        report.to_string()
    }
}

/// Asserts an entry of `severity` at `path` whose message contains `message`.
#[track_caller]
pub fn assert_entry(report: &Report, severity: Severity, path: &str, message: &str) {
    let found = report
        .entries
        .iter()
        .any(|e| e.severity == severity && e.path_string() == path && e.message.contains(message));
    assert!(
        found,
        "expected {severity} at {path} containing {message:?}, got:\n{}",
        describe(report)
    );
}

/// Asserts that `body` at `version` has an error at `path` containing `message`.
#[track_caller]
pub fn assert_error(version: &str, body: Value, path: &str, message: &str) {
    assert_entry(&report(version, body), Severity::Error, path, message);
}

#[track_caller]
pub fn assert_warning(version: &str, body: Value, path: &str, message: &str) {
    let report = report(version, body);
    assert!(!report.has_errors(), "unexpected errors:\n{report}");
    assert_entry(&report, Severity::Warning, path, message);
}

/// Asserts that `body` at `version` gives an empty report.
#[track_caller]
pub fn assert_clean(version: &str, body: Value) {
    let report = report(version, body);
    assert!(report.is_empty(), "expected no entries, got:\n{report}");
}

/// Runs `ignition-validate FILE`: (success, output).
pub fn ignition_validate(path: &std::path::Path) -> (bool, String) {
    let out = Command::new("ignition-validate")
        .arg(path)
        .output()
        .expect("run ignition-validate");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}
