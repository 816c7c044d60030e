//! `cairn lock serve`: the FleetLock reboot-coordination service, on the embedded store
//! under `--data-dir`, with reboot slots per group from a TOML config.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use cairn_lock::{EmbeddedStore, GroupName};
use clap::{Args, Subcommand};
use serde::Deserialize;

#[derive(Args)]
pub struct LockArgs {
    #[command(subcommand)]
    verb: Verb,
}

#[derive(Subcommand)]
enum Verb {
    /// Serve FleetLock v1: `POST /v1/pre-reboot` and `POST /v1/steady-state`.
    Serve {
        #[arg(long, default_value = "127.0.0.1:8082")]
        listen: SocketAddr,
        /// TOML with `[groups.NAME] slots = N` (the group `default` has 1 slot unless set).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Where the embedded store keeps each group's holders.
        #[arg(long, default_value = "/var/lib/cairn/lock")]
        data_dir: PathBuf,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    groups: BTreeMap<String, Group>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Group {
    slots: u64,
}

/// The groups and their slots from a config file; errors name the file, line and key.
fn settings(path: Option<&Path>) -> Result<cairn_lock_server::Settings> {
    let mut settings = cairn_lock_server::Settings::default();
    let Some(path) = path else {
        return Ok(settings);
    };
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    let config: Config =
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
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
        settings.groups.insert(name, group.slots);
    }
    Ok(settings)
}

pub fn run(args: LockArgs) -> Result<i32> {
    match args.verb {
        Verb::Serve {
            listen,
            config,
            data_dir,
        } => {
            let settings = settings(config.as_deref())?;
            std::fs::create_dir_all(&data_dir)
                .with_context(|| format!("create {}", data_dir.display()))?;
            let store = EmbeddedStore::open(&data_dir)?;
            let groups: Vec<String> = settings
                .groups
                .iter()
                .map(|(name, slots)| format!("{name} ({slots})"))
                .collect();
            let service = cairn_lock_server::Service::new(store, settings);
            cairn_http::serve_until_interrupted(
                listen,
                |addr| {
                    format!(
                        "serving FleetLock on http://{addr}/ for groups {}; state in {}",
                        groups.join(", "),
                        data_dir.display()
                    )
                },
                |listener, interrupted| cairn_lock_server::serve(listener, service, interrupted),
            )?;
            Ok(0)
        }
    }
}
