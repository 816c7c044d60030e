//! `cairn graph serve`: Cincinnati's `GET /v1/graph` for Fedora CoreOS-style streams, the
//! way fcos-graph-builder and fcos-policy-engine serve it together, in one process.
//!
//! - Sources (a release index and updates metadata per stream, local paths or HTTP(S)
//!   URLs with `{stream}` in them) are loaded and every graph (stream × basearch ×
//!   payload kind) is built up front, then again every refresh interval. A source that
//!   fails to load, parse or check keeps the last good graphs served; `/status` and
//!   `/metrics` say why.
//! - A request is answered from the prebuilt graph through the per-request policy
//!   (rollouts against the client's wariness now, dead ends); the JSON of each distinct
//!   answer is cached with its ETag, so most requests serialise nothing.
//! - Bad queries get 400 with `{"kind": …, "value": …}`; nothing a client sends can
//!   cause a 5xx or a panic.

mod metrics;
mod query;

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Request, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use cairn_graph::{build, check_updates, wire, without, Graph, PayloadKind, Rollouts};
use cairn_http::json_error;
use sha2::{Digest, Sha256};

pub use metrics::Metrics;
pub use query::{GraphQuery, QueryError};

/// Largest source document accepted (a release index of many years is ~1 MiB).
const MAX_SOURCE_BYTES: usize = 64 << 20;
/// Distinct answers kept per stream generation; beyond it answers are not cached.
const MAX_CACHED: usize = 4096;
/// Clients may reuse an answer this long; rollouts move by the minute.
const MAX_AGE_SECONDS: u64 = 60;
/// The value of [`Service`]'s clock that means "read the system clock" (not an instant
/// anyone sets: it is 292 billion years before the epoch).
const SYSTEM_CLOCK: i64 = i64::MIN;

#[derive(Clone, Debug)]
pub struct Settings {
    pub streams: Vec<String>,
    /// Path or URL of each stream's release index; `{stream}` is replaced.
    pub release_index: String,
    /// Path or URL of each stream's updates metadata; `{stream}` is replaced.
    pub updates: String,
    pub refresh: Duration,
    /// Seconds since the epoch; `None` reads the clock (tests fix it). The starting value
    /// of the service's clock: [`Service::set_now`] moves it while the service runs.
    pub now: Option<i64>,
}

impl Settings {
    /// Streams read from `<dir>/releases-<stream>.json` and `<dir>/updates-<stream>.json`,
    /// refreshed every 5 minutes, with the service's clock starting at `now` (`None`: the
    /// system clock). For the quickstart and tests.
    pub fn from_dir(dir: &std::path::Path, streams: &[&str], now: Option<i64>) -> Settings {
        Settings {
            streams: streams.iter().map(|s| s.to_string()).collect(),
            release_index: dir.join("releases-{stream}.json").display().to_string(),
            updates: dir.join("updates-{stream}.json").display().to_string(),
            refresh: Duration::from_secs(300),
            now,
        }
    }
}

/// A built graph and its rollouts, read once.
struct Prepared {
    graph: Graph,
    rollouts: Rollouts,
}

/// One stream's graphs, from its last good sources.
struct Loaded {
    graphs: HashMap<(String, PayloadKind), Prepared>,
    releases: usize,
    loaded_at: i64,
    /// Changes with every successful load: cached answers of older loads are not reused.
    generation: u64,
}

#[derive(Default)]
struct StreamState {
    loaded: Option<Loaded>,
    /// The last refresh's failure, if it failed: (when, why).
    error: Option<(i64, String)>,
    last_attempt: i64,
}

/// An answer is fixed by (stream, basearch, payload kind, load generation, the rollout
/// nodes the client does not see yet).
type AnswerKey = (String, String, PayloadKind, u64, Vec<u64>);

struct Cached {
    body: axum::body::Bytes,
    etag: HeaderValue,
}

