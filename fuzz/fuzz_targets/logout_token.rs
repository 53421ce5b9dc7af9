//! The back-channel logout handler: the form body and the logout token's claims.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sessiongate::fuzzing::logout_token(data));
