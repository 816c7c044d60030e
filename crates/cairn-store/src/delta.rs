//! Static deltas in OSTree's format: generate, list, index, and apply.
//!
//! A delta from commit F to commit T is a superblock (with T's commit object inside) and
//! parts; each part is `(a(uuu)aa(ayay)ayay)` — modes, xattrs, a payload blob and an
//! opcode stream — stored xz-compressed behind a one-byte tag. New files are spliced
//! whole from the payload; a file that changed in place is sent as a bsdiff patch
//! against its previous version. Every object an applier writes is re-hashed first.
//! See `docs/formats.md` and `ostree-repo-static-delta-*.c` in ostreedev/ostree.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{Read, Write};

use crate::commit::Transaction;
use crate::gvariant::{self, Type, Value};
use crate::object::{self, Checksum, DirTree, FileMeta, ObjectType, S_IFLNK, S_IFMT, S_IFREG};
use crate::repo::{write_file_atomic, Error, IoContext, Repo, Result};
use base64::Engine as _;

pub const SUPERBLOCK_TYPE: &str = "(a{sv}tayay(a{sv}aya(say)sstayay)aya(uayttay)a(yaytt))";
pub const PART_TYPE: &str = "(a(uuu)aa(ayay)ayay)";
const COMMIT_TYPE: &str = "(a{sv}aya(say)sstayay)";
/// The largest superblock a client accepts (ostree's OSTREE_MAX_METADATA_SIZE).
pub const MAX_SUPERBLOCK: usize = 10 << 20;
/// The largest decompressed part an applier accepts.
pub const MAX_PART: u64 = 512 << 20;

/// "Modified base64": standard alphabet, no padding, `/` written as `_`.
pub fn modified_base64(c: &Checksum) -> String {
    base64::engine::general_purpose::STANDARD_NO_PAD
        .encode(c.as_bytes())
        .replace('/', "_")
}

fn from_modified_base64(s: &str) -> Option<Checksum> {
    let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(s.replace('_', "/"))
        .ok()?;
    Checksum::from_slice(&bytes)
}

/// The delta's name in summaries and indexes: `FROM-TO` or `TO`, in hex.
pub fn delta_name(from: Option<&Checksum>, to: &Checksum) -> String {
    match from {
        Some(f) => format!("{f}-{to}"),
        None => to.to_hex(),
    }
}

pub fn parse_delta_name(name: &str) -> Option<(Option<Checksum>, Checksum)> {
    match name.split_once('-') {
        Some((f, t)) => Some((Some(f.parse().ok()?), t.parse().ok()?)),
        None => Some((None, name.parse().ok()?)),
    }
}

/// `deltas/FF/FFFF…-TTTT…` or `deltas/TT/TTTT…`, relative to the repository.
pub fn delta_dir(from: Option<&Checksum>, to: &Checksum) -> String {
    let t = modified_base64(to);
    match from {
        Some(f) => {
            let f = modified_base64(f);
            format!("deltas/{}/{}-{t}", &f[..2], &f[2..])
        }
        None => format!("deltas/{}/{}", &t[..2], &t[2..]),
    }
}

pub fn index_path(to: &Checksum) -> String {
    let t = modified_base64(to);
    format!("delta-indexes/{}/{}.index", &t[..2], &t[2..])
}

/// A delta present in a repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeltaInfo {
    pub from: Option<Checksum>,
    pub to: Checksum,
    /// SHA-256 of the superblock file.
    pub digest: Checksum,
}

impl DeltaInfo {
    pub fn name(&self) -> String {
        delta_name(self.from.as_ref(), &self.to)
    }
}

/// Every delta under `deltas/` that has a superblock.
pub fn list_deltas(repo: &Repo) -> Result<Vec<DeltaInfo>> {
    let root = repo.path().join("deltas");
    let mut out = Vec::new();
    let Ok(prefixes) = fs::read_dir(&root) else {
        return Ok(out);
    };
    for prefix in prefixes.flatten() {
        let p = prefix.file_name().to_string_lossy().into_owned();
        for entry in fs::read_dir(prefix.path()).at(&prefix.path())?.flatten() {
            let rest = entry.file_name().to_string_lossy().into_owned();
            let full = format!("{p}{rest}");
            let (from, to) = match full.split_once('-') {
                Some((f, t)) => (from_modified_base64(f).map(Some), from_modified_base64(t)),
                None => (Some(None), from_modified_base64(&full)),
            };
            let (Some(from), Some(to)) = (from, to) else {
                continue;
            };
            let Ok(superblock) = fs::read(entry.path().join("superblock")) else {
                continue;
            };
            out.push(DeltaInfo {
                from,
                to,
                digest: Checksum::of(&superblock),
            });
        }
    }
    out.sort_by_key(DeltaInfo::name);
    Ok(out)
}

