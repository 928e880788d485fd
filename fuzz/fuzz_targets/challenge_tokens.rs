//! Fuzzes the challenge's parsers of client input: clearance cookie values and puzzle
//! answers (token and nonce) must be refused or accepted without panicking, and nothing a
//! fuzzer invents may verify as a clearance or a solved puzzle.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use palisade_policy::challenge::{ChallengeKey, ClientBinding};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let key = ChallengeKey::from_secret(&[42u8; 32]).expect("32-byte secret");
    let client = ClientBinding::new([192, 0, 2, 1].into(), b"fuzz");
    let now = 1_750_000_000_000;
    assert!(key.check_clearance(text, &client, now).is_err());
    let (token, nonce) = text.split_once('\n').unwrap_or((text, "0"));
    let ttl = Duration::from_secs(300);
    assert!(key.check_solution(token, nonce, &client, now, ttl).is_err());
});
