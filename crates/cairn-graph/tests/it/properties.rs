//! Invariants over generated release indexes and updates metadata: edges only towards a
//! higher age_index, none out of a dead end, no cycle; the policy only removes edges, and
//! shows more with time and less with wariness.

use std::collections::BTreeSet;

use cairn_graph::wire::{
    self, Barrier, Deadend, DocumentMetadata, Release, ReleaseCommit, ReleaseIndex,
    ReleaseOciImage, Rollout, UpdateEntry, UpdateEntryMetadata, UpdatesMetadata,
};
use cairn_graph::{build, check_updates, edit, filter, Graph, PayloadKind};
use proptest::prelude::*;

use crate::support::assert_invariants;

#[derive(Debug, Clone)]
struct GeneratedRelease {
    x86_64: bool,
    aarch64: bool,
    oci: bool,
    barrier: bool,
    deadend: bool,
    rollout: Option<Rollout>,
}

fn rollout() -> impl Strategy<Value = Rollout> {
    (
        proptest::option::of(0u64..200),
        proptest::option::of(0i64..5_000),
        // Up to four decimals, as in Fedora CoreOS's files: serde_json's default float
        // parser (the reference's too) is not correctly rounded for 17-digit decimals.
        proptest::option::of(0u32..=10_000),
    )
        .prop_map(|(duration_minutes, start_epoch, basis_points)| Rollout {
            duration_minutes,
            start_epoch,
            start_percentage: basis_points.map(|b| f64::from(b) / 10_000.0),
        })
}

fn release() -> impl Strategy<Value = GeneratedRelease> {
    (
        proptest::bool::weighted(0.9),
        proptest::bool::weighted(0.7),
        proptest::bool::weighted(0.5),
        proptest::bool::weighted(0.2),
        proptest::bool::weighted(0.15),
        proptest::option::weighted(0.6, rollout()),
    )
        .prop_map(
            |(x86_64, aarch64, oci, barrier, deadend, rollout)| GeneratedRelease {
                x86_64,
                aarch64,
                oci,
                barrier,
                deadend,
                rollout,
            },
        )
}

fn documents(releases: &[GeneratedRelease]) -> (ReleaseIndex, UpdatesMetadata) {
    let metadata = DocumentMetadata {
        last_modified: "2024-01-01T00:00:00Z".into(),
    };
    let version = |n: usize| format!("40.{}.3.0", 20240101 + n);
    let index = ReleaseIndex {
        note: None,
        releases: releases
            .iter()
            .enumerate()
            .map(|(n, r)| Release {
                commits: [("x86_64", r.x86_64), ("aarch64", r.aarch64)]
                    .into_iter()
                    .filter(|(_, present)| *present)
                    .map(|(arch, _)| ReleaseCommit {
                        architecture: arch.into(),
                        checksum: format!("{n:060x}{:04x}", arch.len()),
                    })
                    .collect(),
                oci_images: r.oci.then(|| {
                    vec![ReleaseOciImage {
                        architecture: "x86_64".into(),
                        image: "quay.io/fedora/fedora-coreos:stable".into(),
                        digest_ref: format!("quay.io/fedora/fedora-coreos@sha256:{n:064x}"),
                    }]
                }),
                version: version(n),
                metadata: String::new(),
            })
            .collect(),
        metadata: metadata.clone(),
        stream: "stable".into(),
    };
    let updates = UpdatesMetadata {
        stream: "stable".into(),
        metadata,
        releases: releases
            .iter()
            .enumerate()
            .map(|(n, r)| UpdateEntry {
                version: version(n),
                metadata: UpdateEntryMetadata {
                    barrier: r.barrier.then(|| Barrier {
                        reason: String::new(),
                    }),
                    deadend: r.deadend.then(|| Deadend {
                        reason: "https://example.invalid".into(),
                    }),
                    rollout: r.rollout.clone(),
                },
            })
            .filter(|e| !e.metadata.is_empty())
            .collect(),
    };
    (index, updates)
}

fn edges(graph: &Graph) -> BTreeSet<(u64, u64)> {
    graph.edges.iter().copied().collect()
}

