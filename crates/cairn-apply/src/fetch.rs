//! Resolving a config's resources into bytes, before anything in the root changes: `data:`
//! URLs decoded, `http(s)://` fetched (Ignition's timeouts, retries with backoff, the
//! config's headers, proxies and extra CAs, a size bound), `gzip` undone, and
//! `verification.hash` checked on the decompressed content, as Ignition checks it.

use std::borrow::Cow;
use std::time::Duration;

use base64::Engine as _;
use cairn_ignition::{Proxy, Resource};
use cairn_store::error_chain;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use sha2::{Digest, Sha256, Sha512};

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("resource has no source")]
    NoSource,
    #[error("invalid data: URL: {0}")]
    DataUrl(String),
    #[error("fetch {url}: {reason}")]
    Http { url: String, reason: String },
    #[error("unsupported URL scheme in {0} (cairn fetches data:, http: and https:)")]
    Scheme(String),
    #[error("{url}: larger than the limit of {limit} bytes")]
    TooLarge { url: String, limit: u64 },
    #[error("decompress {url}: {reason}")]
    Decompress { url: String, reason: String },
    #[error("{url}: hash mismatch: expected {expected}, got {actual}")]
    HashMismatch {
        url: String,
        expected: String,
        actual: String,
    },
    #[error("{url}: unsupported verification hash {function:?}")]
    HashFunction { function: String, url: String },
    #[error("CA bundle: {0}")]
    CertificateAuthority(String),
}

#[derive(Clone, Debug)]
pub struct FetchOptions {
    /// Time allowed for one fetch, retries and body included (Ignition's
    /// `timeouts.httpTotal`, which defaults to none).
    pub total_timeout: Option<Duration>,
    /// Time allowed per attempt until the response headers arrive (Ignition's
    /// `timeouts.httpResponseHeaders`, 10 s by default).
    pub response_headers_timeout: Option<Duration>,
    /// Attempts after the first, with doubling backoff from `backoff` (at most 5 s, as
    /// Ignition). Ignition retries until `httpTotal` runs out; cairn also stops after these.
    pub retries: u32,
    pub backoff: Duration,
    /// Largest resource accepted, compressed or not.
    pub max_size: u64,
    /// PEM bundles trusted besides the built-in roots (`ignition.security.tls`).
    pub certificate_authorities: Vec<Vec<u8>>,
    /// `ignition.proxy`. Only these proxies are used, never the environment's, as in
    /// Ignition; loopback addresses are never proxied (Go's `httpproxy` rule).
    pub proxy: Proxy,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            total_timeout: None,
            response_headers_timeout: Some(Duration::from_secs(10)),
            retries: 4,
            backoff: Duration::from_millis(200),
            max_size: 1 << 30,
            certificate_authorities: Vec::new(),
            proxy: Proxy::default(),
        }
    }
}

const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Ignition's dial timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// What Ignition sends with every HTTP fetch; a config's own headers replace these.
const ACCEPT: &str = "application/vnd.coreos.ignition+json;version=3.6.0, */*;q=0.1";

/// The URL scheme, lowercased as Go's `url.Parse` does (`""` when there is none).
pub fn scheme(url: &str) -> String {
    match url.split_once(':') {
        Some((scheme, _))
            if scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')) =>
        {
            scheme.to_ascii_lowercase()
        }
        _ => String::new(),
    }
}

/// Whether fetching `url` goes over the network (and so may need verifying).
pub fn is_remote(url: &str) -> bool {
    matches!(scheme(url).as_str(), "http" | "https")
}

/// `url` as error messages show it: a `data:` URL is inline content, possibly secret, so it
/// is named by its length (Ignition likewise never logs one).
pub fn display_url(url: &str) -> String {
    if scheme(url) == "data" {
        format!("data: URL ({} characters)", url.len())
    } else {
        url.to_owned()
    }
}

/// The certificates of a PEM bundle; one without any is an error, as in Ignition.
pub fn certificates(bundle: &[u8]) -> Result<Vec<reqwest::Certificate>, FetchError> {
    let certificates = reqwest::Certificate::from_pem_bundle(bundle)
        .map_err(|e| FetchError::CertificateAuthority(e.to_string()))?;
    if certificates.is_empty() {
        return Err(FetchError::CertificateAuthority(
            "no PEM certificate in it".into(),
        ));
    }
    Ok(certificates)
}

