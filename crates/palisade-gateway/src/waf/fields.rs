//! The field values rules see for one request: the standard fields from the request head
//! (and body prefix, when a rule reads the body), geo data looked up on first use, the
//! identity from `ctx.identity`, and the managed-detection scores (inspected on first use,
//! once per request, and handed on to the managed stage).

use palisade_expr::request::{Body, RequestFields, RequestInfo};
use palisade_expr::{FieldDef, FieldProvider, KeyLookup, RuleSet, StandardField, Value};

use palisade_waf::AttackClass;

use crate::error::GatewayError;
use crate::pipeline::{GatewayRequest, RequestContext};
use crate::waf::GeoDatabases;
use crate::waf::managed::LazyVerdict;

/// What every `waf.score*` field reads when managed detection is off (`[waf] managed =
/// false`): 99 is "clean" on the 1 (attack) to 99 (clean) scale.
pub const CLEAN_SCORE: i64 = 99;

/// Fields for one request. Geo lookups are made only if a rule reads a geo field, and at
/// most once per request (the evaluator caches every field it asked for).
#[derive(Debug)]
pub struct GatewayFields<'a> {
    request: &'a RequestInfo,
    geo: &'a GeoDatabases,
    managed: Option<&'a LazyVerdict<'a>>,
}

impl<'a> GatewayFields<'a> {
    /// Fields of `request`, with geo data from `geo`; scores read clean.
    pub fn new(request: &'a RequestInfo, geo: &'a GeoDatabases) -> Self {
        Self {
            request,
            geo,
            managed: None,
        }
    }

    /// The same, with the scores from `managed` (inspected when a rule first reads one).
    pub fn with_scores(mut self, managed: &'a LazyVerdict<'a>) -> Self {
        self.managed = Some(managed);
        self
    }

    /// `waf.score` (the most certain class) or `waf.score.<class>`.
    fn score(&self, name: &str) -> i64 {
        let Some(managed) = self.managed else {
            return CLEAN_SCORE;
        };
        let scores = managed.scores();
        let score = match name.strip_prefix("waf.score.") {
            Some(class) => AttackClass::from_name(class).map(|c| scores.class(c)),
            None => Some(scores.overall()),
        };
        score.map_or(CLEAN_SCORE, i64::from)
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
            None if field.name().starts_with("waf.score") => {
                Some(Value::Int(self.score(field.name())))
            }
            None => None,
        }
    }

    fn lookup(&self, field: &FieldDef, key: &[u8]) -> KeyLookup {
        RequestFields::new(self.request).lookup(field, key)
    }
}

/// Whether any field of `rules` is computed from request headers. When none is (rules on
/// the path, query, method, address or geo), the headers are not copied per request.
pub fn reads_headers(rules: &RuleSet) -> bool {
    use StandardField as F;
    let scheme = rules.scheme();
    rules
        .fields()
        .iter()
        .any(|id| match scheme.field(id).standard() {
            Some(
                F::Method
                | F::Uri
                | F::UriPath
                | F::UriPathExtension
                | F::UriQuery
                | F::UriArgs
                | F::UriArgsNames
                | F::UriArgsValues
                | F::Version
                | F::BodyRaw
                | F::BodyTruncated
                | F::IpSrc
                | F::Country
                | F::Asnum
                | F::Ssl
                | F::UserId,
            ) => false,
            // Host, user agent, cookies, header maps, the full URI (its host), the form (its
            // content type), the body size (its declared length), and fields added later.
            Some(_) => true,
            // The gateway's own fields (scores) are not computed from the headers here.
            None => false,
        })
}

