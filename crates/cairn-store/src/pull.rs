//! Pulling from an OSTree archive repository over HTTP (or `file://`).
//!
//! The walk is ostree's: resolve refs (summary, else `refs/heads/`), fetch the commit and
//! its detached metadata, verify signatures before anything else, mark the commit partial,
//! then fetch dirtrees and dirmetas first and content after, many requests in flight over
//! pooled connections. Every object is re-hashed before it is staged; staged objects are
//! published in batches, so an interrupted pull keeps what it verified and a rerun fetches
//! only what is missing. Refs move last.

use std::collections::{HashSet, VecDeque};
use std::fs;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use crate::commit::Transaction;
use crate::error_chain;
use crate::keyfile::KeyFile;
use crate::object::{Checksum, Commit, DirTree, ObjectType};
use crate::remote::Remote;
use crate::repo::{
    decode_filez, validate_ref_name, write_file_atomic, Error, Repo, RepoMode, Result,
};
use crate::sign;

#[derive(Clone, Debug)]
pub struct PullOptions {
    /// Refs to pull; empty means every ref in the remote's summary.
    pub refs: Vec<String>,
    /// Parents to pull as well: 0 none, -1 the whole history.
    pub depth: i64,
    /// Fetch commit objects only, leaving them partial.
    pub commit_metadata_only: bool,
    /// Requests in flight at once.
    pub max_in_flight: usize,
    /// Time allowed for one request (connect, headers and body).
    pub timeout: Duration,
    /// Retries of one request after a network error or a 5xx answer.
    pub retries: u32,
    /// Skip signature verification even where the remote asks for it (`--no-sign-verify`).
    pub no_sign_verify: bool,
    /// Show a progress line on stderr when it is a terminal.
    pub progress: bool,
    /// Never use static deltas (ostree `--disable-static-deltas`).
    pub disable_static_deltas: bool,
    /// Pull this commit for the (single) ref instead of the one the remote names, and point
    /// the ref at it: ostree's `override-commit-ids`, as rpm-ostree uses it to deploy the
    /// exact release an update graph chose. The commit is verified as any other (also when it
    /// is already in the repository).
    pub override_commit: Option<Checksum>,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            refs: vec![],
            depth: 0,
            commit_metadata_only: false,
            max_in_flight: 32,
            timeout: Duration::from_secs(60),
            retries: 5,
            no_sign_verify: false,
            progress: true,
            disable_static_deltas: false,
            override_commit: None,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct PullReport {
    pub refs: Vec<(String, Checksum)>,
    pub requests: u64,
    pub objects_fetched: u64,
    pub bytes_fetched: u64,
    /// Objects the walk needed that the repository already had.
    pub objects_present: u64,
    /// Static deltas applied, as `FROM-TO` or `TO` names.
    pub deltas: Vec<String>,
    pub seconds: f64,
}

struct Http {
    client: reqwest::Client,
    base: String,
    retries: u32,
    requests: AtomicU64,
    bytes: AtomicU64,
}

impl Http {
    /// GETs `rel` under the remote URL. `Ok(None)` for a 404 when `optional`.
    async fn get(&self, rel: &str, optional: bool) -> Result<Option<bytes::Bytes>> {
        let url = format!("{}{rel}", self.base);
        if let Some(path) = url.strip_prefix("file://") {
            self.requests.fetch_add(1, Ordering::Relaxed);
            return match tokio::fs::read(path).await {
                Ok(data) => {
                    self.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
                    Ok(Some(data.into()))
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && optional => Ok(None),
                Err(e) => Err(Error::Fetch {
                    url,
                    reason: e.to_string(),
                }),
            };
        }
        let mut delay = Duration::from_millis(200);
        let mut attempt = 0;
        loop {
            self.requests.fetch_add(1, Ordering::Relaxed);
            let reason = match self.client.get(&url).send().await {
                Ok(resp) => {
                    let status = resp.status();
                    if status == reqwest::StatusCode::NOT_FOUND && optional {
                        return Ok(None);
                    }
                    if status.is_success() {
                        let limit = size_limit(rel);
                        if resp.content_length().is_some_and(|n| n > limit) {
                            return Err(Error::Fetch {
                                url,
                                reason: format!(
                                    "response larger than the {limit}-byte limit for this file"
                                ),
                            });
                        }
                        match read_limited(resp, limit).await {
                            Ok(Some(body)) => {
                                self.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
                                return Ok(Some(body));
                            }
                            Ok(None) => {
                                return Err(Error::Fetch {
                                    url,
                                    reason: format!(
                                        "response larger than the {limit}-byte limit for this file"
                                    ),
                                });
                            }
                            Err(e) => format!("reading the body: {}", error_chain(&e)),
                        }
                    } else if status.is_server_error()
                        || status == reqwest::StatusCode::TOO_MANY_REQUESTS
                        || status == reqwest::StatusCode::REQUEST_TIMEOUT
                    {
                        format!("HTTP {status}")
                    } else {
                        return Err(Error::Fetch {
                            url,
                            reason: format!("HTTP {status}"),
                        });
                    }
                }
                Err(e) => error_chain(&e),
            };
            attempt += 1;
            if attempt > self.retries {
                return Err(Error::Fetch {
                    url,
                    reason: format!("{reason} (gave up after {attempt} attempts)"),
                });
            }
            tracing::debug!(%url, %reason, attempt, "retrying");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }
}

/// The most a remote may send for a file: ostree's 10 MiB for metadata (commits, trees,
/// summaries, superblocks, refs); more for content objects and delta parts, which are
/// still held in memory to be verified before they are stored.
fn size_limit(rel: &str) -> u64 {
    const METADATA: u64 = 10 << 20;
    if rel.ends_with(".filez") {
        8 << 30
    } else if rel.starts_with("deltas/") && !rel.ends_with("/superblock") {
        2 << 30
    } else {
        METADATA
    }
}

/// Reads a body, giving up (`Ok(None)`) as soon as it passes `limit` bytes.
async fn read_limited(
    mut resp: reqwest::Response,
    limit: u64,
) -> reqwest::Result<Option<bytes::Bytes>> {
    let mut body =
        bytes::BytesMut::with_capacity(resp.content_length().unwrap_or(0).min(limit) as usize);
    while let Some(chunk) = resp.chunk().await? {
        if (body.len() + chunk.len()) as u64 > limit {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body.freeze()))
}

/// What a fetch task hands back: verified bytes, ready to stage.
enum Fetched {
    /// A verified, staged dirtree, whose children the walk still needs.
    DirTree(DirTree),
    /// Verified and already staged by the fetch task.
    Stored,
}

fn object_rel(checksum: &Checksum, kind: ObjectType) -> String {
    let (prefix, rest) = checksum.loose_prefix_and_rest();
    format!("objects/{prefix}/{rest}.{}", kind.extension(true))
}

async fn fetch_verified(
    http: Arc<Http>,
    checksum: Checksum,
    kind: ObjectType,
    archive_target: bool,
    store: Arc<Transaction>,
) -> Result<Fetched> {
    let body = http
        .get(&object_rel(&checksum, kind), false)
        .await?
        .ok_or(Error::MissingObject { checksum, kind })?;
    let url = format!("{}{}", http.base, object_rel(&checksum, kind));
    tokio::task::spawn_blocking(move || -> Result<Fetched> {
        match kind {
            ObjectType::File => {
                let content = decode_filez(&checksum, &body)?;
                let actual = content.checksum();
                if actual != checksum {
                    return Err(Error::Corrupt {
                        checksum,
                        kind,
                        what: format!("served by {url}, hashes to {actual}; not stored"),
                    });
                }
                if archive_target {
                    store.write_raw_content(&checksum, &body)?;
                } else {
                    store.write_content(
                        &checksum,
                        &content.meta,
                        &content.symlink_target,
                        &content.data,
                        1,
                    )?;
                }
                Ok(Fetched::Stored)
            }
            _ => {
                let actual = Checksum::of(&body);
                if actual != checksum {
                    return Err(Error::Corrupt {
                        checksum,
                        kind,
                        what: format!("served by {url}, hashes to {actual}; not stored"),
                    });
                }
                let tree = if kind == ObjectType::DirTree {
                    Some(DirTree::parse(&checksum, &body)?)
                } else {
                    crate::object::parse_dirmeta(&checksum, &body)?;
                    None
                };
                store.write_metadata(kind, &body)?;
                Ok(match tree {
                    Some(tree) => Fetched::DirTree(tree),
                    None => Fetched::Stored,
                })
            }
        }
    })
    .await
    .map_err(|e| Error::Invalid(format!("verification task failed: {e}")))?
}

fn partial_marker(repo: &Repo, commit: &Checksum) -> std::path::PathBuf {
    repo.path()
        .join("state")
        .join(format!("{commit}.commitpartial"))
}

fn any_partial(repo: &Repo) -> bool {
    fs::read_dir(repo.path().join("state"))
        .map(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_string_lossy().ends_with(".commitpartial"))
        })
        .unwrap_or(false)
}

impl Repo {
    /// Whether a commit's tree may be incomplete (an interrupted or metadata-only pull).
    pub fn is_commit_partial(&self, commit: &Checksum) -> bool {
        partial_marker(self, commit).exists()
    }
}

/// Pulls `options.refs` from `remote` into `repo`. Refs land under `refs/remotes/NAME/`
/// for a named remote, under `refs/heads/` for a bare URL.
pub fn pull(repo: &Repo, remote: &Remote, options: &PullOptions) -> Result<PullReport> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::Invalid(format!("start the async runtime: {e}")))?;
    runtime.block_on(pull_async(repo, remote, options))
}

