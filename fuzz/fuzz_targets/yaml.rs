#![no_main]
//! The YAML parser must never panic.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = cairn_provision::yaml::parse(&String::from_utf8_lossy(data));
});
