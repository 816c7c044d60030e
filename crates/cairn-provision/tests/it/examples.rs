//! Every example of Butane's documentation translates to the JSON Butane v0.23.0 wrote
//! for it (tests/data/butane-examples, from ../shared/data), compared semantically: `data:` URLs are
//! decoded (and gunzipped) before comparing, since the encoding is a free choice.

use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use cairn_provision::{translate, Options, Source};
use serde_json::Value;

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/butane-examples")
}

fn decode_data_url(url: &str) -> Option<Vec<u8>> {
    let rest = url.strip_prefix("data:")?;
    let (meta, payload) = rest.split_once(',')?;
    if meta.ends_with(";base64") {
        return base64::engine::general_purpose::STANDARD
            .decode(payload)
            .ok();
    }
    let bytes = payload.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; 64 << 20];
    let n = libdeflater::Decompressor::new()
        .gzip_decompress(data, &mut out)
        .expect("gunzip");
    out.truncate(n);
    out
}

/// Replaces each `data:` source by its decoded payload and drops `compression` beside it.
fn normalize(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(source)) = map.get("source").cloned() {
                if let Some(mut data) = decode_data_url(&source) {
                    if map.get("compression").and_then(Value::as_str) == Some("gzip") {
                        data = gunzip(&data);
                    }
                    map.remove("compression");
                    map.insert(
                        "source".into(),
                        Value::String(format!("decoded:{}", String::from_utf8_lossy(&data))),
                    );
                }
            }
            for v in map.values_mut() {
                normalize(v);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(normalize),
        _ => {}
    }
}

#[test]
fn every_butane_example_translates_to_what_butane_wrote() {
    let cases = data_dir().join("cases");
    // The `trees` example names a directory that git could not keep because it is empty.
    let files = tempfile::tempdir().unwrap();
    for entry in fs::read_dir(data_dir().join("files-dir")).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), files.path().join(entry.file_name())).unwrap();
    }
    fs::create_dir(files.path().join("tree")).unwrap();
    let options = Options {
        files_dir: Some(files.path().to_owned()),
    };
    let mut names: Vec<PathBuf> = fs::read_dir(&cases)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "bu"))
        .collect();
    names.sort();
    assert!(names.len() >= 27, "only {} cases", names.len());
    let mut failures = Vec::new();
    for bu in &names {
        let source = Source {
            name: bu.display().to_string(),
            text: fs::read_to_string(bu).unwrap(),
        };
        let mut expected: Value =
            serde_json::from_str(&fs::read_to_string(bu.with_extension("ign")).unwrap()).unwrap();
        match translate(&source, &options) {
            Ok(t) => {
                let mut actual = t.config;
                normalize(&mut actual);
                normalize(&mut expected);
                if actual != expected {
                    failures.push(format!(
                        "{}:\n  cairn:  {actual}\n  butane: {expected}",
                        bu.display()
                    ));
                }
            }
            Err(diagnostics) => failures.push(format!(
                "{}: {}",
                bu.display(),
                diagnostics
                    .iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join("\n")
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        names.len(),
        failures.join("\n")
    );
}
