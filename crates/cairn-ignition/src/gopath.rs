//! Go's `path.Clean`, `path.Join` and `path.Ext`, which decide what Ignition calls a clean
//! path and a unit suffix.

/// The shortest path equivalent to `p` by purely lexical processing: no `//`, no `.`
/// elements, `..` resolved against what precedes it, no trailing `/` (except the root).
pub(crate) fn clean(p: &str) -> String {
    if p.is_empty() {
        return ".".to_owned();
    }
    let bytes = p.as_bytes();
    let n = bytes.len();
    let rooted = bytes[0] == b'/';
    let mut out: Vec<u8> = Vec::with_capacity(n);
    let mut read = 0;
    // Where a `..` may no longer backtrack.
    let mut dotdot = 0;
    if rooted {
        out.push(b'/');
        read = 1;
        dotdot = 1;
    }
    while read < n {
        let at_sep = |i: usize| i == n || bytes[i] == b'/';
        if bytes[read] == b'/' || (bytes[read] == b'.' && at_sep(read + 1)) {
            // An empty or `.` element.
            read += 1;
        } else if bytes[read] == b'.' && read + 1 < n && bytes[read + 1] == b'.' && at_sep(read + 2)
        {
            read += 2;
            if out.len() > dotdot {
                let mut w = out.len() - 1;
                while w > dotdot && out[w] != b'/' {
                    w -= 1;
                }
                out.truncate(w);
            } else if !rooted {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(b"..");
                dotdot = out.len();
            }
        } else {
            if (rooted && out.len() != 1) || (!rooted && !out.is_empty()) {
                out.push(b'/');
            }
            while read < n && bytes[read] != b'/' {
                out.push(bytes[read]);
                read += 1;
            }
        }
    }
    if out.is_empty() {
        return ".".to_owned();
    }
    // Only whole ASCII bytes were removed, so the rest is still UTF-8.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// `path.Join(a, b)`: the cleaned concatenation, skipping empty elements.
pub(crate) fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => String::new(),
        (true, false) => clean(b),
        (false, true) => clean(a),
        (false, false) => clean(&format!("{a}/{b}")),
    }
}

/// The extension of the last element, dot included (`"x.service"` → `".service"`), or "".
pub(crate) fn ext(p: &str) -> &str {
    for (i, b) in p.bytes().enumerate().rev() {
        match b {
            b'/' => return "",
            b'.' => return &p[i..],
            _ => {}
        }
    }
    ""
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_matches_go() {
        for (input, want) in [
            ("", "."),
            ("/", "/"),
            ("//", "/"),
            ("/a/", "/a"),
            ("/a//b", "/a/b"),
            ("/a/./b", "/a/b"),
            ("/a/../b", "/b"),
            ("/..", "/"),
            ("/../a", "/a"),
            ("a/..", "."),
            ("../a", "../a"),
            ("a/../../b", "../b"),
            ("/a/b/..", "/a"),
            ("/a/b/../..", "/"),
            ("/é/./x", "/é/x"),
        ] {
            assert_eq!(clean(input), want, "clean({input:?})");
        }
    }

    #[test]
    fn ext_and_join() {
        assert_eq!(ext("foo.service"), ".service");
        assert_eq!(ext("a.b/c"), "");
        assert_eq!(ext(".service"), ".service");
        assert_eq!(join("/a/b", "../c"), "/a/c");
        assert_eq!(join("/a", ""), "/a");
    }
}
