//! The detectors and how an input is handed to them.
//!
//! Each detector reads the decoded text of one input (and any payload hidden in base64 or
//! hex inside it) and returns at most one [`Hit`]: a score (1 = certainly an attack,
//! 99 = clean), a short reason and the span of text that gave it away. Detectors never
//! allocate in proportion to anything but their (capped) input.

pub mod java;
pub mod lfi;
pub mod php;
pub mod protocol;
pub mod rce;
pub mod request;
pub mod rfi;
pub mod shell;
pub(crate) mod shell_words;
pub mod sqli;
pub mod xss;

use crate::class::DetectorKind;
use crate::extract::{Input, Source};

/// A case-sensitive multi-pattern matcher over the lowercase view, built once: detectors use
/// it to skip inputs that hold none of their anchor strings.
pub(crate) fn matcher(patterns: &[&str]) -> aho_corasick::AhoCorasick {
    aho_corasick::AhoCorasick::builder()
        .kind(Some(aho_corasick::AhoCorasickKind::DFA))
        .build(patterns)
        .expect("static patterns build an automaton")
}

/// What a detector found in one text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    /// 1 = certainly an attack, 99 = clean.
    pub score: u8,
    /// Which shape was recognised, for events.
    pub reason: &'static str,
    /// Byte span of the evidence in the decoded text.
    pub start: usize,
    /// End of that span (exclusive).
    pub end: usize,
}

impl Hit {
    /// A hit over `start..end`.
    pub fn new(score: u8, reason: &'static str, start: usize, end: usize) -> Self {
        Self {
            score,
            reason,
            start,
            end,
        }
    }

    /// The more certain of two optional hits.
    pub fn better(a: Option<Hit>, b: Option<Hit>) -> Option<Hit> {
        match (a, b) {
            (Some(x), Some(y)) => Some(if y.score < x.score { y } else { x }),
            (x, None) => x,
            (None, y) => y,
        }
    }
}

/// A detector's hit with the input it was found in.
#[derive(Debug, Clone, Copy)]
pub struct Raised {
    /// Which detector.
    pub detector: DetectorKind,
    /// What it found.
    pub hit: Hit,
    /// True when the evidence came from a base64/hex payload rather than the text itself.
    pub hidden: bool,
    /// Index of the hidden payload when `hidden`.
    pub payload: usize,
}

/// Runs every detector that applies to `input`, calling `raise` for each hit.
pub fn inspect_input(input: &Input<'_>, raise: &mut dyn FnMut(Raised)) {
    let names_only = matches!(
        input.location.source,
        Source::ArgName | Source::FormName | Source::CookieName | Source::MultipartName
    );
    if input.plain {
        if input.location.source == Source::Header && input.location.name == "user-agent" {
            if let Some(hit) = protocol::scanner_agent(&input.text) {
                raise(Raised {
                    detector: DetectorKind::Scanner,
                    hit,
                    hidden: false,
                    payload: 0,
                });
            }
        }
        if input.flags.is_empty() {
            return;
        }
        if let Some(hit) = protocol::detect_value(input, &input.text, input.location.source) {
            raise(Raised {
                detector: DetectorKind::Protocol,
                hit,
                hidden: false,
                payload: 0,
            });
        }
        return;
    }
    run_all(
        input,
        &input.text,
        &input.folded,
        names_only,
        false,
        0,
        raise,
    );
    for (n, payload) in input.hidden.iter().enumerate() {
        if let Some(hit) = java::detect_bytes(&payload.bytes) {
            raise(Raised {
                detector: DetectorKind::Java,
                hit,
                hidden: true,
                payload: n,
            });
        }
        let text = payload.text();
        if text.len() >= 4 && text.chars().any(|c| !c.is_ascii_alphanumeric()) || payload.base64 {
            let folded = crate::normalize::fold(&text);
            run_all(input, &text, &folded, names_only, true, n, raise);
        }
    }
}

