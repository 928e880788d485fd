//! Content-Security-Policy as a list of directives, so operators can add sources to one
//! directive without rewriting the whole policy.
//!
//! The grammar is CSP Level 3 §2.2: `directive-name *( WSP source )`, directives separated
//! by `;`. Adding sources to a fetch directive that the policy lacks starts it from
//! `default-src`'s sources, because a new `script-src` would otherwise replace `default-src`
//! for scripts and silently drop `'self'`.

use std::collections::BTreeMap;
use std::fmt;

/// Fetch directives fall back to `default-src` when absent (CSP Level 3 §6.1).
const FETCH_DIRECTIVES: &[&str] = &[
    "child-src",
    "connect-src",
    "font-src",
    "frame-src",
    "img-src",
    "manifest-src",
    "media-src",
    "object-src",
    "script-src",
    "script-src-attr",
    "script-src-elem",
    "style-src",
    "style-src-attr",
    "style-src-elem",
    "worker-src",
];

/// A parsed policy: directives in their written order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Csp {
    directives: Vec<(String, Vec<String>)>,
}

impl Csp {
    /// Parses a policy, refusing characters that could end the header or start another one.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        if let Some(bad) = text.chars().find(|c| c.is_control() || *c == ',') {
            return Err(format!(
                "content security policy contains {bad:?}: expected directives separated by `;`"
            ));
        }
        let directives = text
            .split(';')
            .map(str::split_ascii_whitespace)
            .filter_map(|mut words| {
                let name = words.next()?.to_ascii_lowercase();
                Some((name, words.map(str::to_owned).collect()))
            })
            .collect::<Vec<_>>();
        if directives.is_empty() {
            return Err(
                "content security policy is empty: expected directives such as \
                        \"default-src 'self'\", or false to turn the header off"
                    .to_owned(),
            );
        }
        Ok(Self { directives })
    }

    /// Appends `sources` to each named directive (see the module note on fetch directives).
    pub(crate) fn add_sources(
        &mut self,
        extra: &BTreeMap<String, Vec<String>>,
    ) -> Result<(), String> {
        for (directive, sources) in extra {
            check_directive_name(directive)?;
            for source in sources {
                check_source(directive, source)?;
            }
            self.add(&directive.to_ascii_lowercase(), sources);
        }
        Ok(())
    }

    fn add(&mut self, directive: &str, sources: &[String]) {
        let index = match self
            .directives
            .iter()
            .position(|(name, _)| name == directive)
        {
            Some(index) => index,
            None => {
                let inherited = if FETCH_DIRECTIVES.contains(&directive) {
                    self.sources("default-src").to_vec()
                } else {
                    Vec::new()
                };
                self.directives.push((directive.to_owned(), inherited));
                self.directives.len() - 1
            }
        };
        let list = &mut self.directives[index].1;
        // 'none' must stand alone (CSP Level 3 §2.3.1); adding a source replaces it.
        list.retain(|s| !s.eq_ignore_ascii_case("'none'"));
        for source in sources {
            if !list.contains(source) {
                list.push(source.clone());
            }
        }
    }

    /// The sources of `directive`, empty when absent.
    pub(crate) fn sources(&self, directive: &str) -> &[String] {
        self.directives
            .iter()
            .find(|(name, _)| name == directive)
            .map(|(_, sources)| sources.as_slice())
            .unwrap_or_default()
    }
}

impl fmt::Display for Csp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (name, sources)) in self.directives.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            f.write_str(name)?;
            for source in sources {
                write!(f, " {source}")?;
            }
        }
        Ok(())
    }
}

fn check_directive_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "csp_sources key {name:?} is not a directive name: \
             expected something like \"script-src\""
        ))
    }
}

fn check_source(directive: &str, source: &str) -> Result<(), String> {
    let valid = !source.is_empty()
        && source
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b';' && b != b',');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "csp_sources.{directive} source {source:?} is not a single CSP source: expected a \
             host, scheme or keyword without spaces, `;` or `,` \
             (for example \"https://cdn.example.com\")"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRICT: &str = "default-src 'self'; object-src 'none'; frame-ancestors 'none'; \
                          base-uri 'self'; form-action 'self'; upgrade-insecure-requests";

    fn extra(pairs: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        pairs
            .iter()
            .map(|(d, s)| (d.to_string(), s.iter().map(|s| s.to_string()).collect()))
            .collect()
    }

    #[test]
    fn a_policy_prints_back_as_written() {
        let csp = Csp::parse(STRICT).expect("strict policy parses");
        assert_eq!(csp.to_string(), STRICT);
    }

    #[test]
    fn a_new_fetch_directive_starts_from_default_src_so_self_is_kept() {
        let mut csp = Csp::parse(STRICT).expect("parses");
        csp.add_sources(&extra(&[("script-src", &["https://cdn.example.com"])]))
            .expect("valid sources");
        assert_eq!(
            csp.sources("script-src"),
            ["'self'", "https://cdn.example.com"]
        );
        assert!(
            csp.to_string()
                .ends_with("; script-src 'self' https://cdn.example.com")
        );
    }

    #[test]
    fn adding_to_a_directive_appends_without_duplicates() {
        let mut csp = Csp::parse(STRICT).expect("parses");
        csp.add_sources(&extra(&[(
            "default-src",
            &["'self'", "https://api.example.com"],
        )]))
        .expect("valid");
        assert_eq!(
            csp.sources("default-src"),
            ["'self'", "https://api.example.com"]
        );
    }

    #[test]
    fn adding_a_source_to_a_none_directive_replaces_none() {
        let mut csp = Csp::parse(STRICT).expect("parses");
        csp.add_sources(&extra(&[(
            "frame-ancestors",
            &["https://partner.example.com"],
        )]))
        .expect("valid");
        assert_eq!(
            csp.sources("frame-ancestors"),
            ["https://partner.example.com"]
        );
    }

    #[test]
    fn a_new_non_fetch_directive_does_not_inherit_default_src() {
        let mut csp = Csp::parse("default-src 'self'").expect("parses");
        csp.add_sources(&extra(&[("report-uri", &["/csp-report"])]))
            .expect("valid");
        assert_eq!(
            csp.to_string(),
            "default-src 'self'; report-uri /csp-report"
        );
    }

    #[test]
    fn sources_that_could_inject_a_directive_are_refused() {
        let mut csp = Csp::parse(STRICT).expect("parses");
        for bad in ["https://a.example; script-src *", "a b", "", "x,y"] {
            let err = csp.add_sources(&extra(&[("img-src", &[bad])]));
            assert!(err.is_err(), "{bad:?} was accepted");
        }
        assert!(csp.add_sources(&extra(&[("img src", &["data:"])])).is_err());
    }

    #[test]
    fn an_empty_policy_is_refused_with_a_pointer_to_false() {
        let err = Csp::parse(" ; ").expect_err("empty");
        assert!(err.contains("or false"), "{err}");
    }

    #[test]
    fn a_policy_with_a_line_break_is_refused() {
        assert!(Csp::parse("default-src 'self'\r\nX-Evil: 1").is_err());
    }
}
