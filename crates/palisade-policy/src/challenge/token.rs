//! Puzzle tokens and clearance values: their text forms, signing and checking.
//!
//! A puzzle is `p1.<issued ms>.<difficulty>.<id>.<mac>` and a clearance `c1.<expires ms>.<mac>`
//! (id and mac unpadded base64url), so both travel in forms and cookies without escaping.
//! Inputs are bounded before anything is decoded.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::clock::UnixMillis;

use super::{ChallengeKey, ClientBinding, MAX_DIFFICULTY, is_solution};

const PUZZLE_LABEL: &[u8] = b"palisade puzzle v1";
const CLEARANCE_LABEL: &[u8] = b"palisade clearance v1";
/// The longest puzzle token or clearance examined.
const MAX_TOKEN_LEN: usize = 256;
/// The longest nonce examined: the decimal digits of a u64.
const MAX_NONCE_LEN: usize = 20;
/// How far in the future an issue time may lie (clocks of several instances differ).
const CLOCK_SKEW_MS: u64 = 60_000;

/// A puzzle for one client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Puzzle {
    /// The signed token the browser hashes with its nonce.
    pub token: String,
    /// Leading zero bits asked for.
    pub difficulty: u8,
}

/// A correctly solved puzzle. Its `id` must be recorded as used until `expires_at` so that
/// the same work cannot be sent twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SolvedPuzzle {
    /// The puzzle's random id (unpadded base64url).
    pub id: String,
    /// When the puzzle stops being accepted anyway.
    pub expires_at: UnixMillis,
}

/// Why a solution was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PuzzleRefusal {
    /// The token or nonce is not in the expected form.
    #[error("malformed puzzle or nonce")]
    Malformed,
    /// The token was not signed by this key for this client (forged, or another network or
    /// browser).
    #[error("puzzle signature does not match this client")]
    BadSignature,
    /// The puzzle is older than its time to live (or issued in the future).
    #[error("puzzle expired")]
    Expired,
    /// The nonce does not give enough leading zero bits.
    #[error("not enough work")]
    InsufficientWork,
}

impl PuzzleRefusal {
    /// A short stable name for events and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
            Self::InsufficientWork => "insufficient_work",
        }
    }
}

/// A clearance for one client.
#[derive(Clone, PartialEq, Eq)]
pub struct Clearance {
    /// The cookie value.
    pub value: String,
    /// When it stops being accepted.
    pub expires_at: UnixMillis,
}

impl std::fmt::Debug for Clearance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clearance")
            .field("value", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Why a clearance cookie was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClearanceRefusal {
    /// The value is not in the expected form.
    #[error("malformed clearance")]
    Malformed,
    /// Not signed by this key for this client: forged, or replayed from another network or
    /// browser.
    #[error("clearance signature does not match this client")]
    BadSignature,
    /// Past its expiry.
    #[error("clearance expired")]
    Expired,
}

impl ClearanceRefusal {
    /// A short stable name for events and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
        }
    }
}

impl ChallengeKey {
    /// A puzzle of `difficulty` (clamped to 1..=[`MAX_DIFFICULTY`]) for `client`, issued
    /// `now`, with the random `id` the caller drew.
    pub fn puzzle(
        &self,
        client: &ClientBinding,
        difficulty: u8,
        now: UnixMillis,
        id: [u8; 16],
    ) -> Puzzle {
        let difficulty = difficulty.clamp(1, MAX_DIFFICULTY);
        let issued = now.to_string();
        let bits = difficulty.to_string();
        let parts: [&[u8]; 3] = [issued.as_bytes(), bits.as_bytes(), &id];
        let mac = self.sign(PUZZLE_LABEL, &parts, client);
        let token = format!(
            "p1.{issued}.{bits}.{}.{}",
            URL_SAFE_NO_PAD.encode(id),
            URL_SAFE_NO_PAD.encode(mac)
        );
        Puzzle { token, difficulty }
    }

