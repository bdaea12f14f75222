//! START payloads (and the other receive-side payload parsers) on arbitrary bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ciao::payloads::fuzz::start_payload(data);
});
