//! Fault injection for crash-safety tests.
//!
//! `CAIRN_FAULT=POINT:N` aborts the process (as a `kill -9` would stop it) the N-th time
//! the named write point is reached; `CAIRN_FAULT=POINT:N:enospc` makes that write fail
//! with "no space left on device" instead, where the caller uses [`io_point`]. Store
//! points: `object` (an object staged), `publish` (an object renamed into `objects/`),
//! `commit` (the commit object staged), `ref` (just before the ref is replaced). The
//! sysroot layer uses `sysroot` before each of its writes. Without the variable this
//! costs one atomic load.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

struct Setting {
    point: String,
    hit: u64,
    enospc: bool,
}

static SETTING: OnceLock<Option<Setting>> = OnceLock::new();
static HITS: AtomicU64 = AtomicU64::new(0);

fn setting() -> Option<&'static Setting> {
    SETTING
        .get_or_init(|| {
            let value = std::env::var("CAIRN_FAULT").ok()?;
            let mut parts = value.split(':');
            let point = parts.next()?.to_owned();
            let hit = parts.next().and_then(|n| n.parse().ok()).unwrap_or(1);
            let enospc = parts.next() == Some("enospc");
            Some(Setting { point, hit, enospc })
        })
        .as_ref()
}

/// Aborts here if this is the configured point and hit.
pub fn point(name: &str) {
    if let Err(e) = io_point(name) {
        eprintln!("cairn: fault injected at {name}: {e}");
        std::process::abort();
    }
}

/// Like [`point`], but in `enospc` mode returns the error for the caller to handle.
pub fn io_point(name: &str) -> io::Result<()> {
    let Some(setting) = setting() else {
        return Ok(());
    };
    if setting.point == name && HITS.fetch_add(1, Ordering::SeqCst) + 1 == setting.hit {
        if setting.enospc {
            return Err(io::Error::from_raw_os_error(28));
        }
        eprintln!("cairn: fault injected at {name}:{}", setting.hit);
        std::process::abort();
    }
    Ok(())
}
