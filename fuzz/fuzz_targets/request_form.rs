//! Fuzzes the `palisade rules eval` request form and the standard fields computed from it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_expr::Scheme;
use palisade_expr::request::RequestInfo;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.split('\n');
    let line = lines.next().unwrap_or_default();
    let headers: Vec<&str> = lines.collect();
    let Ok(request) = RequestInfo::from_cli(line, &headers, Some(data.to_vec()), None) else {
        return;
    };
    for def in Scheme::standard().fields() {
        if let Some(field) = def.standard() {
            assert!(request.standard_value(field).has_type(def.ty()));
        }
    }
});
