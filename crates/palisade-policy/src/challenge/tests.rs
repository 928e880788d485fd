use std::net::IpAddr;
use std::time::Duration;

use proptest::prelude::*;

use super::*;

const NOW: u64 = 1_750_000_000_000;
const TTL: Duration = Duration::from_secs(300);
const HOUR: Duration = Duration::from_secs(3600);

fn key() -> ChallengeKey {
    ChallengeKey::from_secret(&[7u8; 32]).expect("key")
}

fn client(ip: &str, agent: &str) -> ClientBinding {
    ClientBinding::new(ip.parse::<IpAddr>().expect("ip"), agent.as_bytes())
}

fn solve(token: &str, difficulty: u8) -> String {
    (0u64..)
        .map(|n| n.to_string())
        .find(|nonce| is_solution(token, nonce, difficulty))
        .expect("a nonce exists")
}

#[test]
fn leading_zero_bits_counts_across_bytes() {
    assert_eq!(leading_zero_bits(&[0xff]), 0);
    assert_eq!(leading_zero_bits(&[0x01]), 7);
    assert_eq!(leading_zero_bits(&[0x00, 0x10]), 11);
    assert_eq!(leading_zero_bits(&[0, 0]), 16);
}

#[test]
fn a_solved_puzzle_is_accepted_once_checked() {
    let me = client("111.235.160.9", "Mozilla/5.0");
    let puzzle = key().puzzle(&me, 8, NOW, [1; 16]);
    let nonce = solve(&puzzle.token, 8);
    let solved = key()
        .check_solution(&puzzle.token, &nonce, &me, NOW + 1000, TTL)
        .expect("accepted");
    assert_eq!(solved.expires_at, NOW + 300_000);
    assert_eq!(solved.id, "AQEBAQEBAQEBAQEBAQEBAQ");
}

#[test]
fn a_nonce_without_enough_zero_bits_is_refused() {
    let me = client("192.0.2.1", "ua");
    let puzzle = key().puzzle(&me, 12, NOW, [2; 16]);
    let wrong = (0u64..)
        .map(|n| n.to_string())
        .find(|nonce| !is_solution(&puzzle.token, nonce, 12))
        .expect("most nonces fail");
    let refused = key().check_solution(&puzzle.token, &wrong, &me, NOW, TTL);
    assert_eq!(refused, Err(PuzzleRefusal::InsufficientWork));
}

#[test]
fn a_puzzle_past_its_ttl_is_refused() {
    let me = client("192.0.2.1", "ua");
    let puzzle = key().puzzle(&me, 4, NOW, [3; 16]);
    let nonce = solve(&puzzle.token, 4);
    let late = NOW + TTL.as_millis() as u64;
    assert_eq!(
        key().check_solution(&puzzle.token, &nonce, &me, late, TTL),
        Err(PuzzleRefusal::Expired)
    );
}

#[test]
fn a_puzzle_solved_from_another_network_or_browser_is_refused() {
    let me = client("192.0.2.1", "ua");
    let puzzle = key().puzzle(&me, 4, NOW, [4; 16]);
    let nonce = solve(&puzzle.token, 4);
    for other in [client("198.51.100.1", "ua"), client("192.0.2.1", "other")] {
        assert_eq!(
            key().check_solution(&puzzle.token, &nonce, &other, NOW, TTL),
            Err(PuzzleRefusal::BadSignature)
        );
    }
}

#[test]
fn a_puzzle_with_lowered_difficulty_fails_its_signature() {
    let me = client("192.0.2.1", "ua");
    let puzzle = key().puzzle(&me, 20, NOW, [5; 16]);
    let easier = puzzle.token.replacen(".20.", ".1.", 1);
    let nonce = solve(&easier, 1);
    assert_eq!(
        key().check_solution(&easier, &nonce, &me, NOW, TTL),
        Err(PuzzleRefusal::BadSignature)
    );
}

#[test]
fn a_puzzle_signed_with_another_key_is_refused() {
    let me = client("192.0.2.1", "ua");
    let other = ChallengeKey::from_secret(&[8u8; 32]).expect("key");
    let puzzle = other.puzzle(&me, 4, NOW, [6; 16]);
    let nonce = solve(&puzzle.token, 4);
    assert_eq!(
        key().check_solution(&puzzle.token, &nonce, &me, NOW, TTL),
        Err(PuzzleRefusal::BadSignature)
    );
}

