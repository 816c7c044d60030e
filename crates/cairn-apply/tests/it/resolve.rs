//! The fetch stage against a real local HTTP server: replace and merges rendered as
//! Ignition renders them, resources inlined verified, and every refusal naming its field.

use std::net::TcpListener;
use std::time::Duration;

use base64::Engine as _;
use cairn_apply::fetch::{decode_data_url, FetchOptions};
use cairn_apply::resolve::{resolve, ResolveError, ResolveOptions, Resolved};
use serde_json::{json, Value};

use crate::common::{gzip, sha512, Site};

/// A self-signed CA certificate (no key kept), made with
/// `openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=cairn test CA"`.
const CA_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBhzCCAS2gAwIBAgIUasyFhpLGLI0na8qeW3HWDTQTDmowCgYIKoZIzj0EAwIw
GDEWMBQGA1UEAwwNY2Fpcm4gdGVzdCBDQTAgFw0yNjExMjUwNDQ0NTJaGA8yMTI2
MTEwMTA0NDQ1MlowGDEWMBQGA1UEAwwNY2Fpcm4gdGVzdCBDQTBZMBMGByqGSM49
AgEGCCqGSM49AwEHA0IABM0nd+LMz7Is1gJZYeWvhoAN3tlzCMU0mSENUdw42tHt
hId7DquHMgqU+SeXYu2JO8RibHI6AVqNjWYNLA0UzrmjUzBRMB0GA1UdDgQWBBTD
mQDvSnKWBgpT7JFEtxvTextkBjAfBgNVHSMEGDAWgBTDmQDvSnKWBgpT7JFEtxvT
extkBjAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0gAMEUCIQDHKdD4RZvM
lyl981JV0Y2PJ8pGeZN+VNeRlBKTcg2lGAIgfAVSZkMPSNtALbkwzqK5XMKZ4POJ
oYGfq/NCH1PZaiw=
-----END CERTIFICATE-----
";

fn options() -> ResolveOptions {
    ResolveOptions {
        fetch: FetchOptions {
            retries: 0,
            backoff: Duration::from_millis(10),
            ..FetchOptions::default()
        },
        ..ResolveOptions::default()
    }
}

fn resolve_json(config: &Value, options: &ResolveOptions) -> Result<Resolved, ResolveError> {
    resolve(config.to_string().as_bytes(), options)
}

fn data_url(data: impl AsRef<[u8]>) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(data);
    format!("data:;base64,{encoded}")
}

fn file<'a>(resolved: &'a Resolved, path: &str) -> &'a cairn_ignition::File {
    let files = &resolved.config.storage.files;
    files
        .iter()
        .find(|f| f.path == path)
        .unwrap_or_else(|| panic!("no {path} in {files:?}"))
}

fn contents(resolved: &Resolved, path: &str) -> Vec<u8> {
    let source = file(resolved, path).contents.source.as_deref().unwrap();
    assert!(source.starts_with("data:"), "{source}");
    decode_data_url(source).unwrap()
}

fn paths(resolved: &Resolved) -> Vec<&str> {
    let files = &resolved.config.storage.files;
    files.iter().map(|f| f.path.as_str()).collect()
}

/// Every `source` anywhere in a JSON config.
fn sources(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("source", Value::String(source)) => out.push(source.clone()),
                    _ => sources(value, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| sources(v, out)),
        _ => {}
    }
}

#[test]
fn replace_drops_the_config_and_renders_the_replacement() {
    let site = Site::new();
    let motd = site.put("motd", "from the network\n");
    let from_c = site.put_json(
        "c.ign",
        &json!({"ignition": {"version": "3.0.0"},
            "storage": {"files": [{"path": "/etc/from-c", "contents": {"source": "data:,c"}}]}}),
    );
    let replacement = site.put_json(
        "b.ign",
        &json!({"ignition": {"version": "3.2.0", "config": {"merge": [{"source": from_c}]}},
            "storage": {"files": [{"path": "/etc/replaced", "contents": {"source": motd}}]}}),
    );
    let root = json!({"ignition": {"version": "3.4.0", "config": {"replace": {"source": replacement}}},
        "storage": {"files": [{"path": "/etc/root"}]}});

    let resolved = resolve_json(&root, &options()).unwrap();
    assert_eq!(paths(&resolved), ["/etc/replaced", "/etc/from-c"]);
    assert_eq!(contents(&resolved, "/etc/replaced"), b"from the network\n");
    assert_eq!(contents(&resolved, "/etc/from-c"), b"c");
    assert_eq!(resolved.config.ignition.config, Default::default());
    assert_eq!(resolved.config.ignition.version, "3.6.0");
}

