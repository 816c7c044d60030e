//! The node UUID as Zincati derives it (systemd's app-specific machine ID), against vectors
//! from systemd and an independent HMAC, and the identity's resolution.

use std::path::Path;
use std::process::Command;

use cairn_agent::config::IdentitySettings;
use cairn_agent::identity::{
    self, app_specific_id, node_uuid, read_machine_id, Identity, IdentityError, MachineIdProblem,
    RolloutWariness, ZINCATI_APP_ID,
};

/// (machine ID, node UUID for Zincati's app ID).
///
/// The first came from `systemd-id128 machine-id -a de35106b6ec24688b63afddaa156679b` (systemd
/// 252) on a machine whose /etc/machine-id held it. All of them also from Python's hmac:
///
/// ```text
/// python3 -c 'import hmac,hashlib,sys
/// h=bytearray(hmac.new(bytes.fromhex(sys.argv[1]),
///     bytes.fromhex("de35106b6ec24688b63afddaa156679b"),hashlib.sha256).digest()[:16])
/// h[6]=h[6]&0x0f|0x40; h[8]=h[8]&0x3f|0x80; print(h.hex())' <machine-id>
/// ```
const VECTORS: [(&str, &str); 4] = [
    (
        "3d1219c7c4c5404aaa1f6d2a48adfda4",
        "975228d46dc94622b9bbe16671e2b58d",
    ),
    (
        "2e074e9b299c41a59923c51ae16f279b",
        "074c268827d74fb59ed758e8940cd667",
    ),
    (
        "00000000000000000000000000000001",
        "a2a5385f64d54b22b0eca8f3deb0cd10",
    ),
    (
        "b08dfa6083e7567a1921a715000001fb",
        "94c92cab203b4f87b2d8216ef72bea06",
    ),
];

fn id(hex: &str) -> [u8; 16] {
    identity::parse_id128(hex).unwrap()
}

#[test]
fn zincati_app_id_is_zincatis() {
    assert_eq!(
        identity::format_id128(&ZINCATI_APP_ID),
        "de35106b6ec24688b63afddaa156679b"
    );
}

#[test]
fn node_uuid_matches_known_vectors() {
    for (machine_id, expected) in VECTORS {
        assert_eq!(node_uuid(machine_id).unwrap(), expected, "{machine_id}");
        // The file's trailing newline, upper case and dashes change nothing.
        assert_eq!(node_uuid(&format!("{machine_id}\n")).unwrap(), expected);
        assert_eq!(
            node_uuid(&machine_id.to_ascii_uppercase()).unwrap(),
            expected
        );
        let dashed = format!(
            "{}-{}-{}-{}-{}",
            &machine_id[..8],
            &machine_id[8..12],
            &machine_id[12..16],
            &machine_id[16..20],
            &machine_id[20..]
        );
        assert_eq!(node_uuid(&dashed).unwrap(), expected);
    }
}

#[test]
fn app_specific_id_matches_libsystemd_rs() {
    // libsystemd-rs's `basic_keyed_hash` vector (the crate Zincati uses for this).
    let derived = app_specific_id(
        &id("2e074e9b299c41a59923c51ae16f279b"),
        &id("033b1b9b264441fcaa173e9e5bf35c5a"),
    );
    assert_eq!(
        identity::format_id128(&derived),
        "4d4a86c9c6644a479560ded5d19a30c5"
    );
}

#[test]
fn derived_ids_are_v4_uuids() {
    for (machine_id, _) in VECTORS {
        let derived = app_specific_id(&id(machine_id), &ZINCATI_APP_ID);
        assert_eq!(derived[6] >> 4, 4);
        assert_eq!(derived[8] >> 6, 0b10);
    }
}

/// Against the real tool, on this machine, when both are there.
#[test]
fn node_uuid_equals_systemd_id128_on_this_machine() {
    let machine_id_path = Path::new(identity::MACHINE_ID_PATH);
    let Ok(machine_id) = read_machine_id(machine_id_path) else {
        eprintln!("skipped: no usable {}", machine_id_path.display());
        return;
    };
    let output = Command::new("systemd-id128")
        .args([
            "machine-id",
            "--app-specific=de35106b6ec24688b63afddaa156679b",
        ])
        .output();
    let Ok(output) = output else {
        eprintln!("skipped: systemd-id128 not found");
        return;
    };
    if !output.status.success() {
        eprintln!("skipped: systemd-id128 failed");
        return;
    }
    let expected = String::from_utf8(output.stdout).unwrap();
    assert_eq!(node_uuid(&machine_id).unwrap(), expected.trim());
}

