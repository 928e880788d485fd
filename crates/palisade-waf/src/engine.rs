//! The entry point: one [`Engine`] built from the settings at start-up (or reload), shared
//! by every request; [`Engine::inspect`] runs extraction, normalisation and every detector
//! once and returns a [`Verdict`]. It holds no per-request state and never blocks.

use crate::config::{Mode, WafSettings};
use crate::detect::{self, Raised, request};
use crate::extract::{self, Collector, Input, Limits};
use crate::normalize;
use crate::request::Request;
use crate::verdict::{Action, Finding, MAX_FINDINGS, MAX_FRAGMENT, Scores, Verdict, truncate};

/// Managed detection, configured.
#[derive(Debug, Clone)]
pub struct Engine {
    settings: WafSettings,
    limits: Limits,
}

impl Engine {
    /// An engine with `settings` and the default work limits.
    pub fn new(settings: WafSettings) -> Self {
        Self::with_limits(settings, Limits::default())
    }

    /// An engine with explicit work limits.
    pub fn with_limits(settings: WafSettings, limits: Limits) -> Self {
        Self { settings, limits }
    }

    /// The settings in force.
    pub fn settings(&self) -> &WafSettings {
        &self.settings
    }

    /// Inspects one request.
    pub fn inspect(&self, req: &Request<'_>) -> Verdict {
        // Without exclusions no finding is excluded: the path's spellings (decoded twice)
        // and the collector's exclusion check would be work for nothing.
        let exclusions = !self.settings.exclusions.is_empty();
        let paths = if exclusions {
            normalize::exclusion_paths(req.raw_path())
        } else {
            Default::default()
        };
        let excluded = |detector, arg: Option<&str>| self.excluded(detector, &paths, arg);
        let mut collector = if exclusions {
            Collector::with_exclusions(self.limits, Box::new(excluded))
        } else {
            Collector::new(self.limits)
        };
        extract::collect(req, &mut collector);

        let mut findings: Vec<Finding> = std::mem::take(&mut collector.overflow_findings);
        for hit in request::check(req) {
            if self.excluded(hit.detector, &paths, None) {
                continue;
            }
            findings.push(Finding {
                detector: hit.detector,
                class: hit.detector.class(),
                score: hit.hit.score,
                reason: hit.hit.reason,
                location: hit.location,
                matched: truncate(&hit.evidence, MAX_FRAGMENT),
                raw: truncate(&hit.evidence, MAX_FRAGMENT),
                hidden: false,
            });
        }
        for input in &collector.inputs {
            let arg = input.location.arg_name();
            detect::inspect_input(input, &mut |raised: Raised| {
                if !self.excluded(raised.detector, &paths, arg) {
                    findings.push(finding(input, raised));
                }
            });
        }
        self.conclude(findings, collector.stops)
    }

    /// Whether an exclusion switches `detector` off here: one exclusion must cover every
    /// reading of the path ([`normalize::exclusion_paths`]).
    fn excluded(
        &self,
        detector: crate::class::DetectorKind,
        paths: &[String],
        arg: Option<&str>,
    ) -> bool {
        self.settings
            .exclusions
            .iter()
            .any(|ex| paths.iter().all(|path| ex.covers(detector, path, arg)))
    }

    fn conclude(
        &self,
        mut findings: Vec<Finding>,
        incomplete: Vec<extract::StopReason>,
    ) -> Verdict {
        let mut scores = Scores::default();
        for f in &findings {
            scores.lower(f.class, f.score);
        }
        findings.sort_by_key(|f| f.score);
        findings.truncate(MAX_FINDINGS);
        let threshold = self.settings.paranoia.threshold();
        let action = match (scores.overall() <= threshold, self.settings.mode) {
            (false, _) => Action::Allow,
            (true, Mode::Enforce) => Action::Block,
            (true, Mode::Log) => Action::Log,
        };
        Verdict {
            scores,
            findings,
            incomplete,
            action,
            threshold,
        }
    }
}

/// The finding `raised` on `input`, with its evidence fragment.
pub(crate) fn finding(input: &Input<'_>, raised: Raised) -> Finding {
    let hidden_text;
    let source_text: &str = if raised.hidden {
        hidden_text = input
            .hidden
            .get(raised.payload)
            .map(|p| p.text())
            .unwrap_or_default();
        &hidden_text
    } else if reads_folded(raised.detector) && !input.folded.is_empty() {
        &input.folded
    } else {
        &input.text
    };
    let matched = fragment(source_text, raised.hit.start, raised.hit.end);
    Finding {
        detector: raised.detector,
        class: raised.detector.class(),
        score: raised.hit.score.clamp(1, 99),
        reason: raised.hit.reason,
        location: input.location.clone(),
        matched,
        raw: truncate(&String::from_utf8_lossy(&input.raw), MAX_FRAGMENT),
        hidden: raised.hidden,
    }
}

