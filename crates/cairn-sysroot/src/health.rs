//! Self-healing: health checks after boot, boot counting, automatic rollback, and the
//! record of bad commits that no later upgrade takes again.
//!
//! Checks are executables in the booted deployment's `/usr/lib/cairn/health-check.d/`
//! and `/etc/cairn/health-check.d/`; a name in `/etc` replaces the same name in `/usr/lib`,
//! and an `/etc` symlink to `/dev/null` disables it (as systemd does with units). They run
//! in name order with the deployment as working directory and `CAIRN_SYSROOT`,
//! `CAIRN_DEPLOYMENT` in the environment.
//!
//! State is kept in `/ostree/cairn/health`, a key file that survives reboots:
//!
//! ```text
//! [deployment fcos/<checksum>.<serial>]
//! state=good            # or: failing
//! failed-boots=2
//! last-boot=<boot id>   # a boot is counted once however often the checks run
//!
//! [bad]
//! <checksum>=failed health checks on 3 boots
//! ```

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use cairn_store::keyfile::KeyFile;
use cairn_store::repo::write_file_atomic;
use cairn_store::Checksum;

use crate::error::{Error, IoContext, Result};
use crate::sysroot::{Deployment, State, Sysroot};
use crate::write::write_deployments;

const BAD: &str = "bad";

fn state_path(sysroot: &Sysroot) -> PathBuf {
    sysroot.state_dir().join("health")
}

