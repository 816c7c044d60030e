//! `cairn lock`: the FleetLock reboot-coordination service (`serve`), and the operator's
//! view of it through the admin API (`status`, `release`, `slots`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use cairn_lock::{EmbeddedStore, EtcdOptions, EtcdStore, GroupName, Store};
use cairn_lock_server::{GroupReport, GroupSettings, GroupsReport, Settings};
use clap::{Args, Subcommand};
use serde::Deserialize;

#[derive(Args)]
pub struct LockArgs {
    #[command(subcommand)]
    verb: Verb,
}

/// Where the admin API is and its token.
#[derive(Args)]
struct Admin {
    /// The lock service, e.g. http://127.0.0.1:8082
    #[arg(long, default_value = "http://127.0.0.1:8082")]
    url: String,
    /// The admin token (or CAIRN_LOCK_TOKEN, or --token-file).
    #[arg(long, env = "CAIRN_LOCK_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// A file holding the admin token.
    #[arg(long, conflicts_with = "token")]
    token_file: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Verb {
    /// Serve FleetLock v1 (`POST /v1/pre-reboot`, `POST /v1/steady-state`), the admin API
    /// and `/metrics`.
    Serve {
        #[arg(long, default_value = "127.0.0.1:8082")]
        listen: SocketAddr,
        /// TOML: `admin_token_file`; per group `[groups.NAME]` with `slots`,
        /// `lease_seconds`, `client_token_file` (the group `default` has 1 slot unless set);
        /// `[etcd]` with `endpoints` and TLS/auth options to keep the groups in etcd.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Where the embedded store keeps its journal (unused with `[etcd]`).
        #[arg(long, default_value = "/var/lib/cairn/lock")]
        data_dir: PathBuf,
    },
    /// Print every group's slots and holders, in plain words.
    Status {
        #[command(flatten)]
        admin: Admin,
        /// Print the admin API's JSON instead.
        #[arg(long)]
        json: bool,
    },
    /// Free the reboot slot a machine holds (e.g. one that will never come back).
    Release {
        #[command(flatten)]
        admin: Admin,
        group: String,
        id: String,
    },
    /// Set the reboot slots of a group, overriding the configuration; `configured` goes back.
    Slots {
        #[command(flatten)]
        admin: Admin,
        group: String,
        /// A number of slots, or `configured`.
        slots: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    admin_token_file: Option<PathBuf>,
    #[serde(default)]
    groups: BTreeMap<String, Group>,
    /// Keep the groups in etcd (as Airlock does) instead of the embedded store.
    etcd: Option<Etcd>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Etcd {
    endpoints: Vec<String>,
    prefix: Option<String>,
    ca_file: Option<PathBuf>,
    client_cert_file: Option<PathBuf>,
    client_key_file: Option<PathBuf>,
    username: Option<String>,
    password_file: Option<PathBuf>,
    request_timeout_seconds: Option<u64>,
}

/// Where the groups are kept.
enum Backend {
    Embedded,
    Etcd(EtcdOptions),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Group {
    slots: u64,
    lease_seconds: Option<u64>,
    client_token_file: Option<PathBuf>,
}

/// A secret from a file: its first line, which must not be empty.
fn read_token(path: &Path, config: &Path, key: &str) -> Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: {key}: read {}", config.display(), path.display()))?;
    let token = text.lines().next().unwrap_or_default().trim().to_string();
    if token.is_empty() {
        anyhow::bail!("{}: {key}: {} is empty", config.display(), path.display());
    }
    Ok(token)
}

/// The settings and the backend from a config file; errors name the file, line and key.
fn settings(path: Option<&Path>) -> Result<(Settings, Backend)> {
    let mut settings = Settings::default();
    let Some(path) = path else {
        return Ok((settings, Backend::Embedded));
    };
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    let config: Config =
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    if let Some(file) = &config.admin_token_file {
        settings.admin_token = Some(read_token(file, path, "admin_token_file")?);
    }
    for (name, group) in config.groups {
        name.parse::<GroupName>().map_err(|_| {
            anyhow::anyhow!(
                "{}: group {name:?} does not match ^[a-zA-Z0-9.-]+$",
                path.display()
            )
        })?;
        if group.slots == 0 {
            anyhow::bail!(
                "{}: groups.{name}.slots is 0: no machine could ever reboot",
                path.display()
            );
        }
        if group.lease_seconds == Some(0) {
            anyhow::bail!(
                "{}: groups.{name}.lease_seconds is 0: every slot would be freed at once; leave it out to keep slots until given back",
                path.display()
            );
        }
        let client_token = match &group.client_token_file {
            Some(file) => Some(read_token(
                file,
                path,
                &format!("groups.{name}.client_token_file"),
            )?),
            None => None,
        };
        settings.groups.insert(
            name,
            GroupSettings {
                slots: group.slots,
                lease: group.lease_seconds.map(Duration::from_secs),
                client_token,
            },
        );
    }
    let backend = match config.etcd {
        None => Backend::Embedded,
        Some(etcd) => Backend::Etcd(etcd_options(etcd, path)?),
    };
    Ok((settings, backend))
}

fn etcd_options(etcd: Etcd, config: &Path) -> Result<EtcdOptions> {
    if etcd.endpoints.is_empty() {
        anyhow::bail!("{}: etcd.endpoints is empty", config.display());
    }
    for endpoint in &etcd.endpoints {
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            anyhow::bail!(
                "{}: etcd.endpoints: {endpoint:?} is not an http:// or https:// URL",
                config.display()
            );
        }
    }
    if etcd.client_cert_file.is_some() != etcd.client_key_file.is_some() {
        anyhow::bail!(
            "{}: etcd.client_cert_file and etcd.client_key_file go together",
            config.display()
        );
    }
    if etcd.username.is_some() != etcd.password_file.is_some() {
        anyhow::bail!(
            "{}: etcd.username and etcd.password_file go together",
            config.display()
        );
    }
    let password = match &etcd.password_file {
        Some(file) => Some(read_token(file, config, "etcd.password_file")?),
        None => None,
    };
    let defaults = EtcdOptions::default();
    Ok(EtcdOptions {
        endpoints: etcd.endpoints,
        prefix: etcd.prefix.unwrap_or(defaults.prefix),
        ca_file: etcd.ca_file,
        client_cert: etcd.client_cert_file,
        client_key: etcd.client_key_file,
        username: etcd.username,
        password,
        request_timeout: etcd
            .request_timeout_seconds
            .map_or(defaults.request_timeout, Duration::from_secs),
    })
}

pub fn run(args: LockArgs) -> Result<i32> {
    match args.verb {
        Verb::Serve {
            listen,
            config,
            data_dir,
        } => serve(listen, config.as_deref(), &data_dir),
        Verb::Status { admin, json } => {
            let report: GroupsReport =
                serde_json::from_slice(&admin.call(reqwest::Method::GET, &["groups"], None)?)
                    .context("the admin API's answer")?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", describe(&report.groups, now()));
            }
            Ok(0)
        }
        Verb::Release { admin, group, id } => {
            let path = ["groups", group.as_str(), "holders", id.as_str()];
            let answer: serde_json::Value =
                serde_json::from_slice(&admin.call(reqwest::Method::DELETE, &path, None)?)?;
            if answer["released"] == true {
                println!("freed the reboot slot {id} held in group {group}");
            } else {
                println!("{id} held no reboot slot in group {group}: nothing to do");
            }
            Ok(0)
        }
        Verb::Slots {
            admin,
            group,
            slots,
        } => {
            let slots =
                match slots.as_str() {
                    "configured" => None,
                    n => Some(n.parse::<u64>().with_context(|| {
                        format!("slots {n:?}: expected a number or 'configured'")
                    })?),
                };
            let body = serde_json::json!({ "slots": slots });
            let path = ["groups", group.as_str(), "slots"];
            let report: GroupReport =
                serde_json::from_slice(&admin.call(reqwest::Method::PUT, &path, Some(body))?)?;
            print!("{}", describe(&[report], now()));
            Ok(0)
        }
    }
}

fn serve(listen: SocketAddr, config: Option<&Path>, data_dir: &Path) -> Result<i32> {
    let (settings, backend) = settings(config)?;
    match backend {
        Backend::Embedded => {
            std::fs::create_dir_all(data_dir)
                .with_context(|| format!("create {}", data_dir.display()))?;
            let store = EmbeddedStore::open(data_dir)?;
            serve_on(
                listen,
                settings,
                store,
                format!("state in {}", data_dir.display()),
            )
        }
        Backend::Etcd(options) => {
            let endpoints = options.endpoints.join(", ");
            let prefix = options.prefix.clone();
            let store = EtcdStore::connect(options)
                .map_err(|e| anyhow::anyhow!("{}", cairn_store::error_chain(&e)))?;
            serve_on(
                listen,
                settings,
                store,
                format!("state in etcd at {endpoints} under {prefix}"),
            )
        }
    }
}

fn serve_on<S: Store + 'static>(
    listen: SocketAddr,
    settings: Settings,
    store: S,
    state: String,
) -> Result<i32> {
    let groups: Vec<String> = settings
        .groups
        .iter()
        .map(|(name, group)| format!("{name} ({})", group.slots))
        .collect();
    let admin = if settings.admin_token.is_some() {
        "admin API on"
    } else {
        "admin API off (no admin_token_file)"
    };
    let service = cairn_lock_server::Service::new(store, settings);
    cairn_http::serve_until_interrupted(
        listen,
        |addr| {
            format!(
                "serving FleetLock on http://{addr}/ for groups {}; {admin}; {state}",
                groups.join(", "),
            )
        },
        |listener, interrupted| cairn_lock_server::serve(listener, service, interrupted),
    )?;
    Ok(0)
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Admin {
    /// One admin API call; the body of a 200, else an error with the service's reason.
    fn call(
        &self,
        method: reqwest::Method,
        segments: &[&str],
        body: Option<serde_json::Value>,
    ) -> Result<Vec<u8>> {
        let token = match (&self.token, &self.token_file) {
            (Some(token), _) => token.clone(),
            (None, Some(file)) => std::fs::read_to_string(file)
                .with_context(|| format!("read {}", file.display()))?
                .trim()
                .to_string(),
            (None, None) => {
                anyhow::bail!(
                    "the admin API needs a token: --token, --token-file or CAIRN_LOCK_TOKEN"
                )
            }
        };
        // Each segment is percent-encoded: an id with `#`, `?` or `/` names that id, not another.
        let mut url =
            reqwest::Url::parse(&self.url).with_context(|| format!("--url {:?}", self.url))?;
        url.path_segments_mut()
            .map_err(|()| anyhow::anyhow!("--url {:?} cannot have a path", self.url))?
            .pop_if_empty()
            .extend(["v1", "admin"])
            .extend(segments);
        let url = url.to_string();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?;
            let mut request = client.request(method, &url).bearer_auth(token);
            if let Some(body) = body {
                request = request
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.to_string());
            }
            let response = request
                .send()
                .await
                .with_context(|| format!("reach the lock service at {url}"))?;
            let status = response.status();
            let bytes = response.bytes().await?.to_vec();
            if !status.is_success() {
                let reason: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
                anyhow::bail!(
                    "{url}: {status}: {}",
                    reason["value"].as_str().map_or_else(
                        || String::from_utf8_lossy(&bytes).into_owned(),
                        str::to_string
                    )
                );
            }
            Ok(bytes)
        })
    }
}

