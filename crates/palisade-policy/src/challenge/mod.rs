//! The proof-of-work challenge: puzzles a browser solves, and the clearance cookie a solved
//! puzzle earns.
//!
//! A *puzzle* is a token signed by palisade (HMAC-SHA-256) naming when it was issued and how
//! much work it asks for. The browser searches for a nonce such that
//! `SHA-256(token ":" nonce)` starts with `difficulty` zero bits, which takes about
//! `2^difficulty` hashes, and sends both back. A *clearance* is a signed expiry; while it
//! holds, challenge rules let the client through.
//!
//! Both are bound to the client: its address's network (IPv4 /24, IPv6 /64, so a client that
//! changes address inside its own network keeps its clearance) and a hash of its `User-Agent`.
//! A clearance copied to another network or browser fails its signature check. Puzzles expire
//! quickly and the gateway records each solved one so that the work is good once.
//!
//! Everything here is a pure function of (key, client, time, input): the caller passes `now`
//! and random bytes in. Keys are zeroized and never printed.

mod key;
mod token;

pub use key::{ChallengeKey, ChallengeKeyError, MIN_SECRET_LEN};
pub use token::{Clearance, ClearanceRefusal, Puzzle, PuzzleRefusal, SolvedPuzzle};

use std::net::IpAddr;

use sha2::{Digest, Sha256};

/// The hardest puzzle palisade asks for: 2^30 hashes is minutes of work in a browser.
pub const MAX_DIFFICULTY: u8 = 30;

/// Who a puzzle or clearance belongs to: the client's network and browser.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ClientBinding {
    /// IPv4 /24 (4 bytes, last zero) or IPv6 /64 (8 bytes) with a tag byte in front.
    network: [u8; 9],
    /// SHA-256 of the `User-Agent` header.
    agent: [u8; 32],
}

impl ClientBinding {
    /// The binding of a client at `ip` sending `user_agent` (empty when absent).
    pub fn new(ip: IpAddr, user_agent: &[u8]) -> Self {
        let mut network = [0u8; 9];
        match ip.to_canonical() {
            IpAddr::V4(v4) => {
                network[0] = 4;
                network[1..4].copy_from_slice(&v4.octets()[..3]);
            }
            IpAddr::V6(v6) => {
                network[0] = 6;
                network[1..9].copy_from_slice(&v6.octets()[..8]);
            }
        }
        Self {
            network,
            agent: Sha256::digest(user_agent).into(),
        }
    }

    fn bytes(&self) -> impl Iterator<Item = &[u8]> {
        [&self.network[..], &self.agent[..]].into_iter()
    }
}

impl std::fmt::Debug for ClientBinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBinding").finish_non_exhaustive()
    }
}

/// Leading zero bits of `digest`.
pub fn leading_zero_bits(digest: &[u8]) -> u32 {
    let mut bits = 0;
    for byte in digest {
        if *byte == 0 {
            bits += 8;
            continue;
        }
        return bits + byte.leading_zeros();
    }
    bits
}

/// Whether `nonce` solves the puzzle `token` at `difficulty`: `SHA-256(token ":" nonce)` has
/// at least `difficulty` leading zero bits.
pub fn is_solution(token: &str, nonce: &str, difficulty: u8) -> bool {
    let digest = Sha256::new()
        .chain_update(token.as_bytes())
        .chain_update(b":")
        .chain_update(nonce.as_bytes())
        .finalize();
    leading_zero_bits(&digest) >= u32::from(difficulty)
}

#[cfg(test)]
mod tests;
