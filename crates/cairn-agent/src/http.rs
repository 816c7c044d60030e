//! The agent's network ports: the update graph (Cincinnati's `GET /v1/graph`, as Zincati asks
//! it) and FleetLock (`POST /v1/pre-reboot`, `/v1/steady-state`, as Zincati sends them).
//!
//! Each client owns a small current-thread runtime and blocks on it: the state machine is
//! synchronous and runs on its own thread. Answers are bounded in size and every failure is an
//! error string for the machine to report and back off on; nothing here panics on a bad answer.

use std::time::Duration;

use cairn_graph::Graph;

use crate::machine::{GraphClient, LockClient};

/// The largest graph answer read (Fedora CoreOS's stable graph is about 0.3 MB).
const MAX_GRAPH_BYTES: usize = 32 << 20;
/// The largest FleetLock answer read.
const MAX_LOCK_BYTES: usize = 64 << 10;

fn runtime_and_client(
    timeout: Duration,
) -> Result<(tokio::runtime::Runtime, reqwest::Client), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("start an HTTP runtime: {e}"))?;
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .user_agent(concat!("cairn-agent/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("build an HTTP client: {e}"))?;
    Ok((runtime, client))
}

/// Reads a body up to `limit` bytes.
async fn bounded_body(
    mut response: reqwest::Response,
    limit: usize,
    url: &str,
) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("{url}: read the answer: {e}"))?
    {
        if body.len() + chunk.len() > limit {
            return Err(format!("{url}: the answer is larger than {limit} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// What the agent tells the graph service about itself, as Zincati does.
#[derive(Debug, Clone)]
pub struct GraphQuery {
    pub basearch: String,
    pub stream: String,
    /// The configured wariness; without it, the service derives one from `node_uuid`.
    pub rollout_wariness: Option<f64>,
    pub node_uuid: String,
    pub group: String,
    pub os_version: String,
    pub os_checksum: String,
}

pub struct HttpGraph {
    runtime: tokio::runtime::Runtime,
    client: reqwest::Client,
    url: String,
}

impl HttpGraph {
    pub fn new(base_url: &str, query: &GraphQuery, timeout: Duration) -> Result<HttpGraph, String> {
        let (runtime, client) = runtime_and_client(timeout)?;
        let mut url = reqwest::Url::parse(&format!("{}/v1/graph", base_url.trim_end_matches('/')))
            .map_err(|e| format!("cincinnati.base_url {base_url:?}: {e}"))?;
        {
            let mut pairs = url.query_pairs_mut();
            pairs.append_pair("basearch", &query.basearch);
            pairs.append_pair("stream", &query.stream);
            if let Some(wariness) = query.rollout_wariness {
                pairs.append_pair("rollout_wariness", &wariness.to_string());
            }
            pairs.append_pair("node_uuid", &query.node_uuid);
            pairs.append_pair("group", &query.group);
            pairs.append_pair("os_version", &query.os_version);
            pairs.append_pair("os_checksum", &query.os_checksum);
            pairs.append_pair("platform", "metal");
        }
        Ok(HttpGraph {
            runtime,
            client,
            url: url.to_string(),
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

impl GraphClient for HttpGraph {
    fn graph(&mut self) -> Result<Graph, String> {
        let url = self.url.clone();
        let request = self
            .client
            .get(&url)
            .header(reqwest::header::ACCEPT, "application/json");
        self.runtime.block_on(async move {
            let response = request
                .send()
                .await
                .map_err(|e| format!("GET {url}: {e}"))?;
            let status = response.status();
            let body = bounded_body(response, MAX_GRAPH_BYTES, &url).await?;
            if !status.is_success() {
                return Err(format!(
                    "GET {url}: {status}: {}",
                    String::from_utf8_lossy(&body[..body.len().min(300)])
                ));
            }
            let graph: Graph = serde_json::from_slice(&body)
                .map_err(|e| format!("GET {url}: not an update graph: {e}"))?;
            // Edges must name nodes: a graph that does not hold together is refused whole.
            let nodes = graph.nodes.len() as u64;
            if let Some(edge) = graph.edges.iter().find(|(a, b)| *a >= nodes || *b >= nodes) {
                return Err(format!(
                    "GET {url}: edge {edge:?} names a node outside the {nodes} nodes"
                ));
            }
            Ok(graph)
        })
    }
}

/// FleetLock for one machine: its id and group, and the group's client token if it has one.
pub struct HttpLock {
    runtime: tokio::runtime::Runtime,
    client: reqwest::Client,
    base_url: String,
    body: String,
    token: Option<String>,
}

impl HttpLock {
    pub fn new(
        base_url: &str,
        id: &str,
        group: &str,
        token: Option<String>,
        timeout: Duration,
    ) -> Result<HttpLock, String> {
        let (runtime, client) = runtime_and_client(timeout)?;
        reqwest::Url::parse(base_url)
            .map_err(|e| format!("updates.fleet_lock.base_url {base_url:?}: {e}"))?;
        Ok(HttpLock {
            runtime,
            client,
            base_url: base_url.trim_end_matches('/').to_string(),
            body: serde_json::json!({"client_params": {"id": id, "group": group}}).to_string(),
            token,
        })
    }

    /// `Ok(None)` on 200; `Ok(Some(why))` when the group is full; an error otherwise.
    fn post(&mut self, endpoint: &str) -> Result<Option<String>, String> {
        let url = format!("{}/v1/{endpoint}", self.base_url);
        let mut request = self
            .client
            .post(&url)
            .header("fleet-lock-protocol", "true")
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(self.body.clone());
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        self.runtime.block_on(async move {
            let response = request
                .send()
                .await
                .map_err(|e| format!("POST {url}: {e}"))?;
            let status = response.status();
            if status == reqwest::StatusCode::OK {
                return Ok(None);
            }
            let body = bounded_body(response, MAX_LOCK_BYTES, &url).await?;
            let error: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let kind = error["kind"].as_str().unwrap_or_default();
            let value = error["value"].as_str().map_or_else(
                || String::from_utf8_lossy(&body).into_owned(),
                str::to_string,
            );
            if kind == "failed_lock_semaphore_full" {
                return Ok(Some(value));
            }
            Err(format!("POST {url}: {status} {kind}: {value}"))
        })
    }
}

impl LockClient for HttpLock {
    fn pre_reboot(&mut self) -> Result<Option<String>, String> {
        self.post("pre-reboot")
    }

    fn steady_state(&mut self) -> Result<(), String> {
        match self.post("steady-state")? {
            None => Ok(()),
            Some(why) => Err(format!("steady-state refused: {why}")),
        }
    }
}