/// Words that make an attack out of letters and spaces alone: SQL keywords and catalogue
/// names, gadget and runtime names, script sinks, interpreter objects, file names.
static ATTACK_WORDS: std::sync::LazyLock<aho_corasick::AhoCorasick> =
    std::sync::LazyLock::new(|| {
        let mut words: Vec<&str> = java::PACKAGES
            .iter()
            .map(|p| p.trim_end_matches('.'))
            .collect();
        words.extend(java::GADGETS);
        words.extend(rce::SHAPES.iter().map(|(p, _, _)| *p));
        words.extend(lfi::SENSITIVE.iter().filter(|p| !p.contains('/')));
        words.extend(lfi::WHOLE);
        words.extend(xss::GLOBALS);
        words.extend(xss::SINKS);
        words.extend([
            "or true",
            "or false",
            "and true",
            "union",
            "select",
            "insert",
            "update",
            "delete",
            "drop",
            "exec",
            "declare",
            "truncate",
            "shutdown",
            "waitfor",
            "sleep",
            "benchmark",
            "schema",
            "pg_",
            "sys",
            "xp_",
            "sp_",
            "mysql",
            "sqlite",
            "msdb",
            "tempdb",
            "northwind",
            "_name",
            "outfile",
            "dumpfile",
            "load_file",
            "utl_",
            "dbms_",
            "openrowset",
            "opendatasource",
            "order by",
            "group by",
            "having",
            "case",
            "when",
            "except",
            "intersect",
            "procedure",
            "like",
            "regexp",
            "glob",
            "is not",
            "notnull",
            "null",
            "varchar",
            "into",
            "values",
            "where",
            "from",
            "limit",
            "java",
            "runtime",
            "processbuilder",
            "transformer",
            "closure",
            "factory",
            "classloader",
            "jndi",
            "script",
            "alert",
            "prompt",
            "confirm",
            "eval",
            "document",
            "window",
            "cookie",
            "process",
            "require",
            "constructor",
            "console",
            "function",
            "php",
            "passwd",
            "shadow",
            "history",
            "htaccess",
            "htpasswd",
            "localhost",
            "internal",
            "lvh",
            "localtest",
            "metadata",
            "actuator",
            "server-status",
            "ds_store",
            "adminer",
            "cgi-bin",
            "svn",
            "onload",
            "onerror",
            "xor",
            "rlike",
            "ilike",
            "sounds",
            "between",
            "information",
            "catalog",
            "analyse",
            "json",
            "version",
            "database",
            "user",
        ]);
        aho_corasick::AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .kind(Some(aho_corasick::AhoCorasickKind::DFA))
            .build(words)
            .expect("static patterns build an automaton")
    });

/// A value of letters, digits and sentence punctuation with no attack word: nothing but the
/// protocol checks (encodings) can fire on it, so the detectors are skipped.
pub fn is_plain(source: Source, name: &str, text: &str) -> bool {
    let extra: &[u8] = match source {
        Source::Path if !text.contains("..") => b"/~",
        Source::Cookie => b"+/",
        Source::Header if name == "user-agent" => return well_formed_agent(text),
        Source::Path | Source::Header | Source::FileName | Source::Request => return false,
        _ => b"",
    };
    let bytes = text.as_bytes();
    // `matches!` rather than a slice's `contains` per byte: this reads every byte of every
    // input; `extra` is asked only for the bytes outside the common set.
    let safe = bytes.iter().all(|&b| {
        b.is_ascii_alphanumeric()
            || matches!(b, b' ' | b'.' | b',' | b'!' | b'?' | b'_' | b'@' | b'-')
            || b >= 0x80
            || extra.contains(&b)
    });
    safe && !ATTACK_WORDS.is_match(bytes) && !shell::starts_with_program(text)
}

/// A user agent in the standard shape, `product/version (comment) product/version ...`,
/// with nothing in the comments but platform words: what browsers and bots send.
fn well_formed_agent(text: &str) -> bool {
    let mut rest = text.trim();
    let mut products = 0;
    while !rest.is_empty() {
        if let Some(inner) = rest.strip_prefix('(') {
            let Some(close) = inner.find(')') else {
                return false;
            };
            let comment = &inner[..close];
            let clean = comment.bytes().all(|b| {
                b.is_ascii_alphanumeric()
                    || matches!(
                        b,
                        b' ' | b'.' | b'_' | b';' | b',' | b':' | b'+' | b'/' | b'-'
                    )
            });
            let words_ok = ATTACK_WORDS.find_iter(comment).all(|m| {
                matches!(
                    comment[m.start()..m.end()].to_ascii_lowercase().as_str(),
                    "like" | "window"
                )
            });
            if !clean || !words_ok || comment.contains('(') {
                return false;
            }
            rest = inner[close + 1..].trim_start();
            continue;
        }
        let end = rest.find([' ', '(']).unwrap_or(rest.len());
        let product = &rest[..end];
        let Some((name, version)) = product.split_once('/') else {
            return false;
        };
        let token = |t: &str| {
            !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'+' | b'-'))
        };
        if !token(name) || !token(version) || !name.as_bytes()[0].is_ascii_alphanumeric() {
            return false;
        }
        products += 1;
        rest = rest[end..].trim_start();
    }
    products > 0
}

