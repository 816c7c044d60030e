//! The agent's configuration: Zincati's TOML fragments, merged and validated into
//! [`AgentConfig`], plus the few keys cairn adds.
//!
//! A Zincati configuration works unchanged; only the directories differ (`agent.d` under
//! cairn's names instead of `zincati/config.d`). Three stages, as in Zincati's
//! `src/config/{fragments,inputs,mod}.rs`:
//!
//! 1. **Scan** ([`DEFAULT_DIRS`], in order), with liboverdrop's rules: only regular files
//!    named `*.toml` count, dotfiles are skipped, a name in a later directory masks the same
//!    name in an earlier one, and a `*.toml` symlink to `/dev/null` masks it without
//!    replacing it. Any other symlink is skipped (liboverdrop looks at the entry itself, not
//!    its target). A missing directory is skipped.
//! 2. **Merge** the surviving files in file-name order (byte order, whatever their
//!    directory): a later value replaces an earlier one key by key, except
//!    `[[updates.periodic.window]]` entries, which are appended across fragments (Zincati
//!    pushes every fragment's windows onto one list; no fragment can remove an earlier
//!    window).
//! 3. **Validate** the merged values, as Zincati does at startup: only the final value of a
//!    key is checked, and a strategy's settings only when that strategy is selected (the
//!    `periodic` time zone is then looked up in the time-zone database).
//!
//! As in Zincati, an empty string for `identity.group`, `identity.node_uuid` or
//! `updates.strategy` means "not set" (the default applies), which is also how a later
//! fragment resets an earlier value.
//!
//! Departures from Zincati: unknown keys are errors (Zincati's serde structs ignore them, so a
//! typo silently does nothing); base URLs must be `http`/`https` URLs whose `${…}` variables
//! are ones Zincati substitutes; window entries and the time zone are read by
//! [`crate::window`] (an empty `days` list is an error where Zincati ignores the entry, and
//! `Tuesday` is accepted, which Zincati documents but its parser spells `tuesady`), here, so
//! that an error names the file; an unreadable directory is an error (liboverdrop skips it).
//!
//! cairn's keys, none of them in Zincati: `updates.max_version`, `agent.reboot_command`,
//! `agent.metrics.listen`, `agent.state_dir`, `agent.stream` (see [`AgentSettings`] and
//! [`UpdateSettings`]).

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs;
use std::io;
use std::net::SocketAddr;
use std::num::NonZeroU64;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::identity;
use crate::window::{WindowError, WindowField, WindowSpec, Windows};

/// Where fragments are read from, in increasing priority: the OS's defaults, runtime
/// settings, the administrator's settings (Zincati's order: `/usr/lib`, `/run`, `/etc`).
pub const DEFAULT_DIRS: [&str; 3] = [
    "/usr/lib/cairn/agent.d",
    "/run/cairn/agent.d",
    "/etc/cairn/agent.d",
];

/// Zincati's default pause between update checks, in seconds (`DEFAULT_STEADY_INTERVAL_SECS`).
pub const DEFAULT_STEADY_INTERVAL_SECS: u64 = 300;
/// Zincati's default update group.
pub const DEFAULT_GROUP: &str = "default";
/// Zincati's default time zone of the `periodic` strategy.
pub const DEFAULT_TIME_ZONE: &str = "UTC";
/// The default `agent.reboot_command` (not in Zincati, which asks rpm-ostree to reboot).
pub const DEFAULT_REBOOT_COMMAND: [&str; 2] = ["systemctl", "reboot"];
/// The default `agent.state_dir` (not in Zincati, which keeps no state on disk).
pub const DEFAULT_STATE_DIR: &str = "/var/lib/cairn/agent";
/// The variables Zincati substitutes in `cincinnati.base_url` and
/// `updates.fleet_lock.base_url`, written `${name}` (its `Identity::url_variables`).
pub const URL_VARIABLES: [&str; 4] = ["basearch", "group", "platform", "stream"];

/// [`DEFAULT_DIRS`] as paths, for [`load`].
pub fn default_dirs() -> Vec<PathBuf> {
    DEFAULT_DIRS.iter().map(PathBuf::from).collect()
}

