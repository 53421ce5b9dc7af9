//! The return-URL validator: whatever it answers keeps the browser on this origin.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sessiongate::fuzzing::return_url(data));
