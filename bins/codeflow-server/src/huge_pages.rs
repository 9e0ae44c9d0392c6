//! No transparent huge pages for the server's heap.
//!
//! With huge pages the kernel backs the allocator's arenas in 2 MiB granules (on hosts where
//! THP is `always`, or `madvise` when the allocator asks for it): a granule stays resident as
//! long as one of its 4 KiB pages is in use, and khugepaged collapses partly used ranges back
//! into granules. Measured in the chaos soak (R5, docs/benchmarks.md): with huge pages an
//! instance's resident size was 44-54 MB, 16-32 MB of it in huge pages, and moved by -9 % to
//! +19 % between the baseline and the end of the load; without them 19-31 MB, within +7 %.
//! The mimalloc build does not ask for huge pages (`no_thp`); this also refuses them on
//! `always` hosts, for this process and the language servers it starts (the flag is
//! inherited), as mimalloc's own `MIMALLOC_ALLOW_THP=0` would.

/// Turns transparent huge pages off for this process; a failure (an old kernel) is only logged.
pub fn refuse() {
    if let Err(e) = nix::sys::prctl::set_thp_disable(true) {
        eprintln!("codeflow-server: cannot turn transparent huge pages off: {e}");
    }
}
