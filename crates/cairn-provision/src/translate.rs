//! Butane-compatible YAML → Ignition JSON.
//!
//! The YAML language is Ignition's schema with snake_case keys plus sugar, as in Butane:
//! the base translation renames keys (`size_mib` → `sizeMiB`), turns `inline`/`local`
//! contents into `data:` URLs, reads `*_local` files from `--files-dir`, expands
//! `storage.trees`; `sugar` then applies the variant's own sections (`boot_device`,
//! `with_mount_unit`, `grub`). The result is checked by `cairn-ignition` with every rule
//! of the target Ignition version, and each of its findings is mapped back to the YAML
//! node it came from.

use std::collections::HashMap;
use std::fs;
use std::path::{Component, Path, PathBuf};

use serde_json::{Map, Value as Json};

use crate::diagnostic::{Diagnostic, Severity, Source};
use crate::sugar::{self, DocPath};
use crate::yaml::{self, Mark, Node, Value};

#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Where `local:` paths are resolved (`--files-dir`); without it they are errors.
    pub files_dir: Option<PathBuf>,
}

/// One `variant`/`version` pair and the Ignition spec it produces (Butane v0.23's table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Spec {
    pub variant: &'static str,
    pub version: &'static str,
    pub ignition: &'static str,
}

pub const SPECS: &[Spec] = &[
    spec("fcos", "1.0.0", "3.0.0"),
    spec("fcos", "1.1.0", "3.1.0"),
    spec("fcos", "1.2.0", "3.2.0"),
    spec("fcos", "1.3.0", "3.2.0"),
    spec("fcos", "1.4.0", "3.3.0"),
    spec("fcos", "1.5.0", "3.4.0"),
    spec("fcos", "1.6.0", "3.5.0"),
    spec("fcos", "1.7.0-experimental", "3.6.0"),
    spec("flatcar", "1.0.0", "3.3.0"),
    spec("flatcar", "1.1.0", "3.4.0"),
    spec("flatcar", "1.2.0-experimental", "3.6.0"),
    spec("r4e", "1.0.0", "3.3.0"),
    spec("r4e", "1.1.0", "3.4.0"),
    spec("r4e", "1.2.0-experimental", "3.6.0"),
    spec("fiot", "1.0.0", "3.4.0"),
    spec("fiot", "1.1.0-experimental", "3.6.0"),
];

const fn spec(variant: &'static str, version: &'static str, ignition: &'static str) -> Spec {
    Spec {
        variant,
        version,
        ignition,
    }
}

impl Spec {
    pub fn find(variant: &str, version: &str) -> Option<Spec> {
        SPECS
            .iter()
            .copied()
            .find(|s| s.variant == variant && s.version == version)
    }

    /// `(major, minor, patch)` of the Butane version.
    pub fn numbers(&self) -> (u32, u32, u32) {
        let mut parts = self
            .version
            .split(['.', '-'])
            .map(|p| p.parse::<u32>().unwrap_or(0));
        (
            parts.next().unwrap_or(0),
            parts.next().unwrap_or(0),
            parts.next().unwrap_or(0),
        )
    }

    /// An fcos-only section that arrived in fcos `since`.
    fn fcos_since(&self, since: (u32, u32, u32)) -> bool {
        self.variant == "fcos" && self.numbers() >= since
    }

    /// `ssh_authorized_keys_local` and `contents_local` (Butane base v0_5): fcos 1.5,
    /// flatcar and r4e 1.1, fiot from 1.0.
    fn has_local_fields(&self) -> bool {
        let since = match self.variant {
            "fcos" => (1, 5, 0),
            "fiot" => (1, 0, 0),
            _ => (1, 1, 0),
        };
        self.numbers() >= since
    }

    /// fcos 1.0.0 (Butane base v0_1): no `local`, no trees, and inline contents as a
    /// plain `data:` URL without `compression`.
    fn is_base_v0_1(&self) -> bool {
        self.variant == "fcos" && self.version == "1.0.0"
    }
}

/// The result of translating one file.
#[derive(Debug)]
pub struct Translated {
    pub spec: Spec,
    /// The Ignition config, `ignition.version` set.
    pub config: Json,
    /// Warnings (errors make `translate` fail).
    pub warnings: Vec<Diagnostic>,
}