/// The `a{sv}` of delta name → `ay` digest used by summaries and delta indexes.
pub fn deltas_dict(deltas: &[&DeltaInfo]) -> Value {
    object::metadata_dict(
        &deltas
            .iter()
            .map(|d| (d.name(), Value::Bytes(d.digest.as_bytes().to_vec())))
            .collect::<Vec<_>>(),
    )
}

/// Parses `{name: <ay digest>}` dictionaries from summaries and indexes.
pub fn parse_deltas_dict(v: &Value) -> Vec<(Option<Checksum>, Checksum, Checksum)> {
    let Some(entries) = object::parse_metadata_dict(v) else {
        return vec![];
    };
    entries
        .into_iter()
        .filter_map(|(name, value)| {
            let (from, to) = parse_delta_name(&name)?;
            let digest = Checksum::from_slice(value.as_bytes()?)?;
            Some((from, to, digest))
        })
        .collect()
}

/// Writes `delta-indexes/…` for every target that has deltas (as `ostree summary -u` does).
pub fn write_indexes(repo: &Repo, deltas: &[DeltaInfo]) -> Result<()> {
    let mut by_target: HashMap<Checksum, Vec<&DeltaInfo>> = HashMap::new();
    for d in deltas {
        by_target.entry(d.to).or_default().push(d);
    }
    for (to, list) in by_target {
        let index =
            object::metadata_dict(&[("ostree.static-deltas".to_owned(), deltas_dict(&list))])
                .to_bytes();
        let path = repo.path().join(index_path(&to));
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).at(dir)?;
        }
        write_file_atomic(&path, &index, false)?;
    }
    Ok(())
}

fn write_varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// One part under construction.
#[derive(Default)]
struct PartBuilder {
    modes: Vec<(u32, u32, u32)>,
    mode_index: HashMap<(u32, u32, u32), usize>,
    xattrs: Vec<object::Xattrs>,
    xattr_index: HashMap<object::Xattrs, usize>,
    payload: Vec<u8>,
    ops: Vec<u8>,
    objects: Vec<u8>,
    usize: u64,
}

impl PartBuilder {
    fn append(&mut self, data: &[u8]) -> u64 {
        let offset = self.payload.len() as u64;
        self.payload.extend_from_slice(data);
        offset
    }

    fn mode(&mut self, meta: &FileMeta) -> u64 {
        let key = (meta.uid, meta.gid, meta.mode);
        let next = self.modes.len();
        let i = *self.mode_index.entry(key).or_insert(next);
        if i == next {
            self.modes.push(key);
        }
        i as u64
    }

    fn xattr(&mut self, meta: &FileMeta) -> u64 {
        let mut sorted = meta.xattrs.clone();
        sorted.sort();
        let next = self.xattrs.len();
        let i = *self.xattr_index.entry(sorted.clone()).or_insert(next);
        if i == next {
            self.xattrs.push(sorted);
        }
        i as u64
    }

    fn list(&mut self, kind: u8, checksum: &Checksum) {
        self.objects.push(kind);
        self.objects.extend_from_slice(checksum.as_bytes());
    }

    fn payload_value(&self) -> Value {
        let modes = self
            .modes
            .iter()
            .map(|(u, g, m)| {
                Value::Struct(vec![
                    Value::U32(u.swap_bytes()),
                    Value::U32(g.swap_bytes()),
                    Value::U32(m.swap_bytes()),
                ])
            })
            .collect();
        let xattr_sets = self
            .xattrs
            .iter()
            .map(|set| {
                Value::Array(
                    Type::parse("(ayay)").expect("static type"),
                    set.iter()
                        .map(|(n, v)| {
                            let mut name = n.clone();
                            name.push(0);
                            Value::Struct(vec![Value::Bytes(name), Value::Bytes(v.clone())])
                        })
                        .collect(),
                )
            })
            .collect();
        Value::Struct(vec![
            Value::Array(Type::parse("(uuu)").expect("static type"), modes),
            Value::Array(Type::parse("a(ayay)").expect("static type"), xattr_sets),
            Value::Bytes(self.payload.clone()),
            Value::Bytes(self.ops.clone()),
        ])
    }
}

fn objtype_byte(kind: ObjectType) -> u8 {
    match kind {
        ObjectType::File => 1,
        ObjectType::DirTree => 2,
        ObjectType::DirMeta => 3,
        ObjectType::Commit | ObjectType::CommitMeta => 4,
    }
}

/// Every object of a commit's tree, and the content checksum at each file path.
type TreeObjects = (Vec<(Checksum, ObjectType)>, HashMap<String, Checksum>);

