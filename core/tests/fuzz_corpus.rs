//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`) through the same harness the
//! fuzz targets run, on stable Rust and without libFuzzer (see docs/TESTING.md).

mod fuzz_harness;

use std::path::PathBuf;

use fuzz_harness::Reached;

/// Runs every corpus file of a target; the files in name order, so a failure names one.
fn replay(target: &str, run: fn(&[u8]) -> Reached) -> (usize, Reached) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a readable directory entry").path())
        .collect();
    files.sort();
    let mut total = Reached::default();
    for file in &files {
        let data = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let result = std::panic::catch_unwind(|| run(&data));
        match result {
            Ok(reached) => total += reached,
            Err(_) => panic!("{target}: {} broke an invariant", file.display()),
        }
    }
    (files.len(), total)
}

#[test]
fn frame_corpus() {
    let (files, reached) = replay("frame", fuzz_harness::frame);
    // The corpus must exercise something: frames that decode as packets, not just errors.
    assert!(files >= 10, "{files} files");
    assert!(reached.packets >= 20, "{reached:?}");
}

#[test]
fn irc_corpus() {
    let (files, reached) = replay("irc", fuzz_harness::irc);
    assert!(files >= 10, "{files} files");
    assert!(reached.packets >= 20, "{reached:?}");
}

#[test]
fn server_corpus() {
    let (files, reached) = replay("server", fuzz_harness::server);
    // Scripts that only open and close would check little: the corpus must register
    // clients of both protocols and get them into rooms.
    assert!(files >= 10, "{files} files");
    assert!(reached.native_registered >= 5, "{reached:?}");
    assert!(reached.irc_registered >= 5, "{reached:?}");
    assert!(reached.rooms >= 2, "{reached:?}");
}
