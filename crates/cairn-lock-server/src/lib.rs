//! FleetLock v1 (coreos/zincati `docs/development/fleetlock/protocol.md`) over HTTP:
//! `POST /v1/pre-reboot` takes a reboot slot in the client's group, `POST
//! /v1/steady-state` gives it back. Only 200 is success; every error is JSON
//! `{"kind": …, "value": …}` with a small, fixed set of kinds.
//!
//! Beyond Airlock: per-group client tokens, per-group leases that free the slots of silent
//! holders, an admin API behind a bearer token ([`admin`]), and Prometheus metrics
//! ([`metrics`]).
//!
//! The rules live in `cairn_lock::Semaphore`; this crate checks requests and maps
//! outcomes to answers. Requests on a group are applied in batches, one write at a time
//! ([`batch`]). Store calls that may block (etcd) run on tokio's blocking pool; the embedded
//! store's calls only take a mutex, and its group commit is awaited, so no thread waits per
//! request.

mod admin;
mod batch;
mod metrics;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::{delete, get, post, put};
use axum::Router;
use cairn_http::json_error;
use cairn_lock::{GroupName, LockOutcome, Op, Outcome, Semaphore, Store};

pub use admin::{GroupReport, GroupsReport, Holder};
pub use metrics::Metrics;

/// Request bodies are a few dozen bytes; anything over this is refused.
const MAX_BODY: usize = 16 * 1024;
/// Longest client id accepted (Zincati sends 32 hex digits).
const MAX_ID: usize = 256;

/// The settings of one group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupSettings {
    /// Reboot slots (an operator may override them through the admin API).
    pub slots: u64,
    /// Free the slot of a holder that has not given it back after this long; off when `None`.
    pub lease: Option<Duration>,
    /// When set, clients of this group must send `Authorization: Bearer <token>`.
    pub client_token: Option<String>,
}

impl GroupSettings {
    pub fn slots(slots: u64) -> GroupSettings {
        GroupSettings {
            slots,
            lease: None,
            client_token: None,
        }
    }
}

/// The groups and the admin token. A group not listed is refused, as Airlock refuses it;
/// the group `default` always exists, with 1 slot unless configured.
#[derive(Clone, Debug)]
pub struct Settings {
    pub groups: BTreeMap<String, GroupSettings>,
    /// The bearer token of the admin API; the admin API is off when `None`.
    pub admin_token: Option<String>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            groups: BTreeMap::from([("default".to_string(), GroupSettings::slots(1))]),
            admin_token: None,
        }
    }
}

impl Settings {
    /// The default settings plus `groups` with these slots.
    pub fn with_slots<'a>(groups: impl IntoIterator<Item = (&'a str, u64)>) -> Settings {
        let mut settings = Settings::default();
        for (name, slots) in groups {
            settings
                .groups
                .insert(name.to_string(), GroupSettings::slots(slots));
        }
        settings
    }
}

pub struct Service<S> {
    semaphore: Semaphore<S>,
    settings: Settings,
    batcher: batch::Batcher,
    pub metrics: Metrics,
}

