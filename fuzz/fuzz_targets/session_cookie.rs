//! The session cookie from a request's `Cookie` fields, and its sealed payload.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sessiongate::fuzzing::session_cookie(data));
