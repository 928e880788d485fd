//! The SQL tokenizer and grammar on arbitrary text: no panic, token spans on character
//! boundaries inside the input, bounded token count.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_waf::detect::sqli;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut tokens = Vec::new();
    sqli::tokenize(&text, 0, &mut tokens);
    assert!(tokens.len() <= sqli::MAX_TOKENS);
    for t in &tokens {
        assert!(t.start < t.end && t.end <= text.len());
        assert!(text.is_char_boundary(t.start) && text.is_char_boundary(t.end));
    }
    if let Some(hit) = sqli::detect(&text) {
        assert!((1..=99).contains(&hit.score));
    }
});
