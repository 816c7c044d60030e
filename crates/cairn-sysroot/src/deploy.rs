//! Changing the deployment list: deploy (now or staged), finalize, upgrade, roll back,
//! undeploy, pin, and kernel arguments. Each builds the new list and hands it to
//! [`write::write_deployments`], whose symlink swap is the single commit point.

use std::fs;
use std::io::Read;
use std::path::Path;

use cairn_store::checkout::{checkout, CheckoutOptions};
use cairn_store::keyfile::KeyFile;
use cairn_store::pull::{pull, PullOptions};
use cairn_store::repo::Entry;
use cairn_store::Checksum;
use sha2::{Digest, Sha256};

use crate::error::{Error, IoContext, Result};
use crate::etc_merge::{self, MergeReport};
use crate::kargs::Kargs;
use crate::stage::{self, Staged};
use crate::sysroot::{Deployment, State, Sysroot};
use crate::write::{self, write_deployments};

/// Kernel argument edits, applied in ostree's order: replace, append, delete.
#[derive(Clone, Debug, Default)]
pub struct KargsEdit {
    /// `KEY=VALUE` replacing any `KEY` (ostree `--karg`).
    pub replace: Vec<String>,
    pub append: Vec<String>,
    /// `KEY` (every value) or `KEY=VALUE` (that one).
    pub delete: Vec<String>,
}

impl KargsEdit {
    pub fn is_empty(&self) -> bool {
        self.replace.is_empty() && self.append.is_empty() && self.delete.is_empty()
    }

