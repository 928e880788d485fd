//! Header rewriting between client and upstream: hop-by-hop removal, forwarding headers,
//! and the response headers that would leak what runs behind palisade.

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use palisade_policy::identity::IDENTITY_HEADERS;

use crate::byte_set::ByteSet;
use crate::pipeline::RequestContext;

/// RFC 9110 §7.6.1: connection-specific fields a proxy must not forward, plus the
/// pre-standard `Proxy-Connection` and `Keep-Alive`.
/// `Connection` comes first: [`strip_hop_by_hop`] reads it by position, and
/// [`hop_by_hop_index`] names the same fields in the same order.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("proxy-connection"),
    HeaderName::from_static("keep-alive"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
];

/// Removes hop-by-hop fields, including every field the `Connection` header names, except
/// the identity headers palisade itself sets (`Palisade-User-Id`, ...): a client naming them
/// in `Connection` must not strip the identity palisade vouches for. With `keep_upgrade`,
/// `Connection: upgrade` and `Upgrade` stay (a WebSocket handshake).
///
/// One pass over the names finds the fields present; only those are removed. Removing each
/// of the eight names blindly cost a hash and a probe apiece on every request and response.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    let mut present = [false; 8];
    for name in headers.keys() {
        if let Some(at) = hop_by_hop_index(name) {
            present[at] = true;
        }
    }
    if !keep_upgrade && !present.contains(&true) {
        return;
    }
    if present[0] {
        remove_connection_options(headers);
    }
    for (name, _) in HOP_BY_HOP.iter().zip(present).filter(|(_, there)| *there) {
        if keep_upgrade && (name == header::CONNECTION || name == header::UPGRADE) {
            continue;
        }
        headers.remove(name);
    }
    if keep_upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// Whether the client's `TE` names `trailers`: it reads trailer fields (a gRPC client says
/// so, and a gRPC server refuses a request without it).
pub fn accepts_trailers(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::TE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let name = coding.split(';').next().unwrap_or_default();
            name.trim().eq_ignore_ascii_case("trailers")
        })
}

/// [`HOP_BY_HOP`] as text, in the same order: comparing with the array's names would build
/// (and drop) a copy of the constant array per header, and even from a `static` array,
/// comparing `HeaderName`s cost ~600 more instructions a request than comparing text
/// (bench/gateway-instructions.sh).
const HOP_BY_HOP_NAMES: [&str; 8] = [
    "connection",
    "proxy-connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authorization",
];

/// The forwarding fields palisade sets ([`ForwardingFields`]).
const FORWARDING_NAMES: [&str; 4] = [
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "forwarded",
];

/// The position of `name` in [`HOP_BY_HOP`].
fn hop_by_hop_index(name: &HeaderName) -> Option<usize> {
    HOP_BY_HOP_NAMES
        .iter()
        .position(|hop| *hop == name.as_str())
}

/// Removes the fields the `Connection` header names (RFC 9110 §7.6.1), except the identity
/// headers, the forwarding fields and the hop-by-hop fields, which [`strip_hop_by_hop`]
/// removes (or keeps for a WebSocket) itself. Palisade sets the forwarding fields (extends a
/// trusted proxy's, after reading its `X-Forwarded-Proto` for the scheme): a `Connection`
/// naming them would have the upstream told `http` for a request palisade took for TLS.
/// The usual options (`keep-alive`, `upgrade`) cost no lookup; another that names no field
/// present (`close`) a lookup and nothing more.
fn remove_connection_options(headers: &mut HeaderMap) {
    let mut named: Vec<HeaderName> = Vec::new();
    for value in headers.get_all(header::CONNECTION) {
        for option in value.as_bytes().split(|&b| b == b',') {
            let option = option.trim_ascii();
            // A hop-by-hop name (`keep-alive`, `upgrade`: the usual options) is removed, or
            // kept for a WebSocket, by the caller: no lookup needed.
            let hop_by_hop = HOP_BY_HOP_NAMES
                .iter()
                .any(|name| option.eq_ignore_ascii_case(name.as_bytes()));
            let identity = || {
                IDENTITY_HEADERS
                    .iter()
                    .chain(&FORWARDING_NAMES)
                    .any(|name| option.eq_ignore_ascii_case(name.as_bytes()))
            };
            if option.is_empty() || hop_by_hop || identity() {
                continue;
            }
            if let Ok(name) = HeaderName::from_bytes(option) {
                if headers.contains_key(&name) {
                    named.push(name);
                }
            }
        }
    }
    for name in named {
        headers.remove(name);
    }
}

