#![no_main]
//! ciao-launcher-server core: an arbitrary script of connections, frames and
//! REST requests against one client table (see ciao::testserver::fuzz).

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ciao::testserver::fuzz::fuzz_script(data));