/// The groups in plain words, one line per group and one per holder.
pub(crate) fn describe(groups: &[GroupReport], now: u64) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    for group in groups {
        let taken = group.holders.len() as u64;
        let _ = write!(out, "group {}: ", group.group);
        if let Some(error) = &group.error {
            let _ = writeln!(out, "could not be read: {error}");
            continue;
        }
        let slots = match group.slots {
            1 => "1 slot".to_string(),
            n => format!("{n} slots"),
        };
        let _ = match (taken, group.slots) {
            (0, 1) => write!(out, "its 1 slot is free"),
            (0, _) => write!(out, "all {slots} free"),
            _ => write!(out, "{taken} of {slots} taken"),
        };
        if let Some(slots) = group.slots_override {
            let configured = group
                .configured_slots
                .map_or("none".to_string(), |n| n.to_string());
            let _ = write!(
                out,
                " (set to {slots} by an operator; configured {configured})"
            );
        }
        if group.configured_slots.is_none() {
            let _ = write!(out, " (not configured: its clients are refused)");
        }
        if let Some(lease) = group.lease_seconds {
            let _ = write!(
                out,
                "; a slot is freed after {} if not given back",
                duration(lease)
            );
        }
        let _ = writeln!(out);
        for holder in &group.holders {
            let _ = match holder.since {
                Some(since) => writeln!(
                    out,
                    "  {} holds a slot since {} ({} ago)",
                    holder.id,
                    cairn_time::format_minutes(since as i64),
                    duration(now.saturating_sub(since))
                ),
                None => writeln!(out, "  {} holds a slot (since an unknown time)", holder.id),
            };
        }
    }
    out
}