/// Which of the fields that forwarding changes a request carries, found in one pass over
/// its fields: nearly every request carries none of them, and looking up an absent field
/// costs a hash and a probe apiece. Only ever a reason to look: a field found here may be
/// gone by the time it is looked up (named in `Connection`), never the other way round.
#[derive(Debug, Default, Clone, Copy)]
pub struct Present {
    /// `Upgrade`.
    pub upgrade: bool,
    /// `Cookie` ([`join_cookies`] sees whether there are several).
    pub cookie: bool,
    /// `Expect`.
    pub expect: bool,
    /// `X-Forwarded-For`, `-Proto`, `-Host` or `Forwarded`.
    pub forwarding: bool,
}

impl Present {
    /// The fields of `headers`.
    pub fn of(headers: &HeaderMap) -> Self {
        let mut present = Self::default();
        for name in headers.keys() {
            if name == header::UPGRADE {
                present.upgrade = true;
            } else if name == header::COOKIE {
                present.cookie = true;
            } else if name == header::EXPECT {
                present.expect = true;
            } else if name == header::FORWARDED
                || name == X_FORWARDED_FOR
                || name == X_FORWARDED_PROTO
                || name == X_FORWARDED_HOST
            {
                present.forwarding = true;
            }
        }
        present
    }
}

/// Whether the request asks to switch to WebSocket (RFC 9110 §7.8, RFC 6455 §4.1), the
/// one upgrade palisade passes through.
///
/// Any other `Upgrade` is dropped like the hop-by-hop field it is, and the request goes
/// upstream as plain HTTP. After a switch palisade only copies bytes, so an upstream that
/// accepted `Upgrade: h2c` would hand the client an HTTP/2 connection of its own, whose
/// requests no stage would ever see (h2c smuggling).
pub fn wants_upgrade(headers: &HeaderMap) -> bool {
    // `Upgrade` first: nearly every request has none, and then one lookup decides.
    let mut protocols = headers.get_all(header::UPGRADE).iter();
    let websocket = match (protocols.next(), protocols.next()) {
        (Some(only), None) => only
            .as_bytes()
            .trim_ascii()
            .eq_ignore_ascii_case(b"websocket"),
        _ => false,
    };
    websocket
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|token| token.trim().eq_ignore_ascii_case("upgrade"))
}

/// `X-Forwarded-For`, `-Proto`, `-Host` and `Forwarded` (RFC 7239) as the upstream gets them.
///
/// Values a trusted proxy sent are extended; values from anyone else are replaced, so the
/// application never sees a client-written forwarding header as if palisade wrote it.
/// Held as values until the request goes upstream: palisade's own HTTP/1.1 exchange writes
/// them straight after the head's other fields ([`ForwardingFields::write`]) rather than
/// inserting each into the head's map first.
#[derive(Debug, Default)]
pub struct ForwardingFields {
    x_forwarded_for: String,
    /// `None` when a trusted proxy's value stays.
    x_forwarded_proto: Option<&'static str>,
    /// `None` when a trusted proxy's value stays, or when there is no host to name.
    x_forwarded_host: Option<HeaderValue>,
    forwarded: String,
}

