#![no_main]
//! The docker plugin's request handling: the bytes of one connection,
//! parsed and answered by the plugin (see ciao::docker::plugin::fuzz).

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ciao::docker::plugin::fuzz::fuzz_requests(data));