fn tree_objects(repo: &Repo, commit: &Checksum) -> Result<TreeObjects> {
    let c = repo.read_commit(commit)?;
    let mut objects = Vec::new();
    let mut seen = HashSet::new();
    let mut paths = HashMap::new();
    let mut stack = vec![(String::new(), c.root_tree, c.root_meta)];
    while let Some((path, tree, meta)) = stack.pop() {
        if seen.insert((meta, ObjectType::DirMeta)) {
            objects.push((meta, ObjectType::DirMeta));
        }
        if !seen.insert((tree, ObjectType::DirTree)) {
            continue;
        }
        objects.push((tree, ObjectType::DirTree));
        let t = repo.read_dirtree(&tree)?;
        for (name, f) in &t.files {
            paths.insert(format!("{path}/{name}"), *f);
            if seen.insert((*f, ObjectType::File)) {
                objects.push((*f, ObjectType::File));
            }
        }
        for (name, t, m) in t.dirs.iter().rev() {
            stack.push((format!("{path}/{name}"), *t, *m));
        }
    }
    Ok((objects, paths))
}

#[derive(Clone, Debug)]
pub struct GenerateOptions {
    /// `None`: a delta from scratch (`--empty`).
    pub from: Option<Checksum>,
    pub to: Checksum,
    /// Start a new part once the payload passes this size.
    pub max_part_bytes: usize,
    /// Send changed files as bsdiff patches when that is smaller.
    pub bsdiff: bool,
    /// Only diff files up to this size (bsdiff needs memory of several times the file).
    pub max_bsdiff_bytes: u64,
}

impl GenerateOptions {
    pub fn new(from: Option<Checksum>, to: Checksum) -> Self {
        GenerateOptions {
            from,
            to,
            max_part_bytes: 32_000_000,
            bsdiff: true,
            max_bsdiff_bytes: 64 << 20,
        }
    }
}

#[derive(Debug, Default)]
pub struct GenerateReport {
    pub parts: usize,
    pub objects: usize,
    pub bsdiffs: usize,
    pub bytes: u64,
}

