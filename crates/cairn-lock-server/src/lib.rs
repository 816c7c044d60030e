//! FleetLock v1 (coreos/zincati `docs/development/fleetlock/protocol.md`) over HTTP:
//! `POST /v1/pre-reboot` takes a reboot slot in the client's group, `POST
//! /v1/steady-state` gives it back. Only 200 is success; every error is JSON
//! `{"kind": …, "value": …}` with a small, fixed set of kinds.
//!
//! The rules live in `cairn_lock::Semaphore`; this crate checks requests and maps
//! outcomes to answers. Store calls (which may fsync) run on tokio's blocking pool.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use cairn_http::json_error;
use cairn_lock::{GroupName, LockOutcome, Semaphore, Store, UnlockOutcome};

/// Request bodies are a few dozen bytes; anything over this is refused.
const MAX_BODY: usize = 16 * 1024;
/// Longest client id accepted (Zincati sends 32 hex digits).
const MAX_ID: usize = 256;

/// Reboot slots per group. A group not listed is refused, as Airlock refuses it; the
/// group `default` always exists, with 1 slot unless configured.
#[derive(Clone, Debug)]
pub struct Settings {
    pub groups: BTreeMap<String, u64>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            groups: BTreeMap::from([("default".to_string(), 1)]),
        }
    }
}

pub struct Service<S> {
    semaphore: Semaphore<S>,
    settings: Settings,
}

impl<S: Store + 'static> Service<S> {
    pub fn new(store: S, mut settings: Settings) -> Arc<Service<S>> {
        settings.groups.entry("default".into()).or_insert(1);
        Arc::new(Service {
            semaphore: Semaphore::new(store),
            settings,
        })
    }
}

fn ok() -> Response {
    Response::new(Body::empty())
}

/// A checked FleetLock request: the client's id and group.
struct Client {
    id: String,
    group: GroupName,
    slots: u64,
}

#[derive(serde::Deserialize)]
struct Request {
    client_params: ClientParams,
}

#[derive(serde::Deserialize)]
struct ClientParams {
    id: String,
    group: String,
}

/// Why a request is refused (400): its error kind and description.
type Rejection = (&'static str, String);

fn bad(kind: &'static str, value: String) -> Rejection {
    (kind, value)
}

fn check<S>(service: &Service<S>, headers: &HeaderMap, body: &[u8]) -> Result<Client, Rejection> {
    if headers
        .get("fleet-lock-protocol")
        .map(HeaderValue::as_bytes)
        != Some(b"true")
    {
        return Err(bad(
            "invalid_client_identity",
            "the header 'fleet-lock-protocol: true' is required".into(),
        ));
    }
    let parsed: Request = serde_json::from_slice(body)
        .map_err(|e| bad("invalid_client_identity", format!("request body: {e}")))?;
    let ClientParams { id, group } = parsed.client_params;
    if id.is_empty() || id.len() > MAX_ID || id.chars().any(char::is_control) {
        return Err(bad(
            "invalid_client_identity",
            format!("client id must be 1 to {MAX_ID} printable characters"),
        ));
    }
    let group: GroupName = group.parse().map_err(|_| {
        bad(
            "invalid_client_identity",
            format!("group {group:?} does not match ^[a-zA-Z0-9.-]+$"),
        )
    })?;
    let slots = *service.settings.groups.get(group.as_str()).ok_or_else(|| {
        bad(
            "unknown_group",
            format!("unknown group {:?}", group.as_str()),
        )
    })?;
    Ok(Client { id, group, slots })
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

async fn pre_reboot<S: Store + 'static>(
    State(service): State<Arc<Service<S>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let client = match check(&service, &headers, &body) {
        Ok(c) => c,
        Err((kind, value)) => return json_error(StatusCode::BAD_REQUEST, kind, &value),
    };
    let task = tokio::task::spawn_blocking(move || {
        service
            .semaphore
            .lock(&client.group, &client.id, client.slots, now())
    });
    match task.await {
        Ok(Ok(LockOutcome::Acquired | LockOutcome::AlreadyHeld)) => ok(),
        Ok(Ok(LockOutcome::Full { holders, slots })) => json_error(
            StatusCode::CONFLICT,
            "failed_lock_semaphore_full",
            &format!(
                "semaphore currently full: all {slots} slots are locked ({} holders)",
                holders.len()
            ),
        ),
        Ok(Err(e)) => json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "failed_lock",
            &e.to_string(),
        ),
        Err(e) => json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "failed_lock",
            &e.to_string(),
        ),
    }
}

async fn steady_state<S: Store + 'static>(
    State(service): State<Arc<Service<S>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let client = match check(&service, &headers, &body) {
        Ok(c) => c,
        Err((kind, value)) => return json_error(StatusCode::BAD_REQUEST, kind, &value),
    };
    let task =
        tokio::task::spawn_blocking(move || service.semaphore.unlock(&client.group, &client.id));
    match task.await {
        Ok(Ok(UnlockOutcome::Released | UnlockOutcome::NotHeld)) => ok(),
        Ok(Err(e)) => json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "failed_unlock",
            &e.to_string(),
        ),
        Err(e) => json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "failed_unlock",
            &e.to_string(),
        ),
    }
}

async fn not_found() -> Response {
    json_error(
        StatusCode::NOT_FOUND,
        "not_found",
        "POST /v1/pre-reboot or /v1/steady-state",
    )
}

pub fn router<S: Store + 'static>(service: Arc<Service<S>>) -> Router {
    Router::new()
        .route("/v1/pre-reboot", post(pre_reboot::<S>))
        .route("/v1/steady-state", post(steady_state::<S>))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(service)
}

/// Serves FleetLock on `listener` until `shutdown` resolves.
pub async fn serve<S: Store + 'static>(
    listener: tokio::net::TcpListener,
    service: Arc<Service<S>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(service))
        .with_graceful_shutdown(shutdown)
        .await
}

pub use cairn_http::Background;

/// Serves FleetLock on `addr` (port 0: any free port) from a background thread (tests).
pub fn spawn<S: Store + 'static>(
    service: Arc<Service<S>>,
    addr: SocketAddr,
) -> std::io::Result<Background> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    cairn_http::spawn(runtime, addr, "lock server", |listener, shutdown| {
        serve(listener, service, shutdown.wait())
    })
}