fn read_state(sysroot: &Sysroot) -> Result<KeyFile> {
    let path = state_path(sysroot);
    match fs::read_to_string(&path) {
        Ok(text) => KeyFile::parse(&text)
            .map_err(|why| Error::Invalid(format!("{}: {why}", path.display()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(KeyFile::default()),
        Err(e) => Err(Error::Io { path, error: e }),
    }
}

fn write_state(sysroot: &Sysroot, state: &KeyFile) -> Result<()> {
    let dir = sysroot.state_dir();
    fs::create_dir_all(&dir).at(&dir)?;
    let path = state_path(sysroot);
    cairn_store::fault::io_point("sysroot").at(&path)?;
    write_file_atomic(&path, state.to_text().as_bytes(), true)?;
    Ok(())
}

fn group(d: &Deployment) -> String {
    format!("deployment {}/{}", d.stateroot, d.dir_name())
}

/// What the health record says of one deployment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Health {
    /// Never checked (a deployment that has not been booted, or checks never ran).
    Unknown,
    /// Checks failed on this many boots.
    Failing(u32),
    Good,
}

pub fn health_of(sysroot: &Sysroot, d: &Deployment) -> Result<Health> {
    let state = read_state(sysroot)?;
    let g = group(d);
    Ok(match state.get(&g, "state") {
        Some("good") => Health::Good,
        Some(_) => Health::Failing(
            state
                .get(&g, "failed-boots")
                .and_then(|n| n.parse().ok())
                .unwrap_or(0),
        ),
        None => Health::Unknown,
    })
}

/// Commits recorded as bad, with the reason.
pub fn bad_commits(sysroot: &Sysroot) -> Result<BTreeMap<Checksum, String>> {
    let state = read_state(sysroot)?;
    Ok(state
        .entries(BAD)
        .into_iter()
        .filter_map(|(k, v)| Some((Checksum::from_str(k).ok()?, v.to_owned())))
        .collect())
}

pub fn is_bad(sysroot: &Sysroot, checksum: &Checksum) -> Result<bool> {
    Ok(bad_commits(sysroot)?.contains_key(checksum))
}

/// Forgets that a commit was bad (`cairn admin health-check --forget-bad`).
pub fn forget_bad(sysroot: &Sysroot, checksum: &Checksum) -> Result<bool> {
    let _lock = sysroot.lock()?;
    let mut state = read_state(sysroot)?;
    let mut kept = KeyFile::default();
    let mut found = false;
    for name in state.group_names().map(str::to_owned).collect::<Vec<_>>() {
        for (k, v) in state.entries(&name) {
            if name == BAD && k == checksum.to_string() {
                found = true;
            } else {
                kept.set(&name, k, v);
            }
        }
    }
    if found {
        state = kept;
        write_state(sysroot, &state)?;
    }
    Ok(found)
}

/// Drops the records of deployments that no longer exist.
pub(crate) fn forget_missing(sysroot: &Sysroot, live: &State) -> Result<()> {
    let state = read_state(sysroot)?;
    let mut kept = KeyFile::default();
    let mut changed = false;
    let live_groups: Vec<String> = live
        .deployments
        .iter()
        .chain(live.staged.as_ref().map(|s| &s.deployment))
        .map(group)
        .collect();
    for name in state.group_names() {
        if name.starts_with("deployment ") && !live_groups.iter().any(|g| g == name) {
            changed = true;
            continue;
        }
        for (k, v) in state.entries(name) {
            kept.set(name, k, v);
        }
    }
    if changed {
        write_state(sysroot, &kept)?;
    }
    Ok(())
}

#[derive(Clone, Debug)]
pub struct HealthOptions {
    /// Failed boots after which the sysroot rolls back (default 3).
    pub max_failed_boots: u32,
    /// Time allowed to each check.
    pub timeout: Duration,
    /// Identifies this boot, so that a boot is counted once.
    pub boot_id: String,
}

/// A check to run, or why it cannot run (which counts as a failed check: a check that
/// a new release broke must not pass by being skipped).
pub type Check = (String, std::result::Result<PathBuf, String>);

/// The checks to run, by name; a name in `/etc` replaces the same name in `/usr/lib`.
pub fn list_checks(deployment_dir: &Path) -> Vec<Check> {
    let mut checks: BTreeMap<String, Option<PathBuf>> = BTreeMap::new();
    let mut out = Vec::new();
    for rel in ["usr/lib/cairn/health-check.d", "etc/cairn/health-check.d"] {
        let dir = deployment_dir.join(rel);
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                out.push((
                    format!("/{rel}"),
                    Err(format!("cannot read the directory: {e}")),
                ));
                continue;
            }
        };
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    out.push((
                        format!("/{rel}"),
                        Err(format!("cannot read the directory: {e}")),
                    ));
                    continue;
                }
            };
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let path = entry.path();
            let masked = fs::read_link(&path).is_ok_and(|t| t == Path::new("/dev/null"));
            checks.insert(name, (!masked).then_some(path));
        }
    }
    for (name, path) in checks {
        let Some(path) = path else { continue };
        // Resolve within the deployment: a symlink to /usr/… means the deployment's /usr.
        let resolved = match fs::read_link(&path) {
            Ok(target) if target.is_absolute() => {
                deployment_dir.join(target.strip_prefix("/").unwrap_or(&target))
            }
            _ => path.clone(),
        };
        let check = match fs::metadata(&resolved) {
            Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => Ok(resolved),
            Ok(_) => Err("not an executable file".to_owned()),
            Err(e) => Err(format!("cannot run {}: {e}", resolved.display())),
        };
        out.push((name, check));
    }
    out
}

/// Runs one check; `Err` text says why it failed.
fn run_check(
    path: &Path,
    sysroot: &Sysroot,
    deployment_dir: &Path,
    timeout: Duration,
) -> std::result::Result<(), String> {
    let mut child = Command::new(path)
        .current_dir(deployment_dir)
        .env("CAIRN_SYSROOT", sysroot.path())
        .env("CAIRN_DEPLOYMENT", deployment_dir)
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run: {e}"))?;
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(format!("exited with {status}")),
            Ok(None) if start.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("timed out after {}s", timeout.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("wait: {e}")),
        }
    }
}

