//! Operator edits of updates metadata, and their description in plain words.

use cairn_graph::edit::{self, EditError};
use cairn_graph::wire::{self, Rollout, UpdatesMetadata};
use cairn_graph::{build, check_updates, filter, PayloadKind};

use crate::support::{synthetic_index, updates};

/// 2025-01-05 14:00 UTC.
const T0: i64 = 1_736_085_600;
const HOUR: i64 = 3_600;
const DAY: i64 = 86_400;

fn empty() -> UpdatesMetadata {
    wire::parse_updates(r#"{"stream": "stable", "metadata": {"last-modified": "2025-01-01T00:00:00Z"}, "releases": []}"#)
        .unwrap()
}

fn rollout_of<'a>(updates: &'a UpdatesMetadata, version: &str) -> &'a Rollout {
    updates
        .releases
        .iter()
        .find(|e| e.version == version)
        .and_then(|e| e.metadata.rollout.as_ref())
        .unwrap()
}

#[test]
fn rollout_lifecycle_in_plain_words() {
    let mut updates = empty();
    edit::start_rollout(&mut updates, "41.20250105.3.0", T0, 0.1, 7 * 24 * 60).unwrap();
    assert_eq!(
        edit::describe(&updates, T0 - HOUR),
        ["rollout of 41.20250105.3.0 not started: 10% at 2025-01-05 14:00 UTC, full at 2025-01-12 14:00 UTC"]
    );
    // After two days: 10% + 90% × 2/7 = 35.7%.
    assert_eq!(
        edit::describe(&updates, T0 + 2 * DAY),
        ["rollout of 41.20250105.3.0 at 35%, full at 2025-01-12 14:00 UTC"]
    );

    // Pause: frozen at the current fraction, no duration.
    edit::pause_rollout(&mut updates, "41.20250105.3.0", T0 + 2 * DAY).unwrap();
    let paused = rollout_of(&updates, "41.20250105.3.0");
    assert_eq!(paused.start_epoch, Some(T0 + 2 * DAY));
    assert_eq!(paused.start_percentage, Some(0.3571));
    assert_eq!(paused.duration_minutes, None);
    assert_eq!(
        edit::describe(&updates, T0 + 5 * DAY),
        ["rollout of 41.20250105.3.0 held at 35% since 2025-01-07 14:00 UTC (paused: no duration)"]
    );
    // Pausing again changes nothing.
    let before = updates.clone();
    edit::pause_rollout(&mut updates, "41.20250105.3.0", T0 + 3 * DAY).unwrap();
    assert_eq!(updates, before);

    // Resume: from the held fraction, over a new duration.
    edit::resume_rollout(&mut updates, "41.20250105.3.0", T0 + 5 * DAY, 24 * 60).unwrap();
    assert_eq!(
        edit::describe(&updates, T0 + 5 * DAY),
        ["rollout of 41.20250105.3.0 at 35%, full at 2025-01-11 14:00 UTC"]
    );
    assert_eq!(
        edit::describe(&updates, T0 + 7 * DAY),
        ["rollout of 41.20250105.3.0 complete (full since 2025-01-11 14:00 UTC)"]
    );
    assert_eq!(
        edit::pause_rollout(&mut updates, "41.20250105.3.0", T0 + 7 * DAY),
        Err(EditError::RolloutComplete {
            version: "41.20250105.3.0".into()
        })
    );

    // Stop: the rollout is gone, and the entry with it.
    edit::stop_rollout(&mut updates, "41.20250105.3.0").unwrap();
    assert!(updates.releases.is_empty());
    assert_eq!(
        edit::stop_rollout(&mut updates, "41.20250105.3.0")
            .unwrap_err()
            .to_string(),
        "41.20250105.3.0 has no rollout"
    );
}

#[test]
fn pause_keeps_exposed_clients_and_hides_the_rest() {
    let index = synthetic_index("stable", &["1.0", "2.0"]);
    let mut updates = empty();
    edit::start_rollout(&mut updates, "2.0", T0, 0.0, 100).unwrap();
    let halfway = T0 + 50 * 60;
    edit::pause_rollout(&mut updates, "2.0", halfway).unwrap();
    let graph = build(&index, &updates, "stable", "x86_64", PayloadKind::Checksum).unwrap();
    for later in [halfway, halfway + 365 * DAY] {
        assert_eq!(filter(&graph, later, 0.5).edges, [(0, 1)]);
        assert!(filter(&graph, later, 0.51).edges.is_empty());
    }
}