impl ForwardingFields {
    /// The fields for this request, taking out of `headers` every field they replace.
    /// `present`: whether `headers` may hold any of them ([`Present::forwarding`]). `host`
    /// is the host the client asked for (its `Host` header, shared rather than copied).
    pub fn of(
        headers: &mut HeaderMap,
        present: bool,
        ctx: &RequestContext,
        host: Option<&HeaderValue>,
    ) -> Self {
        let peer = crate::client_ip::canonical(ctx.peer.ip());
        let proto = if ctx.tls { "https" } else { "http" };
        let trusted = ctx.peer_trusted;

        let mut x_forwarded_for = String::with_capacity(48);
        if let Some(prior) = (trusted && present)
            .then(|| joined(headers, &X_FORWARDED_FOR))
            .flatten()
        {
            x_forwarded_for.push_str(&prior);
            x_forwarded_for.push_str(", ");
        }
        let at = x_forwarded_for.len();
        crate::client_ip::push_ip(&mut x_forwarded_for, peer);
        let peer_text = &x_forwarded_for[at..];

        let keep_proto = trusted && present && headers.contains_key(&X_FORWARDED_PROTO);
        let keep_host = trusted && present && headers.contains_key(&X_FORWARDED_HOST);

        let mut forwarded = String::with_capacity(64);
        if let Some(prior) = (trusted && present)
            .then(|| joined(headers, &header::FORWARDED))
            .flatten()
        {
            forwarded.push_str(&prior);
            forwarded.push_str(", ");
        } else if trusted && present {
            // A proxy that speaks only `X-Forwarded-*`: its hops, said again as `Forwarded`
            // elements, so that an application reading `Forwarded` learns the client and
            // scheme the other fields give, not palisade's hop alone (the proxy, `http`).
            let hops = believed_hops(&x_forwarded_for[..at.saturating_sub(2)], ctx.client_ip);
            let first = |name: HeaderName| {
                headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::trim)
            };
            let scheme = first(X_FORWARDED_PROTO).and_then(|p| {
                let p = first_item(p);
                ["http", "https"]
                    .into_iter()
                    .find(|s| p.eq_ignore_ascii_case(s))
            });
            let host = first(X_FORWARDED_HOST).map(first_item);
            push_translated(&mut forwarded, &hops, scheme, host);
        }
        // RFC 7239 §6: IPv6 nodes are bracketed and quoted.
        let (open, close) = if peer.is_ipv6() {
            ("for=\"[", "]\";proto=")
        } else {
            ("for=", ";proto=")
        };
        forwarded.push_str(open);
        forwarded.push_str(peer_text);
        forwarded.push_str(close);
        forwarded.push_str(proto);
        push_host(&mut forwarded, host.map(HeaderValue::as_bytes));

        if present {
            headers.remove(&X_FORWARDED_FOR);
            headers.remove(&header::FORWARDED);
            if keep_proto {
                keep_first_item(headers, &X_FORWARDED_PROTO);
                lower_scheme(headers);
            } else {
                headers.remove(&X_FORWARDED_PROTO);
            }
            if keep_host {
                keep_first_item(headers, &X_FORWARDED_HOST);
            } else {
                headers.remove(&X_FORWARDED_HOST);
            }
        }
        Self {
            x_forwarded_for,
            x_forwarded_proto: (!keep_proto).then_some(proto),
            x_forwarded_host: if keep_host { None } else { host.cloned() },
            forwarded,
        }
    }

    /// Puts the fields into `headers` (for a request that goes through hyper's client).
    pub fn insert_into(self, headers: &mut HeaderMap) {
        insert_text(headers, X_FORWARDED_FOR, self.x_forwarded_for);
        if let Some(proto) = self.x_forwarded_proto {
            headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
        }
        if let Some(host) = self.x_forwarded_host {
            headers.insert(X_FORWARDED_HOST, host);
        }
        insert_text(headers, header::FORWARDED, self.forwarded);
    }

    /// Writes the fields as HTTP/1.1 field lines, as [`Self::insert_into`] puts them; nothing
    /// for the default, empty set. Every value is a valid field value by construction: an
    /// address, palisade's own words, a `HeaderValue`, and a trusted proxy's values read
    /// with `to_str` (visible ASCII, spaces and tabs only).
    pub fn write(&self, out: &mut Vec<u8>) {
        // The default: no fields (a request palisade makes itself).
        if self.x_forwarded_for.is_empty() {
            return;
        }
        let mut line = |name_colon: &[u8], value: &[u8]| {
            out.extend_from_slice(name_colon);
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        };
        line(b"x-forwarded-for: ", self.x_forwarded_for.as_bytes());
        if let Some(proto) = self.x_forwarded_proto {
            line(b"x-forwarded-proto: ", proto.as_bytes());
        }
        if let Some(host) = &self.x_forwarded_host {
            line(b"x-forwarded-host: ", host.as_bytes());
        }
        line(b"forwarded: ", self.forwarded.as_bytes());
    }
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// A trusted proxy's list fields as one list; empty ones (and empty items at their ends)
/// left out, so that the list grows by palisade's item and no empty one.
fn joined(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    let values: Vec<&str> = headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| v.trim_matches(|c: char| c == ',' || c.is_ascii_whitespace()))
        .filter(|v| !v.is_empty())
        .collect();
    (!values.is_empty()).then(|| values.join(", "))
}

