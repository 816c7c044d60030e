//! Ignition's validation rules over the typed model, each applied from the spec version that
//! introduced it (coreos/ignition `config/v3_*/types/*.go`, `config/validate`), plus a few
//! cairn warnings for configs Ignition accepts but that cannot do what they say.

mod resource;
mod storage;
mod systemd;

use std::collections::HashSet;

use crate::gopath;
use crate::model::{Config, Ignition, KernelArguments, Passwd};
use crate::report::{PathElem, Report};
use crate::version::Version;
use crate::version::Version::*;

/// The messages of Ignition's `config/shared/errors`, so that both tools say the same thing.
pub(crate) mod msg {
    pub const DUPLICATE: &str = "duplicate entry defined";
    pub const NO_PATH: &str = "path not specified";
    pub const PATH_RELATIVE: &str = "path not absolute";
    pub const DIRTY_PATH: &str = "path is not fully simplified";
    pub const PATH_CONFLICTS_SYSTEMD: &str = "path conflicts with systemd unit or dropin";
    pub const SOURCE_REQUIRED: &str = "source is required";
    pub const INVALID_PROXY: &str = "proxies must be http(s)";
    pub const INSECURE_PROXY: &str = "insecure plaintext HTTP proxy specified for HTTPS resources";
    pub const INVALID_URL: &str = "unable to parse url";
    pub const NEGATIVE_TIMEOUT: &str =
        "negative timeout: Ignition treats it as no timeout; write 0 to say so";
    pub const HOME_DIR_RELATIVE: &str =
        "home directory is not an absolute path; useradd will refuse to create the user";
}

/// A JSON path under construction.
#[derive(Debug, Clone, Default)]
pub(crate) struct At(Vec<PathElem>);

impl At {
    pub fn k(&self, key: &str) -> At {
        let mut path = self.0.clone();
        path.push(PathElem::Key(key.to_owned()));
        At(path)
    }

    pub fn i(&self, index: usize) -> At {
        let mut path = self.0.clone();
        path.push(PathElem::Index(index));
        At(path)
    }
}

pub(crate) struct Validator {
    version: Version,
    report: Report,
}

/// Checks `config` with every rule of spec `version`. The config's own `ignition.version`
/// string is not consulted: `version` decides.
pub fn validate(config: &Config, version: Version) -> Report {
    let mut v = Validator {
        version,
        report: Report::default(),
    };
    let root = At::default();
    v.ignition(&config.ignition, &root.k("ignition"));
    if v.since(V3_3_0) {
        v.kernel_arguments(&config.kernel_arguments, &root.k("kernelArguments"));
    }
    v.passwd(&config.passwd, &root.k("passwd"));
    v.storage(&config.storage, &root.k("storage"));
    v.systemd(&config.systemd, &root.k("systemd"));
    v.paths_conflicting_with_units(config, &root);
    v.report
}

fn non_empty(s: &Option<String>) -> bool {
    s.as_deref().is_some_and(|s| !s.is_empty())
}

impl Validator {
    fn since(&self, version: Version) -> bool {
        self.version >= version
    }

    fn error(&mut self, at: &At, message: impl Into<String>) {
        self.report.error(at.0.clone(), message);
    }

    fn warning(&mut self, at: &At, message: impl Into<String>) {
        self.report.warning(at.0.clone(), message);
    }

    fn check(&mut self, at: &At, result: Result<(), String>) {
        if let Err(message) = result {
            self.error(at, message);
        }
    }

