//! `cairn admin`: deployments on a sysroot, with `ostree admin`'s verbs and option names.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use cairn_store::Checksum;
use cairn_sysroot::deploy::{
    self, DeployOptions, FinalizeOutcome, KargsEdit, UpgradeOptions, UpgradeOutcome,
};
use cairn_sysroot::health::{self, Health, HealthOptions, HealthOutcome};
use cairn_sysroot::sysroot::BootSource;
use cairn_sysroot::{Deployment, State, Sysroot};
use clap::{Args, Subcommand};
use serde::Serialize;

#[derive(Args)]
pub struct AdminArgs {
    /// The sysroot to act on.
    #[arg(long, global = true, default_value = "/")]
    sysroot: PathBuf,
    /// Read the booted deployment's `ostree=` from this file instead of /proc/cmdline.
    #[arg(long, global = true, env = "CAIRN_CMDLINE")]
    cmdline: Option<PathBuf>,
    /// Identifies the current boot (default: /proc/sys/kernel/random/boot_id).
    #[arg(long, global = true, env = "CAIRN_BOOT_ID", hide = true)]
    boot_id: Option<String>,
    #[command(subcommand)]
    verb: Verb,
}

#[derive(Args, Default)]
struct KargArgs {
    /// Set KEY=VALUE, replacing any value of KEY (repeatable).
    #[arg(long = "karg", value_name = "KEY=VALUE")]
    replace: Vec<String>,
    /// Append an argument even if its key is present (repeatable).
    #[arg(long = "karg-append", value_name = "ARG")]
    append: Vec<String>,
    /// Delete KEY (every value) or KEY=VALUE (repeatable).
    #[arg(long = "karg-delete", value_name = "ARG")]
    delete: Vec<String>,
}

impl KargArgs {
    fn edit(&self) -> KargsEdit {
        KargsEdit {
            replace: self.replace.clone(),
            append: self.append.clone(),
            delete: self.delete.clone(),
        }
    }
}

#[derive(Subcommand)]
enum Verb {
    /// Create the sysroot layout and its repository (PATH or --sysroot).
    InitFs {
        path: Option<PathBuf>,
    },
    /// Create a stateroot with its shared /var.
    OsInit {
        stateroot: String,
    },
    /// Deploy a ref or commit of the sysroot's repository.
    Deploy {
        /// REF, REMOTE:REF or a commit checksum.
        rev: String,
        #[arg(long, visible_alias = "os")]
        stateroot: Option<String>,
        #[command(flatten)]
        kargs: KargArgs,
        /// Prepare now; write the boot entries at shutdown (finalize-staged).
        #[arg(long)]
        stage: bool,
        /// With --stage: finalize only on `finalize-deployment`.
        #[arg(long, requires = "stage")]
        lock_finalization: bool,
        /// Deploy a commit recorded as bad by the health checks.
        #[arg(long)]
        allow_bad: bool,
        /// Keep all existing deployments.
        #[arg(long)]
        retain: bool,
    },
    /// Pull the origin's ref from its remote, then deploy it if it changed.
    Upgrade {
        #[arg(long, visible_alias = "os")]
        stateroot: Option<String>,
        #[arg(long)]
        allow_downgrade: bool,
        #[arg(long)]
        allow_bad: bool,
        #[arg(long)]
        stage: bool,
        #[arg(long, requires = "stage")]
        lock_finalization: bool,
    },
    /// List deployments: booted, staged, pending, rollback.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Make the rollback deployment the default (or drop a pending one).
    Rollback,
    /// Remove the deployment at INDEX (boot order, from 0).
    Undeploy {
        index: usize,
    },
    /// Remove what no deployment references, and prune the repository.
    Cleanup,
    /// Keep the deployment at INDEX whatever later deploys do.
    Pin {
        index: usize,
    },
    Unpin {
        index: usize,
    },
    /// Show or edit a deployment's kernel arguments (default: booted, else the first).
    Kargs {
        #[arg(long)]
        deployment: Option<usize>,
        /// Set KEY=VALUE, replacing any value of KEY.
        #[arg(long)]
        replace: Vec<String>,
        #[arg(long)]
        append: Vec<String>,
        #[arg(long)]
        delete: Vec<String>,
    },
    /// Write a staged deployment into the boot entries (run at shutdown).
    FinalizeStaged,
    /// Finalize a staged deployment now, even if its finalization is locked.
    FinalizeDeployment {
        /// Finalize only if the staged deployment is this commit.
        checksum: Option<Checksum>,
    },
    /// Run the booted deployment's health checks; count failed boots; roll back at the limit.
    HealthCheck {
        /// Failed boots after which the sysroot rolls back.
        #[arg(long, default_value_t = 3)]
        max_failed_boots: u32,
        /// Seconds allowed to each check.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
        /// Run this after a failure or rollback (e.g. "systemctl reboot").
        #[arg(long)]
        reboot_command: Option<String>,
        /// Forget that this commit was recorded as bad, then exit.
        #[arg(long, value_name = "CHECKSUM")]
        forget_bad: Option<Checksum>,
    },
}

