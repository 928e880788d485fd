//! Turns a request into the list of inputs the detectors inspect: the path, every query and
//! form argument (names and values), multipart fields and file names, JSON keys and string
//! values, XML text and attribute values, cookies, and the headers attackers fill.
//!
//! Every input is decoded once (see [`crate::normalize`]). Work is bounded by [`Limits`]:
//! past a limit the rest is skipped and the reason recorded, so a verdict can say that
//! inspection stopped early. Nothing here copies more than the limits allow.

mod body;

pub use body::opaque_type;
mod grpc;
mod json;
mod multipart;
mod xml;

use std::fmt;

use crate::class::DetectorKind;
use crate::normalize::{self, DecodeFlags, HiddenPayload, Plus};
use crate::request::Request;
use crate::verdict::{Finding, MAX_FINDINGS};

/// Bounds on the work done for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Inputs (arguments, JSON values, headers, ...) inspected per request.
    pub max_inputs: usize,
    /// Bytes of one input inspected; the rest of a longer value is skipped.
    pub max_value_len: usize,
    /// Bytes inspected over the whole request.
    pub max_total: usize,
    /// Nesting of JSON and XML followed.
    pub max_depth: usize,
    /// Multipart parts read.
    pub max_parts: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_inputs: 512,
            max_value_len: 16 * 1024,
            max_total: 256 * 1024,
            max_depth: 32,
            max_parts: 64,
        }
    }
}

/// Why inspection did not cover the whole request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StopReason {
    /// The body was longer than the inspection cap.
    BodyTruncated,
    /// More inputs than [`Limits::max_inputs`].
    TooManyInputs,
    /// A value longer than [`Limits::max_value_len`] was inspected only in part.
    ValueTooLong,
    /// The request held more than [`Limits::max_total`] bytes to inspect.
    TotalBudget,
    /// JSON or XML nested deeper than [`Limits::max_depth`].
    TooDeep,
    /// A body that does not parse as its declared type (inspected as raw text instead).
    MalformedBody,
    /// More multipart parts than [`Limits::max_parts`].
    TooManyParts,
}

impl StopReason {
    /// Stable name for events.
    pub fn name(self) -> &'static str {
        match self {
            Self::BodyTruncated => "body_truncated",
            Self::TooManyInputs => "too_many_inputs",
            Self::ValueTooLong => "value_too_long",
            Self::TotalBudget => "total_budget",
            Self::TooDeep => "too_deep",
            Self::MalformedBody => "malformed_body",
            Self::TooManyParts => "too_many_parts",
        }
    }
}

/// Where an input came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// The request path.
    Path,
    /// A query argument value / name.
    Arg,
    /// A query argument name.
    ArgName,
    /// An urlencoded form field value.
    Form,
    /// An urlencoded form field name.
    FormName,
    /// A multipart field value.
    Multipart,
    /// A multipart field name.
    MultipartName,
    /// A multipart file name.
    FileName,
    /// A JSON string value.
    Json,
    /// A JSON object key.
    JsonKey,
    /// XML text or attribute value.
    Xml,
    /// A length-delimited field of a gRPC or protobuf message (a string, bytes, or a
    /// nested message's bytes), named by its field numbers.
    Protobuf,
    /// A cookie value.
    Cookie,
    /// A cookie name.
    CookieName,
    /// A header value.
    Header,
    /// A body of no structured type, inspected whole.
    Body,
    /// The request line or framing (method, version, length headers).
    Request,
}

/// The named place of an input, rendered like `args.q` or `body.json.user.name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// Kind of input.
    pub source: Source,
    /// Argument, header or cookie name, or JSON/XML path; empty for the path and raw body.
    pub name: String,
}

impl Location {
    /// What an exclusion's `args` is compared with: the whole name of a query, form,
    /// multipart or cookie field (`a.html` is its own field, not `html`), and the last
    /// key of a JSON or XML path (`post.html` is the key `html` inside `post`).
    // TODO: a JSON key holding a dot (`{"a.html": ...}`) reads as the key after it; an
    // args exclusion for `html` covers that key too.
    pub fn arg_name(&self) -> Option<&str> {
        match self.source {
            Source::Path | Source::Body | Source::Header | Source::Request => None,
            Source::Json | Source::JsonKey | Source::Xml => {
                Some(self.name.rsplit('.').next().unwrap_or(&self.name))
            }
            _ => Some(&self.name),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix = match self.source {
            Source::Path => return f.write_str("path"),
            Source::Body => return f.write_str("body"),
            Source::Arg => "args",
            Source::ArgName => "args_names",
            Source::Form => "body.form",
            Source::FormName => "body.form_names",
            Source::Multipart => "body.multipart",
            Source::MultipartName => "body.multipart_names",
            Source::FileName => "body.filename",
            Source::Json => "body.json",
            Source::JsonKey => "body.json_keys",
            Source::Xml => "body.xml",
            Source::Protobuf => "body.grpc",
            Source::Cookie => "cookies",
            Source::CookieName => "cookies_names",
            Source::Header => "headers",
            Source::Request => "request",
        };
        write!(f, "{prefix}.{}", self.name)
    }
}

/// One decoded input.
#[derive(Debug, Clone)]
pub struct Input<'r> {
    /// Where it came from.
    pub location: Location,
    /// The bytes as received (after structural unescaping such as JSON's), capped.
    pub raw: std::borrow::Cow<'r, [u8]>,
    /// Fully decoded text.
    pub text: String,
    /// Lowercased, comment-free, whitespace-folded text.
    pub folded: String,
    /// What decoding undid.
    pub flags: DecodeFlags,
    /// Payloads decoded from base64 / hex runs.
    pub hidden: Vec<HiddenPayload>,
    /// Letters, digits and sentence punctuation with no attack word: only the encoding
    /// checks apply (and `folded` is left empty).
    pub plain: bool,
}