#[test]
fn merged_configs_are_children_applied_in_list_order() {
    let site = Site::new();
    let one = site.put_json(
        "one.ign",
        &json!({"ignition": {"version": "3.4.0"},
            "storage": {"files": [{"path": "/etc/a", "mode": 0o600}]},
            "passwd": {"users": [{"name": "core", "sshAuthorizedKeys": ["k-one"]}]},
            "systemd": {"units": [{"name": "x.service", "enabled": true}]}}),
    );
    let two = site.put_json(
        "two.ign",
        &json!({"ignition": {"version": "3.4.0"},
            "storage": {"files": [{"path": "/etc/a", "contents": {"source": "data:,two"}}]},
            "systemd": {"units": [{"name": "x.service", "enabled": false}]}}),
    );
    let root = json!({"ignition": {"version": "3.4.0",
            "config": {"merge": [{"source": one}, {"source": two}]}},
        "storage": {"files": [
            {"path": "/etc/a", "mode": 0o644, "contents": {"source": "data:,root"}},
            {"path": "/etc/root-only"}]},
        "passwd": {"users": [{"name": "core", "sshAuthorizedKeys": ["k-root"]}]}});

    let resolved = resolve_json(&root, &options()).unwrap();
    // A merged config is the child: its scalars win over the config that merges it, and a
    // later merge wins over an earlier one. Lists merge by key, keeping the parent's order.
    assert_eq!(paths(&resolved), ["/etc/a", "/etc/root-only"]);
    assert_eq!(file(&resolved, "/etc/a").mode, Some(0o600));
    assert_eq!(contents(&resolved, "/etc/a"), b"two");
    let users = &resolved.config.passwd.users;
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].ssh_authorized_keys, ["k-root", "k-one"]);
    assert_eq!(resolved.config.systemd.units[0].enabled, Some(false));
    assert!(resolved.config.ignition.config.merge.is_empty());
}

#[test]
fn nested_merges_render_depth_first_and_warnings_say_where() {
    let site = Site::new();
    let b = site.put_json(
        "b.ign",
        &json!({"ignition": {"version": "3.3.0"},
            "storage": {"files": [{"path": "/etc/n", "mode": 0o4750, "contents": {"source": "data:,b"}}]}}),
    );
    let a = site.put_json(
        "a.ign",
        &json!({"ignition": {"version": "3.4.0", "config": {"merge": [{"source": b}]}},
            "storage": {"files": [
                {"path": "/etc/n", "mode": 0o640, "contents": {"source": "data:,a"}},
                {"path": "/etc/m", "contents": {"source": "data:,a"}}]}}),
    );
    let root = json!({"ignition": {"version": "3.6.0", "config": {"merge": [{"source": a}]}},
        "storage": {"files": [
            {"path": "/etc/n", "mode": 0o644},
            {"path": "/etc/m", "contents": {"source": "data:,root"}}]}});

    let resolved = resolve_json(&root, &options()).unwrap();
    // b is merged into a before a is merged into the root; b's mode lost its setuid bit
    // when read as 3.3.0.
    assert_eq!(file(&resolved, "/etc/n").mode, Some(0o750));
    assert_eq!(contents(&resolved, "/etc/n"), b"b");
    assert_eq!(contents(&resolved, "/etc/m"), b"a");
    let expected = format!(
        "ignition.config.merge[0] ({a}): ignition.config.merge[0] ({b}): storage.files[0].mode: \
         setuid/setgid/sticky bits are not supported or functional in spec versions older than 3.6.0"
    );
    assert_eq!(resolved.warnings, [expected]);
}

