//! The fetch stage: a config (Ignition JSON, or cairn's YAML translated) resolved into one
//! self-contained config before anything in the target root changes. `ignition.config`
//! replace and merges are fetched and rendered as Ignition renders them (coreos/ignition
//! `internal/exec/config_fetcher.go`), and every resource that carries data is fetched,
//! decompressed, verified and inlined as a `data:` URL, so that applying it, or rerunning
//! from its cached JSON, needs no network.

use base64::Engine as _;
use cairn_ignition::{Config, ParseError, PathElem, Report, Resource, Storage, Version};

use crate::fetch::{self, FetchError, FetchOptions};

/// Configs referencing configs are followed this deep at most (Ignition has no bound).
const MAX_DEPTH: usize = 10;

#[derive(Clone, Debug, Default)]
pub struct ResolveOptions {
    /// How resources are fetched. A config's `ignition.timeouts`, `.proxy` and
    /// `.security.tls` override or add to these. `max_size` bounds each resource and also
    /// everything resolved together, since all of it is held in memory.
    pub fetch: FetchOptions,
    /// Refuse any remote (http/https) resource — merged/replaced configs, file contents,
    /// appends, CA bundles — that has no `verification.hash`.
    pub require_verification: bool,
    /// Without it, a config that asks for storage devices (`storage.disks`, `.raid`,
    /// `.filesystems`, `.luks`) is refused, naming each. With it, those sections are dropped
    /// with a warning.
    pub skip_storage: bool,
}

#[derive(Clone, Debug)]
pub struct Resolved {
    /// The fully merged config: `ignition.config` resolved and removed; every resource that
    /// carries data (file contents and appends, CA bundles) a `data:` URL of its
    /// decompressed, verified bytes (an uncompressed `data:` URL stays as written, others
    /// become `data:;base64,…`), without compression or HTTP headers, its
    /// `verification.hash` kept (Ignition hashes the decompressed content). Configs of specs
    /// before 3.6.0 had their setuid/setgid/sticky bits masked off, as Ignition does.
    pub config: Config,
    pub warnings: Vec<String>,
}

impl Resolved {
    /// The self-contained config as Ignition JSON of its spec version (3.6.0, or
    /// 3.7.0-experimental when an input was), for a cache file: a rerun from it needs no
    /// network.
    pub fn to_json(&self) -> serde_json::Value {
        self.config.to_json(version_of(&self.config))
    }
}

/// Why a config could not be resolved; each names the JSON path of the offending field
/// (`storage.files[3].contents`), inside the referenced config it came from, if any.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("config is neither JSON nor UTF-8 YAML: {0}")]
    NotText(std::str::Utf8Error),
    /// The YAML translator's diagnostics, rendered against the YAML.
    #[error("translate YAML config:\n{0}")]
    Translate(String),
    #[error(transparent)]
    Parse(#[from] ParseError),
    #[error("invalid config: {}", .0.join("; "))]
    Invalid(Vec<String>),
    #[error("invalid config after merging: {}", .0.join("; "))]
    InvalidMerged(Vec<String>),
    #[error("{at}: {error}")]
    Fetch { at: String, error: FetchError },
    #[error("{at}.verification.hash is required (--require-verification) for {url}")]
    Unverified { at: String, url: String },
    #[error("{at}: {url} is already being resolved (a cycle of config references)")]
    Cycle { at: String, url: String },
    #[error("{at}: configs reference configs more than {limit} levels deep")]
    TooDeep { at: String, limit: usize },
    #[error("{at}: everything resolved together exceeds the limit of {limit} bytes")]
    TooMuchData { at: String, limit: u64 },
    #[error(
        "config sets up storage devices, which cairn-apply does not: {}; \
         pass --skip-storage to apply the rest without them",
        .fields.join(", ")
    )]
    Storage { fields: Vec<String> },
    /// An error inside the config that `at` references.
    #[error("{}: {error}", reference_label(.at, .url))]
    Referenced {
        at: String,
        url: String,
        error: Box<ResolveError>,
    },
}

