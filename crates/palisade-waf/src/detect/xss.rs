//! Cross-site scripting: an HTML tag tokenizer (tag names, attribute names and values, as a
//! browser would split them, including the forgiving parts: `/` between attributes, missing
//! `>`, scheme names broken by tabs) and a small JavaScript token reader for script that
//! lands outside a tag (sinks such as `alert(`, `document.cookie`, template-literal calls).
//! Formatting markup (`<b>`, `<p>`, links to http URLs) is not an attack on its own.

use super::Hit;

/// Tags that run script, load active content or rewrite the page's context by themselves.
const ACTIVE_TAGS: &[&str] = &[
    "script",
    "iframe",
    "frame",
    "frameset",
    "object",
    "embed",
    "applet",
    "base",
    "meta",
    "link",
    "style",
    "svg",
    "math",
    "vmlframe",
    "isindex",
    "import",
    "xss",
    "xml",
    "noscript",
    "template",
    "portal",
    "handler",
    "listener",
    "animate",
    "set",
    "foreignobject",
    "xmp",
    "plaintext",
    "bgsound",
    "layer",
    "ilayer",
];

/// Attributes whose values are URLs a browser may navigate to or fetch.
const URL_ATTRS: &[&str] = &[
    "href",
    "src",
    "action",
    "formaction",
    "data",
    "xlink:href",
    "background",
    "lowsrc",
    "dynsrc",
    "poster",
    "code",
    "codebase",
    "to",
    "from",
    "values",
    "content",
    "srcdoc",
];

/// Script globals whose properties give script reach into the page.
pub(crate) const GLOBALS: &[&str] = &[
    "document",
    "window",
    "self",
    "top",
    "parent",
    "frames",
    "globalthis",
    "opener",
    "content",
    "location",
];

/// Properties that read or steer the page.
const REACH: &[&str] = &[
    "queryselector",
    "getelementbyid",
    "textcontent",
    "cookie",
    "location",
    "domain",
    "write",
    "writeln",
    "createelement",
    "alert",
    "eval",
    "body",
    "href",
    "localstorage",
    "sessionstorage",
    "innerhtml",
    "outerhtml",
    "documentelement",
];

/// Functions that run code or show attacker-chosen dialogs.
pub(crate) const SINKS: &[&str] = &[
    "alert",
    "prompt",
    "confirm",
    "eval",
    "settimeout",
    "setinterval",
    "execscript",
    "fromcharcode",
    "atob",
    "importscripts",
    "msgbox",
];

static SCRIPT_WORDS: std::sync::LazyLock<aho_corasick::AhoCorasick> =
    std::sync::LazyLock::new(|| {
        let mut words: Vec<&str> = GLOBALS.to_vec();
        words.extend(SINKS);
        super::matcher(&words)
    });

/// Looks for cross-site scripting in `text` (decoded) / `folded` (lowercase, comment-free).
pub fn detect(text: &str, folded: &str) -> Option<Hit> {
    // Markup, handlers, schemes and script all need one of these characters.
    if !folded.contains(['<', '=', '(', '`', ':', '[', '.']) && !text.contains("+AD") {
        return None;
    }
    let mut best = None;
    if folded.contains('<') {
        best = tags(folded);
    }
    if folded.contains("on") && (folded.contains('=')) {
        best = Hit::better(best, handler_outside_tag(folded));
    }
    if folded.contains("script:") || folded.contains("script&") || folded.contains("data:") {
        best = Hit::better(best, scheme(folded));
    }
    if folded.contains(['(', '`']) || SCRIPT_WORDS.is_match(folded) {
        best = Hit::better(best, script(folded));
    }
    best = Hit::better(best, css(folded));
    if text.contains("+AD") || text.contains("+ADw") {
        best = Hit::better(best, utf7(text));
    }
    if folded.contains("[]") {
        best = Hit::better(best, jsfuck(folded));
    }
    best
}

/// Every `<name ...` in the text.
fn tags(s: &str) -> Option<Hit> {
    let b = s.as_bytes();
    let mut best = None;
    let mut from = 0;
    while let Some(at) = memchr::memchr(b'<', &b[from..]).map(|p| from + p) {
        from = at + 1;
        let mut i = at + 1;
        if matches!(b.get(i), Some(b'?' | b'%' | b'!')) {
            i += 1;
        }
        let name_start = i;
        while i < b.len() && (b[i].is_ascii_alphanumeric() || matches!(b[i], b':' | b'-' | b'_')) {
            i += 1;
        }
        if i == name_start || !b[name_start].is_ascii_alphabetic() {
            continue;
        }
        let name = &s[name_start..i];
        let name = name.rsplit(':').next().unwrap_or(name);
        let mut end = (i + 1024).min(b.len());
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        if b[at + 1] == b'?' && name == "xml" && xml_declaration(&s[i..end]) {
            continue;
        }
        let (score, reason) = judge_tag(name, &s[i..end]);
        if let Some(score) = score {
            let tag_end = memchr::memchr(b'>', &b[i..end]).map_or(end, |p| i + p + 1);
            best = Hit::better(best, Some(Hit::new(score, reason, at, tag_end)));
        }
    }
    best
}

