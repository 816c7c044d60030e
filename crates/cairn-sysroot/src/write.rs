//! Writing a new deployment list: a complete new boot set beside the live one, then one
//! symlink swap (`/boot/loader`), then cleanup of whatever nothing references any more.
//!
//! Before the swap only unreferenced names are written (`loader.<new>`, `boot.<new>.*`,
//! kernel copies under temporary names); after it the old set is unreferenced. A crash at
//! any point therefore leaves one complete set live: the old one or the new one.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use cairn_store::prune::{prune, PruneOptions};

use crate::bls::BootEntry;
use crate::error::{Error, IoContext, Result};
use crate::sysroot::{read_link_name, Deployment, State, Sysroot};

fn fault(path: &Path) -> Result<()> {
    cairn_store::fault::io_point("sysroot").at(path)
}

pub(crate) fn remove_path(path: &Path) -> Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(Error::Io {
                path: path.to_owned(),
                error: e,
            })
        }
    };
    fault(path)?;
    if meta.is_dir() {
        clear_immutable(path);
        fs::remove_dir_all(path).at(path)
    } else {
        fs::remove_file(path).at(path)
    }
}

/// ostree marks each deployment root immutable (`chattr +i`); clear it before removal.
fn clear_immutable(path: &Path) {
    if let Ok(dir) = fs::File::open(path) {
        if let Ok(flags) = rustix::fs::ioctl_getflags(&dir) {
            if flags.contains(rustix::fs::IFlags::IMMUTABLE) {
                let _ = rustix::fs::ioctl_setflags(&dir, flags - rustix::fs::IFlags::IMMUTABLE);
            }
        }
    }
}

/// Creates `link` -> `target` atomically, replacing what was there.
pub(crate) fn replace_symlink(target: &str, link: &Path) -> Result<()> {
    let dir = link.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp",
        link.file_name().unwrap_or_default().to_string_lossy()
    ));
    let _ = fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp).at(&tmp)?;
    if let Err(e) = fault(link).and_then(|()| fs::rename(&tmp, link).at(link)) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fs::File::open(dir).and_then(|d| d.sync_all()).at(dir)
}

fn write_new_file(path: &Path, data: &[u8]) -> Result<()> {
    fault(path)?;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(path)
        .at(path)?;
    f.write_all(data).at(path)?;
    f.sync_all().at(path)
}

fn syncfs(path: &Path) -> Result<()> {
    let dir = fs::File::open(path).at(path)?;
    rustix::fs::syncfs(&dir).map_err(|e| Error::Io {
        path: path.to_owned(),
        error: e.into(),
    })
}

/// Reads `KEY=value` pairs of an os-release file, unquoted.
fn os_release(deploy_dir: &Path) -> HashMap<String, String> {
    let text = fs::read_to_string(deploy_dir.join("usr/lib/os-release"))
        .or_else(|_| fs::read_to_string(deploy_dir.join("etc/os-release")))
        .unwrap_or_default();
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(v);
            (k.trim().to_owned(), v.to_owned())
        })
        .collect()
}

/// The entry title ostree writes: `<PRETTY_NAME> <version> (ostree[:<stateroot>]:<index>)`.
fn entry_title(sysroot: &Sysroot, d: &Deployment, index: usize, name_stateroot: bool) -> String {
    let release = os_release(&sysroot.deployment_path(d));
    let mut title = release
        .get("PRETTY_NAME")
        .or_else(|| release.get("ID"))
        .cloned()
        .unwrap_or_else(|| "(Untitled)".to_owned());
    if let Ok(commit) = sysroot.repo().read_commit(&d.checksum) {
        if let Some(version) = commit.version() {
            if !version.is_empty() && !title.contains(version) {
                title.push(' ');
                title.push_str(version);
            }
        }
    }
    title.push_str(" (ostree");
    if name_stateroot {
        title.push(':');
        title.push_str(&d.stateroot);
    }
    title.push_str(&format!(":{index})"));
    // A newline from commit metadata must never start a new entry field.
    title.replace(|c: char| c.is_control(), " ")
}

/// Copies the kernel and initramfs of `d` from its tree to `/boot/ostree/<stateroot>-<bootcsum>/`
/// unless they are there: into a temporary directory, then renamed.
fn install_kernel(sysroot: &Sysroot, d: &Deployment) -> Result<()> {
    let dest = sysroot.kernel_dir(d);
    if dest.is_dir() {
        return Ok(());
    }
    let parent = sysroot.path().join("boot/ostree");
    fs::create_dir_all(&parent).at(&parent)?;
    let tmp = parent.join(format!(".tmp-{}-{}", d.stateroot, d.bootcsum));
    remove_path(&tmp)?;
    fs::create_dir(&tmp).at(&tmp)?;
    let result = fill_kernel_dir(sysroot, d, &tmp, &dest);
    if result.is_err() {
        let _ = fs::remove_dir_all(&tmp);
    }
    result
}

