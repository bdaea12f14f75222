//! The state log's replay (and the state decoder behind it) on arbitrary bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ciao::launcher::statelog::fuzz(data);
});
