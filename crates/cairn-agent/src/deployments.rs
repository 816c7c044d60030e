//! The agent's [`Sysroot`] port on a real sysroot (`cairn-sysroot`): what is booted and
//! staged, which releases failed their health check here, staging a release with its
//! finalization locked (as Zincati has rpm-ostree do), and finalizing then rebooting.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use cairn_store::pull::PullOptions;
use cairn_store::Checksum;
use cairn_sysroot::deploy::{self, DeployOptions, FinalizeOutcome, UpgradeOptions, UpgradeOutcome};
use cairn_sysroot::sysroot::BootSource;

use crate::machine::Sysroot;
use crate::select::Release;

/// A sysroot on disk and the command that reboots the machine.
pub struct Deployments {
    root: PathBuf,
    boot: Option<BootSource>,
    reboot_command: Vec<String>,
    allow_downgrade: bool,
    pull_timeout: Duration,
}

impl Deployments {
    /// `root` is `/` on a machine; `boot` overrides where the booted deployment is read from
    /// (tests, simulations); `reboot_command` is `agent.reboot_command`; `allow_downgrade` is
    /// `updates.allow_downgrade`.
    pub fn new(
        root: PathBuf,
        boot: Option<BootSource>,
        reboot_command: Vec<String>,
        allow_downgrade: bool,
    ) -> Deployments {
        Deployments {
            root,
            boot,
            reboot_command,
            allow_downgrade,
            pull_timeout: Duration::from_secs(120),
        }
    }

    fn open(&self) -> Result<cairn_sysroot::Sysroot, String> {
        let sysroot = cairn_sysroot::Sysroot::open(&self.root)
            .map_err(|e| format!("open the sysroot {}: {e}", self.root.display()))?;
        Ok(match &self.boot {
            Some(boot) => sysroot.with_boot_source(boot.clone()),
            None => sysroot,
        })
    }

    fn release(sysroot: &cairn_sysroot::Sysroot, checksum: &Checksum) -> Result<Release, String> {
        let commit = sysroot
            .repo()
            .read_commit(checksum)
            .map_err(|e| format!("read commit {checksum}: {e}"))?;
        Ok(Release {
            version: commit.version().unwrap_or("(no version)").to_string(),
            checksum: checksum.to_string(),
        })
    }
}

fn checksum(release: &Release) -> Result<Checksum, String> {
    release.checksum.parse().map_err(|_| {
        format!(
            "release {}: {:?} is not a commit checksum",
            release.version, release.checksum
        )
    })
}

impl Sysroot for Deployments {
    fn booted(&mut self) -> Result<Release, String> {
        let sysroot = self.open()?;
        let state = sysroot.load().map_err(|e| e.to_string())?;
        let booted = state
            .booted()
            .ok_or("no deployment of this sysroot is booted")?;
        Deployments::release(&sysroot, &booted.checksum)
    }

    fn staged(&mut self) -> Result<Option<Release>, String> {
        let sysroot = self.open()?;
        let state = sysroot.load().map_err(|e| e.to_string())?;
        match state.staged {
            Some(staged) => Ok(Some(Deployments::release(
                &sysroot,
                &staged.deployment.checksum,
            )?)),
            None => Ok(None),
        }
    }

    fn bad_releases(&mut self) -> Result<BTreeMap<String, String>, String> {
        let sysroot = self.open()?;
        let bad = cairn_sysroot::health::bad_commits(&sysroot).map_err(|e| e.to_string())?;
        Ok(bad
            .into_iter()
            .map(|(checksum, reason)| (checksum.to_string(), reason))
            .collect())
    }

    /// Stages the release's commit with finalization locked, keeping the booted deployment's
    /// origin so later updates follow it. With a remote origin (`remote:branch`) this is the
    /// sysroot's own upgrade, pulling the graph's exact commit instead of the branch's head
    /// (and so with its checks: signatures, bad commits, downgrades).
    fn stage(&mut self, release: &Release) -> Result<(), String> {
        let commit = checksum(release)?;
        let sysroot = self.open()?;
        let state = sysroot.load().map_err(|e| e.to_string())?;
        let booted = state
            .booted()
            .cloned()
            .ok_or("no deployment of this sysroot is booted")?;
        let refspec = booted
            .refspec()
            .map(str::to_owned)
            .ok_or_else(|| format!("the booted deployment {} has no origin", booted.dir_name()))?;
        let staged = if refspec.contains(':') {
            let options = UpgradeOptions {
                stateroot: Some(booted.stateroot.clone()),
                allow_downgrade: self.allow_downgrade,
                stage: true,
                lock_finalization: true,
                pull: PullOptions {
                    override_commit: Some(commit),
                    timeout: self.pull_timeout,
                    progress: false,
                    ..PullOptions::default()
                },
                ..UpgradeOptions::default()
            };
            match deploy::upgrade(&sysroot, &options).map_err(|e| format!("stage {commit}: {e}"))? {
                UpgradeOutcome::Deployed(deployed) => deployed.deployment.checksum,
                UpgradeOutcome::NoUpdate(current) => current,
            }
        } else {
            // A local ref: its head need not be the graph's choice, so deploy the commit itself.
            if !sysroot
                .repo()
                .has_object(&commit, cairn_store::ObjectType::Commit)
            {
                return Err(format!(
                    "the origin {refspec:?} names no remote, and {commit} is not in the repository"
                ));
            }
            let options = DeployOptions {
                stateroot: Some(booted.stateroot.clone()),
                stage: true,
                lock_finalization: true,
                origin_refspec: Some(refspec),
                ..DeployOptions::default()
            };
            deploy::deploy(&sysroot, &commit.to_string(), &options)
                .map_err(|e| format!("stage {commit}: {e}"))?
                .deployment
                .checksum
        };
        if staged != commit {
            return Err(format!("asked to stage {commit}, the sysroot has {staged}"));
        }
        Ok(())
    }

    fn unstage(&mut self) -> Result<(), String> {
        let sysroot = self.open()?;
        deploy::unstage(&sysroot).map_err(|e| e.to_string())?;
        Ok(())
    }

    /// Writes the staged deployment into the boot entries (it must be `release`), then runs the
    /// reboot command.
    fn finalize_and_reboot(&mut self, release: &Release) -> Result<(), String> {
        let commit = checksum(release)?;
        let sysroot = self.open()?;
        match deploy::finalize_staged(&sysroot, true, Some(&commit)).map_err(|e| e.to_string())? {
            FinalizeOutcome::Finalized(_) => {}
            FinalizeOutcome::NothingStaged => {
                // Finalized by an earlier attempt whose reboot did not happen: the boot entries
                // already lead to it if it is first.
                let state = sysroot.load().map_err(|e| e.to_string())?;
                if state.deployments.first().map(|d| d.checksum) != Some(commit) {
                    return Err(format!("{commit} is neither staged nor the next boot"));
                }
            }
            FinalizeOutcome::Locked(_) => return Err("the staged deployment stayed locked".into()),
        }
        let Some((program, args)) = self.reboot_command.split_first() else {
            return Err("agent.reboot_command is empty".into());
        };
        let status = Command::new(program)
            .args(args)
            .status()
            .map_err(|e| format!("run {}: {e}", self.reboot_command.join(" ")))?;
        if !status.success() {
            return Err(format!("{}: {status}", self.reboot_command.join(" ")));
        }
        Ok(())
    }
}