#[test]
fn malformed_tokens_and_nonces_are_refused() {
    let me = client("192.0.2.1", "ua");
    let puzzle = key().puzzle(&me, 4, NOW, [9; 16]);
    let cases = [
        (puzzle.token.as_str(), ""),
        (puzzle.token.as_str(), "12a"),
        (puzzle.token.as_str(), "123456789012345678901"),
        ("p1.1.2.3", "1"),
        ("", "1"),
        ("p2.1.4.AQEBAQEBAQEBAQEBAQEBAQ.x", "1"),
    ];
    for (token, nonce) in cases {
        assert_eq!(
            key().check_solution(token, nonce, &me, NOW, TTL),
            Err(PuzzleRefusal::Malformed),
            "{token:?} {nonce:?}"
        );
    }
    let padded = puzzle.token.replacen("p1.", "p1.0", 1);
    assert_eq!(
        key().check_solution(&padded, "1", &me, NOW, TTL),
        Err(PuzzleRefusal::Malformed)
    );
}

#[test]
fn a_clearance_holds_for_its_client_until_it_expires() {
    let me = client("111.235.160.9", "Mozilla/5.0");
    let clearance = key().clearance(&me, NOW, HOUR);
    assert_eq!(clearance.expires_at, NOW + 3_600_000);
    assert_eq!(key().check_clearance(&clearance.value, &me, NOW), Ok(()));
    let neighbour = client("111.235.160.200", "Mozilla/5.0");
    assert_eq!(
        key().check_clearance(&clearance.value, &neighbour, NOW + 1),
        Ok(()),
        "same /24"
    );
    assert_eq!(
        key().check_clearance(&clearance.value, &me, clearance.expires_at),
        Err(ClearanceRefusal::Expired)
    );
}

#[test]
fn a_clearance_replayed_from_another_network_or_browser_is_refused() {
    let me = client("111.235.160.9", "Mozilla/5.0");
    let clearance = key().clearance(&me, NOW, HOUR);
    for other in [
        client("111.235.161.9", "Mozilla/5.0"),
        client("111.235.160.9", "curl/8"),
    ] {
        assert_eq!(
            key().check_clearance(&clearance.value, &other, NOW),
            Err(ClearanceRefusal::BadSignature)
        );
    }
}

#[test]
fn ipv6_clients_are_bound_to_their_slash_64() {
    let me = client("2001:db8:1:2::1", "ua");
    let clearance = key().clearance(&me, NOW, HOUR);
    let same = client("2001:db8:1:2:ffff::9", "ua");
    let other = client("2001:db8:1:3::1", "ua");
    assert_eq!(key().check_clearance(&clearance.value, &same, NOW), Ok(()));
    assert_eq!(
        key().check_clearance(&clearance.value, &other, NOW),
        Err(ClearanceRefusal::BadSignature)
    );
}

#[test]
fn a_forged_or_extended_clearance_is_refused() {
    let me = client("192.0.2.1", "ua");
    let clearance = key().clearance(&me, NOW, HOUR);
    let extended = clearance
        .value
        .replacen(&clearance.expires_at.to_string(), "99999999999999", 1);
    assert_eq!(
        key().check_clearance(&extended, &me, NOW),
        Err(ClearanceRefusal::BadSignature)
    );
    let forged = format!(
        "c1.{}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        NOW + 1000
    );
    assert_eq!(
        key().check_clearance(&forged, &me, NOW),
        Err(ClearanceRefusal::BadSignature)
    );
    assert_eq!(
        key().check_clearance("c1.x.y", &me, NOW),
        Err(ClearanceRefusal::Malformed)
    );
}

#[test]
fn a_puzzle_token_is_not_a_clearance() {
    let me = client("192.0.2.1", "ua");
    let puzzle = key().puzzle(&me, 4, NOW, [1; 16]);
    let fields: Vec<&str> = puzzle.token.split('.').collect();
    let as_clearance = format!("c1.{}.{}", NOW + 1000, fields[4]);
    assert_eq!(
        key().check_clearance(&as_clearance, &me, NOW),
        Err(ClearanceRefusal::BadSignature)
    );
}

#[test]
fn short_secrets_are_refused_and_keys_are_never_printed() {
    assert_eq!(
        ChallengeKey::from_secret(b"short").err(),
        Some(ChallengeKeyError::TooShort(5))
    );
    let key = ChallengeKey::generate().expect("random");
    assert_eq!(format!("{key:?}"), "ChallengeKey(<redacted>)");
    let me = client("192.0.2.1", "ua");
    let clearance = key.clearance(&me, NOW, HOUR);
    assert!(!format!("{clearance:?}").contains(&clearance.value));
}

proptest! {
    #[test]
    fn arbitrary_cookies_and_solutions_never_verify(
        value in "\\PC{0,300}",
        nonce in "[0-9a-z]{0,24}",
    ) {
        let me = client("192.0.2.1", "ua");
        prop_assert!(key().check_clearance(&value, &me, NOW).is_err());
        prop_assert!(key().check_solution(&value, &nonce, &me, NOW, TTL).is_err());
    }
}