/// The payload of a `data:` URL (percent-encoded or `;base64`).
pub fn decode_data_url(url: &str) -> Result<Vec<u8>, FetchError> {
    let rest = url
        .get(..5)
        .filter(|prefix| prefix.eq_ignore_ascii_case("data:"))
        .map(|_| &url[5..])
        .ok_or_else(|| FetchError::DataUrl("missing data: prefix".into()))?;
    let (meta, payload) = rest
        .split_once(',')
        .ok_or_else(|| FetchError::DataUrl("missing comma before the data".into()))?;
    // Percent-decoding and whitespace removal copy the payload; most payloads need neither.
    let raw: Cow<[u8]> = percent_encoding::percent_decode_str(payload).into();
    if meta.split(';').any(|p| p.eq_ignore_ascii_case("base64")) {
        let text: Cow<[u8]> = if raw.iter().any(u8::is_ascii_whitespace) {
            raw.iter()
                .copied()
                .filter(|b| !b.is_ascii_whitespace())
                .collect::<Vec<u8>>()
                .into()
        } else {
            raw
        };
        base64::engine::general_purpose::STANDARD
            .decode(&text)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(&text))
            .map_err(|e| FetchError::DataUrl(format!("bad base64: {e}")))
    } else {
        Ok(raw.into_owned())
    }
}

fn http_client(options: &FetchOptions) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(CONNECT_TIMEOUT)
        .user_agent(concat!("cairn/", env!("CARGO_PKG_VERSION")));
    for bundle in &options.certificate_authorities {
        for certificate in certificates(bundle).map_err(|e| e.to_string())? {
            builder = builder.add_root_certificate(certificate);
        }
    }
    let proxy = &options.proxy;
    let mut no_proxy = proxy.no_proxy.clone();
    no_proxy.extend(["localhost", "127.0.0.0/8", "::1"].map(String::from));
    let no_proxy = reqwest::NoProxy::from_string(&no_proxy.join(","));
    type MakeProxy = fn(&str) -> reqwest::Result<reqwest::Proxy>;
    let schemes: [(&Option<String>, MakeProxy); 2] = [
        (&proxy.http_proxy, |url| reqwest::Proxy::http(url)),
        (&proxy.https_proxy, |url| reqwest::Proxy::https(url)),
    ];
    for (url, make) in schemes {
        if let Some(url) = url.as_deref().filter(|u| !u.is_empty()) {
            let proxy = make(url).map_err(|e| format!("proxy {url}: {e}"))?;
            builder = builder.proxy(proxy.no_proxy(no_proxy.clone()));
        }
    }
    builder.build().map_err(|e| e.to_string())
}

fn request_headers(resource: &Resource) -> Result<HeaderMap, String> {
    let mut headers = HeaderMap::new();
    headers.insert(reqwest::header::ACCEPT, HeaderValue::from_static(ACCEPT));
    headers.insert(
        reqwest::header::ACCEPT_ENCODING,
        HeaderValue::from_static("identity"),
    );
    for header in &resource.http_headers {
        let name = HeaderName::from_bytes(header.name.as_bytes())
            .map_err(|e| format!("header {:?}: {e}", header.name))?;
        let value = HeaderValue::from_str(header.value.as_deref().unwrap_or(""))
            .map_err(|e| format!("header {:?}: {e}", header.name))?;
        headers.insert(name, value);
    }
    Ok(headers)
}

fn http_get(url: &str, resource: &Resource, options: &FetchOptions) -> Result<Vec<u8>, FetchError> {
    let http_error = |reason: String| FetchError::Http {
        url: url.to_owned(),
        reason,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| http_error(e.to_string()))?;
    let client = http_client(options).map_err(http_error)?;
    let headers = request_headers(resource).map_err(http_error)?;
    let attempts = async {
        let mut delay = options.backoff;
        let mut attempt = 0;
        loop {
            match get_once(&client, url, &headers, options).await {
                Ok(body) => return Ok(body),
                Err((retry, _)) if retry && attempt < options.retries => {
                    attempt += 1;
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(MAX_BACKOFF);
                }
                Err((_, e)) => return Err(e),
            }
        }
    };
    runtime.block_on(async {
        match options.total_timeout {
            Some(total) => tokio::time::timeout(total, attempts)
                .await
                .unwrap_or_else(|_| {
                    Err(http_error(format!(
                        "not complete within {total:?} (timeouts.httpTotal)"
                    )))
                }),
            None => attempts.await,
        }
    })
}