fn fill_kernel_dir(sysroot: &Sysroot, d: &Deployment, tmp: &Path, dest: &Path) -> Result<()> {
    let modules = sysroot
        .deployment_path(d)
        .join("usr/lib/modules")
        .join(d.kernel_version());
    let mut files = vec![("vmlinuz", d.linux.as_str())];
    if let Some(initrd) = &d.initrd {
        files.push(("initramfs.img", initrd.as_str()));
    }
    for (source_name, dest_name) in files {
        let source = modules.join(source_name);
        let data = fs::read(&source).at(&source)?;
        write_new_file(&tmp.join(dest_name), &data)?;
    }
    fault(dest)?;
    fs::rename(tmp, dest).at(dest)?;
    Ok(())
}

/// What a failed write must take back: everything it created before the swap.
#[derive(Default)]
struct Undo {
    paths: Vec<std::path::PathBuf>,
    /// Refs written, with the value each had before.
    refs: Vec<(String, Option<cairn_store::Checksum>)>,
    swapped: bool,
}

impl Undo {
    fn run(self, sysroot: &Sysroot) {
        for path in self.paths.iter().rev() {
            let result = match fs::symlink_metadata(path) {
                Ok(m) if m.is_dir() => fs::remove_dir_all(path),
                Ok(_) => fs::remove_file(path),
                Err(_) => Ok(()),
            };
            if let Err(e) = result {
                tracing::warn!("undo: remove {}: {e}", path.display());
            }
        }
        for (name, before) in self.refs {
            let result = match before {
                Some(checksum) => sysroot.repo().write_ref(&name, &checksum),
                None => sysroot.repo().delete_ref(&name),
            };
            if let Err(e) = result {
                tracing::warn!("undo: restore ref {name}: {e}");
            }
        }
        remove_empty_dirs(&sysroot.repo().path().join("refs/heads/ostree"));
    }
}

/// Makes `new` the deployment list, in boot order: the first entry boots by default.
/// The swap also retires a staged deployment: its record names the boot set it was
/// staged against (`stage`), which is no longer live. On failure before the swap, what
/// was written is removed again and the live set is as it was.
pub fn write_deployments(sysroot: &Sysroot, state: &State, new: &[Deployment]) -> Result<()> {
    let mut undo = Undo::default();
    let result = write_boot_set(sysroot, state, new, &mut undo);
    if result.is_err() && !undo.swapped {
        undo.run(sysroot);
    }
    result
}