/// `;host="..."` for a `Forwarded` element, when `host` is a host and port as `Host` allows
/// them after the conformance checks (letters, digits, `-._~%`, an IPv6 literal's `[]:`):
/// inside the quoted-string, a `;`, `,` or `=` would read as more parameters or elements to
/// a parser that matches `proto=` or splits on commas without honouring the quotes.
fn push_host(forwarded: &mut String, host: Option<&[u8]>) {
    const PLAIN: ByteSet = ByteSet::alphanumeric_and(b"-._~%[]:");
    let plain = |h: &&[u8]| !h.is_empty() && PLAIN.holds_all(h);
    // ASCII, as every byte the set holds is: read as text at once.
    let host = host.filter(plain).and_then(|h| std::str::from_utf8(h).ok());
    if let Some(host) = host {
        forwarded.push_str(";host=\"");
        forwarded.push_str(host);
        forwarded.push('"');
    }
}

/// Most hops of a trusted proxy's `X-Forwarded-For` told again in `Forwarded`.
const MAX_TOLD_HOPS: usize = 16;

/// The hops of a trusted proxy's `X-Forwarded-For` (`prior_for`) that palisade believed:
/// read from the right as [`crate::client_ip`] walks it, up to the client it settled on
/// (`client`), in the list's order. Items left of the client were written by the client
/// and are not told again. Nothing when the walk did not end at an item of the list (the
/// client came from `client_ip_header`, or the trusted hops were more than
/// [`MAX_TOLD_HOPS`]).
fn believed_hops(prior_for: &str, client: std::net::IpAddr) -> Vec<std::net::IpAddr> {
    let mut hops = Vec::new();
    for item in prior_for.rsplit(',') {
        let Some(ip) = crate::client_ip::parse_entry(item) else {
            break;
        };
        hops.push(ip);
        if ip == client {
            hops.reverse();
            return hops;
        }
        if hops.len() == MAX_TOLD_HOPS {
            break;
        }
    }
    Vec::new()
}

/// The `Forwarded` elements (RFC 7239 §4) for the hops a trusted proxy told of only in
/// `X-Forwarded-*`, each followed by `, `: one `for=` per believed hop ([`believed_hops`],
/// IPv6 quoted and bracketed), the scheme and host on the first, the client's; with no hop
/// the scheme and host alone. Nothing when the proxy told of nothing.
fn push_translated(
    forwarded: &mut String,
    hops: &[std::net::IpAddr],
    scheme: Option<&str>,
    host: Option<&str>,
) {
    let start = forwarded.len();
    let client_params = |forwarded: &mut String| {
        if let Some(scheme) = scheme {
            forwarded.push_str(";proto=");
            forwarded.push_str(scheme);
        }
        push_host(forwarded, host.map(str::as_bytes));
    };
    for (n, hop) in hops.iter().enumerate() {
        if n > 0 {
            forwarded.push_str(", ");
        }
        let (open, close) = if hop.is_ipv6() {
            ("for=\"[", "]\"")
        } else {
            ("for=", "")
        };
        forwarded.push_str(open);
        crate::client_ip::push_ip(forwarded, *hop);
        forwarded.push_str(close);
        if n == 0 {
            client_params(forwarded);
        }
    }
    if hops.is_empty() {
        client_params(forwarded);
        // An element's first pair has no `;` before it.
        if forwarded[start..].starts_with(';') {
            forwarded.remove(start);
        }
    }
    if forwarded.len() > start {
        forwarded.push_str(", ");
    }
}

