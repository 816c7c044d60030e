//! `cairn agent run`: the state machine wired to the real ports, forever.
//!
//! - The configuration and identity come from [`crate::config`] and [`crate::identity`]; the
//!   stream from `agent.stream` or the booted commit's `fedora-coreos.stream` metadata.
//! - After every step the status is written to `<run_dir>/status.json` (temp file + rename),
//!   log lines go to the journal through `tracing`, and a dead end is announced in
//!   `/run/motd.d/85-cairn-agent.motd`.
//! - Operators talk to it through `<run_dir>/control.sock` (one line: `pause`, `resume`,
//!   `update-now`); a pause is kept in `<state_dir>/paused` and survives reboots.
//! - Metrics (Prometheus text) are served on `<run_dir>/metrics.sock` and, when
//!   `agent.metrics.listen` is set, on that TCP address too (Zincati #677).

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cairn_sysroot::sysroot::BootSource;

use crate::config::{self, AgentConfig};
use crate::deployments::Deployments;
use crate::http::{GraphQuery, HttpGraph, HttpLock};
use crate::identity::Identity;
use crate::machine::{
    self, Agent, GraphClient, Level, LockClient, Ports, Settings, Status, Sysroot,
};
use crate::select::{self, Constraints};
use crate::window::Windows;

/// Where the daemon reads and writes.
#[derive(Debug, Clone)]
pub struct Paths {
    pub config_dirs: Vec<PathBuf>,
    /// The sysroot (`/` on a machine).
    pub root: PathBuf,
    pub machine_id: PathBuf,
    /// Status, control and metrics sockets.
    pub run_dir: PathBuf,
    pub motd_dir: PathBuf,
    /// Where the booted deployment is read from; `None`: the running kernel's.
    pub boot: Option<BootSource>,
}

impl Default for Paths {
    fn default() -> Paths {
        Paths {
            config_dirs: config::default_dirs(),
            root: PathBuf::from("/"),
            machine_id: PathBuf::from(crate::identity::MACHINE_ID_PATH),
            run_dir: PathBuf::from("/run/cairn/agent"),
            motd_dir: PathBuf::from("/run/motd.d"),
            boot: None,
        }
    }
}

const MOTD_FILE: &str = "85-cairn-agent.motd";
const HTTP_TIMEOUT: Duration = Duration::from_secs(60);

/// A FleetLock client for strategies that never ask: any call is a bug in the wiring.
struct NoLock;

impl LockClient for NoLock {
    fn pre_reboot(&mut self) -> Result<Option<String>, String> {
        Err("no lock service: the strategy is not fleet_lock".into())
    }

    fn steady_state(&mut self) -> Result<(), String> {
        Err("no lock service: the strategy is not fleet_lock".into())
    }
}

/// Replaces Zincati's URL variables.
fn expand(url: &str, basearch: &str, group: &str, stream: &str) -> String {
    url.replace("${basearch}", basearch)
        .replace("${group}", group)
        .replace("${platform}", "metal")
        .replace("${stream}", stream)
}