/// `<?xml version="1.0" encoding="UTF-8"?>`: the declaration that opens every XML document
/// pasted into a form. It creates no element and runs nothing (`<xml>` data islands and
/// `<?xml-stylesheet` do, and are judged as tags); entities are the rfi detector's.
fn xml_declaration(rest: &str) -> bool {
    let Some(close) = rest.find("?>") else {
        return false;
    };
    attributes(&rest[..close])
        .iter()
        .all(|(attr, _)| matches!(attr.as_ref(), "version" | "encoding" | "standalone"))
}

/// Scores one tag from its name and the text after the name.
fn judge_tag(name: &str, rest: &str) -> (Option<u8>, &'static str) {
    let attrs = attributes(rest);
    let mut score: Option<u8> = None;
    let mut reason = "html tag";
    let mut lower = |s: u8, r: &'static str| {
        if score.is_none_or(|cur| s < cur) {
            score = Some(s);
            reason = r;
        }
    };
    let boundary = !rest.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if name == "script" && boundary {
        lower(5, "script tag");
    }
    if ACTIVE_TAGS.contains(&name) && boundary {
        let with_attrs = !attrs.is_empty() || rest.starts_with('>');
        lower(if with_attrs { 8 } else { 14 }, "active html tag");
    }
    for (attr, value) in &attrs {
        if is_handler(attr) {
            lower(6, "event handler attribute");
        }
        let squeezed: String = value
            .chars()
            .filter(|c| !c.is_whitespace() && !c.is_control())
            .collect();
        if URL_ATTRS.contains(&attr.as_str()) && script_scheme(&squeezed) {
            lower(5, "script url");
        }
        if *attr == "style" && dangerous_css(&squeezed) {
            lower(6, "dangerous css");
        }
        if *attr == "srcdoc" || (*attr == "http-equiv" && value.contains("refresh")) {
            lower(8, "active html attribute");
        }
        if *attr == "charset" && name == "meta" {
            lower(10, "charset override");
        }
    }
    (score, reason)
}

/// `on` + letters: `onload`, `onerror`, `onzoom`.
fn is_handler(attr: &str) -> bool {
    attr.len() >= 5 && attr.starts_with("on") && attr[2..].bytes().all(|b| b.is_ascii_lowercase())
}

/// Attribute (name, value) pairs as a browser splits them, up to the closing `>`.
fn attributes(rest: &str) -> Vec<(String, String)> {
    let b = rest.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() && out.len() < 32 {
        while i < b.len()
            && (b[i].is_ascii_whitespace() || b[i] == b'/' || b[i] == b'"' || b[i] == b'\'')
        {
            i += 1;
        }
        if i >= b.len() || b[i] == b'>' {
            break;
        }
        let start = i;
        while i < b.len() && !b[i].is_ascii_whitespace() && !matches!(b[i], b'=' | b'>' | b'/') {
            i += 1;
        }
        let name = rest[start..i].to_string();
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut value = String::new();
        if b.get(i) == Some(&b'=') {
            i += 1;
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            let vstart = i;
            if let Some(&q @ (b'"' | b'\'' | b'`')) = b.get(i) {
                let close = memchr::memchr(q, &b[i + 1..]).map_or(b.len(), |p| i + 1 + p);
                value = rest[vstart + 1..close].to_string();
                i = (close + 1).min(b.len());
            } else {
                while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'>' {
                    i += 1;
                }
                value = rest[vstart..i].to_string();
            }
        }
        if name.is_empty() {
            if i == start {
                // Step over the one ASCII byte (`=`, `/`, `>`) that stopped the name.
                i += 1;
            }
            continue;
        }
        out.push((name, value));
    }
    out
}

fn script_scheme(squeezed: &str) -> bool {
    let v = squeezed.trim_start_matches(|c: char| !c.is_ascii_alphanumeric());
    v.starts_with("javascript:")
        || v.starts_with("vbscript:")
        || v.starts_with("livescript:")
        || v.starts_with("data:text/html")
        || v.starts_with("data:image/svg")
        || v.starts_with("data:application/x")
        || (v.starts_with("data:,") && v.contains('('))
}

