//! `apply_config`: resolve, plan, switch — exactly once.
//!
//! The marker `/etc/.cairn-provision.json` (mode 0600) is written in the same transaction
//! as everything else, so a root either has the whole provisioning and the marker, or
//! neither. It records when, the digest of the resolved config, and what every path the
//! run touched held before it (`preimages`). A second run finds the marker and does
//! nothing. `--force` plans on the root *as it was before the first run* for those
//! paths (the preimages laid over the real tree), so a forced run gives the same tree as
//! one run: appends are not doubled, users are not added twice, the result file does not
//! nest its own previous report.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::plan::{self, Context};
use crate::resolve::{self, ResolveOptions, Resolved};
use crate::txn;
use crate::view::{Node, View};

/// Where the exactly-once marker lives in the root.
pub const MARKER: &str = "/etc/.cairn-provision.json";

/// Preimages larger than this in total make a run that `--force` cannot redo exactly;
/// the marker says so and `--force` refuses.
const PREIMAGE_LIMIT: u64 = 64 << 20;

#[derive(Clone, Debug, Default)]
pub struct ApplyOptions {
    /// Apply again over an earlier run, with the result of one run.
    pub force: bool,
    pub skip_storage: bool,
    pub require_verification: bool,
    /// The resolved, self-contained config: read instead of fetching when it exists,
    /// written (mode 0600) before the switch when it does not.
    pub cache: Option<PathBuf>,
    pub fetch: crate::fetch::FetchOptions,
}

