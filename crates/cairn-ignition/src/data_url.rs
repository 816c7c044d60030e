//! `data:` URLs (RFC 2397) with the acceptance rules of the Go library Ignition uses
//! (vincent-petithory/dataurl), so that a source cairn accepts is one Ignition can read.
//! Only validation is needed here; the applier decodes the payload itself.

/// Checks `s` (the whole URL, `data:` prefix included) and says what is wrong with it.
pub(crate) fn check(s: &str) -> Result<(), String> {
    let Some(rest) = s.strip_prefix("data:") else {
        return Err("missing data prefix".into());
    };
    let bytes = rest.as_bytes();
    let mut lexer = Lexer { bytes, pos: 0 };
    let mut base64 = false;

    // Optional media type `type/subtype`.
    match lexer.peek() {
        None => return Err("missing comma before data".into()),
        Some(b';') | Some(b',') => {}
        Some(c) if is_token(c) => {
            let start = lexer.pos;
            let extension = matches!(c, b'x' | b'X') && bytes.get(start + 1) == Some(&b'-');
            if matches!(c, b'x' | b'X') {
                // The Go lexer takes the character after an `x` unchecked, whatever it is.
                let second = rest[start + 1..].chars().next().map_or(0, char::len_utf8);
                lexer.pos += 1 + second;
            }
            loop {
                match lexer.next() {
                    None => return Err("missing media type slash".into()),
                    Some(b'/') => break,
                    Some(c) if is_token(c) => {}
                    Some(_) => return Err("invalid character for media type".into()),
                }
            }
            let media_type = &rest[start..lexer.pos - 1];
            if !extension && !is_known_type(media_type) {
                return Err("invalid media type".into());
            }
            loop {
                match lexer.peek() {
                    None => return Err("incomplete media type".into()),
                    Some(b';') | Some(b',') => break,
                    Some(c) if is_token(c) => lexer.pos += 1,
                    Some(_) => return Err("invalid character for media subtype".into()),
                }
            }
        }
        Some(_) => return Err("invalid character after data prefix".into()),
    }

    // Parameters `;attr=value` and the `;base64` marker, up to the comma.
    while lexer.peek() == Some(b';') {
        lexer.pos += 1;
        match lexer.peek() {
            None | Some(b'=') | Some(b',') => return Err("unterminated parameter sequence".into()),
            Some(c) if is_token(c) => {}
            Some(_) => return Err("invalid character for parameter attribute".into()),
        }
        let start = lexer.pos;
        loop {
            match lexer.peek() {
                None => return Err("unterminated parameter sequence".into()),
                Some(b'=') | Some(b',') => break,
                Some(c) if is_token(c) => lexer.pos += 1,
                Some(_) => return Err("invalid character for parameter attribute".into()),
            }
        }
        if lexer.peek() == Some(b',') {
            let attribute = &rest[start..lexer.pos];
            if attribute != "base64" {
                return Err(format!("expected base64, got {attribute}"));
            }
            base64 = true;
            break;
        }
        lexer.pos += 1; // '='
        parameter_value(&mut lexer, rest)?;
        match lexer.peek() {
            Some(b';') | Some(b',') => {}
            None => return Err("missing comma before data".into()),
            Some(_) => return Err("expected semicolon or comma".into()),
        }
    }
    if lexer.next() != Some(b',') {
        return Err("missing comma before data".into());
    }

    let data = &rest[lexer.pos..];
    if base64 {
        if !data.bytes().all(is_base64) {
            return Err("invalid data character".into());
        }
        check_base64(data)
    } else {
        if !data.bytes().all(is_url_char) {
            return Err("invalid data character".into());
        }
        check_percent_escapes(data)
    }
}

struct Lexer<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Lexer<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.pos += 1;
        Some(c)
    }
}

fn parameter_value(lexer: &mut Lexer, rest: &str) -> Result<(), String> {
    match lexer.next() {
        None => Err("missing comma before data".into()),
        Some(b'"') => {
            let start = lexer.pos;
            loop {
                match lexer.next() {
                    None => return Err("unclosed quoted string".into()),
                    Some(b'\\') => match lexer.next() {
                        None => return Err("unexpected eof".into()),
                        Some(c) if c.is_ascii() => {}
                        Some(_) => return Err("invalid escaped character".into()),
                    },
                    Some(b'"') => break,
                    Some(c) if c.is_ascii() => {}
                    Some(_) => return Err("invalid character for parameter value".into()),
                }
            }
            check_go_quoted(&rest[start..lexer.pos - 1])
        }
        Some(c) if is_token(c) => {
            let start = lexer.pos - 1;
            loop {
                match lexer.peek() {
                    Some(b';') | Some(b',') => break,
                    None => return Err("missing comma before data".into()),
                    Some(c) if is_token(c) => lexer.pos += 1,
                    Some(_) => return Err("invalid character for parameter value".into()),
                }
            }
            check_percent_escapes(&rest[start..lexer.pos])
        }
        Some(_) => Err("invalid character for parameter value".into()),
    }
}

