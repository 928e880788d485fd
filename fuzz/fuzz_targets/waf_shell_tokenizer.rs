//! The shell tokenizer on arbitrary text: no panic, scores in range.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_waf::Source;
use palisade_waf::detect::shell;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for source in [Source::Arg, Source::Header, Source::Path] {
        if let Some(hit) = shell::detect(&text, source) {
            assert!((1..=99).contains(&hit.score));
        }
    }
});
