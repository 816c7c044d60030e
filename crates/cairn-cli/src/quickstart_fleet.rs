//! The quickstart's fleet: three machines provisioned from configs, a release rolled out
//! gradually, agents updating them through two reboot slots, and one machine rolling back
//! from a release whose health check fails there. Real sysroots, a real repository server,
//! graph service and lock service; only the clock and the reboots are simulated (the graph
//! service is told the simulated time).

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use cairn_agent::deployments::Deployments;
use cairn_agent::http::{GraphQuery, HttpGraph, HttpLock};
use cairn_agent::machine::{Agent, Ports, Settings, State, Strategy};
use cairn_agent::select::Constraints;
use cairn_store::{Checksum, Repo};
use cairn_sysroot::health::{HealthOptions, HealthOutcome};
use cairn_sysroot::sysroot::BootSource;
use cairn_sysroot::Sysroot;

/// What the fleet step needs from the rest of the quickstart.
pub struct Release<'a> {
    pub repo: &'a Repo,
    pub repo_path: &'a Path,
    pub tree: &'a Path,
    pub key: &'a ed25519_dalek::SigningKey,
    pub public: &'a str,
    pub branch: &'a str,
    pub stateroot: &'a str,
}

struct Machine {
    name: String,
    root: PathBuf,
    cmdline: PathBuf,
    wariness: f64,
    agent: Agent,
    graph: HttpGraph,
    lock: HttpLock,
    deployments: Deployments,
    wake: i64,
    /// When the simulated reboot completes.
    reboot_at: Option<i64>,
    boots: u32,
}

const SLOTS: u64 = 2;
const GROUP: &str = "quickstart";
/// Simulated minutes a reboot takes.
const REBOOT_MINUTES: i64 = 3;

fn minutes(t: i64, t0: i64) -> String {
    format!("[+{:>3} min]", (t - t0) / 60)
}

fn boot(machine: &Machine) -> Result<Sysroot> {
    crate::admin_cmd::simulate_boot(&machine.root, &machine.cmdline)?;
    Ok(Sysroot::open(&machine.root)?.with_boot_source(BootSource {
        cmdline: machine.cmdline.clone(),
        boot_id: Some(format!("{}-boot-{}", machine.name, machine.boots)),
    }))
}

/// An Ignition config for one machine: its hostname, and for the third a file that the next
/// release's health check does not like.
fn provisioning_config(name: &str, broken: bool) -> String {
    let file = |path: &str, text: &str| {
        serde_json::json!({"path": path, "mode": 420, "overwrite": true,
            "contents": {"source": format!("data:,{}", percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC))}})
    };
    let mut files = vec![file("/etc/hostname", &format!("{name}\n"))];
    if broken {
        files.push(file(
            "/etc/quickstart/app.conf",
            "mode = legacy  # release 3's app refuses this\n",
        ));
    }
    serde_json::json!({"ignition": {"version": "3.4.0"}, "storage": {"files": files}}).to_string()
}