/// Ignition's name for a Butane key.
pub fn ignition_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for (i, part) in key.split('_').enumerate() {
        if i == 0 {
            out.push_str(part);
        } else if part == "mib" {
            out.push_str("MiB");
        } else {
            let mut chars = part.chars();
            if let Some(first) = chars.next() {
                out.extend(first.to_uppercase());
                out.push_str(chars.as_str());
            }
        }
    }
    out
}

struct Ctx<'a> {
    source: &'a Source,
    options: &'a Options,
    spec: Spec,
    diagnostics: Vec<Diagnostic>,
    /// JSON path → (mark, YAML path, YAML key) of the node it came from.
    origins: HashMap<String, (Mark, String, String)>,
}

fn child(path: &str, key: &str) -> String {
    format!("{path}.{key}")
}

impl Ctx<'_> {
    fn error(&mut self, mark: Mark, yaml_path: &str, message: impl Into<String>) {
        self.diagnostics.push(Diagnostic::new(
            Severity::Error,
            message,
            self.source,
            mark,
            yaml_path,
        ));
    }

    fn warn(&mut self, mark: Mark, yaml_path: &str, message: impl Into<String>) {
        self.diagnostics.push(Diagnostic::new(
            Severity::Warning,
            message,
            self.source,
            mark,
            yaml_path,
        ));
    }

    /// Reads a `local:` file below `--files-dir`, refusing paths that leave it.
    fn read_local(&mut self, node: &Node, yaml_path: &str) -> Option<Vec<u8>> {
        let Some(name) = node.as_str() else {
            self.error(
                node.mark,
                yaml_path,
                format!("expected a file name, found {}", node.kind()),
            );
            return None;
        };
        let Some(dir) = self.options.files_dir.clone() else {
            self.error(
                node.mark,
                yaml_path,
                format!("local file {name:?} needs --files-dir to say where local files are"),
            );
            return None;
        };
        let path = match resolve_local(&dir, name) {
            Ok(path) => path,
            Err(why) => {
                self.error(node.mark, yaml_path, why);
                return None;
            }
        };
        match fs::read(&path) {
            Ok(data) => Some(data),
            Err(e) => {
                self.error(
                    node.mark,
                    yaml_path,
                    format!("cannot read local file {}: {e}", path.display()),
                );
                None
            }
        }
    }

    /// Translates a node: keys renamed, Butane-only fields consumed.
    fn walk(&mut self, node: &Node, yaml_path: &str, json_path: &str, key: &str) -> Json {
        self.origins.insert(
            json_path.to_owned(),
            (node.mark, yaml_path.to_owned(), key.to_owned()),
        );
        match &node.value {
            Value::Map(entries) => self.walk_map(node, entries, yaml_path, json_path),
            Value::Seq(items) => Json::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| {
                        self.walk(
                            item,
                            &child(yaml_path, &i.to_string()),
                            &child(json_path, &i.to_string()),
                            key,
                        )
                    })
                    .collect(),
            ),
            _ => node.to_json(),
        }
    }

    fn walk_map(
        &mut self,
        node: &Node,
        entries: &[(String, Mark, Node)],
        yaml_path: &str,
        json_path: &str,
    ) -> Json {
        let mut out = Map::new();
        let resource = is_resource(json_path);
        // Butane-only keys after the plain ones, so that they see `compression` and the
        // plain `ssh_authorized_keys` whatever order the file has.
        let butane_only = |key: &str| {
            matches!(
                key,
                "inline" | "local" | "ssh_authorized_keys_local" | "contents_local"
            )
        };
        let ordered = entries
            .iter()
            .filter(|(k, _, _)| !butane_only(k))
            .chain(entries.iter().filter(|(k, _, _)| butane_only(k)));
        for (key, key_mark, value) in ordered {
            let ypath = child(yaml_path, key);
            let mapped = ignition_key(key);
            let jpath = child(json_path, &mapped);
            match (key.as_str(), json_path) {
                ("variant" | "version", "$") => continue,
                ("boot_device", "$") if self.spec.fcos_since((1, 3, 0)) => continue,
                ("grub", "$") if self.spec.fcos_since((1, 5, 0)) => continue,
                ("trees", "$.storage") if !self.spec.is_base_v0_1() => continue,
                ("local", _) if resource && self.spec.is_base_v0_1() => {
                    self.warn(*key_mark, &ypath, format!("unused key {key}"));
                }
                ("with_mount_unit", _) if is_filesystem(json_path) => continue,
                ("inline", _) if resource && value.value == Value::Null => continue,
                ("inline", _) if resource => {
                    // A plain scalar is text here whatever it looks like (`inline: 1`).
                    let text = match (&value.value, &value.plain) {
                        (Value::Str(s), _) => Some(s.as_str()),
                        (Value::Seq(_) | Value::Map(_), _) => None,
                        (_, plain) => plain.as_deref(),
                    };
                    let Some(text) = text else {
                        self.error(
                            value.mark,
                            &ypath,
                            format!("expected a string, found {}", value.kind()),
                        );
                        continue;
                    };
                    if entries
                        .iter()
                        .any(|(k, _, _)| k == "source" || k == "local")
                    {
                        self.error(
                            *key_mark,
                            &ypath,
                            "only one of source, inline and local may be set",
                        );
                    }
                    self.origins.insert(
                        child(json_path, "source"),
                        (value.mark, ypath.clone(), key.clone()),
                    );
                    insert_data_url(&mut out, text.as_bytes(), self.spec.is_base_v0_1());
                }
                ("local", _) if resource => {
                    if entries.iter().any(|(k, _, _)| k == "source") {
                        self.error(
                            *key_mark,
                            &ypath,
                            "only one of source, inline and local may be set",
                        );
                    }
                    if let Some(data) = self.read_local(value, &ypath) {
                        self.origins.insert(
                            child(json_path, "source"),
                            (value.mark, ypath.clone(), key.clone()),
                        );
                        insert_data_url(&mut out, &data, false);
                    }
                }
                ("ssh_authorized_keys_local", _)
                    if is_user(json_path) && self.spec.has_local_fields() =>
                {
                    let Value::Seq(files) = &value.value else {
                        self.error(
                            value.mark,
                            &ypath,
                            format!("expected a list of file names, found {}", value.kind()),
                        );
                        continue;
                    };
                    let mut keys = Vec::new();
                    for (i, file) in files.iter().enumerate() {
                        if let Some(data) = self.read_local(file, &child(&ypath, &i.to_string())) {
                            let text = String::from_utf8_lossy(&data).into_owned();
                            // As Butane: one key per line (\n or \r\n), empty lines skipped.
                            keys.extend(
                                text.split('\n')
                                    .map(|l| l.strip_suffix('\r').unwrap_or(l))
                                    .filter(|l| !l.is_empty())
                                    .map(|l| Json::String(l.to_owned())),
                            );
                        }
                    }
                    let list = out
                        .entry("sshAuthorizedKeys")
                        .or_insert_with(|| Json::Array(Vec::new()));
                    if let Json::Array(list) = list {
                        list.extend(keys);
                    }
                    self.origins.insert(
                        child(json_path, "sshAuthorizedKeys"),
                        (value.mark, ypath, key.clone()),
                    );
                }
                ("contents_local", _)
                    if (is_unit(json_path) || is_dropin(json_path))
                        && self.spec.has_local_fields() =>
                {
                    if entries.iter().any(|(k, _, _)| k == "contents") {
                        self.error(
                            *key_mark,
                            &ypath,
                            "only one of contents and contents_local may be set",
                        );
                    }
                    if let Some(data) = self.read_local(value, &ypath) {
                        match String::from_utf8(data) {
                            Ok(text) => {
                                self.origins.insert(
                                    child(json_path, "contents"),
                                    (value.mark, ypath, key.clone()),
                                );
                                out.insert("contents".into(), Json::String(text));
                            }
                            Err(_) => {
                                self.error(value.mark, &ypath, "unit contents must be UTF-8 text")
                            }
                        }
                    }
                }
                ("source", _)
                    if resource
                        && entries
                            .iter()
                            .any(|(k, _, _)| k == "inline" || k == "local") =>
                {
                    // Already reported with inline/local.
                    continue;
                }
                _ => {
                    if !is_snake_case(key) {
                        // `sshAuthorizedKeys` is Ignition's spelling, not the language's.
                        self.warn(*key_mark, &ypath, format!("unused key {key}"));
                        continue;
                    }
                    if out.contains_key(&mapped) {
                        self.error(*key_mark, &ypath, format!("key {key} given twice"));
                        continue;
                    }
                    if let ("mode", Value::Int(mode)) = (key.as_str(), &value.value) {
                        // 644 meant as 0644: Butane's warning.
                        let digits = mode.to_string();
                        if *mode > 0o777
                            && digits.len() <= 4
                            && digits.bytes().all(|b| (b'0'..=b'7').contains(&b))
                        {
                            self.warn(
                                value.mark,
                                &ypath,
                                "unreasonable mode would be reasonable if specified in octal; remember to add a leading zero",
                            );
                        }
                    }
                    let v = self.walk(value, &ypath, &jpath, key);
                    // Point at a scalar's value, at a collection's key.
                    let mark = match value.value {
                        Value::Map(_) | Value::Seq(_) => *key_mark,
                        _ => value.mark,
                    };
                    self.origins.insert(jpath, (mark, ypath, key.clone()));
                    out.insert(mapped, v);
                }
            }
        }
        let _ = node;
        Json::Object(out)
    }

    /// `storage.trees`: every file below a local directory becomes a file entry (mode
    /// 0755 if executable, else 0644), every symlink a link; entries already listed
    /// for the same path get their contents from the tree.
    fn expand_trees(&mut self, root: &Node, config: &mut Json) {
        let Some(trees) = root.get("storage").and_then(|s| s.get("trees")) else {
            return;
        };
        let Value::Seq(items) = &trees.value else {
            self.error(
                trees.mark,
                "$.storage.trees",
                format!("expected a list, found {}", trees.kind()),
            );
            return;
        };
        for (i, item) in items.iter().enumerate() {
            let ypath = format!("$.storage.trees.{i}");
            let Some(local) = item.get("local") else {
                self.error(
                    item.mark,
                    &ypath,
                    "a tree needs local: the directory below --files-dir",
                );
                continue;
            };
            let dest = item
                .get("path")
                .and_then(Node::as_str)
                .unwrap_or("/")
                .to_owned();
            let Some(dir) = self.options.files_dir.clone() else {
                self.error(
                    local.mark,
                    &child(&ypath, "local"),
                    "storage.trees needs --files-dir",
                );
                continue;
            };
            let base = match local.as_str().map(|name| resolve_local(&dir, name)) {
                Some(Ok(base)) => base,
                Some(Err(why)) => {
                    self.error(local.mark, &child(&ypath, "local"), why);
                    continue;
                }
                None => {
                    self.error(
                        local.mark,
                        &child(&ypath, "local"),
                        "expected a directory name",
                    );
                    continue;
                }
            };
            let mut found = Vec::new();
            if let Err(e) = walk_dir(&base, &base, &mut found) {
                self.error(
                    local.mark,
                    &child(&ypath, "local"),
                    format!("cannot read tree {}: {e}", base.display()),
                );
                continue;
            }
            for (rel, entry) in found {
                let path = format!("{}/{rel}", dest.trim_end_matches('/'));
                let origin = (local.mark, child(&ypath, "local"), "local".to_owned());
                match entry {
                    TreeEntry::File { data, executable } => {
                        let Some(files) = storage_list(config, "files") else {
                            continue;
                        };
                        let existing_compression = files
                            .iter()
                            .find(|f| f["path"] == path.as_str())
                            .and_then(|f| f["contents"]["compression"].as_str())
                            .map(str::to_owned);
                        let (url, compression) =
                            sugar::make_data_url(&data, existing_compression.as_deref(), true);
                        let source = Json::String(url);
                        let compression =
                            Json::String(compression.or(existing_compression).unwrap_or_default());
                        if let Some(existing) =
                            files.iter_mut().find(|f| f["path"] == path.as_str())
                        {
                            let contents = existing.as_object_mut().map(|o| {
                                o.entry("contents")
                                    .or_insert_with(|| Json::Object(Map::new()))
                            });
                            match contents {
                                Some(Json::Object(c)) if !c.contains_key("source") => {
                                    c.insert("source".into(), source);
                                    c.insert("compression".into(), compression);
                                }
                                _ => self.error(local.mark, &child(&ypath, "local"), format!("file {path} from the tree already has contents in storage.files")),
                            }
                            if existing.get("mode").is_none() {
                                existing["mode"] =
                                    Json::from(if executable { 0o755 } else { 0o644 });
                            }
                        } else {
                            let index = files.len();
                            files.push(serde_json::json!({
                                "path": path,
                                "contents": {"source": source, "compression": compression},
                                "mode": if executable { 0o755 } else { 0o644 },
                            }));
                            self.origins
                                .insert(format!("$.storage.files.{index}"), origin);
                        }
                    }
                    TreeEntry::Link(target) => {
                        let Some(links) = storage_list(config, "links") else {
                            continue;
                        };
                        if links.iter().any(|l| l["path"] == path.as_str()) {
                            self.error(
                                local.mark,
                                &child(&ypath, "local"),
                                format!("link {path} from the tree is also in storage.links"),
                            );
                            continue;
                        }
                        let index = links.len();
                        links.push(serde_json::json!({"path": path, "target": target}));
                        self.origins
                            .insert(format!("$.storage.links.{index}"), origin);
                    }
                }
            }
        }
    }
}

