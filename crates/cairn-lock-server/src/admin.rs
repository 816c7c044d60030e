//! The admin API, behind `Authorization: Bearer <admin token>` (off when no token is set):
//!
//! - `GET /v1/admin/groups`: every group, its slots and holders with since-when;
//! - `DELETE /v1/admin/groups/{group}/holders/{id}`: free the slot `id` holds;
//! - `PUT /v1/admin/groups/{group}/slots` with `{"slots": N}` (or `null` to go back to the
//!   configured number): set the slots of a group, kept in the store.
//!
//! Answers are JSON; errors are `{"kind", "value"}` as everywhere else.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use cairn_http::json_error;
use cairn_lock::{GroupName, GroupState, Op, Outcome, Store, UnlockOutcome};
use serde::{Deserialize, Serialize};

use crate::{bearer, same_secret, Service};

/// One group as the admin API and the metrics show it.
#[derive(Debug, Serialize, Deserialize)]
pub struct GroupReport {
    pub group: String,
    /// Slots in force.
    pub slots: u64,
    /// Slots in the configuration (`None`: a group in the store that is not configured).
    pub configured_slots: Option<u64>,
    /// Slots set through the admin API, winning over the configuration.
    pub slots_override: Option<u64>,
    pub lease_seconds: Option<u64>,
    pub client_token: bool,
    pub holders: Vec<Holder>,
    /// Why the group could not be read, if it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Holder {
    pub id: String,
    /// When the holder took its slot, seconds since the Unix epoch (unknown for holders
    /// written by Airlock).
    pub since: Option<u64>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct GroupsReport {
    pub groups: Vec<GroupReport>,
}

fn json(status: StatusCode, value: &impl Serialize) -> Response {
    let mut response = Response::new(Body::from(serde_json::to_vec(value).unwrap_or_default()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// `None` when the request carries the admin token, else the answer refusing it.
fn refuse<S>(service: &Service<S>, headers: &HeaderMap) -> Option<Response> {
    let Some(token) = &service.settings.admin_token else {
        return Some(json_error(
            StatusCode::FORBIDDEN,
            "admin_disabled",
            "the admin API is off: configure admin_token_file",
        ));
    };
    if bearer(headers).is_some_and(|given| same_secret(given, token.as_bytes())) {
        return None;
    }
    let mut response = json_error(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "the admin API needs 'Authorization: Bearer <admin token>'",
    );
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    Some(response)
}

fn report<S>(service: &Service<S>, group: &str, state: Result<GroupState, String>) -> GroupReport {
    let settings = service.settings.groups.get(group);
    let configured_slots = settings.map(|settings| settings.slots);
    let (state, error) = match state {
        Ok(state) => (state, None),
        Err(e) => (GroupState::default(), Some(e)),
    };
    GroupReport {
        group: group.to_string(),
        slots: state.slots(configured_slots.unwrap_or(state.total_slots)),
        configured_slots,
        slots_override: state.slots_override,
        lease_seconds: settings.and_then(|s| s.lease).map(|lease| lease.as_secs()),
        client_token: settings.is_some_and(|s| s.client_token.is_some()),
        holders: state
            .holders
            .iter()
            .map(|id| Holder {
                id: id.clone(),
                since: state.leases.get(id).copied(),
            })
            .collect(),
        error,
    }
}

/// Every configured group and every group in the store, read now.
pub(crate) async fn group_reports<S: Store + 'static>(
    service: &Arc<Service<S>>,
) -> Vec<GroupReport> {
    let service = Arc::clone(service);
    let read = move || {
        let store = service.semaphore.store();
        let mut names: Vec<String> = service.settings.groups.keys().cloned().collect();
        let stored = store.groups().map_err(|e| cairn_lock::error_chain(&e));
        if let Ok(stored) = &stored {
            names.extend(stored.iter().map(|g| g.as_str().to_string()));
        }
        names.sort();
        names.dedup();
        let mut reports: Vec<GroupReport> = names
            .iter()
            .map(|name| {
                let state = match name.parse::<GroupName>() {
                    Ok(group) => store
                        .get(&group)
                        .and_then(|versioned| {
                            store.durability(&group, versioned.version)?.wait()?;
                            Ok(versioned.state)
                        })
                        .map_err(|e| cairn_lock::error_chain(&e)),
                    Err(e) => Err(e.to_string()),
                };
                report(&service, name, state)
            })
            .collect();
        if let Err(e) = stored {
            for report in &mut reports {
                report.error.get_or_insert(e.clone());
            }
        }
        reports
    };
    tokio::task::spawn_blocking(read).await.unwrap_or_default()
}

pub(crate) async fn list<S: Store + 'static>(
    State(service): State<Arc<Service<S>>>,
    headers: HeaderMap,
) -> Response {
    if let Some(refusal) = refuse(&service, &headers) {
        return refusal;
    }
    let groups = group_reports(&service).await;
    json(StatusCode::OK, &GroupsReport { groups })
}

#[allow(clippy::result_large_err)] // the refusal is the handler's answer, returned at once
fn group_param(name: &str) -> Result<GroupName, Response> {
    name.parse().map_err(|e: cairn_lock::InvalidGroupName| {
        json_error(StatusCode::BAD_REQUEST, "invalid_group", &e.to_string())
    })
}

pub(crate) async fn release<S: Store + 'static>(
    State(service): State<Arc<Service<S>>>,
    Path((group, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Some(refusal) = refuse(&service, &headers) {
        return refusal;
    }
    let group = match group_param(&group) {
        Ok(group) => group,
        Err(response) => return response,
    };
    let outcome = service.submit(&group, Op::Unlock { id: id.clone() }).await;
    match outcome {
        Ok(outcome) => {
            let released = outcome == Outcome::Unlock(UnlockOutcome::Released);
            if released {
                tracing::warn!("admin freed the reboot slot of {id} in group {group}");
            }
            json(
                StatusCode::OK,
                &serde_json::json!({"group": group.as_str(), "id": id, "released": released}),
            )
        }
        Err(e) => json_error(StatusCode::INTERNAL_SERVER_ERROR, "failed_unlock", &e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SlotsRequest {
    slots: Option<u64>,
}

pub(crate) async fn set_slots<S: Store + 'static>(
    State(service): State<Arc<Service<S>>>,
    Path(group): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(refusal) = refuse(&service, &headers) {
        return refusal;
    }
    let group = match group_param(&group) {
        Ok(group) => group,
        Err(response) => return response,
    };
    let Some(configured) = service.settings.groups.get(group.as_str()).map(|s| s.slots) else {
        return json_error(
            StatusCode::NOT_FOUND,
            "unknown_group",
            &format!(
                "unknown group {:?}: groups come from the configuration",
                group.as_str()
            ),
        );
    };
    let request: SlotsRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                &format!("expected {{\"slots\": N}} or {{\"slots\": null}}: {e}"),
            )
        }
    };
    if request.slots == Some(0) {
        return json_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "slots must be at least 1: with 0, no machine could ever reboot",
        );
    }
    let op = Op::SetSlots {
        slots: request.slots,
        configured,
    };
    match service.submit(&group, op).await {
        Ok(_) => {
            tracing::warn!(
                "admin set the slots of group {group} to {}",
                request
                    .slots
                    .map_or(format!("the configured {configured}"), |n| n.to_string())
            );
            let mut reports = group_reports(&service).await;
            reports.retain(|report| report.group == group.as_str());
            match reports.pop() {
                Some(report) => json(StatusCode::OK, &report),
                None => json_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "failed_read",
                    "group vanished",
                ),
            }
        }
        Err(e) => json_error(StatusCode::INTERNAL_SERVER_ERROR, "failed_write", &e),
    }
}