#[test]
fn edits_refuse_bad_input() {
    let mut updates = empty();
    assert_eq!(
        edit::start_rollout(&mut updates, "1", T0, 1.5, 60),
        Err(EditError::InvalidStartPercentage(1.5))
    );
    assert!(matches!(
        edit::start_rollout(&mut updates, "1", T0, f64::NAN, 60),
        Err(EditError::InvalidStartPercentage(_))
    ));
    assert_eq!(
        edit::start_rollout(&mut updates, "1", T0, 0.5, 0),
        Err(EditError::ZeroDuration)
    );
    assert_eq!(
        edit::start_rollout(&mut updates, "1", -1, 0.5, 60),
        Err(EditError::InvalidStartEpoch(-1))
    );
    assert_eq!(
        edit::add_barrier(&mut updates, "", "r"),
        Err(EditError::EmptyVersion)
    );
    assert_eq!(updates, empty());

    edit::start_rollout(&mut updates, "1", T0, 0.5, 60).unwrap();
    assert_eq!(
        edit::pause_rollout(&mut updates, "1", T0 - 1).unwrap_err().to_string(),
        "the rollout of 1 has not started (it starts at 2025-01-05 14:00 UTC); stop or restart it instead"
    );
    assert_eq!(
        edit::resume_rollout(&mut updates, "1", T0, 60),
        Err(EditError::RolloutNotPaused {
            version: "1".into()
        })
    );
    assert_eq!(
        edit::pause_rollout(&mut updates, "2", T0)
            .unwrap_err()
            .to_string(),
        "2 has no rollout"
    );
    assert_eq!(
        edit::remove_barrier(&mut updates, "1")
            .unwrap_err()
            .to_string(),
        "1 has no barrier"
    );
    assert_eq!(
        edit::unmark_deadend(&mut updates, "1")
            .unwrap_err()
            .to_string(),
        "1 has no dead end"
    );
}

#[test]
fn barriers_and_deadends() {
    let mut updates = empty();
    edit::add_barrier(
        &mut updates,
        "40.20240212.3.0",
        "https://example.invalid/barrier",
    )
    .unwrap();
    edit::mark_deadend(&mut updates, "40.20240115.3.0", "").unwrap();
    edit::add_barrier(
        &mut updates,
        "40.20240115.3.0",
        "https://example.invalid/b2",
    )
    .unwrap();
    assert_eq!(
        edit::describe(&updates, T0),
        [
            "barrier at 40.20240212.3.0: https://example.invalid/barrier",
            "dead end at 40.20240115.3.0 (no reason given)",
            "barrier at 40.20240115.3.0: https://example.invalid/b2",
        ]
    );
    // A second add changes the reason, in place.
    edit::add_barrier(
        &mut updates,
        "40.20240212.3.0",
        "https://example.invalid/other",
    )
    .unwrap();
    assert_eq!(
        updates.releases[0]
            .metadata
            .barrier
            .as_ref()
            .unwrap()
            .reason,
        "https://example.invalid/other"
    );
    edit::unmark_deadend(&mut updates, "40.20240115.3.0").unwrap();
    edit::remove_barrier(&mut updates, "40.20240115.3.0").unwrap();
    assert_eq!(updates.releases.len(), 1);
    edit::remove_barrier(&mut updates, "40.20240212.3.0").unwrap();
    assert!(updates.releases.is_empty());
}

#[test]
fn describe_the_synthetic_updates() {
    let updates = updates("synthetic/updates-stable.json");
    // 2024-04-11 10:00 UTC: 1.5 days into a two-day rollout from 25% at 2024-04-09 22:00.
    let now = 1_712_700_000 + 36 * HOUR;
    assert_eq!(
        edit::describe(&updates, now),
        [
            "dead end at 40.20240115.3.0: https://example.invalid/deadend",
            "barrier at 40.20240212.3.0: https://example.invalid/barrier",
            "barrier at 41.20240311.3.0 (no reason given)",
            "rollout of 41.20240311.3.0 complete",
            "rollout of 41.20240325.3.0 complete",
            "rollout of 41.20240408.3.0 at 81%, full at 2024-04-11 22:00 UTC",
        ]
    );
}

#[test]
fn edited_live_file_stays_valid_and_keeps_its_form() {
    let text = crate::support::read("updates/stable.json");
    let mut updates = wire::parse_updates(&text).unwrap();
    let versions: Vec<String> = updates.releases.iter().map(|e| e.version.clone()).collect();
    let mut all: Vec<&str> = versions.iter().map(String::as_str).collect();
    all.push("44.20260721.3.0");
    let index = synthetic_index("stable", &all);
    edit::start_rollout(&mut updates, "44.20260721.3.0", 1_785_000_000, 0.0, 2880).unwrap();
    edit::set_last_modified(&mut updates, 1_785_000_000);
    check_updates(&updates, &index).unwrap();
    let written = wire::to_pretty_json(&updates);
    // The original text is a prefix, but for the last entry's closing and the timestamp.
    assert!(written.contains(
        r#"    {
      "version": "44.20260721.3.0",
      "metadata": {
        "rollout": {
          "duration_minutes": 2880,
          "start_epoch": 1785000000,
          "start_percentage": 0.0
        }
      }
    }
  ]
}
"#
    ));
    assert!(
        written.contains(r#""last-modified": "2026-07-25T17:20:00Z""#),
        "{written}"
    );
    assert_eq!(wire::parse_updates(&written).unwrap(), updates);
}

#[test]
fn start_value_and_unstarted_wording() {
    let mut updates = empty();
    edit::start_rollout(&mut updates, "1", T0, 1.0, 60).unwrap();
    assert_eq!(
        edit::describe(&updates, T0 - 1),
        ["rollout of 1 not started: everyone at 2025-01-05 14:00 UTC"]
    );
    assert_eq!(edit::describe(&updates, T0), ["rollout of 1 complete"]);
    updates.releases[0].metadata.rollout = Some(Rollout {
        duration_minutes: None,
        start_epoch: Some(T0),
        start_percentage: Some(0.25),
    });
    assert_eq!(
        edit::describe(&updates, T0 - 1),
        ["rollout of 1 not started: 25% at 2025-01-05 14:00 UTC, then held (no duration)"]
    );
}
