//! Up-translation to the newest model and writing configs as a given spec version.

use cairn_ignition::{parse, parse_value, validate, Config, File, Resource, Version};
use serde_json::json;

/// A 3.0.0 config touching every section, parsed and written as 3.6.0, is a valid 3.6.0
/// config with the same content.
#[test]
fn config_3_0_translates_to_3_6() {
    let v3_0 = json!({
        "ignition": {"version": "3.0.0",
            "config": {"merge": [{"source": "https://example.com/a.ign"}], "replace": {"source": "data:,%7B%7D"}},
            "timeouts": {"httpTotal": 30},
            "security": {"tls": {"certificateAuthorities": [{"source": "data:,ca"}]}}},
        "storage": {
            "disks": [{"device": "/dev/sda", "partitions": [{"number": 1, "label": "root", "sizeMiB": 0}]}],
            "raid": [{"name": "md0", "level": "raid1", "devices": ["/dev/sdb", "/dev/sdc"]}],
            "filesystems": [{"device": "/dev/disk/by-partlabel/root", "format": "xfs", "path": "/"}],
            "files": [{"path": "/etc/motd", "mode": 420, "contents": {"source": "data:,hi", "compression": ""}, "append": [{"source": "data:,more"}]}],
            "directories": [{"path": "/opt", "mode": 493}],
            "links": [{"path": "/etc/localtime", "target": "/usr/share/zoneinfo/UTC"}]},
        "passwd": {"users": [{"name": "core", "sshAuthorizedKeys": ["ssh-ed25519 AAAA"]}], "groups": [{"name": "ops"}]},
        "systemd": {"units": [{"name": "a.service", "enabled": true, "contents": "[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n"}]}
    });
    let (config, version, report) = parse_value(&v3_0).unwrap();
    assert_eq!(version, Version::V3_0_0);
    assert!(report.is_empty(), "{report}");

    let v3_6 = config.to_json(Version::V3_6_0);
    assert_eq!(v3_6["ignition"]["version"], "3.6.0");
    let bytes = serde_json::to_vec_pretty(&v3_6).unwrap();
    let (again, version, report) = parse(&bytes).unwrap();
    assert_eq!(version, Version::V3_6_0);
    assert!(report.is_empty(), "{report}");
    assert_eq!(again, config);
    assert_eq!(again.storage.raid[0].level.as_deref(), Some("raid1"));
    assert_eq!(
        again.ignition.security.tls.certificate_authorities[0]
            .source
            .as_deref(),
        Some("data:,ca")
    );
}

#[test]
fn special_mode_bits_before_3_6_are_masked_as_ignition_does() {
    let value = json!({"ignition": {"version": "3.5.0"},
        "storage": {"files": [{"path": "/f", "mode": 0o4755}], "directories": [{"path": "/d", "mode": 0o1777}]}});
    let (config, _, report) = parse_value(&value).unwrap();
    assert_eq!(report.warnings().count(), 2, "{report}");
    assert_eq!(config.storage.files[0].mode, Some(0o755));
    assert_eq!(config.storage.directories[0].mode, Some(0o777));

    let value = json!({"ignition": {"version": "3.6.0"}, "storage": {"files": [{"path": "/f", "mode": 0o4755}]}});
    let (config, _, report) = parse_value(&value).unwrap();
    assert!(report.is_empty());
    assert_eq!(config.storage.files[0].mode, Some(0o4755));
}

#[test]
fn plain_strings_of_old_specs_become_present_values() {
    let value = json!({"ignition": {"version": "3.2.0"},
        "storage": {"links": [{"path": "/l"}], "raid": [{"name": "md", "level": "raid1", "devices": ["/dev/a"]}],
                    "luks": [{"name": "c", "device": "/dev/a", "clevis": {"custom": {"pin": "tpm2", "config": "{}"}}}]}});
    let (config, _, report) = parse_value(&value).unwrap();
    assert!(report.is_empty(), "{report}");
    // Ignition's 3.2 -> 3.3 translation turns the plain `target` string into a present "".
    assert_eq!(config.storage.links[0].target.as_deref(), Some(""));
    // ... which 3.3.0 and later refuse, as Ignition would after translation.
    assert!(validate(&config, Version::V3_6_0).has_errors());
}

#[test]
fn tang_advertisement_survives_translation() {
    // Ignition's 3.4 -> 3.5 translator forgets the advertisement; cairn keeps it.
    let value = json!({"ignition": {"version": "3.4.0"},
        "storage": {"luks": [{"name": "c", "device": "/dev/a", "clevis": {"tang": [{"url": "http://t", "thumbprint": "x", "advertisement": "{}"}]}}]}});
    let (config, _, _) = parse_value(&value).unwrap();
    let json = config.to_json(Version::V3_6_0);
    assert_eq!(
        json["storage"]["luks"][0]["clevis"]["tang"][0]["advertisement"],
        "{}"
    );
}

#[test]
fn writing_an_older_version_leaves_out_what_it_does_not_know() {
    let value = json!({"ignition": {"version": "3.6.0", "proxy": {"httpProxy": "http://p"}},
        "kernelArguments": {"shouldExist": ["quiet"]},
        "storage": {"files": [{"path": "/f", "contents": {"source": "https://x/f", "httpHeaders": [{"name": "A", "value": "b"}]}}],
                    "luks": [{"name": "c", "device": "/dev/a", "discard": true}]}});
    let (config, _, _) = parse_value(&value).unwrap();
    let old = config.to_json(Version::V3_0_0);
    assert_eq!(
        old,
        json!({"ignition": {"version": "3.0.0"}, "storage": {"files": [{"path": "/f", "contents": {"source": "https://x/f"}}]}})
    );
    let (_, _, report) = parse_value(&old).unwrap();
    assert!(report.is_empty(), "{report}");
    let v3_3 = config.to_json(Version::V3_3_0);
    assert_eq!(v3_3["kernelArguments"], json!({"shouldExist": ["quiet"]}));
    assert_eq!(
        v3_3["storage"]["luks"][0],
        json!({"name": "c", "device": "/dev/a"})
    );
}

#[test]
fn a_built_config_serialises_as_ignition_json() {
    let mut config = Config::default();
    config.storage.files.push(File {
        path: "/etc/motd".into(),
        mode: Some(0o644),
        contents: Resource {
            source: Some("data:,hello".into()),
            ..Resource::default()
        },
        ..File::default()
    });
    assert!(validate(&config, Version::LATEST).is_empty());
    assert_eq!(
        config.to_json(Version::V3_4_0),
        json!({"ignition": {"version": "3.4.0"},
               "storage": {"files": [{"path": "/etc/motd", "mode": 420, "contents": {"source": "data:,hello"}}]}})
    );
}