/// `45 s`, `12 min`, `3 h 5 min`, `2 days 4 h`.
fn duration(seconds: u64) -> String {
    match seconds {
        0..60 => format!("{seconds} s"),
        60..3600 => format!("{} min", seconds / 60),
        3600..86400 => format!("{} h {} min", seconds / 3600, seconds % 3600 / 60),
        _ => format!("{} days {} h", seconds / 86400, seconds % 86400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_lock_server::Holder;

    #[test]
    fn status_in_plain_words() {
        let now = 1_764_057_600; // 2025-11-25 08:00 UTC
        let groups = vec![
            GroupReport {
                group: "default".into(),
                slots: 2,
                configured_slots: Some(1),
                slots_override: Some(2),
                lease_seconds: Some(7200),
                client_token: false,
                holders: vec![
                    Holder {
                        id: "node-a".into(),
                        since: Some(now - 720),
                    },
                    Holder {
                        id: "node-b".into(),
                        since: None,
                    },
                ],
                error: None,
            },
            GroupReport {
                group: "workers".into(),
                slots: 3,
                configured_slots: Some(3),
                slots_override: None,
                lease_seconds: None,
                client_token: true,
                holders: vec![],
                error: None,
            },
        ];
        assert_eq!(
            describe(&groups, now),
            "group default: 2 of 2 slots taken (set to 2 by an operator; configured 1); \
             a slot is freed after 2 h 0 min if not given back\n  \
             node-a holds a slot since 2025-11-25 07:48 UTC (12 min ago)\n  \
             node-b holds a slot (since an unknown time)\n\
             group workers: all 3 slots free\n"
        );
    }
}
