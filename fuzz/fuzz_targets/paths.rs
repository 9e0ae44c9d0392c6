//! `cargo +nightly fuzz run paths`: see `codeflow_fuzz::paths`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| codeflow_fuzz::paths(data));
