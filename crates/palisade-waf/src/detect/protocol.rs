//! Protocol attacks in values: line breaks that start a new header, response or request
//! (CRLF injection, response splitting, smuggled requests), mail-protocol commands injected
//! after a line break (SMTP, IMAP, POP3), LDAP filter injection, and encodings no honest
//! client produces (NUL bytes, overlong UTF-8, broken or layered percent-encoding).
//! Request-level checks (methods, framing headers) live in [`crate::detect::request`]; known
//! scanners are recognised here by their user agent and probe paths.

use super::Hit;
use crate::extract::{Input, Source};
use crate::normalize::DecodeFlags;

/// Headers whose injection changes how a response or request is read.
const INJECTED_HEADERS: &[&str] = &[
    "content-length:",
    "content-type:",
    "set-cookie:",
    "location:",
    "transfer-encoding:",
    "refresh:",
    "x-xss-protection:",
    "content-disposition:",
    "access-control-allow-origin:",
    "host:",
    "cookie:",
    "connection:",
];

/// Commands of SMTP, IMAP and POP3 that follow an injected line break.
const MAIL_COMMANDS: &[&str] = &[
    "data",
    "quit",
    "helo",
    "ehlo",
    "mail from",
    "rcpt to",
    "rset",
    "vrfy",
    "expn",
    "noop",
    "retr",
    "list",
    "top",
    "user",
    "pass",
    "auth",
    "dele",
    "stat",
    "capa",
    "uidl",
    "apop",
    "starttls",
];

/// IMAP commands (after a tag such as `a001`).
const IMAP_COMMANDS: &[&str] = &[
    "login",
    "select",
    "examine",
    "create",
    "delete",
    "rename",
    "subscribe",
    "list",
    "lsub",
    "status",
    "append",
    "check",
    "close",
    "expunge",
    "search",
    "fetch",
    "store",
    "copy",
    "uid",
    "authenticate",
    "capability",
    "logout",
    "noop",
    "move",
    "idle",
];

/// User agents of vulnerability scanners and attack tools.
const SCANNERS: &[&str] = &[
    "sqlmap",
    "nikto",
    "nmap",
    "nessus",
    "nuclei",
    "arachni",
    "havij",
    "acunetix",
    "w3af",
    "dirbuster",
    "gobuster",
    "wpscan",
    "masscan",
    "zgrab",
    "openvas",
    "netsparker",
    "wfuzz",
    "ffuf",
    "jaeles",
    "fimap",
    "commix",
    "skipfish",
    "zmeu",
    "morfeus",
    "bsqlbf",
    "webinspect",
    "appscan",
    "paros",
    "webshag",
    "whatweb",
    "joomscan",
    "brutus",
    "hydra",
    "absinthe",
    "pangolin",
    "x-scan",
    "dominator",
    "nsauditor",
    "burpcollaborator",
    "qualys",
    "detectify",
    "interactsh",
    "feroxbuster",
    "dirsearch",
    "xsstrike",
    "zap/",
    "owasp zap",
];

/// Looks for protocol attacks inside one value.
pub fn detect_value(input: &Input<'_>, text: &str, source: Source) -> Option<Hit> {
    let mut best = encodings(input, source);
    if text.contains(['\r', '\n']) {
        best = Hit::better(best, line_breaks(text, source));
    }
    if text.contains(')')
        && (text.contains(")(")
            || text.contains("*)")
            || text.contains("(|(")
            || text.contains("(&("))
    {
        best = Hit::better(best, ldap(text));
    }
    if matches!(source, Source::MultipartName | Source::FileName)
        && without_entities(text).contains(['"', ';', '=', '\'', '\\'])
    {
        best = Hit::better(
            best,
            Some(Hit::new(
                14,
                "multipart name that confuses parsers",
                0,
                text.len(),
            )),
        );
    }
    if starts_like_request(text) && request_line(&text.to_ascii_lowercase()) {
        best = Hit::better(
            best,
            Some(Hit::new(10, "request line in a value", 0, text.len())),
        );
    }
    if text.len() > 5 && text.as_bytes()[..5].eq_ignore_ascii_case(b"unix:") && text.contains('|') {
        best = Hit::better(
            best,
            Some(Hit::new(8, "unix socket proxy target", 0, text.len())),
        );
    }
    best
}