fn dangerous_css(squeezed: &str) -> bool {
    [
        "expression(",
        "url(javascript",
        "url(vbscript",
        "-moz-binding",
        "behavior:",
        "@import",
    ]
    .iter()
    .any(|p| squeezed.contains(p))
}

/// `" onmouseover="alert(1)`: breaking out of an attribute value into a new handler.
fn handler_outside_tag(s: &str) -> Option<Hit> {
    let b = s.as_bytes();
    let mut best = None;
    for (at, _) in s.match_indices("on") {
        if at > 0 && (b[at - 1].is_ascii_alphanumeric() || b[at - 1] == b'_') {
            continue;
        }
        let mut i = at + 2;
        while i < b.len() && b[i].is_ascii_lowercase() {
            i += 1;
        }
        let name_len = i - at;
        let mut j = i;
        while j < b.len() && b[j].is_ascii_whitespace() {
            j += 1;
        }
        if name_len < 5 || b.get(j) != Some(&b'=') {
            continue;
        }
        let before = s[..at].trim_end_matches(|c: char| c.is_whitespace());
        let opener = before.is_empty()
            || before.ends_with(['"', '\'', '`', '/', ';', '>'])
            || at > 0 && matches!(b[at - 1], b'/' | b'\t' | b'\n' | b'\x0c');
        let value = s[j + 1..].trim_start_matches([' ', '"', '\'']);
        let code = value.starts_with(|c: char| c.is_ascii_alphabetic() || c == '`' || c == '[')
            && (value.contains('(') || value.contains('`') || value.contains('='));
        let score = match (opener && !before.is_empty(), code) {
            (true, true) => 6,
            (true, false) => 14,
            (false, true) if before.is_empty() || before.ends_with(' ') => 16,
            (false, true) => 24,
            (false, false) => continue,
        };
        best = Hit::better(
            best,
            Some(Hit::new(
                score,
                "event handler injection",
                at,
                (j + 24).min(s.len()),
            )),
        );
    }
    best
}

/// `javascript:` and friends, with tabs and newlines inside the scheme ignored.
fn scheme(s: &str) -> Option<Hit> {
    let squeezed: String = s
        .chars()
        .filter(|c| !c.is_whitespace() && !c.is_control())
        .collect();
    for scheme in [
        "javascript:",
        "vbscript:",
        "livescript:",
        "data:text/html",
        "data:image/svg+xml",
    ] {
        if let Some(at) = squeezed.find(scheme) {
            let after = &squeezed[at + scheme.len()..];
            let code = after.contains('(')
                || after.contains('`')
                || after.starts_with(',')
                || after.starts_with(';');
            if code || scheme.starts_with("data") {
                let start = s.find(&scheme[..4]).unwrap_or(0);
                return Some(Hit::new(
                    if code { 6 } else { 14 },
                    "script url",
                    start,
                    s.len(),
                ));
            }
        }
    }
    None
}

/// A sentence that names script (`document.cookie is empty in Safari`, `window.location
/// not updating`): words and dots only, no brackets, quotes, operators or statement ends,
/// and at least two words of letters. Script that reads or sends a page property needs
/// at least one of those.
fn sentence_about_code(s: &str) -> bool {
    let words = s
        .split_whitespace()
        .filter(|w| w.len() >= 2 && w.bytes().all(|c| c.is_ascii_alphabetic() || c == b'\''))
        .count();
    words >= 2
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b" .,?!'-".contains(&c) || c >= 0x80)
}

/// Script outside any tag: sinks, page globals, template-literal calls.
fn script(s: &str) -> Option<Hit> {
    let words = js_words(s);
    let mut best = None;
    for (n, w) in words.iter().enumerate() {
        let next = words.get(n + 1);
        if GLOBALS.contains(&w.text)
            && let Some(prop) = next.filter(|p| p.joined_by_access && REACH.contains(&p.text))
        {
            // `document . cookie` (spaces or comments around the dot) is an evasion.
            let tight = !s[w.start..prop.end].contains(char::is_whitespace);
            let score = if tight && sentence_about_code(s) {
                30
            } else {
                12
            };
            let hit = Hit::new(score, "script reaches into the page", w.start, prop.end);
            best = Hit::better(best, Some(hit));
        }
        if SINKS.contains(&w.text) && (w.call || w.template) {
            let score = if w.template || w.tight_call { 10 } else { 30 };
            best = Hit::better(
                best,
                Some(Hit::new(score, "script sink call", w.start, w.end + 16)),
            );
        }
        if w.text == "function" && n > 0 && words[n - 1].text == "new" && w.call {
            best = Hit::better(
                best,
                Some(Hit::new(
                    10,
                    "function constructor",
                    words[n - 1].start,
                    w.end,
                )),
            );
        }
        if matches!(w.text, "call" | "apply" | "bind" | "map" | "sort")
            && w.template
            && w.joined_by_access
        {
            best = Hit::better(
                best,
                Some(Hit::new(8, "template literal call", w.start, w.end)),
            );
        }
    }
    best.map(|mut h| {
        h.end = h.end.min(s.len());
        h
    })
}