/// Gathers inputs within the limits.
pub struct Collector<'r> {
    limits: Limits,
    used: usize,
    /// Inputs gathered so far.
    pub inputs: Vec<Input<'r>>,
    /// Why something was skipped (no duplicates).
    pub stops: Vec<StopReason>,
    /// The findings of inputs past [`Limits::max_inputs`], most certain first, at most
    /// [`MAX_FINDINGS`]: such inputs are inspected as they come and not kept, so that
    /// hundreds of padding arguments cannot hide the one after them, while memory stays
    /// bounded (the byte budget still bounds the work).
    pub overflow_findings: Vec<Finding>,
    /// Whether an exclusion switches a detector off for an input name (overflow only).
    excluded: Option<Box<Excluded<'r>>>,
}

/// An exclusion test: detector and input name (see [`Location::arg_name`]).
pub type Excluded<'a> = dyn Fn(DetectorKind, Option<&str>) -> bool + 'a;

impl<'r> Collector<'r> {
    /// An empty collector.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            used: 0,
            inputs: Vec::with_capacity(8),
            stops: Vec::new(),
            overflow_findings: Vec::new(),
            excluded: None,
        }
    }

    /// An empty collector that inspects inputs past the input limit at once, dropping the
    /// findings `excluded` covers.
    pub fn with_exclusions(limits: Limits, excluded: Box<Excluded<'r>>) -> Self {
        Self {
            excluded: Some(excluded),
            ..Self::new(limits)
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Records why inspection stopped early.
    pub fn stop(&mut self, reason: StopReason) {
        if !self.stops.contains(&reason) {
            self.stops.push(reason);
        }
    }

    /// Whether another input would be refused: the request's budget is spent.
    pub fn full(&self) -> bool {
        self.used >= self.limits.max_total
    }

    /// Decodes and keeps one input; false once limits are reached. A value longer than
    /// [`Limits::max_value_len`] is kept as several inputs, windows of that length that
    /// overlap by [`WINDOW_OVERLAP`] bytes, until the request's budget is spent: padding a
    /// value must not carry an attack past what is read, and no window costs more to
    /// inspect than a value of the longest length.
    pub fn push(
        &mut self,
        source: Source,
        name: &str,
        raw: std::borrow::Cow<'r, [u8]>,
        plus: Plus,
    ) -> bool {
        let len = self.limits.max_value_len.max(2 * WINDOW_OVERLAP);
        if raw.len() <= len {
            return self.push_piece(source, name, raw, plus);
        }
        let mut start = 0;
        loop {
            let end = window_end(&raw, start, start + len);
            let piece = match &raw {
                std::borrow::Cow::Borrowed(all) => std::borrow::Cow::Borrowed(&all[start..end]),
                std::borrow::Cow::Owned(all) => std::borrow::Cow::Owned(all[start..end].to_vec()),
            };
            if !self.push_piece(source, name, piece, plus) {
                self.stop(StopReason::ValueTooLong);
                return false;
            }
            if end == raw.len() {
                return true;
            }
            start = window_end(&raw, start, end - WINDOW_OVERLAP);
        }
    }

    /// Decodes and keeps one input of at most `max_value_len` bytes.
    fn push_piece(
        &mut self,
        source: Source,
        name: &str,
        raw: std::borrow::Cow<'r, [u8]>,
        plus: Plus,
    ) -> bool {
        if self.used >= self.limits.max_total {
            self.stop(StopReason::TotalBudget);
            return false;
        }
        let room = self
            .limits
            .max_value_len
            .min(self.limits.max_total - self.used);
        let raw = if raw.len() > room {
            self.stop(StopReason::ValueTooLong);
            cap(raw, room)
        } else {
            raw
        };
        self.used += raw.len() + name.len();
        let (text, flags) = normalize::decode(&raw, plus);
        self.keep(source, name, raw, text, flags);
        true
    }

    /// Keeps an input whose decoding the caller already did (names decoded for locations).
    pub fn push_decoded(
        &mut self,
        source: Source,
        name: &str,
        raw: std::borrow::Cow<'r, [u8]>,
        text: String,
        flags: DecodeFlags,
    ) -> bool {
        if self.used + raw.len() > self.limits.max_total {
            return self.push(source, name, raw, Plus::IsSpace);
        }
        self.used += raw.len() + name.len();
        self.keep(source, name, raw, text, flags);
        true
    }

    /// Keeps an input, or past the input limit inspects it now and keeps its findings.
    fn keep(
        &mut self,
        source: Source,
        name: &str,
        raw: std::borrow::Cow<'r, [u8]>,
        text: String,
        flags: DecodeFlags,
    ) {
        let input = build(source, name, raw, text, flags);
        if self.inputs.len() < self.limits.max_inputs {
            self.inputs.push(input);
            return;
        }
        self.stop(StopReason::TooManyInputs);
        let excluded = self.excluded.as_deref();
        let arg = input.location.arg_name();
        let findings = &mut self.overflow_findings;
        crate::detect::inspect_input(&input, &mut |raised| {
            if !excluded.is_some_and(|excluded| excluded(raised.detector, arg)) {
                findings.push(crate::engine::finding(&input, raised));
            }
        });
        if findings.len() > 4 * MAX_FINDINGS {
            findings.sort_by_key(|f| f.score);
            findings.truncate(MAX_FINDINGS);
        }
    }
}

/// One input with its derived views.
fn build<'r>(
    source: Source,
    name: &str,
    raw: std::borrow::Cow<'r, [u8]>,
    text: String,
    flags: DecodeFlags,
) -> Input<'r> {
    {
        let hidden = if maybe_encoded(&text) {
            normalize::hidden_payloads(&text)
        } else {
            Vec::new()
        };
        let plain = hidden.is_empty() && crate::detect::is_plain(source, name, &text);
        // Plain values only meet the encoding checks: their folded view is never read.
        let folded = if plain {
            String::new()
        } else {
            normalize::fold(&text)
        };
        Input {
            location: Location {
                source,
                name: capped_name(name),
            },
            raw,
            text,
            folded,
            flags,
            hidden,
            plain,
        }
    }
}

