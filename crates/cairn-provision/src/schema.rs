//! A JSON Schema of the YAML language, for editors (completion, checking as you type).
//!
//! Generated from the types: the Ignition model's schema (`cairn_ignition::Config`, derived
//! with `schemars`) with every key in the language's `snake_case`, Ignition's
//! `ignition.version` replaced by the language's `variant` and `version`, and the
//! language's own fields added where they belong (`inline`/`local` on resources,
//! `*_local`, `storage.trees`, `with_mount_unit`, `boot_device`, `grub`). The committed
//! copy is `docs/schema/cairn-config.schema.json`; a test keeps it current.

use serde_json::{json, Map, Value};

use crate::translate::SPECS;

/// `sizeMiB` → `size_mib`, `sshAuthorizedKeys` → `ssh_authorized_keys`.
pub fn butane_key(key: &str) -> String {
    let key = key.replace("MiB", "Mib");
    let mut out = String::with_capacity(key.len() + 4);
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn rename_keys(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::Object(properties)) = map.get_mut("properties") {
                let renamed: Map<String, Value> = std::mem::take(properties)
                    .into_iter()
                    .map(|(k, v)| (butane_key(&k), v))
                    .collect();
                *properties = renamed;
            }
            if let Some(Value::Array(required)) = map.get_mut("required") {
                for r in required.iter_mut() {
                    if let Value::String(s) = r {
                        *s = butane_key(s);
                    }
                }
            }
            for v in map.values_mut() {
                rename_keys(v);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(rename_keys),
        _ => {}
    }
}

fn string(description: &str) -> Value {
    json!({"type": "string", "description": description})
}

fn add(def: &mut Value, key: &str, schema: Value) {
    if let Some(Value::Object(properties)) = def.get_mut("properties") {
        properties.insert(key.to_owned(), schema);
    }
}

fn has(def: &Value, key: &str) -> bool {
    def.get("properties").and_then(|p| p.get(key)).is_some()
}

/// The schema, as a JSON value.
pub fn yaml_schema() -> Value {
    let mut schema = serde_json::to_value(schemars::schema_for!(cairn_ignition::Config))
        .unwrap_or_else(|_| json!({}));
    rename_keys(&mut schema);
    if let Some(Value::Object(defs)) = schema.get_mut("$defs") {
        for (name, def) in defs.iter_mut() {
            if has(def, "source") && has(def, "compression") {
                add(
                    def,
                    "inline",
                    string("The contents, written here (becomes a data: URL)."),
                );
                add(
                    def,
                    "local",
                    string("A file below --files-dir whose contents are embedded."),
                );
            }
            if has(def, "ssh_authorized_keys") {
                add(
                    def,
                    "ssh_authorized_keys_local",
                    json!({"type": "array", "items": {"type": "string"},
                        "description": "Files below --files-dir with one SSH key per line."}),
                );
            }
            if has(def, "contents") && has(def, "name") && !has(def, "path") {
                add(
                    def,
                    "contents_local",
                    string("A file below --files-dir holding the unit or drop-in."),
                );
            }
            if has(def, "wipe_filesystem") {
                add(
                    def,
                    "with_mount_unit",
                    json!({"type": "boolean",
                        "description": "Generate a systemd mount (or swap) unit for this filesystem."}),
                );
            }
            if has(def, "files") && has(def, "disks") {
                add(
                    def,
                    "trees",
                    json!({"type": "array", "description": "Directories below --files-dir copied into the root.",
                        "items": {"type": "object", "additionalProperties": false,
                            "required": ["local"],
                            "properties": {"local": string("A directory below --files-dir."),
                                "path": string("Where it goes (default /).")}}}),
                );
            }
            if name == "Ignition" {
                if let Some(Value::Object(properties)) = def.get_mut("properties") {
                    properties.remove("version");
                }
                if let Some(Value::Array(required)) = def.get_mut("required") {
                    required.retain(|r| r != "version");
                }
            }
        }
    }
    let variants: Vec<&str> = {
        let mut v: Vec<&str> = SPECS.iter().map(|s| s.variant).collect();
        v.dedup();
        v
    };
    let mut versions: Vec<&str> = SPECS.iter().map(|s| s.version).collect();
    versions.sort();
    versions.dedup();
    if let Some(Value::Object(root)) = Some(&mut schema) {
        root.insert(
            "title".into(),
            json!("cairn provisioning config (Butane-compatible YAML)"),
        );
        if let Some(Value::Object(properties)) = root.get_mut("properties") {
            properties.insert(
                "variant".into(),
                json!({"type": "string", "enum": variants}),
            );
            properties.insert(
                "version".into(),
                json!({"type": "string", "enum": versions}),
            );
            properties.insert("boot_device".into(), boot_device());
            properties.insert(
                "grub".into(),
                json!({"type": "object", "properties": {"users": {"type": "array",
                    "items": {"type": "object", "required": ["name"], "properties": {
                        "name": string("The GRUB user."),
                        "password_hash": string("grub2-mkpasswd-pbkdf2 output.")}}}}}),
            );
        }
        root.insert("required".into(), json!(["variant", "version"]));
    }
    schema
}

fn boot_device() -> Value {
    json!({
        "type": "object",
        "description": "The boot disk's layout, encryption and mirroring (fcos 1.3+).",
        "properties": {
            "layout": {"type": "string", "enum": ["x86_64", "aarch64", "ppc64le", "s390x-eckd", "s390x-zfcp", "s390x-virt"]},
            "luks": {"type": "object", "properties": {
                "tpm2": {"type": "boolean"},
                "tang": {"type": "array", "items": {"type": "object", "required": ["url"], "properties": {
                    "url": {"type": "string"}, "thumbprint": {"type": "string"}, "advertisement": {"type": "string"}}}},
                "threshold": {"type": "integer", "minimum": 1},
                "discard": {"type": "boolean"},
                "device": {"type": "string"},
                "cex": {"type": "object", "properties": {"enabled": {"type": "boolean"}}}}},
            "mirror": {"type": "object", "properties": {
                "devices": {"type": "array", "items": {"type": "string"}, "minItems": 2}}}
        }
    })
}

/// The schema as the committed file holds it (pretty JSON and a newline).
pub fn yaml_schema_text() -> String {
    let mut text = serde_json::to_string_pretty(&yaml_schema()).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_back_to_the_language() {
        assert_eq!(butane_key("sizeMiB"), "size_mib");
        assert_eq!(butane_key("sshAuthorizedKeys"), "ssh_authorized_keys");
        assert_eq!(butane_key("typeGuid"), "type_guid");
        for key in ["size_mib", "start_mib", "http_headers", "wipe_filesystem"] {
            assert_eq!(butane_key(&crate::translate::ignition_key(key)), key);
        }
    }

    #[test]
    fn the_committed_schema_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../docs/schema/cairn-config.schema.json");
        let text = yaml_schema_text();
        if std::env::var_os("CAIRN_BLESS").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &text).unwrap();
        }
        let committed = std::fs::read_to_string(&path)
            .expect("docs/schema/cairn-config.schema.json (CAIRN_BLESS=1 writes it)");
        assert!(
            committed == text,
            "the schema changed with the types: run CAIRN_BLESS=1 cargo test -p cairn-provision and commit"
        );
        let schema: Value = serde_json::from_str(&committed).unwrap();
        let storage = &schema["$defs"]["Storage"]["properties"];
        assert!(storage.get("trees").is_some() && storage.get("files").is_some());
        assert!(schema["properties"]["boot_device"].is_object());
        let file = &schema["$defs"]["File"]["properties"];
        assert!(file.get("overwrite").is_some(), "{file}");
    }
}
