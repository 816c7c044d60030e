//! `cairn graph`: the update graph service (Cincinnati's `/v1/graph`, as Fedora CoreOS
//! serves it), one-shot graph builds for scripts, and the operator's edits of
//! `updates/<stream>.json` (rollouts, barriers, dead ends), each written atomically.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use cairn_graph::{build, check_updates, edit, filter, wire, PayloadKind, UpdatesMetadata};
use clap::{Args, Subcommand};

#[derive(Args)]
pub struct GraphArgs {
    #[command(subcommand)]
    verb: Verb,
}

#[derive(Args)]
struct Sources {
    /// The release index: a path or an http(s) URL; `{stream}` is replaced.
    #[arg(long)]
    release_index: String,
    /// The updates metadata: a path or an http(s) URL; `{stream}` is replaced.
    #[arg(long)]
    updates: String,
}

#[derive(Subcommand)]
enum Verb {
    /// Serve `GET /v1/graph?basearch=&stream=&rollout_wariness=&node_uuid=&oci=`, plus
    /// `/status` and `/metrics`.
    Serve {
        #[arg(long, default_value = "127.0.0.1:8081")]
        listen: SocketAddr,
        #[command(flatten)]
        sources: Sources,
        /// Streams to serve (default: stable, testing, next).
        #[arg(long = "stream")]
        streams: Vec<String>,
        /// Seconds between reloads of the sources.
        #[arg(long, default_value_t = 300)]
        refresh: u64,
    },
    /// Print one stream's graph as the service would serve it.
    Build {
        #[command(flatten)]
        sources: Sources,
        #[arg(long)]
        stream: String,
        #[arg(long)]
        basearch: String,
        /// Container image payloads instead of OSTree commits.
        #[arg(long)]
        oci: bool,
        /// Apply the policy for a client of this wariness (0.0–1.0); without it, the
        /// whole graph as built, every rollout included.
        #[arg(long)]
        wariness: Option<f64>,
        /// The time the policy is evaluated at, seconds since the epoch (default: now).
        #[arg(long)]
        now: Option<i64>,
    },
    /// Start, pause, resume or stop a release's rollout.
    Rollout {
        #[command(subcommand)]
        action: RolloutAction,
    },
    /// Add or remove an update barrier (every machine passes through it).
    Barrier {
        #[command(subcommand)]
        action: MarkAction,
    },
    /// Mark or unmark a release as a dead end (machines on it get no update from it).
    Deadend {
        #[command(subcommand)]
        action: MarkAction,
    },
    /// Say in plain words what a stream's updates metadata does now.
    Status {
        /// The `updates/<stream>.json` file.
        #[arg(long)]
        updates: PathBuf,
        #[arg(long)]
        now: Option<i64>,
    },
}

#[derive(Args)]
struct Target {
    /// The `updates/<stream>.json` file to edit (atomically).
    #[arg(long)]
    updates: PathBuf,
    /// A release index to check the edited file against.
    #[arg(long)]
    release_index: Option<PathBuf>,
    version: String,
}

