//! The corpus under `tests/data`: invalid configs (one broken rule each) that both cairn and
//! the real `ignition-validate` (Ignition 2.14, spec 3.0.0–3.3.0) must refuse, at the same
//! JSON path, and valid configs that both must accept without a word.

use cairn_ignition::{parse, Version};

use crate::support::{corpus, have_peer, ignition_validate};

/// Each invalid config and the path where the broken rule is reported (by both tools).
const INVALID: &[(&str, &str)] = &[
    ("relative-file-path", "$.storage.files.0.path"),
    ("file-path-with-dotdot", "$.storage.files.0.path"),
    ("file-path-trailing-slash", "$.storage.files.0.path"),
    ("file-path-double-slash", "$.storage.files.0.path"),
    ("file-path-missing", "$.storage.files.0.path"),
    ("directory-path-relative", "$.storage.directories.0.path"),
    ("link-path-dot-element", "$.storage.links.0.path"),
    ("duplicate-file-and-directory-path", "$.storage.files.0"),
    ("duplicate-file-path", "$.storage.files.1"),
    ("duplicate-link-and-file-path", "$.storage.links.0"),
    ("file-under-link", "$.storage.files.0"),
    ("directory-under-link", "$.storage.directories.0"),
    ("link-under-link", "$.storage.links.1"),
    ("hard-link-to-directory", "$.storage.links.0"),
    ("link-target-missing", "$.storage.links.0.target"),
    ("file-mode-too-large", "$.storage.files.0.mode"),
    ("file-mode-negative", "$.storage.files.0.mode"),
    ("directory-mode-too-large", "$.storage.directories.0.mode"),
    ("file-user-id-and-name", "$.storage.files.0.user"),
    (
        "directory-group-id-and-name",
        "$.storage.directories.0.group",
    ),
    ("overwrite-without-source", "$.storage.files.0.overwrite"),
    (
        "hash-unknown-function",
        "$.storage.files.0.contents.verification.hash",
    ),
    (
        "hash-without-dash",
        "$.storage.files.0.contents.verification.hash",
    ),
    (
        "hash-wrong-length",
        "$.storage.files.0.contents.verification.hash",
    ),
    (
        "sha256-hash-in-3.0",
        "$.storage.files.0.contents.verification.hash",
    ),
    (
        "verification-without-source",
        "$.storage.files.0.contents.verification.hash",
    ),
    ("source-scheme-ftp", "$.storage.files.0.contents.source"),
    ("gs-source-in-3.1", "$.storage.files.0.contents.source"),
    (
        "data-url-without-comma",
        "$.storage.files.0.contents.source",
    ),
    ("data-url-bad-base64", "$.storage.files.0.contents.source"),
    ("data-url-space", "$.storage.files.0.contents.source"),
    ("source-url-bad-port", "$.storage.files.0.contents.source"),
    ("s3-empty-version-id", "$.storage.files.0.contents.source"),
    ("compression-xz", "$.storage.files.0.contents.compression"),
    ("append-bad-scheme", "$.storage.files.0.append.0.source"),
    (
        "http-header-empty-name",
        "$.storage.files.0.contents.httpHeaders.0.name",
    ),
    (
        "http-header-empty-value",
        "$.storage.files.0.contents.httpHeaders.0.value",
    ),
    (
        "http-headers-with-data-source",
        "$.storage.files.0.contents.httpHeaders",
    ),
    (
        "http-header-duplicate",
        "$.storage.files.0.contents.httpHeaders.1",
    ),
    ("merge-without-source", "$.ignition.config.merge.0"),
    ("merge-duplicate-source", "$.ignition.config.merge.1"),
    ("replace-bad-scheme", "$.ignition.config.replace.source"),
    (
        "certificate-authority-without-source",
        "$.ignition.security.tls.certificateAuthorities.0",
    ),
    (
        "certificate-authority-empty-source-3.0",
        "$.ignition.security.tls.certificateAuthorities.0.source",
    ),
    ("proxy-socks-scheme", "$.ignition.proxy.httpProxy"),
    ("proxy-no-proxy-duplicate", "$.ignition.proxy.noProxy.1"),
    ("unit-name-without-suffix", "$.systemd.units.0.name"),
    ("unit-name-bad-suffix", "$.systemd.units.0.name"),
    ("dropin-name-bad-suffix", "$.systemd.units.0.dropins.0.name"),
    ("duplicate-unit", "$.systemd.units.1"),
    ("duplicate-dropin", "$.systemd.units.0.dropins.1"),
    ("unit-garbage-after-section", "$.systemd.units.0.contents"),
    ("unit-unterminated-section", "$.systemd.units.0.contents"),
    ("unit-option-without-equals", "$.systemd.units.0.contents"),
    ("unit-line-too-long", "$.systemd.units.0.contents"),
    (
        "dropin-bad-contents",
        "$.systemd.units.0.dropins.0.contents",
    ),
    ("duplicate-user", "$.passwd.users.1"),
    ("duplicate-group", "$.passwd.groups.1"),
    ("duplicate-ssh-key", "$.passwd.users.0.sshAuthorizedKeys.1"),
    (
        "duplicate-user-supplementary-group",
        "$.passwd.users.0.groups.1",
    ),
    (
        "kernel-argument-both-exist-and-not",
        "$.kernelArguments.shouldNotExist.0",
    ),
    (
        "kernel-argument-duplicate",
        "$.kernelArguments.shouldExist.1",
    ),
    ("disk-device-missing", "$.storage.disks.0.device"),
    ("disk-device-relative", "$.storage.disks.0.device"),
    ("duplicate-disk", "$.storage.disks.1"),
    (
        "partition-numbers-collide",
        "$.storage.disks.0.partitions.1",
    ),
    ("partition-labels-collide", "$.storage.disks.0.partitions.1"),
    (
        "partition-label-too-long",
        "$.storage.disks.0.partitions.0.label",
    ),
    (
        "partition-label-with-colon",
        "$.storage.disks.0.partitions.0.label",
    ),
    (
        "partition-without-number-or-label",
        "$.storage.disks.0.partitions.0",
    ),
    (
        "partition-should-not-exist-with-size",
        "$.storage.disks.0.partitions.0",
    ),
    (
        "partition-type-guid-malformed",
        "$.storage.disks.0.partitions.0.typeGuid",
    ),
    (
        "partition-guid-malformed",
        "$.storage.disks.0.partitions.0.guid",
    ),
    ("partitions-overlap", "$.storage.disks.0.partitions.1"),
    ("raid-level-unknown", "$.storage.raid.0.level"),
    ("raid-spares-on-raid0", "$.storage.raid.0.level"),
    ("raid-without-devices", "$.storage.raid.0.devices"),
    ("raid-level-missing", "$.storage.raid.0.level"),
    ("raid-device-relative", "$.storage.raid.0.devices.0"),
    ("raid-duplicate-device", "$.storage.raid.0.devices.1"),
    ("duplicate-raid-name", "$.storage.raid.1"),
    (
        "filesystem-format-unknown",
        "$.storage.filesystems.0.format",
    ),
    (
        "filesystem-format-none-in-3.2",
        "$.storage.filesystems.0.format",
    ),
    (
        "filesystem-path-without-format",
        "$.storage.filesystems.0.format",
    ),
    (
        "filesystem-label-without-format",
        "$.storage.filesystems.0.label",
    ),
    (
        "filesystem-ext4-label-too-long",
        "$.storage.filesystems.0.label",
    ),
    (
        "filesystem-xfs-label-too-long",
        "$.storage.filesystems.0.label",
    ),
    (
        "filesystem-vfat-label-too-long",
        "$.storage.filesystems.0.label",
    ),
    (
        "filesystem-swap-label-too-long",
        "$.storage.filesystems.0.label",
    ),
    ("filesystem-path-relative", "$.storage.filesystems.0.path"),
    (
        "filesystem-device-relative",
        "$.storage.filesystems.0.device",
    ),
    ("duplicate-filesystem-device", "$.storage.filesystems.1"),
    ("luks-name-with-slash", "$.storage.luks.0.name"),
    ("luks-label-too-long", "$.storage.luks.0.label"),
    ("luks-device-missing", "$.storage.luks.0.device"),
    ("luks-device-relative", "$.storage.luks.0.device"),
    ("luks-custom-clevis-with-tpm2", "$.storage.luks.0.clevis"),
    (
        "luks-custom-clevis-unknown-pin",
        "$.storage.luks.0.clevis.custom.pin",
    ),
    (
        "luks-custom-clevis-without-config",
        "$.storage.luks.0.clevis.custom.config",
    ),
    (
        "luks-custom-clevis-without-pin",
        "$.storage.luks.0.clevis.custom.pin",
    ),
    (
        "luks-tang-without-thumbprint",
        "$.storage.luks.0.clevis.tang.0.thumbprint",
    ),
    ("luks-tang-bad-scheme", "$.storage.luks.0.clevis.tang.0.url"),
    ("luks-tang-duplicate-url", "$.storage.luks.0.clevis.tang.1"),
    (
        "luks-key-file-bad-scheme",
        "$.storage.luks.0.keyFile.source",
    ),
    ("duplicate-luks-name", "$.storage.luks.1"),
];

