//! Serves an OSTree archive repository over HTTP, as a static web server would.
//!
//! GET and HEAD of files under the repository root: keep-alive and HTTP/2 (h2c) from
//! hyper, single byte ranges, `ETag` and `Last-Modified` with conditional requests. A
//! request path is percent-decoded once and must be a sequence of plain components (no
//! `.`, `..`, empty, NUL or backslash); files are opened with `RESOLVE_BENEATH`, so
//! nothing outside the root is ever served, whatever symlinks the root holds.

use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, Response, StatusCode};
use axum::Router;
use rustix::fs::{Mode, OFlags, ResolveFlags};

struct State {
    root: OwnedFd,
}

/// Opens `root` and returns a router serving it.
pub fn router(root: &Path) -> std::io::Result<Router> {
    let fd = rustix::fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let state = Arc::new(State { root: fd });
    Ok(Router::new().fallback(move |req: Request<Body>| {
        let state = state.clone();
        async move { serve_file(state, req).await }
    }))
}

/// Serves `root` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    root: PathBuf,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(&root)?;
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Binds `addr` and serves `root` until Ctrl-C or SIGTERM.
pub fn run(root: PathBuf, addr: SocketAddr) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        eprintln!("serving {} on http://{}/", root.display(), listener.local_addr()?);
        serve(listener, root, async {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
            }
        })
        .await
    })
}

pub use cairn_http::Background;

/// Serves `root` on `addr` (port 0: any free port) from a background thread.
pub fn spawn(root: PathBuf, addr: SocketAddr) -> std::io::Result<Background> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    cairn_http::spawn(runtime, addr, "repository server", |listener, shutdown| {
        serve(listener, root, shutdown.wait())
    })
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut resp = Response::new(Body::from(text));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// The relative path a request names, or `None` when it is not a safe one.
pub fn safe_relative_path(raw_path: &str) -> Option<String> {
    let decoded = percent_encoding::percent_decode_str(raw_path)
        .decode_utf8()
        .ok()?;
    let trimmed = decoded.strip_prefix('/')?;
    if trimmed.is_empty() || trimmed.len() > 4096 {
        return None;
    }
    for component in trimmed.split('/') {
        if component.is_empty()
            || component == "."
            || component == ".."
            || component.contains(['\0', '\\'])
        {
            return None;
        }
    }
    Some(trimmed.to_owned())
}

fn content_type(rel: &str) -> &'static str {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    if name == "config" || rel.starts_with("refs/") {
        "text/plain; charset=utf-8"
    } else {
        "application/octet-stream"
    }
}

/// Parses a single `bytes=` range against a file of `size` bytes.
/// `Ok(None)`: serve the whole file; `Err(())`: unsatisfiable.
fn parse_range(value: &str, size: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let (start, end) = spec.split_once('-').ok_or(())?;
    let (start, end) = match (start.trim(), end.trim()) {
        ("", suffix) => {
            let n: u64 = suffix.parse().map_err(|_| ())?;
            if n == 0 {
                return Err(());
            }
            (size.saturating_sub(n), size.saturating_sub(1))
        }
        (s, "") => (s.parse().map_err(|_| ())?, size.saturating_sub(1)),
        (s, e) => {
            let e: u64 = e.parse().map_err(|_| ())?;
            (s.parse().map_err(|_| ())?, e.min(size.saturating_sub(1)))
        }
    };
    if size == 0 || start > end || start >= size {
        return Err(());
    }
    Ok(Some((start, end)))
}

/// Files up to this size are read in one go; larger ones are streamed.
const IN_MEMORY_LIMIT: u64 = 1 << 20;

struct Opened {
    data: Vec<u8>,
    /// For large files: the open file, the offset and the length to send.
    stream: Option<(std::fs::File, u64, u64)>,
    size: u64,
    etag: String,
    modified: SystemTime,
    /// The byte range served, when the request asked for a satisfiable one.
    range: Option<(u64, u64)>,
    unsatisfiable: bool,
}