    pub fn apply(&self, kargs: &mut Kargs) -> Result<()> {
        for arg in &self.replace {
            kargs.replace(arg);
        }
        for arg in &self.append {
            kargs.append(arg);
        }
        for arg in &self.delete {
            if !kargs.delete(arg) {
                return Err(Error::Invalid(format!(
                    "kernel argument {arg:?} is not set; nothing to delete"
                )));
            }
        }
        if let Some(bad) = kargs
            .args()
            .iter()
            .find(|a| a.chars().any(char::is_control))
        {
            return Err(Error::Invalid(format!(
                "kernel argument {bad:?} contains a control character"
            )));
        }
        if kargs.value("ostree").is_some() {
            return Err(Error::Invalid(
                "the ostree= kernel argument is managed by the sysroot".into(),
            ));
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Default)]
pub struct DeployOptions {
    pub stateroot: Option<String>,
    pub kargs: KargsEdit,
    /// Prepare now; write the boot entries at `finalize-staged`.
    pub stage: bool,
    /// With `stage`: finalize only on an explicit `finalize-deployment`.
    pub lock_finalization: bool,
    /// Deploy a commit recorded as bad.
    pub allow_bad: bool,
    /// Keep every existing deployment instead of only booted, merge and pinned ones.
    pub retain: bool,
    /// The origin's refspec; default: the rev deployed.
    pub origin_refspec: Option<String>,
}

/// What a deploy did.
#[derive(Debug)]
pub struct Deployed {
    pub deployment: Deployment,
    pub etc: MergeReport,
    pub staged: bool,
}

/// The stateroot to act on: the given one, the booted one, or the only one there is.
pub fn choose_stateroot(sysroot: &Sysroot, state: &State, given: Option<&str>) -> Result<String> {
    if let Some(name) = given {
        crate::sysroot::validate_stateroot(name)?;
        if !sysroot.stateroot_path(name).join("deploy").is_dir() {
            return Err(Error::NoStateroot(name.to_owned()));
        }
        return Ok(name.to_owned());
    }
    if let Some(booted) = state.booted() {
        return Ok(booted.stateroot.clone());
    }
    let all = sysroot.list_stateroots()?;
    match all.as_slice() {
        [only] => Ok(only.clone()),
        [] => Err(Error::Invalid(
            "no stateroot in this sysroot; run `cairn admin os-init NAME` first".into(),
        )),
        _ => Err(Error::Invalid(format!(
            "several stateroots ({}); choose one with --stateroot",
            all.join(", ")
        ))),
    }
}

/// Finds `/usr/lib/modules/<version>/vmlinuz` in a commit: (version, has initramfs.img).
pub fn find_kernel(sysroot: &Sysroot, commit: &Checksum) -> Result<(String, bool)> {
    let repo = sysroot.repo();
    let no_kernel = || Error::NoKernel { checksum: *commit };
    let tree = match repo.lookup_path(commit, "/usr/lib/modules") {
        Ok(Entry::Dir { tree, .. }) => tree,
        Ok(Entry::File(_)) | Err(cairn_store::Error::PathNotFound { .. }) => {
            return Err(no_kernel())
        }
        Err(e) => return Err(e.into()),
    };
    for (version, _, _) in repo.read_dirtree(&tree)?.dirs {
        let has = |name: &str| {
            matches!(
                repo.lookup_path(commit, &format!("/usr/lib/modules/{version}/{name}")),
                Ok(Entry::File(_))
            )
        };
        if has("vmlinuz") {
            return Ok((version.clone(), has("initramfs.img")));
        }
    }
    Err(no_kernel())
}

fn hash_files(files: &[&Path]) -> Result<String> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    for path in files {
        let mut f = fs::File::open(path).at(path)?;
        loop {
            let n = f.read(&mut buf).at(path)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
    }
    Ok(hex::encode(hasher.finalize()))
}

/// The next free serial for `checksum` in `stateroot`, counting listed and staged ones.
fn next_serial(state: &State, stateroot: &str, checksum: &Checksum) -> u32 {
    state
        .deployments
        .iter()
        .chain(state.staged.as_ref().map(|s| &s.deployment))
        .filter(|d| d.stateroot == stateroot && d.checksum == *checksum)
        .map(|d| d.serial + 1)
        .max()
        .unwrap_or(0)
}

/// The list after adding `new` first: other stateroots, pinned, booted and the merge
/// deployment stay; with `retain`, everything stays (as `ostree admin deploy`).
fn list_with_new(state: &State, new: &Deployment, retain: bool) -> Vec<Deployment> {
    let merge = state.merge_deployment(&new.stateroot).cloned();
    let booted = state.booted().cloned();
    let mut list = vec![new.clone()];
    for d in &state.deployments {
        if d.same(new) {
            continue;
        }
        let keep = retain
            || d.stateroot != new.stateroot
            || d.pinned()
            || booted.as_ref().is_some_and(|b| b.same(d))
            || merge.as_ref().is_some_and(|m| m.same(d));
        if keep {
            list.push(d.clone());
        }
    }
    list
}

/// Merges `/etc` for `dir` (a deployment tree with its new `/usr/etc`) from `merge`.
fn merge_etc_into(
    sysroot: &Sysroot,
    merge: Option<&Deployment>,
    dir: &Path,
    etc_name: &str,
) -> Result<MergeReport> {
    let new_etc = dir.join(etc_name);
    match merge {
        Some(m) => {
            let old = sysroot.deployment_path(m);
            etc_merge::merge(
                &old.join("usr/etc"),
                &old.join("etc"),
                &dir.join("usr/etc"),
                &new_etc,
            )
        }
        None => etc_merge::merge(
            Path::new("/nonexistent"),
            Path::new("/nonexistent"),
            &dir.join("usr/etc"),
            &new_etc,
        ),
    }
}

/// Deploys `rev` (a ref, `remote:ref` or checksum of the sysroot's repository).
pub fn deploy(sysroot: &Sysroot, rev: &str, options: &DeployOptions) -> Result<Deployed> {
    let _lock = sysroot.lock()?;
    deploy_locked(sysroot, rev, options)
}

fn deploy_locked(sysroot: &Sysroot, rev: &str, options: &DeployOptions) -> Result<Deployed> {
    let state = sysroot.load()?;
    let stateroot = choose_stateroot(sysroot, &state, options.stateroot.as_deref())?;
    let checksum = sysroot.repo().resolve_rev(rev).map_err(|e| match e {
        cairn_store::Error::RefNotFound(name) => Error::Invalid(format!(
            "ref {name:?} not found in {}",
            sysroot.repo().path().display()
        )),
        other => other.into(),
    })?;
    if !options.allow_bad && crate::health::is_bad(sysroot, &checksum)? {
        return Err(Error::BadCommit { checksum });
    }
    let (kernel_version, has_initramfs) = find_kernel(sysroot, &checksum)?;
    let merge = state.merge_deployment(&stateroot).cloned();
    let mut kargs = merge.as_ref().map(|m| m.kargs.clone()).unwrap_or_default();
    options.kargs.apply(&mut kargs)?;
    let mut origin = KeyFile::default();
    origin.set(
        "origin",
        "refspec",
        options.origin_refspec.as_deref().unwrap_or(rev),
    );
    let serial = next_serial(&state, &stateroot, &checksum);
    let mut deployment = Deployment {
        stateroot: stateroot.clone(),
        checksum,
        serial,
        bootcsum: String::new(),
        linux: format!("vmlinuz-{kernel_version}"),
        initrd: has_initramfs.then(|| format!("initramfs-{kernel_version}.img")),
        kargs,
        origin,
        extra_fields: Vec::new(),
    };
    let final_dir = sysroot.deployment_path(&deployment);
    let deploy_dir = final_dir.parent().unwrap_or(Path::new("/"));
    let staging = deploy_dir.join(format!(".cairn-staging-{}", deployment.dir_name()));
    write::remove_path(&staging)?;
    let prepared = (|| {
        cairn_store::fault::io_point("sysroot").at(&staging)?;
        checkout(
            sysroot.repo(),
            &checksum,
            &staging,
            &CheckoutOptions::default(),
        )?;
        let (has_etc, has_usr_etc) = (
            staging.join("etc").exists(),
            staging.join("usr/etc").exists(),
        );
        match (has_etc, has_usr_etc) {
            (true, true) => {
                return Err(Error::Invalid(format!(
                    "commit {checksum} has both /etc and /usr/etc"
                )))
            }
            (true, false) => {
                fs::rename(staging.join("etc"), staging.join("usr/etc")).at(&staging)?
            }
            _ => {}
        }
        let etc = merge_etc_into(sysroot, merge.as_ref(), &staging, "etc")?;
        let modules = staging.join("usr/lib/modules").join(&kernel_version);
        let mut kernel_files = vec![modules.join("vmlinuz")];
        if has_initramfs {
            kernel_files.push(modules.join("initramfs.img"));
        }
        let refs: Vec<&Path> = kernel_files.iter().map(|p| p.as_path()).collect();
        Ok((etc, hash_files(&refs)?))
    })();
    let (etc, bootcsum) = match prepared {
        Ok(prepared) => prepared,
        Err(e) => {
            let _ = write::remove_path(&staging);
            return Err(e);
        }
    };
    deployment.bootcsum = bootcsum;
    let published = (|| {
        write::remove_path(&final_dir)?;
        sysroot.write_origin(&deployment)?;
        cairn_store::fault::io_point("sysroot").at(&final_dir)?;
        fs::rename(&staging, &final_dir).at(&final_dir)
    })();
    if let Err(e) = published {
        let _ = write::remove_path(&staging);
        let _ = write::remove_path(&sysroot.origin_path(&deployment));
        return Err(e);
    }
    let switched = if options.stage {
        stage_record(
            sysroot,
            &state,
            &deployment,
            options.lock_finalization,
            options.retain,
        )
    } else {
        // A staged deployment is superseded by one deployed now (the swap retires it).
        let list = list_with_new(&state, &deployment, options.retain);
        write_deployments(sysroot, &state, &list)
    };
    if let Err(e) = switched {
        // Nothing refers to the new deployment: take it back.
        let _ = write::remove_path(&final_dir);
        let _ = write::remove_path(&sysroot.origin_path(&deployment));
        return Err(e);
    }
    cleanup_after(sysroot);
    Ok(Deployed {
        deployment,
        etc,
        staged: options.stage,
    })
}

/// Records `d` as staged, keeping its commit alive with a ref; on failure the previous
/// record and ref stay.
fn stage_record(
    sysroot: &Sysroot,
    state: &State,
    d: &Deployment,
    locked: bool,
    retain: bool,
) -> Result<()> {
    let repo = sysroot.repo();
    let before = repo.read_ref("ostree/cairn-staged")?;
    repo.write_ref("ostree/cairn-staged", &d.checksum)?;
    let recorded = stage::write_staged(
        sysroot,
        &Staged {
            deployment: d.clone(),
            locked,
            retain,
            boot_set: state.boot_set.clone(),
        },
    );
    if recorded.is_err() {
        let _ = match before {
            Some(c) => repo.write_ref("ostree/cairn-staged", &c),
            None => repo.delete_ref("ostree/cairn-staged"),
        };
    }
    recorded
}

/// Cleanup runs after the commit point; its failure does not undo the change.
fn cleanup_after(sysroot: &Sysroot) {
    if let Err(e) = write::cleanup_locked(sysroot) {
        tracing::warn!("cleanup after the change failed (run `cairn admin cleanup`): {e}");
    }
}

#[derive(Debug)]
pub enum FinalizeOutcome {
    NothingStaged,
    /// Locked; `finalize-deployment` is needed.
    Locked(Deployment),
    Finalized(Deployment),
}

/// Writes the staged deployment into the boot entries, merging `/etc` again from the
/// booted deployment so that changes made since staging are kept. `explicit` (the
/// `finalize-deployment` verb) overrides the lock; `expected` must then match.
pub fn finalize_staged(
    sysroot: &Sysroot,
    explicit: bool,
    expected: Option<&Checksum>,
) -> Result<FinalizeOutcome> {
    let _lock = sysroot.lock()?;
    let state = sysroot.load()?;
    let Some(staged) = state.staged.clone() else {
        return Ok(FinalizeOutcome::NothingStaged);
    };
    if let Some(expected) = expected {
        if *expected != staged.deployment.checksum {
            return Err(Error::Invalid(format!(
                "the staged deployment is {}, not {expected}",
                staged.deployment.checksum
            )));
        }
    }
    if staged.locked && !explicit {
        return Ok(FinalizeOutcome::Locked(staged.deployment));
    }
    let d = staged.deployment;
    let dir = sysroot.deployment_path(&d);
    let merge = state.merge_deployment(&d.stateroot).cloned();
    let fresh = dir.join(".etc.cairn-new");
    write::remove_path(&fresh)?;
    merge_etc_into(sysroot, merge.as_ref(), &dir, ".etc.cairn-new")?;
    cairn_store::fault::io_point("sysroot").at(&fresh)?;
    rustix::fs::renameat_with(
        rustix::fs::CWD,
        &fresh,
        rustix::fs::CWD,
        dir.join("etc"),
        rustix::fs::RenameFlags::EXCHANGE,
    )
    .map_err(std::io::Error::from)
    .at(&dir.join("etc"))?;
    write::remove_path(&fresh)?;
    let list = list_with_new(&state, &d, staged.retain);
    write_deployments(sysroot, &state, &list)?;
    cleanup_after(sysroot);
    Ok(FinalizeOutcome::Finalized(d))
}

#[derive(Clone, Debug, Default)]
pub struct UpgradeOptions {
    pub stateroot: Option<String>,
    pub allow_downgrade: bool,
    pub allow_bad: bool,
    pub stage: bool,
    pub lock_finalization: bool,
    pub pull: PullOptions,
}

#[derive(Debug)]
pub enum UpgradeOutcome {
    /// The origin's ref points at the commit already deployed (or staged).
    NoUpdate(Checksum),
    Deployed(Box<Deployed>),
}

/// Pulls the origin's ref from its remote, then deploys it if it changed.
pub fn upgrade(sysroot: &Sysroot, options: &UpgradeOptions) -> Result<UpgradeOutcome> {
    let state = sysroot.load()?;
    let stateroot = choose_stateroot(sysroot, &state, options.stateroot.as_deref())?;
    let merge = state.merge_deployment(&stateroot).cloned().ok_or_else(|| {
        Error::Invalid(format!(
            "stateroot {stateroot:?} has no deployment to upgrade; deploy one first"
        ))
    })?;
    let refspec = merge.refspec().map(str::to_owned).ok_or_else(|| {
        Error::Invalid(format!(
            "deployment {} has no origin refspec",
            merge.dir_name()
        ))
    })?;
    if refspec.parse::<Checksum>().is_ok() {
        return Err(Error::Invalid(format!(
            "the origin is the fixed commit {refspec}; deploy a ref to follow updates"
        )));
    }
    if let Some((remote_name, branch)) = refspec.split_once(':') {
        let remote = sysroot.repo().remote(remote_name)?;
        let pull_options = PullOptions {
            refs: vec![branch.to_owned()],
            ..options.pull.clone()
        };
        pull(sysroot.repo(), &remote, &pull_options).map_err(|e| match e {
            cairn_store::Error::Fetch { url, reason } => Error::Invalid(format!(
                "pull {branch} from {remote_name} ({url}): {reason}"
            )),
            other => other.into(),
        })?;
    }
    let _lock = sysroot.lock()?;
    // Read again under the lock: another writer may have changed the list meanwhile.
    let state = sysroot.load()?;
    let merge = state.merge_deployment(&stateroot).cloned().unwrap_or(merge);
    let new = sysroot.repo().resolve_rev(&refspec)?;
    let current = state
        .staged
        .as_ref()
        .filter(|s| s.deployment.stateroot == stateroot)
        .map(|s| s.deployment.checksum)
        .unwrap_or(merge.checksum);
    if new == current {
        return Ok(UpgradeOutcome::NoUpdate(new));
    }
    if !options.allow_bad && crate::health::is_bad(sysroot, &new)? {
        return Err(Error::BadCommit { checksum: new });
    }
    if !options.allow_downgrade {
        let new_time = sysroot.repo().read_commit(&new)?.timestamp;
        let old_time = sysroot.repo().read_commit(&merge.checksum)?.timestamp;
        if new_time < old_time {
            return Err(Error::Invalid(format!(
                "{refspec} points at {new}, older than the deployed {}; pass --allow-downgrade to deploy it",
                merge.checksum
            )));
        }
    }
    let deployed = deploy_locked(
        sysroot,
        &new.to_string(),
        &DeployOptions {
            stateroot: Some(stateroot),
            stage: options.stage,
            lock_finalization: options.lock_finalization,
            allow_bad: options.allow_bad,
            origin_refspec: Some(refspec),
            ..DeployOptions::default()
        },
    )?;
    Ok(UpgradeOutcome::Deployed(Box::new(deployed)))
}

/// The list a rollback writes, as `rpm-ostree rollback`: with a pending deployment
/// (the first is not the booted one), the booted one goes first again; otherwise the
/// deployment after the booted one (the rollback) goes first.
pub fn rollback_list(state: &State) -> Result<Vec<Deployment>> {
    let booted = state.booted.unwrap_or(0);
    let stateroot = state
        .deployments
        .get(booted)
        .map(|d| d.stateroot.clone())
        .ok_or_else(|| Error::Invalid("no deployments to roll back".into()))?;
    let target = if booted != 0 {
        booted
    } else {
        state
            .deployments
            .iter()
            .enumerate()
            .skip(1)
            .find(|(_, d)| d.stateroot == stateroot)
            .map(|(i, _)| i)
            .ok_or_else(|| Error::Invalid("no rollback deployment".into()))?
    };
    let mut list = state.deployments.clone();
    let d = list.remove(target);
    list.insert(0, d);
    Ok(list)
}

/// Rolls back; a staged deployment is dropped. Returns the deployment now first.
pub fn rollback(sysroot: &Sysroot) -> Result<Deployment> {
    let _lock = sysroot.lock()?;
    let state = sysroot.load()?;
    let list = rollback_list(&state)?;
    write_deployments(sysroot, &state, &list)?;
    cleanup_after(sysroot);
    Ok(list[0].clone())
}

/// Drops the staged deployment, if any, so that it is never finalized; `cleanup` removes its
/// directory. Returns what was staged. (An update agent replacing a staged update that waits
/// for its maintenance window with a newer one.)
pub fn unstage(sysroot: &Sysroot) -> Result<Option<Deployment>> {
    let _lock = sysroot.lock()?;
    let state = sysroot.load()?;
    let Some(staged) = state.staged else {
        return Ok(None);
    };
    let record = crate::stage::record_path(sysroot);
    std::fs::remove_file(&record).at(&record)?;
    cleanup_after(sysroot);
    Ok(Some(staged.deployment))
}

/// Removes the deployment at `index` (boot order); the booted one cannot go.
pub fn undeploy(sysroot: &Sysroot, index: usize) -> Result<Deployment> {
    let _lock = sysroot.lock()?;
    let state = sysroot.load()?;
    let d = state.deployments.get(index).cloned().ok_or_else(|| {
        Error::Invalid(format!(
            "no deployment {index} (there are {})",
            state.deployments.len()
        ))
    })?;
    if state.booted == Some(index) {
        return Err(Error::Invalid(format!(
            "deployment {index} is the booted one; it cannot be undeployed"
        )));
    }
    let mut list = state.deployments.clone();
    list.remove(index);
    write_deployments(sysroot, &state, &list)?;
    cleanup_after(sysroot);
    Ok(d)
}

/// Pins or unpins a deployment: a pinned one is never removed by deploys.
pub fn set_pinned(sysroot: &Sysroot, index: usize, pinned: bool) -> Result<Deployment> {
    let _lock = sysroot.lock()?;
    let state = sysroot.load()?;
    let mut d = state
        .deployments
        .get(index)
        .cloned()
        .ok_or_else(|| Error::Invalid(format!("no deployment {index}")))?;
    if pinned {
        d.origin.set("libostree-transient", "pinned", "true");
    } else {
        d.origin.remove_group("libostree-transient");
    }
    cairn_store::fault::io_point("sysroot").at(&sysroot.origin_path(&d))?;
    sysroot.write_origin(&d)?;
    Ok(d)
}

/// Edits the kernel arguments of the deployment at `index` and rewrites the entries.
pub fn set_kargs(sysroot: &Sysroot, index: usize, edit: &KargsEdit) -> Result<Deployment> {
    let _lock = sysroot.lock()?;
    let state = sysroot.load()?;
    let mut list = state.deployments.clone();
    let d = list
        .get_mut(index)
        .ok_or_else(|| Error::Invalid(format!("no deployment {index}")))?;
    edit.apply(&mut d.kargs)?;
    let d = d.clone();
    write_deployments(sysroot, &state, &list)?;
    cleanup_after(sysroot);
    Ok(d)
}