fn expected_path(name: &str) -> &'static str {
    match INVALID.iter().find(|(n, _)| *n == name) {
        Some((_, path)) => path,
        None => panic!("invalid/{name}.json has no expected path in INVALID"),
    }
}

/// The paths of the errors ignition-validate prints (`error at $.a.b, line 1 col 2: …`).
fn ignition_error_paths(output: &str) -> Vec<&str> {
    output
        .lines()
        .filter_map(|line| line.strip_prefix("error at "))
        .filter_map(|rest| rest.split([',', ':']).next())
        .collect()
}

#[test]
fn invalid_corpus_is_refused_by_cairn_at_the_expected_path() {
    let files = corpus("invalid");
    assert!(files.len() >= 45, "only {} invalid configs", files.len());
    assert_eq!(
        files.len(),
        INVALID.len(),
        "INVALID and tests/data/invalid disagree"
    );
    for (name, path) in &files {
        let bytes = std::fs::read(path).unwrap();
        let (_, version, report) = parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            version <= Version::V3_3_0,
            "{name}: ignition-validate 2.14 knows 3.0.0-3.3.0 only"
        );
        let expected = expected_path(name);
        assert!(
            report.errors().any(|e| e.path_string() == expected),
            "{name}: expected an error at {expected}, got:\n{report}"
        );
    }
}

