//! The sysroot on disk: its layout, and loading the deployment list from the live boot
//! loader entries, which are the source of truth as in OSTree.
//!
//! ```text
//! /ostree/repo                                         the store (mode bare)
//! /ostree/deploy/<stateroot>/var                       shared /var of a stateroot
//! /ostree/deploy/<stateroot>/deploy/<csum>.<serial>    a deployment (+ `.origin` beside it)
//! /ostree/boot.N -> boot.N.M                           bootcsum/bootserial -> deployment links
//! /boot/loader -> loader.N                             the live entries: the commit point
//! /boot/ostree/<stateroot>-<bootcsum>/                 kernel and initramfs
//! ```

use std::collections::HashSet;
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use cairn_store::keyfile::KeyFile;
use cairn_store::object::validate_name;
use cairn_store::repo::write_file_atomic;
use cairn_store::{Checksum, Repo, RepoMode};

use crate::bls::BootEntry;
use crate::error::{Error, IoContext, Result};
use crate::kargs::Kargs;
use crate::stage::{self, Staged};

/// One deployment: a commit checked out for a stateroot, as a boot entry describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deployment {
    pub stateroot: String,
    pub checksum: Checksum,
    /// Distinguishes deployments of the same commit in one stateroot.
    pub serial: u32,
    /// SHA-256 of the kernel and initramfs, naming their copy under `/boot/ostree/`.
    pub bootcsum: String,
    /// File names of the kernel and initramfs in `/boot/ostree/<stateroot>-<bootcsum>/`.
    pub linux: String,
    pub initrd: Option<String>,
    /// Kernel arguments without `ostree=`.
    pub kargs: Kargs,
    /// The `.origin` key file: where updates come from, pinning.
    pub origin: KeyFile,
    /// Entry fields cairn does not write itself (`devicetree`, `fdtdir`, …), kept as read.
    pub extra_fields: Vec<(String, String)>,
}

/// The boot entry fields cairn writes; any other field of a loaded entry is kept.
pub const STANDARD_FIELDS: [&str; 5] = ["title", "version", "options", "linux", "initrd"];

/// Checks a kernel or initramfs file name read from an entry or the staged record:
/// one plain path component with the prefix ostree gives it.
pub fn validate_kernel_file(key: &str, name: &str) -> Result<(), String> {
    let prefix = if key == "linux" {
        "vmlinuz-"
    } else {
        "initramfs-"
    };
    validate_name(name).map_err(|why| format!("{key} file {name:?}: {why}"))?;
    if !name.starts_with(prefix) || name.chars().any(char::is_control) {
        return Err(format!("{key} file {name:?} does not start with {prefix}"));
    }
    Ok(())
}

impl Deployment {
    /// `<checksum>.<serial>`, the deployment's directory name.
    pub fn dir_name(&self) -> String {
        format!("{}.{}", self.checksum, self.serial)
    }

    pub fn same(&self, other: &Deployment) -> bool {
        self.stateroot == other.stateroot
            && self.checksum == other.checksum
            && self.serial == other.serial
    }

    /// The origin's `refspec` (`remote:ref`, a ref, or a checksum).
    pub fn refspec(&self) -> Option<&str> {
        self.origin.get("origin", "refspec")
    }

    pub fn pinned(&self) -> bool {
        self.origin
            .get_bool("libostree-transient", "pinned")
            .unwrap_or(false)
    }

    /// The kernel version, from `vmlinuz-<version>`.
    pub fn kernel_version(&self) -> &str {
        self.linux.strip_prefix("vmlinuz-").unwrap_or(&self.linux)
    }
}

/// The deployments in boot order, and which of them is booted or staged.
#[derive(Clone, Debug)]
pub struct State {
    /// `N` of the live `/boot/loader.N`.
    pub bootversion: u8,
    /// `M` of the live `/ostree/boot.N.M`.
    pub subbootversion: u8,
    pub deployments: Vec<Deployment>,
    pub booted: Option<usize>,
    pub staged: Option<Staged>,
    /// SHA-256 of the live entries (names and contents): identifies the boot set, so
    /// that a staged deployment applies only to the set it was staged against.
    pub boot_set: String,
}

impl State {
    pub fn booted(&self) -> Option<&Deployment> {
        self.booted.map(|i| &self.deployments[i])
    }

