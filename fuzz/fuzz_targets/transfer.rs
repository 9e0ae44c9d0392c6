//! `cargo +nightly fuzz run transfer`: see `codeflow_fuzz::transfer`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| codeflow_fuzz::transfer(data));
