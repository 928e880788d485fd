//! The HTML/JavaScript tokenizer on arbitrary text: no panic, scores in range.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_waf::detect::xss;
use palisade_waf::normalize;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let folded = normalize::fold(&text);
    if let Some(hit) = xss::detect(&text, &folded) {
        assert!((1..=99).contains(&hit.score));
    }
});
