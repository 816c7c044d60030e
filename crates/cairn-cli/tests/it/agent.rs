//! `cairn agent` on a test sysroot against a real graph service: `check`, then `run` stages
//! the offered release with its finalization locked, finalizes it and runs the reboot
//! command; after the (simulated) reboot it is steady on the new release; `status`, `pause`
//! and `resume` through the control socket.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;
use crate::sysroot::{commit, os_tree, Sys};

/// A running `cairn agent run`, killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn agent_args<'a>(dir: &'a Path, sys: &'a Sys) -> Vec<String> {
    vec![
        "--config-dir".into(),
        dir.join("agent.d").display().to_string(),
        "--root".into(),
        sys.root.display().to_string(),
        "--boot-cmdline".into(),
        sys.cmdline.display().to_string(),
        "--machine-id".into(),
        dir.join("machine-id").display().to_string(),
        "--run-dir".into(),
        dir.join("run").display().to_string(),
        "--motd-dir".into(),
        dir.join("motd.d").display().to_string(),
    ]
}

fn agent(dir: &Path, sys: &Sys, verb: &[&str]) -> std::process::Output {
    let mut args: Vec<String> = vec!["agent".into()];
    args.extend(verb.iter().map(|s| s.to_string()));
    args.extend(agent_args(dir, sys));
    Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(&args)
        .output()
        .unwrap()
}

