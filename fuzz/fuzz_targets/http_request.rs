#![no_main]
//! HTTP/1.1 request parser over arbitrary bytes, whole, split in two and byte
//! by byte (see ciao::http::fuzz_request).

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ciao::http::fuzz_request(data));