pub struct Daemon {
    pub config: AgentConfig,
    pub identity: Identity,
    paths: Paths,
    agent: Agent,
    graph: HttpGraph,
    lock: Box<dyn LockClient>,
    deployments: Deployments,
    status: Arc<Mutex<Status>>,
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Daemon {
    /// Reads the configuration, the identity and the booted release, and builds the ports.
    pub fn prepare(paths: Paths) -> Result<Daemon, String> {
        let config = config::load(&paths.config_dirs).map_err(|e| e.to_string())?;
        let identity =
            Identity::resolve(&config.identity, &paths.machine_id).map_err(|e| e.to_string())?;
        let mut deployments = Deployments::new(
            paths.root.clone(),
            paths.boot.clone(),
            config.agent.reboot_command.clone(),
            config.updates.allow_downgrade,
        );
        let booted = deployments.booted()?;
        let stream = match &config.agent.stream {
            Some(stream) => stream.clone(),
            None => booted_stream(&paths, &booted.checksum)?,
        };
        let basearch = std::env::consts::ARCH.to_string();
        let query = GraphQuery {
            basearch: basearch.clone(),
            stream: stream.clone(),
            rollout_wariness: match identity.rollout_wariness {
                crate::identity::RolloutWariness::Configured(w) => Some(w),
                crate::identity::RolloutWariness::Derived(_) => None,
            },
            node_uuid: identity.node_uuid.clone(),
            group: identity.group.clone(),
            os_version: booted.version.clone(),
            os_checksum: booted.checksum.clone(),
        };
        let graph = HttpGraph::new(
            &expand(
                &config.cincinnati.base_url,
                &basearch,
                &identity.group,
                &stream,
            ),
            &query,
            HTTP_TIMEOUT,
        )?;
        let (strategy, lock): (machine::Strategy, Box<dyn LockClient>) =
            match &config.updates.strategy {
                config::Strategy::Immediate => (machine::Strategy::Immediate, Box::new(NoLock)),
                config::Strategy::Periodic { time_zone, windows } => (
                    machine::Strategy::Periodic(
                        Windows::new(windows, time_zone).map_err(|e| e.to_string())?,
                    ),
                    Box::new(NoLock),
                ),
                config::Strategy::FleetLock { base_url } => (
                    machine::Strategy::FleetLock,
                    Box::new(HttpLock::new(
                        &expand(base_url, &basearch, &identity.group, &stream),
                        identity.fleet_lock_client_id(),
                        &identity.group,
                        None,
                        HTTP_TIMEOUT,
                    )?),
                ),
            };
        let jitter_seed = u64::from_str_radix(&identity.node_uuid[..16], 16).unwrap_or(1);
        let mut agent = Agent::new(Settings {
            enabled: config.updates.enabled,
            strategy,
            steady_interval: config.agent.steady_interval_secs.get(),
            constraints: Constraints {
                bad: Default::default(),
                max_version: config.updates.max_version.clone(),
                allow_downgrade: config.updates.allow_downgrade,
            },
            jitter_seed,
        });
        if paused_file(&config).exists() {
            agent.pause();
        }
        let status = Arc::new(Mutex::new(agent.status()));
        Ok(Daemon {
            config,
            identity,
            paths,
            agent,
            graph,
            lock,
            deployments,
            status,
        })
    }

    /// One poll without acting: what the agent would do now, in plain words.
    pub fn check(&mut self) -> Result<Vec<String>, String> {
        let booted = self.deployments.booted()?;
        let graph = self.graph.graph()?;
        let constraints = Constraints {
            bad: self.deployments.bad_releases()?,
            max_version: self.config.updates.max_version.clone(),
            allow_downgrade: self.config.updates.allow_downgrade,
        };
        let choice = select::choose(&graph, &booted, &constraints);
        let mut lines = vec![format!(
            "booted {} ({}); asked {}",
            booted.version,
            booted.checksum,
            self.graph.url()
        )];
        if let Some(reason) = &choice.booted_dead_end {
            lines.push(format!("the booted release is a dead end: {reason}"));
        }
        if choice.booted_unknown {
            lines.push("the booted release is not in the update graph".into());
        }
        for (release, why) in &choice.skipped {
            lines.push(format!("would skip {}: {why}", release.version));
        }
        lines.push(match &choice.target {
            Some(target) => format!(
                "would stage {} ({}) and reboot into it per strategy {}",
                target.version,
                target.checksum,
                self.config.updates.strategy.label()
            ),
            None => "no update to take".into(),
        });
        Ok(lines)
    }

    /// Runs until the process is stopped (or, for a reboot, killed).
    pub fn run(mut self) -> Result<(), String> {
        std::fs::create_dir_all(&self.paths.run_dir)
            .map_err(|e| format!("create {}: {e}", self.paths.run_dir.display()))?;
        let (commands, inbox) = mpsc::channel();
        control_listener(&self.paths.run_dir.join("control.sock"), commands)?;
        metrics_listener(
            &self.paths.run_dir.join("metrics.sock"),
            None,
            Arc::clone(&self.status),
        )?;
        if let Some(addr) = self.config.agent.metrics_listen {
            metrics_listener(Path::new(""), Some(addr), Arc::clone(&self.status))?;
        }
        tracing::info!(
            "cairn agent for node {} (group {}, wariness {:.3}, strategy {})",
            self.identity.node_uuid,
            self.identity.group,
            self.identity.rollout_wariness.value(),
            self.config.updates.strategy.label()
        );
        loop {
            let now = unix_now();
            let (events, wake) = {
                let mut ports = Ports {
                    graph: &mut self.graph,
                    lock: self.lock.as_mut(),
                    sysroot: &mut self.deployments,
                };
                self.agent.step(now, &mut ports)
            };
            for event in events {
                match event.level {
                    Level::Info => tracing::info!("{}", event.message),
                    Level::Warn => tracing::warn!("{}", event.message),
                    Level::Error => tracing::error!("{}", event.message),
                }
            }
            self.publish();
            let wait = Duration::from_secs((wake - unix_now()).clamp(0, 86_400) as u64);
            match inbox.recv_timeout(wait) {
                Ok((command, applied)) => {
                    self.command(&command);
                    self.publish();
                    let _ = applied.send(());
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err("the control socket stopped".into())
                }
            }
        }
    }

    fn command(&mut self, command: &str) {
        match command {
            "pause" => {
                self.agent.pause();
                let file = paused_file(&self.config);
                if let Err(e) = std::fs::create_dir_all(&self.config.agent.state_dir)
                    .and_then(|()| std::fs::write(&file, format!("{}\n", unix_now())))
                {
                    tracing::error!("keep the pause in {}: {e}", file.display());
                }
                tracing::warn!(
                    "paused by an operator: no update is checked for or applied until resumed"
                );
            }
            "resume" => {
                self.agent.resume();
                let _ = std::fs::remove_file(paused_file(&self.config));
                tracing::info!("resumed by an operator");
            }
            "update-now" => {
                self.agent.update_now();
                tracing::warn!("an operator asked to update now");
            }
            other => tracing::warn!("unknown control command {other:?}"),
        }
    }

    /// Writes the status file and the motd, and updates what the metrics show.
    fn publish(&self) {
        let status = self.agent.status();
        *self.status.lock().unwrap_or_else(PoisonError::into_inner) = status.clone();
        let path = self.paths.run_dir.join("status.json");
        if let Err(e) = write_atomic(&path, &status_json(&status, &self.identity)) {
            tracing::error!("write {}: {e}", path.display());
        }
        let motd = self.paths.motd_dir.join(MOTD_FILE);
        match (&status.dead_end, &status.booted) {
            (Some(reason), Some(booted)) => {
                let text = format!(
                    "This machine runs {}, a dead end: no update leaves it.\nReason: {reason}\nSee `cairn agent status`.\n",
                    booted.version
                );
                let _ = std::fs::create_dir_all(&self.paths.motd_dir);
                if let Err(e) = write_atomic(&motd, text.as_bytes()) {
                    tracing::error!("write {}: {e}", motd.display());
                }
            }
            _ => {
                let _ = std::fs::remove_file(&motd);
            }
        }
    }
}

/// The stream named in the booted commit's metadata (`fedora-coreos.stream`, as Zincati reads
/// it from rpm-ostree).
fn booted_stream(paths: &Paths, checksum: &str) -> Result<String, String> {
    let sysroot = cairn_sysroot::Sysroot::open(&paths.root).map_err(|e| e.to_string())?;
    let checksum: cairn_store::Checksum = checksum
        .parse()
        .map_err(|_| format!("bad checksum {checksum}"))?;
    let commit = sysroot
        .repo()
        .read_commit(&checksum)
        .map_err(|e| e.to_string())?;
    for key in ["fedora-coreos.stream", "cairn.stream"] {
        if let Some(cairn_store::gvariant::Value::Str(stream)) = commit.metadata_value(key) {
            return Ok(stream.clone());
        }
    }
    Err(format!(
        "the booted commit {checksum} names no stream (fedora-coreos.stream); set agent.stream"
    ))
}

fn paused_file(config: &AgentConfig) -> PathBuf {
    config.agent.state_dir.join("paused")
}

/// The status as `cairn agent status --json` prints it.
pub fn status_json(status: &Status, identity: &Identity) -> Vec<u8> {
    let value = serde_json::json!({
        "node_uuid": identity.node_uuid,
        "group": identity.group,
        "rollout_wariness": identity.rollout_wariness.value(),
        "status": status,
        "written": unix_now(),
    });
    serde_json::to_vec_pretty(&value).unwrap_or_default()
}

fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let temp = path.with_extension("tmp");
    std::fs::write(&temp, bytes)?;
    std::fs::rename(&temp, path)
}