/// Resolves `input` (Ignition JSON if it starts with `{`, else cairn's YAML) into one config
/// that needs no network, or refuses it. Nothing is written anywhere.
pub fn resolve(input: &[u8], options: &ResolveOptions) -> Result<Resolved, ResolveError> {
    let mut resolver = Resolver {
        options,
        warnings: Vec::new(),
        fetched_bytes: 0,
        ca_bundles: Vec::new(),
        chain: Vec::new(),
    };
    let config = resolver.read_input(input)?;
    let referenced = has_references(&config);
    let mut config = resolver.render(config, &Config::default())?;
    // Ignition validates the rendered config again: merging valid configs can make an
    // invalid one. A config that references nothing was validated as it was read.
    if referenced {
        let report;
        (config, _, report) = cairn_ignition::parse_value(&config.to_json(version_of(&config)))?;
        if report.has_errors() {
            return Err(ResolveError::InvalidMerged(report_errors(&report)));
        }
    }
    resolver.handle_storage(&mut config.storage)?;
    resolver.inline_resources(&mut config)?;
    Ok(Resolved {
        config,
        warnings: resolver.warnings,
    })
}

/// A referenced config being rendered.
struct Reference {
    /// Where the parent names it: `ignition.config.merge[0]`.
    at: String,
    url: String,
}

struct Resolver<'a> {
    options: &'a ResolveOptions,
    warnings: Vec<String>,
    /// Everything fetched so far; it is all held in memory.
    fetched_bytes: u64,
    /// CA bundles fetched so far, by source, in order: Ignition fetches each source once.
    ca_bundles: Vec<(String, Vec<u8>)>,
    /// The referenced configs being rendered, outermost first: for cycles, depth, and where
    /// warnings come from.
    chain: Vec<Reference>,
}