/// `text` without named character references (`&auml;`), which browsers use to send field
/// names outside the page's charset.
fn without_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let name = after.bytes().take_while(u8::is_ascii_alphanumeric).count();
        if name > 0 && after.as_bytes().get(name) == Some(&b';') {
            rest = &after[name + 1..];
        } else {
            out.push('&');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Encodings honest clients never produce.
fn encodings(input: &Input<'_>, source: Source) -> Option<Hit> {
    let f = input.flags;
    let header = source == Source::Header;
    // Binary bodies and protobuf fields (a zero varint inside a nested message) hold NULs.
    if f.contains(DecodeFlags::NUL) && !matches!(source, Source::Body | Source::Protobuf) {
        return Some(Hit::new(12, "nul byte", 0, input.text.len()));
    }
    // A protobuf `bytes` field or packed numbers are any bytes at all: malformed UTF-8 there
    // says nothing (a `string` field must be valid UTF-8 for the service to parse it).
    let binary = source == Source::Protobuf;
    if f.contains(DecodeFlags::OVERLONG_UTF8) && !binary {
        return Some(Hit::new(10, "overlong utf-8", 0, input.text.len()));
    }
    if f.contains(DecodeFlags::FULLWIDTH) && f.contains(DecodeFlags::UNICODE_PERCENT) {
        return Some(Hit::new(
            12,
            "fullwidth unicode escape",
            0,
            input.text.len(),
        ));
    }
    if f.contains(DecodeFlags::ENDLESS) {
        return Some(Hit::new(14, "endless encoding", 0, input.text.len()));
    }
    if header {
        return None;
    }
    let raw = &input.raw;
    if f.contains(DecodeFlags::INVALID_UTF8)
        && raw.windows(1).any(|w| w[0] >= 0x80)
        && source != Source::Path
        && !binary
    {
        return Some(Hit::new(30, "invalid utf-8", 0, input.text.len()));
    }
    if f.contains(DecodeFlags::MULTI_ENCODED) {
        return Some(Hit::new(24, "multiple encoding", 0, input.text.len()));
    }
    // Browsers and HTTP libraries always send a literal `%` as `%25`; a raw `%` without two
    // hex digits is made by hand, to probe decoders that disagree about it.
    if f.contains(DecodeFlags::INVALID_PERCENT)
        && matches!(source, Source::Arg | Source::Form | Source::ArgName)
    {
        return Some(Hit::new(
            20,
            "invalid percent-encoding",
            0,
            input.text.len(),
        ));
    }
    if f.contains(DecodeFlags::CONTROL)
        && !matches!(
            source,
            Source::Body | Source::Multipart | Source::Json | Source::Xml | Source::Protobuf
        )
    {
        return Some(Hit::new(30, "control character", 0, input.text.len()));
    }
    None
}

/// What follows a line break: a header, a status line, a request line, mail commands.
fn line_breaks(text: &str, source: Source) -> Option<Hit> {
    let mut best = None;
    if matches!(
        source,
        Source::Header | Source::Path | Source::Cookie | Source::CookieName
    ) {
        best = Some(Hit::new(10, "line break in header or path", 0, text.len()));
    }
    for (at, _) in text.match_indices(['\r', '\n']) {
        // A run of breaks starts one line, after its last break: reading it from every
        // break of the run was quadratic (16 KB of newlines took seconds).
        let line = &text[at + 1..];
        if line.starts_with(['\r', '\n']) {
            continue;
        }
        let lower: String = line
            .chars()
            .take(48)
            .collect::<String>()
            .to_ascii_lowercase();
        if INJECTED_HEADERS.iter().any(|h| lower.starts_with(h)) {
            best = Hit::better(best, Some(Hit::new(6, "header injection", at, text.len())));
        } else if lower.starts_with("http/1.")
            || lower.starts_with("http/2")
            || lower.starts_with("<html")
        {
            best = Hit::better(
                best,
                Some(Hit::new(6, "response splitting", at, text.len())),
            );
        } else if request_line(&lower) {
            best = Hit::better(best, Some(Hit::new(6, "request smuggling", at, text.len())));
        } else if let Some(score) = mail_command(&lower) {
            best = Hit::better(
                best,
                Some(Hit::new(score, "mail protocol injection", at, text.len())),
            );
        }
    }
    best
}

/// A method name then a space: the cheap test before the full request-line check.
fn starts_like_request(text: &str) -> bool {
    let head = text.split([' ', '+']).next().unwrap_or("");
    (3..=7).contains(&head.len())
        && head.bytes().all(|b| b.is_ascii_alphabetic())
        && head.len() < text.len()
}

/// `GET /x HTTP/1.1`, `HEAD http://x/ HTTP/1.0`, `POST / HTTP/1.1`.
fn request_line(lower: &str) -> bool {
    let mut parts = lower.split([' ', '+']);
    let method = parts.next().unwrap_or("");
    let known = [
        "get", "post", "head", "put", "delete", "options", "patch", "connect", "trace",
    ];
    if !known.contains(&method) {
        return false;
    }
    let target = parts.next().unwrap_or("");
    let version = parts.next().unwrap_or("");
    let version_ok = version
        .strip_prefix("http/")
        .is_some_and(|v| v.starts_with(|c: char| c.is_ascii_digit()));
    (target.starts_with('/') || target.starts_with("http")) && version_ok
}

/// Mail commands alone on their line, or an IMAP tag followed by a command.
fn mail_command(lower: &str) -> Option<u8> {
    let line = lower.split(['\r', '\n']).next().unwrap_or("").trim_end();
    for cmd in MAIL_COMMANDS {
        if let Some(rest) = line.strip_prefix(cmd) {
            let whole = rest.is_empty();
            let with_arg = rest.starts_with(' ') && rest.len() <= 40 && !rest.trim().contains(' ')
                || rest.starts_with(':');
            if whole || with_arg {
                return Some(if whole { 14 } else { 12 });
            }
        }
    }
    let mut words = line.split(' ');
    let tag = words.next().unwrap_or("");
    let command = words.next().unwrap_or("");
    let tagged = !tag.is_empty()
        && tag.len() <= 8
        && tag.chars().all(|c| c.is_ascii_alphanumeric())
        && tag.chars().any(|c| c.is_ascii_digit());
    (tagged && IMAP_COMMANDS.contains(&command)).then_some(10)
}

/// `*)(uid=*`, `)(|(`: closing an LDAP filter and opening another.
fn ldap(text: &str) -> Option<Hit> {
    let squeezed: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let b = squeezed.as_bytes();
    let opens_with_filter = squeezed.starts_with('(');
    for (at, _) in squeezed.match_indices(')') {
        // `)(`, `)&(`, `)|(`, `)!(`: one filter closed and another opened.
        let mut j = at + 1;
        if matches!(b.get(j), Some(b'&' | b'|' | b'!')) {
            j += 1;
        }
        if b.get(j) != Some(&b'(') {
            continue;
        }
        let after = squeezed[j + 1..].trim_start_matches(['|', '&', '!', '(']);
        let attr_len = after
            .bytes()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == b'-')
            .count();
        let op = after[attr_len..].starts_with(['=', '~', '>', '<']);
        let combinator = j > at + 1 || after.len() < squeezed[j + 1..].len();
        if (attr_len > 0 && op || combinator || after.is_empty()) && !opens_with_filter {
            return Some(Hit::new(12, "ldap filter injection", 0, text.len()));
        }
    }
    None
}