async fn pull_async(repo: &Repo, remote: &Remote, options: &PullOptions) -> Result<PullReport> {
    let started = Instant::now();
    let client = reqwest::Client::builder()
        .timeout(options.timeout)
        .connect_timeout(options.timeout.min(Duration::from_secs(30)))
        .pool_max_idle_per_host(options.max_in_flight)
        .user_agent(concat!("cairn/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| Error::Invalid(format!("HTTP client: {e}")))?;
    let mut base = remote.url.clone();
    if !base.ends_with('/') {
        base.push('/');
    }
    let http = Arc::new(Http {
        client,
        base,
        retries: options.retries,
        requests: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
    });

    // The remote must be an archive repository: that is what OSTree serves over HTTP.
    let config = http.get("config", false).await?.unwrap_or_default();
    let config = KeyFile::parse(&String::from_utf8_lossy(&config))
        .map_err(|e| Error::Invalid(format!("remote config at {}config: {e}", http.base)))?;
    match config.get("core", "mode") {
        Some("archive-z2") | Some("archive") => {}
        other => {
            return Err(Error::Unsupported(format!(
                "remote {} is not an archive repository (mode {other:?})",
                http.base
            )))
        }
    }

    let ed25519_keys =
        if (remote.sign_verify || remote.sign_verify_summary) && !options.no_sign_verify {
            let mut texts = remote.ed25519_keys.clone();
            if let Some(file) = &remote.ed25519_key_file {
                texts.extend(sign::read_key_lines(file)?);
            }
            Some(
                texts
                    .iter()
                    .map(|t| sign::parse_public_key(t))
                    .collect::<Result<Vec<_>>>()?,
            )
        } else {
            None
        };
    let keyring = if (remote.gpg_verify || remote.gpg_verify_summary) && !options.no_sign_verify {
        let mut paths = remote.gpg_key_paths.clone();
        let imported = repo.path().join(format!("{}.trustedkeys.gpg", remote.name));
        if !remote.name.is_empty() && imported.exists() {
            paths.push(imported);
        }
        Some(crate::gpg::Keyring::load(&paths)?)
    } else {
        None
    };
    let summary_keyring = keyring.as_ref().filter(|_| remote.gpg_verify_summary);
    let keyring = keyring.as_ref().filter(|_| remote.gpg_verify);
    let verifier = Verifier {
        ed25519: ed25519_keys.as_deref().filter(|_| remote.sign_verify),
        gpg: keyring,
    };

    let (targets, summary) = resolve_refs(
        &http,
        remote,
        options,
        ed25519_keys.as_deref(),
        summary_keyring,
    )
    .await?;
    let tx = Arc::new(Transaction::begin(repo)?);
    let mut deltas_used = Vec::new();
    let mut delta_objects = 0u64;
    // Deltas are for machines (bare repositories), as in ostree; mirrors pull objects.
    if repo.mode() != RepoMode::Archive
        && !options.commit_metadata_only
        && !options.disable_static_deltas
    {
        let announced = summary
            .as_deref()
            .map(crate::summary::parse_summary_deltas)
            .unwrap_or_default();
        for (name, to) in &targets {
            if repo.has_object(to, ObjectType::Commit) && !repo.is_commit_partial(to) {
                continue;
            }
            let local = if remote.name.is_empty() {
                name.clone()
            } else {
                format!("{}:{name}", remote.name)
            };
            let from = repo
                .read_ref(&local)?
                .filter(|c| repo.has_object(c, ObjectType::Commit) && !repo.is_commit_partial(c));
            let mut listed = announced.clone();
            if listed.is_empty() {
                if let Some(index) = http.get(&crate::delta::index_path(to), true).await? {
                    if let Ok(entries) = sign::parse_detached(&index) {
                        if let Some((_, v)) =
                            entries.iter().find(|(k, _)| k == "ostree.static-deltas")
                        {
                            listed = crate::delta::parse_deltas_dict(v);
                        }
                    }
                }
            }
            let chosen = listed
                .iter()
                .find(|(f, t, _)| t == to && f.is_some() && *f == from)
                .or_else(|| {
                    listed
                        .iter()
                        .find(|(f, t, _)| t == to && f.is_none() && from.is_none())
                })
                .cloned();
            if let Some((from, to, digest)) = chosen {
                let result = apply_delta(repo, &tx, &http, from, to, digest, &verifier).await;
                match result {
                    Ok(n) => {
                        delta_objects += n;
                        deltas_used.push(crate::delta::delta_name(from.as_ref(), &to));
                    }
                    Err(e) => {
                        let _ = tx.flush();
                        return Err(e);
                    }
                }
            }
        }
        tx.flush()?;
    }
    let result = walk(repo, &tx, &http, &targets, options, &verifier).await;
    // Whatever was verified is kept, even on failure: a rerun fetches only the rest.
    let flushed = tx.publish();
    let (mut objects_fetched, objects_present, complete_commits) = result?;
    objects_fetched += delta_objects;
    flushed?;
    for commit in &complete_commits {
        let _ = fs::remove_file(partial_marker(repo, commit));
    }
    let mut refs = Vec::new();
    for (name, checksum) in &targets {
        let local = if remote.name.is_empty() {
            name.clone()
        } else {
            format!("{}:{name}", remote.name)
        };
        repo.write_ref(&local, checksum)?;
        refs.push((name.clone(), *checksum));
    }
    Ok(PullReport {
        refs,
        requests: http.requests.load(Ordering::Relaxed),
        objects_fetched,
        bytes_fetched: http.bytes.load(Ordering::Relaxed),
        objects_present,
        deltas: deltas_used,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Resolves the refs to pull, from the summary or from `refs/heads/`; returns the summary too.
async fn resolve_refs(
    http: &Http,
    remote: &Remote,
    options: &PullOptions,
    ed25519_keys: Option<&[ed25519_dalek::VerifyingKey]>,
    summary_keyring: Option<&crate::gpg::Keyring>,
) -> Result<(Vec<(String, Checksum)>, Option<bytes::Bytes>)> {
    let summary = http.get("summary", true).await?;
    if let (Some(keyring), false) = (summary_keyring, options.no_sign_verify) {
        // gpg-verify-summary: the summary must exist and carry a signature by a trusted key.
        let summary = summary.as_ref().ok_or_else(|| {
            Error::Invalid(format!(
                "{}summary is missing (gpg-verify-summary is on)",
                http.base
            ))
        })?;
        let sig = http.get("summary.sig", true).await?.ok_or_else(|| {
            Error::Invalid(format!(
                "{}summary is not signed (gpg-verify-summary is on)",
                http.base
            ))
        })?;
        let detached = sign::parse_detached(&sig)?;
        if !sign::signatures(&detached, sign::GPG_KEY)
            .iter()
            .any(|s| keyring.verifies(s, summary))
        {
            return Err(Error::Invalid(format!(
                "{}summary.sig: no GPG signature by a trusted key",
                http.base
            )));
        }
    }
    if remote.sign_verify_summary && ed25519_keys.is_some() && summary.is_none() {
        return Err(Error::Invalid(format!(
            "{}summary is missing (sign-verify-summary is on)",
            http.base
        )));
    }
    if let Some(summary) = &summary {
        if remote.sign_verify_summary {
            if let Some(keys) = ed25519_keys {
                if keys.is_empty() {
                    return Err(Error::Invalid(
                        "sign-verify-summary is on but no ed25519 public key is configured".into(),
                    ));
                }
                let sig = http.get("summary.sig", true).await?.ok_or_else(|| {
                    Error::Invalid(format!(
                        "{}summary is not signed (sign-verify-summary is on)",
                        http.base
                    ))
                })?;
                let detached = sign::parse_detached(&sig)?;
                if !sign::verify_ed25519(&detached, keys, summary) {
                    return Err(Error::Invalid(format!(
                        "{}summary.sig: no valid ed25519 signature for a trusted key",
                        http.base
                    )));
                }
            }
        }
    }
    let listed = match &summary {
        Some(bytes) => Some(crate::summary::parse_summary_refs(bytes)?),
        None => None,
    };
    let wanted: Vec<String> = if options.refs.is_empty() {
        match &listed {
            Some(refs) => refs.iter().map(|(n, _)| n.clone()).collect(),
            None => {
                return Err(Error::Invalid(format!(
                    "{} has no summary: name the refs to pull",
                    http.base
                )))
            }
        }
    } else {
        options.refs.clone()
    };
    let mut out = Vec::new();
    for name in wanted {
        validate_ref_name(&name)?;
        let checksum = match listed
            .as_ref()
            .and_then(|l| l.iter().find(|(n, _)| *n == name))
        {
            Some((_, c)) => *c,
            None => {
                let body = http
                    .get(&format!("refs/heads/{name}"), true)
                    .await?
                    .ok_or_else(|| Error::RefNotFound(format!("{name} (on {})", http.base)))?;
                let text = String::from_utf8_lossy(&body);
                text.trim_end().parse::<Checksum>().map_err(|_| {
                    Error::Invalid(format!(
                        "{}refs/heads/{name} does not hold a checksum",
                        http.base
                    ))
                })?
            }
        };
        out.push((name, checksum));
    }
    if let Some(commit) = options.override_commit {
        if out.len() != 1 {
            return Err(Error::Invalid(format!(
                "a commit to pull ({commit}) needs exactly one ref, not {}",
                out.len()
            )));
        }
        out[0].1 = commit;
    }
    Ok((out, summary))
}

/// Fetches and applies the static delta `from → to`: superblock (checked against the
/// announced digest), signatures over the embedded commit, fallbacks, then each part
/// (checked against its header before it is decompressed). Returns the objects written.
async fn apply_delta(
    repo: &Repo,
    tx: &Arc<Transaction>,
    http: &Arc<Http>,
    from: Option<Checksum>,
    to: Checksum,
    digest: Checksum,
    verifier: &Verifier<'_>,
) -> Result<u64> {
    let dir = crate::delta::delta_dir(from.as_ref(), &to);
    let superblock = http
        .get(&format!("{dir}/superblock"), false)
        .await?
        .ok_or_else(|| Error::Invalid(format!("{}{dir}/superblock: missing", http.base)))?;
    if Checksum::of(&superblock) != digest {
        return Err(Error::Invalid(format!(
            "{}{dir}/superblock: hashes to {}, the summary says {digest}",
            http.base,
            Checksum::of(&superblock)
        )));
    }
    let sb = crate::delta::parse_superblock(&superblock, from.as_ref(), &to)?;
    let detached = match &sb.detached {
        Some(d) => sign::parse_detached(d)?,
        None => vec![],
    };
    if let Some(keys) = verifier.ed25519 {
        sign::check_ed25519(&to, &detached, keys, &sb.commit_bytes)?;
    }
    if let Some(keyring) = verifier.gpg {
        crate::gpg::check_gpg(&to, &detached, keyring, &sb.commit_bytes)?;
    }
    write_file_atomic(&partial_marker(repo, &to), b"", true)?;
    tx.write_metadata(ObjectType::Commit, &sb.commit_bytes)?;
    if let Some(d) = &sb.detached {
        tx.write_commitmeta(&to, d)?;
    }
    let mut written = 1u64;
    for fallback in &sb.fallbacks {
        if repo.has_object(fallback, ObjectType::File) {
            continue;
        }
        // Fallbacks are plain content objects, fetched and staged like any other.
        fetch_verified(http.clone(), *fallback, ObjectType::File, false, tx.clone()).await?;
        written += 1;
    }
    for (i, (checksum, size, objects)) in sb.parts.iter().enumerate() {
        if objects.iter().all(|(k, c)| repo.has_object(c, *k)) {
            continue;
        }
        let rel = format!("{dir}/{i}");
        let data = http
            .get(&rel, false)
            .await?
            .ok_or_else(|| Error::Invalid(format!("{}{rel}: missing", http.base)))?;
        if data.len() as u64 > *size {
            return Err(Error::Invalid(format!(
                "{}{rel}: {} bytes, the superblock says {size}",
                http.base,
                data.len()
            )));
        }
        if Checksum::of(&data) != *checksum {
            return Err(Error::Invalid(format!(
                "{}{rel}: hashes to {}, the superblock says {checksum}",
                http.base,
                Checksum::of(&data)
            )));
        }
        written +=
            crate::delta::apply_part(repo, tx, &data, objects, &format!("{}{rel}", http.base))?;
    }
    Ok(written)
}

type WalkOutcome = (u64, u64, Vec<Checksum>);

/// What a pulled commit must be signed with, when the remote asks for it.
struct Verifier<'a> {
    ed25519: Option<&'a [ed25519_dalek::VerifyingKey]>,
    gpg: Option<&'a crate::gpg::Keyring>,
}

async fn walk(
    repo: &Repo,
    tx: &Arc<Transaction>,
    http: &Arc<Http>,
    targets: &[(String, Checksum)],
    options: &PullOptions,
    verifier: &Verifier<'_>,
) -> Result<WalkOutcome> {
    let archive_target = repo.mode() == RepoMode::Archive;
    // Without partial commits from earlier pulls, a dirtree already present has its whole
    // subtree present too, and need not be walked again.
    let trust_present = !any_partial(repo);
    let mut fetched = 0u64;
    let mut present = 0u64;
    let mut roots = Vec::new();
    let mut seen_commits = HashSet::new();
    let mut complete = Vec::new();

    // Commits first, each verified before any of its tree is fetched.
    for (_, head) in targets {
        let mut next = Some((*head, options.depth));
        while let Some((checksum, depth)) = next.take() {
            if !seen_commits.insert(checksum) {
                break;
            }
            let have = repo.has_object(&checksum, ObjectType::Commit);
            let commit = if have {
                present += 1;
                if checksum == *head {
                    // A ref is about to point here: a commit that reached the repository
                    // some other way (a local commit, another remote, an unverified pull)
                    // must pass this remote's signature checks as if it had been fetched.
                    let data = repo.read_metadata(&checksum, ObjectType::Commit)?;
                    let detached = repo.read_detached_metadata(&checksum)?;
                    if let Some(keys) = verifier.ed25519 {
                        sign::check_ed25519(&checksum, &detached, keys, &data)?;
                    }
                    if let Some(keyring) = verifier.gpg {
                        crate::gpg::check_gpg(&checksum, &detached, keyring, &data)?;
                    }
                }
                repo.read_commit(&checksum)?
            } else {
                let meta = http
                    .get(&object_rel(&checksum, ObjectType::CommitMeta), true)
                    .await?;
                let data = http
                    .get(&object_rel(&checksum, ObjectType::Commit), false)
                    .await?
                    .ok_or(Error::MissingObject {
                        checksum,
                        kind: ObjectType::Commit,
                    })?;
                if Checksum::of(&data) != checksum {
                    return Err(Error::Corrupt {
                        checksum,
                        kind: ObjectType::Commit,
                        what: format!(
                            "served by {}, hashes to {}; not stored",
                            http.base,
                            Checksum::of(&data)
                        ),
                    });
                }
                let commit = Commit::parse(&checksum, &data)?;
                let detached = match &meta {
                    Some(m) => sign::parse_detached(m)?,
                    None => vec![],
                };
                if let Some(keys) = verifier.ed25519 {
                    sign::check_ed25519(&checksum, &detached, keys, &data)?;
                }
                if let Some(keyring) = verifier.gpg {
                    crate::gpg::check_gpg(&checksum, &detached, keyring, &data)?;
                }
                write_file_atomic(&partial_marker(repo, &checksum), b"", true)?;
                tx.write_metadata(ObjectType::Commit, &data)?;
                if let Some(m) = &meta {
                    tx.write_commitmeta(&checksum, m)?;
                }
                fetched += 1 + u64::from(meta.is_some());
                commit
            };
            if !have || repo.is_commit_partial(&checksum) {
                if options.commit_metadata_only {
                    write_file_atomic(&partial_marker(repo, &checksum), b"", true)?;
                } else {
                    roots.push((commit.root_tree, commit.root_meta));
                    complete.push(checksum);
                }
            }
            if depth != 0 {
                next = commit.parent.map(|p| (p, depth - 1));
            }
        }
    }

    let mut queued: HashSet<(Checksum, ObjectType)> = HashSet::new();
    let mut meta_queue: VecDeque<(Checksum, ObjectType)> = VecDeque::new();
    let mut file_queue: VecDeque<Checksum> = VecDeque::new();
    let mut enqueue_dir = |repo: &Repo,
                           tree: Checksum,
                           meta: Checksum,
                           meta_queue: &mut VecDeque<(Checksum, ObjectType)>,
                           present: &mut u64|
     -> Result<Option<DirTree>> {
        if queued.insert((meta, ObjectType::DirMeta)) {
            if repo.has_object(&meta, ObjectType::DirMeta) {
                *present += 1;
            } else {
                meta_queue.push_back((meta, ObjectType::DirMeta));
            }
        }
        if !queued.insert((tree, ObjectType::DirTree)) {
            return Ok(None);
        }
        if repo.has_object(&tree, ObjectType::DirTree) {
            *present += 1;
            if trust_present {
                return Ok(None);
            }
            // Present, but its children may not be (a partial commit): walk it locally.
            return Ok(Some(repo.read_dirtree(&tree)?));
        }
        meta_queue.push_back((tree, ObjectType::DirTree));
        Ok(None)
    };
    let mut local_trees: VecDeque<DirTree> = VecDeque::new();
    for (tree, meta) in roots {
        if let Some(t) = enqueue_dir(repo, tree, meta, &mut meta_queue, &mut present)? {
            local_trees.push_back(t);
        }
    }

    let progress = Progress::new(options.progress);
    let mut in_flight: JoinSet<Result<Fetched>> = JoinSet::new();
    let mut since_flush = 0u32;
    let mut last_flush = Instant::now();
    let mut file_seen: HashSet<Checksum> = HashSet::new();
    let mut first_error: Option<Error> = None;
    loop {
        while let Some(tree) = local_trees.pop_front() {
            for (_, c) in &tree.files {
                if file_seen.insert(*c) {
                    if repo.has_object(c, ObjectType::File) {
                        present += 1;
                    } else {
                        file_queue.push_back(*c);
                    }
                }
            }
            for (_, t, m) in &tree.dirs {
                if let Some(sub) = enqueue_dir(repo, *t, *m, &mut meta_queue, &mut present)? {
                    local_trees.push_back(sub);
                }
            }
        }
        // After the first failure nothing new starts; what is in flight still lands, so
        // that every object already verified is kept for the next attempt.
        while first_error.is_none() && in_flight.len() < options.max_in_flight.max(1) {
            let (checksum, kind) = if let Some(next) = meta_queue.pop_front() {
                next
            } else if let Some(c) = file_queue.pop_front() {
                (c, ObjectType::File)
            } else {
                break;
            };
            in_flight.spawn(fetch_verified(
                http.clone(),
                checksum,
                kind,
                archive_target,
                tx.clone(),
            ));
        }
        let Some(joined) = in_flight.join_next().await else {
            break;
        };
        let fetched_object = match joined
            .map_err(|e| Error::Invalid(format!("fetch task failed: {e}")))
            .and_then(|r| r)
        {
            Ok(f) => f,
            Err(e) => {
                first_error.get_or_insert(e);
                continue;
            }
        };
        fetched += 1;
        match fetched_object {
            // The task has staged it; a dirtree's children still need walking.
            Fetched::DirTree(tree) => local_trees.push_back(tree),
            Fetched::Stored => {}
        }
        since_flush += 1;
        if since_flush >= 4096 || last_flush.elapsed() > Duration::from_secs(5) {
            tx.flush()?;
            since_flush = 0;
            last_flush = Instant::now();
        }
        progress.update(
            fetched,
            (meta_queue.len() + file_queue.len() + in_flight.len()) as u64,
            http.bytes.load(Ordering::Relaxed),
        );
    }
    progress.finish();
    if let Some(e) = first_error {
        return Err(e);
    }
    Ok((fetched, present, complete))
}

/// A one-line progress display on stderr: objects, bytes, rate, what is left.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    started: Instant,
}

impl Progress {
    fn new(wanted: bool) -> Progress {
        let bar = (wanted && std::io::stderr().is_terminal()).then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Progress {
            bar,
            started: Instant::now(),
        }
    }

    fn update(&self, done: u64, left: u64, bytes: u64) {
        if let Some(bar) = &self.bar {
            let secs = self.started.elapsed().as_secs_f64().max(0.001);
            let rate = done as f64 / secs;
            let eta = if rate > 0.0 { left as f64 / rate } else { 0.0 };
            bar.set_message(format!(
                "{done} objects, {:.1} MB, {:.1} MB/s, {left} queued, ETA {eta:.0}s",
                bytes as f64 / 1e6,
                bytes as f64 / 1e6 / secs
            ));
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