/// What the rules may see of this request. `body` is the inspected prefix, when some rule
/// reads a body field; the headers are copied only `with_headers`.
pub fn request_info(
    head: &http::request::Parts,
    ctx: &RequestContext,
    body: Option<Body>,
    with_headers: bool,
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
        headers: if with_headers {
            head.headers
                .iter()
                .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
                .collect()
        } else {
            Vec::new()
        },
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

#[cfg(test)]
mod tests {
    use palisade_expr::{Context, Value};

    use super::*;
    use crate::events::EventBus;
    use crate::pipeline::Identity;

    fn head(uri: &str, version: http::Version) -> http::request::Parts {
        let mut request = http::Request::new(());
        *request.uri_mut() = uri.parse().expect("uri");
        *request.version_mut() = version;
        request
            .headers_mut()
            .insert("user-agent", http::HeaderValue::from_static("ua/1"));
        request.into_parts().0
    }

    fn ctx() -> RequestContext {
        let peer = "192.0.2.7:5000".parse().expect("addr");
        RequestContext::new(peer, false, EventBus::new(Vec::new()))
    }

    fn field(info: &RequestInfo, name: &str) -> Option<Value> {
        let scheme = crate::waf::scheme();
        let geo = GeoDatabases::default();
        let fields = GatewayFields::new(info, &geo);
        let cx = Context::new(&scheme, &fields);
        let id = scheme.lookup(name).expect("known field").id();
        cx.field(id).cloned()
    }

    #[test]
    fn the_user_id_comes_from_the_identity_the_sessions_stage_set() {
        let mut ctx = ctx();
        let info = request_info(&head("/", http::Version::HTTP_11), &ctx, None, true);
        assert_eq!(
            field(&info, "palisade.user.id"),
            Some(Value::Bytes(Vec::new()))
        );
        ctx.identity = Some(Identity {
            user: "user-42".into(),
            source: "session",
        });
        let info = request_info(&head("/", http::Version::HTTP_11), &ctx, None, true);
        assert_eq!(field(&info, "palisade.user.id"), Some("user-42".into()));
    }

    #[test]
    fn http2_requests_keep_their_authority_as_the_host() {
        let info = request_info(
            &head("https://shop.example/a?b=1", http::Version::HTTP_2),
            &ctx(),
            None,
            true,
        );
        assert_eq!(field(&info, "http.host"), Some("shop.example".into()));
        assert_eq!(field(&info, "http.request.uri"), Some("/a?b=1".into()));
        assert_eq!(field(&info, "http.request.version"), Some("HTTP/2".into()));
        assert_eq!(field(&info, "ip.src.country"), Some("".into()));
        assert_eq!(field(&info, "ip.src.asnum"), Some(Value::Int(0)));
    }

    #[test]
    fn score_fields_read_clean_when_managed_detection_is_off() {
        let info = request_info(&head("/", http::Version::HTTP_11), &ctx(), None, true);
        for name in crate::waf::SCORE_FIELDS {
            assert_eq!(field(&info, name), Some(Value::Int(CLEAN_SCORE)), "{name}");
        }
    }

    #[test]
    fn score_fields_come_from_one_inspection_shared_by_every_rule() {
        let rules = "rules:\n  - name: S\n    expression: waf.score.sqli lt 20\n    \
                     action: block\n  - name: X\n    expression: waf.score.xss lt 20\n    \
                     action: log\n  - name: All\n    expression: waf.score lt 20\n    \
                     action: log\n";
        let set = RuleSet::from_yaml("waf.yaml", rules, crate::waf::scheme()).expect("loads");
        let geo = GeoDatabases::default();
        let engine = palisade_waf::Engine::new(palisade_waf::WafSettings::default());
        let evaluate = |uri: &str| {
            let mut head = head(uri, http::Version::HTTP_11);
            let host = http::HeaderValue::from_static("shop.example");
            head.headers.insert(http::header::HOST, host);
            let info = request_info(&head, &ctx(), None, true);
            let lazy = LazyVerdict::new(crate::waf::managed::Inspection {
                engine: &engine,
                head: &head,
                body: b"",
                body_truncated: false,
                local_addr: None,
            });
            let fields = GatewayFields::new(&info, &geo).with_scores(&lazy);
            let names: Vec<String> = set
                .evaluate(&fields)
                .matches
                .iter()
                .map(|m| m.rule.name.clone())
                .collect();
            (names, lazy.into_verdict().is_some())
        };
        let (names, inspected) = evaluate("/s?q=1%27%20or%20%271%27%3D%271");
        assert_eq!(names, ["S"]);
        assert!(inspected);
        let (names, _) = evaluate("/s?q=%3Cscript%3Ealert(1)%3C/script%3E");
        assert_eq!(names, ["X", "All"]);
        let (names, _) = evaluate("/s?q=shoes");
        assert!(names.is_empty());
    }

    #[test]
    fn headers_are_copied_only_for_rules_that_read_them() {
        let load = |expression: &str| {
            let text =
                format!("rules:\n  - name: R\n    expression: {expression}\n    action: log\n");
            RuleSet::from_yaml("waf.yaml", &text, crate::waf::scheme()).expect("loads")
        };
        assert!(!reads_headers(&load(
            r#"http.request.uri.query contains "union""#
        )));
        assert!(!reads_headers(&load(r#"ip.geoip.country in {"CN"}"#)));
        assert!(reads_headers(&load(r#"http.user_agent contains "curl""#)));
        assert!(reads_headers(&load(
            r#"http.request.body.form["a"][0] eq "b""#
        )));
        assert!(reads_headers(&load(
            r#"http.request.full_uri contains "x""#
        )));
    }
}