/// Writes the delta `from → to` into `deltas/`.
pub fn generate(repo: &Repo, options: &GenerateOptions, now: u64) -> Result<GenerateReport> {
    let to = options.to;
    let commit_bytes = repo.read_metadata(&to, ObjectType::Commit)?;
    let (to_objects, to_paths) = tree_objects(repo, &to)?;
    let (from_set, from_paths): (HashSet<(Checksum, ObjectType)>, HashMap<String, Checksum>) =
        match &options.from {
            Some(f) => {
                let (objs, paths) = tree_objects(repo, f)?;
                (objs.into_iter().collect(), paths)
            }
            None => (HashSet::new(), HashMap::new()),
        };
    let mut by_content: HashMap<Checksum, &str> = HashMap::new();
    for (path, c) in &to_paths {
        by_content.entry(*c).or_insert(path.as_str());
    }
    let mut wanted: Vec<(Checksum, ObjectType)> = to_objects
        .into_iter()
        .filter(|o| !from_set.contains(o))
        .collect();
    // Metadata first, as ostree orders them: a client can walk trees while content lands.
    wanted.sort_by_key(|(_, k)| u8::from(*k == ObjectType::File));

    let dir_rel = delta_dir(options.from.as_ref(), &to);
    let dir = repo.path().join(&dir_rel);
    fs::create_dir_all(&dir).at(&dir)?;
    let mut report = GenerateReport::default();
    let mut parts: Vec<Value> = Vec::new();
    let mut part = PartBuilder::default();
    let finish =
        |part: PartBuilder, parts: &mut Vec<Value>, report: &mut GenerateReport| -> Result<()> {
            let payload = part.payload_value().to_bytes();
            let mut file = vec![b'x'];
            let mut encoder = xz2::write::XzEncoder::new(&mut file, 6);
            encoder
                .write_all(&payload)
                .map_err(|e| Error::Invalid(format!("xz: {e}")))?;
            encoder
                .finish()
                .map_err(|e| Error::Invalid(format!("xz: {e}")))?;
            let index = parts.len();
            let path = dir.join(index.to_string());
            write_file_atomic(&path, &file, false)?;
            report.bytes += file.len() as u64;
            parts.push(Value::Struct(vec![
                Value::U32(0),
                Value::Bytes(Checksum::of(&file).as_bytes().to_vec()),
                Value::U64(file.len() as u64),
                Value::U64(part.usize),
                Value::Bytes(part.objects),
            ]));
            Ok(())
        };
    for (checksum, kind) in wanted {
        if part.payload.len() >= options.max_part_bytes {
            finish(std::mem::take(&mut part), &mut parts, &mut report)?;
        }
        report.objects += 1;
        part.list(objtype_byte(kind), &checksum);
        if kind != ObjectType::File {
            let data = repo.read_metadata(&checksum, kind)?;
            let offset = part.append(&data);
            part.ops.push(b'S');
            write_varint(&mut part.ops, data.len() as u64);
            write_varint(&mut part.ops, offset);
            part.usize += data.len() as u64;
            continue;
        }
        let content = repo.read_content(&checksum, true)?;
        let is_regular = content.meta.mode & S_IFMT == S_IFREG;
        let old = by_content
            .get(&checksum)
            .and_then(|path| from_paths.get(*path))
            .filter(|old| {
                **old != checksum
                    && options.bsdiff
                    && is_regular
                    && content.data.len() as u64 <= options.max_bsdiff_bytes
                    && content.data.len() > 64
            });
        let mut sent = false;
        if let Some(old) = old {
            let source = repo.read_content(old, true)?;
            if source.meta.mode & S_IFMT == S_IFREG
                && source.data.len() as u64 <= options.max_bsdiff_bytes
            {
                let mut patch = Vec::new();
                bsdiff::diff(&source.data, &content.data, &mut patch)
                    .map_err(|e| Error::Invalid(format!("bsdiff: {e}")))?;
                // The raw patch is mostly zeros where the files agree; the part's xz
                // compression takes those out, so a patch is always the smaller choice.
                {
                    let (mode, xattr) = (part.mode(&content.meta), part.xattr(&content.meta));
                    let source_offset = part.append(old.as_bytes());
                    let patch_offset = part.append(&patch);
                    part.ops.push(b'r');
                    write_varint(&mut part.ops, source_offset);
                    part.ops.push(b'o');
                    write_varint(&mut part.ops, mode);
                    write_varint(&mut part.ops, xattr);
                    write_varint(&mut part.ops, content.data.len() as u64);
                    part.ops.push(b'B');
                    write_varint(&mut part.ops, patch_offset);
                    write_varint(&mut part.ops, patch.len() as u64);
                    part.ops.push(b'c');
                    part.ops.push(b'R');
                    report.bsdiffs += 1;
                    sent = true;
                }
            }
        }
        if !sent {
            let body: &[u8] = if is_regular {
                &content.data
            } else {
                content.symlink_target.as_bytes()
            };
            let (mode, xattr) = (part.mode(&content.meta), part.xattr(&content.meta));
            let offset = part.append(body);
            part.ops.push(b'S');
            write_varint(&mut part.ops, mode);
            write_varint(&mut part.ops, xattr);
            write_varint(&mut part.ops, body.len() as u64);
            write_varint(&mut part.ops, offset);
        }
        part.usize += content.data.len() as u64;
    }
    if !part.objects.is_empty() || parts.is_empty() {
        finish(part, &mut parts, &mut report)?;
    }
    report.parts = parts.len();

    let mut metadata = vec![("ostree.endianness".to_owned(), Value::Byte(b'l'))];
    let detached = repo.read_detached_metadata(&to)?;
    if !detached.is_empty() {
        metadata.push((
            format!("{dir_rel}/commitmeta"),
            object::metadata_dict(&detached),
        ));
    }
    let commit_value = gvariant::decode(
        &Type::parse(COMMIT_TYPE).expect("static type"),
        &commit_bytes,
    )
    .map_err(|e| Error::Invalid(format!("commit {to}: {e}")))?;
    let superblock = Value::Struct(vec![
        object::metadata_dict(&metadata),
        Value::U64(now.swap_bytes()),
        Value::Bytes(
            options
                .from
                .map(|f| f.as_bytes().to_vec())
                .unwrap_or_default(),
        ),
        Value::Bytes(to.as_bytes().to_vec()),
        commit_value,
        Value::Bytes(vec![]),
        Value::Array(Type::parse("(uayttay)").expect("static type"), parts),
        Value::Array(Type::parse("(yaytt)").expect("static type"), vec![]),
    ])
    .to_bytes();
    write_file_atomic(&dir.join("superblock"), &superblock, true)?;
    report.bytes += superblock.len() as u64;
    Ok(report)
}

/// A part as the superblock describes it: (part file checksum, file size, the objects it
/// creates as (kind, checksum), in order).
pub type PartHeader = (Checksum, u64, Vec<(ObjectType, Checksum)>);

/// A part's decoded payload: modes, xattr sets, data blob, opcodes.
type PartPayload = (Vec<(u32, u32, u32)>, Vec<object::Xattrs>, Vec<u8>, Vec<u8>);

/// A parsed superblock, checked against the delta it claims to be.
pub struct Superblock {
    pub from: Option<Checksum>,
    pub to: Checksum,
    pub commit_bytes: Vec<u8>,
    pub detached: Option<Vec<u8>>,
    pub parts: Vec<PartHeader>,
    pub fallbacks: Vec<Checksum>,
}