#[derive(Debug)]
pub enum Outcome {
    Applied {
        changes: usize,
        warnings: Vec<String>,
    },
    /// The marker was there and `force` was not given: nothing changed.
    AlreadyProvisioned { date: String },
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Resolve(#[from] resolve::ResolveError),
    #[error(transparent)]
    Plan(#[from] plan::PlanError),
    #[error(transparent)]
    Txn(#[from] txn::TxnError),
    #[error("{0}")]
    Marker(String),
    #[error("{path}: {error}")]
    Io { path: String, error: std::io::Error },
}

/// What a path held before the first run.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum Preimage {
    Absent {
        path: String,
    },
    Dir {
        path: String,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    File {
        path: String,
        mode: u32,
        uid: u32,
        gid: u32,
        /// base64
        contents: String,
    },
    Symlink {
        path: String,
        target: String,
        uid: u32,
        gid: u32,
    },
}

impl Preimage {
    fn path(&self) -> &str {
        match self {
            Preimage::Absent { path }
            | Preimage::Dir { path, .. }
            | Preimage::File { path, .. }
            | Preimage::Symlink { path, .. } => path,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Marker {
    version: u32,
    provisioning_date: String,
    provisioning_boot_id: String,
    /// sha256 of the config as given (or of the cache it was read from).
    config_digest: String,
    /// False when the preimages were too large to keep: `--force` then refuses.
    restorable: bool,
    preimages: Vec<Preimage>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ApplyError + '_ {
    move |error| ApplyError::Io {
        path: path.display().to_string(),
        error,
    }
}

/// Applies `input` (Ignition JSON or cairn's YAML) to `root`, all or nothing, once.
pub fn apply_config(
    root: &Path,
    input: &[u8],
    options: &ApplyOptions,
) -> Result<Outcome, ApplyError> {
    let root_dir = fs::File::open(root).map_err(io_err(root))?;
    // One applier at a time: a lock on the root directory itself leaves nothing behind.
    rustix::fs::flock(&root_dir, rustix::fs::FlockOperation::LockExclusive).map_err(|e| {
        ApplyError::Io {
            path: root.display().to_string(),
            error: e.into(),
        }
    })?;
    // An interrupted earlier run is undone before anything is read.
    txn::recover(root)?;

    let marker_path = View::new(root).resolve(MARKER)?;
    let previous = read_marker(root, &marker_path)?;
    if let Some(m) = &previous {
        if !options.force {
            return Ok(Outcome::AlreadyProvisioned {
                date: m.provisioning_date.clone(),
            });
        }
        if !m.restorable {
            return Err(ApplyError::Marker(format!(
                "{MARKER}: the earlier run changed more than {} MiB of existing content, \
                 too much to keep; --force cannot redo it exactly",
                PREIMAGE_LIMIT >> 20
            )));
        }
    }

    let (resolved, digest) = resolve_input(input, options)?;
    let ctx = context();

    let mut view = View::new(root);
    let earlier: Vec<Preimage> = previous.map(|m| m.preimages).unwrap_or_default();
    for p in &earlier {
        view.set(p.path(), preimage_node(p)?);
    }
    plan::plan(&mut view, &resolved.config, &ctx)?;

    // What every touched path held before the first run.
    let mut preimages: Vec<Preimage> = Vec::new();
    let mut size = 0u64;
    let touched: Vec<String> = view
        .touched()
        .filter(|p| p.as_str() != marker_path)
        .cloned()
        .collect();
    for path in &touched {
        match earlier.iter().find(|p| p.path() == path) {
            Some(p) => preimages.push(p.clone()),
            None => {
                // A directory the run replaces is kept whole; one it keeps, by itself.
                let deep = !matches!(view.node(path), Some(Node::Dir { fresh: false, .. }));
                if view.exists_in_root(path) {
                    record(root, path, deep, &mut preimages, &mut size);
                } else {
                    preimages.push(Preimage::Absent { path: path.clone() });
                }
            }
        }
    }
    preimages.sort_by(|a, b| a.path().cmp(b.path()));
    preimages.dedup_by(|a, b| a.path() == b.path());
    let restorable = size <= PREIMAGE_LIMIT;
    if !restorable {
        preimages.clear();
    }
    let marker = Marker {
        version: 1,
        provisioning_date: ctx.date.clone(),
        provisioning_boot_id: ctx.boot_id.clone(),
        config_digest: digest,
        restorable,
        preimages,
    };
    let mut text =
        serde_json::to_vec_pretty(&marker).map_err(|e| ApplyError::Marker(e.to_string()))?;
    text.push(b'\n');
    view.set(
        &marker_path,
        Node::File {
            contents: Some(text),
            mode: 0o600,
            uid: 0,
            gid: 0,
        },
    );

    if let Some(cache) = &options.cache {
        if !cache.exists() {
            let json = serde_json::to_vec(&resolved.to_json())
                .map_err(|e| ApplyError::Marker(e.to_string()))?;
            write_private(cache, &json)?;
        }
    }
    let changes = view.changes();
    txn::apply(root, &changes)?;
    Ok(Outcome::Applied {
        changes: changes.len(),
        warnings: resolved.warnings,
    })
}

/// The resolved config, and the sha256 of the bytes it was resolved from (the config as
/// given, or the cache).
fn resolve_input(input: &[u8], options: &ApplyOptions) -> Result<(Resolved, String), ApplyError> {
    let resolve_options = ResolveOptions {
        fetch: options.fetch.clone(),
        require_verification: options.require_verification,
        skip_storage: options.skip_storage,
    };
    let cached = match &options.cache {
        Some(path) if path.exists() => Some(fs::read(path).map_err(io_err(path))?),
        _ => None,
    };
    let bytes = cached.as_deref().unwrap_or(input);
    let resolved = resolve::resolve(bytes, &resolve_options)?;
    Ok((resolved, hex::encode(Sha256::digest(bytes))))
}

fn context() -> Context {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    Context {
        days_since_epoch: now / 86400,
        date: cairn_store::time::format_rfc3339(now as i64),
        boot_id: fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .map(|s| s.trim().to_string())
            .unwrap_or_default(),
    }
}

fn read_marker(root: &Path, marker: &str) -> Result<Option<Marker>, ApplyError> {
    let path = root.join(marker.trim_start_matches('/'));
    match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            ApplyError::Marker(format!(
                "{MARKER}: unreadable ({e}); remove it to provision this root again"
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(&path)(e)),
    }
}

fn preimage_node(p: &Preimage) -> Result<Node, ApplyError> {
    Ok(match p {
        Preimage::Absent { .. } => Node::Absent,
        Preimage::Dir { mode, uid, gid, .. } => Node::Dir {
            mode: *mode,
            uid: *uid,
            gid: *gid,
            fresh: false,
        },
        Preimage::File {
            mode,
            uid,
            gid,
            contents,
            path,
        } => Node::File {
            contents: Some(
                base64::engine::general_purpose::STANDARD
                    .decode(contents)
                    .map_err(|e| {
                        ApplyError::Marker(format!("{MARKER}: preimage of {path}: {e}"))
                    })?,
            ),
            mode: *mode,
            uid: *uid,
            gid: *gid,
        },
        Preimage::Symlink {
            target, uid, gid, ..
        } => Node::Symlink {
            target: target.clone(),
            uid: *uid,
            gid: *gid,
        },
    })
}

/// Records what `path` holds now (a directory with everything below it).
fn record(root: &Path, path: &str, deep: bool, out: &mut Vec<Preimage>, size: &mut u64) {
    let real = root.join(path.trim_start_matches('/'));
    let Ok(m) = fs::symlink_metadata(&real) else {
        out.push(Preimage::Absent {
            path: path.to_string(),
        });
        return;
    };
    let (mode, uid, gid) = (m.mode() & 0o7777, m.uid(), m.gid());
    if m.file_type().is_symlink() {
        let target = fs::read_link(&real)
            .map(|t| t.to_string_lossy().into_owned())
            .unwrap_or_default();
        out.push(Preimage::Symlink {
            path: path.to_string(),
            target,
            uid,
            gid,
        });
    } else if m.is_dir() {
        out.push(Preimage::Dir {
            path: path.to_string(),
            mode,
            uid,
            gid,
        });
        let entries = if deep { fs::read_dir(&real).ok() } else { None };
        if let Some(entries) = entries {
            for e in entries.flatten() {
                let child = format!(
                    "{}/{}",
                    path.trim_end_matches('/'),
                    e.file_name().to_string_lossy()
                );
                record(root, &child, true, out, size);
            }
        }
    } else if m.is_file() {
        *size += m.len();
        if *size > PREIMAGE_LIMIT {
            return;
        }
        let contents = fs::read(&real).unwrap_or_default();
        out.push(Preimage::File {
            path: path.to_string(),
            mode,
            uid,
            gid,
            contents: base64::engine::general_purpose::STANDARD.encode(contents),
        });
    }
}

/// Writes a file only root can read, atomically.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), ApplyError> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    let tmp = path.with_extension("tmp");
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io_err(&tmp))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(io_err(&tmp))?;
    fs::rename(&tmp, path).map_err(io_err(path))
}