    /// The deployment whose `/etc` and kernel arguments a new one of `stateroot` starts
    /// from: the booted one if it is of that stateroot, else the first of it.
    pub fn merge_deployment(&self, stateroot: &str) -> Option<&Deployment> {
        self.booted()
            .filter(|d| d.stateroot == stateroot)
            .or_else(|| self.deployments.iter().find(|d| d.stateroot == stateroot))
    }

    pub fn index_of(&self, deployment: &Deployment) -> Option<usize> {
        self.deployments.iter().position(|d| d.same(deployment))
    }

    /// Whether more than one stateroot has deployments (ostree then names it in titles).
    pub fn stateroots(&self) -> Vec<&str> {
        let mut seen = Vec::new();
        for d in &self.deployments {
            if !seen.contains(&d.stateroot.as_str()) {
                seen.push(d.stateroot.as_str());
            }
        }
        seen
    }
}

/// Where the booted deployment is read from.
#[derive(Clone, Debug)]
pub struct BootSource {
    /// The kernel command line file (`/proc/cmdline` on a machine).
    pub cmdline: PathBuf,
    /// Identifies this boot (`/proc/sys/kernel/random/boot_id` on a machine).
    pub boot_id: Option<String>,
}

impl Default for BootSource {
    fn default() -> Self {
        BootSource {
            cmdline: PathBuf::from("/proc/cmdline"),
            boot_id: fs::read_to_string("/proc/sys/kernel/random/boot_id")
                .ok()
                .map(|s| s.trim().to_owned()),
        }
    }
}

/// Held while the sysroot changes: an exclusive `flock` on `/ostree/lock`, the file
/// ostree locks, so that cairn and ostree never change one sysroot at once.
#[derive(Debug)]
pub struct SysrootLock {
    _file: fs::File,
}

#[derive(Clone, Debug)]
pub struct Sysroot {
    root: PathBuf,
    repo: Repo,
    boot: BootSource,
}

fn mkdir_mode(path: &Path, mode: u32) -> Result<()> {
    match fs::DirBuilder::new().mode(mode).create(path) {
        Ok(()) => fs::set_permissions(path, fs::Permissions::from_mode(mode)).at(path),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::Io {
            path: path.to_owned(),
            error: e,
        }),
    }
}

fn symlink_if_missing(target: &str, link: &Path) -> Result<()> {
    match std::os::unix::fs::symlink(target, link) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(Error::Io {
            path: link.to_owned(),
            error: e,
        }),
        _ => Ok(()),
    }
}