impl Resolver<'_> {
    fn read_input(&mut self, input: &[u8]) -> Result<Config, ResolveError> {
        let first = input.iter().find(|b| !b.is_ascii_whitespace());
        if matches!(first, None | Some(b'{')) {
            return self.parse_json(input);
        }
        let text = std::str::from_utf8(input).map_err(ResolveError::NotText)?;
        let source = cairn_provision::Source {
            name: "config".into(),
            text: text.to_owned(),
        };
        // No files-dir, as `cairn config translate` by default: `local` references fail.
        let translated = cairn_provision::translate(&source, &cairn_provision::Options::default())
            .map_err(|diagnostics| {
                let rendered: Vec<String> = diagnostics.iter().map(|d| d.to_string()).collect();
                ResolveError::Translate(rendered.join("\n"))
            })?;
        self.warnings
            .extend(translated.warnings.iter().map(|d| d.to_string()));
        let parsed = cairn_ignition::parse_value(&translated.config)?;
        self.checked(parsed)
    }

    fn parse_json(&mut self, bytes: &[u8]) -> Result<Config, ResolveError> {
        let parsed = cairn_ignition::parse(bytes)?;
        self.checked(parsed)
    }

    /// A parsed config if its report has no errors; its warnings are kept. Parsing has
    /// already translated it up to the newest spec (modes of specs before 3.6.0 masked,
    /// which the report warns about at each mode).
    fn checked(
        &mut self,
        (config, _, report): (Config, Version, Report),
    ) -> Result<Config, ResolveError> {
        if report.has_errors() {
            return Err(ResolveError::Invalid(report_errors(&report)));
        }
        for entry in report.warnings() {
            self.warn(format!("{}: {}", json_path(&entry.path), entry.message));
        }
        Ok(config)
    }

    fn warn(&mut self, message: String) {
        let origin: String = self
            .chain
            .iter()
            .map(|r| format!("{}: ", reference_label(&r.at, &r.url)))
            .collect();
        self.warnings.push(format!("{origin}{message}"));
    }

    /// Ignition's `RenderConfig`: a replace is followed (and rendered in turn); otherwise
    /// each merge is fetched, rendered depth first, and merged over what came before it,
    /// the referenced config being the child. References are fetched with the timeouts,
    /// proxy and CAs of `context` (the parent as merged so far) merged with this config as
    /// merged so far, where Ignition keeps updating one fetcher with the same settings.
    fn render(&mut self, mut config: Config, context: &Config) -> Result<Config, ResolveError> {
        if !has_references(&config) {
            return Ok(config);
        }
        let references = std::mem::take(&mut config.ignition.config);
        let mut so_far = merge(context, &config)?;
        let mut fetch = self.fetch_options(&so_far)?;
        if has_source(&references.replace) {
            let at = "ignition.config.replace".to_owned();
            return self.render_reference(&references.replace, at, &fetch, &Config::default());
        }
        for (index, reference) in references.merge.iter().enumerate() {
            let at = format!("ignition.config.merge[{index}]");
            let child = self.render_reference(reference, at, &fetch, &so_far)?;
            config = merge(&config, &child)?;
            so_far = merge(context, &config)?;
            fetch = self.fetch_options(&so_far)?;
        }
        Ok(config)
    }

    /// Ignition's `fetchReferencedConfig` and then `RenderConfig` of what it fetched.
    fn render_reference(
        &mut self,
        reference: &Resource,
        at: String,
        fetch: &FetchOptions,
        context: &Config,
    ) -> Result<Config, ResolveError> {
        let url = reference.source.clone().unwrap_or_default();
        if self.chain.len() >= MAX_DEPTH {
            return Err(ResolveError::TooDeep {
                at,
                limit: MAX_DEPTH,
            });
        }
        if fetch::is_remote(&url) && self.chain.iter().any(|r| r.url == url) {
            return Err(ResolveError::Cycle { at, url });
        }
        let bytes = self.fetch(reference, &at, fetch)?;
        self.chain.push(Reference {
            at: at.clone(),
            url: url.clone(),
        });
        let rendered = self
            .parse_json(&bytes)
            .and_then(|config| self.render(config, context));
        self.chain.pop();
        rendered.map_err(|error| ResolveError::Referenced {
            at,
            url,
            error: Box::new(error),
        })
    }

    /// The options to fetch with under `config`: its timeouts and proxy over the caller's,
    /// and its CA bundles, fetched (once per source) and verified, added to the trusted
    /// roots.
    fn fetch_options(&mut self, config: &Config) -> Result<FetchOptions, ResolveError> {
        let ignition = &config.ignition;
        let mut options = self.options.fetch.clone();
        if let Some(seconds) = ignition.timeouts.http_total {
            options.total_timeout = timeout(seconds);
        }
        if let Some(seconds) = ignition.timeouts.http_response_headers {
            options.response_headers_timeout = timeout(seconds);
        }
        if ignition.proxy != Default::default() {
            options.proxy = ignition.proxy.clone();
        }
        // A bundle is fetched trusting the bundles fetched before it.
        let mut for_bundles = options.clone();
        for_bundles
            .certificate_authorities
            .extend(self.ca_bundles.iter().map(|(_, bundle)| bundle.clone()));
        let authorities = &ignition.security.tls.certificate_authorities;
        for (index, authority) in authorities.iter().enumerate() {
            let at = format!("ignition.security.tls.certificateAuthorities[{index}]");
            let bundle = self.ca_bundle(authority, &at, &for_bundles)?;
            options.certificate_authorities.push(bundle);
        }
        Ok(options)
    }

    fn ca_bundle(
        &mut self,
        authority: &Resource,
        at: &str,
        fetch: &FetchOptions,
    ) -> Result<Vec<u8>, ResolveError> {
        let source = authority.source.as_deref().unwrap_or_default();
        let cached = self.ca_bundles.iter().find(|(s, _)| s == source);
        if let Some((_, bundle)) = cached {
            self.check_verification(authority, at)?;
            // Ignition reuses a cached bundle unchecked; the hash here may be another one.
            if let Some(hash) = &authority.verification.hash {
                fetch::verify(&fetch::display_url(source), hash, bundle)
                    .map_err(|error| fetch_error(at, error))?;
            }
            return Ok(bundle.clone());
        }
        let bundle = self.fetch(authority, at, fetch)?;
        fetch::certificates(&bundle).map_err(|error| fetch_error(at, error))?;
        self.ca_bundles.push((source.to_owned(), bundle.clone()));
        Ok(bundle)
    }

    fn check_verification(&self, resource: &Resource, at: &str) -> Result<(), ResolveError> {
        let source = resource.source.as_deref().unwrap_or_default();
        if self.options.require_verification
            && fetch::is_remote(source)
            && resource.verification.hash.is_none()
        {
            return Err(ResolveError::Unverified {
                at: at.to_owned(),
                url: source.to_owned(),
            });
        }
        Ok(())
    }

    /// The verified bytes of `resource`, counted against the bound on everything fetched.
    fn fetch(
        &mut self,
        resource: &Resource,
        at: &str,
        options: &FetchOptions,
    ) -> Result<Vec<u8>, ResolveError> {
        self.check_verification(resource, at)?;
        let limit = self.options.fetch.max_size;
        let remaining = limit.saturating_sub(self.fetched_bytes);
        let bounded = FetchOptions {
            max_size: options.max_size.min(remaining),
            ..options.clone()
        };
        let data = fetch::fetch(resource, &bounded).map_err(|error| match error {
            FetchError::TooLarge { .. } if remaining < options.max_size => {
                ResolveError::TooMuchData {
                    at: at.to_owned(),
                    limit,
                }
            }
            error => fetch_error(at, error),
        })?;
        self.fetched_bytes += data.len() as u64;
        Ok(data)
    }

    /// Storage devices are refused, or dropped with `skip_storage`.
    fn handle_storage(&mut self, storage: &mut Storage) -> Result<(), ResolveError> {
        let named = |list: &str, index: usize, key: &str, value: &str| {
            format!("storage.{list}[{index}] ({key} {value:?})")
        };
        let mut fields = Vec::new();
        for (index, disk) in storage.disks.iter().enumerate() {
            fields.push(named("disks", index, "device", &disk.device));
        }
        for (index, raid) in storage.raid.iter().enumerate() {
            fields.push(named("raid", index, "name", &raid.name));
        }
        for (index, filesystem) in storage.filesystems.iter().enumerate() {
            fields.push(named("filesystems", index, "device", &filesystem.device));
        }
        for (index, luks) in storage.luks.iter().enumerate() {
            fields.push(named("luks", index, "name", &luks.name));
        }
        if fields.is_empty() {
            return Ok(());
        }
        if !self.options.skip_storage {
            return Err(ResolveError::Storage { fields });
        }
        for field in fields {
            self.warn(format!("{field}: dropped (--skip-storage)"));
        }
        storage.disks.clear();
        storage.raid.clear();
        storage.filesystems.clear();
        storage.luks.clear();
        Ok(())
    }

    /// Every resource that carries data becomes a `data:` URL of its verified bytes,
    /// fetched with the final config's settings, as Ignition's files stage fetches them.
    fn inline_resources(&mut self, config: &mut Config) -> Result<(), ResolveError> {
        let fetch = self.fetch_options(config)?;
        let authorities = &mut config.ignition.security.tls.certificate_authorities;
        for (index, authority) in authorities.iter_mut().enumerate() {
            let at = format!("ignition.security.tls.certificateAuthorities[{index}]");
            let bundle = self.ca_bundle(authority, &at, &fetch)?;
            inline(authority, &bundle);
        }
        for (index, file) in config.storage.files.iter_mut().enumerate() {
            let at = format!("storage.files[{index}].contents");
            self.inline_resource(&mut file.contents, &at, &fetch)?;
            for (append_index, append) in file.append.iter_mut().enumerate() {
                let at = format!("storage.files[{index}].append[{append_index}]");
                self.inline_resource(append, &at, &fetch)?;
            }
        }
        Ok(())
    }

    fn inline_resource(
        &mut self,
        resource: &mut Resource,
        at: &str,
        fetch: &FetchOptions,
    ) -> Result<(), ResolveError> {
        if !has_source(resource) {
            return Ok(());
        }
        if is_plain_data_url(resource) && resource.verification.hash.is_none() {
            // Already its own bytes, and validation checked its encoding: nothing to
            // fetch or verify; its length (no less than the bytes') counts to the bound.
            self.fetched_bytes += resource.source.as_deref().map_or(0, str::len) as u64;
            if self.fetched_bytes > self.options.fetch.max_size {
                return Err(ResolveError::TooMuchData {
                    at: at.to_owned(),
                    limit: self.options.fetch.max_size,
                });
            }
            resource.http_headers.clear();
            return Ok(());
        }
        let data = self.fetch(resource, at, fetch)?;
        inline(resource, &data);
        Ok(())
    }
}

