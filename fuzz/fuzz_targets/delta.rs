//! `cargo +nightly fuzz run delta`: see `codeflow_fuzz::delta`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| codeflow_fuzz::delta(data));