fn write_boot_set(
    sysroot: &Sysroot,
    state: &State,
    new: &[Deployment],
    undo: &mut Undo,
) -> Result<()> {
    let root = sysroot.path();
    let new_bootversion = 1 - state.bootversion;
    let new_subbootversion = match sysroot.read_subbootversion(new_bootversion)? {
        Some(sub) => 1 - sub,
        None => 1,
    };
    // Leftovers of an interrupted attempt; nothing live refers to them.
    let loader_dir = root.join(format!("boot/loader.{new_bootversion}"));
    let boot_link = root.join(format!("ostree/boot.{new_bootversion}"));
    let links_dir = root.join(format!(
        "ostree/boot.{new_bootversion}.{new_subbootversion}"
    ));
    for stale in [&loader_dir, &boot_link, &links_dir] {
        remove_path(stale)?;
    }
    for d in new {
        if !sysroot.kernel_dir(d).is_dir() {
            undo.paths.push(sysroot.kernel_dir(d));
            install_kernel(sysroot, d)?;
        }
    }
    undo.paths.push(links_dir.clone());
    let mut bootserials: HashMap<(String, String), u32> = HashMap::new();
    let mut ostree_args = Vec::new();
    for d in new {
        let counter = bootserials
            .entry((d.stateroot.clone(), d.bootcsum.clone()))
            .or_insert(0);
        let bootserial = *counter;
        *counter += 1;
        let dir = links_dir.join(&d.stateroot).join(&d.bootcsum);
        fs::create_dir_all(&dir).at(&dir)?;
        let link = dir.join(bootserial.to_string());
        fault(&link)?;
        std::os::unix::fs::symlink(
            format!("../../../deploy/{}/deploy/{}", d.stateroot, d.dir_name()),
            &link,
        )
        .at(&link)?;
        ostree_args.push(format!(
            "/ostree/boot.{new_bootversion}/{}/{}/{bootserial}",
            d.stateroot, d.bootcsum
        ));
    }
    undo.paths.push(boot_link.clone());
    replace_symlink(
        &format!("boot.{new_bootversion}.{new_subbootversion}"),
        &boot_link,
    )?;
    undo.paths.push(loader_dir.clone());
    let entries_dir = loader_dir.join("entries");
    fs::create_dir_all(&entries_dir).at(&entries_dir)?;
    let stateroots: HashSet<&str> = new.iter().map(|d| d.stateroot.as_str()).collect();
    let count = new.len();
    for (index, (d, ostree_arg)) in new.iter().zip(&ostree_args).enumerate() {
        let mut entry = BootEntry::default();
        entry.set(
            "title",
            entry_title(sysroot, d, index, stateroots.len() > 1),
        );
        entry.set("version", (count - index).to_string());
        let mut kargs = d.kargs.clone();
        kargs.append(&format!("ostree={ostree_arg}"));
        entry.set("options", kargs.to_cmdline());
        entry.set(
            "linux",
            format!("/ostree/{}-{}/{}", d.stateroot, d.bootcsum, d.linux),
        );
        if let Some(initrd) = &d.initrd {
            entry.set(
                "initrd",
                format!("/ostree/{}-{}/{initrd}", d.stateroot, d.bootcsum),
            );
        }
        for (key, value) in &d.extra_fields {
            entry.set(key, value.clone());
        }
        let path = entries_dir.join(format!("ostree-{}-{}.conf", count - index, d.stateroot));
        write_new_file(&path, entry.to_text().as_bytes())?;
    }
    fs::File::open(&entries_dir)
        .and_then(|f| f.sync_all())
        .at(&entries_dir)?;
    // Refs keep the deployed commits from being pruned, under ostree's names.
    for (index, d) in new.iter().enumerate() {
        let name = format!("ostree/{new_bootversion}/{new_subbootversion}/{index}");
        fault(&sysroot.repo().path().join("refs/heads").join(&name))?;
        undo.refs
            .push((name.clone(), sysroot.repo().read_ref(&name)?));
        sysroot.repo().write_ref(&name, &d.checksum)?;
    }
    syncfs(root)?;
    syncfs(&root.join("boot"))?;
    // The commit point.
    let loader = root.join("boot/loader");
    let tmp = root.join("boot/.loader.tmp");
    let _ = fs::remove_file(&tmp);
    std::os::unix::fs::symlink(format!("loader.{new_bootversion}"), &tmp).at(&tmp)?;
    undo.paths.push(tmp.clone());
    fault(&loader)?;
    fs::rename(&tmp, &loader).at(&loader)?;
    undo.swapped = true;
    // Done: a failure to sync now must not be reported as a failed change.
    let boot = root.join("boot");
    if let Err(e) = fs::File::open(&boot).and_then(|d| d.sync_all()) {
        tracing::warn!("sync {}: {e}", boot.display());
    }
    Ok(())
}

#[derive(Debug, Default)]
pub struct CleanupReport {
    pub removed_deployments: Vec<String>,
    pub removed_kernels: u64,
    pub pruned_objects: u64,
    pub freed_bytes: u64,
}

/// Removes what the live boot set and the staged deployment do not reference: the other
/// boot set, deployment directories and their origins, kernel copies, deployment refs,
/// temporary files, then objects no ref reaches (as `ostree admin cleanup`).
pub fn cleanup(sysroot: &Sysroot) -> Result<CleanupReport> {
    let _lock = sysroot.lock()?;
    cleanup_locked(sysroot)
}

