//! `cairn provision apply`: a config applied to a root at first boot — fetched and
//! verified first, then switched in all or nothing, exactly once.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use cairn_apply::{apply_config, ApplyOptions, Outcome};
use clap::{Args, Subcommand};

#[derive(Args)]
pub struct ProvisionArgs {
    #[command(subcommand)]
    verb: Verb,
}

#[derive(Subcommand)]
enum Verb {
    /// Apply an Ignition JSON (spec 3.0–3.6) or YAML config to a root: users and groups,
    /// SSH keys, files, directories, links, systemd units. All or nothing, exactly once.
    Apply {
        /// The root to provision.
        #[arg(long, default_value = "/")]
        root: PathBuf,
        /// Apply again over an earlier run; the result is that of one run.
        #[arg(long)]
        force: bool,
        /// Leave out storage devices (disks, partitions, RAID, filesystems, LUKS)
        /// instead of refusing a config that asks for them.
        #[arg(long)]
        skip_storage: bool,
        /// Refuse any http(s) resource (config, file, CA bundle) without a
        /// verification hash.
        #[arg(long)]
        require_verification: bool,
        /// The resolved, self-contained config: used instead of fetching when present,
        /// written before the switch when not (so a rerun needs no network).
        #[arg(long)]
        cache: Option<PathBuf>,
        /// Seconds to wait for response headers when the config sets no timeout.
        #[arg(long, default_value_t = 30)]
        http_timeout: u64,
        /// The config file, or - for stdin.
        config: String,
    },
}

pub fn run(args: ProvisionArgs) -> Result<i32> {
    match args.verb {
        Verb::Apply {
            root,
            force,
            skip_storage,
            require_verification,
            cache,
            http_timeout,
            config,
        } => {
            let input = crate::config_cmd::read_input(&config)?;
            let mut options = ApplyOptions {
                force,
                skip_storage,
                require_verification,
                cache,
                ..ApplyOptions::default()
            };
            options.fetch.response_headers_timeout = Some(Duration::from_secs(http_timeout));
            let outcome = apply_config(&root, &input, &options).with_context(|| {
                format!(
                    "provisioning {} failed; nothing was changed",
                    root.display()
                )
            })?;
            match outcome {
                Outcome::Applied { changes, warnings } => {
                    for w in warnings {
                        eprintln!("warning: {w}");
                    }
                    println!("provisioned {}: {changes} changes", root.display());
                }
                Outcome::AlreadyProvisioned { date } => {
                    println!(
                        "{} was provisioned on {date}; nothing to do (--force applies again)",
                        root.display()
                    );
                }
            }
            Ok(0)
        }
    }
}