enum TreeEntry {
    File { data: Vec<u8>, executable: bool },
    Link(String),
}

fn walk_dir(base: &Path, dir: &Path, out: &mut Vec<(String, TreeEntry)>) -> std::io::Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let meta = fs::symlink_metadata(&path)?;
        let rel = path
            .strip_prefix(base)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        if meta.file_type().is_symlink() {
            out.push((
                rel,
                TreeEntry::Link(fs::read_link(&path)?.to_string_lossy().into_owned()),
            ));
        } else if meta.is_dir() {
            walk_dir(base, &path, out)?;
        } else if meta.is_file() {
            use std::os::unix::fs::PermissionsExt;
            out.push((
                rel,
                TreeEntry::File {
                    data: fs::read(&path)?,
                    executable: meta.permissions().mode() & 0o111 != 0,
                },
            ));
        } else {
            return Err(std::io::Error::other(format!(
                "{rel} is not a regular file, directory or symlink"
            )));
        }
    }
    Ok(())
}

/// `storage.<key>` as a list, created when absent; `None` when the user wrote something
/// else there (validation then reports it at the user's value, which stays untouched).
fn storage_list<'a>(config: &'a mut Json, key: &str) -> Option<&'a mut Vec<Json>> {
    config
        .as_object_mut()?
        .entry("storage")
        .or_insert_with(|| Json::Object(Map::new()))
        .as_object_mut()?
        .entry(key)
        .or_insert_with(|| Json::Array(Vec::new()))
        .as_array_mut()
}