/// Scanner user agents.
pub fn scanner_agent(text: &str) -> Option<Hit> {
    static AGENTS: std::sync::LazyLock<aho_corasick::AhoCorasick> =
        std::sync::LazyLock::new(|| {
            aho_corasick::AhoCorasick::builder()
                .ascii_case_insensitive(true)
                .build(SCANNERS)
                .expect("static patterns build an automaton")
        });
    AGENTS
        .is_match(text)
        .then(|| Hit::new(10, "scanner user agent", 0, text.len()))
}

/// Paths only scanners ask for (backups, admin consoles of other stacks, dumps).
pub fn scanner_path(folded: &str) -> Option<Hit> {
    const PROBES: &[&str] = &[
        "/phpmyadmin",
        "/pma/",
        "/myadmin",
        "/wp-config.php.bak",
        "/.aws/credentials",
        "/server-status",
        "/actuator/env",
        "/actuator/heapdump",
        "/.ds_store",
        "/.svn/entries",
        "/cgi-bin/php",
        "/shell.php",
        "/c99.php",
        "/r57.php",
        "/phpinfo.php",
        "/adminer.php",
        "/.vscode/sftp.json",
        "/etc/passwd",
    ];
    PROBES
        .iter()
        .find(|p| folded.contains(**p))
        .map(|_| Hit::new(30, "scanner probe path", 0, folded.len()))
}

#[cfg(test)]
#[path = "protocol_tests.rs"]
mod tests;
