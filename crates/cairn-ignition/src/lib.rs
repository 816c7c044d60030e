//! Ignition config spec 3.0.0–3.6.0 (and 3.7.0-experimental): a typed model of the newest
//! spec, parsing of any supported version, Ignition's validation rules per version, and
//! up-translation to the newest spec.
//!
//! ```
//! let json = br#"{"ignition": {"version": "3.0.0"}, "storage": {"files": [{"path": "etc/motd"}]}}"#;
//! let (config, version, report) = cairn_ignition::parse(json).unwrap();
//! assert_eq!(version, cairn_ignition::Version::V3_0_0);
//! assert_eq!(report.to_string(), "error at $.storage.files.0.path: path not absolute\n");
//! assert_eq!(config.ignition.version, "3.6.0");
//! ```
//!
//! The rules are Ignition's (coreos/ignition `config/`), read from its source; the messages
//! are its messages. Where cairn warns beyond Ignition the message says so.

mod data_url;
mod decode;
mod gopath;
mod gourl;
mod model;
mod report;
mod unit_file;
mod validate;
mod version;

use serde_json::Value;

pub use model::*;
pub use report::{path_to_string, PathElem, Report, ReportEntry, Severity};
pub use validate::validate;
pub use version::Version;

/// Why bytes could not be read as a config at all. Everything else (wrong types, unknown
/// keys, broken rules) is reported in the [`Report`] with its JSON path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("not a config (empty)")]
    Empty,
    #[error("invalid JSON at line {line}, column {column}: {message}")]
    Json {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("config is not a JSON object")]
    NotAnObject,
    #[error("missing ignition.version")]
    MissingVersion,
    #[error("invalid config version {0} (couldn't parse)")]
    InvalidVersion(String),
    #[error("unsupported config version {0} (supported: 3.0.0 to 3.6.0, 3.7.0-experimental)")]
    UnsupportedVersion(String),
}

/// Parses a config of any supported version from JSON bytes: detects `ignition.version`,
/// reads it with that version's key set (a key that version does not know is a warning
/// "unused key X", as Ignition does), validates it with every rule of that version, and
/// returns it up-translated to the newest model.
///
/// The config comes back even when the report has errors; check [`Report::has_errors`].
pub fn parse(bytes: &[u8]) -> Result<(Config, Version, Report), ParseError> {
    if bytes.is_empty() {
        return Err(ParseError::Empty);
    }
    let value: Value = serde_json::from_slice(bytes).map_err(|e| ParseError::Json {
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })?;
    parse_value(&value)
}

/// The same as [`parse`], from an already built JSON value (the YAML translator makes those).
pub fn parse_value(value: &Value) -> Result<(Config, Version, Report), ParseError> {
    let version = detect_version(value)?;
    let mut report = Report::default();
    let decoded = decode::decode(value, version, &mut report);
    let mut config = decoded.config;
    report.merge(validate(&config, version));
    // Errors first, each group in the order found.
    report
        .entries
        .sort_by_key(|e| e.severity != Severity::Error);
    translate_up(&mut config, version);
    Ok((config, version, report))
}

/// The spec version a config declares.
pub fn detect_version(value: &Value) -> Result<Version, ParseError> {
    let Value::Object(root) = value else {
        return Err(ParseError::NotAnObject);
    };
    let version = match root.get("ignition") {
        None | Some(Value::Null) => return Err(ParseError::MissingVersion),
        Some(Value::Object(ignition)) => ignition.get("version"),
        Some(other) => return Err(ParseError::InvalidVersion(format!("(ignition is {other})"))),
    };
    match version {
        None | Some(Value::Null) => Err(ParseError::MissingVersion),
        Some(Value::String(s)) if s.is_empty() => Err(ParseError::MissingVersion),
        Some(Value::String(s)) => match Version::parse(s) {
            Some(version) => Ok(version),
            None if version::is_semver(s) => Err(ParseError::UnsupportedVersion(s.clone())),
            None => Err(ParseError::InvalidVersion(s.clone())),
        },
        Some(other) => Err(ParseError::InvalidVersion(other.to_string())),
    }
}

/// What Ignition's translators change on the way up from `from`: before 3.6.0 the
/// setuid/setgid/sticky bits of modes were never applied, so they are masked off rather than
/// suddenly taking effect.
fn translate_up(config: &mut Config, from: Version) {
    config.ignition.version = from.max(Version::LATEST).as_str().to_owned();
    if from < Version::V3_6_0 {
        let modes = config
            .storage
            .files
            .iter_mut()
            .map(|f| &mut f.mode)
            .chain(config.storage.directories.iter_mut().map(|d| &mut d.mode));
        for mode in modes.flatten() {
            *mode &= !0o7000;
        }
    }
}

impl Config {
    /// The config as JSON of spec `version`, with `ignition.version` set to it. Keys that
    /// `version` does not know are left out, so ask for a version at least as new as the
    /// features the config uses (a parsed config's own version, or newer).
    pub fn to_json(&self, version: Version) -> Value {
        let mut value = match serde_json::to_value(self) {
            Ok(value) => value,
            // The model holds only strings, numbers, booleans, lists and structs.
            Err(_) => Value::Object(Default::default()),
        };
        if let Some(ignition) = value.get_mut("ignition").and_then(Value::as_object_mut) {
            ignition.insert("version".into(), Value::String(version.as_str().into()));
        }
        let mut scratch = Report::default();
        let unknown = decode::decode(&value, version, &mut scratch).unused_keys;
        for path in unknown {
            remove_path(&mut value, &path);
        }
        value
    }
}

fn remove_path(value: &mut Value, path: &[PathElem]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut node = value;
    for elem in parents {
        let next = match elem {
            PathElem::Key(key) => node.get_mut(key.as_str()),
            PathElem::Index(index) => node.get_mut(*index),
        };
        match next {
            Some(next) => node = next,
            None => return,
        }
    }
    if let (PathElem::Key(key), Value::Object(map)) = (last, node) {
        map.remove(key);
    }
}
