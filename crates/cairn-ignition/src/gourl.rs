//! URL parsing with the acceptance rules of Go's `net/url.Parse`, which is what Ignition runs
//! on every source, proxy and tang URL. A WHATWG parser (the `url` crate) accepts and rejects
//! different strings, so the rules are ported here rather than borrowed.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UrlError(pub String);

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The parts of a parsed URL that Ignition's checks look at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct GoUrl {
    /// Lower-cased, as Go does.
    pub scheme: String,
    /// The part after `scheme:` when it does not start with `/` (e.g. `data:` and `arn:`).
    pub opaque: String,
    pub raw_query: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Path,
    Host,
    Zone,
    UserPassword,
    QueryComponent,
    Fragment,
}

pub(crate) fn parse(raw: &str) -> Result<GoUrl, UrlError> {
    let (rest, fragment) = match raw.split_once('#') {
        Some((rest, fragment)) => (rest, Some(fragment)),
        None => (raw, None),
    };
    let url = parse_without_fragment(rest)?;
    if let Some(fragment) = fragment {
        unescape(fragment, Mode::Fragment)?;
    }
    Ok(url)
}

fn parse_without_fragment(raw: &str) -> Result<GoUrl, UrlError> {
    if raw.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err(UrlError("invalid control character in URL".into()));
    }
    let mut url = GoUrl::default();
    if raw == "*" {
        return Ok(url);
    }
    let (scheme, rest) = split_scheme(raw)?;
    url.scheme = scheme.to_ascii_lowercase();
    let mut rest = rest;
    if rest.ends_with('?') && rest.matches('?').count() == 1 {
        rest = &rest[..rest.len() - 1];
    } else if let Some((before, query)) = rest.split_once('?') {
        url.raw_query = query.to_owned();
        rest = before;
    }
    if !rest.starts_with('/') {
        if !url.scheme.is_empty() {
            url.opaque = rest.to_owned();
            return Ok(url);
        }
        let first_segment = rest.split('/').next().unwrap_or("");
        if first_segment.contains(':') {
            return Err(UrlError(
                "first path segment in URL cannot contain colon".into(),
            ));
        }
    }
    if (!url.scheme.is_empty() || !rest.starts_with("///")) && rest.starts_with("//") {
        let authority_and_path = &rest[2..];
        let (authority, path) = match authority_and_path.find('/') {
            Some(i) => authority_and_path.split_at(i),
            None => (authority_and_path, ""),
        };
        parse_authority(authority)?;
        rest = path;
    }
    unescape(rest, Mode::Path)?;
    Ok(url)
}

/// Splits a leading `scheme:`; a string that does not start like a scheme has none.
fn split_scheme(raw: &str) -> Result<(&str, &str), UrlError> {
    for (i, c) in raw.bytes().enumerate() {
        match c {
            b'a'..=b'z' | b'A'..=b'Z' => {}
            b'0'..=b'9' | b'+' | b'-' | b'.' => {
                if i == 0 {
                    return Ok(("", raw));
                }
            }
            b':' => {
                if i == 0 {
                    return Err(UrlError("missing protocol scheme".into()));
                }
                return Ok((&raw[..i], &raw[i + 1..]));
            }
            _ => return Ok(("", raw)),
        }
    }
    Ok(("", raw))
}

fn parse_authority(authority: &str) -> Result<(), UrlError> {
    let (userinfo, host) = match authority.rfind('@') {
        Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
        None => (None, authority),
    };
    parse_host(host)?;
    if let Some(userinfo) = userinfo {
        let valid = userinfo
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"-._:~!$&'()*+,;=%@".contains(&c));
        if !valid {
            return Err(UrlError("invalid userinfo".into()));
        }
        match userinfo.split_once(':') {
            Some((user, password)) => {
                unescape(user, Mode::UserPassword)?;
                unescape(password, Mode::UserPassword)?;
            }
            None => {
                unescape(userinfo, Mode::UserPassword)?;
            }
        }
    }
    Ok(())
}

fn valid_optional_port(port: &str) -> bool {
    match port.strip_prefix(':') {
        None => port.is_empty(),
        Some(digits) => digits.bytes().all(|b| b.is_ascii_digit()),
    }
}

fn parse_host(host: &str) -> Result<(), UrlError> {
    if host.starts_with('[') {
        let Some(close) = host.rfind(']') else {
            return Err(UrlError("missing ']' in host".into()));
        };
        let port = &host[close + 1..];
        if !valid_optional_port(port) {
            return Err(UrlError(format!("invalid port {port:?} after host")));
        }
        if let Some(zone) = host[..close].find("%25") {
            unescape(&host[..zone], Mode::Host)?;
            unescape(&host[zone..close], Mode::Zone)?;
            unescape(&host[close..], Mode::Host)?;
            return Ok(());
        }
    } else if let Some(colon) = host.rfind(':') {
        let port = &host[colon..];
        if !valid_optional_port(port) {
            return Err(UrlError(format!("invalid port {port:?} after host")));
        }
    }
    unescape(host, Mode::Host)?;
    Ok(())
}

