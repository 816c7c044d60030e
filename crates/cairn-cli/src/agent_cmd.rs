//! `cairn agent`: the on-machine update agent (like Zincati) and the operator's commands.

use std::path::PathBuf;

use anyhow::{Context, Result};
use cairn_agent::daemon::{send_command, Daemon, Paths};
use cairn_sysroot::sysroot::BootSource;
use clap::{Args, Subcommand};

#[derive(Args)]
pub struct AgentArgs {
    #[command(subcommand)]
    verb: Verb,
    #[command(flatten)]
    paths: PathArgs,
}

#[derive(Args)]
struct PathArgs {
    /// Read configuration fragments from these directories instead of /usr/lib, /run and
    /// /etc cairn/agent.d (later wins).
    #[arg(long = "config-dir", global = true)]
    config_dirs: Vec<PathBuf>,
    /// The sysroot.
    #[arg(long, global = true, default_value = "/")]
    root: PathBuf,
    /// Status, control and metrics sockets.
    #[arg(long, global = true, default_value = "/run/cairn/agent")]
    run_dir: PathBuf,
    #[arg(long, global = true, default_value = "/etc/machine-id")]
    machine_id: PathBuf,
    #[arg(long, global = true, default_value = "/run/motd.d")]
    motd_dir: PathBuf,
    /// Read the booted deployment from this kernel command line instead of /proc/cmdline
    /// (test sysroots).
    #[arg(long, global = true, hide = true)]
    boot_cmdline: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Verb {
    /// Run the agent: poll the update graph, stage updates, reboot per the strategy.
    Run,
    /// Print what the agent is doing and why.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Poll the graph once and print what the agent would do, changing nothing.
    Check,
    /// Check now and reboot into an offered update without waiting for a maintenance window.
    UpdateNow,
    /// Stop checking for and applying updates until `resume` (kept across reboots).
    Pause,
    Resume,
}

impl PathArgs {
    fn paths(&self) -> Paths {
        let defaults = Paths::default();
        Paths {
            config_dirs: if self.config_dirs.is_empty() {
                defaults.config_dirs
            } else {
                self.config_dirs.clone()
            },
            root: self.root.clone(),
            machine_id: self.machine_id.clone(),
            run_dir: self.run_dir.clone(),
            motd_dir: self.motd_dir.clone(),
            boot: self.boot_cmdline.as_ref().map(|cmdline| BootSource {
                cmdline: cmdline.clone(),
                boot_id: None,
            }),
        }
    }
}

pub fn run(args: AgentArgs) -> Result<i32> {
    let paths = args.paths.paths();
    match args.verb {
        Verb::Run => {
            let daemon = Daemon::prepare(paths).map_err(anyhow::Error::msg)?;
            daemon.run().map_err(anyhow::Error::msg)?;
            Ok(0)
        }
        Verb::Check => {
            let mut daemon = Daemon::prepare(paths).map_err(anyhow::Error::msg)?;
            for line in daemon.check().map_err(anyhow::Error::msg)? {
                println!("{line}");
            }
            Ok(0)
        }
        Verb::Status { json } => {
            let file = paths.run_dir.join("status.json");
            let text = std::fs::read_to_string(&file).with_context(|| {
                format!("read {} (is `cairn agent run` running?)", file.display())
            })?;
            if json {
                println!("{text}");
            } else {
                let value: serde_json::Value = serde_json::from_str(&text)
                    .with_context(|| format!("{}: not the agent's status", file.display()))?;
                print!("{}", describe(&value));
            }
            Ok(0)
        }
        Verb::UpdateNow | Verb::Pause | Verb::Resume => {
            let command = match args.verb {
                Verb::UpdateNow => "update-now",
                Verb::Pause => "pause",
                _ => "resume",
            };
            let answer = send_command(&paths.run_dir, command).map_err(anyhow::Error::msg)?;
            match answer.as_str() {
                "ok" => println!("{command}: done"),
                "queued" => println!(
                    "{command}: accepted; the agent is busy and applies it when its current step ends"
                ),
                other => anyhow::bail!("the agent answered {other:?}"),
            }
            Ok(0)
        }
    }
}

/// The status file in plain words.
fn describe(value: &serde_json::Value) -> String {
    let status = &value["status"];
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("?").to_string();
    let mut out = String::new();
    out.push_str(&format!(
        "node {} in group {}, rollout wariness {:.3}, strategy {}\n",
        text(&value["node_uuid"]),
        text(&value["group"]),
        value["rollout_wariness"].as_f64().unwrap_or(f64::NAN),
        text(&status["strategy"])
    ));
    if let Some(booted) = status["booted"].as_object() {
        out.push_str(&format!(
            "booted {} ({})\n",
            text(&booted["version"]),
            text(&booted["checksum"])
        ));
    }
    let state = text(&status["state"]["state"]);
    out.push_str(&format!("state: {state}"));
    if let Some(release) = status["state"]["release"].as_object() {
        out.push_str(&format!(" {}", text(&release["version"])));
    }
    out.push('\n');
    if status["paused"] == true {
        out.push_str("paused by an operator (cairn agent resume)\n");
    }
    if let Some(waiting) = status["waiting"].as_str() {
        out.push_str(&format!("{waiting}\n"));
    }
    if let Some(reason) = status["dead_end"].as_str() {
        out.push_str(&format!("the booted release is a dead end: {reason}\n"));
    }
    for skipped in status["skipped"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "not taking {}: {}\n",
            text(&skipped[0]["version"]),
            text(&skipped[1])
        ));
    }
    if let Some(error) = status["last_error"].as_str() {
        out.push_str(&format!(
            "last error ({} in a row): {error}\n",
            status["consecutive_failures"]
        ));
    }
    if let Some(at) = status["last_check"].as_i64() {
        out.push_str(&format!("last check {}\n", cairn_time::format_minutes(at)));
    }
    out
}
