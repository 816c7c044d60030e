//! Test-only helpers shared by cairn's integration tests.

pub mod etcd;

use std::process::Command;

/// Whether a peer program (a name on `PATH`, or an absolute path) is installed. Without
/// it a test skips, unless `CAIRN_REQUIRE_PEERS` is set (as in CI), where its absence is
/// a failure.
pub fn have_peer(program: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !found {
        if std::env::var_os("CAIRN_REQUIRE_PEERS").is_some() {
            panic!("{program} is required (CAIRN_REQUIRE_PEERS is set) but not installed");
        }
        eprintln!("skipping: {program} not installed");
    }
    found
}

/// A small deterministic generator (xorshift64) for fuzz-style tests: the same seed gives
/// the same inputs, so a failure reproduces.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    pub fn pick<'a, T: ?Sized>(&mut self, items: &[&'a T]) -> &'a T {
        items[self.below(items.len())]
    }
}

/// An HTTP/1.1 answer, as the tests read it.
pub struct HttpReply {
    pub status: u16,
    /// Header names in lower case.
    pub headers: std::collections::HashMap<String, String>,
    pub body: String,
}

/// One plain HTTP/1.1 request on a new connection (`Connection: close`); `headers` are
/// extra `Name: value\r\n` lines. Raw on purpose: tests send what clients may send.
/// Panics when the connection fails; see [`try_http`].
pub fn http(
    addr: impl std::net::ToSocketAddrs,
    method: &str,
    target: &str,
    headers: &str,
    body: &str,
) -> HttpReply {
    try_http(addr, method, target, headers, body).expect("an HTTP exchange")
}

/// As [`http`], with a failed connection as an error (for tests that retry, as clients do).
pub fn try_http(
    addr: impl std::net::ToSocketAddrs,
    method: &str,
    target: &str,
    headers: &str,
    body: &str,
) -> std::io::Result<HttpReply> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    write!(
        stream,
        "{method} {target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n{headers}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
        .collect();
    Ok(HttpReply {
        status,
        headers,
        body: body.to_string(),
    })
}
