//! `cargo +nightly fuzz run handshake`: see `codeflow_fuzz::handshake`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| codeflow_fuzz::handshake(data));