#[test]
fn cycles_and_deep_nesting_are_refused() {
    let site = Site::new();
    let a = site.url("a.ign");
    let b = site.put_json(
        "b.ign",
        &json!({"ignition": {"version": "3.4.0", "config": {"merge": [{"source": a}]}}}),
    );
    site.put_json(
        "a.ign",
        &json!({"ignition": {"version": "3.4.0", "config": {"merge": [{"source": b}]}}}),
    );
    let root = json!({"ignition": {"version": "3.4.0", "config": {"merge": [{"source": a}]}}});
    let err = resolve_json(&root, &options()).unwrap_err();
    assert!(matches!(&err, ResolveError::Referenced { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "ignition.config.merge[0] ({a}): ignition.config.merge[0] ({b}): \
             ignition.config.merge[0]: {a} is already being resolved (a cycle of config references)"
        )
    );

    // Inline configs cannot loop, but can nest: eleven levels are too many.
    let mut config = json!({"ignition": {"version": "3.4.0"}});
    for _ in 0..11 {
        config = json!({"ignition": {"version": "3.4.0",
            "config": {"merge": [{"source": data_url(config.to_string())}]}}});
    }
    let err = resolve_json(&config, &options()).unwrap_err().to_string();
    assert!(
        err.ends_with(
            "ignition.config.merge[0]: configs reference configs more than 10 levels deep"
        ),
        "{err}"
    );
}

#[test]
fn fetch_failures_name_the_field() {
    let site = Site::new();
    let merged = site.put_json("a.ign", &json!({"ignition": {"version": "3.4.0"}}));
    let root = json!({"ignition": {"version": "3.4.0",
        "config": {"merge": [{"source": merged, "verification": {"hash": sha512("other")}}]}}});
    let err = resolve_json(&root, &options()).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!(
            "ignition.config.merge[0]: {merged}: hash mismatch: expected sha512-"
        )),
        "{err}"
    );

    let missing = site.url("missing");
    let root = json!({"ignition": {"version": "3.4.0"},
        "storage": {"files": [{"path": "/etc/motd", "contents": {"source": missing}}]}});
    let err = resolve_json(&root, &options()).unwrap_err().to_string();
    assert_eq!(
        err,
        format!("storage.files[0].contents: fetch {missing}: HTTP 404 Not Found")
    );

    let root = json!({"ignition": {"version": "3.4.0"},
        "storage": {"files": [{"path": "/etc/motd", "contents": {"source": "tftp://host/motd"}}]}});
    let err = resolve_json(&root, &options()).unwrap_err().to_string();
    assert!(
        err.starts_with("storage.files[0].contents: unsupported URL scheme in tftp://host/motd"),
        "{err}"
    );

    // A merged config that does not parse is named by where it was referenced.
    let broken = site.put("broken.ign", "{");
    let root = json!({"ignition": {"version": "3.4.0", "config": {"merge": [{"source": broken}]}}});
    let err = resolve_json(&root, &options()).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!(
            "ignition.config.merge[0] ({broken}): invalid JSON"
        )),
        "{err}"
    );
}

