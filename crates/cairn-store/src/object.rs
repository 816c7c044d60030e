//! OSTree object names and the metadata objects: commit, dirtree, dirmeta, file headers.
//!
//! Every type here is a wire type of the OSTree repository format (ostree `docs/formats.md`,
//! `src/libostree/ostree-core.h`). Integers that OSTree puts in its own structures are
//! big-endian inside a little-endian GVariant frame, which is why the conversions swap bytes.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

use crate::gvariant::{self, Type, Value};

pub const S_IFMT: u32 = 0o170000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFLNK: u32 = 0o120000;
pub const S_IFDIR: u32 = 0o040000;

/// A SHA-256 object name. Valid by construction: always 32 bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Checksum([u8; 32]);

#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error("invalid checksum {0:?}: expected 64 lowercase hex digits")]
    BadChecksumText(String),
    #[error("{kind} object {checksum}: {what}")]
    Malformed {
        kind: ObjectType,
        checksum: String,
        what: String,
    },
}

impl Checksum {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Checksum(bytes)
    }

    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        Some(Checksum(bytes.try_into().ok()?))
    }

    pub fn of(data: &[u8]) -> Self {
        Checksum(Sha256::digest(data).into())
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// `XX/YYYY…` as used under `objects/`.
    pub fn loose_prefix_and_rest(&self) -> (String, String) {
        let hex = self.to_hex();
        (hex[..2].to_owned(), hex[2..].to_owned())
    }
}

impl FromStr for Checksum {
    type Err = ObjectError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 64
            || !s
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(ObjectError::BadChecksumText(s.to_owned()));
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out)
            .map_err(|_| ObjectError::BadChecksumText(s.to_owned()))?;
        Ok(Checksum(out))
    }
}

impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Checksum({})", self.to_hex())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectType {
    File,
    DirTree,
    DirMeta,
    Commit,
    CommitMeta,
}

impl ObjectType {
    /// The loose-object file extension; content objects depend on the repo mode.
    pub fn extension(self, archive: bool) -> &'static str {
        match self {
            ObjectType::File if archive => "filez",
            ObjectType::File => "file",
            ObjectType::DirTree => "dirtree",
            ObjectType::DirMeta => "dirmeta",
            ObjectType::Commit => "commit",
            ObjectType::CommitMeta => "commitmeta",
        }
    }

    pub fn from_extension(ext: &str) -> Option<ObjectType> {
        Some(match ext {
            "file" | "filez" => ObjectType::File,
            "dirtree" => ObjectType::DirTree,
            "dirmeta" => ObjectType::DirMeta,
            "commit" => ObjectType::Commit,
            "commitmeta" => ObjectType::CommitMeta,
            _ => return None,
        })
    }
}

impl fmt::Display for ObjectType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.extension(false))
    }
}

/// Extended attributes: (name without NUL, value), kept sorted by name as OSTree requires.
pub type Xattrs = Vec<(Vec<u8>, Vec<u8>)>;

fn xattrs_value(xattrs: &Xattrs) -> Value {
    let mut sorted: Vec<&(Vec<u8>, Vec<u8>)> = xattrs.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    Value::Array(
        Type::parse("(ayay)").expect("static type"),
        sorted
            .into_iter()
            .map(|(name, value)| {
                let mut n = name.clone();
                n.push(0);
                Value::Struct(vec![Value::Bytes(n), Value::Bytes(value.clone())])
            })
            .collect(),
    )
}

fn xattrs_from_value(v: &Value) -> Option<Xattrs> {
    let Value::Array(_, items) = v else {
        return None;
    };
    items
        .iter()
        .map(|item| {
            let Value::Struct(m) = item else { return None };
            let mut name = m.first()?.as_bytes()?.to_vec();
            if name.pop() != Some(0) {
                return None;
            }
            Some((name, m.get(1)?.as_bytes()?.to_vec()))
        })
        .collect()
}

fn be32(v: u32) -> Value {
    Value::U32(v.swap_bytes())
}

fn get_be32(v: Option<&Value>) -> Option<u32> {
    match v {
        Some(Value::U32(x)) => Some(x.swap_bytes()),
        _ => None,
    }
}

