//! The `cairn` binary: parses arguments, starts logging, runs one command, maps errors to exit codes.

mod admin_cmd;
mod agent_cmd;
mod config_cmd;
mod graph_cmd;
mod lock_cmd;
mod provision_cmd;
mod quickstart;
mod quickstart_fleet;
mod repo_cmd;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cairn",
    version,
    about = "Deliver immutable operating systems to fleets of machines"
)]
struct Cli {
    /// More log output on stderr (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The OSTree-format store: commit trees, inspect, check out, verify, prune.
    Repo(repo_cmd::RepoArgs),
    /// Deployments on a sysroot: deploy, stage, upgrade, roll back, health checks.
    Admin(admin_cmd::AdminArgs),
    /// Provisioning configs: Butane-compatible YAML → Ignition JSON, and validation.
    Config(config_cmd::ConfigArgs),
    /// First-boot provisioning: apply a config to a root, all or nothing, exactly once.
    Provision(provision_cmd::ProvisionArgs),
    /// The update graph: serve it (Cincinnati), build it, run rollouts, barriers, dead ends.
    Graph(graph_cmd::GraphArgs),
    /// Reboot coordination: a FleetLock service handing out reboot slots per group.
    Lock(lock_cmd::LockArgs),
    /// The update agent: keep this machine current from the update graph (like Zincati).
    Agent(agent_cmd::AgentArgs),
    /// Run cairn's main job end to end on embedded defaults, in a temporary directory.
    Quickstart(quickstart::QuickstartArgs),
}

fn main() {
    let cli = Cli::parse();
    let default_level = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // A log line that cannot be written (stderr closed) must not become a panic (its
        // fallback is eprintln!, which panics) in the middle of serving a request.
        .log_internal_errors(false)
        .with_ansi(std::env::var_os("NO_COLOR").is_none())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .init();
    let result = match cli.command {
        Command::Repo(args) => repo_cmd::run(args),
        Command::Admin(args) => admin_cmd::run(args),
        Command::Config(args) => config_cmd::run(args),
        Command::Provision(args) => provision_cmd::run(args),
        Command::Graph(args) => graph_cmd::run(args),
        Command::Lock(args) => lock_cmd::run(args),
        Command::Agent(args) => agent_cmd::run(args),
        Command::Quickstart(args) => quickstart::run(args),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
}
