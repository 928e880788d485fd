//! The field values rules see for one request: the standard fields from the request head
//! (and body prefix, when a rule reads the body), geo data looked up on first use, the
//! identity from `ctx.identity`, and the managed-detection scores.

use palisade_expr::request::{Body, RequestFields, RequestInfo};
use palisade_expr::{FieldDef, FieldProvider, KeyLookup, StandardField, Value};

use crate::error::GatewayError;
use crate::pipeline::{GatewayRequest, RequestContext};
use crate::waf::GeoDatabases;

/// The score every managed-detection field reads until the detector is wired in: 99 is
/// "clean" on the 1 (attack) to 99 (clean) scale.
pub const CLEAN_SCORE: i64 = 99;

/// Fields for one request. Geo lookups are made only if a rule reads a geo field, and at
/// most once per request (the evaluator caches every field it asked for).
#[derive(Debug)]
pub struct GatewayFields<'a> {
    request: &'a RequestInfo,
    geo: &'a GeoDatabases,
}

impl<'a> GatewayFields<'a> {
    /// Fields of `request`, with geo data from `geo`.
    pub fn new(request: &'a RequestInfo, geo: &'a GeoDatabases) -> Self {
        Self { request, geo }
    }
}

impl FieldProvider for GatewayFields<'_> {
    fn value(&self, field: &FieldDef) -> Option<Value> {
        let ip = self.request.client_ip;
        match field.standard() {
            Some(StandardField::Country) => Some(Value::Bytes(
                self.geo.country(ip).unwrap_or_default().into_bytes(),
            )),
            Some(StandardField::Asnum) => Some(Value::Int(self.geo.asn(ip).map_or(0, i64::from))),
            Some(_) => RequestFields::new(self.request).value(field),
            // TODO: supply the managed-detection scores from palisade-waf; until then every
            // `waf.score*` field reads 99 (clean), so rules on scores never match an attack.
            None if field.name().starts_with("waf.score") => Some(Value::Int(CLEAN_SCORE)),
            None => None,
        }
    }

    fn lookup(&self, field: &FieldDef, key: &[u8]) -> KeyLookup {
        RequestFields::new(self.request).lookup(field, key)
    }
}

/// What the rules may see of this request. `body` is the inspected prefix, when some rule
/// reads a body field.
pub fn request_info(
    head: &http::request::Parts,
    ctx: &RequestContext,
    body: Option<Body>,
) -> RequestInfo {
    let target = match head.uri.authority() {
        // HTTP/2 and absolute-form requests: keep scheme and authority for `http.host`.
        Some(_) => head.uri.to_string(),
        None => head
            .uri
            .path_and_query()
            .map_or_else(|| "/".to_owned(), |pq| pq.as_str().to_owned()),
    };
    RequestInfo {
        method: head.method.as_str().to_owned(),
        target,
        version: version_name(head.version).to_owned(),
        headers: head
            .headers
            .iter()
            .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
            .collect(),
        body,
        client_ip: ctx.client_ip,
        tls: ctx.secure,
        country: None,
        asn: None,
        user_id: ctx.identity.as_ref().map(|identity| identity.user.clone()),
    }
}

fn version_name(version: http::Version) -> &'static str {
    match version {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2",
        http::Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/1.1",
    }
}

/// Reads up to `cap` bytes of the body (the rest keeps streaming to the upstream later) and
/// describes what was seen.
pub async fn inspect_body(request: &mut GatewayRequest, cap: usize) -> Result<Body, GatewayError> {
    let declared: Option<u64> = request
        .head
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    let prefix = request.body.prefix(cap).await?;
    let seen = prefix.len();
    let bytes = prefix[..seen.min(cap)].to_vec();
    let complete = request.body.is_fully_buffered();
    let size = declared.unwrap_or(seen as u64);
    let truncated = match declared {
        Some(declared) => declared > cap as u64,
        None => seen > cap || !complete,
    };
    Ok(Body {
        prefix: bytes,
        size,
        truncated,
    })
}
