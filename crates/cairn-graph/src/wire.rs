//! Fedora CoreOS's metadata documents, as they are served: the release index
//! (`prod/streams/<stream>/releases.json`), the updates metadata (`updates/<stream>.json`)
//! and the stream metadata (`streams/<stream>.json`).
//!
//! The release index and the updates metadata follow the JSON schemas published in
//! coreos/fedora-coreos-tracker (`metadata/release-index/schema.json`,
//! `metadata/updates/schema.json`); the stream metadata follows coreos/stream-metadata-rust.
//! `docs/protocols/graph.md` says which fields the graph reads and what each one means.
//!
//! Reading is forward compatible: keys that these types do not know are ignored, as the
//! reference graph builder ignores them. Writing therefore drops them; an editor that
//! writes a file back checks [`fields_lost_on_rewrite`] first.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// `metadata` of the release index and of the updates metadata.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentMetadata {
    /// UTC timestamp of the last change, ISO 8601 (`2024-04-10T00:00:00Z`).
    #[serde(rename = "last-modified")]
    pub last_modified: String,
}

/// The release index of one stream: every release, oldest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReleaseIndex {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Sorted from oldest to latest (the schema requires it; the graph's `age_index` is the
    /// position in this list).
    pub releases: Vec<Release>,
    pub metadata: DocumentMetadata,
    pub stream: String,
}

/// One release of the index and its payloads, per architecture.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Release {
    /// OSTree commits. Required by the schema, but the reference graph builder treats a
    /// missing list as empty (an OCI-only release), and so do we.
    #[serde(default)]
    pub commits: Vec<ReleaseCommit>,
    /// Container images; absent for releases older than the OCI transition.
    #[serde(
        rename = "oci-images",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub oci_images: Option<Vec<ReleaseOciImage>>,
    pub version: String,
    /// URL of this release's `release.json`.
    pub metadata: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseCommit {
    pub architecture: String,
    /// OSTree commit checksum (64 hex digits); the graph's payload for the checksum scheme.
    pub checksum: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseOciImage {
    pub architecture: String,
    /// Pull spec by tag, e.g. `quay.io/fedora/fedora-coreos:stable`.
    pub image: String,
    /// Pull spec by digest; the graph's payload for the OCI scheme.
    #[serde(rename = "digest-ref")]
    pub digest_ref: String,
}

/// The updates metadata of one stream: barriers, dead ends and rollouts, per release.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UpdatesMetadata {
    pub stream: String,
    pub metadata: DocumentMetadata,
    /// At most one entry per version (checked by [`crate::check_updates`], not by parsing).
    pub releases: Vec<UpdateEntry>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UpdateEntry {
    pub version: String,
    pub metadata: UpdateEntryMetadata,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct UpdateEntryMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub barrier: Option<Barrier>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadend: Option<Deadend>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,
}

impl UpdateEntryMetadata {
    pub fn is_empty(&self) -> bool {
        self.barrier.is_none() && self.deadend.is_none() && self.rollout.is_none()
    }
}

/// Every update to a later release passes through this one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Barrier {
    /// URL of a document explaining the barrier; may be empty.
    pub reason: String,
}

/// No update leaves this release.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deadend {
    /// URL of a document explaining the dead end; may be empty.
    pub reason: String,
}

/// Gradual exposure of a release: the fraction of the fleet that sees it grows linearly from
/// `start_percentage` at `start_epoch` to 1.0 after `duration_minutes`.
///
/// Field order is the order Fedora CoreOS's own tooling writes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Rollout {
    /// Without a duration (or with 0) the rollout holds at `start_percentage`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_minutes: Option<u64>,
    /// UNIX time of the start; absent means 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_epoch: Option<i64>,
    /// A fraction in 0.0..=1.0 despite its name; absent means 0.0. JSON integers are read
    /// too (two 2019 files say `100`); [`crate::check_updates`] refuses values out of range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_percentage: Option<f64>,
}