    /// Ignition's duplicate check: every entry whose key was seen before is an error.
    fn duplicates<'a>(&mut self, at: &At, keys: impl IntoIterator<Item = &'a str>) {
        self.duplicates_across(&mut HashSet::new(), at, keys);
    }

    /// The same with one key space shared by several lists (files, directories and links).
    fn duplicates_across<'a>(
        &mut self,
        seen: &mut HashSet<String>,
        at: &At,
        keys: impl IntoIterator<Item = &'a str>,
    ) {
        for (index, key) in keys.into_iter().enumerate() {
            if !seen.insert(key.to_owned()) {
                self.error(&at.i(index), msg::DUPLICATE);
            }
        }
    }

    fn ignition(&mut self, ignition: &Ignition, at: &At) {
        let merge_at = at.k("config").k("merge");
        for (index, merge) in ignition.config.merge.iter().enumerate() {
            let entry_at = merge_at.i(index);
            if self.since(V3_1_0) {
                self.required_source(merge, &entry_at);
            }
            self.reference(merge, &entry_at);
        }
        self.duplicates(&merge_at, ignition.config.merge.iter().map(resource::key));
        self.reference(&ignition.config.replace, &at.k("config").k("replace"));

        let ca_at = at.k("security").k("tls").k("certificateAuthorities");
        let authorities = &ignition.security.tls.certificate_authorities;
        for (index, ca) in authorities.iter().enumerate() {
            let entry_at = ca_at.i(index);
            if self.since(V3_1_0) {
                self.required_source(ca, &entry_at);
            } else if ca.source.as_deref().unwrap_or("").is_empty() {
                // 3.0.0 reads a CA's source as a plain string and checks it even when empty
                // (the resource check below covers a non-empty one).
                let checked = self.check_url("");
                self.check(&entry_at.k("source"), checked);
            }
            self.reference(ca, &entry_at);
        }
        self.duplicates(&ca_at, authorities.iter().map(resource::key));

        if self.since(V3_1_0) {
            let proxy_at = at.k("proxy");
            let proxy = &ignition.proxy;
            self.proxy_url(proxy.http_proxy.as_deref(), &proxy_at.k("httpProxy"), true);
            self.proxy_url(
                proxy.https_proxy.as_deref(),
                &proxy_at.k("httpsProxy"),
                false,
            );
            self.duplicates(
                &proxy_at.k("noProxy"),
                proxy.no_proxy.iter().map(String::as_str),
            );
        }

        let timeouts_at = at.k("timeouts");
        for (key, value) in [
            (
                "httpResponseHeaders",
                ignition.timeouts.http_response_headers,
            ),
            ("httpTotal", ignition.timeouts.http_total),
        ] {
            if value.is_some_and(|seconds| seconds < 0) {
                self.warning(&timeouts_at.k(key), msg::NEGATIVE_TIMEOUT);
            }
        }
    }

    fn proxy_url(&mut self, url: Option<&str>, at: &At, plain_http_ok: bool) {
        let Some(url) = url else { return };
        match crate::gourl::parse(url) {
            Err(_) => self.error(at, msg::INVALID_URL),
            Ok(parsed) => match parsed.scheme.as_str() {
                "https" => {}
                "http" if plain_http_ok => {}
                "http" => self.warning(at, msg::INSECURE_PROXY),
                _ => self.error(at, msg::INVALID_PROXY),
            },
        }
    }

    fn kernel_arguments(&mut self, kargs: &KernelArguments, at: &At) {
        // One argument cannot both be required and forbidden: both lists share a key space.
        let mut seen = HashSet::new();
        let should_exist = kargs.should_exist.iter().map(String::as_str);
        self.duplicates_across(&mut seen, &at.k("shouldExist"), should_exist);
        let should_not_exist = kargs.should_not_exist.iter().map(String::as_str);
        self.duplicates_across(&mut seen, &at.k("shouldNotExist"), should_not_exist);
    }

    fn passwd(&mut self, passwd: &Passwd, at: &At) {
        let users_at = at.k("users");
        for (index, user) in passwd.users.iter().enumerate() {
            let user_at = users_at.i(index);
            self.duplicates(&user_at.k("groups"), user.groups.iter().map(String::as_str));
            let keys = user.ssh_authorized_keys.iter().map(String::as_str);
            self.duplicates(&user_at.k("sshAuthorizedKeys"), keys);
            if let Some(home) = user.home_dir.as_deref() {
                if !home.is_empty() && !home.starts_with('/') {
                    self.warning(&user_at.k("homeDir"), msg::HOME_DIR_RELATIVE);
                }
            }
        }
        self.duplicates(&users_at, passwd.users.iter().map(|u| u.name.as_str()));
        let groups = passwd.groups.iter().map(|g| g.name.as_str());
        self.duplicates(&at.k("groups"), groups);
    }

    /// Files, directories and links may not sit where Ignition writes a unit or drop-in.
    fn paths_conflicting_with_units(&mut self, config: &Config, root: &At) {
        let mut unit_paths = HashSet::new();
        for unit in &config.systemd.units {
            if non_empty(&unit.contents) {
                unit_paths.insert(format!("/etc/systemd/system/{}", unit.name));
            }
            for dropin in &unit.dropins {
                if non_empty(&dropin.contents) {
                    let path = format!("/etc/systemd/system/{}.d/{}", unit.name, dropin.name);
                    unit_paths.insert(path);
                }
            }
        }
        let storage = &config.storage;
        let storage_at = root.k("storage");
        let nodes = [
            (
                "files",
                storage
                    .files
                    .iter()
                    .map(|f| f.path.as_str())
                    .collect::<Vec<_>>(),
            ),
            (
                "directories",
                storage
                    .directories
                    .iter()
                    .map(|d| d.path.as_str())
                    .collect(),
            ),
            (
                "links",
                storage.links.iter().map(|l| l.path.as_str()).collect(),
            ),
        ];
        for (list, paths) in nodes {
            for (index, path) in paths.into_iter().enumerate() {
                if unit_paths.contains(path) {
                    let at = storage_at.k(list).i(index).k("path");
                    self.error(&at, msg::PATH_CONFLICTS_SYSTEMD);
                }
            }
        }
    }
}

/// Ignition's `validatePath`: present, absolute and already clean.
pub(crate) fn check_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        Err(msg::NO_PATH.into())
    } else if !path.starts_with('/') {
        Err(msg::PATH_RELATIVE.into())
    } else if gopath::clean(path) != path {
        Err(msg::DIRTY_PATH.into())
    } else {
        Ok(())
    }
}
