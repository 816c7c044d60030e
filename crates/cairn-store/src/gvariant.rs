//! GVariant serialisation in normal form, as OSTree's objects need it.
//!
//! OSTree names metadata objects by the SHA-256 of their serialised bytes, so the
//! encoder must produce GLib's normal form byte for byte: natural alignment with zero
//! padding, framing offsets of the smallest width that fits the container, struct
//! offsets in reverse order. The decoder is strict: anything that is not well formed
//! is an error rather than GLib's "default value" leniency, because every byte here
//! comes from disk or the network.

use std::fmt;

/// A GVariant type, as far as OSTree's formats use them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Type {
    Bool,
    Byte,
    U16,
    I16,
    U32,
    I32,
    U64,
    I64,
    F64,
    Str,
    ObjectPath,
    Signature,
    Variant,
    Array(Box<Type>),
    Maybe(Box<Type>),
    Struct(Vec<Type>),
    DictEntry(Box<Type>, Box<Type>),
}

/// A GVariant value. Integers hold the number as GVariant reads it (little-endian);
/// OSTree's big-endian fields are swapped by the object layer.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Bool(bool),
    Byte(u8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F64(f64),
    Str(String),
    ObjectPath(String),
    Signature(String),
    Variant(Box<Value>),
    /// `ay`, kept as bytes for speed.
    Bytes(Vec<u8>),
    /// An array of any other element type; the element type is kept so that an empty
    /// array still knows its type.
    Array(Type, Vec<Value>),
    Maybe(Type, Option<Box<Value>>),
    Struct(Vec<Value>),
    DictEntry(Box<Value>, Box<Value>),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("invalid GVariant type string {0:?}")]
    BadType(String),
    #[error("malformed GVariant data: {0}")]
    Malformed(&'static str),
}

impl Type {
    /// Parses a complete type string such as `(a{sv}aya(say)sstayay)`.
    pub fn parse(signature: &str) -> Result<Type, Error> {
        let bytes = signature.as_bytes();
        let (ty, used) =
            Self::parse_prefix(bytes).ok_or_else(|| Error::BadType(signature.to_owned()))?;
        if used != bytes.len() {
            return Err(Error::BadType(signature.to_owned()));
        }
        Ok(ty)
    }

    fn parse_prefix(s: &[u8]) -> Option<(Type, usize)> {
        let first = *s.first()?;
        let simple = match first {
            b'b' => Some(Type::Bool),
            b'y' => Some(Type::Byte),
            b'q' => Some(Type::U16),
            b'n' => Some(Type::I16),
            b'u' => Some(Type::U32),
            b'i' => Some(Type::I32),
            b't' => Some(Type::U64),
            b'x' => Some(Type::I64),
            b'd' => Some(Type::F64),
            b's' => Some(Type::Str),
            b'o' => Some(Type::ObjectPath),
            b'g' => Some(Type::Signature),
            b'v' => Some(Type::Variant),
            _ => None,
        };
        if let Some(t) = simple {
            return Some((t, 1));
        }
        match first {
            b'a' => {
                let (elem, used) = Self::parse_prefix(&s[1..])?;
                Some((Type::Array(Box::new(elem)), used + 1))
            }
            b'm' => {
                let (elem, used) = Self::parse_prefix(&s[1..])?;
                Some((Type::Maybe(Box::new(elem)), used + 1))
            }
            b'(' => {
                let mut pos = 1;
                let mut members = Vec::new();
                loop {
                    if *s.get(pos)? == b')' {
                        return Some((Type::Struct(members), pos + 1));
                    }
                    let (member, used) = Self::parse_prefix(&s[pos..])?;
                    members.push(member);
                    pos += used;
                }
            }
            b'{' => {
                let (key, used_key) = Self::parse_prefix(&s[1..])?;
                if !key.is_basic() {
                    return None;
                }
                let (value, used_value) = Self::parse_prefix(&s[1 + used_key..])?;
                let end = 1 + used_key + used_value;
                if *s.get(end)? != b'}' {
                    return None;
                }
                Some((Type::DictEntry(Box::new(key), Box::new(value)), end + 1))
            }
            _ => None,
        }
    }

