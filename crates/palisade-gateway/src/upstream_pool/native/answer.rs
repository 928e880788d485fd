//! The answer's head: parsed where it lies, and how its body is framed (RFC 9112 §6.3).

use http::header::{PROXY_AUTHORIZATION, TE, TRAILER, UPGRADE};

use super::*;

/// How an answer's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    Empty,
    Length(u64),
    Chunked,
    UntilClose,
}

pub(super) enum Parsed {
    /// A 1xx answer other than 101, skipped.
    Interim,
    /// The answer's head, how its body is framed, and whether the connection may be reused.
    Final(Response<()>, Framing, Reuse),
}

/// The field names of a connection's last answers, as sent and as parsed, by position: an
/// upstream sends the same names in the same order answer after answer, and comparing a
/// name's bytes with the last answer's costs less than parsing it again (about 400 of a
/// request's 33 000 instructions).
#[derive(Debug, Default)]
pub(super) struct FieldNames(Vec<(Box<[u8]>, HeaderName)>);

impl FieldNames {
    /// The most positions remembered.
    const MAX: usize = 32;
    /// The longest name remembered: an upstream's long names are parsed each time rather
    /// than kept (up to 32 heads' worth of them) for the connection's life.
    const MAX_NAME: usize = 64;

    /// The name sent as `raw` at `position` in the head.
    fn name(&mut self, position: usize, raw: &[u8]) -> Result<HeaderName, ExchangeError> {
        if let Some((seen, name)) = self.0.get(position)
            && **seen == *raw
        {
            return Ok(name.clone());
        }
        let name = HeaderName::from_bytes(raw)
            .map_err(|_| ExchangeError::Head("invalid field name".into()))?;
        if raw.len() > Self::MAX_NAME {
            return Ok(name);
        }
        let entry = (Box::from(raw), name.clone());
        if let Some(slot) = self.0.get_mut(position) {
            *slot = entry;
        } else if position == self.0.len() && position < Self::MAX {
            self.0.push(entry);
        }
        Ok(name)
    }
}

/// Parses an answer head at the start of `buf`, taking it off `buf` when complete.
pub(super) fn parse_head(
    buf: &mut BytesMut,
    names: &mut FieldNames,
    method: &Method,
) -> Result<Option<Parsed>, ExchangeError> {
    // Left uninitialised: httparse writes only the fields it finds.
    let mut fields = [const { std::mem::MaybeUninit::uninit() }; MAX_FIELDS];
    let mut parsed = httparse::Response::new(&mut []);
    let config = httparse::ParserConfig::default();
    let length = match config.parse_response_with_uninit_headers(&mut parsed, buf, &mut fields) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(ExchangeError::Head(format!(
                "more than {MAX_FIELDS} fields"
            )));
        }
        Err(_) if !starts_as_http(buf) => return Err(ExchangeError::NotHttp),
        Err(err) => return Err(ExchangeError::Head(err.to_string())),
    };
    let code = parsed.code.unwrap_or(0);
    if (100..200).contains(&code) && code != 101 {
        buf.advance(length);
        return Ok(Some(Parsed::Interim));
    }
    let status = StatusCode::from_u16(code)
        .map_err(|_| ExchangeError::Head(format!("invalid status code {code}")))?;
    // The upstream's own reason phrase, where it is not the usual one.
    let reason = parsed.reason.unwrap_or("");
    let reason = (status.canonical_reason() != Some(reason))
        .then(|| hyper::ext::ReasonPhrase::try_from(reason.as_bytes()).ok())
        .flatten();
    let version = if parsed.version == Some(0) {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    // Where each field lies in the head, so the values can share the buffer.
    let base = buf.as_ptr() as usize;
    let mut spans = [(0u32, 0u32, 0u32, 0u32); MAX_FIELDS];
    let count = parsed.headers.len();
    for (span, field) in spans.iter_mut().zip(parsed.headers.iter()) {
        let name = field.name.as_ptr() as usize - base;
        let value = field.value.as_ptr() as usize - base;
        *span = (
            name as u32,
            (name + field.name.len()) as u32,
            value as u32,
            (value + field.value.len()) as u32,
        );
    }
    let head = buf.split_to(length).freeze();
    // Room for the fields palisade adds to an answer (the security headers, `RateLimit-*`),
    // so the map is allocated once rather than grown and rehashed on the way out.
    let mut headers = HeaderMap::with_capacity(count + ADDED_FIELDS);
    // The framing fields are read as the fields go into the map, and the hop-by-hop ones,
    // which the gateway would strip at once, are left out of it (all but a 101's, whose
    // `Connection` and `Upgrade` the tunnel passes on), as are those that reveal the
    // upstream's software (`Server`, ...), which it strips from every answer.
    let switching = status == StatusCode::SWITCHING_PROTOCOLS;
    let mut seen = Seen::default();
    for (position, &(name_start, name_end, value_start, value_end)) in
        spans[..count].iter().enumerate()
    {
        let name = names.name(position, &head[name_start as usize..name_end as usize])?;
        let bytes = &head[value_start as usize..value_end as usize];
        let framing_field = if name == CONNECTION {
            seen.connection(bytes)
        } else if name == TRANSFER_ENCODING {
            seen.transfer_coding(bytes);
            true
        } else {
            if name == CONTENT_LENGTH {
                seen.content_length(bytes);
            }
            false
        };
        let revealing = crate::forwarding::is_revealing(&name);
        if revealing || (!switching && (framing_field || left_out(&name))) {
            continue;
        }
        let value =
            HeaderValue::from_maybe_shared(head.slice(value_start as usize..value_end as usize))
                .map_err(|_| ExchangeError::Head("invalid field value".into()))?;
        headers.append(name, value);
    }
    let (framing, reuse) = framing(&mut headers, &seen, version, status, method)?;
    let mut response = Response::new(());
    *response.status_mut() = status;
    *response.version_mut() = version;
    if let Some(reason) = reason {
        response.extensions_mut().insert(reason);
    }
    *response.headers_mut() = headers;
    Ok(Some(Parsed::Final(response, framing, reuse)))
}