fn start(dir: &Path, sys: &Sys) -> Running {
    let mut args: Vec<String> = vec!["-v".into(), "agent".into(), "run".into()];
    args.extend(agent_args(dir, sys));
    let mut child = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Keep reading its log so that it never writes into a closed pipe; echo it for failures.
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("agent: {line}");
        }
    });
    Running(child)
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn status_text(dir: &Path, sys: &Sys) -> String {
    let out = agent(dir, sys, &["status"]);
    assert!(out.status.success(), "{}", stderr(&out));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_agent_stages_finalizes_and_reboots_into_the_offered_release() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut sys = Sys::new(dir);
    sys.init("testos");
    let v1 = sys.release(dir, "1", "a");
    sys.deploy_and_boot();
    let v2 = sys.release(dir, "2", "a");

    let graph = serve_graph(dir, &[("1", &v1), ("2", &v2)]);
    let rebooted = configure(dir, graph.addr);

    // check: says what it would do, changes nothing.
    let out = agent(dir, &sys, &["check"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains(&format!("booted 1 ({v1})")), "{text}");
    assert!(
        text.contains(&format!(
            "would stage 2 ({v2}) and reboot into it per strategy immediate"
        )),
        "{text}"
    );
    assert_eq!(sys.status().len(), 1, "check changed nothing");

    // run: stage (locked), finalize, reboot command.
    let running = start(dir, &sys);
    wait_for("the reboot command", || rebooted.exists());
    drop(running);
    let status = sys.status();
    assert_eq!(
        status[0]["checksum"],
        v2.as_str(),
        "release 2 boots next: {status:?}"
    );
    assert_eq!(status[1]["checksum"], v1.as_str());
    let text = status_text(dir, &sys);
    assert!(text.contains("state: rebooting 2"), "{text}");
    assert!(text.contains("rollout wariness 0.500"), "{text}");

    // The reboot: booted on 2, the agent is steady and offered nothing.
    sys.reboot();
    let _running = start(dir, &sys);
    wait_for("a steady agent on 2", || {
        let text = status_text(dir, &sys);
        text.contains("booted 2 (") && text.contains("state: steady") && text.contains("last check")
    });
    assert_eq!(
        std::fs::read_to_string(&rebooted).unwrap(),
        "reboot\n",
        "one reboot"
    );

    // pause and resume through the control socket; the pause is kept on disk.
    let out = agent(dir, &sys, &["pause"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(dir.join("state/paused").exists());
    wait_for("the pause in the status", || {
        status_text(dir, &sys).contains("paused by an operator")
    });
    let out = agent(dir, &sys, &["resume"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!dir.join("state/paused").exists());
    wait_for("the resume in the status", || {
        !status_text(dir, &sys).contains("paused by an operator")
    });
}

#[test]
fn agent_errors_are_clear() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let sys = Sys::new(dir);
    // No configuration at all: the graph's URL is required.
    std::fs::create_dir_all(dir.join("agent.d")).unwrap();
    let out = agent(dir, &sys, &["check"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("cincinnati.base_url"),
        "{}",
        stderr(&out)
    );
    // A bad key names the file and the key.
    std::fs::write(
        dir.join("agent.d/10-bad.toml"),
        "[cincinnati]\nbase_url = \"http://127.0.0.1:1\"\n[updates]\nstrategy = \"weekly\"\n",
    )
    .unwrap();
    let out = agent(dir, &sys, &["check"]);
    assert!(
        stderr(&out).contains("10-bad.toml") && stderr(&out).contains("updates.strategy"),
        "{}",
        stderr(&out)
    );
    // No running agent to talk to.
    let out = agent(dir, &sys, &["update-now"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("is `cairn agent run` running?"),
        "{}",
        stderr(&out)
    );
}

/// Serves a graph where every release after the first is rolled out to everyone.
fn serve_graph(dir: &Path, releases: &[(&str, &str)]) -> cairn_graph_server::Background {
    let rollouts: Vec<serde_json::Value> = releases[1..]
        .iter()
        .map(|(version, _)| {
            serde_json::json!({"version": version, "metadata": {"rollout": {"start_epoch": 1_700_000_000, "start_percentage": 1.0}}})
        })
        .collect();
    serve_graph_with(dir, releases, rollouts)
}

/// Serves a graph of `releases` with the updates metadata entries `updates`.
fn serve_graph_with(
    dir: &Path,
    releases: &[(&str, &str)],
    updates: Vec<serde_json::Value>,
) -> cairn_graph_server::Background {
    let graph_dir = dir.join("graph");
    std::fs::create_dir_all(&graph_dir).unwrap();
    let index: Vec<serde_json::Value> = releases
        .iter()
        .map(|(version, checksum)| {
            serde_json::json!({"version": version, "metadata": format!("https://example.invalid/{version}"),
                "commits": [{"architecture": std::env::consts::ARCH, "checksum": checksum}]})
        })
        .collect();
    let modified = serde_json::json!({"last-modified": "2026-01-01T00:00:00Z"});
    std::fs::write(
        graph_dir.join("releases-stable.json"),
        serde_json::json!({"stream": "stable", "metadata": modified, "releases": index})
            .to_string(),
    )
    .unwrap();
    std::fs::write(
        graph_dir.join("updates-stable.json"),
        serde_json::json!({"stream": "stable", "metadata": modified, "releases": updates})
            .to_string(),
    )
    .unwrap();
    cairn_graph_server::spawn(
        cairn_graph_server::Settings::from_dir(&graph_dir, &["stable"], None),
        "127.0.0.1:0".parse().unwrap(),
    )
    .unwrap()
}

/// The agent's configuration (immediate strategy, a reboot command that leaves a mark) and
/// machine id; returns the file the reboot command appends to.
fn configure(dir: &Path, graph: std::net::SocketAddr) -> std::path::PathBuf {
    let rebooted = dir.join("rebooted");
    std::fs::create_dir_all(dir.join("agent.d")).unwrap();
    std::fs::write(
        dir.join("agent.d/50-test.toml"),
        format!(
            "[agent]\nstream = \"stable\"\nstate_dir = \"{}\"\nreboot_command = [\"sh\", \"-c\", \"echo reboot >> {}\"]\n\
             [agent.timing]\nsteady_interval_secs = 2\n\
             [cincinnati]\nbase_url = \"http://{graph}\"\n[identity]\nrollout_wariness = 0.5\n",
            dir.join("state").display(),
            rebooted.display(),
        ),
    )
    .unwrap();
    std::fs::write(dir.join("machine-id"), "0123456789abcdef0123456789abcdef\n").unwrap();
    rebooted
}

#[test]
fn a_release_whose_health_check_fails_is_rolled_back_and_never_staged_again() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut sys = Sys::new(dir);
    sys.init("testos");
    let good = os_tree(dir, "1", "a");
    write(
        &good.join("usr/lib/cairn/health-check.d/10-ok"),
        b"#!/bin/sh\nexit 0\n",
        0o755,
    );
    let v1 = commit(&sys.repo_arg(), "testos/stable", &good, "1");
    sys.deploy_and_boot();
    sys.admin(&["health-check"]);
    let bad = os_tree(dir, "2", "b");
    write(
        &bad.join("usr/lib/cairn/health-check.d/20-service"),
        b"#!/bin/sh\necho service down >&2\nexit 3\n",
        0o755,
    );
    let v2 = commit(&sys.repo_arg(), "testos/stable", &bad, "2");
    let graph = serve_graph(dir, &[("1", &v1), ("2", &v2)]);
    let rebooted = configure(dir, graph.addr);

    let running = start(dir, &sys);
    wait_for("the reboot into 2", || rebooted.exists());
    drop(running);
    // Release 2 fails its health check on three boots: the sysroot rolls back to 1.
    for _ in 0..3 {
        sys.reboot();
        assert_eq!(sys.status()[0]["checksum"], v2.as_str());
        let out = sys.admin_with(&["health-check"], &[]);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    }
    sys.reboot();
    assert_eq!(sys.status()[0]["checksum"], v1.as_str(), "rolled back");
    // The agent, on 1 again, passes over 2 and says why.
    let _running = start(dir, &sys);
    wait_for("the agent's reason", || {
        let text = status_text(dir, &sys);
        text.contains("booted 1 (")
            && text.contains("not taking 2: it failed on this machine before")
            && text.contains("state: steady")
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        std::fs::read_to_string(&rebooted).unwrap(),
        "reboot\n",
        "no second reboot"
    );
    assert!(
        sys.status().iter().all(|d| d["staged"] == false),
        "2 is not staged again"
    );
}

/// The default fragment in `dist/` loads, with the strategy and graph URL it promises.
#[test]
fn the_default_fragment_in_dist_is_valid() {
    let dist = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dist/agent.d");
    let config = cairn_agent::config::load(&[dist]).unwrap();
    assert_eq!(config.updates.strategy.label(), "immediate");
    assert_eq!(
        config.cincinnati.base_url,
        "https://updates.coreos.fedoraproject.org"
    );
    assert_eq!(config.agent.steady_interval_secs.get(), 300);
}

/// A machine booted on a dead end: the motd and the status say so with the reason, and the
/// metrics (Unix socket and `agent.metrics.listen`) show it.
#[test]
fn a_dead_end_is_announced_and_metrics_are_served_on_both_sockets() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut sys = Sys::new(dir);
    sys.init("testos");
    let v1 = sys.release(dir, "1", "a");
    sys.deploy_and_boot();
    let graph = serve_graph_with(
        dir,
        &[("1", &v1)],
        vec![serde_json::json!({"version": "1",
            "metadata": {"deadend": {"reason": "https://example.invalid/issue/42"}}})],
    );
    configure(dir, graph.addr);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        dir.join("agent.d/60-metrics.toml"),
        format!("[agent.metrics]\nlisten = \"127.0.0.1:{port}\"\n"),
    )
    .unwrap();
    let _running = start(dir, &sys);
    let motd = dir.join("motd.d/85-cairn-agent.motd");
    wait_for("the motd", || motd.exists());
    let text = std::fs::read_to_string(&motd).unwrap();
    assert!(text.contains("This machine runs 1, a dead end"), "{text}");
    assert!(text.contains("https://example.invalid/issue/42"), "{text}");
    assert!(status_text(dir, &sys)
        .contains("the booted release is a dead end: https://example.invalid/issue/42"));
    let scrape = |stream: &mut dyn ReadWrite| {
        stream.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    };
    let mut unix = std::os::unix::net::UnixStream::connect(dir.join("run/metrics.sock")).unwrap();
    let answer = scrape(&mut unix);
    assert!(answer.starts_with("HTTP/1.0 200 OK"), "{answer}");
    assert!(answer.contains("cairn_agent_dead_end 1"), "{answer}");
    assert!(
        answer.contains("cairn_agent_state{state=\"steady\"} 1"),
        "{answer}"
    );
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    assert!(scrape(&mut tcp).contains("cairn_agent_dead_end 1"));
}

trait ReadWrite: std::io::Read + std::io::Write {}
impl<T: std::io::Read + std::io::Write> ReadWrite for T {}
