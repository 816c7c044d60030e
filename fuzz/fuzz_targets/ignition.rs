#![no_main]
//! The Ignition JSON parser and validator must never panic.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = cairn_ignition::parse(data);
});