/// Stream metadata (`streams/<stream>.json`): the newest artifacts and cloud images of a
/// stream, per architecture. Only read by cairn; types follow coreos/stream-metadata-rust.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamMetadata {
    pub stream: String,
    pub metadata: StreamDocumentMetadata,
    pub architectures: BTreeMap<String, StreamArch>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamDocumentMetadata {
    #[serde(rename = "last-modified")]
    pub last_modified: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamArch {
    /// Per platform (`metal`, `qemu`, `aws`, …).
    pub artifacts: BTreeMap<String, StreamPlatform>,
    #[serde(default)]
    pub images: StreamImages,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamPlatform {
    pub release: String,
    /// Per format (`qcow2.xz`, `iso`, `pxe`, …), then per file (`disk`, `kernel`, …).
    pub formats: BTreeMap<String, BTreeMap<String, StreamArtifact>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamArtifact {
    pub location: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    pub sha256: String,
    #[serde(
        rename = "uncompressed-sha256",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub uncompressed_sha256: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamImages {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aliyun: Option<StreamRegionImages>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<StreamRegionImages>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gcp: Option<StreamGcpImage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubevirt: Option<StreamContainerImage>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamRegionImages {
    pub regions: BTreeMap<String, StreamRegionImage>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamRegionImage {
    pub release: String,
    pub image: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamGcpImage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    pub project: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamContainerImage {
    pub release: String,
    pub image: String,
    #[serde(rename = "digest-ref")]
    pub digest_ref: String,
}

/// Why a document could not be read. Displayed as
/// `updates metadata: releases[3].metadata.rollout.start_epoch: invalid type: … (line 12, column 30)`;
/// the caller adds the file name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{document}: {}{message} (line {line}, column {column})", path_prefix(.path))]
pub struct ParseError {
    /// `release index`, `updates metadata` or `stream metadata`.
    pub document: &'static str,
    /// JSON path of the offending field (`releases[3].metadata`), empty at the top.
    pub path: String,
    pub message: String,
    pub line: usize,
    pub column: usize,
}

fn path_prefix(path: &str) -> String {
    if path.is_empty() || path == "." {
        String::new()
    } else {
        format!("{path}: ")
    }
}

/// Read a release index (`releases.json`).
pub fn parse_release_index(text: &str) -> Result<ReleaseIndex, ParseError> {
    parse_document("release index", text)
}

/// Read updates metadata (`updates/<stream>.json`).
///
/// The pre-schema format of August 2019 (a top-level `updates` object with `barriers`,
/// `deadends` and `rollouts` lists) is refused with a message that says so, as the reference
/// graph builder refuses it.
pub fn parse_updates(text: &str) -> Result<UpdatesMetadata, ParseError> {
    parse_document("updates metadata", text).map_err(|mut error| {
        if is_legacy_updates(text) {
            error.message = format!(
                "legacy pre-schema document (top-level `updates` object), not supported: {}",
                error.message
            );
        }
        error
    })
}

/// Read stream metadata (`streams/<stream>.json`).
pub fn parse_stream_metadata(text: &str) -> Result<StreamMetadata, ParseError> {
    parse_document("stream metadata", text)
}

fn is_legacy_updates(text: &str) -> bool {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(map)) => {
            map.contains_key("updates") && !map.contains_key("releases")
        }
        _ => false,
    }
}

fn parse_document<T: DeserializeOwned>(
    document: &'static str,
    text: &str,
) -> Result<T, ParseError> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let value: T = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        parse_error(document, path, &inner)
    })?;
    deserializer
        .end()
        .map_err(|error| parse_error(document, String::new(), &error))?;
    Ok(value)
}

fn parse_error(document: &'static str, path: String, error: &serde_json::Error) -> ParseError {
    // serde_json appends " at line L column C" to its message; we print position ourselves.
    let full = error.to_string();
    let suffix = format!(" at line {} column {}", error.line(), error.column());
    let message = full.strip_suffix(&suffix).unwrap_or(&full).to_string();
    ParseError {
        document,
        path,
        message,
        line: error.line(),
        column: error.column(),
    }
}

/// Serialise a document the way Fedora CoreOS's tooling writes it: two-space indentation,
/// a trailing newline. The three live `updates/<stream>.json` round-trip byte for byte.
pub fn to_pretty_json<T: Serialize>(document: &T) -> String {
    // Serialising these types cannot fail: every map key is a string.
    let mut text = serde_json::to_string_pretty(document).unwrap_or_default();
    text.push('\n');
    text
}

/// JSON paths present in `original` but absent from `rewritten`: the fields a parse and
/// re-serialisation would drop (keys these types do not know). An editor refuses to write
/// a file back when this is not empty.
pub fn fields_lost_on_rewrite(
    original: &serde_json::Value,
    rewritten: &serde_json::Value,
) -> Vec<String> {
    let mut lost = Vec::new();
    collect_lost(original, rewritten, String::new(), &mut lost);
    lost
}

fn collect_lost(
    original: &serde_json::Value,
    rewritten: &serde_json::Value,
    path: String,
    lost: &mut Vec<String>,
) {
    use serde_json::Value;
    match (original, rewritten) {
        (Value::Object(before), Value::Object(after)) => {
            for (key, value) in before {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match after.get(key) {
                    Some(kept) => collect_lost(value, kept, child, lost),
                    None => lost.push(child),
                }
            }
        }
        (Value::Array(before), Value::Array(after)) => {
            for (index, (value, kept)) in before.iter().zip(after).enumerate() {
                collect_lost(value, kept, format!("{path}[{index}]"), lost);
            }
        }
        _ => {}
    }
}
