#![no_main]
//! HTTP/1.1 response parser over arbitrary bytes, whole, split in two and byte
//! by byte (see ciao::http::fuzz_response).

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ciao::http::fuzz_response(data));
