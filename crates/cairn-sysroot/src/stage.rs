//! Staged deployments: checked out and merged now, written into the boot entries only
//! when `finalize-staged` runs at shutdown (or `finalize-deployment` when locked).
//!
//! The record lives in `/run/cairn/staged-deployment`, a key file. `/run` is emptied at
//! every boot on a machine, so a staged deployment that was never finalized is dropped,
//! as with ostree; `cleanup` then removes its directory.

use std::fs;
use std::io;
use std::str::FromStr;

use cairn_store::keyfile::KeyFile;
use cairn_store::repo::write_file_atomic;
use cairn_store::Checksum;

use crate::error::{Error, IoContext, Result};
use crate::kargs::Kargs;
use crate::sysroot::{Deployment, Sysroot};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Staged {
    pub deployment: Deployment,
    /// Finalization waits for an explicit `finalize-deployment` (`--lock-finalization`).
    pub locked: bool,
    /// Finalization keeps every existing deployment (`--retain`).
    pub retain: bool,
    /// The boot set it was staged against ([`crate::State::boot_set`]).
    pub boot_set: String,
}

const GROUP: &str = "staged";

pub(crate) fn record_path(sysroot: &Sysroot) -> std::path::PathBuf {
    sysroot.run_dir().join("staged-deployment")
}

/// The staged deployment, if one is recorded for the live boot set (`boot_set`); a record
/// made against an earlier boot set was retired by a later change and is ignored.
pub fn read_staged(sysroot: &Sysroot, boot_set: &str) -> Result<Option<Staged>> {
    let path = record_path(sysroot);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::Io { path, error: e }),
    };
    let bad = |why: &str| Error::Invalid(format!("{}: {why}", path.display()));
    let k = KeyFile::parse(&text).map_err(|why| bad(&why))?;
    let field = |key: &str| {
        k.get(GROUP, key)
            .ok_or_else(|| bad(&format!("no {key}")))
            .map(str::to_owned)
    };
    if field("boot-set")? != boot_set {
        tracing::info!("a staged deployment was retired by a later change of the boot entries");
        return Ok(None);
    }
    let stateroot = field("stateroot")?;
    crate::sysroot::validate_stateroot(&stateroot)?;
    let mut deployment = Deployment {
        stateroot,
        checksum: Checksum::from_str(&field("checksum")?).map_err(|_| bad("bad checksum"))?,
        serial: field("serial")?.parse().map_err(|_| bad("bad serial"))?,
        bootcsum: field("bootcsum")?,
        linux: field("linux")?,
        initrd: k.get(GROUP, "initrd").map(str::to_owned),
        kargs: Kargs::parse(k.get(GROUP, "kargs").unwrap_or("")),
        origin: KeyFile::default(),
        extra_fields: Vec::new(),
    };
    cairn_store::object::validate_name(&deployment.bootcsum).map_err(bad)?;
    crate::sysroot::validate_kernel_file("linux", &deployment.linux).map_err(|why| bad(&why))?;
    if let Some(initrd) = &deployment.initrd {
        crate::sysroot::validate_kernel_file("initrd", initrd).map_err(|why| bad(&why))?;
    }
    if !sysroot.deployment_path(&deployment).is_dir() {
        tracing::warn!(
            "staged deployment {} is gone; ignored",
            deployment.dir_name()
        );
        return Ok(None);
    }
    deployment.origin = sysroot.read_origin(&deployment)?;
    Ok(Some(Staged {
        deployment,
        locked: k.get_bool(GROUP, "locked").unwrap_or(false),
        retain: k.get_bool(GROUP, "retain").unwrap_or(false),
        boot_set: boot_set.to_owned(),
    }))
}

pub(crate) fn write_staged(sysroot: &Sysroot, staged: &Staged) -> Result<()> {
    let d = &staged.deployment;
    let mut k = KeyFile::default();
    k.set(GROUP, "boot-set", &staged.boot_set);
    k.set(GROUP, "stateroot", &d.stateroot);
    k.set(GROUP, "checksum", &d.checksum.to_string());
    k.set(GROUP, "serial", &d.serial.to_string());
    k.set(GROUP, "bootcsum", &d.bootcsum);
    k.set(GROUP, "linux", &d.linux);
    if let Some(initrd) = &d.initrd {
        k.set(GROUP, "initrd", initrd);
    }
    k.set(GROUP, "kargs", &d.kargs.to_cmdline());
    k.set(
        GROUP,
        "locked",
        if staged.locked { "true" } else { "false" },
    );
    if staged.retain {
        k.set(GROUP, "retain", "true");
    }
    let dir = sysroot.run_dir();
    fs::create_dir_all(&dir).at(&dir)?;
    cairn_store::fault::io_point("sysroot").at(&record_path(sysroot))?;
    write_file_atomic(&record_path(sysroot), k.to_text().as_bytes(), true)?;
    Ok(())
}