/// An identifier in script-like text.
struct JsWord<'a> {
    text: &'a str,
    start: usize,
    end: usize,
    /// Reached with `.` or `["..."]` from the previous word.
    joined_by_access: bool,
    /// Followed by `(` (maybe after spaces).
    call: bool,
    /// Followed directly by `(`.
    tight_call: bool,
    /// Followed by a template literal.
    template: bool,
}

fn js_words(s: &str) -> Vec<JsWord<'_>> {
    let b = s.as_bytes();
    let mut out: Vec<JsWord<'_>> = Vec::new();
    let mut i = 0;
    let mut access = false;
    while i < b.len() && out.len() < 256 {
        let c = b[i];
        if c.is_ascii_alphabetic() || c == b'_' || c == b'$' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'$') {
                i += 1;
            }
            let mut j = i;
            while j < b.len() && (b[j] == b' ' || b[j] == b'\t') {
                j += 1;
            }
            let after = b.get(j).copied();
            out.push(JsWord {
                text: &s[start..i],
                start,
                end: i,
                joined_by_access: access,
                call: after == Some(b'('),
                tight_call: b.get(i) == Some(&b'('),
                template: after == Some(b'`'),
            });
            access = false;
            continue;
        }
        match c {
            b'.' => access = true,
            b'[' | b'"' | b'\'' if access || c == b'[' => access = true,
            b']' | b'"' | b'\'' => {}
            b' ' | b'\t' | b'\n' | b'\r' => {}
            _ => access = false,
        }
        i += 1;
    }
    out
}

// TODO: style and script blocks are read by keyword, not parsed as CSS/JavaScript; heavily
// escaped CSS inside a <style> block can score above the default threshold.
/// `expression(`, `-moz-binding`, `@import` in a style context.
fn css(s: &str) -> Option<Hit> {
    if !(s.contains("style") || s.contains('{') || s.contains(':')) {
        return None;
    }
    let squeezed: String = s
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '\\')
        .collect();
    for (pattern, score) in [
        ("expression(", 10),
        ("-moz-binding:", 8),
        ("behavior:url", 8),
        ("url(javascript", 8),
        ("@import", 16),
    ] {
        if squeezed.contains(pattern) && (pattern != "@import" || s.contains("style")) {
            let start = s.find(&pattern[..4]).unwrap_or(0);
            return Some(Hit::new(score, "dangerous css", start, s.len()));
        }
    }
    None
}

/// UTF-7 (`+ADw-script+AD4-`), read by browsers told the page is UTF-7.
fn utf7(text: &str) -> Option<Hit> {
    let decoded = decode_utf7(text);
    if decoded == text || !decoded.contains('<') {
        return None;
    }
    let folded = decoded.to_lowercase();
    tags(&folded).map(|h| {
        Hit::new(
            h.score.max(6),
            "utf-7 encoded markup",
            0,
            text.len().min(120),
        )
    })
}

fn decode_utf7(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('+') {
        out.push_str(&rest[..at]);
        let seg = &rest[at + 1..];
        let len = seg
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/')
            .count();
        let bytes = base64_bits(&seg.as_bytes()[..len]);
        let units: Vec<u16> = bytes
            .chunks_exact(2)
            .map(|p| u16::from_be_bytes([p[0], p[1]]))
            .collect();
        out.push_str(&String::from_utf16_lossy(&units));
        rest = &seg[len..];
        rest = rest.strip_prefix('-').unwrap_or(rest);
    }
    out.push_str(rest);
    out
}

fn base64_bits(run: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for &c in run {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            _ => 63,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// JSFuck: script written with `[]()!+` only.
fn jsfuck(s: &str) -> Option<Hit> {
    let symbols = s.bytes().filter(|b| b"[]()!+".contains(b)).count();
    let shaped = s.contains("![]") || s.contains("+[]") || s.contains("[][");
    (shaped && symbols * 10 >= s.len() * 7).then(|| Hit::new(8, "jsfuck", 0, s.len()))
}

#[cfg(test)]
#[path = "xss_tests.rs"]
mod tests;
