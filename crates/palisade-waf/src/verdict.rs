//! What detection concludes about a request: a score per class, the findings behind them,
//! whether inspection covered everything, and the action the settings call for.

use std::fmt;

use crate::class::{AttackClass, DetectorKind};
use crate::extract::{Location, StopReason};

/// Longest fragment kept in a finding (characters).
pub const MAX_FRAGMENT: usize = 120;
/// Findings kept per verdict (the most certain first).
pub const MAX_FINDINGS: usize = 16;

/// Score of a class with no finding.
pub const CLEAN: u8 = 99;

/// Scores per class: 1 = certainly an attack, 99 = clean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scores([u8; 8]);

impl Default for Scores {
    fn default() -> Self {
        Self([CLEAN; 8])
    }
}

impl Scores {
    /// The score of one class (`waf.score.<class>`).
    pub fn class(&self, class: AttackClass) -> u8 {
        self.0[class.index()]
    }

    /// The overall score (`waf.score`): the most certain class.
    pub fn overall(&self) -> u8 {
        self.0.iter().copied().min().unwrap_or(CLEAN)
    }

    /// Lowers a class score to `score` if that is more certain.
    pub fn lower(&mut self, class: AttackClass, score: u8) {
        let slot = &mut self.0[class.index()];
        *slot = (*slot).min(score.clamp(1, CLEAN));
    }

    /// `(name, score)` for every class, in [`AttackClass::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u8)> + '_ {
        AttackClass::ALL.iter().map(|c| (c.name(), self.class(*c)))
    }
}

/// One reason for a score.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Which detector.
    pub detector: DetectorKind,
    /// Which class it scores.
    pub class: AttackClass,
    /// 1 = certainly an attack, 99 = clean.
    pub score: u8,
    /// The shape recognised (`union select`, `event handler attribute`, ...).
    pub reason: &'static str,
    /// Where in the request.
    pub location: Location,
    /// The matched fragment after decoding, truncated to [`MAX_FRAGMENT`] characters.
    pub matched: String,
    /// The same input as received (before decoding), truncated.
    pub raw: String,
    /// The evidence came from a base64/hex payload hidden in the input.
    pub hidden: bool,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} score={} at {} ({}): {:?}",
            self.class.name(),
            self.score,
            self.location,
            self.reason,
            self.matched
        )
    }
}

/// What to do with the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing reached the threshold.
    Allow,
    /// The threshold was reached in enforce mode.
    Block,
    /// The threshold was reached in log mode: report, let through.
    Log,
}

/// The outcome of inspecting one request.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// Scores per class and overall.
    pub scores: Scores,
    /// The most certain findings first (at most [`MAX_FINDINGS`]), exclusions applied.
    pub findings: Vec<Finding>,
    /// Why inspection did not cover the whole request (empty when it did).
    pub incomplete: Vec<StopReason>,
    /// What the settings call for.
    pub action: Action,
    /// The score at or below which this verdict blocks (from the paranoia level).
    pub threshold: u8,
}

impl Verdict {
    /// Whether inspection stopped early somewhere.
    pub fn stopped_early(&self) -> bool {
        !self.incomplete.is_empty()
    }

    /// The finding that decided the verdict, if any.
    pub fn decisive(&self) -> Option<&Finding> {
        self.findings.first()
    }
}

/// Cuts `text` to at most `max` characters on a character boundary.
pub fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_start_clean_and_keep_the_most_certain() {
        let mut s = Scores::default();
        assert_eq!(s.overall(), CLEAN);
        s.lower(AttackClass::Sqli, 30);
        s.lower(AttackClass::Sqli, 50);
        s.lower(AttackClass::Xss, 0);
        assert_eq!(s.class(AttackClass::Sqli), 30);
        assert_eq!(s.class(AttackClass::Xss), 1);
        assert_eq!(s.overall(), 1);
    }

    #[test]
    fn truncate_respects_character_boundaries() {
        assert_eq!(truncate("héllo", 2), "hé…");
        assert_eq!(truncate("hi", 5), "hi");
    }
}