/// Detectors whose offsets point into the folded (lowercase, comment-free) view.
fn reads_folded(detector: crate::class::DetectorKind) -> bool {
    use crate::class::DetectorKind as D;
    !matches!(
        detector,
        D::Sqli | D::Shell | D::Protocol | D::Php | D::Fixation
    )
}

/// The evidence span of `text`, widened to character boundaries; the whole text when the
/// span does not fit (detectors that work on a lowercased view report its offsets).
fn fragment(text: &str, start: usize, end: usize) -> String {
    let start = start.min(text.len());
    let end = end.clamp(start, text.len());
    let start = (0..=start)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    let end = (end..=text.len())
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(text.len());
    let span = if end > start { &text[start..end] } else { text };
    truncate(span, MAX_FRAGMENT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Mode;
    use crate::request::Header;
    use crate::verdict::Action;

    fn settings(json: &str) -> WafSettings {
        serde_json::from_str(json).expect("valid settings")
    }

    fn get(engine: &Engine, target: &str) -> Verdict {
        let headers = [
            Header::new(b"Host", b"a.example"),
            Header::new(b"User-Agent", b"curl/8"),
        ];
        engine.inspect(&Request {
            method: b"GET",
            target: target.as_bytes(),
            version: b"HTTP/1.1",
            headers: &headers,
            ..Request::default()
        })
    }

    #[test]
    fn engines_are_shared_across_threads() {
        fn shareable<T: Send + Sync + Clone>() {}
        shareable::<Engine>();
    }

    #[test]
    fn a_clean_request_scores_ninety_nine_everywhere() {
        let v = get(
            &Engine::new(WafSettings::default()),
            "/shop?item=42&colour=blue",
        );
        assert_eq!(v.action, Action::Allow);
        assert!(v.scores.iter().all(|(_, s)| s == 99));
        assert!(v.findings.is_empty());
    }

    #[test]
    fn blocks_injection_and_names_the_input_and_decoded_fragment() {
        let v = get(
            &Engine::new(WafSettings::default()),
            "/s?q=1%27%20or%20%271%27%3D%271",
        );
        assert_eq!(v.action, Action::Block);
        let f = v.decisive().expect("a finding");
        assert_eq!(f.class.name(), "sqli");
        assert_eq!(f.location.to_string(), "args.q");
        assert!(f.matched.contains("or '1'='1"), "{}", f.matched);
        assert!(f.raw.contains("%27"), "{}", f.raw);
    }

    #[test]
    fn log_mode_reports_what_it_would_block() {
        let engine = Engine::new(settings(r#"{"mode": "log"}"#));
        assert_eq!(engine.settings().mode, Mode::Log);
        let v = get(&engine, "/s?q=%3Cscript%3Ealert(1)%3C/script%3E");
        assert_eq!(v.action, Action::Log);
    }

    #[test]
    fn exclusions_silence_one_detector_for_one_argument_only() {
        let engine = Engine::new(settings(
            r#"{"exclusion": [{"detectors": ["xss"], "args": ["html"]}]}"#,
        ));
        let excluded = get(&engine, "/cms?html=%3Cscript%3Ealert(1)%3C/script%3E");
        assert_eq!(excluded.action, Action::Allow, "{:?}", excluded.findings);
        let other_arg = get(&engine, "/cms?title=%3Cscript%3Ealert(1)%3C/script%3E");
        assert_eq!(other_arg.action, Action::Block);
        let other_class = get(&engine, "/cms?html=1%27%20or%20%271%27%3D%271");
        assert_eq!(other_class.action, Action::Block);
    }

    #[test]
    fn higher_paranoia_blocks_less_certain_findings() {
        let target = "/go?next=http%3A%2F%2Fexample.org%2Fpage";
        assert_eq!(
            get(&Engine::new(WafSettings::default()), target).action,
            Action::Allow
        );
        let strict = Engine::new(settings(r#"{"paranoia": 3}"#));
        assert_eq!(get(&strict, target).action, Action::Block);
    }
}
