//! Snapshot tests of what a user sees for an invalid config: each file in
//! `tests/data/errors/*.bu` has its expected messages in `*.stderr` beside it. Every
//! message must name the file, line and column, and the YAML path where there is one.
//! `CAIRN_BLESS=1 cargo test` rewrites the snapshots (review the diff before committing).

use std::fs;
use std::path::Path;

use cairn_provision::{translate, Options, Source};

#[test]
fn invalid_configs_give_messages_that_point_at_the_yaml() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/errors");
    let options = Options {
        files_dir: Some(dir.join("files")),
    };
    let bless = std::env::var_os("CAIRN_BLESS").is_some();
    let mut cases: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "bu"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 20, "only {} cases", cases.len());
    let mut mismatches = Vec::new();
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let source = Source {
            name: name.clone(),
            text: fs::read_to_string(case).unwrap(),
        };
        let diagnostics = match translate(&source, &options) {
            Ok(t) => panic!("{name} translated without error: {}", t.config),
            Err(d) => d,
        };
        assert!(diagnostics.iter().any(|d| d.is_error()), "{name}");
        for d in &diagnostics {
            assert!(d.mark.line >= 1 && d.mark.column >= 1, "{name}: {d}");
            assert_eq!(d.file, name);
        }
        let rendered: String = diagnostics.iter().map(|d| format!("{d}\n")).collect();
        assert!(rendered.contains(&format!("--> {name}:")), "{rendered}");
        let snapshot = case.with_extension("stderr");
        if bless {
            fs::write(&snapshot, &rendered).unwrap();
            continue;
        }
        let expected = fs::read_to_string(&snapshot).unwrap_or_else(|_| {
            panic!("no snapshot {}; run with CAIRN_BLESS=1", snapshot.display())
        });
        if expected != rendered {
            mismatches.push(format!(
                "{name}:\n--- expected\n{expected}--- actual\n{rendered}"
            ));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}
