//! Operator edits of updates metadata (`updates/<stream>.json`): rollouts, barriers, dead
//! ends, and a plain-words description of the current state. Pure functions: the caller
//! reads the file, passes the time, and writes the result with [`crate::wire::to_pretty_json`].
//!
//! Every edit keeps the document valid against the schema. A new entry is appended at the
//! end (Fedora CoreOS lists entries oldest first); an entry left without metadata is removed.
//! Edits do not touch `metadata.last-modified`: call [`set_last_modified`] once after them.

use crate::policy::RolloutProgress;
use crate::wire::{Barrier, Deadend, Rollout, UpdateEntry, UpdateEntryMetadata, UpdatesMetadata};

/// Why an edit was refused. The document is unchanged.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EditError {
    #[error("empty version")]
    EmptyVersion,
    #[error("start percentage {0} is not a fraction in 0.0..=1.0")]
    InvalidStartPercentage(f64),
    #[error("start epoch {0} is negative")]
    InvalidStartEpoch(i64),
    #[error(
        "a rollout lasts at least 1 minute (to expose everyone at once start at 1.0; to hold, pause)"
    )]
    ZeroDuration,
    #[error("{version} has no {what}")]
    Missing { version: String, what: &'static str },
    #[error("the rollout of {version} has not started (it starts at {starts}); stop or restart it instead")]
    RolloutNotStarted { version: String, starts: String },
    #[error("the rollout of {version} is complete; there is nothing to pause")]
    RolloutComplete { version: String },
    #[error("the rollout of {version} is not paused")]
    RolloutNotPaused { version: String },
}

/// Start (or restart) the rollout of `version`: `start_percentage` of the fleet sees it at
/// `start_epoch`, everyone `duration_minutes` later. Replaces any rollout of that version.
pub fn start_rollout(
    updates: &mut UpdatesMetadata,
    version: &str,
    start_epoch: i64,
    start_percentage: f64,
    duration_minutes: u64,
) -> Result<(), EditError> {
    if !(0.0..=1.0).contains(&start_percentage) {
        return Err(EditError::InvalidStartPercentage(start_percentage));
    }
    if start_epoch < 0 {
        return Err(EditError::InvalidStartEpoch(start_epoch));
    }
    if duration_minutes == 0 {
        return Err(EditError::ZeroDuration);
    }
    entry_or_insert(updates, version)?.rollout = Some(Rollout {
        duration_minutes: Some(duration_minutes),
        start_epoch: Some(start_epoch),
        start_percentage: Some(start_percentage),
    });
    Ok(())
}

/// Pause the rollout of `version` at its progress at `now`: `start_epoch` becomes `now`,
/// `start_percentage` the current fraction (rounded down to 0.0001, so nobody new is
/// exposed) and the duration is removed, which in the schema means "no progress". Clients
/// that see the release keep seeing it. Undone by [`resume_rollout`]. Pausing a paused
/// rollout changes nothing.
pub fn pause_rollout(
    updates: &mut UpdatesMetadata,
    version: &str,
    now: i64,
) -> Result<(), EditError> {
    let rollout = rollout_mut(updates, version)?;
    if !progresses(rollout) {
        return Ok(());
    }
    match rollout.progress(now) {
        RolloutProgress::NotStarted => Err(EditError::RolloutNotStarted {
            version: version.to_string(),
            starts: cairn_time::format_minutes(rollout.start_epoch.unwrap_or(0)),
        }),
        RolloutProgress::Started(fraction) if fraction >= 1.0 => Err(EditError::RolloutComplete {
            version: version.to_string(),
        }),
        RolloutProgress::Started(fraction) => {
            *rollout = Rollout {
                duration_minutes: None,
                start_epoch: Some(now),
                start_percentage: Some((fraction * 10_000.0).floor() / 10_000.0),
            };
            Ok(())
        }
    }
}

/// Resume a paused rollout of `version`: from its held fraction at `now` (or at its start,
/// if that is later) to everyone `duration_minutes` later.
pub fn resume_rollout(
    updates: &mut UpdatesMetadata,
    version: &str,
    now: i64,
    duration_minutes: u64,
) -> Result<(), EditError> {
    if duration_minutes == 0 {
        return Err(EditError::ZeroDuration);
    }
    let rollout = rollout_mut(updates, version)?;
    if progresses(rollout) {
        return Err(EditError::RolloutNotPaused {
            version: version.to_string(),
        });
    }
    rollout.start_epoch = Some(rollout.start_epoch.unwrap_or(0).max(now));
    rollout.duration_minutes = Some(duration_minutes);
    Ok(())
}

/// Stop the rollout of `version`: remove it. Without a rollout (or barrier) no edge leads to
/// the release, so no client is offered it any more, whatever its wariness; machines
/// already on it stay and still update onwards. Undone by starting the rollout again.
pub fn stop_rollout(updates: &mut UpdatesMetadata, version: &str) -> Result<(), EditError> {
    take(updates, version, "rollout", |metadata| {
        metadata.rollout.take().is_some()
    })
}

/// Make `version` a barrier (every update to a later release passes through it), or change
/// the reason of an existing barrier.
pub fn add_barrier(
    updates: &mut UpdatesMetadata,
    version: &str,
    reason: &str,
) -> Result<(), EditError> {
    entry_or_insert(updates, version)?.barrier = Some(Barrier {
        reason: reason.to_string(),
    });
    Ok(())
}

pub fn remove_barrier(updates: &mut UpdatesMetadata, version: &str) -> Result<(), EditError> {
    take(updates, version, "barrier", |metadata| {
        metadata.barrier.take().is_some()
    })
}