/// `dir/name`, refusing absolute names, `..`, and anything that resolves outside `dir`.
pub fn resolve_local(dir: &Path, name: &str) -> Result<PathBuf, String> {
    let rel = Path::new(name);
    if rel.is_absolute()
        || rel
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(format!(
            "local path {name:?} must be relative to --files-dir, without .."
        ));
    }
    let path = dir.join(rel);
    let Ok(real_dir) = dir.canonicalize() else {
        return Err(format!("--files-dir {} does not exist", dir.display()));
    };
    let Ok(real) = path.canonicalize() else {
        return Err(format!("local file {name:?} does not exist in --files-dir"));
    };
    if !real.starts_with(&real_dir) {
        return Err(format!(
            "local path {name:?} resolves outside --files-dir ({})",
            real.display()
        ));
    }
    Ok(real)
}

/// Sets `source` to a `data:` URL of `data` chosen as Butane chooses it (percent
/// encoding, base64, or gzip when that is shorter) and `compression` to match.
/// With `plain` (fcos 1.0.0), a percent-encoded URL and no `compression`, as Butane's
/// first base spec wrote it.
fn insert_data_url(out: &mut Map<String, Json>, data: &[u8], plain: bool) {
    if plain {
        let (url, _) = sugar::make_data_url(data, Some("none"), false);
        out.insert("source".into(), Json::String(url));
        return;
    }
    let given = out
        .get("compression")
        .and_then(Json::as_str)
        .map(str::to_owned);
    let (url, compression) = sugar::make_data_url(data, given.as_deref(), true);
    out.insert("source".into(), Json::String(url));
    if let Some(compression) = compression {
        out.insert("compression".into(), Json::String(compression));
    }
}

