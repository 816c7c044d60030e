//! Reading bytes and values: version detection, fatal errors, unknown keys, wrong types.

use cairn_ignition::{parse, parse_value, ParseError, PathElem, Severity, Version};
use serde_json::json;

use crate::support::{assert_entry, report};

#[test]
fn versions_are_named_exactly() {
    for version in Version::ALL {
        assert_eq!(Version::parse(version.as_str()), Some(version));
    }
    assert_eq!(Version::LATEST, Version::V3_6_0);
    for other in ["3.1", "3.1.0+build", "v3.1.0", "3.4.0-experimental", ""] {
        assert_eq!(Version::parse(other), None, "{other}");
    }
    assert!(Version::V3_0_0 < Version::V3_6_0 && Version::V3_6_0 < Version::V3_7_0Experimental);
}

#[test]
fn each_version_is_detected() {
    for version in Version::ALL {
        let value = json!({"ignition": {"version": version.as_str()}});
        let (config, detected, report) = parse_value(&value).unwrap();
        assert_eq!(detected, version);
        assert!(report.is_empty(), "{version}: {report}");
        let newest = version.max(Version::LATEST);
        assert_eq!(config.ignition.version, newest.as_str());
    }
}

#[test]
fn configs_that_cannot_be_read_at_all() {
    assert_eq!(parse(b""), Err(ParseError::Empty));
    assert_eq!(parse(b"[1]"), Err(ParseError::NotAnObject));
    assert_eq!(parse(b"{}"), Err(ParseError::MissingVersion));
    assert_eq!(
        parse(br#"{"ignition": {}}"#),
        Err(ParseError::MissingVersion)
    );
    assert_eq!(
        parse(br#"{"ignition": {"version": ""}}"#),
        Err(ParseError::MissingVersion)
    );
    assert_eq!(
        parse(br#"{"ignition": {"version": "three"}}"#),
        Err(ParseError::InvalidVersion("three".into()))
    );
    assert_eq!(
        parse(br#"{"ignition": {"version": 3}}"#),
        Err(ParseError::InvalidVersion("3".into()))
    );
    for unsupported in ["2.2.0", "3.4.0-experimental", "3.7.0", "4.0.0"] {
        let bytes = format!(r#"{{"ignition": {{"version": "{unsupported}"}}}}"#);
        assert_eq!(
            parse(bytes.as_bytes()),
            Err(ParseError::UnsupportedVersion(unsupported.into()))
        );
    }
}

#[test]
fn bad_json_says_where() {
    let err =
        parse(b"{\n  \"ignition\": {\"version\": \"3.0.0\"},\n  \"storage\": ]\n}").unwrap_err();
    match &err {
        ParseError::Json { line, column, .. } => assert_eq!((*line, *column), (3, 14)),
        other => panic!("{other:?}"),
    }
    assert!(
        err.to_string()
            .starts_with("invalid JSON at line 3, column 14: "),
        "{err}"
    );
}

#[test]
fn keys_the_version_does_not_know_are_unused() {
    let body = json!({
        "storage": {"files": [{"path": "/f", "contnets": {}}], "filesystems": [{"device": "/dev/a", "format": "ext4", "mountOptions": ["ro"]}]},
        "ignition": {"proxy": {"httpProxy": "http://p"}},
        "extra": 1});
    let report = report("3.0.0", body);
    let found: Vec<String> = report.entries.iter().map(|e| e.to_string()).collect();
    assert_eq!(
        found,
        [
            "warning at $.ignition.proxy: unused key proxy",
            "warning at $.storage.files.0.contnets: unused key contnets",
            "warning at $.storage.filesystems.0.mountOptions: unused key mountOptions",
            "warning at $.extra: unused key extra",
        ]
    );
    // The same keys are known to 3.1.0, and ignored values are not validated.
    let report = report_of(
        "3.1.0",
        json!({"ignition": {"proxy": {"httpProxy": "http://p"}}}),
    );
    assert!(report.is_empty(), "{report}");
}

fn report_of(version: &str, body: serde_json::Value) -> cairn_ignition::Report {
    report(version, body)
}

#[test]
fn values_of_the_wrong_type_are_errors_at_their_path() {
    let body = json!({"storage": {"files": [{"path": 1, "mode": "420", "overwrite": "yes", "append": {}}]},
                      "passwd": {"users": [{"name": "a", "uid": 1.5, "sshAuthorizedKeys": [1]}]},
                      "systemd": "none"});
    let report = report("3.6.0", body);
    assert_entry(
        &report,
        Severity::Error,
        "$.storage.files.0.path",
        "expected a string, found a number",
    );
    assert_entry(
        &report,
        Severity::Error,
        "$.storage.files.0.mode",
        "expected an integer, found a string",
    );
    assert_entry(
        &report,
        Severity::Error,
        "$.storage.files.0.overwrite",
        "expected a boolean, found a string",
    );
    assert_entry(
        &report,
        Severity::Error,
        "$.storage.files.0.append",
        "expected a list, found an object",
    );
    assert_entry(
        &report,
        Severity::Error,
        "$.passwd.users.0.uid",
        "expected an integer, found 1.5",
    );
    assert_entry(
        &report,
        Severity::Error,
        "$.passwd.users.0.sshAuthorizedKeys.0",
        "expected a string, found a number",
    );
    assert_entry(
        &report,
        Severity::Error,
        "$.systemd",
        "expected an object, found a string",
    );
}

#[test]
fn null_is_the_same_as_absent() {
    let value = json!({"ignition": {"version": "3.6.0", "config": null},
                       "storage": {"files": [{"path": "/f", "mode": null, "contents": null}], "links": null},
                       "passwd": {"users": [null]}});
    let (config, _, report) = parse_value(&value).unwrap();
    assert_eq!(config.storage.files[0].mode, None);
    assert_eq!(config.passwd.users.len(), 1);
    // The null user has no name, which is still a user entry Ignition would create.
    assert!(!report.has_errors(), "{report}");
}

#[test]
fn reports_print_one_line_per_entry() {
    let (_, _, report) = parse(
        br#"{"ignition": {"version": "3.0.0"}, "storage": {"files": [{"path": "a", "x": 1}]}}"#,
    )
    .unwrap();
    assert_eq!(
        report.to_string(),
        "error at $.storage.files.0.path: path not absolute\nwarning at $.storage.files.0.x: unused key x\n"
    );
    assert!(report.has_errors());
    assert_eq!(report.warnings().count(), 1);
    let entry = report.errors().next().unwrap();
    assert_eq!(
        entry.path,
        [
            PathElem::Key("storage".into()),
            PathElem::Key("files".into()),
            PathElem::Index(0),
            PathElem::Key("path".into())
        ]
    );
}

#[test]
fn keys_match_case_insensitively_as_in_go_but_still_warn() {
    let value = json!({"ignition": {"version": "3.0.0"}, "Storage": {"files": [{"PATH": "rel"}]}});
    let (config, _, report) = parse_value(&value).unwrap();
    assert_eq!(config.storage.files[0].path, "rel");
    assert_eq!(
        report.to_string(),
        "error at $.storage.files.0.path: path not absolute\n\
         warning at $.storage.files.0.PATH: unused key PATH\n\
         warning at $.Storage: unused key Storage\n"
    );
}

/// Strings of awkward characters in every string field Ignition parses further (URLs, data
/// URLs, unit files, paths, hashes, GUIDs) give a report, never a panic.
#[test]
fn arbitrary_strings_never_panic() {
    const PIECES: &[&str] = &[
        "a",
        "x",
        "X-",
        "/",
        "//",
        ".",
        "..",
        "%",
        "%2",
        "%25",
        "%zz",
        "[",
        "]",
        ":",
        ";",
        ",",
        "=",
        "\"",
        "\\",
        "\n",
        "\r",
        " ",
        "#",
        "?",
        "@",
        "é",
        "€",
        "😀",
        "data:",
        "http://",
        "arn:aws:s3:::",
        "s3://",
        "base64",
        "text/",
        "[Unit]",
        "A=b",
        "sha512-",
        "-",
    ];
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..1000 {
        let len = (next() % 24) as usize;
        let mut s: String = (0..len)
            .map(|_| PIECES[(next() % PIECES.len() as u64) as usize])
            .collect();
        if round % 50 == 0 {
            // Long lines around the unit lexer's 2048-byte limit and 4096-byte buffer.
            s.push_str(&"y".repeat(1500 + (next() % 5000) as usize));
        }
        for version in ["3.0.0", "3.2.0", "3.4.0", "3.7.0-experimental"] {
            let value = json!({
                "ignition": {"version": version, "config": {"merge": [{"source": s, "httpHeaders": [{"name": s, "value": s}]}]},
                             "proxy": {"httpProxy": s, "httpsProxy": s}},
                "storage": {
                    "files": [{"path": s, "contents": {"source": s, "verification": {"hash": s}}, "append": [{"source": s}]}],
                    "links": [{"path": "/l", "target": s, "hard": true}],
                    "disks": [{"device": s, "partitions": [{"label": s, "guid": s, "typeGuid": s}]}],
                    "filesystems": [{"device": s, "format": "ext4", "label": s, "path": s}],
                    "luks": [{"name": s, "device": s, "keyFile": {"source": s},
                              "clevis": {"tang": [{"url": s, "thumbprint": s, "advertisement": s}]}}]},
                "systemd": {"units": [{"name": s, "enabled": true, "contents": s, "dropins": [{"name": s, "contents": s}]},
                                      {"name": format!("{s}@x.service"), "enabled": true}]}
            });
            let (config, _, _) = parse_value(&value).expect("a config with a version parses");
            let _ = config.to_json(Version::LATEST);
        }
    }
}