pub fn parse_superblock(
    data: &[u8],
    expect_from: Option<&Checksum>,
    expect_to: &Checksum,
) -> Result<Superblock> {
    let bad = |what: String| {
        Error::Invalid(format!(
            "static delta {}: {what}",
            delta_name(expect_from, expect_to)
        ))
    };
    if data.len() > MAX_SUPERBLOCK {
        return Err(bad("superblock larger than 10 MiB".into()));
    }
    let v = gvariant::decode(&Type::parse(SUPERBLOCK_TYPE).expect("static type"), data)
        .map_err(|e| bad(format!("superblock: {e}")))?;
    let Value::Struct(m) = v else {
        return Err(bad("superblock".into()));
    };
    let metadata = m
        .first()
        .and_then(object::parse_metadata_dict)
        .ok_or_else(|| bad("metadata".into()))?;
    let little = match metadata
        .iter()
        .find(|(k, _)| k == "ostree.endianness")
        .map(|(_, v)| v)
    {
        Some(Value::Byte(b'l')) | None => true,
        Some(Value::Byte(b'B')) => false,
        _ => return Err(bad("invalid ostree.endianness".into())),
    };
    let fix64 = |v: u64| if little { v } else { v.swap_bytes() };
    let from = match m.get(2).and_then(Value::as_bytes) {
        Some([]) => None,
        Some(b) => Some(Checksum::from_slice(b).ok_or_else(|| bad("from checksum".into()))?),
        None => return Err(bad("from".into())),
    };
    let to = m
        .get(3)
        .and_then(Value::as_bytes)
        .and_then(Checksum::from_slice)
        .ok_or_else(|| bad("to checksum".into()))?;
    if to != *expect_to || from.as_ref() != expect_from {
        return Err(bad(format!(
            "superblock is for {}",
            delta_name(from.as_ref(), &to)
        )));
    }
    let commit_bytes = m.get(4).ok_or_else(|| bad("commit".into()))?.to_bytes();
    if Checksum::of(&commit_bytes) != to {
        return Err(bad("the embedded commit does not hash to the target".into()));
    }
    let dir_rel = delta_dir(from.as_ref(), &to);
    let detached = metadata
        .iter()
        .find(|(k, _)| *k == format!("{dir_rel}/commitmeta"))
        .map(|(_, v)| v.to_bytes());
    let Some(Value::Array(_, headers)) = m.get(6) else {
        return Err(bad("part headers".into()));
    };
    let mut parts = Vec::new();
    for h in headers {
        let Value::Struct(f) = h else {
            return Err(bad("part header".into()));
        };
        let version = match f.first() {
            Some(Value::U32(v)) => {
                if little {
                    *v
                } else {
                    v.swap_bytes()
                }
            }
            _ => return Err(bad("part version".into())),
        };
        if version != 0 {
            return Err(bad(format!("part version {version} is not supported")));
        }
        let checksum = f
            .get(1)
            .and_then(Value::as_bytes)
            .and_then(Checksum::from_slice)
            .ok_or_else(|| bad("part checksum".into()))?;
        let size = match f.get(2) {
            Some(Value::U64(s)) => fix64(*s),
            _ => return Err(bad("part size".into())),
        };
        let list = f
            .get(4)
            .and_then(Value::as_bytes)
            .ok_or_else(|| bad("part objects".into()))?;
        if list.len() % 33 != 0 {
            return Err(bad("part object list is not a multiple of 33 bytes".into()));
        }
        let mut objects = Vec::new();
        for entry in list.chunks_exact(33) {
            let kind = match entry[0] {
                1 => ObjectType::File,
                2 => ObjectType::DirTree,
                3 => ObjectType::DirMeta,
                4 => ObjectType::Commit,
                t => return Err(bad(format!("object type {t} in a part"))),
            };
            objects.push((
                kind,
                Checksum::from_slice(&entry[1..]).ok_or_else(|| bad("object checksum".into()))?,
            ));
        }
        parts.push((checksum, size, objects));
    }
    let Some(Value::Array(_, fb)) = m.get(7) else {
        return Err(bad("fallbacks".into()));
    };
    let mut fallbacks = Vec::new();
    for f in fb {
        let Value::Struct(e) = f else {
            return Err(bad("fallback".into()));
        };
        if !matches!(e.first(), Some(Value::Byte(1))) {
            return Err(bad("a fallback that is not a content object".into()));
        }
        fallbacks.push(
            e.get(1)
                .and_then(Value::as_bytes)
                .and_then(Checksum::from_slice)
                .ok_or_else(|| bad("fallback checksum".into()))?,
        );
    }
    Ok(Superblock {
        from,
        to,
        commit_bytes,
        detached,
        parts,
        fallbacks,
    })
}