    fn is_basic(&self) -> bool {
        !matches!(
            self,
            Type::Variant | Type::Array(_) | Type::Maybe(_) | Type::Struct(_) | Type::DictEntry(..)
        )
    }

    pub fn alignment(&self) -> usize {
        match self {
            Type::Bool | Type::Byte | Type::Str | Type::ObjectPath | Type::Signature => 1,
            Type::U16 | Type::I16 => 2,
            Type::U32 | Type::I32 => 4,
            Type::U64 | Type::I64 | Type::F64 | Type::Variant => 8,
            Type::Array(e) | Type::Maybe(e) => e.alignment(),
            Type::Struct(members) => members.iter().map(Type::alignment).max().unwrap_or(1),
            Type::DictEntry(k, v) => k.alignment().max(v.alignment()),
        }
    }

    /// The size of every value of this type, or `None` when values vary in size.
    pub fn fixed_size(&self) -> Option<usize> {
        match self {
            Type::Bool | Type::Byte => Some(1),
            Type::U16 | Type::I16 => Some(2),
            Type::U32 | Type::I32 => Some(4),
            Type::U64 | Type::I64 | Type::F64 => Some(8),
            Type::Str
            | Type::ObjectPath
            | Type::Signature
            | Type::Variant
            | Type::Array(_)
            | Type::Maybe(_) => None,
            Type::Struct(members) => struct_fixed_size(members.iter(), self.alignment()),
            Type::DictEntry(k, v) => struct_fixed_size([&**k, &**v].into_iter(), self.alignment()),
        }
    }
}

fn struct_fixed_size<'a>(
    members: impl Iterator<Item = &'a Type>,
    alignment: usize,
) -> Option<usize> {
    let mut size = 0;
    let mut any = false;
    for member in members {
        any = true;
        size = align(size, member.alignment()) + member.fixed_size()?;
    }
    if !any {
        return Some(1);
    }
    Some(align(size, alignment))
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Type::Bool => f.write_str("b"),
            Type::Byte => f.write_str("y"),
            Type::U16 => f.write_str("q"),
            Type::I16 => f.write_str("n"),
            Type::U32 => f.write_str("u"),
            Type::I32 => f.write_str("i"),
            Type::U64 => f.write_str("t"),
            Type::I64 => f.write_str("x"),
            Type::F64 => f.write_str("d"),
            Type::Str => f.write_str("s"),
            Type::ObjectPath => f.write_str("o"),
            Type::Signature => f.write_str("g"),
            Type::Variant => f.write_str("v"),
            Type::Array(e) => write!(f, "a{e}"),
            Type::Maybe(e) => write!(f, "m{e}"),
            Type::Struct(members) => {
                f.write_str("(")?;
                for m in members {
                    write!(f, "{m}")?;
                }
                f.write_str(")")
            }
            Type::DictEntry(k, v) => write!(f, "{{{k}{v}}}"),
        }
    }
}

fn align(offset: usize, alignment: usize) -> usize {
    (offset + alignment - 1) & !(alignment - 1)
}

/// The width of framing offsets in a container of `size` bytes.
fn offset_width(size: usize) -> usize {
    if size == 0 {
        0
    } else if size <= 0xff {
        1
    } else if size <= 0xffff {
        2
    } else if size <= 0xffff_ffff {
        4
    } else {
        8
    }
}

impl Value {
    pub fn type_of(&self) -> Type {
        match self {
            Value::Bool(_) => Type::Bool,
            Value::Byte(_) => Type::Byte,
            Value::U16(_) => Type::U16,
            Value::I16(_) => Type::I16,
            Value::U32(_) => Type::U32,
            Value::I32(_) => Type::I32,
            Value::U64(_) => Type::U64,
            Value::I64(_) => Type::I64,
            Value::F64(_) => Type::F64,
            Value::Str(_) => Type::Str,
            Value::ObjectPath(_) => Type::ObjectPath,
            Value::Signature(_) => Type::Signature,
            Value::Variant(_) => Type::Variant,
            Value::Bytes(_) => Type::Array(Box::new(Type::Byte)),
            Value::Array(elem, _) => Type::Array(Box::new(elem.clone())),
            Value::Maybe(elem, _) => Type::Maybe(Box::new(elem.clone())),
            Value::Struct(members) => Type::Struct(members.iter().map(Value::type_of).collect()),
            Value::DictEntry(k, v) => Type::DictEntry(Box::new(k.type_of()), Box::new(v.type_of())),
        }
    }