/// [`cleanup`] for callers that hold the sysroot lock.
pub(crate) fn cleanup_locked(sysroot: &Sysroot) -> Result<CleanupReport> {
    let state = sysroot.load()?;
    let root = sysroot.path();
    let mut report = CleanupReport::default();
    let other = 1 - state.bootversion;
    remove_path(&root.join(format!("boot/loader.{other}")))?;
    remove_path(&root.join("boot/.loader.tmp"))?;
    let live_links = format!("boot.{}.{}", state.bootversion, state.subbootversion);
    let live_link = format!("boot.{}", state.bootversion);
    let ostree_dir = root.join("ostree");
    for entry in fs::read_dir(&ostree_dir).at(&ostree_dir)? {
        let entry = entry.at(&ostree_dir)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_boot_name = name.starts_with("boot.") || name.starts_with(".boot.");
        if is_boot_name && name != live_links && name != live_link {
            remove_path(&entry.path())?;
        }
    }
    let keep_dirs = sysroot.referenced_dirs(&state);
    // ostree (or rpm-ostree) staged a deployment that only its own record names: leave
    // every deployment directory and every object alone rather than delete it.
    let ostree_staged = root.join("run/ostree/staged-deployment").exists();
    if ostree_staged {
        tracing::warn!(
            "ostree has a staged deployment (/run/ostree/staged-deployment); unreferenced deployments and objects are kept"
        );
    }
    for stateroot in sysroot.list_stateroots()? {
        if ostree_staged {
            break;
        }
        let deploy = sysroot.stateroot_path(&stateroot).join("deploy");
        for entry in fs::read_dir(&deploy).at(&deploy)? {
            let entry = entry.at(&deploy)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let dir_name = name.strip_suffix(".origin").unwrap_or(&name);
            if keep_dirs.contains(&deploy.join(dir_name)) {
                continue;
            }
            remove_path(&entry.path())?;
            if !name.ends_with(".origin") && !name.starts_with('.') {
                report
                    .removed_deployments
                    .push(format!("{stateroot}/{name}"));
            }
        }
    }
    let mut live: Vec<&Deployment> = state.deployments.iter().collect();
    if let Some(staged) = &state.staged {
        live.push(&staged.deployment);
    }
    let keep_kernels: HashSet<String> = live
        .iter()
        .map(|d| format!("{}-{}", d.stateroot, d.bootcsum))
        .collect();
    let kernels = root.join("boot/ostree");
    if kernels.is_dir() {
        for entry in fs::read_dir(&kernels).at(&kernels)? {
            let entry = entry.at(&kernels)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !keep_kernels.contains(&name) {
                remove_path(&entry.path())?;
                report.removed_kernels += 1;
            }
        }
    }
    if state.staged.is_none() {
        // A record retired by a swap (or naming a vanished deployment).
        remove_path(&crate::stage::record_path(sysroot))?;
    }
    sync_deployment_refs(sysroot, &state)?;
    crate::health::forget_missing(sysroot, &state)?;
    if ostree_staged {
        return Ok(report);
    }
    let pruned = prune(
        sysroot.repo(),
        &PruneOptions {
            refs_only: true,
            depth: Some(0),
            ..PruneOptions::default()
        },
    )?;
    report.pruned_objects = pruned.deleted.len() as u64;
    report.freed_bytes = pruned.freed_bytes;
    Ok(report)
}

/// Makes the `ostree/…` refs exactly the live deployments' (and `ostree/cairn-staged`).
fn sync_deployment_refs(sysroot: &Sysroot, state: &State) -> Result<()> {
    let repo = sysroot.repo();
    let mut wanted: HashMap<String, cairn_store::Checksum> = state
        .deployments
        .iter()
        .enumerate()
        .map(|(i, d)| {
            (
                format!("ostree/{}/{}/{i}", state.bootversion, state.subbootversion),
                d.checksum,
            )
        })
        .collect();
    if let Some(staged) = &state.staged {
        wanted.insert("ostree/cairn-staged".to_owned(), staged.deployment.checksum);
    }
    for (name, checksum) in repo.list_refs()? {
        if is_deployment_ref(&name) && wanted.get(&name) != Some(&checksum) {
            fault(&repo.path().join("refs/heads").join(&name))?;
            repo.delete_ref(&name)?;
        }
    }
    for (name, checksum) in &wanted {
        if repo.read_ref(name)? != Some(*checksum) {
            repo.write_ref(name, checksum)?;
        }
    }
    let heads = repo.path().join("refs/heads/ostree");
    remove_empty_dirs(&heads);
    Ok(())
}

/// The refs the sysroot owns: `ostree/<0|1>/<0|1>/<index>` (ostree's) and
/// `ostree/cairn-staged`; any other ref, even under `ostree/`, is the user's.
fn is_deployment_ref(name: &str) -> bool {
    if name == "ostree/cairn-staged" {
        return true;
    }
    let parts: Vec<&str> = name.split('/').collect();
    matches!(parts.as_slice(), ["ostree", b, s, i]
        if ["0", "1"].contains(b) && ["0", "1"].contains(s)
            && !i.is_empty() && i.bytes().all(|c| c.is_ascii_digit()))
}

fn remove_empty_dirs(dir: &Path) {
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_empty_dirs(&entry.path());
                let _ = fs::remove_dir(entry.path());
            }
        }
    }
}

/// `true` if `/boot/loader` exists (some deployment list was ever written).
pub fn has_boot_set(sysroot: &Sysroot) -> Result<bool> {
    Ok(read_link_name(&sysroot.path().join("boot/loader"))?.is_some())
}