/// Make `version` a dead end (no update leaves it), or change the reason of an existing one.
pub fn mark_deadend(
    updates: &mut UpdatesMetadata,
    version: &str,
    reason: &str,
) -> Result<(), EditError> {
    entry_or_insert(updates, version)?.deadend = Some(Deadend {
        reason: reason.to_string(),
    });
    Ok(())
}

pub fn unmark_deadend(updates: &mut UpdatesMetadata, version: &str) -> Result<(), EditError> {
    take(updates, version, "dead end", |metadata| {
        metadata.deadend.take().is_some()
    })
}

/// Set `metadata.last-modified` to `now` (`2025-01-05T14:00:00Z`).
pub fn set_last_modified(updates: &mut UpdatesMetadata, now: i64) {
    updates.metadata.last_modified = cairn_time::format_rfc3339(now);
}

/// The state of every barrier, dead end and rollout at `now`, one line each, in document
/// order, e.g. `rollout of 41.20250105.3.0 at 37%, full at 2025-01-12 14:00 UTC`.
pub fn describe(updates: &UpdatesMetadata, now: i64) -> Vec<String> {
    let mut lines = Vec::new();
    for entry in &updates.releases {
        let version = &entry.version;
        if let Some(deadend) = &entry.metadata.deadend {
            lines.push(format!(
                "dead end at {version}{}",
                reason_suffix(&deadend.reason)
            ));
        }
        if let Some(barrier) = &entry.metadata.barrier {
            lines.push(format!(
                "barrier at {version}{}",
                reason_suffix(&barrier.reason)
            ));
        }
        if let Some(rollout) = &entry.metadata.rollout {
            lines.push(describe_rollout(version, rollout, now));
        }
    }
    lines
}

fn reason_suffix(reason: &str) -> String {
    if reason.is_empty() {
        " (no reason given)".to_string()
    } else {
        format!(": {reason}")
    }
}

fn describe_rollout(version: &str, rollout: &Rollout, now: i64) -> String {
    let start = rollout.start_epoch.unwrap_or(0);
    let start_value = rollout.start_percentage.unwrap_or(0.0).clamp(0.0, 1.0);
    let full_at = rollout
        .duration_minutes
        .filter(|&minutes| minutes > 0 && start_value < 1.0)
        .map(|minutes| {
            cairn_time::format_minutes(start.saturating_add_unsigned(minutes.saturating_mul(60)))
        });
    match (rollout.progress(now), full_at) {
        (RolloutProgress::NotStarted, _) if start_value >= 1.0 => format!(
            "rollout of {version} not started: everyone at {}",
            cairn_time::format_minutes(start)
        ),
        (RolloutProgress::NotStarted, Some(full)) => format!(
            "rollout of {version} not started: {} at {}, full at {full}",
            percent(start_value),
            cairn_time::format_minutes(start)
        ),
        (RolloutProgress::NotStarted, None) => format!(
            "rollout of {version} not started: {} at {}, then held (no duration)",
            percent(start_value),
            cairn_time::format_minutes(start)
        ),
        (RolloutProgress::Started(fraction), Some(full)) if fraction >= 1.0 => {
            format!("rollout of {version} complete (full since {full})")
        }
        (RolloutProgress::Started(fraction), _) if fraction >= 1.0 => {
            format!("rollout of {version} complete")
        }
        (RolloutProgress::Started(fraction), Some(full)) => {
            format!(
                "rollout of {version} at {}, full at {full}",
                percent(fraction)
            )
        }
        (RolloutProgress::Started(fraction), None) => format!(
            "rollout of {version} held at {} since {} (paused: no duration)",
            percent(fraction),
            cairn_time::format_minutes(start)
        ),
    }
}

/// Whole percent, rounded down: "99%" until everyone sees the release.
fn percent(fraction: f64) -> String {
    format!("{}%", (fraction * 100.0).floor() as u32)
}

fn progresses(rollout: &Rollout) -> bool {
    rollout.duration_minutes.is_some_and(|minutes| minutes > 0)
}

fn entry_or_insert<'a>(
    updates: &'a mut UpdatesMetadata,
    version: &str,
) -> Result<&'a mut UpdateEntryMetadata, EditError> {
    if version.is_empty() {
        return Err(EditError::EmptyVersion);
    }
    let position = match updates.releases.iter().position(|e| e.version == version) {
        Some(position) => position,
        None => {
            updates.releases.push(UpdateEntry {
                version: version.to_string(),
                metadata: UpdateEntryMetadata::default(),
            });
            updates.releases.len() - 1
        }
    };
    Ok(&mut updates.releases[position].metadata)
}

fn rollout_mut<'a>(
    updates: &'a mut UpdatesMetadata,
    version: &str,
) -> Result<&'a mut Rollout, EditError> {
    updates
        .releases
        .iter_mut()
        .find(|e| e.version == version)
        .and_then(|e| e.metadata.rollout.as_mut())
        .ok_or_else(|| EditError::Missing {
            version: version.to_string(),
            what: "rollout",
        })
}

/// Remove one kind of metadata from `version`'s entry, and the entry if nothing is left.
fn take(
    updates: &mut UpdatesMetadata,
    version: &str,
    what: &'static str,
    remove: impl FnOnce(&mut UpdateEntryMetadata) -> bool,
) -> Result<(), EditError> {
    let missing = || EditError::Missing {
        version: version.to_string(),
        what,
    };
    let position = updates
        .releases
        .iter()
        .position(|e| e.version == version)
        .ok_or_else(missing)?;
    if !remove(&mut updates.releases[position].metadata) {
        return Err(missing());
    }
    if updates.releases[position].metadata.is_empty() {
        updates.releases.remove(position);
    }
    Ok(())
}
