//! `cargo +nightly fuzz run frame`: see `codeflow_fuzz::frame`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| codeflow_fuzz::frame(data));
