//! Replays a fuzz target's committed inputs on stable Rust: every file of
//! `fuzz/corpus/<target>` (the minimized corpus) and of
//! `fuzz/regressions/<target>` (each crash the fuzzers found, kept apart so
//! that minimizing the corpus never drops one). Included by the
//! `fuzz_corpus` tests of the crates that own the fuzzed code.

use std::path::{Path, PathBuf};

/// `fuzz/` of this repository, found above the crate being tested.
fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|dir| dir.join("fuzz"))
        .find(|dir| dir.join("corpus").is_dir())
        .expect("fuzz/corpus above the crate")
}

/// Runs `check` on every committed input of `target`; the corpus must hold
/// at least 20.
pub fn replay(target: &str, check: fn(&[u8])) {
    let fuzz = fuzz_dir();
    let mut corpus = 0;
    for kind in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz.join(kind).join(target)) else {
            assert_eq!(kind, "regressions", "no corpus for {target}");
            continue;
        };
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            let input = std::fs::read(&path).expect("a corpus file");
            // Shown with the test's output when `check` panics.
            eprintln!("{}", path.display());
            check(&input);
            corpus += usize::from(kind == "corpus");
        }
    }
    assert!(corpus >= 20, "only {corpus} corpus inputs for {target}");
}
