#![no_main]
//! The rtnetlink reply parser over arbitrary datagrams (see
//! ciao::net::rtnl::decode::parse): it must return an error, never panic.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ciao::net::rtnl::decode::parse(data);
});