/// About how many fields palisade's response stages add to an answer.
const ADDED_FIELDS: usize = 16;

/// Whether `bytes` begin as an HTTP/1.x status line does (as far as they go).
fn starts_as_http(bytes: &[u8]) -> bool {
    let prefix = b"HTTP/1.";
    let n = bytes.len().min(prefix.len());
    bytes[..n] == prefix[..n]
}

/// What the framing fields of an answer say, read as its fields are parsed.
#[derive(Debug, Default)]
struct Seen {
    /// `Connection` names `close`.
    close: bool,
    /// `Connection` names `keep-alive`.
    keep_alive: bool,
    /// A `Transfer-Encoding` field is present.
    transfer_encoding: bool,
    /// The transfer codings, across every field, are exactly one `chunked`.
    only_chunked: bool,
    /// Non-empty transfer codings seen.
    codings: usize,
    /// Every `Content-Length` value (fields and list items) agrees on this length.
    length: Option<u64>,
    /// `Content-Length` list items seen.
    length_items: usize,
    /// A `Content-Length` item was not a number, or numbers differed.
    bad_length: bool,
}

impl Seen {
    /// Reads a `Connection` field; `true` when it names nothing but `close` and
    /// `keep-alive`, which the framing has then taken in whole.
    fn connection(&mut self, value: &[u8]) -> bool {
        let mut only_framing = true;
        for option in value.split(|&byte| byte == b',').map(<[u8]>::trim_ascii) {
            if option.eq_ignore_ascii_case(b"close") {
                self.close = true;
            } else if option.eq_ignore_ascii_case(b"keep-alive") {
                self.keep_alive = true;
            } else if !option.is_empty() {
                // It names another field, which the gateway's hop-by-hop pass removes by
                // reading this one: it goes into the map.
                only_framing = false;
            }
        }
        only_framing
    }

    fn transfer_coding(&mut self, value: &[u8]) {
        self.transfer_encoding = true;
        for coding in value.split(|&byte| byte == b',').map(<[u8]>::trim_ascii) {
            if coding.is_empty() {
                continue;
            }
            self.codings += 1;
            self.only_chunked = self.codings == 1 && coding.eq_ignore_ascii_case(b"chunked");
        }
    }

    fn content_length(&mut self, value: &[u8]) {
        for item in value.split(|&byte| byte == b',') {
            self.length_items += 1;
            match (parse_length(item.trim_ascii()), self.length) {
                (Some(n), None) => self.length = Some(n),
                (Some(n), Some(seen)) if n == seen => {}
                _ => self.bad_length = true,
            }
        }
    }

    /// The length every `Content-Length` value agrees on, left in `headers` as one value
    /// (as the client must read it); an error when they disagree or one is not a number.
    fn length_of(&self, headers: &mut HeaderMap) -> Result<Option<u64>, ExchangeError> {
        if self.bad_length {
            return Err(ExchangeError::Head(
                "invalid or conflicting Content-Length".into(),
            ));
        }
        if self.length_items > 1
            && let Some(n) = self.length
        {
            headers.insert(CONTENT_LENGTH, HeaderValue::from(n));
        }
        Ok(self.length)
    }
}