/// One attempt; the error says whether another may succeed.
async fn get_once(
    client: &reqwest::Client,
    url: &str,
    headers: &HeaderMap,
    options: &FetchOptions,
) -> Result<Vec<u8>, (bool, FetchError)> {
    let http_error = |reason: String| FetchError::Http {
        url: url.to_owned(),
        reason,
    };
    let send = client.get(url).headers(headers.clone()).send();
    let response = match options.response_headers_timeout {
        Some(limit) => tokio::time::timeout(limit, send).await.map_err(|_| {
            (
                true,
                http_error(format!(
                    "no response headers within {limit:?} (timeouts.httpResponseHeaders)"
                )),
            )
        })?,
        None => send.await,
    };
    let mut response = response.map_err(|e| (true, http_error(error_chain(&e.without_url()))))?;
    let status = response.status();
    if !status.is_success() {
        // Server errors may pass; a 404 will not.
        return Err((
            status.is_server_error(),
            http_error(format!("HTTP {status}")),
        ));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| (true, http_error(error_chain(&e.without_url()))))?
    {
        if body.len() as u64 + chunk.len() as u64 > options.max_size {
            return Err((
                false,
                FetchError::TooLarge {
                    url: url.to_owned(),
                    limit: options.max_size,
                },
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn gunzip(url: &str, data: &[u8], limit: u64) -> Result<Vec<u8>, FetchError> {
    let bad = |reason: &str| FetchError::Decompress {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    if data.len() < 18 {
        return Err(bad("too short for gzip"));
    }
    // ISIZE (the size mod 2^32) sizes the buffer; a larger claim than the limit is refused.
    let mut trailer = [0u8; 4];
    trailer.copy_from_slice(&data[data.len() - 4..]);
    let size = u64::from(u32::from_le_bytes(trailer));
    if size > limit {
        return Err(FetchError::TooLarge {
            url: url.to_owned(),
            limit,
        });
    }
    let mut out = vec![0u8; size as usize];
    let n = libdeflater::Decompressor::new()
        .gzip_decompress(data, &mut out)
        .map_err(|e| bad(&e.to_string()))?;
    out.truncate(n);
    Ok(out)
}

/// Checks `verification.hash` (`sha512-…`, `sha256-…`) against `data`.
pub fn verify(url: &str, hash: &str, data: &[u8]) -> Result<(), FetchError> {
    let (function, expected) = hash
        .split_once('-')
        .ok_or_else(|| FetchError::HashFunction {
            function: hash.to_owned(),
            url: url.to_owned(),
        })?;
    let actual = match function {
        "sha512" => hex::encode(Sha512::digest(data)),
        "sha256" => hex::encode(Sha256::digest(data)),
        _ => {
            return Err(FetchError::HashFunction {
                function: function.to_owned(),
                url: url.to_owned(),
            })
        }
    };
    if !actual.eq_ignore_ascii_case(expected) {
        return Err(FetchError::HashMismatch {
            url: url.to_owned(),
            expected: format!("{function}-{expected}"),
            actual: format!("{function}-{actual}"),
        });
    }
    Ok(())
}

/// The bytes a resource stands for: fetched, decompressed, verified.
pub fn fetch(resource: &Resource, options: &FetchOptions) -> Result<Vec<u8>, FetchError> {
    let url = resource.source.as_deref().ok_or(FetchError::NoSource)?;
    let shown = display_url(url);
    let raw = match scheme(url).as_str() {
        "data" => decode_data_url(url)?,
        "http" | "https" => http_get(url, resource, options)?,
        _ => return Err(FetchError::Scheme(url.to_owned())),
    };
    if raw.len() as u64 > options.max_size {
        return Err(FetchError::TooLarge {
            url: shown,
            limit: options.max_size,
        });
    }
    let data = match resource.compression.as_deref() {
        Some("gzip") => gunzip(&shown, &raw, options.max_size)?,
        None | Some("") => raw,
        Some(other) => {
            return Err(FetchError::Decompress {
                url: shown,
                reason: format!("unknown compression {other:?}"),
            })
        }
    };
    if let Some(hash) = &resource.verification.hash {
        verify(&shown, hash, &data)?;
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_urls_decode() {
        assert_eq!(
            decode_data_url("data:,Hello%2C%20world%21").unwrap(),
            b"Hello, world!"
        );
        assert_eq!(decode_data_url("data:;base64,aGk=").unwrap(), b"hi");
        assert_eq!(
            decode_data_url("data:text/plain;charset=utf-8;base64,aGk=").unwrap(),
            b"hi"
        );
        assert!(decode_data_url("data:;base64,@@").is_err());
        assert!(decode_data_url("http://x").is_err());
        assert_eq!(decode_data_url("DATA:,x").unwrap(), b"x");
    }

    #[test]
    fn schemes_as_go_reads_them() {
        assert_eq!(scheme("HTTPS://example.com/x"), "https");
        assert_eq!(scheme("data:,x"), "data");
        assert_eq!(scheme("/etc/motd"), "");
        assert_eq!(scheme("1http://x"), "");
        assert!(is_remote("Http://x"));
        assert!(!is_remote("tftp://x"));
        assert_eq!(display_url("data:,secret"), "data: URL (12 characters)");
        assert_eq!(display_url("http://x/y"), "http://x/y");
    }
}