/// The agent's validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentConfig {
    pub agent: AgentSettings,
    pub cincinnati: CincinnatiSettings,
    pub identity: IdentitySettings,
    pub updates: UpdateSettings,
    /// The fragments that were merged, in merge order.
    pub fragments: Vec<PathBuf>,
}

/// `[agent]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentSettings {
    /// `agent.timing.steady_interval_secs`: pause between update checks once the agent is
    /// steady. Default 300; zero is invalid.
    pub steady_interval_secs: NonZeroU64,
    /// `agent.reboot_command` (not in Zincati): the argv that reboots into a staged update.
    /// Default `["systemctl", "reboot"]`; must not be empty.
    pub reboot_command: Vec<String>,
    /// `agent.metrics.listen` (not in Zincati; its #677): a TCP address (`IP:port`) on which
    /// metrics are also served, besides the Unix socket. Default: none.
    pub metrics_listen: Option<SocketAddr>,
    /// `agent.state_dir` (not in Zincati): where the agent keeps its state. Default
    /// `/var/lib/cairn/agent`; must be absolute.
    pub state_dir: PathBuf,
    /// `agent.stream` (not in Zincati, which reads the stream from the booted deployment's
    /// commit metadata): the update stream, overriding what the booted deployment says.
    /// Default: none.
    pub stream: Option<String>,
}

/// `[cincinnati]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CincinnatiSettings {
    /// `cincinnati.base_url`: the graph server; required (Zincati's distribution sets it in
    /// `/usr/lib`). May hold the [`URL_VARIABLES`].
    pub base_url: String,
}

/// `[identity]`.
#[derive(Debug, Clone, PartialEq)]
pub struct IdentitySettings {
    /// `identity.group`: the update group, `^[a-zA-Z0-9.-]+$`. Default `default`.
    pub group: String,
    /// `identity.node_uuid`, as 32 lowercase hexadecimal digits (any form the uuid crate
    /// parses is accepted, as by Zincati). Default: none, derived from `/etc/machine-id`
    /// (see [`crate::identity`]).
    pub node_uuid: Option<String>,
    /// `identity.rollout_wariness`, 0.0 (eager) to 1.0 (cautious). Default: none, left to the
    /// graph server.
    pub rollout_wariness: Option<f64>,
}

/// `[updates]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateSettings {
    /// `updates.enabled`. Default true.
    pub enabled: bool,
    /// `updates.allow_downgrade`. Default false.
    pub allow_downgrade: bool,
    /// `updates.strategy` with its settings. Default [`Strategy::Immediate`].
    pub strategy: Strategy,
    /// `updates.max_version` (not in Zincati): never update past this version. Default: none.
    pub max_version: Option<String>,
}

/// When a staged update may be finalized (`updates.strategy`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Strategy {
    /// `immediate`: as soon as it is staged.
    Immediate,
    /// `periodic`: inside weekly maintenance windows (`updates.periodic`).
    Periodic {
        /// `updates.periodic.time_zone`: an IANA name or `localtime`. Default `UTC`.
        time_zone: String,
        /// `updates.periodic.window`, from every fragment in merge order.
        windows: Vec<WindowSpec>,
    },
    /// `fleet_lock`: when a FleetLock server grants a reboot slot.
    FleetLock {
        /// `updates.fleet_lock.base_url`. May hold the [`URL_VARIABLES`].
        base_url: String,
    },
}