/// A command for the main loop, and where to say it was applied.
type Command = (String, mpsc::Sender<()>);

/// How long the control socket waits for the main loop (busy in a step: a pull, a graph
/// request) to apply a command before answering `queued`.
const APPLY_WAIT: Duration = Duration::from_secs(60);

/// Listens on `path` for one-line commands and forwards them; answers `ok` once the command
/// is applied (and a pause is on disk), `queued` if the agent is still busy after
/// [`APPLY_WAIT`].
fn control_listener(path: &Path, commands: mpsc::Sender<Command>) -> Result<(), String> {
    let _ = std::fs::remove_file(path);
    let listener =
        UnixListener::bind(path).map_err(|e| format!("listen on {}: {e}", path.display()))?;
    // Only root (the agent's user) may pause or hurry updates, whatever the umask.
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .map_err(|e| format!("restrict {}: {e}", path.display()))?;
    std::thread::Builder::new()
        .name("agent-control".into())
        .spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let command = read_command(&mut stream);
                if !matches!(command.as_str(), "pause" | "resume" | "update-now") {
                    let _ = stream.write_all(b"unknown command\n");
                    continue;
                }
                let (done, applied) = mpsc::channel();
                if commands.send((command, done)).is_err() {
                    return;
                }
                let answer: &[u8] = match applied.recv_timeout(APPLY_WAIT) {
                    Ok(()) => b"ok\n",
                    Err(_) => b"queued\n",
                };
                let _ = stream.write_all(answer);
            }
        })
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// One line of at most 256 bytes, read within 5 seconds in all (a slow client cannot hold
/// the control thread).
fn read_command(stream: &mut UnixStream) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut line = Vec::new();
    let mut chunk = [0u8; 64];
    while line.len() < 256 && !line.contains(&b'\n') {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            break;
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => line.extend_from_slice(&chunk[..n]),
        }
    }
    let end = line
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(line.len())
        .min(256);
    String::from_utf8_lossy(&line[..end]).trim().to_string()
}

