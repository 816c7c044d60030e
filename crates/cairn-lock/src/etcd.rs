//! The etcd v3 [`Store`]: Airlock's keys and values, spoken through etcd's JSON gRPC gateway.
//!
//! Layout, as coreos/airlock writes it (`internal/lock/lock.go`): one key per group,
//! `com.coreos.airlock/groups/<url.QueryEscape(group)>/v1/semaphore`, whose value is the
//! [`GroupState`] JSON (`{"total_slots": N, "holders": [ids]}`). Airlock and this store can
//! therefore take turns serving the same fleet from the same etcd.
//!
//! - The version of a group is its key's `mod_revision` (0 when absent). Revisions are global and
//!   never reused, even when a key is deleted and created again (the per-key `version` restarts at
//!   1, so a CAS on it could succeed against a different incarnation of the key). Airlock compares
//!   `version` instead; both change on every put, so each side's CAS fails when the other wrote
//!   in between.
//! - A compare-and-swap is one transaction: `if mod_revision(key) == expected then put` (for an
//!   absent key: `if create_revision(key) == 0`).
//! - Reads are linearizable (the default of etcd's range): a member cut off from the quorum
//!   answers with an error instead of stale state, and we move on to another endpoint.
//!
//! Why the gateway: etcd (3.4 and later) serves it on its client URL at `/v3/…`; HTTP/JSON through
//! reqwest needs no protobuf code generation, and the workspace already uses reqwest. The JSON is
//! proto3's mapping: bytes are base64, 64-bit integers are strings, and zero, false and empty
//! fields are left out, so every response field here is optional.
//!
//! TLS: `https://` endpoints, a CA file, and a client certificate for members started with
//! `--client-cert-auth`. Two limits of the gateway (not of this client) apply there: the gateway
//! reaches etcd's gRPC service with the member's own server certificate, which therefore needs
//! the clientAuth extended key usage too (etcd-io/etcd#9785); and it cannot map a client
//! certificate's Common Name to an etcd user, so with etcd authentication enabled, use a username
//! and password.
//!
//! The [`Store`] trait is synchronous; the store owns a small tokio runtime and blocks on it in
//! every call. Call it from plain threads or from `spawn_blocking`, never from async code directly
//! (tokio refuses to block inside a runtime worker).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use reqwest::StatusCode;
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};
use serde_json::json;

use crate::store::{GroupName, GroupState, Store, StoreError, Versioned};

/// Airlock's key prefix.
pub const DEFAULT_PREFIX: &str = "com.coreos.airlock/groups/";
/// What follows the group name in a key.
const KEY_SUFFIX: &str = "/v1/semaphore";

/// How many times every endpoint is tried before a call fails.
const ROUNDS: u32 = 5;
/// The pause before the second round; it doubles each round, up to [`MAX_BACKOFF`]. With 5 rounds
/// a call keeps trying for 1.5 s plus the attempts themselves: long enough for etcd to elect a
/// new leader with its default timings.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// The largest answer we read. A group's value is small; the largest answer is the key listing of
/// [`Store::groups`], about 100 bytes per group.
const MAX_RESPONSE_BYTES: usize = 8 << 20;

/// gRPC status codes that etcd's gateway puts in its error bodies.
const GRPC_DEADLINE_EXCEEDED: i32 = 4;
const GRPC_RESOURCE_EXHAUSTED: i32 = 8;
const GRPC_UNAVAILABLE: i32 = 14;
const GRPC_UNAUTHENTICATED: i32 = 16;

/// How to reach etcd.
#[derive(Clone)]
pub struct EtcdOptions {
    /// Client URLs of the members, `http://host:port` or `https://host:port`.
    pub endpoints: Vec<String>,
    /// Put before every key; Airlock's is [`DEFAULT_PREFIX`].
    pub prefix: String,
    /// PEM certificates of the CAs that sign the members' certificates (instead of the built-in
    /// web roots).
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate and key, for members that require client certificates.
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    /// etcd's own authentication (`etcdctl auth enable`).
    pub username: Option<String>,
    pub password: Option<String>,
    /// The longest one request to one endpoint may take, connection included.
    pub request_timeout: Duration,
}

