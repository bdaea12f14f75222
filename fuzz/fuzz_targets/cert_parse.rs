//! The certificate DER walk and the PEM reader on arbitrary bytes: must never
//! panic (seeded with ciao-cert style RSA and P-521 anchors and leaves).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ciao::ssntp::cert::parse_certificate(data);
    for (_, der) in ciao::ssntp::cert::pem_blocks(data) {
        let _ = ciao::ssntp::cert::parse_certificate(&der);
    }
});