/// `lower_snake_case`: the only spelling of the language's keys.
fn is_snake_case(key: &str) -> bool {
    !key.is_empty()
        && key.split('_').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

fn is_resource(json_path: &str) -> bool {
    let parts: Vec<&str> = json_path.split('.').collect();
    matches!(
        parts.as_slice(),
        ["$", "storage", "files", _, "contents"]
            | ["$", "storage", "files", _, "append", _]
            | ["$", "storage", "luks", _, "keyFile"]
            | ["$", "ignition", "config", "merge", _]
            | ["$", "ignition", "config", "replace"]
            | [
                "$",
                "ignition",
                "security",
                "tls",
                "certificateAuthorities",
                _
            ]
    )
}

fn is_filesystem(json_path: &str) -> bool {
    matches!(
        json_path.split('.').collect::<Vec<_>>().as_slice(),
        ["$", "storage", "filesystems", _]
    )
}

fn is_user(json_path: &str) -> bool {
    matches!(
        json_path.split('.').collect::<Vec<_>>().as_slice(),
        ["$", "passwd", "users", _]
    )
}

fn is_unit(json_path: &str) -> bool {
    matches!(
        json_path.split('.').collect::<Vec<_>>().as_slice(),
        ["$", "systemd", "units", _]
    )
}

fn is_dropin(json_path: &str) -> bool {
    matches!(
        json_path.split('.').collect::<Vec<_>>().as_slice(),
        ["$", "systemd", "units", _, "dropins", _]
    )
}

/// Renders an Ignition report path as `$.a.0.b`.
fn json_path_string(path: &[cairn_ignition::PathElem]) -> String {
    let mut out = String::from("$");
    for elem in path {
        match elem {
            cairn_ignition::PathElem::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            cairn_ignition::PathElem::Index(i) => {
                out.push('.');
                out.push_str(&i.to_string());
            }
        }
    }
    out
}

fn doc_path_string(path: &[DocPath]) -> String {
    let mut out = String::from("$");
    for elem in path {
        out.push('.');
        match elem {
            DocPath::Key(k) => out.push_str(k),
            DocPath::Index(i) => out.push_str(&i.to_string()),
        }
    }
    out
}

/// Finds the YAML node of a document path (for sugar errors).
fn node_at<'a>(root: &'a Node, path: &[DocPath]) -> &'a Node {
    let mut node = root;
    for elem in path {
        let next = match (elem, &node.value) {
            (DocPath::Key(k), Value::Map(_)) => node.get(k),
            (DocPath::Index(i), Value::Seq(items)) => items.get(*i),
            _ => None,
        };
        match next {
            Some(n) => node = n,
            None => break,
        }
    }
    node
}

