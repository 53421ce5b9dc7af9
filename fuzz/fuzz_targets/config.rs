//! The TOML configuration loader, with an empty environment.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sessiongate::fuzzing::config(data));