fn should_escape(c: u8, mode: Mode) -> bool {
    if c.is_ascii_alphanumeric() {
        return false;
    }
    if matches!(mode, Mode::Host | Mode::Zone) && b"!$&'()*+,;=:[]<>\"".contains(&c) {
        return false;
    }
    match c {
        b'-' | b'_' | b'.' | b'~' => return false,
        b'$' | b'&' | b'+' | b',' | b'/' | b':' | b';' | b'=' | b'?' | b'@' => match mode {
            Mode::Path => return c == b'?',
            Mode::UserPassword => return matches!(c, b'@' | b'/' | b'?' | b':'),
            Mode::QueryComponent => return true,
            Mode::Fragment => return false,
            Mode::Host | Mode::Zone => {}
        },
        _ => {}
    }
    if mode == Mode::Fragment && matches!(c, b'!' | b'(' | b')' | b'*') {
        return false;
    }
    true
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Go's `unescape`: checks `%XX` sequences (and, in a host, which bytes may appear) and
/// returns the decoded bytes.
fn unescape(s: &str, mode: Mode) -> Result<Vec<u8>, UrlError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let pair = (
                    bytes.get(i + 1).copied().and_then(hex_value),
                    bytes.get(i + 2).copied().and_then(hex_value),
                );
                let (Some(hi), Some(lo)) = pair else {
                    let end = (i + 3).min(bytes.len());
                    return Err(UrlError(format!(
                        "invalid URL escape {:?}",
                        String::from_utf8_lossy(&bytes[i..end])
                    )));
                };
                let escape = &s[i..i + 3];
                if mode == Mode::Host && hi < 8 && escape != "%25" {
                    return Err(UrlError(format!("invalid URL escape {escape:?}")));
                }
                let value = hi << 4 | lo;
                if mode == Mode::Zone
                    && escape != "%25"
                    && value != b' '
                    && should_escape(value, Mode::Host)
                {
                    return Err(UrlError(format!("invalid URL escape {escape:?}")));
                }
                out.push(value);
                i += 3;
            }
            b'+' if mode == Mode::QueryComponent => {
                out.push(b' ');
                i += 1;
            }
            c => {
                if matches!(mode, Mode::Host | Mode::Zone) && c < 0x80 && should_escape(c, mode) {
                    return Err(UrlError(format!(
                        "invalid character {:?} in host name",
                        c as char
                    )));
                }
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(out)
}

/// The first value of `key` in a raw query, as Go's `URL.Query()` reads it (pairs that do not
/// decode, or that contain `;`, are skipped).
pub(crate) fn query_value(raw_query: &str, key: &str) -> Option<String> {
    for pair in raw_query.split('&') {
        if pair.is_empty() || pair.contains(';') {
            continue;
        }
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (Ok(k), Ok(v)) = (
            unescape(k, Mode::QueryComponent),
            unescape(v, Mode::QueryComponent),
        ) else {
            continue;
        };
        if k == key.as_bytes() {
            return Some(String::from_utf8_lossy(&v).into_owned());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_what_go_accepts() {
        for ok in [
            "http://example.com/a b",
            "https://user:pa%20ss@host:8080/p?q=1#frag",
            "data:,hello",
            "s3://bucket/key?versionId=abc",
            "arn:aws:s3:::bucket/key",
            "tftp://[fe80::1%25eth0]:69/x",
            "",
            "relative/path",
            "HTTP://UPPER",
        ] {
            assert!(parse(ok).is_ok(), "{ok}");
        }
        assert_eq!(parse("HTTP://x").map(|u| u.scheme), Ok("http".into()));
    }

    #[test]
    fn rejects_what_go_rejects() {
        for bad in [
            "http://exa mple.com/",
            "http://host:port/",
            "http://[::1/",
            "http://x/%zz",
            ":nothing",
            "a:b/c",
            "1http:x",
            "http://x/#%g0",
            "http://x\n/",
            "http://us^er@host/",
        ] {
            // "a:b/c" has a scheme ("a"), "1http:x" is a relative path whose first segment has
            // a colon.
            let expect_ok = bad == "a:b/c";
            assert_eq!(parse(bad).is_ok(), expect_ok, "{bad}");
        }
    }

    #[test]
    fn query_values() {
        assert_eq!(
            query_value("versionId=abc&x=1", "versionId"),
            Some("abc".into())
        );
        assert_eq!(query_value("versionId", "versionId"), Some(String::new()));
        assert_eq!(query_value("versionId=%zz", "versionId"), None);
        assert_eq!(query_value("x=1", "versionId"), None);
    }
}