fn open(args: &AdminArgs) -> Result<Sysroot> {
    let mut boot = BootSource::default();
    if let Some(cmdline) = &args.cmdline {
        boot.cmdline = cmdline.clone();
    }
    if let Some(id) = &args.boot_id {
        boot.boot_id = Some(id.clone());
    }
    Ok(Sysroot::open(&args.sysroot)?.with_boot_source(boot))
}

pub fn run(args: AdminArgs) -> Result<i32> {
    let mut out = std::io::stdout().lock();
    match &args.verb {
        Verb::InitFs { path } => {
            let path = path.as_deref().unwrap_or(&args.sysroot);
            Sysroot::init_fs(path)?;
            writeln!(out, "initialised sysroot {}", path.display())?;
        }
        Verb::OsInit { stateroot } => {
            open(&args)?.os_init(stateroot)?;
            writeln!(out, "ostree/deploy/{stateroot} initialized as OSTree root")?;
        }
        Verb::Deploy {
            rev,
            stateroot,
            kargs,
            stage,
            lock_finalization,
            allow_bad,
            retain,
        } => {
            let sysroot = open(&args)?;
            let deployed = deploy::deploy(
                &sysroot,
                rev,
                &DeployOptions {
                    stateroot: stateroot.clone(),
                    kargs: kargs.edit(),
                    stage: *stage,
                    lock_finalization: *lock_finalization,
                    allow_bad: *allow_bad,
                    retain: *retain,
                    origin_refspec: None,
                },
            )
            .with_context(|| format!("deploy {rev}"))?;
            report_deployed(&mut out, &deployed)?;
        }
        Verb::Upgrade {
            stateroot,
            allow_downgrade,
            allow_bad,
            stage,
            lock_finalization,
        } => {
            let sysroot = open(&args)?;
            let outcome = deploy::upgrade(
                &sysroot,
                &UpgradeOptions {
                    stateroot: stateroot.clone(),
                    allow_downgrade: *allow_downgrade,
                    allow_bad: *allow_bad,
                    stage: *stage,
                    lock_finalization: *lock_finalization,
                    pull: cairn_store::pull::PullOptions {
                        progress: false,
                        ..Default::default()
                    },
                },
            )
            .context("upgrade")?;
            match outcome {
                UpgradeOutcome::NoUpdate(c) => writeln!(out, "No update available ({c})")?,
                UpgradeOutcome::Deployed(d) => report_deployed(&mut out, &d)?,
            }
        }
        Verb::Status { json } => {
            let sysroot = open(&args)?;
            let state = sysroot.load()?;
            if *json {
                serde_json::to_writer_pretty(&mut out, &status_json(&sysroot, &state)?)?;
                writeln!(out)?;
            } else {
                print_status(&mut out, &sysroot, &state)?;
            }
        }
        Verb::Rollback => {
            let d = deploy::rollback(&open(&args)?).context("rollback")?;
            writeln!(
                out,
                "Moving {} {} to be first deployment; reboot to boot it",
                d.stateroot,
                d.dir_name()
            )?;
        }
        Verb::Undeploy { index } => {
            let d = deploy::undeploy(&open(&args)?, *index).context("undeploy")?;
            writeln!(out, "Deleted deployment {}", d.dir_name())?;
        }
        Verb::Cleanup => {
            let report = cairn_sysroot::write::cleanup(&open(&args)?).context("cleanup")?;
            writeln!(
                out,
                "removed {} deployments, {} kernels; pruned {} objects ({} bytes)",
                report.removed_deployments.len(),
                report.removed_kernels,
                report.pruned_objects,
                report.freed_bytes
            )?;
        }
        Verb::Pin { index } | Verb::Unpin { index } => {
            let pin = matches!(args.verb, Verb::Pin { .. });
            deploy::set_pinned(&open(&args)?, *index, pin)?;
            let what = if pin {
                "now pinned"
            } else {
                "no longer pinned"
            };
            writeln!(out, "Deployment {index} is {what}")?;
        }
        Verb::Kargs {
            deployment,
            replace,
            append,
            delete,
        } => {
            let sysroot = open(&args)?;
            let state = sysroot.load()?;
            let index = deployment.or(state.booted).unwrap_or(0);
            let edit = KargsEdit {
                replace: replace.clone(),
                append: append.clone(),
                delete: delete.clone(),
            };
            if edit.is_empty() {
                let d = state
                    .deployments
                    .get(index)
                    .with_context(|| format!("no deployment {index}"))?;
                writeln!(out, "{}", d.kargs.to_cmdline())?;
            } else {
                let d = deploy::set_kargs(&sysroot, index, &edit)?;
                writeln!(out, "{}", d.kargs.to_cmdline())?;
            }
        }
        Verb::FinalizeStaged => match deploy::finalize_staged(&open(&args)?, false, None)? {
            FinalizeOutcome::NothingStaged => writeln!(out, "No staged deployment")?,
            FinalizeOutcome::Locked(d) => writeln!(
                out,
                "Staged deployment {} is locked; not finalized (use finalize-deployment)",
                d.dir_name()
            )?,
            FinalizeOutcome::Finalized(d) => {
                writeln!(out, "Finalized staged deployment {}", d.dir_name())?
            }
        },
        Verb::FinalizeDeployment { checksum } => {
            match deploy::finalize_staged(&open(&args)?, true, checksum.as_ref())? {
                FinalizeOutcome::NothingStaged => bail!("no staged deployment to finalize"),
                FinalizeOutcome::Locked(_) => {
                    unreachable!("explicit finalization ignores the lock")
                }
                FinalizeOutcome::Finalized(d) => writeln!(
                    out,
                    "Finalized deployment {}; reboot to boot it",
                    d.dir_name()
                )?,
            }
        }
        Verb::HealthCheck {
            max_failed_boots,
            timeout,
            reboot_command,
            forget_bad,
        } => {
            let sysroot = open(&args)?;
            if let Some(checksum) = forget_bad {
                let found = health::forget_bad(&sysroot, checksum)?;
                writeln!(
                    out,
                    "{checksum} {}",
                    if found {
                        "is no longer recorded as bad"
                    } else {
                        "was not recorded as bad"
                    }
                )?;
                return Ok(0);
            }
            let boot_id = args
                .boot_id
                .clone()
                .or_else(|| BootSource::default().boot_id)
                .unwrap_or_else(|| "unknown".into());
            let outcome = health::health_check(
                &sysroot,
                &HealthOptions {
                    max_failed_boots: *max_failed_boots,
                    timeout: Duration::from_secs(*timeout),
                    boot_id,
                },
            )?;
            let code = match outcome {
                HealthOutcome::AlreadyGood(d) => {
                    writeln!(out, "{} was marked good on an earlier boot", d.dir_name())?;
                    0
                }
                HealthOutcome::Good(d, n) => {
                    writeln!(
                        out,
                        "{}: {n} health checks passed; marked good",
                        d.dir_name()
                    )?;
                    0
                }
                HealthOutcome::Failed {
                    deployment,
                    failures,
                    failed_boots,
                    max_failed_boots,
                } => {
                    for f in &failures {
                        eprintln!("health check failed: {f}");
                    }
                    writeln!(
                        out,
                        "{}: health checks failed on {failed_boots} of {max_failed_boots} boots",
                        deployment.dir_name()
                    )?;
                    run_reboot(reboot_command.as_deref())?;
                    1
                }
                HealthOutcome::NoRollbackTarget {
                    deployment,
                    failures,
                } => {
                    for f in &failures {
                        eprintln!("health check failed: {f}");
                    }
                    writeln!(
                        out,
                        "{}: health checks failed on {max_failed_boots} boots, but no other deployment is there to roll back to; recorded {} as bad and staying (no reboot)",
                        deployment.dir_name(),
                        deployment.checksum
                    )?;
                    1
                }
                HealthOutcome::RolledBack { from, to, failures } => {
                    for f in &failures {
                        eprintln!("health check failed: {f}");
                    }
                    writeln!(
                        out,
                        "{}: health checks failed on {max_failed_boots} boots; recorded {} as bad and rolled back to {}",
                        from.dir_name(),
                        from.checksum,
                        to.dir_name()
                    )?;
                    run_reboot(reboot_command.as_deref())?;
                    1
                }
            };
            return Ok(code);
        }
    }
    Ok(0)
}

