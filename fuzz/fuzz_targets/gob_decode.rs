//! The SSNTP gob decoder (the same `Decoder` a session uses), fed whole and
//! in chunks, with every decoded value re-encoded and decoded again.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ciao::ssntp::frame::fuzz_gob_decode(data);
});