fn open_and_read(
    root: &OwnedFd,
    rel: &str,
    range_header: Option<&str>,
    head: bool,
) -> Result<Opened, StatusCode> {
    let fd = rustix::fs::openat2(
        root,
        rel,
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::BENEATH,
    )
    .map_err(|_| StatusCode::NOT_FOUND)?;
    let st = rustix::fs::fstat(&fd).map_err(|_| StatusCode::NOT_FOUND)?;
    if st.st_mode & 0o170000 != 0o100000 {
        return Err(StatusCode::NOT_FOUND);
    }
    let size = st.st_size as u64;
    let mtime_ns = (st.st_mtime as i128) * 1_000_000_000 + st.st_mtime_nsec as i128;
    let etag = format!("\"{:x}-{:x}-{:x}\"", st.st_ino, size, mtime_ns);
    let modified = SystemTime::UNIX_EPOCH + Duration::from_secs(st.st_mtime.max(0) as u64);
    let (range, unsatisfiable) = match range_header.map(|r| parse_range(r, size)) {
        Some(Ok(r)) => (r, false),
        Some(Err(())) => (None, true),
        None => (None, false),
    };
    let mut data = Vec::new();
    let (start, len) = match range {
        Some((s, e)) => (s, e - s + 1),
        None => (0, size),
    };
    if !head && !unsatisfiable && len > IN_MEMORY_LIMIT {
        // Large files are streamed, so that memory does not grow with the file.
        return Ok(Opened {
            data,
            stream: Some((std::fs::File::from(fd), start, len)),
            size,
            etag,
            modified,
            range,
            unsatisfiable,
        });
    }
    if !head && !unsatisfiable {
        data.resize(len as usize, 0);
        let mut done = 0usize;
        while done < data.len() {
            let n = rustix::io::pread(&fd, &mut data[done..], start + done as u64)
                .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
            if n == 0 {
                data.truncate(done);
                break;
            }
            done += n;
        }
    }
    Ok(Opened {
        data,
        stream: None,
        size,
        etag,
        modified,
        range,
        unsatisfiable,
    })
}

async fn serve_file(state: Arc<State>, req: Request<Body>) -> Response<Body> {
    let head = req.method() == Method::HEAD;
    if req.method() != Method::GET && !head {
        let mut resp = plain(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
        resp.headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        return resp;
    }
    let Some(rel) = safe_relative_path(req.uri().path()) else {
        return plain(StatusCode::NOT_FOUND, "not found\n");
    };
    let headers: HeaderMap = req.headers().clone();
    let range_header = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let rel_for_task = rel.clone();
    let opened = tokio::task::spawn_blocking(move || {
        open_and_read(&state.root, &rel_for_task, range_header.as_deref(), head)
    })
    .await;
    let file = match opened {
        Ok(Ok(v)) => v,
        Ok(Err(StatusCode::NOT_FOUND)) => return plain(StatusCode::NOT_FOUND, "not found\n"),
        _ => return plain(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n"),
    };
    let not_modified = match headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    {
        Some(tags) => tags
            .split(',')
            .any(|t| t.trim() == file.etag || t.trim() == "*"),
        None => headers
            .get(header::IF_MODIFIED_SINCE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok())
            .is_some_and(|since| file.modified <= since),
    };
    let mut builder = Response::builder()
        .header(header::ETAG, &file.etag)
        .header(
            header::LAST_MODIFIED,
            httpdate::fmt_http_date(file.modified),
        )
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CONTENT_TYPE, content_type(&rel));
    if not_modified {
        return builder
            .status(StatusCode::NOT_MODIFIED)
            .body(Body::empty())
            .unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n"));
    }
    if file.unsatisfiable {
        return builder
            .status(StatusCode::RANGE_NOT_SATISFIABLE)
            .header(header::CONTENT_RANGE, format!("bytes */{}", file.size))
            .body(Body::empty())
            .unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n"));
    }
    let length = match file.range {
        Some((s, e)) => {
            builder = builder.status(StatusCode::PARTIAL_CONTENT).header(
                header::CONTENT_RANGE,
                format!("bytes {s}-{e}/{}", file.size),
            );
            e - s + 1
        }
        None => file.size,
    };
    builder = builder.header(header::CONTENT_LENGTH, length);
    let body = match (head, file.stream) {
        (true, _) => Body::empty(),
        (false, Some((f, start, len))) => {
            use tokio::io::{AsyncReadExt, AsyncSeekExt};
            let mut f = tokio::fs::File::from_std(f);
            if f.seek(std::io::SeekFrom::Start(start)).await.is_err() {
                return plain(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n");
            }
            Body::from_stream(tokio_util::io::ReaderStream::new(f.take(len)))
        }
        (false, None) => Body::from(file.data),
    };
    builder
        .body(body)
        .unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_outside_the_root_are_refused() {
        assert_eq!(
            safe_relative_path("/objects/ab/cd.filez").as_deref(),
            Some("objects/ab/cd.filez")
        );
        for bad in [
            "/../etc/passwd",
            "/objects/../../x",
            "/%2e%2e/config",
            "/%2E%2E%2Fconfig",
            "//etc/passwd",
            "/a/./b",
            "/",
            "/a%00b",
            "/a\\..\\b",
            "relative",
        ] {
            assert_eq!(safe_relative_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Ok(Some((0, 9))));
        assert_eq!(parse_range("bytes=90-", 100), Ok(Some((90, 99))));
        assert_eq!(parse_range("bytes=-10", 100), Ok(Some((90, 99))));
        assert_eq!(parse_range("bytes=50-500", 100), Ok(Some((50, 99))));
        assert_eq!(parse_range("bytes=100-", 100), Err(()));
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Ok(None));
    }
}
