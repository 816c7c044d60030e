//! `cairn config`: Butane's examples through the binary, checked by the real
//! `ignition-validate` (Ignition 2.14 knows spec 3.0–3.3); flags and exit codes.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::*;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../cairn-provision/tests/data/butane-examples")
}

fn files_dir(tmp: &Path) -> PathBuf {
    let dir = tmp.join("files");
    fs::create_dir_all(dir.join("tree")).unwrap();
    for e in fs::read_dir(examples().join("files-dir")).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), dir.join(e.file_name())).unwrap();
    }
    dir
}

#[test]
fn ignition_validate_accepts_what_cairn_writes() {
    if !have_peer("ignition-validate") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let files = files_dir(tmp.path());
    let mut checked = 0;
    let mut cases: Vec<_> = fs::read_dir(examples().join("cases"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "bu"))
        .collect();
    cases.sort();
    for case in cases {
        let out = tmp.path().join("out.ign");
        cairn_ok(&[
            "config",
            "translate",
            "--files-dir",
            files.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            case.to_str().unwrap(),
        ]);
        let json: serde_json::Value = serde_json::from_slice(&fs::read(&out).unwrap()).unwrap();
        let version = json["ignition"]["version"].as_str().unwrap().to_owned();
        if !["3.0.0", "3.1.0", "3.2.0", "3.3.0"].contains(&version.as_str()) {
            continue;
        }
        let v = Command::new("ignition-validate")
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            v.status.success(),
            "{}: ignition-validate refused cairn's output: {}{}",
            case.display(),
            String::from_utf8_lossy(&v.stdout),
            stderr(&v)
        );
        checked += 1;
    }
    assert!(checked >= 15, "only {checked} configs of spec <= 3.3");
}

#[test]
fn translate_flags_exit_codes_and_merging() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base.bu");
    fs::write(
        &base,
        "variant: fcos\nversion: 1.4.0\nstorage:\n  files:\n    - path: /etc/motd\n      mode: 0644\n      contents:\n        inline: hello\n",
    )
    .unwrap();
    let site = tmp.path().join("site.bu");
    fs::write(
        &site,
        "variant: fcos\nversion: 1.5.0\nstorage:\n  files:\n    - path: /etc/motd\n      mode: 0600\n    - path: /etc/site\n",
    )
    .unwrap();
    let merged: serde_json::Value = serde_json::from_str(&cairn_ok(&[
        "config",
        "translate",
        base.to_str().unwrap(),
        site.to_str().unwrap(),
    ]))
    .unwrap();
    assert_eq!(merged["ignition"]["version"], "3.4.0");
    let files = merged["storage"]["files"].as_array().unwrap();
    assert_eq!(files.len(), 2);
    assert_eq!(files[0]["mode"], 0o600, "the later file wins");
    assert_eq!(files[0]["contents"]["source"], "data:,hello");

    // Files valid alone can conflict once merged: the message names the file.
    let disk = |n: u32| {
        format!("variant: fcos\nversion: 1.4.0\nstorage:\n  disks:\n    - device: /dev/sdb\n      partitions:\n        - number: {n}\n          label: data\n")
    };
    let (one, two) = (tmp.path().join("one.bu"), tmp.path().join("two.bu"));
    fs::write(&one, disk(1)).unwrap();
    fs::write(&two, disk(2)).unwrap();
    let out = cairn(&[
        "config",
        "translate",
        one.to_str().unwrap(),
        two.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(
        stderr(&out).contains("same partition label") && stderr(&out).contains("two.bu"),
        "{}",
        stderr(&out)
    );

    // A warning passes, unless --strict; an error fails with 1 and names the line.
    let warn = tmp.path().join("warn.bu");
    fs::write(
        &warn,
        "variant: fcos\nversion: 1.6.0\nstorage:\n  fils: []\n",
    )
    .unwrap();
    let out = cairn(&["config", "translate", warn.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("warn.bu:4:3"), "{}", stderr(&out));
    let out = cairn(&["config", "translate", "--strict", warn.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let bad = tmp.path().join("bad.bu");
    fs::write(
        &bad,
        "variant: fcos\nversion: 1.6.0\nstorage:\n  files:\n    - path: etc/x\n",
    )
    .unwrap();
    let out = cairn(&["config", "translate", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(stderr(&out).contains("bad.bu:5:"), "{}", stderr(&out));
    let out = cairn(&["config", "validate", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));

    // validate takes Ignition JSON too.
    let ign = tmp.path().join("x.ign");
    fs::write(
        &ign,
        r#"{"ignition":{"version":"3.3.0"},"storage":{"files":[{"path":"rel"}]}}"#,
    )
    .unwrap();
    let out = cairn(&["config", "validate", ign.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("$.storage.files.0.path"),
        "{}",
        stderr(&out)
    );
    fs::write(&ign, r#"{"ignition":{"version":"3.3.0"}}"#).unwrap();
    assert_eq!(
        cairn(&["config", "validate", ign.to_str().unwrap()])
            .status
            .code(),
        Some(0)
    );
}