/// Bytes the windows of a long value share, so that an attack of up to this length lies
/// whole in one window wherever the cut falls.
pub const WINDOW_OVERLAP: usize = 512;

/// Where a window of `raw` that starts at `start` and wants to end at `want` ends: never
/// inside an escape (`%XX`, `%uXXXX`, `&#x...;`, `\xNN`) or a UTF-8 character, whose
/// halves would decode wrongly or look like broken encoding; always after `start`.
fn window_end(raw: &[u8], start: usize, want: usize) -> usize {
    if want >= raw.len() {
        return raw.len();
    }
    let mut end = want;
    let lookback = want.saturating_sub(9).max(start + 1);
    if let Some(at) = raw[lookback..want]
        .iter()
        .rposition(|b| matches!(b, b'%' | b'&' | b'\\'))
    {
        end = lookback + at;
    }
    while end > start + 1 && raw[end] & 0b1100_0000 == 0b1000_0000 {
        end -= 1;
    }
    end
}

/// A capital letter or digit inside a word: the mark of base64 or hex, absent from prose.
/// A capital after a letter or digit, or a digit after a letter: one table look-up per byte
/// says what the byte is (low bits) and what the byte before must be for the pair to count
/// (high bits).
fn maybe_encoded(text: &str) -> bool {
    let mut before = 0u8;
    for &b in text.as_bytes() {
        let class = CLASSES[usize::from(b)];
        if before & (class >> 4) != 0 {
            return true;
        }
        before = class & 0x0f;
    }
    false
}

/// [`maybe_encoded`]'s classes: a letter or digit, a letter.
const ALNUM: u8 = 1;
const ALPHA: u8 = 2;

/// Each byte's classes, and (shifted by 4) the classes the byte before must have: any
/// letter or digit before a capital, a letter before a digit.
const CLASSES: [u8; 256] = crate::byte_table!(0u8, |byte| {
    let is = if byte.is_ascii_alphabetic() {
        ALNUM | ALPHA
    } else if byte.is_ascii_digit() {
        ALNUM
    } else {
        0
    };
    let needs = if byte.is_ascii_uppercase() {
        ALNUM
    } else if byte.is_ascii_digit() {
        ALPHA
    } else {
        0
    };
    is | needs << 4
});