impl Strategy {
    /// The name used in `updates.strategy`.
    pub fn label(&self) -> &'static str {
        match self {
            Strategy::Immediate => "immediate",
            Strategy::Periodic { .. } => "periodic",
            Strategy::FleetLock { .. } => "fleet_lock",
        }
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A directory or fragment could not be read.
    #[error("read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A fragment is not valid TOML, or a setting is unknown, mistyped, invalid or missing.
    #[error(transparent)]
    Invalid(#[from] InvalidSetting),
}

/// An invalid setting: where (file, line and column when known) and which key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct InvalidSetting {
    /// The fragment, or none when a required key is set nowhere.
    pub file: Option<PathBuf>,
    /// 1-based line and column in `file`.
    pub position: Option<(usize, usize)>,
    /// The dotted key path (`updates.periodic.window[1].days`); none for TOML syntax errors.
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for InvalidSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{}", file.display())?;
            if let Some((line, column)) = self.position {
                write!(f, ":{line}:{column}")?;
            }
            f.write_str(": ")?;
        }
        if let Some(key) = &self.key {
            write!(f, "{key}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Read, merge and validate the fragments of `dirs` (lowest priority first; usually
/// [`default_dirs`]).
pub fn load(dirs: &[PathBuf]) -> Result<AgentConfig, ConfigError> {
    let mut merged = Merged::default();
    let mut fragments = Vec::new();
    for path in scan(dirs)?.into_values() {
        let text = fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        let fragment = parse_fragment(&path, &text)?;
        merged.merge(
            fragment,
            &Source {
                path: &path,
                text: &text,
            },
        );
        fragments.push(path);
    }
    let mut config = merged.validate()?;
    config.fragments = fragments;
    Ok(config)
}

/// The fragments to read, by file name (so in merge order), as liboverdrop's `scan`.
fn scan(dirs: &[PathBuf]) -> Result<BTreeMap<OsString, PathBuf>, ConfigError> {
    let read_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ConfigError::Read { path, source }
    };
    let mut found = BTreeMap::new();
    for dir in dirs {
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
            Err(error) => return Err(read_error(dir)(error)),
        };
        for entry in entries {
            let entry = entry.map_err(read_error(dir))?;
            let name = entry.file_name();
            let path = entry.path();
            if name.as_encoded_bytes().starts_with(b".")
                || path.extension() != Some(OsStr::new("toml"))
            {
                continue;
            }
            let file_type = entry.file_type().map_err(read_error(&path))?;
            if file_type.is_file() {
                found.insert(name, path);
            } else if file_type.is_symlink()
                && fs::read_link(&path).is_ok_and(|target| target == Path::new("/dev/null"))
            {
                found.remove(&name);
            }
        }
    }
    Ok(found)
}

