//! Remotes: `[remote "NAME"]` groups in the repository `config`, as `ostree remote add` writes them.

use std::path::PathBuf;

use crate::keyfile::KeyFile;
use crate::repo::{write_file_atomic, Error, IoContext, Repo, Result};

/// A remote and how its commits are verified (ostree `ostree.repo-config(5)` keys).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Remote {
    pub name: String,
    pub url: String,
    /// `gpg-verify`: ostree's default is true.
    pub gpg_verify: bool,
    pub gpg_verify_summary: bool,
    /// `gpgkeypath`: keyring files or directories, `;`-separated.
    pub gpg_key_paths: Vec<PathBuf>,
    /// `sign-verify`: ed25519 (`ostree sign`) verification.
    pub sign_verify: bool,
    pub sign_verify_summary: bool,
    /// `verification-ed25519-key`: base64 public keys given inline.
    pub ed25519_keys: Vec<String>,
    /// `verification-ed25519-file`: a file of base64 public keys, one per line.
    pub ed25519_key_file: Option<PathBuf>,
}

impl Remote {
    /// A remote given only by URL on the command line: nothing to verify against.
    pub fn from_url(url: &str) -> Remote {
        Remote {
            name: String::new(),
            url: url.to_owned(),
            gpg_verify: false,
            gpg_verify_summary: false,
            gpg_key_paths: vec![],
            sign_verify: false,
            sign_verify_summary: false,
            ed25519_keys: vec![],
            ed25519_key_file: None,
        }
    }
}

fn group(name: &str) -> String {
    format!("remote \"{name}\"")
}

/// Remote names: letters, digits, `_`, `-`, `.`; they become a directory under `refs/remotes`.
pub fn validate_remote_name(name: &str) -> Result<()> {
    if name.is_empty()
        || name.starts_with('.')
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
    {
        return Err(Error::Invalid(format!(
            "invalid remote name {name:?}: use letters, digits, `_`, `-` and `.`"
        )));
    }
    Ok(())
}

impl Repo {
    pub fn read_config(&self) -> Result<KeyFile> {
        let path = self.path().join("config");
        let text = std::fs::read_to_string(&path).at(&path)?;
        KeyFile::parse(&text).map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))
    }

    pub fn write_config(&self, config: &KeyFile) -> Result<()> {
        write_file_atomic(
            &self.path().join("config"),
            config.to_text().as_bytes(),
            true,
        )
    }

    /// Adds a remote; `options` are further `key=value` settings in the order given.
    pub fn add_remote(
        &self,
        name: &str,
        url: &str,
        options: &[(String, String)],
        if_not_exists: bool,
    ) -> Result<()> {
        validate_remote_name(name)?;
        if !(url.starts_with("http://")
            || url.starts_with("https://")
            || url.starts_with("file://"))
        {
            return Err(Error::Invalid(format!(
                "remote URL {url:?} must start with http://, https:// or file://"
            )));
        }
        let mut config = self.read_config()?;
        if config.has_group(&group(name)) {
            if if_not_exists {
                return Ok(());
            }
            return Err(Error::Invalid(format!("remote {name:?} already exists")));
        }
        config.set(&group(name), "url", url);
        for (k, v) in options {
            config.set(&group(name), k, v);
        }
        self.write_config(&config)
    }

    pub fn delete_remote(&self, name: &str, if_exists: bool) -> Result<()> {
        let mut config = self.read_config()?;
        if !config.remove_group(&group(name)) {
            if if_exists {
                return Ok(());
            }
            return Err(Error::Invalid(format!("remote {name:?} not found")));
        }
        self.write_config(&config)
    }

    pub fn remotes(&self) -> Result<Vec<Remote>> {
        let config = self.read_config()?;
        let names: Vec<String> = config
            .group_names()
            .filter_map(|g| {
                g.strip_prefix("remote \"")
                    .and_then(|r| r.strip_suffix('"'))
                    .map(str::to_owned)
            })
            .collect();
        names
            .iter()
            .map(|n| remote_from_config(&config, n))
            .collect()
    }

    pub fn remote(&self, name: &str) -> Result<Remote> {
        let config = self.read_config()?;
        if !config.has_group(&group(name)) {
            return Err(Error::Invalid(format!(
                "remote {name:?} not found (see `cairn repo remote list`)"
            )));
        }
        remote_from_config(&config, name)
    }
}

fn remote_from_config(config: &KeyFile, name: &str) -> Result<Remote> {
    let g = group(name);
    let url = config
        .get(&g, "url")
        .ok_or_else(|| Error::Invalid(format!("remote {name:?} has no url in config")))?
        .to_owned();
    let split = |v: Option<&str>| -> Vec<String> {
        v.map(|s| {
            s.split(';')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
    };
    Ok(Remote {
        name: name.to_owned(),
        url,
        gpg_verify: config.get_bool(&g, "gpg-verify").unwrap_or(true),
        gpg_verify_summary: config.get_bool(&g, "gpg-verify-summary").unwrap_or(false),
        gpg_key_paths: split(config.get(&g, "gpgkeypath"))
            .into_iter()
            .map(PathBuf::from)
            .collect(),
        sign_verify: config.get_bool(&g, "sign-verify").unwrap_or(false),
        sign_verify_summary: config.get_bool(&g, "sign-verify-summary").unwrap_or(false),
        ed25519_keys: split(config.get(&g, "verification-ed25519-key")),
        ed25519_key_file: config
            .get(&g, "verification-ed25519-file")
            .map(PathBuf::from),
    })
}