/// Ownership, mode and xattrs of a file, directory or symlink.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FileMeta {
    pub uid: u32,
    pub gid: u32,
    /// Full `st_mode`, including the file type bits.
    pub mode: u32,
    pub xattrs: Xattrs,
}

/// A directory's metadata object, `(uuua(ayay))`.
pub fn dirmeta_bytes(meta: &FileMeta) -> Vec<u8> {
    Value::Struct(vec![
        be32(meta.uid),
        be32(meta.gid),
        be32(meta.mode),
        xattrs_value(&meta.xattrs),
    ])
    .to_bytes()
}

pub fn parse_dirmeta(checksum: &Checksum, data: &[u8]) -> Result<FileMeta, ObjectError> {
    let malformed = |what: &str| ObjectError::Malformed {
        kind: ObjectType::DirMeta,
        checksum: checksum.to_hex(),
        what: what.to_owned(),
    };
    let ty = Type::parse("(uuua(ayay))").expect("static type");
    let Value::Struct(m) = gvariant::decode(&ty, data).map_err(|e| malformed(&e.to_string()))?
    else {
        return Err(malformed("not a struct"));
    };
    let meta = FileMeta {
        uid: get_be32(m.first()).ok_or_else(|| malformed("uid"))?,
        gid: get_be32(m.get(1)).ok_or_else(|| malformed("gid"))?,
        mode: get_be32(m.get(2)).ok_or_else(|| malformed("mode"))?,
        xattrs: m
            .get(3)
            .and_then(xattrs_from_value)
            .ok_or_else(|| malformed("xattrs"))?,
    };
    if meta.mode & S_IFMT != S_IFDIR {
        return Err(malformed("mode is not a directory"));
    }
    Ok(meta)
}

/// The content header `(uuuusa(ayay))` that enters a content object's checksum.
pub fn file_header_bytes(meta: &FileMeta, symlink_target: &str) -> Vec<u8> {
    Value::Struct(vec![
        be32(meta.uid),
        be32(meta.gid),
        be32(meta.mode),
        be32(0),
        Value::Str(symlink_target.to_owned()),
        xattrs_value(&meta.xattrs),
    ])
    .to_bytes()
}

/// The archive header `(tuuuusa(ayay))`: uncompressed size first.
pub fn archive_header_bytes(meta: &FileMeta, symlink_target: &str, size: u64) -> Vec<u8> {
    Value::Struct(vec![
        Value::U64(size.swap_bytes()),
        be32(meta.uid),
        be32(meta.gid),
        be32(meta.mode),
        be32(0),
        Value::Str(symlink_target.to_owned()),
        xattrs_value(&meta.xattrs),
    ])
    .to_bytes()
}

/// Parses an archive header; returns the metadata, the symlink target and the size.
pub fn parse_archive_header(
    checksum: &Checksum,
    data: &[u8],
) -> Result<(FileMeta, String, u64), ObjectError> {
    let malformed = |what: &str| ObjectError::Malformed {
        kind: ObjectType::File,
        checksum: checksum.to_hex(),
        what: what.to_owned(),
    };
    let ty = Type::parse("(tuuuusa(ayay))").expect("static type");
    let Value::Struct(m) = gvariant::decode(&ty, data).map_err(|e| malformed(&e.to_string()))?
    else {
        return Err(malformed("not a struct"));
    };
    let size = match m.first() {
        Some(Value::U64(s)) => s.swap_bytes(),
        _ => return Err(malformed("size")),
    };
    let meta = FileMeta {
        uid: get_be32(m.get(1)).ok_or_else(|| malformed("uid"))?,
        gid: get_be32(m.get(2)).ok_or_else(|| malformed("gid"))?,
        mode: get_be32(m.get(3)).ok_or_else(|| malformed("mode"))?,
        xattrs: m
            .get(6)
            .and_then(xattrs_from_value)
            .ok_or_else(|| malformed("xattrs"))?,
    };
    let target = m
        .get(5)
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("symlink target"))?
        .to_owned();
    validate_file_meta(&meta, &target).map_err(malformed)?;
    Ok((meta, target, size))
}