pub fn run(work: &Path, release: &Release<'_>, first: &Checksum, second: &Checksum) -> Result<()> {
    let dir = work.join("fleet");
    fs::create_dir_all(&dir)?;
    let server = cairn_repo_server::spawn(release.repo_path.to_owned(), "127.0.0.1:0".parse()?)?;
    let url = format!("http://{}/", server.addr);

    // Three machines on release 2, each provisioned from its config on first boot.
    let mut roots = Vec::new();
    for (n, wariness) in [(1, 0.2), (2, 0.5), (3, 0.8)] {
        let name = format!("machine-{n}");
        let root = dir.join(&name);
        let sysroot = Sysroot::init_fs(&root)?;
        sysroot.os_init(release.stateroot)?;
        crate::quickstart::add_signed_origin(sysroot.repo(), &url, release.public)?;
        cairn_store::pull::pull(
            sysroot.repo(),
            &sysroot.repo().remote("origin")?,
            &cairn_store::pull::PullOptions {
                refs: vec![release.branch.into()],
                progress: false,
                ..Default::default()
            },
        )?;
        let deployed = cairn_sysroot::deploy::deploy(
            &sysroot,
            &format!("origin:{}", release.branch),
            &Default::default(),
        )?;
        let etc_root = sysroot.deployment_path(&deployed.deployment);
        let config = provisioning_config(&name, n == 3);
        let provisioned = if rustix::process::geteuid().is_root() {
            let options = cairn_apply::ApplyOptions {
                skip_storage: true,
                ..Default::default()
            };
            cairn_apply::apply_config(&etc_root, config.as_bytes(), &options)
                .with_context(|| format!("provision {name}"))?;
            "provisioned from its config"
        } else {
            // Without root the applier cannot set owners: write what the config says.
            fs::write(etc_root.join("etc/hostname"), format!("{name}\n"))?;
            if n == 3 {
                fs::create_dir_all(etc_root.join("etc/quickstart"))?;
                fs::write(
                    etc_root.join("etc/quickstart/app.conf"),
                    "mode = legacy  # release 3's app refuses this\n",
                )?;
            }
            "given its config's files (provisioning needs root: sudo cairn quickstart)"
        };
        println!(
            "{name}: release 2 installed, {provisioned}{}",
            if n == 3 {
                ", with /etc/quickstart/app.conf"
            } else {
                ""
            }
        );
        roots.push((name, root, wariness));
    }

    // Release 3: its app's health check fails where /etc/quickstart/app.conf says legacy.
    crate::quickstart::write(
        &release.tree.join("usr/lib/cairn/health-check.d/50-app"),
        "#!/bin/sh\nif grep -qs legacy \"$CAIRN_DEPLOYMENT/etc/quickstart/app.conf\"; then\n  echo 'the sample app refuses mode = legacy' >&2\n  exit 1\nfi\n",
    )?;
    crate::quickstart::set_mode(
        &release.tree.join("usr/lib/cairn/health-check.d/50-app"),
        0o755,
    )?;
    crate::quickstart::write(
        &release.tree.join("usr/lib/os-release"),
        "NAME=\"Sample OS\"\nPRETTY_NAME=\"Sample OS\"\nVERSION_ID=3\n",
    )?;
    let third = crate::quickstart::commit(release.repo, release.tree, "Sample OS 3", "3")?;
    release
        .repo
        .sign_commit(&third, std::slice::from_ref(release.key))?;
    cairn_store::summary::update_summary(release.repo, crate::quickstart::now())?;
    println!("release 3 published ({third}), with a health check for its app");

    // The graph: 3 rolls out from 0% to everyone over an hour, starting in 10 minutes.
    let t0 = crate::quickstart::now() as i64;
    let start = t0 + 600;
    let graph_dir = dir.join("graph");
    fs::create_dir_all(&graph_dir)?;
    let entry = |version: &str, checksum: &Checksum| {
        serde_json::json!({"version": version, "metadata": format!("https://example.invalid/{version}"),
            "commits": [{"architecture": std::env::consts::ARCH, "checksum": checksum.to_string()}]})
    };
    let modified = serde_json::json!({"last-modified": cairn_time::format_rfc3339(t0)});
    fs::write(
        graph_dir.join("releases-stable.json"),
        serde_json::json!({"stream": "stable", "metadata": modified,
            "releases": [entry("1", first), entry("2", second), entry("3", &third)]})
        .to_string(),
    )?;
    fs::write(
        graph_dir.join("updates-stable.json"),
        serde_json::json!({"stream": "stable", "metadata": modified, "releases": [
            {"version": "2", "metadata": {"rollout": {"start_epoch": t0 - 86_400, "start_percentage": 1.0}}},
            {"version": "3", "metadata": {"rollout": {"start_epoch": start, "start_percentage": 0.0, "duration_minutes": 60}}},
        ]})
        .to_string(),
    )?;
    let graph = cairn_graph_server::spawn(
        cairn_graph_server::Settings::from_dir(&graph_dir, &["stable"], Some(t0)),
        "127.0.0.1:0".parse()?,
    )?;
    let mut settings = cairn_lock_server::Settings::with_slots([(GROUP, SLOTS)]);
    settings.admin_token = Some("quickstart".into());
    let lock = cairn_lock_server::spawn(
        cairn_lock_server::Service::new(
            cairn_lock::EmbeddedStore::open(&dir.join("lock"))?,
            settings,
        ),
        "127.0.0.1:0".parse()?,
    )?;
    println!(
        "graph service on {} (rollout of 3: 0% in 10 minutes, everyone an hour later); lock service on {} ({SLOTS} reboot slots)",
        graph.addr, lock.addr
    );

    let timeout = std::time::Duration::from_secs(30);
    let mut machines = Vec::new();
    for (n, (name, root, wariness)) in roots.into_iter().enumerate() {
        let cmdline = dir.join(format!("{name}.cmdline"));
        let node_uuid = format!("{:032x}", 0x5eed_0000 + n as u128);
        let mut machine = Machine {
            name: name.clone(),
            root: root.clone(),
            cmdline: cmdline.clone(),
            wariness,
            agent: new_agent(n as u64),
            graph: HttpGraph::new(
                &format!("http://{}", graph.addr),
                &GraphQuery {
                    basearch: std::env::consts::ARCH.into(),
                    stream: "stable".into(),
                    rollout_wariness: Some(wariness),
                    node_uuid: node_uuid.clone(),
                    group: GROUP.into(),
                    os_version: "2".into(),
                    os_checksum: second.to_string(),
                },
                timeout,
            )
            .map_err(anyhow::Error::msg)?,
            lock: HttpLock::new(
                &format!("http://{}", lock.addr),
                &node_uuid,
                GROUP,
                None,
                timeout,
            )
            .map_err(anyhow::Error::msg)?,
            deployments: Deployments::new(
                root,
                Some(BootSource {
                    cmdline,
                    boot_id: None,
                }),
                vec!["true".into()],
                false,
            ),
            wake: t0,
            reboot_at: None,
            boots: 1,
        };
        boot(&machine)?;
        machine.wake = t0;
        machines.push(machine);
    }

    // The simulated clock: a minute at a time, for two hours.
    for t in (t0..=t0 + 7200).step_by(60) {
        graph.service.set_now(Some(t));
        for machine in &mut machines {
            if let Some(at) = machine.reboot_at.filter(|at| t >= *at) {
                reboot(machine, at, t0)?;
            }
            if machine.reboot_at.is_none() && t >= machine.wake {
                let mut ports = Ports {
                    graph: &mut machine.graph,
                    lock: &mut machine.lock,
                    sysroot: &mut machine.deployments,
                };
                let (events, wake) = machine.agent.step(t, &mut ports);
                for event in events {
                    if !event.message.starts_with("booted ") {
                        println!(
                            "{} {} (wariness {:.1}): {}",
                            minutes(t, t0),
                            machine.name,
                            machine.wariness,
                            event.message
                        );
                    }
                }
                machine.wake = wake;
                if matches!(machine.agent.state(), State::Rebooting { .. }) {
                    machine.reboot_at = Some(t + REBOOT_MINUTES * 60);
                }
            }
        }
        if t >= start + 3600
            && machines
                .iter()
                .all(|m| m.reboot_at.is_none() && matches!(m.agent.state(), State::Steady))
        {
            break;
        }
    }
    println!("the fleet now:");
    for machine in &mut machines {
        let status = machine.agent.status();
        let booted = status.booted.map_or("?".to_string(), |b| b.version);
        let skipped: Vec<String> = status
            .skipped
            .iter()
            .map(|(release, why)| format!("not taking {}: {why}", release.version))
            .collect();
        println!(
            "  {}: booted {booted}{}",
            machine.name,
            if skipped.is_empty() {
                String::new()
            } else {
                format!("; {}", skipped.join("; "))
            }
        );
    }
    drop(server);
    Ok(())
}