/// Sends one control command to a running agent; its answer.
pub fn send_command(run_dir: &Path, command: &str) -> Result<String, String> {
    let path = run_dir.join("control.sock");
    let mut stream = UnixStream::connect(&path).map_err(|e| {
        format!(
            "reach the agent at {}: {e} (is `cairn agent run` running?)",
            path.display()
        )
    })?;
    let _ = stream.set_read_timeout(Some(APPLY_WAIT + Duration::from_secs(10)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(10)));
    stream
        .write_all(format!("{command}\n").as_bytes())
        .map_err(|e| e.to_string())?;
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .map_err(|e| e.to_string())?;
    Ok(answer.trim().to_string())
}

/// The metrics in Prometheus' text format.
pub fn metrics_text(status: &Status) -> String {
    let mut out = String::new();
    let state = match &status.state {
        machine::State::Starting => "starting",
        machine::State::Steady => "steady",
        machine::State::Staged { .. } => "staged",
        machine::State::Rebooting { .. } => "rebooting",
    };
    let gauge = |out: &mut String, name: &str, help: &str, sample: String| {
        cairn_http::metric_family(out, name, "gauge", help, vec![sample])
    };
    gauge(
        &mut out,
        "cairn_agent_state",
        "The agent's state (1 for the current one).",
        format!("cairn_agent_state{{state=\"{state}\"}} 1"),
    );
    gauge(
        &mut out,
        "cairn_agent_paused",
        "1 when an operator paused updates.",
        format!("cairn_agent_paused {}", u8::from(status.paused)),
    );
    gauge(
        &mut out,
        "cairn_agent_dead_end",
        "1 when the booted release is a dead end.",
        format!(
            "cairn_agent_dead_end {}",
            u8::from(status.dead_end.is_some())
        ),
    );
    gauge(
        &mut out,
        "cairn_agent_consecutive_failures",
        "Failed steps in a row.",
        format!(
            "cairn_agent_consecutive_failures {}",
            status.consecutive_failures
        ),
    );
    gauge(
        &mut out,
        "cairn_agent_skipped_releases",
        "Releases offered but passed over.",
        format!("cairn_agent_skipped_releases {}", status.skipped.len()),
    );
    gauge(
        &mut out,
        "cairn_agent_last_check_timestamp_seconds",
        "When the graph was last read.",
        format!(
            "cairn_agent_last_check_timestamp_seconds {}",
            status.last_check.unwrap_or(0)
        ),
    );
    out
}

/// Serves the metrics on a Unix socket (`addr` None) or a TCP address, one HTTP/1.0 answer per
/// connection.
fn metrics_listener(
    path: &Path,
    addr: Option<std::net::SocketAddr>,
    status: Arc<Mutex<Status>>,
) -> Result<(), String> {
    let answer = move |stream: &mut dyn ReadWrite| {
        let mut request = [0u8; 1024];
        let _ = stream.read(&mut request);
        let body = metrics_text(&status.lock().unwrap_or_else(PoisonError::into_inner));
        let _ = write!(
            stream,
            "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
    };
    match addr {
        Some(addr) => {
            let listener =
                std::net::TcpListener::bind(addr).map_err(|e| format!("listen on {addr}: {e}"))?;
            std::thread::spawn(move || {
                for mut stream in listener.incoming().flatten() {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                    answer(&mut stream);
                }
            });
        }
        None => {
            let _ = std::fs::remove_file(path);
            let listener = UnixListener::bind(path)
                .map_err(|e| format!("listen on {}: {e}", path.display()))?;
            std::thread::spawn(move || {
                for mut stream in listener.incoming().flatten() {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                    answer(&mut stream);
                }
            });
        }
    }
    Ok(())
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}