/// Parses the bare-user `user.ostreemeta` xattr `(uuua(ayay))`.
pub fn parse_bare_user_meta(checksum: &Checksum, data: &[u8]) -> Result<FileMeta, ObjectError> {
    let malformed = |what: &str| ObjectError::Malformed {
        kind: ObjectType::File,
        checksum: checksum.to_hex(),
        what: format!("user.ostreemeta: {what}"),
    };
    let ty = Type::parse("(uuua(ayay))").expect("static type");
    let Value::Struct(m) = gvariant::decode(&ty, data).map_err(|e| malformed(&e.to_string()))?
    else {
        return Err(malformed("not a struct"));
    };
    Ok(FileMeta {
        uid: get_be32(m.first()).ok_or_else(|| malformed("uid"))?,
        gid: get_be32(m.get(1)).ok_or_else(|| malformed("gid"))?,
        mode: get_be32(m.get(2)).ok_or_else(|| malformed("mode"))?,
        xattrs: m
            .get(3)
            .and_then(xattrs_from_value)
            .ok_or_else(|| malformed("xattrs"))?,
    })
}

pub fn bare_user_meta_bytes(meta: &FileMeta) -> Vec<u8> {
    dirmeta_bytes(meta)
}

fn validate_file_meta(meta: &FileMeta, target: &str) -> Result<(), &'static str> {
    match meta.mode & S_IFMT {
        S_IFREG if target.is_empty() => Ok(()),
        S_IFREG => Err("regular file with a symlink target"),
        S_IFLNK if !target.is_empty() => Ok(()),
        S_IFLNK => Err("symlink with an empty target"),
        _ => Err("mode is neither a regular file nor a symlink"),
    }
}

/// The checksum of a content object from its header and data.
pub fn content_checksum(meta: &FileMeta, symlink_target: &str, data: &[u8]) -> Checksum {
    let mut hasher = content_hasher(meta, symlink_target);
    hasher.update(data);
    Checksum(hasher.finalize().into())
}

/// A hasher primed with the content header, for streaming the data in.
pub fn content_hasher(meta: &FileMeta, symlink_target: &str) -> Sha256 {
    let header = file_header_bytes(meta, symlink_target);
    let mut hasher = Sha256::new();
    hasher.update((header.len() as u32).to_be_bytes());
    hasher.update([0u8; 4]);
    hasher.update(&header);
    hasher
}

/// Checks that a name read from a tree object is a single, harmless path component.
pub fn validate_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        Err("empty name")
    } else if name == "." || name == ".." {
        Err("name is . or ..")
    } else if name.contains('/') {
        Err("name contains /")
    } else if name.contains('\0') {
        Err("name contains NUL")
    } else {
        Ok(())
    }
}

/// A directory listing, `(a(say)a(sayay))`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DirTree {
    /// (name, content checksum), sorted by name.
    pub files: Vec<(String, Checksum)>,
    /// (name, dirtree checksum, dirmeta checksum), sorted by name.
    pub dirs: Vec<(String, Checksum, Checksum)>,
}

impl DirTree {
    pub fn to_bytes(&self) -> Vec<u8> {
        Value::Struct(vec![
            Value::Array(
                Type::parse("(say)").expect("static type"),
                self.files
                    .iter()
                    .map(|(n, c)| {
                        Value::Struct(vec![Value::Str(n.clone()), Value::Bytes(c.0.to_vec())])
                    })
                    .collect(),
            ),
            Value::Array(
                Type::parse("(sayay)").expect("static type"),
                self.dirs
                    .iter()
                    .map(|(n, t, m)| {
                        Value::Struct(vec![
                            Value::Str(n.clone()),
                            Value::Bytes(t.0.to_vec()),
                            Value::Bytes(m.0.to_vec()),
                        ])
                    })
                    .collect(),
            ),
        ])
        .to_bytes()
    }