/// Translates one YAML source. `Err` holds every error (and the warnings seen so far).
pub fn translate(source: &Source, options: &Options) -> Result<Translated, Vec<Diagnostic>> {
    let root = yaml::parse(&source.text).map_err(|e| {
        vec![Diagnostic::new(
            Severity::Error,
            format!("invalid YAML: {}", e.message),
            source,
            e.mark,
            "",
        )]
    })?;
    let fail = |mark: Mark, path: &str, message: String| {
        vec![Diagnostic::new(
            Severity::Error,
            message,
            source,
            mark,
            path,
        )]
    };
    if !matches!(root.value, Value::Map(_)) {
        return Err(fail(
            root.mark,
            "$",
            format!("a config must be a mapping, found {}", root.kind()),
        ));
    }
    let field = |key: &str| -> Result<String, Vec<Diagnostic>> {
        match root.get(key) {
            Some(node) => node.as_str().map(str::to_owned).ok_or_else(|| {
                fail(node.mark, &format!("$.{key}"), format!("{key} must be a string, found {}", node.kind()))
            }),
            None => Err(fail(root.mark, "$", format!("missing {key}: every config starts with variant and version (e.g. variant: fcos, version: 1.6.0)"))),
        }
    };
    let variant = field("variant")?;
    let version = field("version")?;
    if variant == "openshift" {
        let node = root.get("variant").unwrap_or(&root);
        return Err(fail(
            node.mark,
            "$.variant",
            "the openshift variant is not supported yet; use fcos".into(),
        ));
    }
    let Some(spec) = Spec::find(&variant, &version) else {
        let known: Vec<String> = SPECS
            .iter()
            .filter(|s| s.variant == variant)
            .map(|s| s.version.to_owned())
            .collect();
        let (key, hint) = if known.is_empty() {
            ("variant", "variants: fcos, flatcar, r4e, fiot".to_owned())
        } else {
            (
                "version",
                format!("versions of {variant}: {}", known.join(", ")),
            )
        };
        let node = root.get(key).unwrap_or(&root);
        return Err(fail(
            node.mark,
            &format!("$.{key}"),
            format!("unsupported {variant} {version}; {hint}"),
        ));
    };
    let mut ctx = Ctx {
        source,
        options,
        spec,
        diagnostics: Vec::new(),
        origins: HashMap::new(),
    };
    let mut config = ctx.walk(&root, "$", "$", "");
    if !config.is_object() {
        config = Json::Object(Map::new());
    }
    let ignition = config.as_object_mut().map(|o| {
        o.entry("ignition")
            .or_insert_with(|| Json::Object(Map::new()))
    });
    if let Some(Json::Object(ignition)) = ignition {
        ignition.insert("version".into(), Json::String(spec.ignition.to_owned()));
    }
    ctx.expand_trees(&root, &mut config);
    let doc = root.to_json();
    let numbers = spec.numbers();
    for w in sugar::desugar_warnings(
        &sugar::Variant {
            name: spec.variant,
            version: numbers,
        },
        &doc,
    ) {
        let node = node_at(&root, &w.path);
        ctx.warn(node.mark, &doc_path_string(&w.path), w.message);
    }
    if let Err(errors) = sugar::desugar(
        &sugar::Variant {
            name: spec.variant,
            version: numbers,
        },
        &doc,
        &mut config,
    ) {
        for e in errors {
            let node = node_at(&root, &e.path);
            ctx.error(node.mark, &doc_path_string(&e.path), e.message);
        }
    }
    if !ctx.diagnostics.iter().any(Diagnostic::is_error) {
        let mut parsed = cairn_ignition::parse_value(&config);
        // A plain scalar is read as the type its field expects, as Butane's YAML
        // library does: `inline: 1` is "1", `enabled: yes` is true, `size_mib: 1e3` is 1000.
        for _ in 0..4 {
            let Ok((_, _, report)) = &parsed else { break };
            let fixes: Vec<(Vec<cairn_ignition::PathElem>, Json)> = report
                .entries
                .iter()
                .filter_map(|entry| {
                    let origin = ctx.origins.get(&json_path_string(&entry.path))?;
                    let node = node_at_yaml_path(&root, &origin.1)?;
                    Some((
                        entry.path.clone(),
                        coerce(&entry.message, node.plain.as_deref()?)?,
                    ))
                })
                .collect();
            if fixes.is_empty() {
                break;
            }
            for (path, value) in fixes {
                if let Some(slot) = json_at_mut(&mut config, &path) {
                    *slot = value;
                }
            }
            parsed = cairn_ignition::parse_value(&config);
        }
        match parsed {
            Ok((typed, version, report)) => {
                // Written from the typed model: keys Ignition does not know (reported
                // as unused above) do not reach the output, as with Butane.
                config = typed.to_json(version);
                for entry in &report.entries {
                    let path = json_path_string(&entry.path);
                    let (mark, yaml_path, key) = nearest_origin(&ctx.origins, &path, root.mark);
                    let mut message = entry
                        .message
                        .replace("an object", "a mapping")
                        .replace("found object", "found a mapping");
                    if let Some(cairn_ignition::PathElem::Key(k)) = entry.path.last() {
                        if !key.is_empty() && *k != key {
                            message = message.replace(k.as_str(), &key);
                        }
                    }
                    match entry.severity {
                        cairn_ignition::Severity::Error => ctx.error(mark, &yaml_path, message),
                        cairn_ignition::Severity::Warning => ctx.warn(mark, &yaml_path, message),
                    }
                }
            }
            Err(e) => ctx.error(
                root.mark,
                "$",
                format!("the translated config is not valid Ignition: {e}"),
            ),
        }
    }
    // In the order of the file, as the user reads it.
    ctx.diagnostics
        .sort_by_key(|d| (d.mark.line, d.mark.column, !d.is_error()));
    if ctx.diagnostics.iter().any(Diagnostic::is_error) {
        return Err(ctx.diagnostics);
    }
    let warnings = ctx.diagnostics;
    Ok(Translated {
        spec,
        config,
        warnings,
    })
}

