//! The `summary` file: every ref with its commit, as `ostree summary -u` writes it.

use crate::gvariant::{Type, Value};
use crate::object::{self, ObjectType};
use crate::repo::{write_file_atomic, Repo, Result};

/// Builds the summary `(a(s(taya{sv}))a{sv})` for the local refs; `now` is the
/// `ostree.summary.last-modified` time in seconds.
pub fn build_summary(repo: &Repo, now: u64) -> Result<Vec<u8>> {
    let mut refs = Vec::new();
    for (name, checksum) in repo.list_refs()? {
        if name.contains(':') {
            continue;
        }
        let data = repo.read_metadata(&checksum, ObjectType::Commit)?;
        let commit = object::Commit::parse(&checksum, &data)?;
        let mut meta = vec![(
            "ostree.commit.timestamp".to_owned(),
            Value::U64(commit.timestamp.swap_bytes()),
        )];
        if let Some(version) = commit.version() {
            meta.push((
                "ostree.commit.version".to_owned(),
                Value::Str(version.to_owned()),
            ));
        }
        refs.push(Value::Struct(vec![
            Value::Str(name),
            Value::Struct(vec![
                Value::U64(data.len() as u64),
                Value::Bytes(checksum.as_bytes().to_vec()),
                object::metadata_dict(&meta),
            ]),
        ]));
    }
    // The order ostree 2022.7 writes them in, so that the bytes match.
    let metadata = vec![
        (
            "ostree.summary.mode".to_owned(),
            Value::Str(repo.mode().config_name().to_owned()),
        ),
        (
            "ostree.summary.last-modified".to_owned(),
            Value::U64(now.swap_bytes()),
        ),
        (
            "ostree.summary.tombstone-commits".to_owned(),
            Value::Bool(false),
        ),
        (
            "ostree.summary.indexed-deltas".to_owned(),
            Value::Bool(true),
        ),
    ];
    let ref_type = Type::parse("(s(taya{sv}))").expect("static type");
    Ok(Value::Struct(vec![
        Value::Array(ref_type, refs),
        object::metadata_dict(&metadata),
    ])
    .to_bytes())
}

/// Regenerates `summary` atomically and removes a `summary.sig` it would invalidate.
pub fn update_summary(repo: &Repo, now: u64) -> Result<Vec<u8>> {
    let bytes = build_summary(repo, now)?;
    write_file_atomic(&repo.path().join("summary"), &bytes, true)?;
    let _ = std::fs::remove_file(repo.path().join("summary.sig"));
    Ok(bytes)
}
