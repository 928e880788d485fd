//! Fuzzes the YAML rules-file loader: any bytes must load or fail with positioned errors.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use palisade_expr::{RuleSet, Scheme};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(errors) = RuleSet::from_yaml("fuzz.yaml", text, Arc::new(Scheme::standard())) {
        assert!(!errors.0.is_empty());
        let _ = errors.to_string();
    }
});