    /// Serialises the value in normal form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    /// Appends the value to `out`; `out.len()` must already be aligned for the value.
    fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        match self {
            Value::Bool(b) => out.push(u8::from(*b)),
            Value::Byte(b) => out.push(*b),
            Value::U16(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::I16(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::U32(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::I32(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::U64(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::I64(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::F64(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::Str(s) | Value::ObjectPath(s) | Value::Signature(s) => {
                out.extend_from_slice(s.as_bytes());
                out.push(0);
            }
            Value::Variant(inner) => {
                inner.encode(out);
                out.push(0);
                out.extend_from_slice(inner.type_of().to_string().as_bytes());
            }
            Value::Bytes(b) => out.extend_from_slice(b),
            Value::Array(elem, items) => {
                let elem_align = elem.alignment();
                if elem.fixed_size().is_some() {
                    for item in items {
                        pad_to(out, start, elem_align);
                        item.encode(out);
                    }
                } else {
                    let mut ends = Vec::with_capacity(items.len());
                    for item in items {
                        pad_to(out, start, elem_align);
                        item.encode(out);
                        ends.push(out.len() - start);
                    }
                    write_offsets(out, start, &ends);
                }
            }
            Value::Maybe(elem, item) => {
                if let Some(item) = item {
                    item.encode(out);
                    if elem.fixed_size().is_none() {
                        out.push(0);
                    }
                }
            }
            Value::Struct(members) => encode_struct(out, start, members.iter(), self.type_of()),
            Value::DictEntry(k, v) => {
                encode_struct(out, start, [&**k, &**v].into_iter(), self.type_of())
            }
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) | Value::ObjectPath(s) | Value::Signature(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }
}

fn pad_to(out: &mut Vec<u8>, start: usize, alignment: usize) {
    let target = start + align(out.len() - start, alignment);
    out.resize(target, 0);
}

fn encode_struct<'a>(
    out: &mut Vec<u8>,
    start: usize,
    members: impl ExactSizeIterator<Item = &'a Value>,
    ty: Type,
) {
    let count = members.len();
    let mut ends = Vec::new();
    for (i, member) in members.enumerate() {
        let member_type = member.type_of();
        pad_to(out, start, member_type.alignment());
        member.encode(out);
        if member_type.fixed_size().is_none() && i + 1 < count {
            ends.push(out.len() - start);
        }
    }
    if let Some(size) = ty.fixed_size() {
        out.resize(start + size, 0);
    } else {
        ends.reverse();
        write_offsets(out, start, &ends);
    }
}

/// Appends framing offsets, choosing the smallest width that addresses the whole container.
fn write_offsets(out: &mut Vec<u8>, start: usize, ends: &[usize]) {
    if ends.is_empty() {
        return;
    }
    let body = out.len() - start;
    let width = [1usize, 2, 4, 8]
        .into_iter()
        .find(|w| offset_width(body + ends.len() * w) == *w)
        .unwrap_or(8);
    for end in ends {
        out.extend_from_slice(&end.to_le_bytes()[..width]);
    }
}

fn read_offset(data: &[u8], at: usize, width: usize) -> Result<usize, Error> {
    let bytes = data
        .get(at..at + width)
        .ok_or(Error::Malformed("framing offset out of range"))?;
    let mut buf = [0u8; 8];
    buf[..width].copy_from_slice(bytes);
    usize::try_from(u64::from_le_bytes(buf))
        .map_err(|_| Error::Malformed("framing offset too large"))
}

/// Decodes `data` as a value of type `ty`, refusing anything malformed.
pub fn decode(ty: &Type, data: &[u8]) -> Result<Value, Error> {
    if let Some(size) = ty.fixed_size() {
        if data.len() != size {
            return Err(Error::Malformed("fixed-size value has the wrong length"));
        }
    }
    let fixed = |n: usize| -> [u8; 8] {
        let mut buf = [0u8; 8];
        buf[..n].copy_from_slice(&data[..n]);
        buf
    };
    Ok(match ty {
        Type::Bool => match data[0] {
            0 => Value::Bool(false),
            1 => Value::Bool(true),
            _ => return Err(Error::Malformed("boolean is neither 0 nor 1")),
        },
        Type::Byte => Value::Byte(data[0]),
        Type::U16 => Value::U16(u16::from_le_bytes([data[0], data[1]])),
        Type::I16 => Value::I16(i16::from_le_bytes([data[0], data[1]])),
        Type::U32 => Value::U32(u32::from_le_bytes([data[0], data[1], data[2], data[3]])),
        Type::I32 => Value::I32(i32::from_le_bytes([data[0], data[1], data[2], data[3]])),
        Type::U64 => Value::U64(u64::from_le_bytes(fixed(8))),
        Type::I64 => Value::I64(i64::from_le_bytes(fixed(8))),
        Type::F64 => Value::F64(f64::from_le_bytes(fixed(8))),
        Type::Str => Value::Str(decode_string(data)?),
        Type::ObjectPath => Value::ObjectPath(decode_string(data)?),
        Type::Signature => Value::Signature(decode_string(data)?),
        Type::Variant => {
            let nul = data
                .iter()
                .rposition(|b| *b == 0)
                .ok_or(Error::Malformed("variant without type string"))?;
            let type_str = std::str::from_utf8(&data[nul + 1..])
                .map_err(|_| Error::Malformed("variant type string is not UTF-8"))?;
            let inner_type = Type::parse(type_str)
                .map_err(|_| Error::Malformed("variant has an invalid type string"))?;
            Value::Variant(Box::new(decode(&inner_type, &data[..nul])?))
        }
        Type::Array(elem) => decode_array(elem, data)?,
        Type::Maybe(elem) => {
            if data.is_empty() {
                Value::Maybe((**elem).clone(), None)
            } else if elem.fixed_size().is_some() {
                Value::Maybe((**elem).clone(), Some(Box::new(decode(elem, data)?)))
            } else {
                let (last, body) = data.split_last().ok_or(Error::Malformed("empty maybe"))?;
                if *last != 0 {
                    return Err(Error::Malformed("maybe value lacks its trailing zero"));
                }
                Value::Maybe((**elem).clone(), Some(Box::new(decode(elem, body)?)))
            }
        }
        Type::Struct(members) => Value::Struct(decode_struct(members.iter(), ty, data)?),
        Type::DictEntry(k, v) => {
            let mut members = decode_struct([&**k, &**v].into_iter(), ty, data)?;
            let value = members.pop().ok_or(Error::Malformed("dict entry"))?;
            let key = members.pop().ok_or(Error::Malformed("dict entry"))?;
            Value::DictEntry(Box::new(key), Box::new(value))
        }
    })
}

fn decode_string(data: &[u8]) -> Result<String, Error> {
    let (last, body) = data
        .split_last()
        .ok_or(Error::Malformed("string without terminating NUL"))?;
    if *last != 0 {
        return Err(Error::Malformed("string without terminating NUL"));
    }
    if body.contains(&0) {
        return Err(Error::Malformed("string contains NUL"));
    }
    String::from_utf8(body.to_vec()).map_err(|_| Error::Malformed("string is not UTF-8"))
}

fn decode_array(elem: &Type, data: &[u8]) -> Result<Value, Error> {
    if *elem == Type::Byte {
        return Ok(Value::Bytes(data.to_vec()));
    }
    let mut items = Vec::new();
    if let Some(size) = elem.fixed_size() {
        if !data.len().is_multiple_of(size) {
            return Err(Error::Malformed(
                "fixed-size array length is not a multiple of its element size",
            ));
        }
        for chunk in data.chunks_exact(size) {
            items.push(decode(elem, chunk)?);
        }
    } else if !data.is_empty() {
        let width = offset_width(data.len());
        let table_start = read_offset(data, data.len() - width, width)?;
        if table_start > data.len() || !(data.len() - table_start).is_multiple_of(width) {
            return Err(Error::Malformed("array framing offsets are inconsistent"));
        }
        let count = (data.len() - table_start) / width;
        let mut pos = 0;
        for i in 0..count {
            let start = align(pos, elem.alignment());
            let end = read_offset(data, table_start + i * width, width)?;
            if start > end || end > table_start {
                return Err(Error::Malformed("array element out of range"));
            }
            items.push(decode(elem, &data[start..end])?);
            pos = end;
        }
    }
    Ok(Value::Array(elem.clone(), items))
}

fn decode_struct<'a>(
    members: impl ExactSizeIterator<Item = &'a Type>,
    ty: &Type,
    data: &[u8],
) -> Result<Vec<Value>, Error> {
    let count = members.len();
    let width = if ty.fixed_size().is_some() {
        0
    } else {
        offset_width(data.len())
    };
    let mut offsets_used = 0;
    let mut pos = 0;
    let mut values = Vec::with_capacity(count);
    for (i, member) in members.enumerate() {
        let start = align(pos, member.alignment());
        let end = if let Some(size) = member.fixed_size() {
            start + size
        } else if i + 1 == count {
            data.len()
                .checked_sub(offsets_used * width)
                .ok_or(Error::Malformed("struct framing offsets out of range"))?
        } else {
            offsets_used += 1;
            let at = data
                .len()
                .checked_sub(offsets_used * width)
                .ok_or(Error::Malformed("struct framing offsets out of range"))?;
            read_offset(data, at, width)?
        };
        if start > end || end > data.len() {
            return Err(Error::Malformed("struct member out of range"));
        }
        values.push(decode(member, &data[start..end])?);
        pos = end;
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_strings_round_trip() {
        for s in [
            "(a{sv}aya(say)sstayay)",
            "(a(say)a(sayay))",
            "(uuua(ayay))",
            "(tuuuusa(ayay))",
            "a{sv}",
            "aay",
            "mi",
        ] {
            assert_eq!(Type::parse(s).unwrap().to_string(), s);
        }
        assert!(Type::parse("(a").is_err());
        assert!(Type::parse("{vs}").is_err());
        assert!(Type::parse("uu").is_err());
    }

    #[test]
    fn known_encodings_from_glib() {
        // Values checked against GLib's g_variant_print / g_variant_get_data.
        let v = Value::Struct(vec![Value::Str("a".into()), Value::U32(1)]);
        assert_eq!(v.to_bytes(), vec![b'a', 0, 0, 0, 1, 0, 0, 0, 2]);
        let v = Value::Array(
            Type::Str,
            vec![Value::Str("hi".into()), Value::Str("x".into())],
        );
        assert_eq!(v.to_bytes(), vec![b'h', b'i', 0, b'x', 0, 3, 5]);
        let v = Value::Variant(Box::new(Value::U64(5)));
        assert_eq!(v.to_bytes(), vec![5, 0, 0, 0, 0, 0, 0, 0, 0, b't']);
        assert_eq!(Value::Struct(vec![]).to_bytes(), vec![0]);
    }

    #[test]
    fn decode_inverts_encode() {
        let ty = Type::parse("(a{sv}aya(say)sstayay)").unwrap();
        let value = Value::Struct(vec![
            Value::Array(
                Type::parse("{sv}").unwrap(),
                vec![Value::DictEntry(
                    Box::new(Value::Str("version".into())),
                    Box::new(Value::Variant(Box::new(Value::Str("1.0".into())))),
                )],
            ),
            Value::Bytes(vec![1; 32]),
            Value::Array(Type::parse("(say)").unwrap(), vec![]),
            Value::Str("subject".into()),
            Value::Str(String::new()),
            Value::U64(42),
            Value::Bytes(vec![2; 32]),
            Value::Bytes(vec![3; 32]),
        ]);
        let bytes = value.to_bytes();
        assert_eq!(decode(&ty, &bytes).unwrap(), value);
        // A container larger than 255 bytes switches to 2-byte offsets.
        let big = Value::Array(
            Type::Str,
            (0..100).map(|i| Value::Str(format!("name-{i}"))).collect(),
        );
        let bytes = big.to_bytes();
        assert_eq!(decode(&Type::parse("as").unwrap(), &bytes).unwrap(), big);
    }

    #[test]
    fn malformed_data_is_refused() {
        let ty = Type::parse("(a(say)a(sayay))").unwrap();
        assert!(decode(&ty, &[0xff, 0xff, 0xff]).is_err());
        assert!(decode(&Type::Str, b"abc").is_err());
        assert!(decode(&Type::U32, &[1, 2]).is_err());
    }
}
