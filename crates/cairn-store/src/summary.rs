//! The `summary` file: every ref with its commit, as `ostree summary -u` writes it.

use crate::gvariant::{Type, Value};
use crate::object::{self, Checksum, ObjectType};
use crate::repo::{write_file_atomic, Error, Repo, Result};

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
    let mut metadata = vec![
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
    let deltas = crate::delta::list_deltas(repo)?;
    if !deltas.is_empty() {
        let all: Vec<&crate::delta::DeltaInfo> = deltas.iter().collect();
        metadata.push((
            "ostree.static-deltas".to_owned(),
            crate::delta::deltas_dict(&all),
        ));
    }
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
    let deltas = crate::delta::list_deltas(repo)?;
    if !deltas.is_empty() {
        // As `ostree summary -u`: per-target delta indexes, announced in the config.
        crate::delta::write_indexes(repo, &deltas)?;
        let mut config = repo.read_config()?;
        if config.get("core", "indexed-deltas") != Some("true") {
            config.set("core", "indexed-deltas", "true");
            repo.write_config(&config)?;
        }
    }
    write_file_atomic(&repo.path().join("summary"), &bytes, true)?;
    let _ = std::fs::remove_file(repo.path().join("summary.sig"));
    Ok(bytes)
}

/// The static deltas a summary announces: (from, to, superblock digest).
pub fn parse_summary_deltas(summary: &[u8]) -> Vec<(Option<Checksum>, Checksum, Checksum)> {
    let ty = Type::parse("(a(s(taya{sv}))a{sv})").expect("static type");
    let Ok(Value::Struct(m)) = crate::gvariant::decode(&ty, summary) else {
        return vec![];
    };
    let Some(meta) = m.get(1).and_then(object::parse_metadata_dict) else {
        return vec![];
    };
    match meta.iter().find(|(k, _)| k == "ostree.static-deltas") {
        Some((_, v)) => crate::delta::parse_deltas_dict(v),
        None => vec![],
    }
}

/// The refs listed in a summary file, validated: well-formed names, 32-byte checksums.
pub fn parse_summary_refs(summary: &[u8]) -> Result<Vec<(String, Checksum)>> {
    let bad = |what: String| Error::Invalid(format!("summary: {what}"));
    let ty = Type::parse("(a(s(taya{sv}))a{sv})").expect("static type");
    let v = crate::gvariant::decode(&ty, summary).map_err(|e| bad(e.to_string()))?;
    let Value::Struct(m) = v else {
        return Err(bad("not a summary".into()));
    };
    let Some(Value::Array(_, refs)) = m.first() else {
        return Err(bad("no ref list".into()));
    };
    let mut out = Vec::new();
    for r in refs {
        let Value::Struct(entry) = r else {
            return Err(bad("ref entry".into()));
        };
        let name = entry
            .first()
            .and_then(Value::as_str)
            .ok_or_else(|| bad("ref without a name".into()))?;
        crate::repo::validate_ref_name(name)?;
        let Some(Value::Struct(info)) = entry.get(1) else {
            return Err(bad(format!("ref {name:?}: no commit")));
        };
        let checksum = info
            .get(1)
            .and_then(Value::as_bytes)
            .and_then(Checksum::from_slice)
            .ok_or_else(|| bad(format!("ref {name:?}: checksum is not 32 bytes")))?;
        out.push((name.to_owned(), checksum));
    }
    Ok(out)
}