#[test]
fn invalid_corpus_is_refused_by_ignition_validate_at_the_same_path() {
    if !have_peer("ignition-validate") {
        return;
    }
    for (name, path) in corpus("invalid") {
        let (ok, output) = ignition_validate(&path);
        assert!(
            !ok,
            "ignition-validate accepted invalid/{name}.json:\n{output}"
        );
        let expected = expected_path(&name);
        assert!(
            ignition_error_paths(&output).contains(&expected),
            "{name}: ignition-validate reports no error at {expected}:\n{output}"
        );
    }
}

#[test]
fn valid_corpus_is_accepted_by_cairn_without_entries() {
    let files = corpus("valid");
    assert!(files.len() >= 10, "only {} valid configs", files.len());
    let mut versions = Vec::new();
    for (name, path) in &files {
        let bytes = std::fs::read(path).unwrap();
        let (_, version, report) = parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(report.is_empty(), "{name}:\n{report}");
        versions.push(version);
    }
    for version in [
        Version::V3_0_0,
        Version::V3_1_0,
        Version::V3_2_0,
        Version::V3_3_0,
    ] {
        assert!(versions.contains(&version), "no valid config of {version}");
    }
}

#[test]
fn valid_corpus_is_accepted_by_ignition_validate_without_output() {
    if !have_peer("ignition-validate") {
        return;
    }
    for (name, path) in corpus("valid") {
        let (ok, output) = ignition_validate(&path);
        assert!(
            ok && output.trim().is_empty(),
            "valid/{name}.json:\n{output}"
        );
    }
}

/// `to_json(version)` writes what `parse` reads back to the same model.
#[test]
fn valid_corpus_round_trips_through_its_own_version() {
    for (name, path) in corpus("valid") {
        let bytes = std::fs::read(&path).unwrap();
        let (config, version, _) = parse(&bytes).unwrap();
        let json = config.to_json(version);
        assert_eq!(json["ignition"]["version"], version.as_str(), "{name}");
        let (again, again_version, report) = cairn_ignition::parse_value(&json).unwrap();
        assert_eq!(again_version, version, "{name}");
        assert!(report.is_empty(), "{name} re-parsed:\n{report}");
        assert_eq!(again, config, "{name}: the round trip changed the config");
    }
}

/// Every valid config, up-translated and written as 3.6.0 (and 3.7.0-experimental), is a
/// valid config of that version with the same content.
#[test]
fn valid_corpus_translates_up_to_the_newest_specs() {
    for (name, path) in corpus("valid") {
        let bytes = std::fs::read(&path).unwrap();
        let (config, _, _) = parse(&bytes).unwrap();
        for target in [Version::V3_6_0, Version::V3_7_0Experimental] {
            let json = config.to_json(target);
            let (again, version, report) = cairn_ignition::parse_value(&json).unwrap();
            assert_eq!(version, target);
            assert!(report.is_empty(), "{name} as {target}:\n{report}");
            let mut expected = config.clone();
            expected.ignition.version = again.ignition.version.clone();
            assert_eq!(again, expected, "{name} as {target}");
        }
    }
}