    /// Parses and validates a dirtree: names must be safe path components, unique and sorted.
    pub fn parse(checksum: &Checksum, data: &[u8]) -> Result<DirTree, ObjectError> {
        let malformed = |what: String| ObjectError::Malformed {
            kind: ObjectType::DirTree,
            checksum: checksum.to_hex(),
            what,
        };
        let ty = Type::parse("(a(say)a(sayay))").expect("static type");
        let value = gvariant::decode(&ty, data).map_err(|e| malformed(e.to_string()))?;
        let Value::Struct(m) = value else {
            return Err(malformed("not a struct".into()));
        };
        let (Some(Value::Array(_, files)), Some(Value::Array(_, dirs))) = (m.first(), m.get(1))
        else {
            return Err(malformed("not a dirtree".into()));
        };
        let name_of = |v: Option<&Value>| -> Result<String, ObjectError> {
            let name = v
                .and_then(Value::as_str)
                .ok_or_else(|| malformed("entry without a name".into()))?;
            validate_name(name).map_err(|w| malformed(format!("bad entry name {name:?}: {w}")))?;
            Ok(name.to_owned())
        };
        let csum_of = |v: Option<&Value>| -> Result<Checksum, ObjectError> {
            v.and_then(Value::as_bytes)
                .and_then(Checksum::from_slice)
                .ok_or_else(|| malformed("entry checksum is not 32 bytes".into()))
        };
        let mut tree = DirTree::default();
        for f in files {
            let Value::Struct(e) = f else {
                return Err(malformed("file entry".into()));
            };
            tree.files.push((name_of(e.first())?, csum_of(e.get(1))?));
        }
        for d in dirs {
            let Value::Struct(e) = d else {
                return Err(malformed("dir entry".into()));
            };
            tree.dirs
                .push((name_of(e.first())?, csum_of(e.get(1))?, csum_of(e.get(2))?));
        }
        if !tree.files.windows(2).all(|w| w[0].0 < w[1].0)
            || !tree.dirs.windows(2).all(|w| w[0].0 < w[1].0)
        {
            return Err(malformed("entries are not sorted and unique".into()));
        }
        let mut names: Vec<&str> = tree
            .files
            .iter()
            .map(|f| f.0.as_str())
            .chain(tree.dirs.iter().map(|d| d.0.as_str()))
            .collect();
        names.sort_unstable();
        if names.windows(2).any(|w| w[0] == w[1]) {
            return Err(malformed("a name is both a file and a directory".into()));
        }
        Ok(tree)
    }
}

/// A commit object, `(a{sv}aya(say)sstayay)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Commit {
    /// Commit metadata as (key, value inside the variant), in the order written
    /// (ostree keeps the order of its command line, then adds `ostree.ref-binding`).
    pub metadata: Vec<(String, Value)>,
    pub parent: Option<Checksum>,
    pub subject: String,
    pub body: String,
    /// Seconds since the epoch, UTC.
    pub timestamp: u64,
    pub root_tree: Checksum,
    pub root_meta: Checksum,
}

impl Commit {
    pub fn to_bytes(&self) -> Vec<u8> {
        Value::Struct(vec![
            metadata_dict(&self.metadata),
            Value::Bytes(self.parent.map(|p| p.0.to_vec()).unwrap_or_default()),
            Value::Array(Type::parse("(say)").expect("static type"), vec![]),
            Value::Str(self.subject.clone()),
            Value::Str(self.body.clone()),
            Value::U64(self.timestamp.swap_bytes()),
            Value::Bytes(self.root_tree.0.to_vec()),
            Value::Bytes(self.root_meta.0.to_vec()),
        ])
        .to_bytes()
    }

    pub fn parse(checksum: &Checksum, data: &[u8]) -> Result<Commit, ObjectError> {
        let malformed = |what: &str| ObjectError::Malformed {
            kind: ObjectType::Commit,
            checksum: checksum.to_hex(),
            what: what.to_owned(),
        };
        let ty = Type::parse("(a{sv}aya(say)sstayay)").expect("static type");
        let Value::Struct(m) =
            gvariant::decode(&ty, data).map_err(|e| malformed(&e.to_string()))?
        else {
            return Err(malformed("not a struct"));
        };
        let metadata = m
            .first()
            .and_then(parse_metadata_dict)
            .ok_or_else(|| malformed("metadata"))?;
        let parent_bytes = m
            .get(1)
            .and_then(Value::as_bytes)
            .ok_or_else(|| malformed("parent"))?;
        let parent = match parent_bytes.len() {
            0 => None,
            32 => Checksum::from_slice(parent_bytes),
            _ => return Err(malformed("parent checksum is not 32 bytes")),
        };
        let timestamp = match m.get(5) {
            Some(Value::U64(t)) => t.swap_bytes(),
            _ => return Err(malformed("timestamp")),
        };
        let csum = |i: usize, what: &str| {
            m.get(i)
                .and_then(Value::as_bytes)
                .and_then(Checksum::from_slice)
                .ok_or_else(|| malformed(what))
        };
        Ok(Commit {
            metadata,
            parent,
            subject: m
                .get(3)
                .and_then(Value::as_str)
                .ok_or_else(|| malformed("subject"))?
                .to_owned(),
            body: m
                .get(4)
                .and_then(Value::as_str)
                .ok_or_else(|| malformed("body"))?
                .to_owned(),
            timestamp,
            root_tree: csum(6, "root dirtree checksum")?,
            root_meta: csum(7, "root dirmeta checksum")?,
        })
    }