#[test]
fn bad_machine_ids_are_clear_errors() {
    let cases = [
        ("", MachineIdProblem::Uninitialized),
        ("uninitialized\n", MachineIdProblem::Uninitialized),
        ("00000000000000000000000000000000\n", MachineIdProblem::Null),
        (
            "3d1219c7c4c5404aaa1f6d2a48adfda\n",
            MachineIdProblem::NotHex,
        ),
        ("3d1219c7c4c5404aaa1f6d2a48adfdag", MachineIdProblem::NotHex),
        (
            "3d1219c7-c4c5404a-aa1f-6d2a48adfda4",
            MachineIdProblem::NotHex,
        ),
        (
            " 3d1219c7c4c5404aaa1f6d2a48adfda4",
            MachineIdProblem::NotHex,
        ),
        ("hello world", MachineIdProblem::NotHex),
    ];
    for (content, expected) in cases {
        match node_uuid(content) {
            Err(IdentityError::BadMachineId { problem, path, .. }) => {
                assert_eq!(problem, expected, "{content:?}");
                assert_eq!(path, None);
            }
            other => panic!("{content:?}: expected an error, got {other:?}"),
        }
    }
    assert_eq!(
        node_uuid("hello world").unwrap_err().to_string(),
        "machine id \"hello world\" is not 32 hexadecimal digits (see machine-id(5))"
    );
}

#[test]
fn read_machine_id_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("machine-id");
    std::fs::write(&path, "3D1219C7C4C5404AAA1F6D2A48ADFDA4\n").unwrap();
    assert_eq!(
        read_machine_id(&path).unwrap(),
        "3d1219c7c4c5404aaa1f6d2a48adfda4"
    );

    std::fs::write(&path, "uninitialized\n").unwrap();
    let error = read_machine_id(&path).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "{}: machine id \"uninitialized\\n\" is not initialized yet: systemd writes it during the first boot",
            path.display()
        )
    );

    let missing = dir.path().join("missing");
    match read_machine_id(&missing) {
        Err(IdentityError::Read { path, .. }) => assert_eq!(path, missing),
        other => panic!("expected a read error, got {other:?}"),
    }
}

fn settings(node_uuid: Option<&str>, rollout_wariness: Option<f64>) -> IdentitySettings {
    IdentitySettings {
        group: "default".into(),
        node_uuid: node_uuid.map(String::from),
        rollout_wariness,
    }
}

#[test]
fn a_configured_node_uuid_wins_and_the_machine_id_is_not_read() {
    let configured = settings(Some("27e3ac02af3946af995c9940e18b0cce"), None);
    let identity = Identity::resolve(&configured, Path::new("/nonexistent/machine-id")).unwrap();
    assert_eq!(identity.node_uuid, "27e3ac02af3946af995c9940e18b0cce");
    assert_eq!(identity.group, "default");
}

#[test]
fn otherwise_the_node_uuid_is_derived_from_the_machine_id() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("machine-id");
    std::fs::write(&path, "3d1219c7c4c5404aaa1f6d2a48adfda4\n").unwrap();
    let identity = Identity::resolve(&settings(None, None), &path).unwrap();
    assert_eq!(identity.node_uuid, "975228d46dc94622b9bbe16671e2b58d");
    assert_eq!(
        identity.fleet_lock_client_id(),
        "975228d46dc94622b9bbe16671e2b58d"
    );

    let error = Identity::resolve(&settings(None, None), &dir.path().join("missing"));
    assert!(matches!(error, Err(IdentityError::Read { .. })));
}

#[test]
fn a_configured_wariness_wins_else_the_servers_derivation() {
    let uuid = "27e3ac02af3946af995c9940e18b0cce";
    let nowhere = Path::new("/nonexistent/machine-id");

    let identity = Identity::resolve(&settings(Some(uuid), Some(0.5)), nowhere).unwrap();
    assert_eq!(identity.rollout_wariness, RolloutWariness::Configured(0.5));
    assert_eq!(
        identity.rollout_wariness.request_parameter().as_deref(),
        Some("0.500000")
    );

    let identity = Identity::resolve(&settings(Some(uuid), None), nowhere).unwrap();
    let derived = cairn_graph::wariness_from_node_uuid(uuid);
    assert_eq!(identity.rollout_wariness, RolloutWariness::Derived(derived));
    assert_eq!(identity.rollout_wariness.value(), derived);
    // Zincati leaves an unconfigured wariness to the server.
    assert_eq!(identity.rollout_wariness.request_parameter(), None);
}

#[test]
fn group_and_settings_from_the_zincati_sample() {
    let dir = tempfile::tempdir().unwrap();
    let etc = dir.path().join("etc");
    std::fs::create_dir(&etc).unwrap();
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/zincati/00-config-sample.toml"
        ),
        etc.join("00-config-sample.toml"),
    )
    .unwrap();
    let config = cairn_agent::config::load(&[etc]).unwrap();
    let identity = Identity::resolve(&config.identity, Path::new("/nonexistent")).unwrap();
    assert_eq!(identity.group, "workers");
    assert_eq!(
        identity.fleet_lock_client_id(),
        "27e3ac02af3946af995c9940e18b0cce"
    );
    assert_eq!(identity.rollout_wariness, RolloutWariness::Configured(0.5));
}
