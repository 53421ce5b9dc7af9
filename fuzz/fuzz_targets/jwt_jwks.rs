//! ID tokens against a fixed key set, JWKS documents, and the claim checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sessiongate::fuzzing::jwt_jwks(data));