fn run_reboot(command: Option<&str>) -> Result<()> {
    if let Some(command) = command {
        let status = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(command)
            .status()
            .with_context(|| format!("run reboot command {command:?}"))?;
        if !status.success() {
            bail!("reboot command {command:?} failed: {status}");
        }
    }
    Ok(())
}

fn report_deployed(out: &mut impl Write, d: &deploy::Deployed) -> Result<()> {
    let etc = &d.etc;
    writeln!(
        out,
        "Copying /etc changes: {} modified, {} removed, {} added",
        etc.modified.len(),
        etc.removed.len(),
        etc.added.len()
    )?;
    if d.staged {
        writeln!(
            out,
            "Staged {} {}; it is written to the boot entries at shutdown",
            d.deployment.stateroot,
            d.deployment.dir_name()
        )?;
    } else {
        writeln!(
            out,
            "Deployed {} {}; reboot to boot it",
            d.deployment.stateroot,
            d.deployment.dir_name()
        )?;
    }
    Ok(())
}

/// `cairn admin status --json`: one object per deployment, staged first.
#[derive(Serialize)]
struct StatusJson {
    deployments: Vec<DeploymentJson>,
    bad_commits: Vec<BadJson>,
}

#[derive(Serialize)]
struct BadJson {
    checksum: String,
    reason: String,
}