    /// Checks a solution: the token is ours, for this client, younger than `ttl`, and the
    /// nonce does the work it asks for.
    pub fn check_solution(
        &self,
        token: &str,
        nonce: &str,
        client: &ClientBinding,
        now: UnixMillis,
        ttl: Duration,
    ) -> Result<SolvedPuzzle, PuzzleRefusal> {
        let nonce_ok = !nonce.is_empty()
            && nonce.len() <= MAX_NONCE_LEN
            && nonce.bytes().all(|b| b.is_ascii_digit());
        if token.len() > MAX_TOKEN_LEN || !nonce_ok {
            return Err(PuzzleRefusal::Malformed);
        }
        let fields: Vec<&str> = token.split('.').collect();
        let ["p1", issued, bits, id, mac] = fields.as_slice() else {
            return Err(PuzzleRefusal::Malformed);
        };
        let issued_at = parse_millis(issued).ok_or(PuzzleRefusal::Malformed)?;
        let difficulty: u8 = parse_small(bits).ok_or(PuzzleRefusal::Malformed)?;
        let id_bytes = decode::<16>(id).ok_or(PuzzleRefusal::Malformed)?;
        let tag = decode::<32>(mac).ok_or(PuzzleRefusal::Malformed)?;
        if !(1..=MAX_DIFFICULTY).contains(&difficulty) {
            return Err(PuzzleRefusal::Malformed);
        }
        let parts: [&[u8]; 3] = [issued.as_bytes(), bits.as_bytes(), &id_bytes];
        if !self.verify(PUZZLE_LABEL, &parts, client, &tag) {
            return Err(PuzzleRefusal::BadSignature);
        }
        let expires_at = issued_at.saturating_add(millis(ttl));
        if now >= expires_at || issued_at > now.saturating_add(CLOCK_SKEW_MS) {
            return Err(PuzzleRefusal::Expired);
        }
        if !is_solution(token, nonce, difficulty) {
            return Err(PuzzleRefusal::InsufficientWork);
        }
        Ok(SolvedPuzzle {
            id: (*id).to_owned(),
            expires_at,
        })
    }

    /// A clearance for `client`, good from `now` for `ttl`.
    pub fn clearance(&self, client: &ClientBinding, now: UnixMillis, ttl: Duration) -> Clearance {
        let expires_at = now.saturating_add(millis(ttl));
        let expires = expires_at.to_string();
        let mac = self.sign(CLEARANCE_LABEL, &[expires.as_bytes()], client);
        Clearance {
            value: format!("c1.{expires}.{}", URL_SAFE_NO_PAD.encode(mac)),
            expires_at,
        }
    }

    /// Checks a clearance cookie value for `client` at `now`.
    pub fn check_clearance(
        &self,
        value: &str,
        client: &ClientBinding,
        now: UnixMillis,
    ) -> Result<(), ClearanceRefusal> {
        if value.len() > MAX_TOKEN_LEN {
            return Err(ClearanceRefusal::Malformed);
        }
        let fields: Vec<&str> = value.split('.').collect();
        let ["c1", expires, mac] = fields.as_slice() else {
            return Err(ClearanceRefusal::Malformed);
        };
        let expires_at = parse_millis(expires).ok_or(ClearanceRefusal::Malformed)?;
        let tag = decode::<32>(mac).ok_or(ClearanceRefusal::Malformed)?;
        if !self.verify(CLEARANCE_LABEL, &[expires.as_bytes()], client, &tag) {
            return Err(ClearanceRefusal::BadSignature);
        }
        if now >= expires_at {
            return Err(ClearanceRefusal::Expired);
        }
        Ok(())
    }
}

/// Decimal milliseconds in canonical form (no sign, no leading zeros), so that one time has
/// one text and the MAC covers exactly what was parsed.
fn parse_millis(text: &str) -> Option<UnixMillis> {
    let canonical = !text.is_empty()
        && text.len() <= 20
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    canonical.then(|| text.parse().ok()).flatten()
}

fn parse_small(text: &str) -> Option<u8> {
    let value = parse_millis(text)?;
    u8::try_from(value).ok()
}

fn decode<const N: usize>(text: &str) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    let written = URL_SAFE_NO_PAD.decode_slice(text, &mut out).ok()?;
    // Re-encoding must give the same text: one value, one spelling.
    (written == N && URL_SAFE_NO_PAD.encode(out) == text).then_some(out)
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