    pub fn metadata_value(&self, key: &str) -> Option<&Value> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// `ostree.commit.version`, if present.
    pub fn version(&self) -> Option<&str> {
        self.metadata_value("version").and_then(Value::as_str)
    }

    /// OSTree's "content checksum": the SHA-256 of the root dirtree and dirmeta checksums.
    pub fn content_checksum(&self) -> Checksum {
        let mut h = Sha256::new();
        h.update(self.root_tree.0);
        h.update(self.root_meta.0);
        Checksum(h.finalize().into())
    }
}

/// An `a{sv}` dictionary from (key, inner value) pairs, in the given order.
pub fn metadata_dict(entries: &[(String, Value)]) -> Value {
    Value::Array(
        Type::parse("{sv}").expect("static type"),
        entries
            .iter()
            .map(|(k, v)| {
                Value::DictEntry(
                    Box::new(Value::Str(k.clone())),
                    Box::new(Value::Variant(Box::new(v.clone()))),
                )
            })
            .collect(),
    )
}

pub fn parse_metadata_dict(v: &Value) -> Option<Vec<(String, Value)>> {
    let Value::Array(_, items) = v else {
        return None;
    };
    items
        .iter()
        .map(|item| match item {
            Value::DictEntry(k, v) => match (&**k, &**v) {
                (Value::Str(k), Value::Variant(inner)) => Some((k.clone(), (**inner).clone())),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// Renders a metadata value for people, in GVariant text format where it matters.
pub fn display_value(v: &Value) -> String {
    match v {
        Value::Str(s) => format!("'{s}'"),
        Value::Bytes(b) => format!("[byte array of {} bytes]", b.len()),
        Value::Array(_, items) => {
            let inner: Vec<String> = items.iter().map(display_value).collect();
            format!("[{}]", inner.join(", "))
        }
        Value::Variant(inner) => format!("<{}>", display_value(inner)),
        Value::Bool(b) => b.to_string(),
        Value::U64(x) => x.to_string(),
        Value::U32(x) => x.to_string(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_checksum_matches_formats_check_value() {
        let meta = FileMeta {
            uid: 0,
            gid: 0,
            mode: 0o100644,
            xattrs: vec![],
        };
        let data = vec![b'x'; 300];
        assert_eq!(
            content_checksum(&meta, "", &data).to_hex(),
            "e3d0ddb40d398abbd1282078244b11de1717ad9b175e18cd0fe93465bebc4c37"
        );
    }

    #[test]
    fn dirtree_refuses_hostile_names() {
        let csum = Checksum::of(b"x");
        for bad in ["..", ".", "a/b", "", "a\0b"] {
            let tree = DirTree {
                files: vec![(bad.to_owned(), csum)],
                dirs: vec![],
            };
            let bytes = tree.to_bytes();
            let err = DirTree::parse(&Checksum::of(&bytes), &bytes);
            assert!(err.is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn commit_round_trips() {
        let c = Commit {
            metadata: vec![("version".into(), Value::Str("1".into()))],
            parent: Some(Checksum::of(b"p")),
            subject: "s".into(),
            body: "b".into(),
            timestamp: 1_600_000_000,
            root_tree: Checksum::of(b"t"),
            root_meta: Checksum::of(b"m"),
        };
        let bytes = c.to_bytes();
        assert_eq!(Commit::parse(&Checksum::of(&bytes), &bytes).unwrap(), c);
    }
}