impl<S: Store + 'static> Service<S> {
    pub fn new(store: S, mut settings: Settings) -> Arc<Service<S>> {
        settings
            .groups
            .entry("default".into())
            .or_insert(GroupSettings::slots(1));
        Arc::new(Service {
            semaphore: Semaphore::new(store),
            settings,
            batcher: batch::Batcher::default(),
            metrics: Metrics::default(),
        })
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Frees the slots of holders past their group's lease; returns the ids freed.
    pub async fn release_expired(
        self: &Arc<Self>,
        group: &GroupName,
        now_unix_seconds: u64,
    ) -> Result<Vec<String>, String> {
        let Some(lease) = self
            .settings
            .groups
            .get(group.as_str())
            .and_then(|settings| settings.lease)
        else {
            return Ok(Vec::new());
        };
        let op = Op::ReleaseExpired {
            lease_seconds: lease.as_secs(),
            now_unix_seconds,
        };
        let Outcome::Expired(expired) = self.submit(group, op).await? else {
            return Err("a release of expired holders gave another outcome".into());
        };
        for id in &expired {
            tracing::warn!(
                group = %group,
                id = %id,
                "freed the reboot slot of {id} in group {group}: held for longer than its {}-second lease",
                lease.as_secs()
            );
            self.metrics.expired(group.as_str());
        }
        Ok(expired)
    }

    /// Sweeps every group with a lease, forever; spawn it beside the server.
    pub async fn sweep_leases(self: Arc<Self>) {
        let Some(shortest) = self
            .settings
            .groups
            .values()
            .filter_map(|settings| settings.lease)
            .min()
        else {
            return;
        };
        let period = (shortest / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            for (name, settings) in &self.settings.groups {
                let Ok(group) = name.parse::<GroupName>() else {
                    continue;
                };
                if settings.lease.is_some() {
                    if let Err(e) = self.release_expired(&group, now()).await {
                        tracing::error!("lease sweep of group {group}: {e}");
                    }
                }
            }
        }
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

/// Why a request is refused: its status, error kind and description.
type Rejection = (StatusCode, &'static str, String);

fn bad(kind: &'static str, value: String) -> Rejection {
    (StatusCode::BAD_REQUEST, kind, value)
}

/// The token of an `Authorization: Bearer <token>` header.
fn bearer(headers: &HeaderMap) -> Option<&[u8]> {
    headers
        .get(header::AUTHORIZATION)?
        .as_bytes()
        .strip_prefix(b"Bearer ")
}

/// Compares secrets in time independent of where they differ.
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len()
        && given
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
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
    let settings = service.settings.groups.get(group.as_str()).ok_or_else(|| {
        bad(
            "unknown_group",
            format!("unknown group {:?}", group.as_str()),
        )
    })?;
    if let Some(token) = &settings.client_token {
        if !bearer(headers).is_some_and(|given| same_secret(given, token.as_bytes())) {
            return Err((
                StatusCode::UNAUTHORIZED,
                "invalid_client_token",
                format!("group {group} needs 'Authorization: Bearer <its client token>'"),
            ));
        }
    }
    Ok(Client {
        id,
        group,
        slots: settings.slots,
    })
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn rejected(service: &Service<impl Store>, endpoint: &str, rejection: Rejection) -> Response {
    let (status, kind, value) = rejection;
    service.metrics.request(endpoint, kind);
    json_error(status, kind, &value)
}

async fn pre_reboot<S: Store + 'static>(
    State(service): State<Arc<Service<S>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    const ENDPOINT: &str = "pre-reboot";
    let client = match check(&service, &headers, &body) {
        Ok(client) => client,
        Err(rejection) => return rejected(&service, ENDPOINT, rejection),
    };
    let lock = |client: &Client| Op::Lock {
        id: client.id.clone(),
        slots: client.slots,
        now_unix_seconds: now(),
    };
    let mut outcome = service.submit(&client.group, lock(&client)).await;
    if matches!(outcome, Ok(Outcome::Lock(LockOutcome::Full { .. }))) {
        // A silent holder past its lease gives way now rather than at the next sweep.
        let leased = service
            .settings
            .groups
            .get(client.group.as_str())
            .is_some_and(|group| group.lease.is_some());
        if leased {
            // Ask again whatever the sweep reports: a retried write to etcd may have freed
            // slots while reporting none.
            match service.release_expired(&client.group, now()).await {
                Ok(_) => outcome = service.submit(&client.group, lock(&client)).await,
                Err(e) => outcome = Err(e),
            }
        }
    }
    match outcome {
        Ok(Outcome::Lock(LockOutcome::Acquired | LockOutcome::AlreadyHeld)) => {
            service.metrics.request(ENDPOINT, "ok");
            ok()
        }
        Ok(Outcome::Lock(LockOutcome::Full { holders, slots })) => rejected(
            &service,
            ENDPOINT,
            (
                StatusCode::CONFLICT,
                "failed_lock_semaphore_full",
                format!(
                    "semaphore currently full: all {slots} slots are locked ({} holders)",
                    holders.len()
                ),
            ),
        ),
        Ok(other) => rejected(
            &service,
            ENDPOINT,
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "failed_lock",
                format!("unexpected outcome {other:?}"),
            ),
        ),
        Err(e) => rejected(
            &service,
            ENDPOINT,
            (StatusCode::INTERNAL_SERVER_ERROR, "failed_lock", e),
        ),
    }
}

async fn steady_state<S: Store + 'static>(
    State(service): State<Arc<Service<S>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    const ENDPOINT: &str = "steady-state";
    let client = match check(&service, &headers, &body) {
        Ok(client) => client,
        Err(rejection) => return rejected(&service, ENDPOINT, rejection),
    };
    let outcome = service
        .submit(&client.group, Op::Unlock { id: client.id })
        .await;
    match outcome {
        Ok(_) => {
            service.metrics.request(ENDPOINT, "ok");
            ok()
        }
        Err(e) => rejected(
            &service,
            ENDPOINT,
            (StatusCode::INTERNAL_SERVER_ERROR, "failed_unlock", e),
        ),
    }
}

async fn metrics_handler<S: Store + 'static>(State(service): State<Arc<Service<S>>>) -> Response {
    let groups = admin::group_reports(&service).await;
    cairn_http::metrics_response(service.metrics.render(&groups))
}

async fn not_found() -> Response {
    json_error(
        StatusCode::NOT_FOUND,
        "not_found",
        "POST /v1/pre-reboot or /v1/steady-state; GET /metrics; the admin API under /v1/admin/",
    )
}

pub fn router<S: Store + 'static>(service: Arc<Service<S>>) -> Router {
    Router::new()
        .route("/v1/pre-reboot", post(pre_reboot::<S>))
        .route("/v1/steady-state", post(steady_state::<S>))
        .route("/metrics", get(metrics_handler::<S>))
        .route("/v1/admin/groups", get(admin::list::<S>))
        .route(
            "/v1/admin/groups/{group}/holders/{id}",
            delete(admin::release::<S>),
        )
        .route("/v1/admin/groups/{group}/slots", put(admin::set_slots::<S>))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(service)
}

/// Serves FleetLock on `listener` until `shutdown` resolves, sweeping leases meanwhile.
pub async fn serve<S: Store + 'static>(
    listener: tokio::net::TcpListener,
    service: Arc<Service<S>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let sweeper = tokio::spawn(Arc::clone(&service).sweep_leases());
    let served = axum::serve(listener, router(service))
        .with_graceful_shutdown(shutdown)
        .await;
    sweeper.abort();
    served
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
