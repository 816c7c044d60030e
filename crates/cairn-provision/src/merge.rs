//! Merging several translated configs into one, in the order given, with the rule
//! Ignition applies when a config merges a child (`ignition.config.merge`):
//!
//! - objects merge key by key; for a plain value (string, number, boolean) the later
//!   file wins;
//! - lists of objects with an identity (files, directories and links by `path`; units,
//!   drop-ins, users, groups, RAID arrays and LUKS devices by `name`; disks and
//!   filesystems by `device`; partitions by `number`, else `label`; merge and CA
//!   sources by `source`) merge entries with the same identity field by field, and
//!   append new ones;
//! - files, directories and links share one path space (a later entry at a path replaces
//!   the earlier one in whichever list), as do `shouldExist`/`shouldNotExist`;
//! - `append` and the `options` lists are appended as they are; other lists (SSH keys,
//!   a user's groups) are joined, keeping the first occurrence of each value.
//!
//! The result carries the highest `ignition.version` of the inputs (every input is
//! valid at that version, since specs only add fields).

use serde_json::{Map, Value};

fn identity_keys(list_key: &str) -> &'static [&'static str] {
    match list_key {
        "files" | "directories" | "links" => &["path"],
        "units" | "dropins" | "users" | "groups" | "raid" | "luks" => &["name"],
        "disks" | "filesystems" => &["device"],
        "partitions" => &["number", "label"],
        "merge" | "certificateAuthorities" => &["source"],
        "httpHeaders" => &["name"],
        "tang" => &["url"],
        _ => &[],
    }
}

/// The first identity field an entry has: (which of `keys`, its value).
fn identity<'a>(item: &'a Value, keys: &[&str]) -> Option<(usize, &'a Value)> {
    keys.iter().enumerate().find_map(|(i, key)| {
        item.get(key)
            .filter(|v| !(v.is_null() || (*key == "number" && v.as_u64() == Some(0))))
            .map(|v| (i, v))
    })
}

/// Lists Ignition appends to without looking for duplicates.
fn is_plain_append(list_key: &str) -> bool {
    matches!(
        list_key,
        "append" | "options" | "mountOptions" | "openOptions"
    )
}

fn merge_list(key: &str, base: &mut Vec<Value>, child: Vec<Value>) {
    if is_plain_append(key) {
        base.extend(child);
        return;
    }
    let keys = identity_keys(key);
    for item in child {
        if !item.is_object() || keys.is_empty() {
            if !base.contains(&item) {
                base.push(item);
            }
            continue;
        }
        let found = identity(&item, keys)
            .and_then(|(k, v)| base.iter().position(|b| identity(b, keys) == Some((k, v))));
        match found {
            Some(i) => merge_value(key, &mut base[i], item),
            None => base.push(item),
        }
    }
}

fn merge_value(key: &str, base: &mut Value, child: Value) {
    match (base, child) {
        (Value::Object(b), Value::Object(c)) => merge_object(b, c),
        (Value::Array(b), Value::Array(c)) => merge_list(key, b, c),
        (b, c) => *b = c,
    }
}

/// Entries of `child` claim their path (or kernel argument) in every list that shares
/// the namespace: a later file's link replaces an earlier file's file at that path.
fn release_shared_keys(base: &mut Map<String, Value>, child: &Map<String, Value>) {
    let groups: [(&[&str], &str); 2] = [
        (&["files", "directories", "links"], "path"),
        (&["shouldExist", "shouldNotExist"], ""),
    ];
    for (lists, field) in groups {
        for list in lists {
            let Some(Value::Array(items)) = child.get(*list) else {
                continue;
            };
            let claimed: Vec<&Value> = items
                .iter()
                .map(|item| if field.is_empty() { item } else { &item[field] })
                .collect();
            for other in lists.iter().filter(|o| *o != list) {
                if let Some(Value::Array(existing)) = base.get_mut(*other) {
                    existing.retain(|item| {
                        let id = if field.is_empty() { item } else { &item[field] };
                        !claimed.contains(&id)
                    });
                }
            }
        }
    }
}

fn merge_object(base: &mut Map<String, Value>, child: Map<String, Value>) {
    release_shared_keys(base, &child);
    for (key, value) in child {
        match base.get_mut(&key) {
            Some(existing) => merge_value(&key, existing, value),
            None => {
                base.insert(key, value);
            }
        }
    }
}

fn version_of(config: &Value) -> (u32, u32, u32) {
    let text = config["ignition"]["version"].as_str().unwrap_or("0.0.0");
    let mut parts = text.split(['.', '-']).map(|p| p.parse().unwrap_or(0));
    (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    )
}

/// Merges `configs` in order; the later wins where they conflict.
pub fn merge_configs(configs: Vec<Value>) -> Value {
    let version = configs
        .iter()
        .max_by_key(|c| version_of(c))
        .and_then(|c| c["ignition"]["version"].as_str().map(str::to_owned));
    let mut result = Value::Object(Map::new());
    for config in configs {
        merge_value("", &mut result, config);
    }
    if let (Some(version), Some(ignition)) = (version, result.get_mut("ignition")) {
        ignition["version"] = Value::String(version);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn later_files_win_and_lists_merge_by_identity() {
        let a = json!({"ignition": {"version": "3.1.0"},
            "storage": {"files": [{"path": "/a", "mode": 420}, {"path": "/b"}]},
            "passwd": {"users": [{"name": "core", "sshAuthorizedKeys": ["k1"]}]}});
        let b = json!({"ignition": {"version": "3.4.0"},
            "storage": {"files": [{"path": "/a", "mode": 384}, {"path": "/c"}]},
            "passwd": {"users": [{"name": "core", "sshAuthorizedKeys": ["k1", "k2"]}]}});
        let merged = merge_configs(vec![a, b]);
        assert_eq!(merged["ignition"]["version"], "3.4.0");
        assert_eq!(
            merged["storage"]["files"],
            json!([{"path": "/a", "mode": 384}, {"path": "/b"}, {"path": "/c"}])
        );
        assert_eq!(
            merged["passwd"]["users"][0]["sshAuthorizedKeys"],
            json!(["k1", "k2"])
        );
        let a = json!({"storage": {"files": [{"path": "/x", "append": [{"source": "data:,l"}]}]},
            "kernelArguments": {"shouldExist": ["quiet"]}});
        let b = json!({"storage": {"links": [{"path": "/x", "target": "/y"}],
                "files": [{"path": "/z", "append": [{"source": "data:,l"}]}]},
            "kernelArguments": {"shouldNotExist": ["quiet"]}});
        let c = json!({"storage": {"files": [{"path": "/z", "append": [{"source": "data:,l"}]}]}});
        let merged = merge_configs(vec![a, b, c]);
        assert_eq!(
            merged["storage"]["links"],
            json!([{"path": "/x", "target": "/y"}])
        );
        assert_eq!(
            merged["storage"]["files"].as_array().unwrap().len(),
            1,
            "{merged}"
        );
        assert_eq!(
            merged["storage"]["files"][0]["append"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
        assert_eq!(merged["kernelArguments"]["shouldExist"], json!([]));
        assert_eq!(
            merged["kernelArguments"]["shouldNotExist"],
            json!(["quiet"])
        );
    }
}
