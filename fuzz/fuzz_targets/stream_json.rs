//! `cargo +nightly fuzz run stream_json`: see `codeflow_fuzz::stream_json`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| codeflow_fuzz::stream_json(data));