type Failure = (StatusCode, &'static str, String);

impl Cached {
    /// A graph's JSON and its strong ETag.
    fn of(graph: &Graph) -> Result<Cached, Failure> {
        let body = serde_json::to_vec(graph)
            .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
        let etag = format!("\"{}\"", &hex::encode(Sha256::digest(&body))[..32]);
        Ok(Cached {
            body: body.into(),
            etag: HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"\"")),
        })
    }
}

pub struct Service {
    settings: Settings,
    streams: RwLock<HashMap<String, StreamState>>,
    cache: RwLock<HashMap<AnswerKey, Arc<Cached>>>,
    pub metrics: Metrics,
    /// The answer for an architecture without releases.
    empty: Arc<Cached>,
    client: reqwest::Client,
    generation: std::sync::atomic::AtomicU64,
    /// The instant the service answers for, or [`SYSTEM_CLOCK`]: set by tests and
    /// simulations to move a rollout along without waiting for it.
    now: AtomicI64,
}

fn now_epoch() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Service {
    pub fn new(settings: Settings) -> Result<Arc<Service>, String> {
        if settings.streams.is_empty() {
            return Err("no streams to serve".into());
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .user_agent(concat!("cairn/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| e.to_string())?;
        let streams = settings
            .streams
            .iter()
            .map(|s| (s.clone(), StreamState::default()))
            .collect();
        let settings_now = settings.now;
        Ok(Arc::new(Service {
            settings,
            streams: RwLock::new(streams),
            cache: RwLock::new(HashMap::new()),
            metrics: Metrics::default(),
            empty: Arc::new(Cached::of(&Graph::default()).map_err(|(_, _, e)| e)?),
            client,
            generation: Default::default(),
            now: AtomicI64::new(settings_now.unwrap_or(SYSTEM_CLOCK)),
        }))
    }

    /// Sets the instant the service answers for (seconds since the epoch), or goes back to
    /// the system clock with `None`. For tests and fleet simulations: the answers are cached
    /// by the rollouts a client does not see at the request's instant, so moving the clock
    /// never serves an answer of another instant.
    pub fn set_now(&self, now: Option<i64>) {
        self.now.store(
            now.unwrap_or(SYSTEM_CLOCK),
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    fn now(&self) -> i64 {
        match self.now.load(std::sync::atomic::Ordering::Relaxed) {
            SYSTEM_CLOCK => now_epoch(),
            fixed => fixed,
        }
    }

    /// Loads every stream's sources and rebuilds its graphs; a stream whose sources fail
    /// keeps what it had. Returns the failures, one line per stream.
    pub async fn refresh(&self) -> Vec<String> {
        let mut failures = Vec::new();
        for stream in &self.settings.streams {
            let result = self.load_stream(stream).await;
            let now = self.now();
            let mut streams = self.streams.write().unwrap_or_else(|e| e.into_inner());
            let state = streams.entry(stream.clone()).or_default();
            state.last_attempt = now;
            match result {
                Ok(mut loaded) => {
                    loaded.generation = self
                        .generation
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                        + 1;
                    self.metrics.refreshed(stream, true, loaded.releases);
                    state.loaded = Some(loaded);
                    state.error = None;
                }
                Err(why) => {
                    tracing::warn!("stream {stream}: keeping the last good graph: {why}");
                    self.metrics.refreshed(stream, false, 0);
                    failures.push(format!("{stream}: {why}"));
                    state.error = Some((now, why));
                }
            }
        }
        // Answers of replaced loads can no longer be asked for.
        self.cache
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        failures
    }

    async fn load_stream(&self, stream: &str) -> Result<Loaded, String> {
        let index_source = self.settings.release_index.replace("{stream}", stream);
        let updates_source = self.settings.updates.replace("{stream}", stream);
        let index_text = self.fetch(&index_source).await?;
        let updates_text = self.fetch(&updates_source).await?;
        let index =
            wire::parse_release_index(&index_text).map_err(|e| format!("{index_source}: {e}"))?;
        let updates =
            wire::parse_updates(&updates_text).map_err(|e| format!("{updates_source}: {e}"))?;
        check_updates(&updates, &index).map_err(|e| format!("{updates_source}: {e}"))?;
        let mut arches: BTreeSet<String> = BTreeSet::new();
        for release in &index.releases {
            arches.extend(release.commits.iter().map(|c| c.architecture.clone()));
            arches.extend(
                release
                    .oci_images
                    .iter()
                    .flatten()
                    .map(|o| o.architecture.clone()),
            );
        }
        let mut graphs = HashMap::new();
        for arch in arches {
            for kind in [PayloadKind::Checksum, PayloadKind::Oci] {
                let graph = build(&index, &updates, stream, &arch, kind)
                    .map_err(|e| format!("{stream}/{arch}/{kind}: {e}"))?;
                let rollouts = Rollouts::of(&graph);
                graphs.insert((arch.clone(), kind), Prepared { graph, rollouts });
            }
        }
        Ok(Loaded {
            graphs,
            releases: index.releases.len(),
            loaded_at: self.now(),
            generation: 0,
        })
    }

    /// A source's text: an `http(s)://` URL or a local path, at most [`MAX_SOURCE_BYTES`].
    async fn fetch(&self, source: &str) -> Result<String, String> {
        let bytes = if source.starts_with("http://") || source.starts_with("https://") {
            let mut response = self
                .client
                .get(source)
                .send()
                .await
                .and_then(|r| r.error_for_status())
                .map_err(|e| format!("{source}: {e}"))?;
            let mut body = Vec::new();
            while let Some(chunk) = response
                .chunk()
                .await
                .map_err(|e| format!("{source}: {e}"))?
            {
                if body.len() + chunk.len() > MAX_SOURCE_BYTES {
                    return Err(format!("{source}: larger than {MAX_SOURCE_BYTES} bytes"));
                }
                body.extend_from_slice(&chunk);
            }
            body
        } else {
            let meta = tokio::fs::metadata(source)
                .await
                .map_err(|e| format!("{source}: {e}"))?;
            if meta.len() > MAX_SOURCE_BYTES as u64 {
                return Err(format!("{source}: larger than {MAX_SOURCE_BYTES} bytes"));
            }
            tokio::fs::read(source)
                .await
                .map_err(|e| format!("{source}: {e}"))?
        };
        String::from_utf8(bytes).map_err(|_| format!("{source}: not UTF-8 text"))
    }

    /// The answer to a graph query: its JSON and ETag, from the cache when the same
    /// graph was answered before.
    fn answer(&self, query: &GraphQuery) -> Result<Arc<Cached>, Failure> {
        let streams = self.streams.read().unwrap_or_else(|e| e.into_inner());
        let state = streams.get(&query.stream).ok_or_else(|| {
            (
                StatusCode::BAD_REQUEST,
                "unknown_stream",
                format!("stream {:?} is not served", query.stream),
            )
        })?;
        let loaded = state.loaded.as_ref().ok_or_else(|| {
            let why = state
                .error
                .as_ref()
                .map_or("not loaded yet".to_string(), |(_, why)| why.clone());
            (StatusCode::SERVICE_UNAVAILABLE, "graph_unavailable", why)
        })?;
        let Some(prepared) = loaded.graphs.get(&(query.basearch.clone(), query.kind)) else {
            return Ok(self.empty.clone());
        };
        // Clients differ only in the rollouts they do not see yet: that is the key, and
        // the policy runs only for an answer not seen before.
        let hidden = prepared.rollouts.hidden(self.now(), query.wariness);
        let key = (
            query.stream.clone(),
            query.basearch.clone(),
            query.kind,
            loaded.generation,
            hidden,
        );
        if let Some(hit) = self
            .cache
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(hit.clone());
        }
        let cached = Arc::new(Cached::of(&without(&prepared.graph, &key.4))?);
        drop(streams);
        let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
        if cache.len() < MAX_CACHED {
            cache.insert(key, cached.clone());
        }
        Ok(cached)
    }

    /// `/status`: each stream's state in JSON.
    fn status(&self) -> serde_json::Value {
        let streams = self.streams.read().unwrap_or_else(|e| e.into_inner());
        let mut out = serde_json::Map::new();
        for name in &self.settings.streams {
            let Some(state) = streams.get(name) else {
                continue;
            };
            out.insert(
                name.clone(),
                serde_json::json!({
                    "serving": state.loaded.is_some(),
                    "releases": state.loaded.as_ref().map(|l| l.releases),
                    "loaded_at": state.loaded.as_ref().map(|l| l.loaded_at),
                    "last_attempt": state.last_attempt,
                    "error": state.error.as_ref().map(|(_, why)| why),
                    "error_at": state.error.as_ref().map(|(at, _)| at),
                }),
            );
        }
        serde_json::json!({ "streams": out })
    }
}

async fn graph_handler(State(service): State<Arc<Service>>, request: Request<Body>) -> Response {
    let response = match GraphQuery::parse(request.uri().query().unwrap_or("")) {
        Err(e) => json_error(StatusCode::BAD_REQUEST, e.kind(), &e.to_string()),
        Ok(query) => match service.answer(&query) {
            Err((status, kind, value)) => json_error(status, kind, &value),
            Ok(answer) => {
                service.metrics.graph_request(&query.stream, query.wariness);
                respond(&answer, request.headers())
            }
        },
    };
    service.metrics.response(response.status().as_u16());
    response
}

fn respond(answer: &Cached, headers: &HeaderMap) -> Response {
    let not_modified = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| {
            let tag = tag.trim();
            tag == "*" || tag.trim_start_matches("W/").as_bytes() == answer.etag.as_bytes()
        });
    let mut response = if not_modified {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        let mut r = Response::new(Body::from(answer.body.clone()));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        r
    };
    let h = response.headers_mut();
    h.insert(header::ETAG, answer.etag.clone());
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_str(&format!("public, max-age={MAX_AGE_SECONDS}"))
            .unwrap_or(HeaderValue::from_static("no-cache")),
    );
    response
}

async fn status_handler(State(service): State<Arc<Service>>) -> Response {
    let mut response = Response::new(Body::from(service.status().to_string()));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

async fn metrics_handler(State(service): State<Arc<Service>>) -> Response {
    cairn_http::metrics_response(service.metrics.render())
}

async fn not_found() -> Response {
    json_error(
        StatusCode::NOT_FOUND,
        "not_found",
        "GET /v1/graph, /status or /metrics",
    )
}

pub fn router(service: Arc<Service>) -> Router {
    Router::new()
        .route("/v1/graph", get(graph_handler))
        .route("/status", get(status_handler))
        .route("/metrics", get(metrics_handler))
        .fallback(not_found)
        .with_state(service)
}

/// Loads the sources, then serves `listener` until `shutdown` resolves, refreshing the
/// sources every `settings.refresh`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    service: Arc<Service>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    for failure in service.refresh().await {
        tracing::warn!("first load: {failure}");
    }
    serve_loaded(listener, service, shutdown).await
}

async fn serve_loaded(
    listener: tokio::net::TcpListener,
    service: Arc<Service>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let refresher = {
        let service = service.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(service.settings.refresh);
            tick.tick().await;
            loop {
                tick.tick().await;
                service.refresh().await;
            }
        })
    };
    let result = axum::serve(listener, router(service))
        .with_graceful_shutdown(shutdown)
        .await;
    refresher.abort();
    result
}