#[derive(Serialize)]
struct DeploymentJson {
    /// Position in boot order; `null` for a staged deployment.
    index: Option<usize>,
    stateroot: String,
    checksum: String,
    serial: u32,
    booted: bool,
    staged: bool,
    /// Boots by default next time.
    default: bool,
    pending: bool,
    rollback: bool,
    pinned: bool,
    finalization_locked: bool,
    version: Option<String>,
    timestamp: Option<u64>,
    origin: Option<String>,
    kargs: String,
    bootcsum: String,
    health: String,
    bad: bool,
}

fn describe(
    sysroot: &Sysroot,
    state: &State,
    d: &Deployment,
    index: Option<usize>,
    bad: &std::collections::BTreeMap<Checksum, String>,
) -> Result<DeploymentJson> {
    let commit = sysroot.repo().read_commit(&d.checksum).ok();
    let booted = index.is_some() && index == state.booted;
    let (pending, rollback) = match (index, state.booted) {
        (Some(i), Some(b)) => (i < b, i > b),
        _ => (false, false),
    };
    let staged = index.is_none();
    Ok(DeploymentJson {
        index,
        stateroot: d.stateroot.clone(),
        checksum: d.checksum.to_string(),
        serial: d.serial,
        booted,
        staged,
        default: index == Some(0) && state.staged.is_none(),
        pending,
        rollback,
        pinned: d.pinned(),
        finalization_locked: staged && state.staged.as_ref().is_some_and(|s| s.locked),
        version: commit.as_ref().and_then(|c| c.version().map(str::to_owned)),
        timestamp: commit.as_ref().map(|c| c.timestamp),
        origin: d.refspec().map(str::to_owned),
        kargs: d.kargs.to_cmdline(),
        bootcsum: d.bootcsum.clone(),
        health: match health::health_of(sysroot, d)? {
            Health::Unknown => "unknown".into(),
            Health::Good => "good".into(),
            Health::Failing(n) => format!("failing ({n} boots)"),
        },
        bad: bad.contains_key(&d.checksum),
    })
}

