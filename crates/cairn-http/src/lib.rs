//! What cairn's HTTP services share: a server on a background thread that stops when
//! dropped (tests, the quickstart), and the JSON error body of the Cincinnati and
//! FleetLock protocols.

use std::future::Future;
use std::net::SocketAddr;

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;

/// A server running on its own thread; it stops when dropped.
pub struct Background {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Runs the server `serve` makes from the bound listener and a shutdown signal, on
/// `runtime`, in a new thread. The listener is bound before this returns, so `addr` (port
/// 0: any free port) can be used at once.
pub fn spawn<F, Fut>(
    runtime: tokio::runtime::Runtime,
    addr: SocketAddr,
    name: &'static str,
    serve: F,
) -> std::io::Result<Background>
where
    F: FnOnce(tokio::net::TcpListener, Shutdown) -> Fut + Send + 'static,
    Fut: Future<Output = std::io::Result<()>>,
{
    let listener = runtime.block_on(async { bind(addr) })?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let shutdown = Shutdown(stopped);
        if let Err(e) = runtime.block_on(serve(listener, shutdown)) {
            tracing::warn!("{name} stopped: {e}");
        }
    });
    Ok(Background {
        addr,
        stop: Some(stop),
        thread: Some(thread),
    })
}

/// Resolves when the [`Background`] is dropped.
pub struct Shutdown(tokio::sync::oneshot::Receiver<()>);

impl Shutdown {
    pub async fn wait(self) {
        let _ = self.0.await;
    }
}

/// `{"kind": …, "value": …}` with `status`: the error body of Cincinnati and FleetLock.
pub fn json_error(status: StatusCode, kind: &str, value: &str) -> Response {
    let body = serde_json::json!({ "kind": kind, "value": value }).to_string();
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Resolves on Ctrl-C (SIGINT).
pub type Interrupted = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// Connections waiting to be accepted; the kernel caps it at `net.core.somaxconn`.
const LISTEN_BACKLOG: u32 = 4096;

/// Binds `addr` with a deep accept queue: when a whole fleet asks at once, connections wait
/// to be accepted instead of being dropped or reset (tokio's default queue is 1024).
pub fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// A command's server in the foreground: binds `listen` on a new runtime, says on stderr
/// what it serves (`banner` gets the bound address), and runs `serve` until Ctrl-C.
pub fn serve_until_interrupted<F, Fut>(
    listen: SocketAddr,
    banner: impl FnOnce(SocketAddr) -> String,
    serve: F,
) -> std::io::Result<()>
where
    F: FnOnce(tokio::net::TcpListener, Interrupted) -> Fut,
    Fut: Future<Output = std::io::Result<()>>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = bind(listen)
            .map_err(|e| std::io::Error::new(e.kind(), format!("listen on {listen}: {e}")))?;
        eprintln!("{}", banner(listener.local_addr()?));
        serve(
            listener,
            Box::pin(async {
                let _ = tokio::signal::ctrl_c().await;
            }),
        )
        .await
    })
}

/// A `200` answer carrying metrics in Prometheus' text format.
pub fn metrics_response(text: String) -> Response {
    let mut response = Response::new(Body::from(text));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
}

/// Appends one metric family in Prometheus' text format: its `HELP` and `TYPE` lines, then
/// its samples (`name{labels} value` lines).
pub fn metric_family(out: &mut String, name: &str, kind: &str, help: &str, samples: Vec<String>) {
    use std::fmt::Write;
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for sample in samples {
        let _ = writeln!(out, "{sample}");
    }
}