pub(crate) fn read_link_name(path: &Path) -> Result<Option<String>> {
    match fs::read_link(path) {
        Ok(target) => Ok(Some(target.to_string_lossy().into_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::Io {
            path: path.to_owned(),
            error: e,
        }),
    }
}

/// Checks a stateroot name as ostree would accept it as a directory name.
pub fn validate_stateroot(name: &str) -> Result<()> {
    validate_name(name)
        .map_err(|why| Error::Invalid(format!("invalid stateroot name {name:?}: {why}")))?;
    if name.starts_with('.') || name.contains(char::is_whitespace) {
        return Err(Error::Invalid(format!(
            "invalid stateroot name {name:?}: must not start with '.' or contain spaces"
        )));
    }
    Ok(())
}

impl Sysroot {
    /// Creates the top-level layout and the bare repository, as `ostree admin init-fs`;
    /// existing parts are kept.
    pub fn init_fs(root: &Path) -> Result<Sysroot> {
        fs::create_dir_all(root).at(root)?;
        for (name, mode) in [
            ("boot", 0o755),
            ("dev", 0o755),
            ("home", 0o755),
            ("proc", 0o755),
            ("root", 0o700),
            ("run", 0o755),
            ("sys", 0o755),
            ("tmp", 0o1777),
            ("ostree", 0o755),
            ("ostree/deploy", 0o755),
        ] {
            mkdir_mode(&root.join(name), mode)?;
        }
        symlink_if_missing(".", &root.join("boot/boot"))?;
        let repo_path = root.join("ostree/repo");
        if !repo_path.join("config").exists() {
            Repo::init(&repo_path, RepoMode::Bare)?;
        }
        Sysroot::open(root)
    }

    /// Opens an initialised sysroot; the booted deployment is read from `/proc/cmdline`
    /// until [`Sysroot::with_boot_source`] says otherwise.
    pub fn open(root: &Path) -> Result<Sysroot> {
        for needed in ["ostree/repo", "ostree/deploy"] {
            if !root.join(needed).is_dir() {
                return Err(Error::NotInitialized {
                    path: root.to_owned(),
                    reason: format!("no {needed}"),
                });
            }
        }
        let repo = Repo::open(&root.join("ostree/repo")).map_err(|e| Error::NotInitialized {
            path: root.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(Sysroot {
            root: root.to_owned(),
            repo,
            boot: BootSource::default(),
        })
    }

    /// Takes the sysroot lock, waiting for another writer to finish.
    pub fn lock(&self) -> Result<SysrootLock> {
        use rustix::fs::{flock, FlockOperation};
        let path = self.root.join("ostree/lock");
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .at(&path)?;
        if flock(&file, FlockOperation::NonBlockingLockExclusive).is_err() {
            tracing::warn!("waiting for the sysroot lock ({})", path.display());
            flock(&file, FlockOperation::LockExclusive)
                .map_err(io::Error::from)
                .at(&path)?;
        }
        Ok(SysrootLock { _file: file })
    }

    pub fn with_boot_source(mut self, boot: BootSource) -> Sysroot {
        self.boot = boot;
        self
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    pub fn repo(&self) -> &Repo {
        &self.repo
    }

    pub fn stateroot_path(&self, stateroot: &str) -> PathBuf {
        self.root.join("ostree/deploy").join(stateroot)
    }

    pub fn deployment_path(&self, d: &Deployment) -> PathBuf {
        self.stateroot_path(&d.stateroot)
            .join("deploy")
            .join(d.dir_name())
    }

    pub fn origin_path(&self, d: &Deployment) -> PathBuf {
        self.stateroot_path(&d.stateroot)
            .join("deploy")
            .join(format!("{}.origin", d.dir_name()))
    }

    /// `/boot/ostree/<stateroot>-<bootcsum>`.
    pub fn kernel_dir(&self, d: &Deployment) -> PathBuf {
        self.root
            .join("boot/ostree")
            .join(format!("{}-{}", d.stateroot, d.bootcsum))
    }

    /// Where cairn keeps its own sysroot state (health, bad commits): `/ostree/cairn`.
    pub fn state_dir(&self) -> PathBuf {
        self.root.join("ostree/cairn")
    }

    /// Per-boot state, gone at reboot on a machine: `/run/cairn`.
    pub fn run_dir(&self) -> PathBuf {
        self.root.join("run/cairn")
    }

    /// Creates a stateroot with its shared `/var`, as `ostree admin os-init`.
    pub fn os_init(&self, stateroot: &str) -> Result<()> {
        validate_stateroot(stateroot)?;
        let dir = self.stateroot_path(stateroot);
        mkdir_mode(&dir, 0o755)?;
        mkdir_mode(&dir.join("deploy"), 0o755)?;
        let var = dir.join("var");
        mkdir_mode(&var, 0o755)?;
        for (name, mode) in [("lib", 0o755), ("log", 0o755), ("tmp", 0o1777)] {
            mkdir_mode(&var.join(name), mode)?;
        }
        symlink_if_missing("../run", &var.join("run"))?;
        symlink_if_missing("../run/lock", &var.join("lock"))?;
        Ok(())
    }

    /// The stateroots that exist on disk, sorted.
    pub fn list_stateroots(&self) -> Result<Vec<String>> {
        let dir = self.root.join("ostree/deploy");
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).at(&dir)? {
            let entry = entry.at(&dir)?;
            if entry.path().join("deploy").is_dir() {
                out.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        out.sort();
        Ok(out)
    }

    /// Reads the live boot entries into the deployment list, finds the booted deployment
    /// and the staged one.
    pub fn load(&self) -> Result<State> {
        let bootversion = match read_link_name(&self.root.join("boot/loader"))?.as_deref() {
            None => 0,
            Some("loader.0") => 0,
            Some("loader.1") => 1,
            Some(other) => {
                return Err(Error::Invalid(format!(
                    "{}: unexpected target {other:?} (want loader.0 or loader.1)",
                    self.root.join("boot/loader").display()
                )))
            }
        };
        let subbootversion = self.read_subbootversion(bootversion)?.unwrap_or(0);
        let mut deployments = Vec::new();
        let entries_dir = self.root.join(format!("boot/loader.{bootversion}/entries"));
        let mut entries = Vec::new();
        let mut texts = Vec::new();
        match fs::read_dir(&entries_dir) {
            Ok(dir) => {
                for entry in dir {
                    let entry = entry.at(&entries_dir)?;
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if !name.ends_with(".conf") || name.starts_with('.') {
                        continue;
                    }
                    let text = fs::read_to_string(entry.path()).at(&entry.path())?;
                    texts.push((name.clone(), text.clone()));
                    entries.push((name, BootEntry::parse(&text)));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(Error::Io {
                    path: entries_dir,
                    error: e,
                })
            }
        }
        entries.sort_by(|a, b| {
            b.1.sort_version()
                .cmp(&a.1.sort_version())
                .then(a.0.cmp(&b.0))
        });
        for (name, entry) in entries {
            let where_ = entries_dir.join(&name);
            match self.deployment_from_entry(bootversion, &entry, &where_)? {
                Some(d) => deployments.push(d),
                None => tracing::warn!("{}: no ostree= argument; skipped", where_.display()),
            }
        }
        texts.sort();
        let boot_set = {
            use sha2::{Digest, Sha256};
            let mut hasher = Sha256::new();
            for (name, text) in &texts {
                hasher.update(format!("{}\0{name}\0{}\0", text.len(), text));
            }
            hex::encode(hasher.finalize())
        };
        let staged = stage::read_staged(self, &boot_set).unwrap_or_else(|e| {
            // /run is per boot and only cairn writes there: a record that does not parse
            // is dropped (cleanup removes it), never followed.
            tracing::warn!("ignoring the staged deployment record: {e}");
            None
        });
        let mut state = State {
            bootversion,
            subbootversion,
            deployments,
            booted: None,
            staged,
            boot_set,
        };
        state.booted = self.find_booted(&state)?;
        Ok(state)
    }

    pub(crate) fn read_subbootversion(&self, bootversion: u8) -> Result<Option<u8>> {
        let link = self.root.join(format!("ostree/boot.{bootversion}"));
        Ok(match read_link_name(&link)? {
            None => None,
            Some(target) if target == format!("boot.{bootversion}.0") => Some(0),
            Some(target) if target == format!("boot.{bootversion}.1") => Some(1),
            Some(other) => {
                return Err(Error::Invalid(format!(
                    "{}: unexpected target {other:?}",
                    link.display()
                )))
            }
        })
    }

    /// Follows an entry's `ostree=/ostree/boot.N/<stateroot>/<bootcsum>/<bootserial>`
    /// link to its deployment directory, checking every name on the way.
    fn deployment_from_entry(
        &self,
        bootversion: u8,
        entry: &BootEntry,
        where_: &Path,
    ) -> Result<Option<Deployment>> {
        let bad = |why: String| Error::Invalid(format!("{}: {why}", where_.display()));
        let mut kargs = Kargs::parse(entry.get("options").unwrap_or(""));
        let Some(ostree_arg) = kargs.value("ostree").map(str::to_owned) else {
            return Ok(None);
        };
        kargs.delete("ostree");
        let parts: Vec<&str> = ostree_arg.trim_start_matches('/').split('/').collect();
        let ["ostree", boot_dir, stateroot, bootcsum, bootserial] = parts.as_slice() else {
            return Err(bad(format!("malformed ostree={ostree_arg}")));
        };
        if *boot_dir != format!("boot.{bootversion}") {
            return Err(bad(format!(
                "ostree={ostree_arg} does not name boot.{bootversion}"
            )));
        }
        for name in [stateroot, bootcsum, bootserial] {
            validate_name(name).map_err(|why| bad(format!("ostree={ostree_arg}: {why}")))?;
        }
        let link = self
            .root
            .join("ostree")
            .join(boot_dir)
            .join(stateroot)
            .join(bootcsum)
            .join(bootserial);
        let target = read_link_name(&link)?
            .ok_or_else(|| bad(format!("{} does not exist", link.display())))?;
        let dir_name = target.rsplit('/').next().unwrap_or_default();
        let expected_prefix = format!("../../../deploy/{stateroot}/deploy/");
        if target != format!("{expected_prefix}{dir_name}") {
            return Err(bad(format!(
                "{} points at {target:?}, outside its stateroot",
                link.display()
            )));
        }
        let (checksum, serial) = parse_dir_name(dir_name)
            .ok_or_else(|| bad(format!("{} points at {target:?}", link.display())))?;
        let file_name = |key: &str| -> Result<Option<String>> {
            let Some(path) = entry.get(key) else {
                return Ok(None);
            };
            let name = path.rsplit('/').next().unwrap_or_default();
            validate_kernel_file(key, name).map_err(bad)?;
            Ok(Some(name.to_owned()))
        };
        let linux = file_name("linux")?.ok_or_else(|| bad("no linux line".into()))?;
        let initrd = file_name("initrd")?;
        let extra = entry
            .fields()
            .iter()
            .filter(|(k, _)| !STANDARD_FIELDS.contains(&k.as_str()))
            .cloned()
            .collect();
        let mut d = Deployment {
            stateroot: stateroot.to_string(),
            checksum,
            serial,
            bootcsum: bootcsum.to_string(),
            linux,
            initrd,
            kargs,
            origin: KeyFile::default(),
            extra_fields: extra,
        };
        let dir = self.deployment_path(&d);
        if !dir.is_dir() {
            return Err(bad(format!("deployment {} does not exist", dir.display())));
        }
        d.origin = self.read_origin(&d)?;
        Ok(Some(d))
    }

    pub(crate) fn read_origin(&self, d: &Deployment) -> Result<KeyFile> {
        let path = self.origin_path(d);
        match fs::read_to_string(&path) {
            Ok(text) => KeyFile::parse(&text)
                .map_err(|why| Error::Invalid(format!("{}: {why}", path.display()))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(KeyFile::default()),
            Err(e) => Err(Error::Io { path, error: e }),
        }
    }

    pub(crate) fn write_origin(&self, d: &Deployment) -> Result<()> {
        write_file_atomic(&self.origin_path(d), d.origin.to_text().as_bytes(), true)?;
        Ok(())
    }

    /// The `ostree=` argument of the current boot, if any.
    fn booted_ostree_arg(&self) -> Result<Option<String>> {
        match fs::read_to_string(&self.boot.cmdline) {
            Ok(text) => Ok(Kargs::parse(&text).value("ostree").map(str::to_owned)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::Io {
                path: self.boot.cmdline.clone(),
                error: e,
            }),
        }
    }

    /// Finds the booted deployment. On a machine (`/`), as ostree does: the deployment
    /// directory that is `/`. Otherwise from the command line's `ostree=` link, resolved
    /// once per boot and remembered in `/run/cairn/booted`, because later swaps reuse the
    /// `boot.N` names.
    fn find_booted(&self, state: &State) -> Result<Option<usize>> {
        let Some(arg) = self.booted_ostree_arg()? else {
            return Ok(None);
        };
        // Booted into an OSTree system: `/` itself is the booted deployment, whatever
        // path the sysroot is reached by (`/` or `/sysroot`).
        if self.root == Path::new("/") || Path::new("/run/ostree-booted").exists() {
            if let Ok(root) = fs::metadata("/") {
                for (i, d) in state.deployments.iter().enumerate() {
                    if let Ok(m) = fs::metadata(self.deployment_path(d)) {
                        if m.dev() == root.dev() && m.ino() == root.ino() {
                            return Ok(Some(i));
                        }
                    }
                }
            }
        }
        let record_path = self.run_dir().join("booted");
        let key = format!("{} {}", self.boot.boot_id.as_deref().unwrap_or("-"), arg);
        let recorded = fs::read_to_string(&record_path)
            .ok()
            .and_then(|t| KeyFile::parse(&t).ok())
            .filter(|k| k.get("booted", "boot") == Some(key.as_str()))
            .and_then(|k| k.get("booted", "deployment").map(str::to_owned));
        let resolved = match recorded {
            Some(name) => Some(name),
            None => {
                let rel = arg.trim_start_matches('/');
                let link = rel
                    .strip_prefix("ostree/")
                    .map(|r| self.root.join("ostree").join(r));
                let target = match &link {
                    Some(link) if !rel.split('/').any(|c| c == ".." || c.is_empty()) => {
                        read_link_name(link)?
                    }
                    _ => None,
                };
                let stateroot = rel.split('/').nth(2).unwrap_or_default();
                let name = target
                    .and_then(|t| t.rsplit('/').next().map(str::to_owned))
                    .map(|dir| format!("{stateroot}/{dir}"));
                if let Some(name) = &name {
                    let mut record = KeyFile::default();
                    record.set("booted", "boot", &key);
                    record.set("booted", "deployment", name);
                    fs::create_dir_all(self.run_dir()).at(&self.run_dir())?;
                    write_file_atomic(&record_path, record.to_text().as_bytes(), false)?;
                } else {
                    tracing::warn!("booted ostree={arg} does not resolve to a deployment");
                }
                name
            }
        };
        Ok(resolved.and_then(|name| {
            state
                .deployments
                .iter()
                .position(|d| format!("{}/{}", d.stateroot, d.dir_name()) == name)
        }))
    }

    /// Every deployment directory that must stay: listed, staged, or booted.
    pub(crate) fn referenced_dirs(&self, state: &State) -> HashSet<PathBuf> {
        let mut keep: HashSet<PathBuf> = state
            .deployments
            .iter()
            .map(|d| self.deployment_path(d))
            .collect();
        if let Some(staged) = &state.staged {
            keep.insert(self.deployment_path(&staged.deployment));
        }
        keep
    }
}

/// Parses `<checksum>.<serial>`.
pub fn parse_dir_name(name: &str) -> Option<(Checksum, u32)> {
    let (checksum, serial) = name.split_once('.')?;
    Some((Checksum::from_str(checksum).ok()?, serial.parse().ok()?))
}

#[cfg(test)]
mod doc_examples {
    //! The example files of docs/protocols/sysroot.md, parsed by the code that reads them.

    use super::*;
    use crate::bls::BootEntry;

    fn example(name: &str) -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../docs/protocols/examples/sysroot")
            .join(name);
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn deployment(stateroot: &str, dir_name: &str) -> Deployment {
        let (checksum, serial) = parse_dir_name(dir_name).unwrap();
        Deployment {
            stateroot: stateroot.into(),
            checksum,
            serial,
            bootcsum: String::new(),
            linux: String::new(),
            initrd: None,
            kargs: Kargs::default(),
            origin: KeyFile::default(),
            extra_fields: Vec::new(),
        }
    }

    #[test]
    fn the_entry_ostree_wrote_parses() {
        let entry = BootEntry::parse(&example("ostree-2-testos.conf"));
        assert_eq!(entry.sort_version(), 2);
        assert_eq!(entry.get("title"), Some("Test OS 2 (ostree:0)"));
        let kargs = Kargs::parse(entry.get("options").unwrap());
        let ostree = kargs.value("ostree").unwrap();
        let parts: Vec<&str> = ostree.split('/').collect();
        assert_eq!(parts[..4], ["", "ostree", "boot.0", "testos"]);
        let linux = entry.get("linux").unwrap();
        assert_eq!(linux, format!("/ostree/testos-{}/vmlinuz-6.1.0", parts[4]));
        assert_eq!(kargs.value("root"), Some("LABEL=root"));
    }

    #[test]
    fn the_staged_and_health_records_parse() {
        let dir = tempfile::tempdir().unwrap();
        let sysroot = Sysroot::init_fs(dir.path()).unwrap();
        sysroot.os_init("testos").unwrap();
        let staged_dir = "d1e033c68dc59a377140b24010b66e815302e99a5dae7b39d766da181197e96f.1";
        fs::create_dir_all(
            sysroot
                .stateroot_path("testos")
                .join("deploy")
                .join(staged_dir),
        )
        .unwrap();
        fs::create_dir_all(sysroot.run_dir()).unwrap();
        fs::write(
            sysroot.run_dir().join("staged-deployment"),
            example("staged-deployment"),
        )
        .unwrap();
        let boot_set = "1c0ffee0".repeat(8);
        let staged = crate::stage::read_staged(&sysroot, &boot_set)
            .unwrap()
            .unwrap();
        assert!(staged.locked);
        assert_eq!(staged.deployment.dir_name(), staged_dir);
        assert_eq!(staged.deployment.kargs.to_cmdline(), "root=LABEL=root rw");
        assert_eq!(staged.deployment.kernel_version(), "6.1.0");

        fs::create_dir_all(sysroot.state_dir()).unwrap();
        fs::write(sysroot.state_dir().join("health"), example("health")).unwrap();
        let bad = crate::health::bad_commits(&sysroot).unwrap();
        let failing = "81ddf57114a1f18a53778282e2fd23dfb78e208c7bdc7359e36aef7dacda2088.0";
        let good = "d1e033c68dc59a377140b24010b66e815302e99a5dae7b39d766da181197e96f.0";
        assert_eq!(bad.len(), 1);
        assert!(bad.contains_key(&parse_dir_name(failing).unwrap().0));
        let health = |d| crate::health::health_of(&sysroot, &deployment("testos", d)).unwrap();
        assert_eq!(health(failing), crate::health::Health::Failing(3));
        assert_eq!(health(good), crate::health::Health::Good);
        assert_eq!(health(staged_dir), crate::health::Health::Unknown);
    }
}