fn status_json(sysroot: &Sysroot, state: &State) -> Result<StatusJson> {
    let bad = health::bad_commits(sysroot)?;
    let mut deployments = Vec::new();
    if let Some(staged) = &state.staged {
        deployments.push(describe(sysroot, state, &staged.deployment, None, &bad)?);
    }
    for (i, d) in state.deployments.iter().enumerate() {
        deployments.push(describe(sysroot, state, d, Some(i), &bad)?);
    }
    Ok(StatusJson {
        deployments,
        bad_commits: bad
            .into_iter()
            .map(|(c, reason)| BadJson {
                checksum: c.to_string(),
                reason,
            })
            .collect(),
    })
}

/// The text `ostree admin status` prints, with cairn's health and bad markers added.
pub(crate) fn print_status(out: &mut impl Write, sysroot: &Sysroot, state: &State) -> Result<()> {
    let status = status_json(sysroot, state)?;
    if status.deployments.is_empty() {
        writeln!(out, "No deployments.")?;
    }
    for d in &status.deployments {
        let marker = if d.booted { "*" } else { " " };
        let tag = if d.staged {
            if d.finalization_locked {
                " (staged, finalization locked)"
            } else {
                " (staged)"
            }
        } else if d.pending {
            " (pending)"
        } else if d.rollback {
            " (rollback)"
        } else {
            ""
        };
        writeln!(
            out,
            "{marker} {} {}.{}{tag}",
            d.stateroot, d.checksum, d.serial
        )?;
        if let Some(v) = &d.version {
            writeln!(out, "    Version: {v}")?;
        }
        if d.pinned {
            writeln!(out, "    Pinned: yes")?;
        }
        match &d.origin {
            Some(o) => writeln!(out, "    origin refspec: {o}")?,
            None => writeln!(out, "    origin: <unknown origin type>")?,
        }
        if d.health != "unknown" {
            writeln!(out, "    Health: {}", d.health)?;
        }
        if d.bad {
            writeln!(out, "    Bad: failed its health checks; upgrades skip it")?;
        }
    }
    Ok(())
}

/// Writes what a boot loader would pass when booting the default entry: a simulated
/// reboot for tests and the quickstart.
pub fn simulate_boot(sysroot: &Path, cmdline_file: &Path) -> Result<()> {
    let loader = std::fs::read_link(sysroot.join("boot/loader")).context("read boot/loader")?;
    let entries = sysroot.join("boot").join(loader).join("entries");
    let mut best: Option<(u64, String)> = None;
    for entry in
        std::fs::read_dir(&entries).with_context(|| format!("read {}", entries.display()))?
    {
        let text = std::fs::read_to_string(entry?.path())?;
        let parsed = cairn_sysroot::bls::BootEntry::parse(&text);
        let version = parsed.sort_version();
        if best.as_ref().is_none_or(|(v, _)| version > *v) {
            best = Some((version, parsed.get("options").unwrap_or("").to_owned()));
        }
    }
    let (_, options) = best.context("no boot entries")?;
    std::fs::write(cmdline_file, format!("{options}\n"))
        .with_context(|| format!("write {}", cmdline_file.display()))
}