/// The value a plain scalar's text has as the type a type error says was expected.
fn coerce(message: &str, raw: &str) -> Option<Json> {
    if message.starts_with("expected a string, found") {
        return Some(Json::String(raw.to_owned()));
    }
    if message.starts_with("expected a boolean, found") {
        return match raw.to_ascii_lowercase().as_str() {
            "y" | "yes" | "on" | "true" => Some(Json::Bool(true)),
            "n" | "no" | "off" | "false" => Some(Json::Bool(false)),
            _ => None,
        };
    }
    if message.starts_with("expected an integer, found") {
        let digits = raw.replace('_', "");
        if let Ok(i) = digits.parse::<i64>() {
            return Some(Json::from(i));
        }
        let f = digits.parse::<f64>().ok()?;
        if f.fract() == 0.0 && f.abs() < 9.0e15 {
            return Some(Json::from(f as i64));
        }
    }
    None
}

/// The YAML node at a `$.a.0.b` path, if there is one.
fn node_at_yaml_path<'a>(root: &'a Node, path: &str) -> Option<&'a Node> {
    let mut node = root;
    for part in path.strip_prefix('$')?.split('.').skip(1) {
        node = match &node.value {
            Value::Map(_) => node.get(part)?,
            Value::Seq(items) => items.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(node)
}

fn json_at_mut<'a>(value: &'a mut Json, path: &[cairn_ignition::PathElem]) -> Option<&'a mut Json> {
    let mut value = value;
    for elem in path {
        value = match elem {
            cairn_ignition::PathElem::Key(k) => value.get_mut(k.as_str())?,
            cairn_ignition::PathElem::Index(i) => value.get_mut(*i)?,
        };
    }
    Some(value)
}