fn new_agent(seed: u64) -> Agent {
    Agent::new(Settings {
        enabled: true,
        strategy: Strategy::FleetLock,
        steady_interval: 300,
        constraints: Constraints::default(),
        jitter_seed: seed + 1,
    })
}

/// The machine comes up on its new default deployment and runs its health checks; a
/// failure rolls it back (and it boots again, on the old release). A new agent starts.
fn reboot(machine: &mut Machine, at: i64, t0: i64) -> Result<()> {
    machine.boots += 1;
    let sysroot = boot(machine)?;
    let outcome = cairn_sysroot::health::health_check(
        &sysroot,
        &HealthOptions {
            max_failed_boots: 1,
            timeout: std::time::Duration::from_secs(30),
            boot_id: format!("{}-boot-{}", machine.name, machine.boots),
        },
    )?;
    let version = |d: &cairn_sysroot::sysroot::Deployment| -> String {
        sysroot
            .repo()
            .read_commit(&d.checksum)
            .ok()
            .and_then(|c| c.version().map(str::to_owned))
            .unwrap_or_default()
    };
    match outcome {
        HealthOutcome::Good(d, n) => println!(
            "{} {}: booted {}; {n} health checks passed",
            minutes(at, t0),
            machine.name,
            version(&d)
        ),
        HealthOutcome::AlreadyGood(d) => {
            println!(
                "{} {}: booted {}",
                minutes(at, t0),
                machine.name,
                version(&d)
            )
        }
        HealthOutcome::RolledBack { from, to, failures } => {
            println!(
                "{} {}: booted {}; health check failed ({}): rolled back to {}, {} recorded as bad",
                minutes(at, t0),
                machine.name,
                version(&from),
                failures.join("; "),
                version(&to),
                version(&from)
            );
            machine.boots += 1;
            boot(machine)?;
        }
        other => anyhow::bail!("{}: unexpected health outcome {other:?}", machine.name),
    }
    machine.agent = new_agent(machine.boots as u64);
    machine.reboot_at = None;
    machine.wake = at;
    Ok(())
}