impl Default for EtcdOptions {
    fn default() -> EtcdOptions {
        EtcdOptions {
            endpoints: vec!["http://127.0.0.1:2379".to_owned()],
            prefix: DEFAULT_PREFIX.to_owned(),
            ca_file: None,
            client_cert: None,
            client_key: None,
            username: None,
            password: None,
            request_timeout: Duration::from_secs(5),
        }
    }
}

impl fmt::Debug for EtcdOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdOptions")
            .field("endpoints", &self.endpoints)
            .field("prefix", &self.prefix)
            .field("ca_file", &self.ca_file)
            .field("client_cert", &self.client_cert)
            .field("client_key", &self.client_key)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "…"))
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

/// What went wrong talking to etcd; carried by [`StoreError::Backend`]. Each names the request
/// (with its key) and the endpoint.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    #[error("invalid etcd options: {0}")]
    Options(String),
    #[error("start the etcd client runtime")]
    Runtime(#[source] std::io::Error),
    #[error("set up the HTTP client for etcd")]
    Client(#[source] reqwest::Error),
    #[error("{request} at {endpoint}: no answer")]
    Transport {
        request: String,
        endpoint: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{request} at {endpoint}: no answer within {timeout:?}")]
    Timeout {
        request: String,
        endpoint: String,
        timeout: Duration,
    },
    #[error("{request} at {endpoint}: etcd answered HTTP {status}: {message}{hint}")]
    Refused {
        request: String,
        endpoint: String,
        status: u16,
        message: String,
        hint: &'static str,
    },
    #[error("{request} at {endpoint}: the answer is larger than {limit} bytes")]
    TooLarge {
        request: String,
        endpoint: String,
        limit: usize,
    },
    #[error("{request} at {endpoint}: unreadable answer: {detail}")]
    Protocol {
        request: String,
        endpoint: String,
        detail: String,
    },
    #[error("{request}: no etcd endpoint answered in {rounds} rounds (endpoints: {endpoints})")]
    Unavailable {
        request: String,
        endpoints: String,
        rounds: u32,
        #[source]
        last: Box<EtcdError>,
    },
}

impl From<EtcdError> for StoreError {
    fn from(error: EtcdError) -> StoreError {
        StoreError::Backend(Box::new(error))
    }
}

/// Groups in etcd, compatible with Airlock.
pub struct EtcdStore {
    /// `Some` until drop, which shuts it down without blocking (the store may be dropped in
    /// async code, where blocking on the runtime's shutdown would panic).
    runtime: Option<tokio::runtime::Runtime>,
    client: reqwest::Client,
    /// As configured, without a trailing `/`.
    endpoints: Vec<String>,
    /// The endpoint that answered last; calls start there.
    preferred: AtomicUsize,
    prefix: String,
    request_timeout: Duration,
    credentials: Option<Credentials>,
    /// The token of the last authentication, sent as the `Authorization` header.
    token: Mutex<Option<Arc<str>>>,
}

struct Credentials {
    username: String,
    /// The body of `/v3/auth/authenticate`, password included.
    request_body: Vec<u8>,
}

impl fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdStore")
            .field("endpoints", &self.endpoints)
            .field("current_endpoint", &self.current_endpoint())
            .field("prefix", &self.prefix)
            .field(
                "username",
                &self.credentials.as_ref().map(|c| c.username.as_str()),
            )
            .finish()
    }
}

