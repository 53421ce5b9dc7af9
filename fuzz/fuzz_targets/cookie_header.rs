//! The `Cookie` header parsers: the session cookie's chunk reader and the stripping of the
//! gateway's own cookies before a request goes upstream.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sessiongate::fuzzing::cookie_header(data));
