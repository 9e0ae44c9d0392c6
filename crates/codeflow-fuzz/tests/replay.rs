//! Replays the seed corpus of every fuzz target (`fuzz/corpus/<target>/`) and a deterministic
//! mutation of it, on stable. `CODEFLOW_FUZZ_ITERS` sets the mutations per target (default
//! 20 000; `docs/security.md` records runs of 1 000 000). A panic names the target and writes
//! the input to `target/fuzz-crash-<target>` for `cargo +nightly fuzz run <target> <file>`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Fragments that tend to break parsers: multi-byte characters, NUL, escapes, brackets.
const SPICE: &[&str] = &[
    "é",
    "日本",
    "🦀",
    "\u{0}",
    "\\u0000",
    "\\ud800",
    "\"",
    "\\",
    "[",
    "]",
    "{",
    "}",
    ":",
    ",",
    "/",
    "..",
    "C:\\",
    "%2e%2e",
    "\n",
    "\r\n",
    "-1",
    "1e999",
    "18446744073709551616",
    "null",
];

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut inputs: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("seed corpus {}: {e}", dir.display()))
        .map(|entry| std::fs::read(entry.unwrap().path()).unwrap())
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "empty seed corpus for {target}");
    inputs
}

fn mutate(rng: &mut StdRng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut data = seeds[rng.random_range(0..seeds.len())].clone();
    for _ in 0..rng.random_range(1..6) {
        let at = if data.is_empty() {
            0
        } else {
            rng.random_range(0..=data.len())
        };
        match rng.random_range(0..6) {
            0 if !data.is_empty() => {
                let i = rng.random_range(0..data.len());
                data[i] ^= 1 << rng.random_range(0..8);
            }
            1 => {
                let spice = SPICE[rng.random_range(0..SPICE.len())].as_bytes();
                data.splice(at..at, spice.iter().copied());
            }
            2 if !data.is_empty() => {
                let end = rng.random_range(at..=data.len());
                data.drain(at..end);
            }
            3 => data.truncate(at),
            4 if !data.is_empty() => {
                let other = &seeds[rng.random_range(0..seeds.len())];
                let from = rng.random_range(0..=other.len());
                data.splice(at..at, other[from..].iter().copied());
            }
            _ => data.insert(at.min(data.len()), rng.random()),
        }
    }
    data
}

fn run(name: &str, target: fn(&[u8]), input: &[u8]) {
    let outcome = std::panic::catch_unwind(|| target(input));
    if outcome.is_err() {
        let out = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../target")
            .join(format!("fuzz-crash-{name}"));
        let _ = std::fs::write(&out, input);
        panic!(
            "fuzz target `{name}` panicked on {:?} (saved to {})",
            String::from_utf8_lossy(input),
            out.display()
        );
    }
}

#[test]
fn every_target_survives_its_corpus_and_mutations() {
    let iterations: u64 = std::env::var("CODEFLOW_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    for (name, target) in codeflow_fuzz::TARGETS {
        let seeds = corpus(name);
        for seed in &seeds {
            run(name, *target, seed);
        }
        let mut rng = StdRng::seed_from_u64(0x00c0_def1_0a11);
        let started = std::time::Instant::now();
        for _ in 0..iterations {
            let input = mutate(&mut rng, &seeds);
            run(name, *target, &input);
        }
        eprintln!(
            "{name}: {} seeds, {iterations} mutations in {:.1} s",
            seeds.len(),
            started.elapsed().as_secs_f64()
        );
    }
}
