//! Rules for fetched resources: URL schemes per version, `data:` URLs, S3 ARNs, hashes,
//! compression and HTTP headers.

use super::{msg, At, Validator};
use crate::model::Resource;
use crate::version::Version::*;
use crate::{data_url, gourl};

const INVALID_SCHEME: &str = "invalid url scheme";
const INVALID_S3_ARN: &str = "invalid S3 ARN format";
const INVALID_S3_VERSION_ID: &str = "invalid S3 object VersionId";
const COMPRESSION_INVALID: &str = "invalid compression method";
const VERIFICATION_WITHOUT_SOURCE: &str = "source must be specified if verification is specified";
const HASH_MALFORMED: &str = "malformed hash specifier";
const HASH_UNRECOGNIZED: &str = "unrecognized hash function";
const HASH_WRONG_SIZE: &str = "incorrect size for hash sum";
const HEADER_NAME_EMPTY: &str = "HTTP header name can't be empty";
const HEADER_VALUE_INVALID: &str = "unable to parse HTTP header";
const HEADERS_UNSUPPORTED_SCHEME: &str = "cannot use HTTP headers with this source scheme";

/// The key Ignition uses to find duplicate resources: the source URL.
pub(super) fn key(resource: &Resource) -> &str {
    resource.source.as_deref().unwrap_or("")
}

impl Validator {
    /// Ignition's `validateURL` for this version.
    pub(super) fn check_url(&self, url: &str) -> Result<(), String> {
        let parsed = gourl::parse(url).map_err(|_| msg::INVALID_URL.to_owned())?;
        match parsed.scheme.as_str() {
            "http" | "https" | "tftp" => Ok(()),
            "gs" if self.since(V3_2_0) => Ok(()),
            "s3" => check_s3_version_id(&parsed),
            "arn" if self.since(V3_4_0) => check_s3_arn(&parsed),
            "data" => data_url::check(url).map_err(|e| format!("invalid data url: {e}")),
            _ => Err(INVALID_SCHEME.to_owned()),
        }
    }

    /// `validateURLNilOK`: an absent or empty source is fine.
    pub(super) fn check_optional_url(&self, url: Option<&str>) -> Result<(), String> {
        match url {
            None | Some("") => Ok(()),
            Some(url) => self.check_url(url),
        }
    }

    /// Merged configs and CA bundles (3.1.0+) need a source; the error is on the entry.
    pub(super) fn required_source(&mut self, resource: &Resource, at: &At) {
        let result = match resource.source.as_deref() {
            None | Some("") => Err(msg::SOURCE_REQUIRED.to_owned()),
            Some(url) => self.check_url(url),
        };
        self.check(at, result);
    }

    pub(super) fn resource(&mut self, resource: &Resource, at: &At) {
        self.resource_with(resource, at, true);
    }

    /// A resource of `ignition.config` or `ignition.security`: before 3.1.0 those were
    /// reference types that did not require a source next to a hash.
    pub(super) fn reference(&mut self, resource: &Resource, at: &At) {
        let hash_needs_source = self.since(V3_1_0);
        self.resource_with(resource, at, hash_needs_source);
    }

    fn resource_with(&mut self, resource: &Resource, at: &At, hash_needs_source: bool) {
        if let Some(compression) = resource.compression.as_deref() {
            if !matches!(compression, "" | "gzip") {
                self.error(&at.k("compression"), COMPRESSION_INVALID);
            }
        }
        let hash_at = at.k("verification").k("hash");
        if let Some(hash) = resource.verification.hash.as_deref() {
            if hash_needs_source && resource.source.is_none() {
                self.error(&hash_at, VERIFICATION_WITHOUT_SOURCE);
            }
            let result = self.check_hash(hash);
            self.check(&hash_at, result);
        }
        let source = self.check_optional_url(resource.source.as_deref());
        self.check(&at.k("source"), source);
        if self.since(V3_1_0) {
            self.http_headers(resource, at);
        }
    }

    fn check_hash(&self, hash: &str) -> Result<(), String> {
        let Some((function, sum)) = hash.split_once('-') else {
            return Err(HASH_MALFORMED.into());
        };
        let hex_len = match function {
            "sha512" => 128,
            "sha256" if self.since(V3_1_0) => 64,
            _ => return Err(HASH_UNRECOGNIZED.into()),
        };
        // Ignition checks the length only; the digits are checked when the hash is compared.
        if sum.len() != hex_len {
            return Err(HASH_WRONG_SIZE.into());
        }
        Ok(())
    }

    fn http_headers(&mut self, resource: &Resource, at: &At) {
        let headers_at = at.k("httpHeaders");
        if !resource.http_headers.is_empty() {
            let scheme = match resource.source.as_deref() {
                None | Some("") => Err(msg::INVALID_URL),
                Some(url) => gourl::parse(url).map_err(|_| msg::INVALID_URL),
            };
            match scheme {
                Err(message) => self.error(&headers_at, message),
                Ok(url) if matches!(url.scheme.as_str(), "http" | "https") => {}
                Ok(_) => self.error(&headers_at, HEADERS_UNSUPPORTED_SCHEME),
            }
        }
        for (index, header) in resource.http_headers.iter().enumerate() {
            let header_at = headers_at.i(index);
            if header.name.is_empty() {
                self.error(&header_at.k("name"), HEADER_NAME_EMPTY);
            }
            if header.value.as_deref() == Some("") {
                self.error(&header_at.k("value"), HEADER_VALUE_INVALID);
            }
        }
        let names = resource.http_headers.iter().map(|h| h.name.as_str());
        self.duplicates(&headers_at, names);
    }
}

fn check_s3_version_id(url: &gourl::GoUrl) -> Result<(), String> {
    match gourl::query_value(&url.raw_query, "versionId") {
        Some(version) if version.is_empty() => Err(INVALID_S3_VERSION_ID.into()),
        _ => Ok(()),
    }
}

/// `arn:PARTITION:s3:REGION:ACCOUNT:RESOURCE` naming an object (`bucket/key` or
/// `accesspoint/NAME/object/key`), as the AWS SDK and Ignition read it.
fn check_s3_arn(url: &gourl::GoUrl) -> Result<(), String> {
    let arn = format!("arn:{}", url.opaque);
    if arn.matches(':').count() < 5 {
        return Err(INVALID_S3_ARN.into());
    }
    let sections: Vec<&str> = arn.splitn(6, ':').collect();
    let (partition, service, resource) = match sections.as_slice() {
        [_, partition, service, _, _, resource] => (*partition, *service, *resource),
        _ => return Err(INVALID_S3_ARN.into()),
    };
    if partition.is_empty() {
        return Err("arn: invalid partition".into());
    }
    if service.is_empty() {
        return Err("arn: invalid service".into());
    }
    if resource.is_empty() {
        return Err("arn: invalid resource".into());
    }
    if service != "s3" {
        return Err(INVALID_S3_ARN.into());
    }
    let slash_parts = arn.split('/').count();
    let needed = if resource.starts_with("accesspoint/") {
        3
    } else {
        2
    };
    if slash_parts < needed {
        return Err(INVALID_S3_ARN.into());
    }
    check_s3_version_id(url)
}