fn is_token(c: u8) -> bool {
    c.is_ascii() && !c.is_ascii_control() && c != b' ' && !b"()<>@,;:\\\"/[]?=".contains(&c)
}

/// RFC 2045 discrete and composite types, matched by prefix as the Go library does.
fn is_known_type(media_type: &str) -> bool {
    [
        "text",
        "image",
        "audio",
        "video",
        "application",
        "message",
        "multipart",
    ]
    .iter()
    .any(|known| media_type.starts_with(known))
}

fn is_url_char(c: u8) -> bool {
    c.is_ascii() && c > 0x1f && c != 0x7f && !b" <>#\"{}|\\^[]`".contains(&c)
}

fn is_base64(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'=' | b'\n')
}

fn check_percent_escapes(s: &str) -> Result<(), String> {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            match (bytes.get(i + 1), bytes.get(i + 2)) {
                (Some(a), Some(b)) if a.is_ascii_hexdigit() && b.is_ascii_hexdigit() => i += 3,
                (None, _) | (_, None) => {
                    return Err("rfc2396: unexpected end of unescape sequence".into())
                }
                _ => return Err("rfc2396: invalid char in unescape sequence".into()),
            }
        } else {
            i += 1;
        }
    }
    Ok(())
}

/// Standard base64 with padding, newlines ignored (Go's `base64.StdEncoding`).
fn check_base64(data: &str) -> Result<(), String> {
    let symbols: Vec<u8> = data.bytes().filter(|b| *b != b'\n').collect();
    let bad = || Err("illegal base64 data".to_owned());
    if !symbols.len().is_multiple_of(4) {
        return bad();
    }
    for (index, quad) in symbols.chunks(4).enumerate() {
        let last = index + 1 == symbols.len() / 4;
        let padding = quad.iter().rev().take_while(|b| **b == b'=').count();
        if padding > 2 || (padding > 0 && !last) {
            return bad();
        }
        if quad[..4 - padding].contains(&b'=') {
            return bad();
        }
    }
    Ok(())
}

/// Go's `strconv.Unquote` on a double-quoted string: only Go's escapes, no raw newline.
fn check_go_quoted(s: &str) -> Result<(), String> {
    let bad = || Err("invalid syntax".to_owned());
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\n' => return bad(),
            b'\\' => {
                let Some(&escape) = bytes.get(i + 1) else {
                    return bad();
                };
                // The value of `count` hex digits after the escape letter, if they are there.
                let hex_value = |count: usize| {
                    let digits = std::str::from_utf8(bytes.get(i + 2..i + 2 + count)?).ok()?;
                    if !digits.bytes().all(|d| d.is_ascii_hexdigit()) {
                        return None;
                    }
                    u32::from_str_radix(digits, 16).ok()
                };
                // \u and \U must name a Unicode scalar value (no surrogates).
                let is_char = |v: Option<u32>| v.and_then(char::from_u32).is_some();
                i += match escape {
                    b'a' | b'b' | b'f' | b'n' | b'r' | b't' | b'v' | b'\\' | b'"' => 2,
                    b'x' if hex_value(2).is_some() => 4,
                    b'u' if is_char(hex_value(4)) => 6,
                    b'U' if is_char(hex_value(8)) => 10,
                    b'0'..=b'7' => {
                        let digits = bytes.get(i + 1..i + 4).unwrap_or(&[]);
                        let valid = digits.len() == 3
                            && digits.iter().all(|d| (b'0'..=b'7').contains(d))
                            && digits[0] <= b'3';
                        if !valid {
                            return bad();
                        }
                        4
                    }
                    _ => return bad(),
                };
            }
            _ => i += 1,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn accepts() {
        for ok in [
            "data:,",
            "data:,hello%20world",
            "data:;base64,aGVsbG8=",
            "data:text/plain;charset=utf-8;base64,aGk=",
            "data:text/plain;charset=\"utf\\\"8\",x",
            "data:x-foo/bar,x",
            "data:application/octet-stream;base64,aGVs\nbG8=",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn rejects() {
        for bad in [
            "DATA:,x",
            "data:",
            "data:hello",
            "data:foo/bar,x",
            "data:text/plain",
            "data:,hello world",
            "data:,%zz",
            "data:;base64,aGVsbG8",
            "data:;base64,a===",
            "data:;foo,x",
            "data:;=x,y",
            "data:text/plain;charset=\"\\q\",x",
        ] {
            assert!(check(bad).is_err(), "{bad}");
        }
    }
}
