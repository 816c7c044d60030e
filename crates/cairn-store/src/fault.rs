//! Fault injection for crash-safety tests.
//!
//! `CAIRN_FAULT=POINT:N` aborts the process (as a `kill -9` would stop it) the N-th time
//! the named write point is reached. Points: `object` (an object staged), `publish` (an
//! object renamed into `objects/`), `commit` (the commit object staged), `ref` (just
//! before the ref is replaced). Without the variable this costs one atomic load.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

static SETTING: OnceLock<Option<(String, u64)>> = OnceLock::new();
static HITS: AtomicU64 = AtomicU64::new(0);

pub fn point(name: &str) {
    let setting = SETTING.get_or_init(|| {
        let value = std::env::var("CAIRN_FAULT").ok()?;
        let (point, n) = value.split_once(':').unwrap_or((value.as_str(), "1"));
        Some((point.to_owned(), n.parse().unwrap_or(1)))
    });
    if let Some((point, n)) = setting {
        if point == name && HITS.fetch_add(1, Ordering::SeqCst) + 1 == *n {
            eprintln!("cairn: fault injected at {name}:{n}");
            std::process::abort();
        }
    }
}