/// A `Content-Length` item: 1 to 19 digits.
fn parse_length(item: &[u8]) -> Option<u64> {
    if item.is_empty() || item.len() > 19 || !item.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        item.iter()
            .fold(0u64, |n, &digit| n * 10 + u64::from(digit - b'0')),
    )
}

/// The hop-by-hop fields of an answer other than its framing fields (RFC 9110 §7.6.1), left
/// out of the answer's map: the gateway would strip them from it at once. So is a field
/// named `close` (a name RFC 9110 §16.3.2.1 reserves): `Connection: close`, taken in by the
/// framing, names it.
fn left_out(name: &HeaderName) -> bool {
    *name == TE
        || *name == TRAILER
        || *name == UPGRADE
        || *name == PROXY_AUTHORIZATION
        || matches!(name.as_str(), "keep-alive" | "proxy-connection" | "close")
}

/// The body's framing (RFC 9112 §6.3) and whether the connection may carry another request.
fn framing(
    headers: &mut HeaderMap,
    seen: &Seen,
    version: Version,
    status: StatusCode,
    method: &Method,
) -> Result<(Framing, Reuse), ExchangeError> {
    // `close` wins over `keep-alive` (RFC 9112 §9.3), in an HTTP/1.0 answer too.
    let mut keep_alive = !seen.close && (version == Version::HTTP_11 || seen.keep_alive);
    if status == StatusCode::SWITCHING_PROTOCOLS {
        keep_alive = false;
    }
    let chunked = seen.transfer_encoding;
    if chunked {
        // Only chunked is decoded here: passing a body still under another transfer coding
        // on would hand the client bytes nothing tells it how to read.
        if !seen.only_chunked {
            return Err(ExchangeError::Head(
                "a transfer coding other than a single chunked".into(),
            ));
        }
        // RFC 9112 §6.1: the length is the decoded one; a Content-Length beside it, or
        // Transfer-Encoding in an HTTP/1.0 answer, means the framing cannot be trusted for
        // another request on the connection.
        if seen.length_items > 0 {
            headers.remove(CONTENT_LENGTH);
            keep_alive = false;
        }
        if version == Version::HTTP_10 {
            keep_alive = false;
        }
    }
    let length = if chunked {
        None
    } else {
        seen.length_of(headers)?
    };
    let bodiless = method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let reuse = if keep_alive { Reuse::Now } else { Reuse::No };
    if bodiless {
        // Should the upstream send a body anyway (the one it announced, or a careless
        // one), it would be read as the answer to the connection's next request, someone
        // else's: the connection waits a little first, and is dropped if anything came.
        // That holds for a 204 or 304 that announces nothing too: an application may
        // still write a body after one.
        let careful = reuse == Reuse::Now;
        return Ok((
            Framing::Empty,
            if careful { Reuse::AfterGrace } else { reuse },
        ));
    }
    match (chunked, length) {
        (true, _) => Ok((Framing::Chunked, reuse)),
        (false, Some(0)) => Ok((Framing::Empty, reuse)),
        (false, Some(n)) => Ok((Framing::Length(n), reuse)),
        (false, None) => Ok((Framing::UntilClose, Reuse::No)),
    }
}