/// Ignition's merge, `child` over `parent`, both as JSON of the newer one's spec, so that no
/// field is left out.
fn merge(parent: &Config, child: &Config) -> Result<Config, ResolveError> {
    let version = version_of(parent).max(version_of(child));
    let merged = cairn_provision::merge::merge_configs(vec![
        parent.to_json(version),
        child.to_json(version),
    ]);
    let (config, _, _) = cairn_ignition::parse_value(&merged)?;
    Ok(config)
}

/// The spec a parsed config is written in: 3.6.0, or 3.7.0-experimental (parsing sets it).
fn version_of(config: &Config) -> Version {
    Version::parse(&config.ignition.version)
        .unwrap_or(Version::LATEST)
        .max(Version::LATEST)
}

/// Whether a config merges or replaces itself with another.
fn has_references(config: &Config) -> bool {
    let references = &config.ignition.config;
    has_source(&references.replace) || !references.merge.is_empty()
}

fn has_source(resource: &Resource) -> bool {
    resource.source.as_deref().is_some_and(|s| !s.is_empty())
}

/// An uncompressed `data:` URL: the resource is its own bytes.
fn is_plain_data_url(resource: &Resource) -> bool {
    resource
        .source
        .as_deref()
        .is_some_and(|s| fetch::scheme(s) == "data")
        && resource.compression.as_deref().is_none_or(str::is_empty)
}