/// The first item of a list-valued field (`https, http` gives `https`): what palisade
/// reads of a trusted proxy's `X-Forwarded-Proto` and `X-Forwarded-Host`, as most
/// applications do.
pub fn first_item(value: &str) -> &str {
    value.split(',').next().unwrap_or_default().trim()
}

/// Leaves only the first item of the first `name` field, when a trusted proxy sent several
/// fields or a list: palisade decided on that item ([`first_item`]; `X-Forwarded-Proto`
/// decides whether the request counts as TLS), and an upstream reading another would take
/// the request for something else.
fn keep_first_item(headers: &mut HeaderMap, name: &HeaderName) {
    let mut values = headers.get_all(name).iter();
    let (Some(value), more) = (values.next(), values.next().is_some()) else {
        return;
    };
    let bytes = value.as_bytes();
    // An empty value goes the way of a list without a first item (red-team finding: an
    // empty `X-Forwarded-Host` went upstream, where applications fail host validation).
    if !bytes.contains(&b',') && !bytes.trim_ascii().is_empty() {
        if more {
            let first = value.clone();
            headers.insert(name, first);
        }
        return;
    }
    let first = value.to_str().ok().map(first_item).unwrap_or_default();
    match HeaderValue::from_str(first) {
        Ok(first) if !first.is_empty() => {
            headers.insert(name, first);
        }
        _ => {
            headers.remove(name);
        }
    }
}

/// A trusted proxy's `X-Forwarded-Proto` of `HTTPS` or `Http` goes on in lower case, as
/// palisade read it and as `Forwarded` says it: an application comparing it with `https`
/// as written would take a TLS request for plain HTTP (red-team finding).
fn lower_scheme(headers: &mut HeaderMap) {
    let Some(value) = headers.get(&X_FORWARDED_PROTO) else {
        return;
    };
    let bytes = value.as_bytes().trim_ascii();
    for scheme in ["http", "https"] {
        if bytes.eq_ignore_ascii_case(scheme.as_bytes()) && value.as_bytes() != scheme.as_bytes() {
            headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(scheme));
            return;
        }
    }
}

/// Inserts `value` without copying it again (the header value takes over the string).
fn insert_text(headers: &mut HeaderMap, name: HeaderName, value: String) {
    if let Ok(value) = HeaderValue::from_maybe_shared(Bytes::from(value)) {
        headers.insert(name, value);
    }
}

/// Joins the request's `Cookie` fields into one, separated by `; `. HTTP/2 clients send
/// each cookie in its own field (browsers do, to compress them better), and RFC 9113
/// §8.2.3 requires them joined this way before the request goes on over HTTP/1.1: an
/// application reading only the first field, or joining them with `,` (as CGI-style
/// servers join repeated fields), would see other cookies than the stages judged.
pub fn join_cookies(headers: &mut HeaderMap) {
    let mut values = headers.get_all(header::COOKIE).iter();
    if values.nth(1).is_none() {
        return;
    }
    let parts: Vec<&[u8]> = headers
        .get_all(header::COOKIE)
        .iter()
        .map(|value| value.as_bytes().trim_ascii())
        .filter(|value| !value.is_empty())
        .collect();
    let joined = parts.join(&b"; "[..]);
    // Every part was a valid field value, so their join is one too.
    if let Ok(value) = HeaderValue::from_maybe_shared(Bytes::from(joined)) {
        headers.insert(header::COOKIE, value);
    }
}

/// Headers that tell an application which path to serve instead of the request line's
/// (IIS URL Rewrite, some PHP frameworks). Palisade judged the request line's path (rules,
/// limits, CSRF exemptions, upload rules), so the upstream must not serve another one.
const PATH_OVERRIDES: [&str; 2] = ["x-original-url", "x-rewrite-url"];

