//! The standard fields computed from a plain, owned description of a request.
//!
//! The gateway fills a [`RequestInfo`] from the HTTP request it holds; `palisade rules eval`
//! fills one from the command line with [`RequestInfo::from_cli`]. Both then evaluate rules
//! through [`RequestFields`], so a rule means the same thing in both places. This module does
//! no I/O and never reads more of the body than the prefix it is given.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use crate::eval::{FieldProvider, KeyLookup};
use crate::funcs::url_decode;
use crate::normal;
use crate::scheme::{FieldDef, StandardField};
use crate::types::Value;

/// What the rules may see of one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestInfo {
    /// The method as sent (`GET`).
    pub method: String,
    /// The request target as sent: origin form `/a?b=c`, or absolute `https://host/a?b=c`.
    pub target: String,
    /// The protocol version, `HTTP/1.0`, `HTTP/1.1`, `HTTP/2` or `HTTP/3`.
    pub version: String,
    /// Headers in request order with their names as received (HTTP/2 sends them lower-case).
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body, if the gateway read it (only when some rule needs a body field).
    pub body: Option<Body>,
    /// The client address, after trusted-proxy resolution.
    pub client_ip: IpAddr,
    /// Whether the client connection is TLS.
    pub tls: bool,
    /// ISO 3166 alpha-2 country of the client, if a geo database knows it.
    pub country: Option<String>,
    /// Autonomous system number of the client, if a geo database knows it.
    pub asn: Option<u32>,
    /// The authenticated user, once sessions resolve one.
    pub user_id: Option<String>,
}

/// The inspected part of a request body.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Body {
    /// The first bytes of the body, at most the gateway's inspection cap.
    pub prefix: Vec<u8>,
    /// The size of the whole body (declared Content-Length, or bytes seen).
    pub size: u64,
    /// Whether `prefix` stops short of the whole body.
    pub truncated: bool,
}

impl Body {
    /// A body seen completely.
    pub fn complete(bytes: Vec<u8>) -> Body {
        let size = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        Body {
            prefix: bytes,
            size,
            truncated: false,
        }
    }
}

impl RequestInfo {
    /// A `GET` of `target` over HTTP/1.1 from `client_ip`, with no headers: a starting point
    /// for tests and tools.
    pub fn get(target: &str, client_ip: IpAddr) -> RequestInfo {
        RequestInfo {
            method: "GET".to_owned(),
            target: target.to_owned(),
            version: "HTTP/1.1".to_owned(),
            headers: Vec::new(),
            body: None,
            client_ip,
            tls: false,
            country: None,
            asn: None,
            user_id: None,
        }
    }

    /// Adds a header (builder style).
    pub fn with_header(mut self, name: &str, value: &str) -> RequestInfo {
        self.headers
            .push((name.to_owned(), value.as_bytes().to_vec()));
        self
    }