/// A server on a background thread (tests, the quickstart); stops when dropped.
pub struct Background {
    pub server: cairn_http::Background,
    pub addr: SocketAddr,
    pub service: Arc<Service>,
}

/// Loads the sources once, then serves them on `addr` (port 0: any free port) from a
/// background thread.
pub fn spawn(settings: Settings, addr: SocketAddr) -> std::io::Result<Background> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let service = Service::new(settings).map_err(std::io::Error::other)?;
    runtime.block_on(service.refresh());
    let served = service.clone();
    let server = cairn_http::spawn(runtime, addr, "graph server", |listener, shutdown| {
        serve_loaded(listener, served, shutdown.wait())
    })?;
    Ok(Background {
        addr: server.addr,
        server,
        service,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rollout of release 2: from 0% at this instant to everyone an hour later.
    const START: i64 = 1_700_000_000;

    fn service(dir: &std::path::Path) -> Arc<Service> {
        let commit = |c: char| {
            let checksum = c.to_string().repeat(64);
            serde_json::json!([{"architecture": "x86_64", "checksum": checksum}])
        };
        let index = serde_json::json!({
            "stream": "stable",
            "metadata": {"last-modified": "2023-11-14T00:00:00Z"},
            "releases": [
                {"version": "1", "metadata": "https://example.invalid/1", "commits": commit('a')},
                {"version": "2", "metadata": "https://example.invalid/2", "commits": commit('b')},
            ],
        });
        let updates = serde_json::json!({
            "stream": "stable",
            "metadata": {"last-modified": "2023-11-14T00:00:00Z"},
            "releases": [{"version": "2", "metadata": {"rollout": {
                "start_epoch": START, "start_percentage": 0.0, "duration_minutes": 60,
            }}}],
        });
        std::fs::write(dir.join("releases.json"), index.to_string()).unwrap();
        std::fs::write(dir.join("updates.json"), updates.to_string()).unwrap();
        let service = Service::new(Settings {
            streams: vec!["stable".into()],
            release_index: dir.join("releases.json").display().to_string(),
            updates: dir.join("updates.json").display().to_string(),
            refresh: Duration::from_secs(3600),
            now: Some(START - 60),
        })
        .unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        assert!(runtime.block_on(service.refresh()).is_empty());
        service
    }

    /// The edges a client of `wariness` is answered now, and the answer itself.
    fn edges(service: &Service, wariness: f64) -> (Vec<(u64, u64)>, Arc<Cached>) {
        let query = GraphQuery::parse(&format!(
            "basearch=x86_64&stream=stable&rollout_wariness={wariness}"
        ))
        .unwrap();
        let answer = service.answer(&query).unwrap();
        let graph: Graph = serde_json::from_slice(&answer.body).unwrap();
        (graph.edges, answer)
    }

    #[test]
    fn moving_the_clock_forward_reveals_a_rollout_to_a_wary_client_and_back_hides_it() {
        let dir = tempfile::tempdir().unwrap();
        let service = service(dir.path());
        // Before the start nobody sees release 2, not even the most eager client.
        assert_eq!(edges(&service, 0.0).0, []);
        assert_eq!(edges(&service, 0.5).0, []);
        // 20 minutes in (a third of the fleet): the eager see it, the wary not yet.
        service.set_now(Some(START + 20 * 60));
        assert_eq!(edges(&service, 0.25).0, [(0, 1)]);
        let (hidden, hidden_answer) = edges(&service, 0.5);
        assert_eq!(hidden, []);
        // 30 minutes in (half the fleet): the same client now sees it.
        service.set_now(Some(START + 30 * 60));
        assert_eq!(edges(&service, 0.5).0, [(0, 1)]);
        assert_eq!(edges(&service, 0.75).0, []);
        // Back to 20 minutes: hidden again, from the cache of that instant's answer.
        service.set_now(Some(START + 20 * 60));
        let (again, again_answer) = edges(&service, 0.5);
        assert_eq!(again, []);
        assert!(Arc::ptr_eq(&hidden_answer, &again_answer));
        assert_ne!(hidden_answer.etag, edges(&service, 0.25).1.etag);
        // `None` goes back to the system clock, long past the end of this rollout.
        service.set_now(None);
        assert!(service.now() > START + 3600);
        assert_eq!(edges(&service, 1.0).0, [(0, 1)]);
    }
}