/// Headers that tell an application to treat a request as another method.
const METHOD_OVERRIDES: [&str; 3] = [
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// Headers through which a proxy in front tells an application about the client and the
/// URL it used. Only a trusted proxy may write them; from anyone else they are forgeries an
/// application might believe (an allow-list on `X-Real-IP`, links built from
/// `X-Forwarded-Prefix`).
const PROXY_CLAIMS: [&str; 31] = [
    "x-real-ip",
    "true-client-ip",
    "cf-connecting-ip",
    "x-client-ip",
    "x-cluster-client-ip",
    "fastly-client-ip",
    "client-ip",
    "x-originating-ip",
    "x-remote-addr",
    "x-remote-ip",
    "x-proxyuser-ip",
    "x-envoy-external-address",
    "x-forwarded",
    "forwarded-for",
    "x-original-forwarded-for",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-forwarded-server",
    "x-forwarded-scheme",
    "x-forwarded-protocol",
    "x-forwarded-ssl",
    "x-forwarded-uri",
    "x-forwarded-path",
    "x-original-uri",
    "x-original-host",
    "x-original-method",
    "x-host",
    "x-url-scheme",
    "x-scheme",
    "x-arr-ssl",
    "front-end-https",
];

/// The forwarding headers palisade writes itself ([`ForwardingFields`] replaces their
/// `-` spellings). A spelling with `_` for `-` is a forgery: CGI-style servers (PHP-FPM,
/// WSGI, Rack) read `X_Forwarded_For` and `X-Forwarded-For` as the same variable
/// `HTTP_X_FORWARDED_FOR`, and may take the client's instead of palisade's.
const OWN_FORWARDING: [&str; 3] = ["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"];

/// Which list of [`strip_client_claims`] a name is on.
#[derive(Debug, Clone, Copy)]
enum Claim {
    Path,
    Method,
    Proxy,
    OwnForwarding,
}

/// The names [`strip_client_claims`] looks for, by length (in the lists' order): a header
/// name is compared with the few of its own length only, and most names have none.
static CLAIMS_BY_LENGTH: std::sync::LazyLock<Vec<Vec<(&'static str, Claim)>>> =
    std::sync::LazyLock::new(|| {
        let lists: [(&[&'static str], Claim); 4] = [
            (&PATH_OVERRIDES, Claim::Path),
            (&METHOD_OVERRIDES, Claim::Method),
            (&PROXY_CLAIMS, Claim::Proxy),
            (&OWN_FORWARDING, Claim::OwnForwarding),
        ];
        let longest = lists
            .iter()
            .flat_map(|(names, _)| names.iter().map(|name| name.len()))
            .max()
            .unwrap_or(0);
        let mut by_length = vec![Vec::new(); longest + 1];
        for (names, claim) in lists {
            for name in names {
                by_length[name.len()].push((*name, claim));
            }
        }
        by_length
    });

/// Whether the header `name` spells `wanted` (lower case, with `-`), in any case and with
/// `_` for any `-`: the spellings a CGI-style server reads as one variable.
fn spells(name: &str, wanted: &str) -> bool {
    name.len() == wanted.len()
        && name
            .bytes()
            .zip(wanted.bytes())
            .all(|(a, b)| a.to_ascii_lowercase() == b || (a == b'_' && b == b'-'))
}

/// Removes what a client may not tell the upstream: path overrides always, method
/// overrides on safe methods (a GET the CSRF check and method-scoped limits passed must not
/// become a DELETE upstream; the legitimate use, a POST tunnelling PUT or DELETE, is
/// checked as the unsafe POST it is), and proxy claims unless `peer_trusted`. Each is
/// removed in every spelling with `_` for `-` too, as are such spellings of the
/// forwarding headers palisade sets ([`OWN_FORWARDING`]). Returns the names removed, for
/// the log.
pub fn strip_client_claims(
    headers: &mut HeaderMap,
    method: &http::Method,
    peer_trusted: bool,
) -> Vec<&'static str> {
    let safe = matches!(
        *method,
        http::Method::GET | http::Method::HEAD | http::Method::OPTIONS | http::Method::TRACE
    );
    let refused = |name: &str| -> Option<&'static str> {
        let same_length = CLAIMS_BY_LENGTH.get(name.len())?;
        same_length
            .iter()
            .find(|(wanted, claim)| {
                let applies = match claim {
                    Claim::Path => true,
                    Claim::Method => safe,
                    Claim::Proxy => !peer_trusted,
                    Claim::OwnForwarding => name.contains('_'),
                };
                applies && spells(name, wanted)
            })
            .map(|(wanted, _)| *wanted)
    };
    // One pass over the names the request has (a few), comparing lengths first: almost no
    // request carries any of them.
    let forged: Vec<(HeaderName, &'static str)> = headers
        .keys()
        .filter_map(|name| refused(name.as_str()).map(|wanted| (name.clone(), wanted)))
        .collect();
    let mut removed = Vec::with_capacity(forged.len());
    for (name, wanted) in forged {
        headers.remove(&name);
        if !removed.contains(&wanted) {
            removed.push(wanted);
        }
    }
    removed
}

/// Whether a response header only tells attackers what software runs upstream
/// ([`REVEALING`]). Palisade's own HTTP/1.1 exchange leaves such fields out of the answer as
/// it parses it.
pub fn is_revealing(name: &HeaderName) -> bool {
    REVEALING_NAMES.contains(&name.as_str())
}

/// Removes response headers that only tell attackers what software runs upstream. One pass
/// over the names finds those present (usually `Server` alone): removing each name blindly
/// cost a hash and a probe apiece on every answer.
pub fn strip_revealing_response_headers(headers: &mut HeaderMap) {
    let mut present = [false; REVEALING_NAMES.len()];
    for name in headers.keys() {
        if let Some(at) = REVEALING_NAMES.iter().position(|n| *n == name.as_str()) {
            present[at] = true;
        }
    }
    for (name, _) in REVEALING.iter().zip(present).filter(|(_, there)| *there) {
        headers.remove(name);
    }
}

/// Whether a request header carries a credential (`Authorization`, `Cookie`, API keys and
/// tokens), to be sent HPACK-never-indexed on a shared HTTP/2 connection.
pub fn is_credential(name: &HeaderName) -> bool {
    let name = name.as_str();
    matches!(name, "authorization" | "cookie" | "proxy-authorization")
        || name.contains("token")
        || name.contains("api-key")
        || name.contains("apikey")
        || name.contains("secret")
}

/// Whether a response is a gRPC one (`Content-Type: application/grpc`, `+proto`, ...):
/// the only kind whose trailers palisade passes on.
pub fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| crate::grpc::is_grpc_type(v.as_bytes()))
}

/// Keeps of a gRPC response's trailers what no response stage would have removed or set
/// in its head: no cookies, no software names, no security headers (palisade sets those in
/// the head), no connection or framing fields, nothing named `palisade-*` (directives to
/// palisade), nothing named `proxy-*`. `grpc-status`, `grpc-message` and the service's own
/// metadata pass.
pub fn strip_trailer_fields(trailers: &mut HeaderMap) {
    let refused: Vec<HeaderName> = trailers
        .keys()
        .filter(|name| !trailer_allowed(name.as_str()))
        .cloned()
        .collect();
    for name in refused {
        trailers.remove(name);
    }
}

fn trailer_allowed(name: &str) -> bool {
    const REFUSED: [&str; 17] = [
        "set-cookie",
        "set-cookie2",
        "server",
        "x-powered-by",
        "content-length",
        "content-type",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "host",
        "strict-transport-security",
        "x-frame-options",
        "x-content-type-options",
        "referrer-policy",
    ];
    const REFUSED_PREFIXES: [&str; 7] = [
        "palisade-",
        "proxy-",
        "x-aspnet",
        "content-security-policy",
        "permissions-policy",
        "cross-origin-",
        "ratelimit",
    ];
    !REFUSED.contains(&name) && !REFUSED_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// Response headers naming the software upstream.
const REVEALING: [HeaderName; 4] = [
    header::SERVER,
    HeaderName::from_static("x-powered-by"),
    HeaderName::from_static("x-aspnet-version"),
    HeaderName::from_static("x-aspnetmvc-version"),
];

/// [`REVEALING`] as text, in the same order (see [`HOP_BY_HOP_NAMES`]).
const REVEALING_NAMES: [&str; 4] = [
    "server",
    "x-powered-by",
    "x-aspnet-version",
    "x-aspnetmvc-version",
];

#[cfg(test)]
mod tests;
