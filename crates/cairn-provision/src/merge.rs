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
//! valid at that version, since specs only add fields). The merge is implemented once,
//! in `sugar::merge_ignition`, which the variant sugar also uses.

use serde_json::{Map, Value};

fn version_of(config: &Value) -> (u32, u32, u32) {
    let text = config["ignition"]["version"].as_str().unwrap_or("0.0.0");
    let mut parts = text.split(['.', '-']).map(|p| p.parse().unwrap_or(0));
    (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    )
}

/// Merges `configs` in order; the later wins where they conflict. The merge itself is
/// Ignition's, the one the variant sugar merges its rendered sections with.
pub fn merge_configs(configs: Vec<Value>) -> Value {
    let newest = configs.iter().max_by_key(|c| version_of(c)).cloned();
    let version = newest
        .as_ref()
        .and_then(|c| c["ignition"]["version"].as_str().map(str::to_owned));
    let old_clevis = newest.as_ref().is_some_and(|c| version_of(c) <= (3, 2, 0));
    let mut result = Value::Object(Map::new());
    for config in configs {
        result = crate::sugar::merge_ignition(result, config, old_clevis);
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
        assert!(
            merged["kernelArguments"].get("shouldExist").is_none(),
            "{merged}"
        );
        assert_eq!(
            merged["kernelArguments"]["shouldNotExist"],
            json!(["quiet"])
        );
    }
}