fn run_all(
    input: &Input<'_>,
    text: &str,
    folded: &str,
    names_only: bool,
    hidden: bool,
    payload: usize,
    raise: &mut dyn FnMut(Raised),
) {
    let mut emit = |detector: DetectorKind, hit: Option<Hit>| {
        if let Some(hit) = hit {
            raise(Raised {
                detector,
                hit,
                hidden,
                payload,
            });
        }
    };
    let source = input.location.source;
    if source == Source::Header && input.location.name == "user-agent" {
        emit(DetectorKind::Scanner, protocol::scanner_agent(folded));
    }
    if source == Source::FileName || is_filename_header(input) {
        emit(DetectorKind::Php, php::detect_filename(folded));
        emit(DetectorKind::Shell, shell::detect_filename(folded));
    }
    if source == Source::Path {
        emit(DetectorKind::Scanner, protocol::scanner_path(folded));
        if !hidden {
            emit(DetectorKind::Traversal, lfi::encoded_climb(&input.raw));
        }
    }
    emit(DetectorKind::Sqli, sqli::detect(text));
    if source == Source::Path {
        // Path segments are separate values to the application behind the router.
        for segment in text
            .split('/')
            .filter(|s| s.len() >= 3 && s.len() < text.len())
        {
            emit(DetectorKind::Sqli, sqli::detect(segment));
        }
    }
    emit(DetectorKind::Xss, xss::detect(text, folded));
    emit(DetectorKind::Shell, shell::detect(text, source));
    emit(DetectorKind::Traversal, lfi::detect(text, folded, source));
    emit(
        DetectorKind::Rfi,
        rfi::detect(text, folded, source, &input.location.name),
    );
    emit(DetectorKind::Ssrf, rfi::detect_ssrf(folded, source));
    emit(DetectorKind::Php, php::detect(text, folded, hidden));
    emit(DetectorKind::Java, java::detect(text, folded, hidden));
    emit(DetectorKind::Node, rce::detect(text, folded));
    if !names_only || matches!(source, Source::ArgName | Source::MultipartName) {
        emit(
            DetectorKind::Protocol,
            protocol::detect_value(input, text, source),
        );
    }
}

fn is_filename_header(input: &Input<'_>) -> bool {
    input.location.source == Source::Header
        && matches!(
            input.location.name.as_str(),
            "x-filename" | "x_filename" | "x.filename" | "x-file-name"
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_with_attack_words_in_any_case_are_not_plain() {
        assert!(!is_plain(Source::Form, "x", "INFORMATION_SCHEMA"));
        assert!(!is_plain(Source::Arg, "x", "UnIoN SeLeCt"));
        assert!(is_plain(
            Source::Arg,
            "x",
            "Please leave the parcel with the neighbour, thanks!"
        ));
        assert!(!is_plain(Source::Path, "", "/../etc/passwd"));
        assert!(is_plain(Source::Path, "", "/blog/2024/hello-world"));
    }

    #[test]
    fn browser_user_agents_are_plain_and_payloads_in_them_are_not() {
        let chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 \
                      (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";
        assert!(is_plain(Source::Header, "user-agent", chrome));
        let bot = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
        assert!(is_plain(Source::Header, "user-agent", bot));
        for ua in [
            "cat /etc/passwd",
            "visudo",
            "Mozilla/5.0 (1 union select 1,2)",
            "${jndi:ldap://x/a}",
            "() { :;}; id",
            "Mozilla/5.0 <script>",
        ] {
            assert!(!is_plain(Source::Header, "user-agent", ua), "{ua}");
        }
    }
}
