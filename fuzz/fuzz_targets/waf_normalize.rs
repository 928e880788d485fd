//! The normaliser on arbitrary bytes: no panic, output never longer than the input, every
//! view (folded, hidden payloads, normalised path) computed without blowing up.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_waf::normalize::{self, Plus};

fuzz_target!(|data: &[u8]| {
    for plus in [Plus::IsSpace, Plus::Literal] {
        let (text, _flags) = normalize::decode(data, plus);
        assert!(text.len() <= data.len() * 3 + 3, "decoding grew the input");
        let folded = normalize::fold(&text);
        assert!(folded.len() <= text.len() * 3 + 3);
        let hidden = normalize::hidden_payloads(&text);
        assert!(hidden.iter().map(|h| h.bytes.len()).sum::<usize>() <= normalize::MAX_HIDDEN);
        let _ = normalize::normalize_path(&text);
    }
});