fn inline(resource: &mut Resource, data: &[u8]) {
    // An uncompressed `data:` URL already is its verified bytes.
    if !is_plain_data_url(resource) {
        let encoded = base64::engine::general_purpose::STANDARD.encode(data);
        resource.source = Some(format!("data:;base64,{encoded}"));
    }
    resource.compression = None;
    resource.http_headers.clear();
}

/// Ignition's timeout seconds: 0 means none.
fn timeout(seconds: i64) -> Option<std::time::Duration> {
    u64::try_from(seconds)
        .ok()
        .filter(|s| *s > 0)
        .map(std::time::Duration::from_secs)
}

fn fetch_error(at: &str, error: FetchError) -> ResolveError {
    ResolveError::Fetch {
        at: at.to_owned(),
        error,
    }
}

/// `ignition.config.merge[0] (http://…)`; a `data:` URL is not shown.
fn reference_label(at: &str, url: &str) -> String {
    if fetch::scheme(url) == "data" {
        at.to_owned()
    } else {
        format!("{at} ({url})")
    }
}

fn report_errors(report: &Report) -> Vec<String> {
    report
        .errors()
        .map(|entry| format!("{}: {}", json_path(&entry.path), entry.message))
        .collect()
}

/// A report path as the user reads it: `storage.files[0].path`.
fn json_path(path: &[PathElem]) -> String {
    let mut out = String::new();
    for elem in path {
        match elem {
            PathElem::Key(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            PathElem::Index(index) => out.push_str(&format!("[{index}]")),
        }
    }
    if out.is_empty() {
        out.push_str("config");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_read_as_written() {
        let path = [
            PathElem::Key("storage".into()),
            PathElem::Key("files".into()),
            PathElem::Index(3),
            PathElem::Key("contents".into()),
        ];
        assert_eq!(json_path(&path), "storage.files[3].contents");
        assert_eq!(json_path(&[]), "config");
    }

    #[test]
    fn timeouts_of_zero_are_none() {
        assert_eq!(timeout(0), None);
        assert_eq!(timeout(-1), None);
        assert_eq!(timeout(3), Some(std::time::Duration::from_secs(3)));
    }
}