/// The answer's `Content-Length`, when it has one: every value (fields and list items)
/// must be the same decimal number, which is then left as the only value, as the client
/// must read it (hyper's server writes no other form: `3, 3` would end the client's
/// connection with nothing sent).
pub(in crate::upstream_pool) fn content_length(
    headers: &mut HeaderMap,
) -> Result<Option<u64>, ExchangeError> {
    let mut seen = Seen::default();
    for value in headers.get_all(CONTENT_LENGTH) {
        seen.content_length(value.as_bytes());
    }
    seen.length_of(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> (Response<()>, Framing, Reuse) {
        let mut buf = BytesMut::from(text);
        match parse_head(&mut buf, &mut FieldNames::default(), &Method::GET) {
            Ok(Some(Parsed::Final(head, framing, reuse))) => (head, framing, reuse),
            _ => panic!("a final answer: {text:?}"),
        }
    }

    /// A connection's answers share one [`FieldNames`]: each answer's fields come out as
    /// sent, whatever the last answer had at their positions (a name too long to remember
    /// included). A name with a byte no field name may hold is refused by the head's parser
    /// before it reaches [`FieldNames`], where a good one stood before.
    #[test]
    fn field_names_remembered_by_position_follow_each_answer() {
        let mut names = FieldNames::default();
        let mut fields = |text: &str| {
            let mut buf = BytesMut::from(text);
            match parse_head(&mut buf, &mut names, &Method::GET) {
                Ok(Some(Parsed::Final(head, ..))) => Ok(head
                    .headers()
                    .iter()
                    .map(|(name, value)| format!("{name}={}", value.to_str().unwrap_or("?")))
                    .collect::<Vec<_>>()),
                Ok(_) => panic!("a final answer: {text:?}"),
                Err(err) => Err(err.to_string()),
            }
        };
        let head = |rest: &str| format!("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n{rest}\r\n");
        assert_eq!(
            fields(&head("X-App: 1\r\n")),
            Ok(vec!["content-length=0".into(), "x-app=1".into()])
        );
        assert_eq!(
            fields(&head("X-App: 2\r\n")),
            Ok(vec!["content-length=0".into(), "x-app=2".into()])
        );
        assert_eq!(
            fields(&head("X-Other: 3\r\nx-app: 4\r\n")),
            Ok(vec![
                "content-length=0".into(),
                "x-other=3".into(),
                "x-app=4".into()
            ])
        );
        assert!(fields(&head("X-Oth\x01r: 5\r\n")).is_err());
        assert!(fields(&head("X-App: 6\r\nX-Other: 7\r\n")).is_ok());
        let long = format!("x-{}", "n".repeat(100));
        for _ in 0..2 {
            assert_eq!(
                fields(&head(&format!("{long}: 9\r\n"))),
                Ok(vec!["content-length=0".into(), format!("{long}=9")])
            );
        }
        assert_eq!(
            fields(&head("X-App: 8\r\n")),
            Ok(vec!["content-length=0".into(), "x-app=8".into()])
        );
    }

    #[test]
    fn hop_by_hop_fields_are_read_for_framing_and_left_out_of_the_answer() {
        let (head, framing, reuse) = parsed(
            "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\
             Transfer-Encoding: chunked\r\nTrailer: x-sum\r\nUpgrade: h2c\r\nX-App: 1\r\n\
             Close: 1\r\nServer: nginx/1.22.1\r\nX-Powered-By: PHP/8\r\n\r\n",
        );
        assert_eq!((framing, reuse), (Framing::Chunked, Reuse::Now));
        let names: Vec<&str> = head.headers().keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["x-app"]);

        // A `Connection` naming another field stays, so that the gateway's hop-by-hop pass
        // can remove the field it names.
        let (head, framing, reuse) = parsed(
            "HTTP/1.1 200 OK\r\nConnection: close, x-internal\r\nX-Internal: 1\r\n\
             Content-Length: 2, 2\r\n\r\n",
        );
        assert_eq!((framing, reuse), (Framing::Length(2), Reuse::No));
        assert_eq!(head.headers()[CONNECTION], "close, x-internal");
        assert_eq!(
            head.headers()[CONTENT_LENGTH],
            "2",
            "agreeing values made one"
        );

        // `close` wins over `keep-alive`, in HTTP/1.0 as in 1.1 (RFC 9112 §9.3).
        let (_, _, reuse) =
            parsed("HTTP/1.0 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive, close\r\n\r\n");
        assert_eq!(reuse, Reuse::No);
        let (_, _, reuse) =
            parsed("HTTP/1.0 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\n");
        assert_eq!(reuse, Reuse::Now);

        // A 101 keeps `Connection` and `Upgrade` for the tunnel.
        let (head, _, reuse) = parsed(
            "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
        );
        assert_eq!(reuse, Reuse::No);
        assert_eq!(head.headers()[UPGRADE], "websocket");
        assert_eq!(head.headers()[CONNECTION], "upgrade");
    }

    #[test]
    fn framing_fields_that_cannot_be_trusted_are_refused() {
        for text in [
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            let mut buf = BytesMut::from(text);
            assert!(
                parse_head(&mut buf, &mut FieldNames::default(), &Method::GET).is_err(),
                "{text:?}"
            );
        }
        // A length beside chunked is dropped, and the connection with it.
        let (head, framing, reuse) =
            parsed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: x\r\n\r\n");
        assert_eq!((framing, reuse), (Framing::Chunked, Reuse::No));
        assert!(head.headers().get(CONTENT_LENGTH).is_none());
    }
}