impl EtcdStore {
    /// Set up the client and check that etcd answers and lets us read under the prefix, so that a
    /// wrong endpoint, certificate or password fails here rather than at the first lock.
    pub fn connect(options: EtcdOptions) -> Result<EtcdStore, StoreError> {
        let endpoints = parse_endpoints(&options.endpoints)?;
        if options.request_timeout.is_zero() {
            return Err(EtcdError::Options("the request timeout is zero".to_owned()).into());
        }
        let client = http_client(&options)?;
        let credentials = match (options.username, options.password) {
            (None, None) => None,
            (Some(username), Some(password)) => Some(Credentials {
                request_body: json!({"name": username, "password": password})
                    .to_string()
                    .into_bytes(),
                username,
            }),
            _ => {
                return Err(EtcdError::Options(
                    "a username needs a password and a password needs a username".to_owned(),
                )
                .into())
            }
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("cairn-etcd")
            .enable_all()
            .build()
            .map_err(EtcdError::Runtime)?;
        let store = EtcdStore {
            runtime: Some(runtime),
            client,
            endpoints,
            preferred: AtomicUsize::new(0),
            prefix: options.prefix,
            request_timeout: options.request_timeout,
            credentials,
            token: Mutex::new(None),
        };
        store.check_access()?;
        Ok(store)
    }

    /// The key of `group`.
    pub fn key(&self, group: &GroupName) -> String {
        group_key(&self.prefix, group)
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The endpoint the next call starts with: the one that answered last.
    pub fn current_endpoint(&self) -> &str {
        &self.endpoints[self.preferred.load(Ordering::Relaxed) % self.endpoints.len()]
    }

    fn check_access(&self) -> Result<(), StoreError> {
        let prefix = self.prefix.as_bytes();
        let body = json!({
            "key": BASE64.encode(prefix),
            "range_end": BASE64.encode(prefix_range_end(prefix)),
            "count_only": true,
        });
        let request = format!("check access to keys under {}", self.prefix);
        let _: (RangeResponse, usize) = self.call(&request, "/v3/kv/range", &body)?;
        Ok(())
    }

    /// One gateway call, with failover and retries, answered by the endpoint at the returned index.
    fn call<T: DeserializeOwned>(
        &self,
        request: &str,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<(T, usize), EtcdError> {
        let body = body.to_string().into_bytes();
        let runtime = self.runtime.as_ref().expect("the runtime lives until drop");
        runtime.block_on(self.call_with_failover(request, path, &body))
    }

    /// Tries every endpoint, starting with the one that answered last, for [`ROUNDS`] rounds.
    ///
    /// Retrying is safe for every request we send, including a compare-and-swap whose outcome we
    /// do not know (the connection broke or timed out after the request left): if it was applied,
    /// the key's `mod_revision` has moved, so the retry at the same expected version fails its
    /// compare and returns `Ok(None)`; the semaphore then re-reads, finds its own write, and
    /// answers from that (a lock reports `AlreadyHeld`, an unlock `NotHeld`). If it was not
    /// applied, at most one of the two lands, since both name the same revision. Either way the
    /// stored state is what one write would have made.
    async fn call_with_failover<T: DeserializeOwned>(
        &self,
        request: &str,
        path: &str,
        body: &[u8],
    ) -> Result<(T, usize), EtcdError> {
        let count = self.endpoints.len();
        let mut last_error = None;
        let mut backoff = FIRST_BACKOFF;
        for round in 0..ROUNDS {
            if round > 0 {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            let first = self.preferred.load(Ordering::Relaxed);
            for offset in 0..count {
                let index = (first + offset) % count;
                match self.call_endpoint(index, request, path, body).await {
                    Ok(answer) => {
                        self.preferred.store(index, Ordering::Relaxed);
                        return Ok((answer, index));
                    }
                    Err(Failure::Retry(error)) => last_error = Some(error),
                    Err(Failure::Fatal(error) | Failure::Unauthenticated(error)) => {
                        return Err(error)
                    }
                }
            }
        }
        match last_error {
            Some(last) => Err(EtcdError::Unavailable {
                request: request.to_owned(),
                endpoints: self.endpoints.join(", "),
                rounds: ROUNDS,
                last: Box::new(last),
            }),
            None => Err(EtcdError::Options("no endpoints".to_owned())),
        }
    }

    /// One call to one endpoint, authenticating first if needed, and once more if etcd says the
    /// token is no longer valid (tokens expire, by default after 5 idle minutes).
    async fn call_endpoint<T: DeserializeOwned>(
        &self,
        index: usize,
        request: &str,
        path: &str,
        body: &[u8],
    ) -> Result<T, Failure> {
        let mut authenticated_again = false;
        loop {
            let token = self.token(index).await?;
            match self
                .post(index, request, path, body, token.as_deref())
                .await
            {
                Ok(answer) => return parse_answer(&answer, request, &self.endpoints[index]),
                Err(Failure::Unauthenticated(error)) => {
                    let Some(token) = token else {
                        return Err(Failure::Fatal(error));
                    };
                    if authenticated_again {
                        return Err(Failure::Fatal(error));
                    }
                    self.forget_token(&token);
                    authenticated_again = true;
                }
                Err(other) => return Err(other),
            }
        }
    }

    /// The token to send, authenticating at endpoint `index` if there is none yet.
    async fn token(&self, index: usize) -> Result<Option<Arc<str>>, Failure> {
        let Some(credentials) = &self.credentials else {
            return Ok(None);
        };
        if let Some(token) = self.lock_token().clone() {
            return Ok(Some(token));
        }
        let request = format!("authenticate as {}", credentials.username);
        let answer = match self
            .post(
                index,
                &request,
                "/v3/auth/authenticate",
                &credentials.request_body,
                None,
            )
            .await
        {
            Ok(answer) => answer,
            Err(Failure::Unauthenticated(error)) => return Err(Failure::Fatal(error)),
            Err(other) => return Err(other),
        };
        let answer: AuthenticateResponse = parse_answer(&answer, &request, &self.endpoints[index])?;
        let token = answer.token.unwrap_or_default();
        if token.is_empty() || HeaderValue::from_str(&token).is_err() {
            return Err(Failure::Fatal(EtcdError::Protocol {
                request,
                endpoint: self.endpoints[index].clone(),
                detail: "no usable token".to_owned(),
            }));
        }
        let token: Arc<str> = token.into();
        *self.lock_token() = Some(token.clone());
        Ok(Some(token))
    }

    /// Drop `used` unless another thread has already replaced it.
    fn forget_token(&self, used: &Arc<str>) {
        let mut token = self.lock_token();
        if token.as_ref() == Some(used) {
            *token = None;
        }
    }

    fn lock_token(&self) -> std::sync::MutexGuard<'_, Option<Arc<str>>> {
        self.token.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// POST `body` to `path` at endpoint `index`: the answer's body if etcd accepted the request.
    async fn post(
        &self,
        index: usize,
        request: &str,
        path: &str,
        body: &[u8],
        token: Option<&str>,
    ) -> Result<Vec<u8>, Failure> {
        let endpoint = &self.endpoints[index];
        let attempt = async {
            let mut builder = self
                .client
                .post(format!("{endpoint}{path}"))
                .header(CONTENT_TYPE, "application/json")
                .body(body.to_vec());
            if let Some(token) = token {
                // Checked when the token was received.
                if let Ok(value) = HeaderValue::from_str(token) {
                    builder = builder.header(AUTHORIZATION, value);
                }
            }
            let response = builder.send().await.map_err(|source| {
                Failure::Retry(EtcdError::Transport {
                    request: request.to_owned(),
                    endpoint: endpoint.clone(),
                    source,
                })
            })?;
            let status = response.status();
            let answer = read_bounded(response, MAX_RESPONSE_BYTES)
                .await
                .map_err(|error| match error {
                    ReadError::TooLarge => Failure::Fatal(EtcdError::TooLarge {
                        request: request.to_owned(),
                        endpoint: endpoint.clone(),
                        limit: MAX_RESPONSE_BYTES,
                    }),
                    ReadError::Transport(source) => Failure::Retry(EtcdError::Transport {
                        request: request.to_owned(),
                        endpoint: endpoint.clone(),
                        source,
                    }),
                })?;
            if status.is_success() {
                Ok(answer)
            } else {
                Err(classify_refusal(status, &answer, request, endpoint))
            }
        };
        match tokio::time::timeout(self.request_timeout, attempt).await {
            Ok(result) => result,
            Err(_elapsed) => Err(Failure::Retry(EtcdError::Timeout {
                request: request.to_owned(),
                endpoint: endpoint.clone(),
                timeout: self.request_timeout,
            })),
        }
    }
}

impl Drop for EtcdStore {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Store for EtcdStore {
    fn get(&self, group: &GroupName) -> Result<Versioned, StoreError> {
        let key = self.key(group);
        let request = format!("read key {key}");
        let body = json!({ "key": BASE64.encode(&key) });
        let (answer, index): (RangeResponse, usize) = self.call(&request, "/v3/kv/range", &body)?;
        let endpoint = &self.endpoints[index];
        let protocol_error = |detail: &str| EtcdError::Protocol {
            request: request.clone(),
            endpoint: endpoint.clone(),
            detail: detail.to_owned(),
        };
        let Some(kv) = answer.kvs.unwrap_or_default().into_iter().next() else {
            return Ok(Versioned::default());
        };
        if decode_base64(kv.key.as_deref()).as_deref() != Some(key.as_bytes()) {
            return Err(protocol_error("a different key than the one asked for").into());
        }
        let version = u64::try_from(kv.mod_revision)
            .ok()
            .filter(|&revision| revision > 0)
            .ok_or_else(|| protocol_error("a key without a positive mod_revision"))?;
        let value = decode_base64(kv.value.as_deref())
            .ok_or_else(|| protocol_error("a value that is not base64"))?;
        let state = serde_json::from_slice(&value).map_err(|source| StoreError::CorruptValue {
            key,
            endpoint: endpoint.clone(),
            source,
        })?;
        Ok(Versioned { state, version })
    }

    fn compare_and_swap(
        &self,
        group: &GroupName,
        expected_version: u64,
        new: &GroupState,
    ) -> Result<Option<u64>, StoreError> {
        // Revisions are positive int64s: no key is at a larger one.
        let Ok(expected_revision) = i64::try_from(expected_version) else {
            return Ok(None);
        };
        let key = self.key(group);
        let request = format!("compare-and-swap key {key}");
        let value = serde_json::to_vec(new).map_err(|error| StoreError::Backend(error.into()))?;
        let encoded_key = BASE64.encode(&key);
        let compare = if expected_revision == 0 {
            // Absent: never created (or deleted since).
            json!({"key": encoded_key, "target": "CREATE", "result": "EQUAL", "create_revision": "0"})
        } else {
            json!({
                "key": encoded_key,
                "target": "MOD",
                "result": "EQUAL",
                "mod_revision": expected_revision.to_string(),
            })
        };
        let body = json!({
            "compare": [compare],
            "success": [{"request_put": {"key": encoded_key, "value": BASE64.encode(value)}}],
        });
        let (answer, index): (TxnResponse, usize) = self.call(&request, "/v3/kv/txn", &body)?;
        if !answer.succeeded.unwrap_or(false) {
            return Ok(None);
        }
        // The put's revision is the key's new mod_revision; the transaction's header has the
        // same revision, which an answer without the put's own header falls back to.
        let put_revision = answer
            .responses
            .unwrap_or_default()
            .into_iter()
            .find_map(|response| response.response_put?.header)
            .map(|header| header.revision);
        let revision = put_revision
            .or(answer.header.map(|header| header.revision))
            .and_then(|revision| u64::try_from(revision).ok())
            .filter(|&revision| revision > 0);
        match revision {
            Some(revision) => Ok(Some(revision)),
            None => Err(EtcdError::Protocol {
                request,
                endpoint: self.endpoints[index].clone(),
                detail: "a successful transaction without a revision".to_owned(),
            }
            .into()),
        }
    }

    fn groups(&self) -> Result<Vec<GroupName>, StoreError> {
        let prefix = self.prefix.as_bytes();
        let request = format!("list keys under {}", self.prefix);
        let body = json!({
            "key": BASE64.encode(prefix),
            "range_end": BASE64.encode(prefix_range_end(prefix)),
            "keys_only": true,
        });
        let (answer, _): (RangeResponse, usize) = self.call(&request, "/v3/kv/range", &body)?;
        let mut groups: Vec<GroupName> = answer
            .kvs
            .unwrap_or_default()
            .into_iter()
            .filter_map(|kv| {
                let key = String::from_utf8(decode_base64(kv.key.as_deref())?).ok()?;
                group_of_key(&self.prefix, &key)
            })
            .collect();
        // etcd sorts by key bytes, where `a.b/…` comes before `a/…`.
        groups.sort();
        groups.dedup();
        Ok(groups)
    }
}

/// The key of `group` under `prefix`. Airlock escapes the group with Go's `url.QueryEscape`;
/// for a valid [`GroupName`] (`[a-zA-Z0-9.-]`) that is the identity, so there is nothing to escape.
fn group_key(prefix: &str, group: &GroupName) -> String {
    format!("{prefix}{group}{KEY_SUFFIX}")
}

/// The group whose key `key` is, if it is one: keys of other shapes under the prefix (and groups
/// that Airlock escaped, which are not valid names) are not ours to list.
fn group_of_key(prefix: &str, key: &str) -> Option<GroupName> {
    key.strip_prefix(prefix)?
        .strip_suffix(KEY_SUFFIX)?
        .parse()
        .ok()
}

/// The end of etcd's range of every key starting with `prefix` (exclusive): the prefix with its
/// last byte below 0xff incremented and what follows dropped; `\0` (to the end) if there is none.
fn prefix_range_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

fn decode_base64(text: Option<&str>) -> Option<Vec<u8>> {
    BASE64.decode(text.unwrap_or_default()).ok()
}

fn parse_endpoints(endpoints: &[String]) -> Result<Vec<String>, EtcdError> {
    if endpoints.is_empty() {
        return Err(EtcdError::Options("no endpoints".to_owned()));
    }
    endpoints
        .iter()
        .map(|endpoint| {
            let invalid = |why: &str| EtcdError::Options(format!("endpoint {endpoint:?}: {why}"));
            let url = reqwest::Url::parse(endpoint).map_err(|error| invalid(&error.to_string()))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(invalid("expected an http:// or https:// URL"));
            }
            if url.host().is_none() || url.path() != "/" || url.query().is_some() {
                return Err(invalid("expected scheme, host and port only"));
            }
            Ok(endpoint.trim_end_matches('/').to_owned())
        })
        .collect()
}

fn http_client(options: &EtcdOptions) -> Result<reqwest::Client, StoreError> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(options.request_timeout)
        .user_agent(concat!("cairn-lock/", env!("CARGO_PKG_VERSION")));
    if let Some(ca_file) = &options.ca_file {
        let pem = read_file("read the etcd CA certificates", ca_file)?;
        let certificates = reqwest::Certificate::from_pem_bundle(&pem).map_err(|error| {
            EtcdError::Options(format!("CA file {}: {error}", ca_file.display()))
        })?;
        if certificates.is_empty() {
            return Err(EtcdError::Options(format!(
                "CA file {}: no certificates",
                ca_file.display()
            ))
            .into());
        }
        builder = builder.tls_built_in_root_certs(false);
        for certificate in certificates {
            builder = builder.add_root_certificate(certificate);
        }
    }
    match (&options.client_cert, &options.client_key) {
        (None, None) => {}
        (Some(cert), Some(key)) => {
            let mut pem = read_file("read the etcd client certificate", cert)?;
            pem.push(b'\n');
            pem.extend(read_file("read the etcd client key", key)?);
            let identity = reqwest::Identity::from_pem(&pem).map_err(|error| {
                EtcdError::Options(format!(
                    "client certificate {} and key {}: {error}",
                    cert.display(),
                    key.display()
                ))
            })?;
            builder = builder.identity(identity);
        }
        _ => {
            return Err(EtcdError::Options(
                "a client certificate needs a client key and a key needs a certificate".to_owned(),
            )
            .into())
        }
    }
    Ok(builder.build().map_err(EtcdError::Client)?)
}

fn read_file(action: &'static str, path: &Path) -> Result<Vec<u8>, StoreError> {
    std::fs::read(path).map_err(|source| StoreError::Io {
        action,
        path: path.to_owned(),
        source,
    })
}

/// How an attempt failed, which decides what happens next.
#[derive(Debug)]
enum Failure {
    /// The endpoint is down, slow, or without a leader: try the next one.
    Retry(EtcdError),
    /// etcd does not accept our token: authenticate again, once.
    Unauthenticated(EtcdError),
    /// Another endpoint would answer the same.
    Fatal(EtcdError),
}

enum ReadError {
    TooLarge,
    Transport(reqwest::Error),
}

/// The body of `response`, if it is at most `limit` bytes.
async fn read_bounded(mut response: reqwest::Response, limit: usize) -> Result<Vec<u8>, ReadError> {
    if response
        .content_length()
        .is_some_and(|length| length > limit as u64)
    {
        return Err(ReadError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(ReadError::Transport)? {
        if body.len() + chunk.len() > limit {
            return Err(ReadError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// What a non-2xx answer means for the next attempt.
fn classify_refusal(status: StatusCode, body: &[u8], request: &str, endpoint: &str) -> Failure {
    // The gateway answers errors as {"error": …, "message": …, "code": <gRPC code>}.
    let answer: Option<GatewayError> = serde_json::from_slice(body).ok();
    let code = answer.as_ref().and_then(|answer| answer.code);
    let message = match answer {
        Some(GatewayError {
            message: Some(message),
            ..
        })
        | Some(GatewayError {
            error: Some(message),
            ..
        }) => message,
        _ => {
            let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
            let text = text.trim();
            if text.is_empty() {
                "(no message)".to_owned()
            } else {
                text.to_owned()
            }
        }
    };
    let unauthenticated = status == StatusCode::UNAUTHORIZED
        || code == Some(GRPC_UNAUTHENTICATED)
        // After a change of users or roles; clients are expected to authenticate again.
        || message.contains("revision of auth store is old");
    let transient = status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || matches!(
            code,
            Some(GRPC_UNAVAILABLE | GRPC_DEADLINE_EXCEEDED | GRPC_RESOURCE_EXHAUSTED)
        );
    let hint = if message.contains("user name is empty") {
        " (hint: etcd has authentication enabled: configure a username and password)"
    } else if message.contains("authentication is not enabled") {
        " (hint: etcd has authentication disabled: configure no username and password)"
    } else if message.contains("invalid user ID or password") {
        " (hint: check the username and password)"
    } else if message.contains("permission denied") {
        " (hint: the user's role needs read and write access to the key prefix)"
    } else if message.contains("client preface") || message.contains("bad certificate") {
        // etcd's gateway dials etcd's own gRPC port with the server certificate as its client
        // certificate (etcd-io/etcd#9785).
        " (hint: with --client-cert-auth, etcd's server certificate also needs the clientAuth extended key usage)"
    } else if status == StatusCode::NOT_FOUND {
        " (hint: is this the client URL of etcd 3.4 or later, which serves the JSON gateway at /v3/?)"
    } else {
        ""
    };
    let error = EtcdError::Refused {
        request: request.to_owned(),
        endpoint: endpoint.to_owned(),
        status: status.as_u16(),
        message,
        hint,
    };
    if unauthenticated {
        Failure::Unauthenticated(error)
    } else if transient {
        Failure::Retry(error)
    } else {
        Failure::Fatal(error)
    }
}

fn parse_answer<T: DeserializeOwned>(
    answer: &[u8],
    request: &str,
    endpoint: &str,
) -> Result<T, Failure> {
    serde_json::from_slice(answer).map_err(|error| {
        Failure::Fatal(EtcdError::Protocol {
            request: request.to_owned(),
            endpoint: endpoint.to_owned(),
            detail: error.to_string(),
        })
    })
}

// The gateway's answers (etcd `etcdserverpb`, proto3 JSON mapping). Unknown fields are ignored.

#[derive(Deserialize)]
struct ResponseHeader {
    #[serde(default, deserialize_with = "proto_int64")]
    revision: i64,
}

#[derive(Deserialize)]
struct KeyValue {
    key: Option<String>,
    #[serde(default, deserialize_with = "proto_int64")]
    mod_revision: i64,
    value: Option<String>,
}

#[derive(Deserialize)]
struct RangeResponse {
    kvs: Option<Vec<KeyValue>>,
}

#[derive(Deserialize)]
struct TxnResponse {
    header: Option<ResponseHeader>,
    succeeded: Option<bool>,
    responses: Option<Vec<ResponseOp>>,
}

#[derive(Deserialize)]
struct ResponseOp {
    response_put: Option<PutResponse>,
}

#[derive(Deserialize)]
struct PutResponse {
    header: Option<ResponseHeader>,
}

#[derive(Deserialize)]
struct AuthenticateResponse {
    token: Option<String>,
}

#[derive(Deserialize)]
struct GatewayError {
    error: Option<String>,
    message: Option<String>,
    code: Option<i32>,
}

/// proto3 JSON writes int64 as a string, but accepts (and some proxies write) numbers.
fn proto_int64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Int64 {
        Number(i64),
        Text(String),
    }
    match Option::<Int64>::deserialize(deserializer)? {
        None => Ok(0),
        Some(Int64::Number(number)) => Ok(number),
        Some(Int64::Text(text)) => text.parse().map_err(D::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_airlock() {
        let group: GroupName = "web-1.eu".parse().unwrap();
        assert_eq!(
            group_key(DEFAULT_PREFIX, &group),
            "com.coreos.airlock/groups/web-1.eu/v1/semaphore"
        );
        assert_eq!(
            group_of_key(
                DEFAULT_PREFIX,
                "com.coreos.airlock/groups/web-1.eu/v1/semaphore"
            ),
            Some(group)
        );
        for other in [
            "com.coreos.airlock/groups/a%2Fb/v1/semaphore",
            "com.coreos.airlock/groups/a/b/v1/semaphore",
            "com.coreos.airlock/groups//v1/semaphore",
            "com.coreos.airlock/groups/a/v2/semaphore",
            "com.coreos.airlock/other/a/v1/semaphore",
        ] {
            assert_eq!(group_of_key(DEFAULT_PREFIX, other), None, "{other}");
        }
    }

    #[test]
    fn prefix_ranges() {
        assert_eq!(prefix_range_end(b"a/"), b"a0");
        assert_eq!(prefix_range_end(b"a\xff"), b"b");
        assert_eq!(prefix_range_end(b"\xff\xff"), b"\0");
        assert_eq!(prefix_range_end(b""), b"\0");
    }

    #[test]
    fn reads_proto3_json_with_fields_left_out() {
        // A failed transaction: no `succeeded`, no `responses`.
        let failed: TxnResponse =
            serde_json::from_str(r#"{"header":{"cluster_id":"1","revision":"7"}}"#).unwrap();
        assert_eq!(failed.succeeded, None);
        assert!(failed.responses.is_none());
        let done: TxnResponse = serde_json::from_str(
            r#"{"header":{"revision":"8"},"succeeded":true,
                "responses":[{"response_put":{"header":{"revision":"8"}}}]}"#,
        )
        .unwrap();
        assert_eq!(done.succeeded, Some(true));
        let empty: RangeResponse = serde_json::from_str(r#"{"header":{"revision":"1"}}"#).unwrap();
        assert!(empty.kvs.is_none());
        let kv: KeyValue = serde_json::from_str(r#"{"key":"YQ==","mod_revision":12}"#).unwrap();
        assert_eq!((kv.mod_revision, kv.value), (12, None));
        assert!(serde_json::from_str::<KeyValue>(r#"{"mod_revision":"x"}"#).is_err());
    }

    #[test]
    fn refusals_decide_the_next_attempt() {
        let classify = |status: u16, body: &str| {
            classify_refusal(
                StatusCode::from_u16(status).unwrap(),
                body.as_bytes(),
                "read key k",
                "http://e:2379",
            )
        };
        let unavailable =
            r#"{"error":"etcdserver: no leader","message":"etcdserver: no leader","code":14}"#;
        assert!(matches!(classify(503, unavailable), Failure::Retry(_)));
        assert!(matches!(classify(502, "<html>"), Failure::Retry(_)));
        let expired = r#"{"error":"etcdserver: invalid auth token","code":16}"#;
        assert!(matches!(
            classify(401, expired),
            Failure::Unauthenticated(_)
        ));
        let no_user = r#"{"message":"etcdserver: user name is empty","code":3}"#;
        let Failure::Fatal(error) = classify(400, no_user) else {
            panic!("a missing user is final");
        };
        let message = error.to_string();
        assert!(message.contains("http://e:2379"), "{message}");
        assert!(message.contains("read key k"), "{message}");
        assert!(message.contains("configure a username"), "{message}");
        assert!(matches!(classify(404, ""), Failure::Fatal(_)));
    }

    #[test]
    fn endpoints_are_urls() {
        assert_eq!(
            parse_endpoints(&["http://127.0.0.1:2379/".to_owned()]).unwrap(),
            ["http://127.0.0.1:2379"]
        );
        for bad in ["127.0.0.1:2379", "unix:///run/etcd", "http://e:2379/v3", ""] {
            assert!(parse_endpoints(&[bad.to_owned()]).is_err(), "{bad}");
        }
        assert!(parse_endpoints(&[]).is_err());
    }

    #[test]
    fn options_never_show_the_password() {
        let options = EtcdOptions {
            password: Some("hunter2".to_owned()),
            ..EtcdOptions::default()
        };
        assert!(!format!("{options:?}").contains("hunter2"));
    }
}