/// The origin of a JSON path, or of its nearest ancestor that has one.
fn nearest_origin(
    origins: &HashMap<String, (Mark, String, String)>,
    path: &str,
    fallback: Mark,
) -> (Mark, String, String) {
    let mut p = path.to_owned();
    loop {
        if let Some(origin) = origins.get(&p) {
            return origin.clone();
        }
        match p.rfind('.') {
            Some(i) => p.truncate(i),
            None => return (fallback, "$".into(), String::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_to_ignition_names() {
        assert_eq!(ignition_key("size_mib"), "sizeMiB");
        assert_eq!(ignition_key("start_mib"), "startMiB");
        assert_eq!(ignition_key("ssh_authorized_keys"), "sshAuthorizedKeys");
        assert_eq!(ignition_key("type_guid"), "typeGuid");
        assert_eq!(ignition_key("wipe_filesystem"), "wipeFilesystem");
        assert_eq!(ignition_key("path"), "path");
    }

    #[test]
    fn plain_scalars_take_the_type_their_field_expects() {
        let text = "variant: fcos\nversion: 1.6.0\npasswd:\n  users:\n    - name: 1000\n      password_hash: 12345\nstorage:\n  files:\n    - path: /etc/x\n      contents:\n        inline: 1\n  disks:\n    - device: /dev/sdb\n      wipe_table: true\n      partitions:\n        - label: p\n          size_mib: 1e3\nsystemd:\n  units:\n    - name: a.service\n      enabled: yes\n";
        let source = Source {
            name: "t.bu".into(),
            text: text.into(),
        };
        let t = translate(&source, &Options::default()).unwrap();
        let c = &t.config;
        assert_eq!(c["passwd"]["users"][0]["name"], "1000");
        assert_eq!(c["passwd"]["users"][0]["passwordHash"], "12345");
        assert_eq!(c["storage"]["files"][0]["contents"]["source"], "data:,1");
        assert_eq!(c["storage"]["disks"][0]["partitions"][0]["sizeMiB"], 1000);
        assert_eq!(c["systemd"]["units"][0]["enabled"], true);
        let quoted = Source {
            name: "t.bu".into(),
            text: text.replace("enabled: yes", "enabled: 'yes'"),
        };
        let errors = translate(&quoted, &Options::default()).unwrap_err();
        assert!(
            errors[0].message.contains("expected a boolean"),
            "{errors:?}"
        );
    }

    #[test]
    fn local_paths_stay_below_the_files_dir() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a"), "x").unwrap();
        assert!(resolve_local(dir.path(), "a").is_ok());
        assert!(resolve_local(dir.path(), "../a").is_err());
        assert!(resolve_local(dir.path(), "/etc/passwd").is_err());
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("escape")).unwrap();
        assert!(resolve_local(dir.path(), "escape")
            .unwrap_err()
            .contains("outside"));
    }
}