#[derive(Subcommand)]
enum RolloutAction {
    /// Start (or restart) a rollout.
    Start {
        #[command(flatten)]
        target: Target,
        /// When it starts: seconds since the epoch, or RFC 3339 (default: now).
        #[arg(long)]
        start: Option<String>,
        /// The fraction of machines that see it at the start, 0.0–1.0.
        #[arg(long, default_value_t = 0.0)]
        start_percentage: f64,
        /// Minutes until every machine sees it.
        #[arg(long)]
        duration: u64,
    },
    /// Hold a rollout where it is now.
    Pause {
        #[command(flatten)]
        target: Target,
    },
    /// Continue a paused rollout, reaching everyone in DURATION minutes.
    Resume {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        duration: u64,
    },
    /// Remove the rollout: the release is offered to every machine at once.
    Stop {
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Subcommand)]
enum MarkAction {
    Add {
        #[command(flatten)]
        target: Target,
        /// Why (a URL to the tracker issue, as Fedora CoreOS writes it).
        #[arg(long)]
        reason: String,
    },
    Remove {
        #[command(flatten)]
        target: Target,
    },
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub fn run(args: GraphArgs) -> Result<i32> {
    match args.verb {
        Verb::Serve {
            listen,
            sources,
            streams,
            refresh,
        } => serve(listen, sources, streams, refresh),
        Verb::Build {
            sources,
            stream,
            basearch,
            oci,
            wariness,
            now: at,
        } => {
            let read = |template: &str| -> Result<String> {
                let source = template.replace("{stream}", &stream);
                read_source(&source)
            };
            let index = wire::parse_release_index(&read(&sources.release_index)?)?;
            let updates = wire::parse_updates(&read(&sources.updates)?)?;
            check_updates(&updates, &index)?;
            let mut graph = build(
                &index,
                &updates,
                &stream,
                &basearch,
                PayloadKind::from_oci_flag(oci),
            )?;
            if let Some(w) = wariness {
                if !(0.0..=1.0).contains(&w) {
                    bail!("--wariness must be from 0.0 to 1.0, not {w}");
                }
                graph = filter(&graph, at.unwrap_or_else(now), w);
            }
            let mut out = std::io::stdout().lock();
            serde_json::to_writer_pretty(&mut out, &graph)?;
            writeln!(out)?;
            Ok(0)
        }
        Verb::Rollout { action } => match action {
            RolloutAction::Start {
                target,
                start,
                start_percentage,
                duration,
            } => {
                let start = match start {
                    None => now(),
                    Some(text) => parse_time(&text)?,
                };
                edit_file(&target, |u, _| {
                    edit::start_rollout(u, &target.version, start, start_percentage, duration)
                })
            }
            RolloutAction::Pause { target } => edit_file(&target, |u, now| {
                edit::pause_rollout(u, &target.version, now)
            }),
            RolloutAction::Resume { target, duration } => edit_file(&target, |u, now| {
                edit::resume_rollout(u, &target.version, now, duration)
            }),
            RolloutAction::Stop { target } => {
                edit_file(&target, |u, _| edit::stop_rollout(u, &target.version))
            }
        },
        Verb::Barrier { action } => match action {
            MarkAction::Add { target, reason } => edit_file(&target, |u, _| {
                edit::add_barrier(u, &target.version, &reason)
            }),
            MarkAction::Remove { target } => {
                edit_file(&target, |u, _| edit::remove_barrier(u, &target.version))
            }
        },
        Verb::Deadend { action } => match action {
            MarkAction::Add { target, reason } => edit_file(&target, |u, _| {
                edit::mark_deadend(u, &target.version, &reason)
            }),
            MarkAction::Remove { target } => {
                edit_file(&target, |u, _| edit::unmark_deadend(u, &target.version))
            }
        },
        Verb::Status { updates, now: at } => {
            let text = std::fs::read_to_string(&updates)
                .with_context(|| format!("read {}", updates.display()))?;
            let parsed = wire::parse_updates(&text)?;
            let lines = edit::describe(&parsed, at.unwrap_or_else(now));
            if lines.is_empty() {
                println!("{}: no rollouts, barriers or dead ends", parsed.stream);
            }
            for line in lines {
                println!("{line}");
            }
            Ok(0)
        }
    }
}

fn serve(listen: SocketAddr, sources: Sources, streams: Vec<String>, refresh: u64) -> Result<i32> {
    let streams = if streams.is_empty() {
        vec!["stable".into(), "testing".into(), "next".into()]
    } else {
        streams
    };
    let settings = cairn_graph_server::Settings {
        streams,
        release_index: sources.release_index,
        updates: sources.updates,
        refresh: Duration::from_secs(refresh.max(1)),
        now: None,
    };
    let service = cairn_graph_server::Service::new(settings).map_err(anyhow::Error::msg)?;
    cairn_http::serve_until_interrupted(
        listen,
        |addr| format!("serving /v1/graph on http://{addr}/ (status: /status, metrics: /metrics)"),
        |listener, interrupted| cairn_graph_server::serve(listener, service, interrupted),
    )?;
    Ok(0)
}

/// A source for `graph build`: a path, or an http(s) URL.
fn read_source(source: &str) -> Result<String> {
    if source.starts_with("http://") || source.starts_with("https://") {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async {
            let response = reqwest::get(source)
                .await
                .and_then(|r| r.error_for_status())
                .with_context(|| format!("fetch {source}"))?;
            Ok(response.text().await?)
        })
    } else {
        std::fs::read_to_string(source).with_context(|| format!("read {source}"))
    }
}

/// Seconds since the epoch, or RFC 3339.
fn parse_time(text: &str) -> Result<i64> {
    if let Ok(epoch) = text.parse::<i64>() {
        return Ok(epoch);
    }
    let secs =
        cairn_store::time::parse_timestamp(text, now() as u64).map_err(anyhow::Error::msg)?;
    Ok(secs as i64)
}

/// Reads `updates/<stream>.json`, applies `change`, checks the result (against the
/// release index when given), and replaces the file atomically. A file with keys these
/// types do not know is refused rather than silently losing them.
fn edit_file(
    target: &Target,
    change: impl FnOnce(&mut UpdatesMetadata, i64) -> Result<(), edit::EditError>,
) -> Result<i32> {
    let path = &target.updates;
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    let mut updates = wire::parse_updates(&text)?;
    let original: serde_json::Value = serde_json::from_str(&text)?;
    let lost = wire::fields_lost_on_rewrite(&original, &serde_json::to_value(&updates)?);
    if !lost.is_empty() {
        bail!(
            "{}: would lose fields cairn does not know: {}",
            path.display(),
            lost.join(", ")
        );
    }
    let at = now();
    change(&mut updates, at).with_context(|| format!("{}", path.display()))?;
    edit::set_last_modified(&mut updates, at);
    if let Some(index_path) = &target.release_index {
        let index = wire::parse_release_index(
            &std::fs::read_to_string(index_path)
                .with_context(|| format!("read {}", index_path.display()))?,
        )?;
        check_updates(&updates, &index)?;
    }
    write_atomically(path, wire::to_pretty_json(&updates).as_bytes())?;
    for line in edit::describe(&updates, at) {
        println!("{line}");
    }
    Ok(0)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("create a temporary file in {}", dir.display()))?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    if let Ok(meta) = std::fs::metadata(path) {
        tmp.as_file().set_permissions(meta.permissions())?;
    }
    tmp.persist(path)
        .with_context(|| format!("replace {}", path.display()))?;
    Ok(())
}