    /// The value of one standard field for this request. Absent things are empty.
    pub fn standard_value(&self, field: StandardField) -> Value {
        use StandardField as F;
        match field {
            F::Method => self.method.as_str().into(),
            F::Uri => self.uri().into(),
            F::UriPath => self.path().into(),
            F::UriPathExtension => extension(&self.path()).into(),
            F::UriQuery => self.query().into(),
            F::UriArgs => string_map(pairs(self.query().as_bytes(), false)),
            F::UriArgsNames => array(raw_pairs(self.query().as_bytes()).map(|(n, _)| n.to_vec())),
            F::UriArgsValues => array(raw_pairs(self.query().as_bytes()).map(|(_, v)| v.to_vec())),
            F::FullUri => self.full_uri().into(),
            F::Version => self.version.as_str().into(),
            F::Host => Value::Bytes(self.host()),
            F::UserAgent => Value::Bytes(self.header_joined("user-agent", b", ")),
            F::Referer => Value::Bytes(self.header_joined("referer", b", ")),
            F::Cookie => Value::Bytes(self.header_joined("cookie", b"; ")),
            F::Cookies => string_map(self.cookies()),
            F::Headers => self.headers_map(),
            F::HeaderNames => array(self.headers.iter().map(|(n, _)| n.as_bytes().to_vec())),
            F::HeaderValues => array(self.headers.iter().map(|(_, v)| v.clone())),
            F::BodyRaw => Value::Bytes(
                self.body
                    .as_ref()
                    .map(|b| b.prefix.clone())
                    .unwrap_or_default(),
            ),
            F::BodyForm => string_map(self.form()),
            F::BodyFormNames => names(self.form()),
            F::BodyFormValues => values(self.form()),
            F::BodySize => Value::Int(self.body_size()),
            F::BodyTruncated => Value::Bool(self.body.as_ref().is_some_and(|b| b.truncated)),
            F::IpSrc => Value::Ip(self.client_ip.to_canonical()),
            F::Country => self.country.clone().unwrap_or_default().into(),
            F::Asnum => Value::Int(self.asn.map_or(0, i64::from)),
            F::Ssl => Value::Bool(self.tls),
            F::UserId => self.user_id.clone().unwrap_or_default().into(),
        }
    }

    /// The values under `key` in the map field `field` (empty if none), without building the
    /// map; `None` if `field` is not a map.
    pub fn standard_entry(&self, field: StandardField, key: &[u8]) -> Option<Vec<Vec<u8>>> {
        let matching = |pairs: Vec<(Vec<u8>, Vec<u8>)>| {
            pairs
                .into_iter()
                .filter(|(name, _)| name == key)
                .map(|(_, value)| value)
                .collect()
        };
        Some(match field {
            StandardField::Headers => self
                .headers
                .iter()
                .filter(|(name, _)| {
                    name.as_bytes().eq_ignore_ascii_case(key)
                        && !key.iter().any(u8::is_ascii_uppercase)
                })
                .map(|(_, value)| value.clone())
                .collect(),
            StandardField::Cookies => matching(self.cookies()),
            StandardField::UriArgs => raw_pairs(self.query().as_bytes())
                .filter(|(name, _)| *name == key)
                .map(|(_, value)| value.to_vec())
                .collect(),
            StandardField::BodyForm => matching(self.form()),
            _ => return None,
        })
    }

    /// Path and query, without scheme and authority for absolute targets.
    fn path_and_query(&self) -> &str {
        let target = self.target.split('#').next().unwrap_or("");
        match split_absolute(target) {
            Some((_, "")) => "/",
            Some((_, rest)) => rest,
            None => target,
        }
    }

    /// The path as sent, before normalisation.
    fn raw_path(&self) -> &str {
        self.path_and_query().split('?').next().unwrap_or("")
    }

    /// The path rules see: one spelling per resource ([`normal::rule_path`]).
    fn path(&self) -> String {
        normal::rule_path(self.raw_path())
    }

    /// The normalised path with the query as sent: `http.request.uri`.
    fn uri(&self) -> String {
        let path = self.path();
        match self.path_and_query().split_once('?') {
            Some((_, query)) => format!("{path}?{query}"),
            None => path,
        }
    }

    fn query(&self) -> &str {
        self.path_and_query().split_once('?').map_or("", |(_, q)| q)
    }

    /// The Host header (else the target's authority), in one spelling ([`normal::host`]).
    fn host(&self) -> Vec<u8> {
        normal::host(self.raw_authority())
    }

    /// The Host header as sent, else the authority of an absolute target.
    fn raw_authority(&self) -> &[u8] {
        if let Some(host) = self.header("host") {
            return host;
        }
        split_absolute(&self.target)
            .map(|(authority, _)| authority.as_bytes())
            .unwrap_or_default()
    }