#[derive(Debug)]
pub enum HealthOutcome {
    /// Already marked good on an earlier boot; nothing ran.
    AlreadyGood(Deployment),
    /// Every check passed (this many); the deployment is now good.
    Good(Deployment, usize),
    /// Some checks failed; this boot was counted.
    Failed {
        deployment: Deployment,
        failures: Vec<String>,
        failed_boots: u32,
        max_failed_boots: u32,
    },
    /// The limit was reached but no other deployment is there to go back to: the commit
    /// is recorded bad and the machine stays (rebooting would not help).
    NoRollbackTarget {
        deployment: Deployment,
        failures: Vec<String>,
    },
    /// The limit was reached: `from` is recorded bad and `to` is the default now.
    RolledBack {
        from: Box<Deployment>,
        to: Box<Deployment>,
        failures: Vec<String>,
    },
}

/// Runs the booted deployment's checks and acts on the result.
pub fn health_check(sysroot: &Sysroot, options: &HealthOptions) -> Result<HealthOutcome> {
    let state = sysroot.load()?;
    let booted = state.booted().cloned().ok_or_else(|| {
        Error::Invalid(
            "no booted deployment: health checks run on a machine booted into this sysroot".into(),
        )
    })?;
    let g = group(&booted);
    if read_state(sysroot)?.get(&g, "state") == Some("good") {
        return Ok(HealthOutcome::AlreadyGood(booted));
    }
    let dir = sysroot.deployment_path(&booted);
    let checks = list_checks(&dir);
    let mut failures = Vec::new();
    for (name, check) in &checks {
        let result = check
            .as_ref()
            .map_err(Clone::clone)
            .and_then(|path| run_check(path, sysroot, &dir, options.timeout));
        if let Err(why) = result {
            failures.push(format!("{name}: {why}"));
        }
    }
    // Checks run unlocked (they may take minutes); recording takes the lock and reads
    // the state again.
    let _lock = sysroot.lock()?;
    let state = sysroot.load()?;
    let mut record = read_state(sysroot)?;
    if failures.is_empty() {
        record.set(&g, "state", "good");
        record.set(&g, "failed-boots", "0");
        write_state(sysroot, &record)?;
        return Ok(HealthOutcome::Good(booted, checks.len()));
    }
    let mut failed_boots: u32 = record
        .get(&g, "failed-boots")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    if record.get(&g, "last-boot") != Some(options.boot_id.as_str()) {
        // Capped: past the limit with nothing to roll back to, counting means nothing.
        failed_boots = (failed_boots + 1).min(options.max_failed_boots);
    }
    record.set(&g, "state", "failing");
    record.set(&g, "failed-boots", &failed_boots.to_string());
    record.set(&g, "last-boot", &options.boot_id);
    if failed_boots < options.max_failed_boots {
        write_state(sysroot, &record)?;
        return Ok(HealthOutcome::Failed {
            deployment: booted,
            failures,
            failed_boots,
            max_failed_boots: options.max_failed_boots,
        });
    }
    let target = state
        .deployments
        .iter()
        .find(|d| {
            !d.same(&booted)
                && d.stateroot == booted.stateroot
                && d.checksum != booted.checksum
                && record.get(BAD, &d.checksum.to_string()).is_none()
        })
        .cloned();
    record.set(
        BAD,
        &booted.checksum.to_string(),
        &format!("failed health checks on {failed_boots} boots"),
    );
    write_state(sysroot, &record)?;
    let Some(target) = target else {
        return Ok(HealthOutcome::NoRollbackTarget {
            deployment: booted,
            failures,
        });
    };
    let mut list: Vec<Deployment> = state
        .deployments
        .iter()
        .filter(|d| !d.same(&target))
        .cloned()
        .collect();
    list.insert(0, target.clone());
    write_deployments(sysroot, &state, &list)?;
    if let Err(e) = crate::write::cleanup_locked(sysroot) {
        tracing::warn!("cleanup after the rollback failed: {e}");
    }
    Ok(HealthOutcome::RolledBack {
        from: Box::new(booted),
        to: Box::new(target),
        failures,
    })
}