/// Decompresses and parses a part file whose checksum the caller has verified.
fn open_part(file: &[u8], what: &str) -> Result<PartPayload> {
    let bad = |w: String| Error::Invalid(format!("{what}: {w}"));
    let (&tag, body) = file.split_first().ok_or_else(|| bad("empty part".into()))?;
    let payload = match tag {
        0 => body.to_vec(),
        b'x' => {
            let mut out = Vec::new();
            let decoder = xz2::read::XzDecoder::new(body);
            decoder
                .take(MAX_PART + 1)
                .read_to_end(&mut out)
                .map_err(|e| bad(format!("xz: {e}")))?;
            if out.len() as u64 > MAX_PART {
                return Err(bad("part decompresses to more than 512 MiB".into()));
            }
            out
        }
        t => return Err(bad(format!("unknown compression type {t:#x}"))),
    };
    let v = gvariant::decode(&Type::parse(PART_TYPE).expect("static type"), &payload)
        .map_err(|e| bad(e.to_string()))?;
    let Value::Struct(m) = v else {
        return Err(bad("payload".into()));
    };
    let Some(Value::Array(_, modes_v)) = m.first() else {
        return Err(bad("modes".into()));
    };
    let mut modes = Vec::new();
    for mv in modes_v {
        let Value::Struct(t) = mv else {
            return Err(bad("mode".into()));
        };
        let get = |i: usize| match t.get(i) {
            Some(Value::U32(x)) => Some(x.swap_bytes()),
            _ => None,
        };
        modes.push((
            get(0).ok_or_else(|| bad("uid".into()))?,
            get(1).ok_or_else(|| bad("gid".into()))?,
            get(2).ok_or_else(|| bad("mode".into()))?,
        ));
    }
    let Some(Value::Array(_, xs)) = m.get(1) else {
        return Err(bad("xattrs".into()));
    };
    let mut xattrs = Vec::new();
    for x in xs {
        let Value::Array(_, items) = x else {
            return Err(bad("xattr set".into()));
        };
        let mut set = Vec::new();
        for item in items {
            let Value::Struct(p) = item else {
                return Err(bad("xattr".into()));
            };
            let mut name = p
                .first()
                .and_then(Value::as_bytes)
                .ok_or_else(|| bad("xattr name".into()))?
                .to_vec();
            if name.pop() != Some(0) {
                return Err(bad("xattr name without NUL".into()));
            }
            set.push((
                name,
                p.get(1)
                    .and_then(Value::as_bytes)
                    .ok_or_else(|| bad("xattr value".into()))?
                    .to_vec(),
            ));
        }
        xattrs.push(set);
    }
    let blob = m
        .get(2)
        .and_then(Value::as_bytes)
        .ok_or_else(|| bad("payload blob".into()))?
        .to_vec();
    let ops = m
        .get(3)
        .and_then(Value::as_bytes)
        .ok_or_else(|| bad("operations".into()))?
        .to_vec();
    Ok((modes, xattrs, blob, ops))
}

/// ostree's bspatch: records of (diff length, extra length, seek) in sign-magnitude,
/// until the new file has `new_size` bytes. Every length is checked.
pub fn bspatch(
    old: &[u8],
    patch: &[u8],
    new_size: usize,
) -> std::result::Result<Vec<u8>, &'static str> {
    fn offtin(b: &[u8]) -> i64 {
        let mut v = u64::from_le_bytes(b.try_into().expect("8 bytes"));
        let negative = v & (1 << 63) != 0;
        v &= !(1 << 63);
        if negative {
            -(v as i64)
        } else {
            v as i64
        }
    }
    let mut new = Vec::with_capacity(new_size);
    let mut pos = 0usize;
    let mut oldpos: i64 = 0;
    while new.len() < new_size {
        let ctrl = patch.get(pos..pos + 24).ok_or("truncated control record")?;
        let (diff_len, extra_len, seek) = (
            offtin(&ctrl[..8]),
            offtin(&ctrl[8..16]),
            offtin(&ctrl[16..]),
        );
        pos += 24;
        if diff_len < 0 || extra_len < 0 {
            return Err("negative length");
        }
        let (diff_len, extra_len) = (diff_len as usize, extra_len as usize);
        if new.len() + diff_len > new_size {
            return Err("diff runs past the new size");
        }
        let diff = patch
            .get(pos..pos + diff_len)
            .ok_or("truncated diff bytes")?;
        pos += diff_len;
        for (i, d) in diff.iter().enumerate() {
            let o = oldpos + i as i64;
            let base = if o >= 0 && (o as usize) < old.len() {
                old[o as usize]
            } else {
                0
            };
            new.push(d.wrapping_add(base));
        }
        oldpos += diff_len as i64;
        if new.len() + extra_len > new_size {
            return Err("extra runs past the new size");
        }
        new.extend_from_slice(
            patch
                .get(pos..pos + extra_len)
                .ok_or("truncated extra bytes")?,
        );
        pos += extra_len;
        oldpos = oldpos.checked_add(seek).ok_or("seek overflows")?;
    }
    Ok(new)
}

