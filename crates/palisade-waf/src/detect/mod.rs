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
        words.extend(sqli::words::CATALOGUE);
        words.extend(rfi::FETCH_SCHEMES);
        words.extend([
            // A serialised Java object in hex or base64 (`rO0AB` is the base64 of its
            // magic `aced0005`), and a shell's network redirection path: all fit in a value
            // of letters, digits and `/`.
            "aced0005",
            "ro0ab",
            "dev/tcp",
            "dev/udp",
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

/// A value of letters, digits and sentence punctuation with no attack word (or a
/// well-formed user agent, or a header holding a bare URL: [`is_plain_url`]): nothing but
/// the protocol checks (encodings) can fire on it, so the detectors are skipped.
pub fn is_plain(source: Source, name: &str, text: &str) -> bool {
    let extra: &[u8] = match source {
        // A sensitive file's name in a path is the traversal detector's to judge, climb or
        // none (`/etc/hosts`, `/var/log/x`), like in a header's URL below.
        Source::Path if !text.contains("..") && !lfi::path_may_name_file(text) => b"/~",
        Source::Cookie => b"+/",
        Source::Header if name == "user-agent" => return well_formed_agent(text),
        Source::Header if !is_filename_header_name(name) && is_plain_url(text) => {
            return holds_no_attack_word(text) && !lfi::ANCHORS_ANY_CASE.is_match(text);
        }
        Source::Path | Source::Header | Source::FileName | Source::Request => return false,
        _ => b"",
    };
    let bytes = text.as_bytes();
    // A table rather than a slice's `contains` per byte: this reads every byte of every
    // input; `extra` is asked only for the bytes outside the common set.
    let safe = bytes
        .iter()
        .all(|&b| PLAIN_BYTES[usize::from(b)] || extra.contains(&b));
    safe && holds_no_attack_word(text) && !crate::normalize::hidden::may_hide_java_object(bytes)
}

/// The bytes [`is_plain`] allows in every input: letters, digits, sentence punctuation,
/// and every byte of a character beyond ASCII.
const PLAIN_BYTES: [bool; 256] = crate::byte_table!(false, |byte| byte.is_ascii_alphanumeric()
    || matches!(byte, b' ' | b'.' | b',' | b'!' | b'?' | b'_' | b'@' | b'-')
    || byte >= 0x80);

/// No attack word anywhere in `text`, and no program named at its start.
fn holds_no_attack_word(text: &str) -> bool {
    !ATTACK_WORDS.is_match(text) && !shell::starts_with_program(text)
}

/// A header value that is a bare `http(s)` URL, as browsers send in `Referer` and `Origin`:
/// a host of letters, digits, `.`, `-` and `_` with at most a numeric port, then a path of
/// those and `/` and `~`, with no `..`, no empty segment, no query or fragment, nothing
/// percent-encoded, and no path word naming a program. No detector's syntax fits in it:
/// what the detectors could still find there (sensitive file names, catalogue names,
/// gadget and scheme names, a serialised object's hex) are attack words, which
/// [`is_plain`] checks (unit test `no_detector_fires_on_a_url_the_shortcut_calls_plain`,
/// over URLs made of every word the detectors know, and a red team's findings).
fn is_plain_url(text: &str) -> bool {
    let bytes = text.as_bytes();
    let scheme = if bytes.len() >= 7 && bytes[..7].eq_ignore_ascii_case(b"http://") {
        7
    } else if bytes.len() >= 8 && bytes[..8].eq_ignore_ascii_case(b"https://") {
        8
    } else {
        return false;
    };
    let rest = &bytes[scheme..];
    let (authority, path) = rest.split_at(memchr::memchr(b'/', rest).unwrap_or(rest.len()));
    let (host, port) = match memchr::memchr(b':', authority) {
        Some(at) => (&authority[..at], &authority[at + 1..]),
        None => (authority, &b"0"[..]),
    };
    let name_byte = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_');
    !host.is_empty()
        && host.iter().all(|&b| name_byte(b))
        && (1..=5).contains(&port.len())
        && port.iter().all(u8::is_ascii_digit)
        && path
            .iter()
            .all(|&b| name_byte(b) || matches!(b, b'/' | b'~'))
        && memchr::memmem::find(rest, b"..").is_none()
        && memchr::memmem::find(path, b"//").is_none()
        && !path
            .split(|&b| matches!(b, b'/' | b'.'))
            .any(shell::names_program_any_case)
}

fn is_filename_header_name(name: &str) -> bool {
    matches!(
        name,
        "x-filename" | "x_filename" | "x.filename" | "x-file-name"
    )
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
    input.location.source == Source::Header && is_filename_header_name(&input.location.name)
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

    /// Words a detector flags on their own are attack words: a value holding one is never
    /// plain, whatever its characters (red-team findings: a hex-encoded serialised Java
    /// object in an argument passed as plain text, before any detector read it).
    #[test]
    fn values_a_detector_flags_alone_are_not_plain() {
        assert!(!is_plain(Source::Arg, "data", "aced0005737200116a617661"));
        assert!(!is_plain(Source::Arg, "t", "all_tables"));
        assert!(!is_plain(Source::Path, "", "/dev/tcp/10.0.0.1/4444"));
        assert!(!is_plain(Source::Arg, "host", "ssh2.example.com"));
        let base64_object = "rO0ABXNyABFqYXZhLnV0aWwuSGFzaE1hcAUH2sHDFmDRAwACRgAK";
        assert!(!is_plain(Source::Arg, "data", base64_object));
        let engine = crate::Engine::new(crate::WafSettings::default());
        // The same object as hex and as base64 (red-team leftover: the base64 form, letters
        // and digits only, was plain and never decoded).
        // A browser's headers, so that nothing but the object can block the request (review
        // finding: without them, a missing `Host` blocked every one of these).
        let headers = [
            crate::request::Header::lower_case("host", b"shop.example"),
            crate::request::Header::lower_case(
                "user-agent",
                b"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
            ),
        ];
        for target in [
            // Second red team: a byte outside the alphabet inside the magic, which lenient
            // decoders skip, left a value of letters, digits and `.` plain.
            format!("/api/import?data=rO0A.{}", &base64_object[4..]),
            format!("/api/import?data=rO0A%20B{}", &base64_object[5..]),
            "/api/import?data=aced0005737200116a6176612e7574696c2e486173684d6170".to_string(),
            format!("/api/import?data={base64_object}"),
            // With a `/`, which kept the run from being decoded (red-team finding), and after
            // an `=` in the value (review finding).
            "/api/import?data=rO0ABXNyABFqYXZhLnV0aWwuSGFzaE1hcP%2F%2F%2Fw%3D%3D".to_string(),
            format!("/api/import?data=x%3D{base64_object}"),
        ] {
            let request = crate::Request {
                method: b"GET",
                target: target.as_bytes(),
                version: b"HTTP/1.1",
                headers: &headers,
                body: b"",
                body_truncated: false,
                local_addr: None,
            };
            let verdict = engine.inspect(&request);
            assert_eq!(
                verdict.action,
                crate::Action::Block,
                "{target}: {:#?}",
                verdict.findings
            );
            assert!(
                verdict
                    .findings
                    .iter()
                    .any(|f| f.detector == crate::DetectorKind::Java),
                "{target}: {:#?}",
                verdict.findings
            );
        }
        // The same request without the object passes: the headers hold nothing.
        let clean = crate::Request {
            method: b"GET",
            target: b"/api/import?data=hello",
            version: b"HTTP/1.1",
            headers: &headers,
            body: b"",
            body_truncated: false,
            local_addr: None,
        };
        assert_eq!(engine.inspect(&clean).action, crate::Action::Allow);
    }

    /// A path naming a file attackers read is not plain even without a climb or an attack
    /// word: the traversal detector, which the shortcut would skip, flags it on its own
    /// (final-review finding: `/etc/hosts` and `/var/log/x` were plain).
    #[test]
    fn paths_naming_sensitive_files_are_not_plain() {
        for path in [
            "/etc/hosts",
            "/var/log/nginx/access.log",
            "/static/.env",
            "/Windows/System32/drivers",
            "/app/.GIT/HEAD",
            "/home/u/.ssh/id_rsa",
        ] {
            assert!(!is_plain(Source::Path, "", path), "{path}");
            let folded = path.to_ascii_lowercase();
            assert!(
                lfi::detect(path, &folded, Source::Path).is_some(),
                "{path}: the detector the shortcut would skip flags it"
            );
        }
        assert!(is_plain(
            Source::Path,
            "",
            "/docs/hosting/environment-setup"
        ));
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

#[cfg(test)]
mod plain_url_tests {
    use super::*;
    use crate::extract::Location;
    use crate::normalize::DecodeFlags;

    /// Every detector, run on `text` as the header `name` (without the plain shortcut).
    fn raised(name: &str, text: &str) -> Vec<Raised> {
        let input = Input {
            location: Location {
                source: Source::Header,
                name: name.to_owned(),
            },
            raw: std::borrow::Cow::Owned(text.as_bytes().to_vec()),
            text: text.to_owned(),
            folded: crate::normalize::fold(text),
            flags: DecodeFlags::default(),
            hidden: Vec::new(),
            plain: false,
        };
        let mut found = Vec::new();
        run_all(
            &input,
            &input.text,
            &input.folded,
            false,
            false,
            0,
            &mut |r| found.push(r),
        );
        found
    }

    #[test]
    fn browser_referers_and_origins_are_plain() {
        for (name, value) in [
            ("referer", "http://127.0.0.1/dashboard"),
            ("referer", "https://shop.example.com/products/blue-shirt"),
            ("referer", "https://www.example.com/"),
            ("origin", "https://app.example.com:8443"),
            ("referer", "HTTPS://Example.COM/Blog/2024/hello_world~1"),
        ] {
            assert!(is_plain(Source::Header, name, value), "{name}: {value}");
        }
        for (name, value) in [
            // Queries, fragments, encodings, climbs and other schemes still meet the detectors.
            ("referer", "https://example.com/search?q=shoes"),
            ("referer", "https://example.com/a#top"),
            ("referer", "https://example.com/a/../../etc/hosts"),
            ("referer", "https://example.com//etc/hosts"),
            ("referer", "https://example.com/etc/hosts"),
            ("referer", "https://example.com/proc/self/environ"),
            ("referer", "https://example.com/.env"),
            ("referer", "https://example.com/WP-CONFIG.PHP"),
            ("referer", "https://example.com/a/gopher://127.0.0.1:6379"),
            ("referer", "https://user@example.com/"),
            ("referer", "https://[::1]/"),
            ("referer", "https:///"),
            ("referer", "ftp://example.com/"),
            ("referer", "javascript:alert(1)"),
            ("referer", "http://example.com/UNION/SELECT"),
            ("referer", "http://example.com/bin/bash"),
            ("x-filename", "http://example.com/shell.sh"),
            // A red team's findings: what a detector flags must not be plain.
            (
                "x-callback-url",
                "http://example.com/aced0005737200116a617661",
            ),
            ("referer", "http://example.com/dev/tcp/10.0.0.1/4444"),
            ("x-callback-url", "http://a.b/x/all_tables"),
            ("referer", "http://file:/x"),
            ("referer", "https://jar:http"),
            ("referer", "http://ssh2.example.com/"),
            ("referer", "https://xi:include/"),
            ("referer", "http://data:text/html"),
            ("origin", "https://example.com:8443:1"),
        ] {
            assert!(!is_plain(Source::Header, name, value), "{name}: {value}");
        }
    }

    /// The shortcut skips the detectors only where they would find nothing: URLs made of
    /// hosts and path segments that attacks use, each judged by every detector.
    #[test]
    fn no_detector_fires_on_a_url_the_shortcut_calls_plain() {
        let hosts = [
            "127.0.0.1",
            "localhost",
            "example.com",
            "169.254.169.254",
            "0x7f000001",
            "2130706433",
            "0177.0.0.1",
            "evil.example:8080",
            "metadata.google.internal",
            "burpcollaborator.net",
            "oast.fun",
            "a-b_c.test",
            "ssh2.example.com",
            "file",
            "data",
            "xi",
            "dev",
            "a:b:c",
            "file:",
            "jar:http",
            "xi:include",
            "-moz-binding:x",
            "data:text",
            "example.com:",
            "example.com:123456",
        ];
        let segments = [
            "bin",
            "bash",
            "sh",
            "cmd.exe",
            "powershell",
            "wget",
            "curl",
            "nc",
            "netcat",
            "index.php",
            "a.jsp",
            "shell.aspx",
            "WEB-INF",
            "web.xml",
            "etc",
            "hosts",
            "proc",
            "self",
            "environ",
            "cgi-bin",
            "wp-admin",
            "wp-login.php",
            "phpmyadmin",
            ".env",
            ".git",
            "config",
            "file",
            "gopher",
            "dict",
            "ldap",
            "jndi",
            "rmi",
            "javascript",
            "alert",
            "onerror",
            "svg",
            "iframe",
            "script",
            "union",
            "select",
            "sleep",
            "waitfor",
            "boot.ini",
            "system32",
            "whoami",
            "uname",
            "id",
            "cat",
            "ping",
            "base64",
            "eval",
            "exec",
            "system",
            "passthru",
            "shell_exec",
            "assert",
            "phpinfo",
            "xmlrpc.php",
            "actuator",
            "heapdump",
            "jolokia",
            "console",
            "struts",
            "ognl",
            "classLoader",
            "getRuntime",
            "ProcessBuilder",
            "log4j",
            "var",
            "log",
            ".htaccess",
            "server-status",
            "id_rsa",
            "shadow",
            "passwd",
            "c99",
            "r57",
            "webshell",
            "~root",
            "dashboard",
            "blog",
            "2024",
            "hello-world",
            "Users",
            "x86_64",
            "a.b.c",
            "-",
            "_",
            "sqlmap",
            "nikto",
            "acunetix",
            "nmap",
            "masscan",
            "nuclei",
            "dirbuster",
            "admin",
            "0x414243",
            "414243444546",
            "SGVsbG8gd29ybGQ",
            "cGhwaW5mbygp",
            "YWxlcnQoMSk",
            "ACED0005737200116a617661",
            "x_aced0005",
            "dev/tcp/10.0.0.1/4444",
            "dev/udp/x",
            "all_tables",
            "rO0ABXNyABFqYXZh",
        ];
        let lists = [
            shell_words::DISTINCTIVE,
            shell_words::COMMON,
            shell_words::UNMISTAKABLE,
            shell_words::WRAPPERS,
            java::PACKAGES,
            java::GADGETS,
            xss::GLOBALS,
            xss::SINKS,
            lfi::SENSITIVE,
            lfi::WHOLE,
            sqli::words::CATALOGUE,
            rfi::FETCH_SCHEMES,
        ];
        let words: Vec<&str> = lists
            .iter()
            .flat_map(|list| list.iter().copied())
            .chain(rce::SHAPES.iter().map(|(word, _, _)| *word))
            .collect();
        let mut plain = 0;
        let mut check = |url: String| {
            if is_plain(Source::Header, "referer", &url) {
                plain += 1;
                let found = raised("referer", &url);
                assert!(found.is_empty(), "{url} is plain but {found:?}");
            }
        };
        for host in hosts {
            for scheme in ["http", "HTTPS"] {
                check(format!("{scheme}://{host}"));
                check(format!("{scheme}://{host}/"));
            }
            for a in segments {
                check(format!("http://{host}/{a}"));
                check(format!("https://{host}/{a}/"));
            }
        }
        for word in &words {
            for host in ["127.0.0.1", "example.com"] {
                check(format!("http://{host}/{word}"));
                check(format!("https://{host}/api/{word}/"));
                check(format!("https://{host}/{word}.json"));
            }
        }
        for a in segments {
            for b in segments {
                check(format!("https://example.com/{a}/{b}"));
                check(format!("http://127.0.0.1:3000/{a}.{b}"));
            }
        }
        assert!(plain > 3_000, "the shortcut took only {plain} of the URLs");
    }
}