// The fragment: Zincati's configuration format (`src/config/fragments.rs`) plus cairn's
// keys. Every key is optional; values that are checked after merging keep their span.

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Fragment {
    agent: Option<AgentFragment>,
    cincinnati: Option<CincinnatiFragment>,
    identity: Option<IdentityFragment>,
    updates: Option<UpdatesFragment>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentFragment {
    timing: Option<TimingFragment>,
    reboot_command: Option<Spanned<Vec<String>>>,
    metrics: Option<MetricsFragment>,
    state_dir: Option<Spanned<String>>,
    stream: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TimingFragment {
    steady_interval_secs: Option<Spanned<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricsFragment {
    listen: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CincinnatiFragment {
    base_url: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IdentityFragment {
    group: Option<Spanned<String>>,
    node_uuid: Option<Spanned<String>>,
    rollout_wariness: Option<Spanned<f64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdatesFragment {
    enabled: Option<Spanned<bool>>,
    allow_downgrade: Option<Spanned<bool>>,
    strategy: Option<Spanned<String>>,
    max_version: Option<Spanned<String>>,
    fleet_lock: Option<FleetLockFragment>,
    periodic: Option<PeriodicFragment>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FleetLockFragment {
    base_url: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PeriodicFragment {
    time_zone: Option<Spanned<String>>,
    window: Option<Vec<Spanned<WindowFragment>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WindowFragment {
    days: Spanned<Vec<String>>,
    start_time: Spanned<String>,
    length_minutes: Spanned<u64>,
}

fn parse_fragment(path: &Path, text: &str) -> Result<Fragment, InvalidSetting> {
    let deserializer =
        toml::Deserializer::parse(text).map_err(|error| toml_error(path, text, None, &error))?;
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let key = key_path(error.path());
        toml_error(path, text, Some(key), error.inner())
    })
}

fn toml_error(
    path: &Path,
    text: &str,
    key: Option<String>,
    error: &toml::de::Error,
) -> InvalidSetting {
    // serde speaks of fields; a configuration has keys.
    let message = error.message().trim_end();
    let message = match message.strip_prefix("unknown field") {
        Some(rest) => format!("unknown key{rest}"),
        None => match message.strip_prefix("missing field") {
            Some(rest) => format!("missing key{rest}"),
            None => message.to_string(),
        },
    };
    InvalidSetting {
        file: Some(path.to_path_buf()),
        position: error.span().map(|span| line_column(text, span.start)),
        key: key.filter(|key| !key.is_empty()),
        message,
    }
}

/// The dotted key path of a serde path, without the private keys of `Spanned`.
fn key_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut key = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => key.push_str(&format!("[{index}]")),
            Segment::Map { key: name } | Segment::Enum { variant: name } => {
                if name.starts_with("$__serde_spanned") {
                    continue;
                }
                if !key.is_empty() {
                    key.push('.');
                }
                key.push_str(name);
            }
            Segment::Unknown => {
                if !key.is_empty() {
                    key.push('.');
                }
                key.push('?');
            }
        }
    }
    key
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    let line = before.matches('\n').count() + 1;
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// The fragment being merged, for origins.
struct Source<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Source<'_> {
    fn origin(&self, span: Range<usize>) -> Origin {
        Origin {
            file: self.path.to_path_buf(),
            position: line_column(self.text, span.start),
        }
    }
}

/// Where a merged value was set.
#[derive(Debug, Clone)]
struct Origin {
    file: PathBuf,
    position: (usize, usize),
}

impl Origin {
    fn error(&self, key: &str, message: impl Into<String>) -> InvalidSetting {
        InvalidSetting {
            file: Some(self.file.clone()),
            position: Some(self.position),
            key: Some(key.to_string()),
            message: message.into(),
        }
    }
}

/// A merged value and where it was set.
#[derive(Debug)]
struct Setting<T> {
    value: T,
    origin: Origin,
}

/// A window entry and its key in its fragment (`updates.periodic.window[1]`).
#[derive(Debug)]
struct WindowSetting {
    key: String,
    days: Setting<Vec<String>>,
    start_time: Setting<String>,
    length_minutes: Setting<u64>,
}

/// The fragments merged so far, not yet validated (Zincati's `ConfigInput`).
#[derive(Debug, Default)]
struct Merged {
    steady_interval_secs: Option<Setting<u64>>,
    reboot_command: Option<Setting<Vec<String>>>,
    metrics_listen: Option<Setting<String>>,
    state_dir: Option<Setting<String>>,
    stream: Option<Setting<String>>,
    cincinnati_base_url: Option<Setting<String>>,
    group: Option<Setting<String>>,
    node_uuid: Option<Setting<String>>,
    rollout_wariness: Option<Setting<f64>>,
    enabled: Option<Setting<bool>>,
    allow_downgrade: Option<Setting<bool>>,
    strategy: Option<Setting<String>>,
    max_version: Option<Setting<String>>,
    fleet_lock_base_url: Option<Setting<String>>,
    time_zone: Option<Setting<String>>,
    windows: Vec<WindowSetting>,
}

/// Later wins: replace `slot` when the fragment sets the key.
fn set<T>(slot: &mut Option<Setting<T>>, value: Option<Spanned<T>>, source: &Source<'_>) {
    if let Some(value) = value {
        *slot = Some(setting(value, source));
    }
}

fn setting<T>(value: Spanned<T>, source: &Source<'_>) -> Setting<T> {
    let origin = source.origin(value.span());
    Setting {
        value: value.into_inner(),
        origin,
    }
}

impl Merged {
    fn merge(&mut self, fragment: Fragment, source: &Source<'_>) {
        if let Some(agent) = fragment.agent {
            if let Some(timing) = agent.timing {
                set(
                    &mut self.steady_interval_secs,
                    timing.steady_interval_secs,
                    source,
                );
            }
            set(&mut self.reboot_command, agent.reboot_command, source);
            if let Some(metrics) = agent.metrics {
                set(&mut self.metrics_listen, metrics.listen, source);
            }
            set(&mut self.state_dir, agent.state_dir, source);
            set(&mut self.stream, agent.stream, source);
        }
        if let Some(cincinnati) = fragment.cincinnati {
            set(&mut self.cincinnati_base_url, cincinnati.base_url, source);
        }
        if let Some(identity) = fragment.identity {
            set(&mut self.group, identity.group, source);
            set(&mut self.node_uuid, identity.node_uuid, source);
            set(
                &mut self.rollout_wariness,
                identity.rollout_wariness,
                source,
            );
        }
        if let Some(updates) = fragment.updates {
            set(&mut self.enabled, updates.enabled, source);
            set(&mut self.allow_downgrade, updates.allow_downgrade, source);
            set(&mut self.strategy, updates.strategy, source);
            set(&mut self.max_version, updates.max_version, source);
            if let Some(fleet_lock) = updates.fleet_lock {
                set(&mut self.fleet_lock_base_url, fleet_lock.base_url, source);
            }
            if let Some(periodic) = updates.periodic {
                set(&mut self.time_zone, periodic.time_zone, source);
                // Appended, never replaced: Zincati collects the windows of every fragment.
                for (index, window) in periodic.window.into_iter().flatten().enumerate() {
                    let window = window.into_inner();
                    self.windows.push(WindowSetting {
                        key: format!("updates.periodic.window[{index}]"),
                        days: setting(window.days, source),
                        start_time: setting(window.start_time, source),
                        length_minutes: setting(window.length_minutes, source),
                    });
                }
            }
        }
    }

    fn validate(mut self) -> Result<AgentConfig, InvalidSetting> {
        Ok(AgentConfig {
            agent: self.agent_settings()?,
            cincinnati: self.cincinnati_settings()?,
            identity: self.identity_settings()?,
            updates: self.update_settings()?,
            fragments: Vec::new(),
        })
    }

    fn agent_settings(&mut self) -> Result<AgentSettings, InvalidSetting> {
        Ok(AgentSettings {
            steady_interval_secs: match self.steady_interval_secs.take() {
                None => NonZeroU64::new(DEFAULT_STEADY_INTERVAL_SECS).unwrap_or(NonZeroU64::MIN),
                Some(Setting { value, origin }) => NonZeroU64::new(value).ok_or_else(|| {
                    origin.error(
                        "agent.timing.steady_interval_secs",
                        "must be at least 1 second",
                    )
                })?,
            },
            reboot_command: match self.reboot_command.take() {
                None => DEFAULT_REBOOT_COMMAND.map(String::from).to_vec(),
                Some(Setting { value, origin }) => {
                    if value.first().is_none_or(|program| program.is_empty()) {
                        return Err(origin.error(
                            "agent.reboot_command",
                            "empty command: expected a program and its arguments, \
                             e.g. [\"systemctl\", \"reboot\"]",
                        ));
                    }
                    value
                }
            },
            metrics_listen: self
                .metrics_listen
                .take()
                .map(|Setting { value, origin }| {
                    value.parse::<SocketAddr>().map_err(|_| {
                        origin.error(
                            "agent.metrics.listen",
                            format!(
                                "invalid address {value:?}: expected IP:port, \
                                 e.g. \"127.0.0.1:9100\" or \"[::1]:9100\""
                            ),
                        )
                    })
                })
                .transpose()?,
            state_dir: match self.state_dir.take() {
                None => PathBuf::from(DEFAULT_STATE_DIR),
                Some(Setting { value, origin }) => {
                    if !value.starts_with('/') {
                        return Err(origin.error(
                            "agent.state_dir",
                            format!("{value:?} is not an absolute path"),
                        ));
                    }
                    PathBuf::from(value)
                }
            },
            stream: self
                .stream
                .take()
                .map(|Setting { value, origin }| {
                    let valid = !value.is_empty()
                        && value
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
                    if valid {
                        Ok(value)
                    } else {
                        Err(origin.error(
                            "agent.stream",
                            format!(
                                "invalid stream name {value:?}: \
                                 expected one or more of a-z, A-Z, 0-9, '.', '_', '-'"
                            ),
                        ))
                    }
                })
                .transpose()?,
        })
    }

    fn cincinnati_settings(&mut self) -> Result<CincinnatiSettings, InvalidSetting> {
        match self.cincinnati_base_url.take() {
            None => Err(InvalidSetting {
                file: None,
                position: None,
                key: Some("cincinnati.base_url".into()),
                message: "not set: the agent needs a graph server; set it in a fragment, e.g. \
                          [cincinnati] base_url = \"https://updates.coreos.fedoraproject.org\""
                    .into(),
            }),
            Some(Setting { value, origin }) => {
                check_base_url(&value)
                    .map_err(|problem| origin.error("cincinnati.base_url", problem))?;
                Ok(CincinnatiSettings { base_url: value })
            }
        }
    }

    fn identity_settings(&mut self) -> Result<IdentitySettings, InvalidSetting> {
        Ok(IdentitySettings {
            group: match self.group.take() {
                Some(Setting { value, origin }) if !value.is_empty() => {
                    let valid = value
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
                    if !valid {
                        return Err(origin.error(
                            "identity.group",
                            format!(
                                "invalid group {value:?}: \
                                 expected one or more of a-z, A-Z, 0-9, '.', '-'"
                            ),
                        ));
                    }
                    value
                }
                _ => DEFAULT_GROUP.to_string(),
            },
            node_uuid: match self.node_uuid.take() {
                Some(Setting { value, origin }) if !value.is_empty() => {
                    let id = identity::parse_id128(&value).ok_or_else(|| {
                        origin.error(
                            "identity.node_uuid",
                            format!(
                                "invalid node UUID {value:?}: \
                                 expected 32 hexadecimal digits, dashes allowed"
                            ),
                        )
                    })?;
                    Some(identity::format_id128(&id))
                }
                _ => None,
            },
            rollout_wariness: self
                .rollout_wariness
                .take()
                .map(|Setting { value, origin }| {
                    if (0.0..=1.0).contains(&value) {
                        Ok(value)
                    } else {
                        Err(origin.error(
                            "identity.rollout_wariness",
                            format!(
                                "{value} is out of range: expected 0.0 (eager) to 1.0 (cautious)"
                            ),
                        ))
                    }
                })
                .transpose()?,
        })
    }

    fn update_settings(&mut self) -> Result<UpdateSettings, InvalidSetting> {
        let strategy = match self.strategy.take() {
            Some(Setting { value, origin }) if !value.is_empty() => match value.as_str() {
                "immediate" => Strategy::Immediate,
                "fleet_lock" => {
                    let Some(Setting {
                        value: base_url,
                        origin: url_origin,
                    }) = self.fleet_lock_base_url.take()
                    else {
                        return Err(origin.error(
                            "updates.fleet_lock.base_url",
                            "not set, and the fleet_lock strategy needs it: \
                             set the FleetLock server's URL",
                        ));
                    };
                    check_base_url(&base_url).map_err(|problem| {
                        url_origin.error("updates.fleet_lock.base_url", problem)
                    })?;
                    Strategy::FleetLock { base_url }
                }
                "periodic" => periodic_strategy(
                    self.time_zone.take(),
                    std::mem::take(&mut self.windows),
                    &origin,
                )?,
                other => {
                    let message = format!(
                        "unknown strategy {other:?}, expected immediate, periodic or fleet_lock"
                    );
                    return Err(origin.error("updates.strategy", message));
                }
            },
            _ => Strategy::Immediate,
        };

        Ok(UpdateSettings {
            enabled: self.enabled.as_ref().is_none_or(|setting| setting.value),
            allow_downgrade: self
                .allow_downgrade
                .as_ref()
                .is_some_and(|setting| setting.value),
            strategy,
            max_version: self
                .max_version
                .take()
                .map(|Setting { value, origin }| {
                    if value.is_empty() || value.chars().any(char::is_whitespace) {
                        Err(origin.error(
                            "updates.max_version",
                            format!(
                                "invalid version {value:?}: \
                                 expected a version such as \"41.20250101.3.0\""
                            ),
                        ))
                    } else {
                        Ok(value)
                    }
                })
                .transpose()?,
        })
    }
}

/// The `periodic` strategy, its entries and time zone checked by [`Windows::new`] (which
/// looks the zone up, as Zincati does at startup) and any error traced back to its fragment.
fn periodic_strategy(
    time_zone: Option<Setting<String>>,
    windows: Vec<WindowSetting>,
    chosen_at: &Origin,
) -> Result<Strategy, InvalidSetting> {
    let (time_zone, time_zone_origin) = match time_zone {
        Some(Setting { value, origin }) => (value, origin),
        None => (DEFAULT_TIME_ZONE.to_string(), chosen_at.clone()),
    };
    let specs: Vec<WindowSpec> = windows
        .iter()
        .map(|window| WindowSpec {
            days: window.days.value.clone(),
            start_time: window.start_time.value.clone(),
            length_minutes: window.length_minutes.value,
        })
        .collect();
    match Windows::new(&specs, &time_zone) {
        Ok(_) => {}
        Err(WindowError::TimeZone { name, problem }) => {
            return Err(time_zone_origin
                .error("updates.periodic.time_zone", format!("{name:?}: {problem}")))
        }
        Err(WindowError::Field {
            window,
            field,
            value,
            problem,
        }) => {
            // `window` counts from 1 over the merged entries, as `windows` holds them.
            let Some(entry) = window.checked_sub(1).and_then(|index| windows.get(index)) else {
                return Err(chosen_at.error("updates.periodic.window", problem));
            };
            let origin = match field {
                WindowField::Days => &entry.days.origin,
                WindowField::StartTime => &entry.start_time.origin,
                WindowField::LengthMinutes => &entry.length_minutes.origin,
            };
            return Err(origin.error(
                &format!("{}.{field}", entry.key),
                format!("{value}: {problem}"),
            ));
        }
    }
    // Zincati refuses a schedule of length zero.
    if specs.is_empty() {
        return Err(chosen_at.error(
            "updates.periodic.window",
            "no maintenance window, and the periodic strategy needs one: add a \
             [[updates.periodic.window]] with days, start_time and length_minutes",
        ));
    }
    Ok(Strategy::Periodic {
        time_zone,
        windows: specs,
    })
}

/// An `http`/`https` URL with a host, whose `${…}` are [`URL_VARIABLES`].
fn check_base_url(url: &str) -> Result<(), String> {
    if url.is_empty() {
        return Err("empty URL".into());
    }
    // Substitute the variables the way Zincati's envsubst does, with a placeholder value.
    let mut expanded = String::with_capacity(url.len());
    let mut rest = url;
    while let Some(start) = rest.find("${") {
        expanded.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("invalid URL {url:?}: unterminated \"${{\""))?;
        let name = &after[..end];
        if !URL_VARIABLES.contains(&name) {
            return Err(format!(
                "invalid URL {url:?}: unknown variable ${{{name}}}, \
                 expected one of ${{basearch}}, ${{group}}, ${{platform}}, ${{stream}}"
            ));
        }
        expanded.push('x');
        rest = &after[end + 1..];
    }
    expanded.push_str(rest);

    let invalid = |why: &str| format!("invalid URL {url:?}: {why}");
    if expanded
        .chars()
        .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(invalid("contains whitespace"));
    }
    let (scheme, after_scheme) = expanded
        .split_once("://")
        .ok_or_else(|| invalid("expected http:// or https://"))?;
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err(invalid("expected an http or https URL"));
    }
    let authority = after_scheme
        .split(['/', '?', '#'])
        .next()
        .unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    let (host, port) = if let Some(bracketed) = host_port.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or_else(|| invalid("unterminated IPv6 address"))?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or_else(|| invalid("bad port"))?),
        };
        (host, port)
    } else {
        match host_port.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    };
    if host.is_empty() {
        return Err(invalid("no host"));
    }
    if let Some(port) = port {
        if !port.is_empty() && port.parse::<u16>().is_err() {
            return Err(invalid("bad port"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        for good in [
            "https://updates.coreos.fedoraproject.org",
            "http://cincinnati.example.com:80/",
            "https://example.com/${stream}/${basearch}/?group=${group}&p=${platform}",
            "http://[::1]:8080/",
            "HTTPS://user@example.com",
        ] {
            assert_eq!(check_base_url(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "example.com",
            "ftp://example.com/",
            "https:///path",
            "https://example.com:99999/",
            "https://exa mple.com/",
            "https://example.com/${arch}/",
            "https://example.com/${stream",
            "http://[::1/",
        ] {
            assert!(check_base_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn positions() {
        assert_eq!(line_column("a\nbé = 1\n", 5), (2, 3));
        assert_eq!(line_column("", 0), (1, 1));
    }
}
