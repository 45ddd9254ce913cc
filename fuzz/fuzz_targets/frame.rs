//! Fuzzes `FrameDecoder` and both packet decoders; the checks are in core/tests/fuzz_harness.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../core/tests/fuzz_harness/mod.rs"]
mod harness;

fuzz_target!(|data: &[u8]| {
    harness::frame(data);
});