#[test]
fn invalid_configs_list_each_error_with_its_path() {
    let root = json!({"ignition": {"version": "3.4.0"},
        "storage": {"files": [{"path": "etc/motd"}], "links": [{"path": "/etc/l"}]}});
    let err = resolve_json(&root, &options()).unwrap_err();
    assert!(matches!(err, ResolveError::Invalid(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        "invalid config: storage.files[0].path: path not absolute; \
         storage.links[0].target: link target is required"
    );

    // Valid configs can merge into an invalid one, which Ignition refuses too.
    let child = json!({"ignition": {"version": "3.4.0"},
        "storage": {"files": [{"path": "/etc/d/f"}]}});
    let root = json!({"ignition": {"version": "3.4.0",
            "config": {"merge": [{"source": data_url(child.to_string())}]}},
        "storage": {"links": [{"path": "/etc/d", "target": "/srv"}]}});
    let err = resolve_json(&root, &options()).unwrap_err();
    assert!(matches!(err, ResolveError::InvalidMerged(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        "invalid config after merging: storage.files[0]: file path includes link in config"
    );
}

#[test]
fn require_verification_refuses_unhashed_remote_resources() {
    let site = Site::new();
    let motd = site.put("motd", "hello\n");
    let merged_config = json!({"ignition": {"version": "3.4.0"},
        "storage": {"files": [{"path": "/etc/inline", "contents": {"source": "data:,inline"}}]}});
    let merged = site.put_json("a.ign", &merged_config);
    let strict = ResolveOptions {
        require_verification: true,
        ..options()
    };

    let root = json!({"ignition": {"version": "3.4.0", "config": {"merge": [{"source": merged}]}}});
    let err = resolve_json(&root, &strict).unwrap_err();
    assert!(matches!(err, ResolveError::Unverified { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("ignition.config.merge[0].verification.hash is required (--require-verification) for {merged}")
    );
    // Without the option the same config resolves.
    resolve_json(&root, &options()).unwrap();

    // With hashes everything passes; data: URLs are inline and need none.
    let root = json!({"ignition": {"version": "3.4.0",
            "config": {"merge": [{"source": merged,
                "verification": {"hash": sha512(merged_config.to_string())}}]}},
        "storage": {"files": [{"path": "/etc/motd",
            "contents": {"source": motd, "verification": {"hash": sha512("hello\n")}}}]}});
    let resolved = resolve_json(&root, &strict).unwrap();
    assert_eq!(contents(&resolved, "/etc/motd"), b"hello\n");
    assert_eq!(contents(&resolved, "/etc/inline"), b"inline");

    let root = json!({"ignition": {"version": "3.4.0"},
        "storage": {"files": [{"path": "/etc/motd", "append": [{"source": motd}]}]}});
    let err = resolve_json(&root, &strict).unwrap_err().to_string();
    assert_eq!(
        err,
        format!("storage.files[0].append[0].verification.hash is required (--require-verification) for {motd}")
    );
}

#[test]
fn storage_devices_are_refused_or_dropped() {
    let root = json!({"ignition": {"version": "3.4.0"},
        "storage": {
            "disks": [{"device": "/dev/vda", "wipeTable": true}],
            "filesystems": [{"device": "/dev/vda1", "format": "xfs", "path": "/var"}],
            "luks": [{"name": "secret", "device": "/dev/vdb"}],
            "files": [{"path": "/etc/motd", "contents": {"source": "data:,hi"}}]}});
    let err = resolve_json(&root, &options()).unwrap_err();
    assert!(matches!(err, ResolveError::Storage { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "config sets up storage devices, which cairn-apply does not: \
         storage.disks[0] (device \"/dev/vda\"), storage.filesystems[0] (device \"/dev/vda1\"), \
         storage.luks[0] (name \"secret\"); pass --skip-storage to apply the rest without them"
    );

    let skipping = ResolveOptions {
        skip_storage: true,
        ..options()
    };
    let resolved = resolve_json(&root, &skipping).unwrap();
    let storage = &resolved.config.storage;
    assert!(storage.disks.is_empty() && storage.filesystems.is_empty() && storage.luks.is_empty());
    assert_eq!(contents(&resolved, "/etc/motd"), b"hi");
    assert_eq!(
        resolved.warnings,
        [
            "storage.disks[0] (device \"/dev/vda\"): dropped (--skip-storage)",
            "storage.filesystems[0] (device \"/dev/vda1\"): dropped (--skip-storage)",
            "storage.luks[0] (name \"secret\"): dropped (--skip-storage)",
        ]
    );
}

#[test]
fn special_mode_bits_are_masked_before_spec_3_6_0() {
    for (version, masked) in [("3.3.0", true), ("3.5.0", true), ("3.6.0", false)] {
        let root = json!({"ignition": {"version": version},
            "storage": {"files": [{"path": "/usr/local/bin/x", "mode": 0o4755}],
                "directories": [{"path": "/srv/drop", "mode": 0o1777}]}});
        let resolved = resolve_json(&root, &options()).unwrap();
        let file_mode = resolved.config.storage.files[0].mode;
        let directory_mode = resolved.config.storage.directories[0].mode;
        if masked {
            assert_eq!(
                (file_mode, directory_mode),
                (Some(0o755), Some(0o777)),
                "{version}"
            );
            let fields: Vec<&str> = resolved
                .warnings
                .iter()
                .map(|w| w.split_once(':').unwrap().0)
                .collect();
            assert_eq!(
                fields,
                ["storage.directories[0].mode", "storage.files[0].mode"],
                "{version}"
            );
        } else {
            assert_eq!((file_mode, directory_mode), (Some(0o4755), Some(0o1777)));
            assert!(resolved.warnings.is_empty(), "{:?}", resolved.warnings);
        }
    }
}

#[test]
fn yaml_configs_are_translated_first() {
    let site = Site::new();
    let motd = site.put("motd", "remote\n");
    let yaml = format!(
        "variant: fcos
version: 1.5.0
storage:
  files:
    - path: /etc/inline
      contents:
        inline: hello
    - path: /etc/remote
      contents:
        source: {motd}
        verification:
          hash: {hash}
",
        hash = sha512("remote\n")
    );
    let resolved = resolve(yaml.as_bytes(), &options()).unwrap();
    assert_eq!(contents(&resolved, "/etc/inline"), b"hello");
    assert_eq!(contents(&resolved, "/etc/remote"), b"remote\n");

    let err = resolve(b"variant: fcos\nversion: 9.9.9\n", &options()).unwrap_err();
    assert!(matches!(err, ResolveError::Translate(_)), "{err:?}");
    assert!(err.to_string().contains("unsupported fcos 9.9.9"), "{err}");
}

#[test]
fn compressed_contents_are_inlined_decompressed_and_still_verified() {
    let site = Site::new();
    let text = b"compressible motd\n".repeat(40);
    let compressed = site.put("motd.gz", gzip(&text));
    let tail = site.put("tail", "tail\n");
    let root = json!({"ignition": {"version": "3.4.0"},
        "storage": {"files": [{"path": "/etc/motd",
            "contents": {"source": compressed, "compression": "gzip",
                "httpHeaders": [{"name": "X-Cairn", "value": "1"}],
                "verification": {"hash": sha512(&text)}},
            "append": [{"source": tail}]}]}});
    let resolved = resolve_json(&root, &options()).unwrap();
    let motd = file(&resolved, "/etc/motd");
    assert_eq!(contents(&resolved, "/etc/motd"), text);
    assert_eq!(motd.contents.compression, None);
    assert!(motd.contents.http_headers.is_empty());
    assert_eq!(motd.contents.verification.hash, Some(sha512(&text)));
    let append = motd.append[0].source.as_deref().unwrap();
    assert_eq!(decode_data_url(append).unwrap(), b"tail\n");
}

#[test]
fn the_cached_json_reparses_and_needs_no_network() {
    let site = Site::new();
    let ca = site.put("ca.pem", CA_PEM);
    let motd = site.put("motd", "hello\n");
    let merged = site.put_json(
        "a.ign",
        &json!({"ignition": {"version": "3.4.0"},
            "storage": {"files": [{"path": "/etc/motd", "contents": {"source": motd}}]}}),
    );
    let root = json!({"ignition": {"version": "3.4.0",
            "config": {"merge": [{"source": merged}]},
            "security": {"tls": {"certificateAuthorities": [
                {"source": ca, "verification": {"hash": sha512(CA_PEM)}}]}}},
        "storage": {"files": [{"path": "/etc/issue", "append": [{"source": "data:,x"}]}]}});
    let resolved = resolve_json(&root, &options()).unwrap();
    let json = resolved.to_json();
    let mut found = Vec::new();
    sources(&json, &mut found);
    assert_eq!(found.len(), 3, "{json}");
    assert!(found.iter().all(|s| s.starts_with("data:")), "{found:?}");
    let authority = &resolved
        .config
        .ignition
        .security
        .tls
        .certificate_authorities[0];
    assert_eq!(
        decode_data_url(authority.source.as_deref().unwrap()).unwrap(),
        CA_PEM.as_bytes()
    );

    let (reparsed, version, report) = cairn_ignition::parse(json.to_string().as_bytes()).unwrap();
    assert!(!report.has_errors(), "{report}");
    assert_eq!(version, cairn_ignition::Version::V3_6_0);
    assert_eq!(reparsed, resolved.config);

    drop(site);
    let again = resolve(json.to_string().as_bytes(), &options()).unwrap();
    assert_eq!(again.config, resolved.config);
}

#[test]
fn ca_bundles_must_hold_certificates() {
    let root = json!({"ignition": {"version": "3.4.0",
        "security": {"tls": {"certificateAuthorities": [{"source": "data:,not%20a%20certificate"}]}}}});
    let err = resolve_json(&root, &options()).unwrap_err().to_string();
    assert_eq!(
        err,
        "ignition.security.tls.certificateAuthorities[0]: CA bundle: no PEM certificate in it"
    );
}

#[test]
fn the_config_proxy_carries_http_fetches() {
    // The site is the proxy: it serves the path of the absolute URL it is asked for.
    let site = Site::new();
    site.put("motd", "through the proxy\n");
    let proxy = format!("http://{}", site.addr());
    let root = json!({"ignition": {"version": "3.4.0", "proxy": {"httpProxy": proxy}},
        "storage": {"files": [{"path": "/etc/motd",
            "contents": {"source": "http://cairn.invalid/motd"}}]}});
    let resolved = resolve_json(&root, &options()).unwrap();
    assert_eq!(contents(&resolved, "/etc/motd"), b"through the proxy\n");

    // A host in noProxy is fetched directly, and cairn.invalid does not resolve.
    let root = json!({"ignition": {"version": "3.4.0",
            "proxy": {"httpProxy": proxy, "noProxy": ["cairn.invalid"]}},
        "storage": {"files": [{"path": "/etc/motd",
            "contents": {"source": "http://cairn.invalid/motd"}}]}});
    let err = resolve_json(&root, &options()).unwrap_err().to_string();
    assert!(
        err.starts_with(
            "storage.files[0].contents: fetch http://cairn.invalid/motd: error sending request: "
        ),
        "{err}"
    );
}

#[test]
fn config_timeouts_bound_http_fetches() {
    // A server that accepts and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let stalled = format!("http://{}/motd", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let held: Vec<_> = listener.incoming().collect();
        drop(held);
    });
    let config = |timeouts: Value| {
        json!({"ignition": {"version": "3.4.0", "timeouts": timeouts},
            "storage": {"files": [{"path": "/etc/motd", "contents": {"source": stalled}}]}})
    };
    let err = resolve_json(&config(json!({"httpResponseHeaders": 1})), &options())
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        format!("storage.files[0].contents: fetch {stalled}: no response headers within 1s (timeouts.httpResponseHeaders)")
    );
    let err = resolve_json(
        &config(json!({"httpResponseHeaders": 0, "httpTotal": 1})),
        &options(),
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        err,
        format!("storage.files[0].contents: fetch {stalled}: not complete within 1s (timeouts.httpTotal)")
    );
}

#[test]
fn everything_resolved_together_is_bounded() {
    let site = Site::new();
    let a = site.put("a", [b'a'; 60]);
    let b = site.put("b", [b'b'; 60]);
    let root = json!({"ignition": {"version": "3.4.0"},
        "storage": {"files": [
            {"path": "/a", "contents": {"source": a}},
            {"path": "/b", "contents": {"source": b}}]}});
    let small = ResolveOptions {
        fetch: FetchOptions {
            max_size: 100,
            ..options().fetch
        },
        ..options()
    };
    let err = resolve_json(&root, &small).unwrap_err().to_string();
    assert_eq!(
        err,
        "storage.files[1].contents: everything resolved together exceeds the limit of 100 bytes"
    );
}
