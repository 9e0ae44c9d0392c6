//! `cargo +nightly fuzz run manifest`: see `codeflow_fuzz::manifest`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| codeflow_fuzz::manifest(data));