    fn full_uri(&self) -> String {
        let (scheme, default_port) = if self.tls {
            ("https", 443)
        } else {
            ("http", 80)
        };
        let authority = normal::authority(self.raw_authority(), default_port);
        let authority = String::from_utf8_lossy(&authority);
        format!("{scheme}://{authority}{}", self.uri())
    }

    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    fn header_joined(&self, name: &str, sep: &[u8]) -> Vec<u8> {
        let mut found = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name));
        let Some((_, first)) = found.next() else {
            return Vec::new();
        };
        let mut joined = first.clone();
        for (_, value) in found {
            joined.extend_from_slice(sep);
            joined.extend_from_slice(value);
        }
        joined
    }

    fn headers_map(&self) -> Value {
        let lowered = self
            .headers
            .iter()
            .map(|(n, v)| (n.to_ascii_lowercase().into_bytes(), v.clone()));
        string_map(lowered.collect())
    }

    /// `name=value` pairs of every Cookie header, raw.
    fn cookies(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out = Vec::new();
        for (_, value) in self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("cookie"))
        {
            for piece in value.split(|b| *b == b';') {
                let piece = piece.trim_ascii();
                if piece.is_empty() {
                    continue;
                }
                let (name, value) = split_pair(piece);
                out.push((name.trim_ascii().to_vec(), value.trim_ascii().to_vec()));
            }
        }
        out
    }

    /// Fields of an `application/x-www-form-urlencoded` body, decoded; none otherwise.
    fn form(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let Some(body) = &self.body else {
            return Vec::new();
        };
        let content_type = self.header("content-type").unwrap_or_default();
        let essence = content_type
            .split(|b| *b == b';')
            .next()
            .unwrap_or_default();
        if !essence
            .trim_ascii()
            .eq_ignore_ascii_case(b"application/x-www-form-urlencoded")
        {
            return Vec::new();
        }
        pairs(&body.prefix, true)
    }

    fn body_size(&self) -> i64 {
        let size = match &self.body {
            Some(body) => body.size,
            None => self
                .header("content-length")
                .and_then(|v| std::str::from_utf8(v).ok())
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0),
        };
        i64::try_from(size).unwrap_or(i64::MAX)
    }
}

/// `("host", "/path?q")` for `scheme://host/path?q`; `None` for origin-form targets.
fn split_absolute(target: &str) -> Option<(&str, &str)> {
    if target.starts_with('/') {
        return None;
    }
    let (scheme, rest) = target.split_once("://")?;
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return None;
    }
    let cut = rest.find(['/', '?']).unwrap_or(rest.len());
    Some(rest.split_at(cut))
}

fn extension(path: &str) -> String {
    let last = path.rsplit('/').next().unwrap_or("");
    match last.rsplit_once('.') {
        Some((_, ext)) => ext.to_ascii_lowercase(),
        None => String::new(),
    }
}

/// `a=1&b=2` split into borrowed name/value pairs, empty pieces skipped.
fn raw_pairs(text: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    text.split(|b| *b == b'&')
        .filter(|piece| !piece.is_empty())
        .map(split_pair)
}

/// Splits `a=1&b=2` style text; `decode` applies form decoding to names and values.
fn pairs(text: &[u8], decode: bool) -> Vec<(Vec<u8>, Vec<u8>)> {
    raw_pairs(text)
        .map(|(name, value)| {
            if decode {
                (url_decode(name, false), url_decode(value, false))
            } else {
                (name.to_vec(), value.to_vec())
            }
        })
        .collect()
}

fn split_pair(piece: &[u8]) -> (&[u8], &[u8]) {
    match piece.iter().position(|b| *b == b'=') {
        Some(i) => (&piece[..i], &piece[i + 1..]),
        None => (piece, &[]),
    }
}

fn string_map(pairs: Vec<(Vec<u8>, Vec<u8>)>) -> Value {
    let mut map: BTreeMap<Vec<u8>, Value> = BTreeMap::new();
    for (name, value) in pairs {
        let entry = map.entry(name).or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(items) = entry {
            items.push(Value::Bytes(value));
        }
    }
    Value::Map(map)
}