const SCOPES: [(&str, PayloadKind); 3] = [
    ("x86_64", PayloadKind::Checksum),
    ("aarch64", PayloadKind::Checksum),
    ("x86_64", PayloadKind::Oci),
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn built_and_filtered_graphs_keep_the_invariants(
        releases in proptest::collection::vec(release(), 0..14),
        now in -100i64..20_000,
        wariness in 0.0f64..=1.0,
    ) {
        let (index, updates) = documents(&releases);
        prop_assert!(check_updates(&updates, &index).is_ok());
        for (arch, kind) in SCOPES {
            let graph = build(&index, &updates, "stable", arch, kind).unwrap();
            assert_invariants(&graph);
            let filtered = filter(&graph, now, wariness);
            assert_invariants(&filtered);
            prop_assert!(edges(&filtered).is_subset(&edges(&graph)));
            // Built graphs are already free of dead-end edges, and filtering twice changes nothing.
            prop_assert_eq!(&filter(&filtered, now, wariness), &filtered);
        }
    }

    #[test]
    fn policy_shows_more_with_time_and_less_with_wariness(
        releases in proptest::collection::vec(release(), 1..14),
        times in (-100i64..20_000, 0i64..20_000),
        warinesses in (0.0f64..=1.0, 0.0f64..=1.0),
    ) {
        let (index, updates) = documents(&releases);
        let graph = build(&index, &updates, "stable", "x86_64", PayloadKind::Checksum).unwrap();
        let (early, late) = (times.0, times.0 + times.1);
        let (bold, wary) = if warinesses.0 <= warinesses.1 { warinesses } else { (warinesses.1, warinesses.0) };
        prop_assert!(edges(&filter(&graph, early, bold)).is_subset(&edges(&filter(&graph, late, bold))));
        prop_assert!(edges(&filter(&graph, early, wary)).is_subset(&edges(&filter(&graph, early, bold))));
    }

    #[test]
    fn documents_and_graphs_round_trip(releases in proptest::collection::vec(release(), 0..10)) {
        let (index, updates) = documents(&releases);
        let text = wire::to_pretty_json(&updates);
        prop_assert_eq!(&wire::parse_updates(&text).unwrap(), &updates);
        let text = wire::to_pretty_json(&index);
        prop_assert_eq!(&wire::parse_release_index(&text).unwrap(), &index);
        let graph = build(&index, &updates, "stable", "x86_64", PayloadKind::Checksum).unwrap();
        let text = serde_json::to_string(&graph).unwrap();
        prop_assert_eq!(&serde_json::from_str::<Graph>(&text).unwrap(), &graph);
    }

    #[test]
    fn edits_keep_the_document_valid(
        releases in proptest::collection::vec(release(), 1..10),
        operations in proptest::collection::vec((0usize..8, 0usize..10, 0i64..10_000, 0u32..=10_000, 1u64..500), 0..20),
    ) {
        let (index, mut updates) = documents(&releases);
        for (operation, which, epoch, basis_points, minutes) in operations {
            let fraction = f64::from(basis_points) / 10_000.0;
            let version = index.releases[which % index.releases.len()].version.clone();
            let _ = match operation {
                0 => edit::start_rollout(&mut updates, &version, epoch, fraction, minutes),
                1 => edit::pause_rollout(&mut updates, &version, epoch),
                2 => edit::resume_rollout(&mut updates, &version, epoch, minutes),
                3 => edit::stop_rollout(&mut updates, &version),
                4 => edit::add_barrier(&mut updates, &version, "https://example.invalid/b"),
                5 => edit::remove_barrier(&mut updates, &version),
                6 => edit::mark_deadend(&mut updates, &version, ""),
                _ => edit::unmark_deadend(&mut updates, &version),
            };
            prop_assert!(check_updates(&updates, &index).is_ok());
            prop_assert!(updates.releases.iter().all(|e| !e.metadata.is_empty()));
            let text = wire::to_pretty_json(&updates);
            prop_assert_eq!(&wire::parse_updates(&text).unwrap(), &updates);
            prop_assert_eq!(edit::describe(&updates, epoch).len(),
                updates.releases.iter().map(|e| usize::from(e.metadata.barrier.is_some())
                    + usize::from(e.metadata.deadend.is_some())
                    + usize::from(e.metadata.rollout.is_some())).sum::<usize>());
        }
    }
}