struct OpReader<'a> {
    ops: &'a [u8],
    pos: usize,
}

impl OpReader<'_> {
    fn varint(&mut self) -> std::result::Result<u64, &'static str> {
        let mut v = 0u64;
        for shift in (0..70).step_by(7) {
            let b = *self.ops.get(self.pos).ok_or("truncated varint")?;
            self.pos += 1;
            if shift == 63 && b > 1 {
                return Err("varint overflows 64 bits");
            }
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint longer than 10 bytes")
    }
}

fn slice(blob: &[u8], offset: u64, len: u64) -> std::result::Result<&[u8], &'static str> {
    let start = usize::try_from(offset).map_err(|_| "offset")?;
    let len = usize::try_from(len).map_err(|_| "length")?;
    blob.get(start..start.checked_add(len).ok_or("range overflows")?)
        .ok_or("range outside the payload")
}

/// Executes one part, staging every object it creates after checking its checksum.
/// Returns how many objects it wrote.
pub(crate) fn apply_part(
    repo: &Repo,
    tx: &Transaction,
    file: &[u8],
    objects: &[(ObjectType, Checksum)],
    what: &str,
) -> Result<u64> {
    let (modes, xattrs, blob, ops) = open_part(file, what)?;
    let bad = |w: &str| Error::Invalid(format!("{what}: {w}"));
    let mut reader = OpReader { ops: &ops, pos: 0 };
    let mut next_object = 0usize;
    let mut read_source: Option<Vec<u8>> = None;
    // The content object being assembled by o/w/B: (expected, meta, declared size, bytes).
    let mut open: Option<(Checksum, FileMeta, usize, Vec<u8>)> = None;
    let mut written = 0u64;
    let take_object = |next_object: &mut usize| -> Result<(ObjectType, Checksum)> {
        let o = *objects
            .get(*next_object)
            .ok_or_else(|| bad("more objects written than listed"))?;
        *next_object += 1;
        Ok(o)
    };
    let meta_at = |mode_idx: u64, xattr_idx: u64| -> Result<FileMeta> {
        let (uid, gid, mode) = *modes
            .get(mode_idx as usize)
            .ok_or_else(|| bad("mode index out of range"))?;
        let xattrs = xattrs
            .get(xattr_idx as usize)
            .ok_or_else(|| bad("xattr index out of range"))?
            .clone();
        if !matches!(mode & S_IFMT, S_IFREG | S_IFLNK) {
            return Err(bad("content mode is neither a file nor a symlink"));
        }
        Ok(FileMeta {
            uid,
            gid,
            mode,
            xattrs,
        })
    };
    let stage_content = |expected: &Checksum, meta: &FileMeta, data: &[u8]| -> Result<()> {
        let is_link = meta.mode & S_IFMT == S_IFLNK;
        let target = if is_link {
            let t = std::str::from_utf8(data).map_err(|_| bad("symlink target is not UTF-8"))?;
            if t.is_empty() || t.contains('\0') {
                return Err(bad("invalid symlink target"));
            }
            t
        } else {
            ""
        };
        let body: &[u8] = if is_link { &[] } else { data };
        let actual = object::content_checksum(meta, target, body);
        if actual != *expected {
            return Err(Error::Corrupt {
                checksum: *expected,
                kind: ObjectType::File,
                what: format!("{what} produces content hashing to {actual}"),
            });
        }
        tx.write_content(expected, meta, target, body, 1)?;
        Ok(())
    };
    while reader.pos < ops.len() {
        let op = ops[reader.pos];
        reader.pos += 1;
        let e = |m: &'static str| bad(m);
        match op {
            b'S' => {
                if open.is_some() {
                    return Err(bad("splice while an object is open"));
                }
                let (kind, checksum) = take_object(&mut next_object)?;
                if kind == ObjectType::File {
                    let mode_idx = reader.varint().map_err(e)?;
                    let xattr_idx = reader.varint().map_err(e)?;
                    let size = reader.varint().map_err(e)?;
                    let offset = reader.varint().map_err(e)?;
                    let meta = meta_at(mode_idx, xattr_idx)?;
                    stage_content(&checksum, &meta, slice(&blob, offset, size).map_err(e)?)?;
                } else {
                    let size = reader.varint().map_err(e)?;
                    let offset = reader.varint().map_err(e)?;
                    let data = slice(&blob, offset, size).map_err(e)?;
                    if Checksum::of(data) != checksum {
                        return Err(Error::Corrupt {
                            checksum,
                            kind,
                            what: format!(
                                "{what} produces bytes hashing to {}",
                                Checksum::of(data)
                            ),
                        });
                    }
                    match kind {
                        ObjectType::DirTree => {
                            DirTree::parse(&checksum, data)?;
                        }
                        ObjectType::DirMeta => {
                            object::parse_dirmeta(&checksum, data)?;
                        }
                        _ => {
                            object::Commit::parse(&checksum, data)?;
                        }
                    }
                    tx.write_metadata(kind, data)?;
                }
                written += 1;
            }
            b'o' => {
                if open.is_some() {
                    return Err(bad("open while an object is open"));
                }
                let (kind, checksum) = take_object(&mut next_object)?;
                if kind != ObjectType::File {
                    return Err(bad("open of a metadata object"));
                }
                let meta = meta_at(reader.varint().map_err(e)?, reader.varint().map_err(e)?)?;
                if meta.mode & S_IFMT != S_IFREG {
                    return Err(bad("open of a non-regular file"));
                }
                let size = usize::try_from(reader.varint().map_err(e)?).map_err(|_| bad("size"))?;
                if size as u64 > MAX_PART * 8 {
                    return Err(bad("object too large"));
                }
                open = Some((checksum, meta, size, Vec::with_capacity(size.min(64 << 20))));
            }
            b'w' => {
                let size = reader.varint().map_err(e)?;
                let offset = reader.varint().map_err(e)?;
                let (_, _, declared, data) = open
                    .as_mut()
                    .ok_or_else(|| bad("write without an open object"))?;
                let bytes = match &read_source {
                    Some(src) => slice(src, offset, size)
                        .map_err(|_| bad("write past the end of the read source"))?,
                    None => slice(&blob, offset, size).map_err(e)?,
                };
                if data.len() + bytes.len() > *declared {
                    return Err(bad("write past the declared size"));
                }
                data.extend_from_slice(bytes);
            }
            b'r' => {
                let offset = reader.varint().map_err(e)?;
                let source = Checksum::from_slice(slice(&blob, offset, 32).map_err(e)?)
                    .ok_or_else(|| bad("source"))?;
                let content = repo.read_content(&source, true)?;
                if content.meta.mode & S_IFMT != S_IFREG {
                    return Err(bad("read source is not a regular file"));
                }
                read_source = Some(content.data);
            }
            b'R' => read_source = None,
            b'B' => {
                let offset = reader.varint().map_err(e)?;
                let length = reader.varint().map_err(e)?;
                let patch = slice(&blob, offset, length).map_err(e)?;
                let (_, _, declared, data) = open
                    .as_mut()
                    .ok_or_else(|| bad("bspatch without an open object"))?;
                let old = read_source
                    .as_deref()
                    .ok_or_else(|| bad("bspatch without a read source"))?;
                let new = bspatch(old, patch, *declared - data.len()).map_err(e)?;
                data.extend_from_slice(&new);
            }
            b'c' => {
                if let Some((checksum, meta, declared, data)) = open.take() {
                    if data.len() != declared {
                        return Err(bad("object shorter than declared"));
                    }
                    stage_content(&checksum, &meta, &data)?;
                    written += 1;
                }
                read_source = None;
            }
            other => return Err(Error::Invalid(format!("{what}: unknown opcode {other:#x}"))),
        }
    }
    if open.is_some() {
        return Err(bad("part ends with an object still open"));
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modified_base64_matches_ostree() {
        // Standard base64 is "GpTyZVVut2jXFPWnO4LJiKEdRTvOw/mFUCtIKW1NIX0=": drop "=", "/" → "_".
        let c: Checksum = "1a94f265556eb768d714f5a73b82c988a11d453bcec3f985502b48296d4d217d"
            .parse()
            .unwrap();
        assert_eq!(
            modified_base64(&c),
            "GpTyZVVut2jXFPWnO4LJiKEdRTvOw_mFUCtIKW1NIX0"
        );
        assert_eq!(
            from_modified_base64("GpTyZVVut2jXFPWnO4LJiKEdRTvOw_mFUCtIKW1NIX0"),
            Some(c)
        );
    }

    #[test]
    fn bsdiff_round_trips_through_our_bspatch() {
        let old: Vec<u8> = (0..20_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut new = old.clone();
        new[100] ^= 0xff;
        new.extend_from_slice(b"appended tail");
        let mut patch = Vec::new();
        bsdiff::diff(&old, &new, &mut patch).unwrap();
        assert_eq!(bspatch(&old, &patch, new.len()).unwrap(), new);
        assert!(bspatch(&old, &patch[..patch.len() - 3], new.len()).is_err());
    }

    #[test]
    fn varints() {
        for v in [0u64, 1, 127, 128, 300, u64::MAX] {
            let mut buf = Vec::new();
            write_varint(&mut buf, v);
            assert_eq!(OpReader { ops: &buf, pos: 0 }.varint(), Ok(v));
        }
        assert!(OpReader {
            ops: &[0x80; 11],
            pos: 0
        }
        .varint()
        .is_err());
    }
}