fn cap(raw: std::borrow::Cow<'_, [u8]>, len: usize) -> std::borrow::Cow<'_, [u8]> {
    match raw {
        std::borrow::Cow::Borrowed(b) => std::borrow::Cow::Borrowed(&b[..len]),
        std::borrow::Cow::Owned(mut v) => {
            v.truncate(len);
            std::borrow::Cow::Owned(v)
        }
    }
}

/// Names are shown in events: keep them short and printable.
fn capped_name(name: &str) -> String {
    if name.len() <= 64 && !name.chars().any(char::is_control) {
        return name.to_string();
    }
    name.chars()
        .take(64)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// Headers that are framing, negotiation or browser metadata: structured values that no
/// application echoes or parses as free text, checked by the request-level checks instead.
/// Every other header (custom ones included) is inspected like an argument.
// TODO: a skipped header carrying an injection (`Accept-Language: ' union select ...`) is not
// inspected; an application that stores or echoes such a header is not protected by detection.
pub const SKIPPED_HEADERS: &[&str] = &[
    "host",
    "accept",
    "accept-encoding",
    "accept-language",
    "accept-charset",
    "connection",
    "keep-alive",
    "proxy-connection",
    "content-length",
    "content-type",
    "transfer-encoding",
    "cache-control",
    "pragma",
    "upgrade-insecure-requests",
    "dnt",
    "te",
    "upgrade",
    "if-modified-since",
    "if-none-match",
    "if-match",
    "if-unmodified-since",
    "if-range",
    "range",
    "authorization",
    "proxy-authorization",
    "cookie",
    "content-encoding",
    "expect",
    "priority",
    "x-requested-with",
    "date",
    "max-forwards",
    "content-range",
    "request-range",
];

/// Prefixes of browser-generated header families skipped like [`SKIPPED_HEADERS`].
const SKIPPED_PREFIXES: &[&str] = &["sec-", "access-control-request-"];

/// Whether a header is inspected as free text.
pub fn inspected_header(name: &str) -> bool {
    !SKIPPED_HEADERS.contains(&name) && !SKIPPED_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// Gathers every inspected input of `req`.
pub fn collect<'r>(req: &Request<'r>, out: &mut Collector<'r>) {
    let path = req.raw_path();
    out.push(Source::Path, "", path.into(), Plus::Literal);
    for (name, value) in pairs(req.raw_query(), b'&') {
        push_pair(out, Source::ArgName, Source::Arg, name, value);
    }
    for h in req.headers {
        if h.name.eq_ignore_ascii_case(b"cookie") {
            for (name, value) in pairs(h.value, b';') {
                let name = trim(name);
                push_pair(out, Source::CookieName, Source::Cookie, name, value);
            }
        } else {
            let name = h.lower_case_name(64);
            if inspected_header(&name) {
                out.push(Source::Header, &name, h.value.into(), Plus::Literal);
            }
            if name == "referer" {
                referer_args(h.value, out);
            }
        }
    }
    if req.body_truncated {
        out.stop(StopReason::BodyTruncated);
    }
    body::collect(req, out);
}

/// The query values of a `Referer`: pages reflect them, and attackers plant payloads there.
fn referer_args<'r>(value: &'r [u8], out: &mut Collector<'r>) {
    let Some(at) = memchr::memchr(b'?', value) else {
        return;
    };
    let query = &value[at + 1..];
    let query = query.split(|&b| b == b'#').next().unwrap_or_default();
    for (_, v) in pairs(query, b'&') {
        if v.len() >= 3 {
            out.push(Source::Header, "referer", v.into(), Plus::IsSpace);
        }
    }
}

/// Keeps a name and value pair: the name (when not empty) and the value under that name.
pub(crate) fn push_pair<'r>(
    out: &mut Collector<'r>,
    name_source: Source,
    value_source: Source,
    name: &'r [u8],
    value: &'r [u8],
) {
    let (decoded_name, flags) = normalize::decode(&name[..name.len().min(256)], Plus::IsSpace);
    if !name.is_empty() {
        let capped = name.len() > 256;
        if capped {
            out.push(name_source, &decoded_name, name.into(), Plus::IsSpace);
        } else {
            out.push_decoded(
                name_source,
                &decoded_name,
                name.into(),
                decoded_name.clone(),
                flags,
            );
        }
    }
    if !value.is_empty() {
        out.push(value_source, &decoded_name, value.into(), Plus::IsSpace);
    }
}

/// Splits `a=1&b=2` style text into (name, value) pairs; a pair without `=` is a bare name.
pub(crate) fn pairs(text: &[u8], sep: u8) -> impl Iterator<Item = (&[u8], &[u8])> {
    text.split(move |&b| b == sep)
        .filter(|p| !p.is_empty())
        .map(|p| match memchr::memchr(b'=', p) {
            Some(at) => (&p[..at], &p[at + 1..]),
            None => (p, &[][..]),
        })
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &bytes[start..end]
}

#[cfg(test)]
mod tests;