fn names(pairs: Vec<(Vec<u8>, Vec<u8>)>) -> Value {
    array(pairs.into_iter().map(|(n, _)| n))
}

fn values(pairs: Vec<(Vec<u8>, Vec<u8>)>) -> Value {
    array(pairs.into_iter().map(|(_, v)| v))
}

fn array(items: impl Iterator<Item = Vec<u8>>) -> Value {
    Value::Array(items.map(Value::Bytes).collect())
}

/// A [`FieldProvider`] for the standard fields of one request. Non-standard fields (the
/// gateway's own, like `waf.score`) are missing; wrap this to supply them.
#[derive(Clone, Copy, Debug)]
pub struct RequestFields<'r> {
    request: &'r RequestInfo,
}

impl<'r> RequestFields<'r> {
    /// Fields of `request`.
    pub fn new(request: &'r RequestInfo) -> RequestFields<'r> {
        RequestFields { request }
    }
}

impl FieldProvider for RequestFields<'_> {
    fn value(&self, field: &FieldDef) -> Option<Value> {
        field.standard().map(|f| self.request.standard_value(f))
    }

    fn lookup(&self, field: &FieldDef, key: &[u8]) -> KeyLookup {
        let Some(field) = field.standard() else {
            return KeyLookup::Unsupported;
        };
        match self.request.standard_entry(field, key) {
            Some(values) if values.is_empty() => KeyLookup::Missing,
            Some(values) => {
                KeyLookup::Found(Value::Array(values.into_iter().map(Value::Bytes).collect()))
            }
            None => KeyLookup::Unsupported,
        }
    }
}

/// A request described on the command line that cannot be understood.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestFormError {
    /// The request line is not `METHOD TARGET [VERSION]`.
    #[error("request line '{0}' is not 'METHOD /path?query [HTTP/1.1]'")]
    RequestLine(String),
    /// A header is not `Name: value`.
    #[error("header '{0}' is not 'Name: value'")]
    Header(String),
}

impl RequestInfo {
    /// Builds a request from the `palisade rules eval` form: a request line such as
    /// `GET /search?q=union+select HTTP/1.1` (version optional), `Name: value` headers and an
    /// optional body. An `https://` absolute target sets the TLS flag. The client address
    /// defaults to 127.0.0.1.
    pub fn from_cli(
        request_line: &str,
        headers: &[&str],
        body: Option<Vec<u8>>,
        client_ip: Option<IpAddr>,
    ) -> Result<RequestInfo, RequestFormError> {
        let bad_line = || RequestFormError::RequestLine(request_line.to_owned());
        let parts: Vec<&str> = request_line.split_whitespace().collect();
        let (method, target, version) = match parts.as_slice() {
            [m, t] => (*m, *t, "HTTP/1.1"),
            [m, t, v] => (*m, *t, *v),
            _ => return Err(bad_line()),
        };
        let method_ok = method.bytes().all(|b| b.is_ascii_alphabetic() || b == b'-');
        let target_ok =
            target.starts_with('/') || target == "*" || split_absolute(target).is_some();
        if !method_ok || !target_ok || !version.starts_with("HTTP/") {
            return Err(bad_line());
        }
        let mut request =
            RequestInfo::get(target, client_ip.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        request.method = method.to_owned();
        request.version = version.to_owned();
        request.tls = target
            .get(..8)
            .is_some_and(|s| s.eq_ignore_ascii_case("https://"));
        for line in headers {
            let Some((name, value)) = line.split_once(':') else {
                return Err(RequestFormError::Header((*line).to_owned()));
            };
            let name = name.trim();
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(RequestFormError::Header((*line).to_owned()));
            }
            request
                .headers
                .push((name.to_owned(), value.trim().as_bytes().to_vec()));
        }
        request.body = body.map(Body::complete);
        Ok(request)
    }
}
