//! Resolving a config's resources into bytes, before anything in the root changes: `data:`
//! URLs decoded, `http(s)://` fetched (time limit, retries with backoff, the config's
//! headers, a size bound), `gzip` undone, and `verification.hash` checked on the
//! decompressed content, as Ignition checks it.

use std::time::Duration;

use base64::Engine as _;
use cairn_ignition::Resource;
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
}

#[derive(Clone, Debug)]
pub struct FetchOptions {
    /// Time allowed for one HTTP request.
    pub timeout: Duration,
    /// Attempts after the first, with doubling backoff from `backoff`.
    pub retries: u32,
    pub backoff: Duration,
    /// Largest resource accepted, compressed or not.
    pub max_size: u64,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            timeout: Duration::from_secs(30),
            retries: 4,
            backoff: Duration::from_millis(200),
            max_size: 1 << 30,
        }
    }
}

/// The payload of a `data:` URL (percent-encoded or `;base64`).
pub fn decode_data_url(url: &str) -> Result<Vec<u8>, FetchError> {
    let rest = url
        .strip_prefix("data:")
        .ok_or_else(|| FetchError::DataUrl("missing data: prefix".into()))?;
    let (meta, payload) = rest
        .split_once(',')
        .ok_or_else(|| FetchError::DataUrl("missing comma before the data".into()))?;
    let raw: Vec<u8> = percent_encoding::percent_decode_str(payload).collect();
    if meta.split(';').any(|p| p.eq_ignore_ascii_case("base64")) {
        let text: Vec<u8> = raw
            .into_iter()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        base64::engine::general_purpose::STANDARD
            .decode(&text)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(&text))
            .map_err(|e| FetchError::DataUrl(format!("bad base64: {e}")))
    } else {
        Ok(raw)
    }
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
    let client = reqwest::Client::builder()
        .timeout(options.timeout)
        .build()
        .map_err(|e| http_error(e.to_string()))?;
    let mut delay = options.backoff;
    let mut attempt = 0;
    loop {
        let mut request = client.get(url);
        for header in &resource.http_headers {
            request = request.header(&header.name, header.value.as_deref().unwrap_or(""));
        }
        let result: Result<Vec<u8>, (bool, FetchError)> = runtime.block_on(async {
            let mut response = request
                .send()
                .await
                .map_err(|e| (true, http_error(e.to_string())))?;
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
                .map_err(|e| (true, http_error(e.to_string())))?
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
        });
        match result {
            Ok(body) => return Ok(body),
            Err((retry, e)) if retry && attempt < options.retries => {
                attempt += 1;
                std::thread::sleep(delay);
                delay *= 2;
                let _ = e;
            }
            Err((_, e)) => return Err(e),
        }
    }
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
    let raw = if url.starts_with("data:") {
        decode_data_url(url)?
    } else if url.starts_with("http://") || url.starts_with("https://") {
        http_get(url, resource, options)?
    } else {
        return Err(FetchError::Scheme(url.to_owned()));
    };
    if raw.len() as u64 > options.max_size {
        return Err(FetchError::TooLarge {
            url: url.to_owned(),
            limit: options.max_size,
        });
    }
    let data = match resource.compression.as_deref() {
        Some("gzip") => gunzip(url, &raw, options.max_size)?,
        None | Some("") => raw,
        Some(other) => {
            return Err(FetchError::Decompress {
                url: url.to_owned(),
                reason: format!("unknown compression {other:?}"),
            })
        }
    };
    if let Some(hash) = &resource.verification.hash {
        verify(url, hash, &data)?;
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
    }
}
