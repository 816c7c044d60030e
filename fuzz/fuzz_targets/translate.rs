#![no_main]
//! Translation (YAML → Ignition, validation, diagnostics) must never panic.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let source = cairn_provision::Source {
        name: "fuzz.bu".into(),
        text: String::from_utf8_lossy(data).into_owned(),
    };
    if let Err(diagnostics) =
        cairn_provision::translate(&source, &cairn_provision::Options::default())
    {
        for d in diagnostics {
            let _ = d.to_string();
        }
    }
});
