//! The answer's head: parsed where it lies, and how its body is framed (RFC 9112 §6.3).

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

/// Parses an answer head at the start of `buf`, taking it off `buf` when complete.
pub(super) fn parse_head(
    buf: &mut BytesMut,
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
    for &(name_start, name_end, value_start, value_end) in &spans[..count] {
        let name = HeaderName::from_bytes(&head[name_start as usize..name_end as usize])
            .map_err(|_| ExchangeError::Head("invalid field name".into()))?;
        let value =
            HeaderValue::from_maybe_shared(head.slice(value_start as usize..value_end as usize))
                .map_err(|_| ExchangeError::Head("invalid field value".into()))?;
        headers.append(name, value);
    }
    let (framing, reuse) = framing(&mut headers, version, status, method)?;
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

/// The body's framing (RFC 9112 §6.3) and whether the connection may carry another request.
fn framing(
    headers: &mut HeaderMap,
    version: Version,
    status: StatusCode,
    method: &Method,
) -> Result<(Framing, Reuse), ExchangeError> {
    let mut keep_alive = if version == Version::HTTP_11 {
        !has_token(headers, CONNECTION, "close")
    } else {
        has_token(headers, CONNECTION, "keep-alive")
    };
    if status == StatusCode::SWITCHING_PROTOCOLS {
        keep_alive = false;
    }
    let chunked = headers.contains_key(TRANSFER_ENCODING);
    if chunked {
        // Only chunked is decoded here: passing a body still under another transfer coding
        // on would hand the client bytes nothing tells it how to read.
        if !only_chunked(headers) {
            return Err(ExchangeError::Head(
                "a transfer coding other than a single chunked".into(),
            ));
        }
        // RFC 9112 §6.1: the length is the decoded one; a Content-Length beside it, or
        // Transfer-Encoding in an HTTP/1.0 answer, means the framing cannot be trusted for
        // another request on the connection.
        if headers.remove(CONTENT_LENGTH).is_some() || version == Version::HTTP_10 {
            keep_alive = false;
        }
    }
    let length = if chunked {
        None
    } else {
        content_length(headers)?
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
        let announced = chunked || length.is_some_and(|n| n > 0);
        let careful = reuse == Reuse::Now && (announced || method == Method::HEAD);
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

/// Whether the transfer codings, across every `Transfer-Encoding` field, are exactly one
/// `chunked` (empty list elements aside).
fn only_chunked(headers: &HeaderMap) -> bool {
    let mut codings = headers
        .get_all(TRANSFER_ENCODING)
        .iter()
        .flat_map(|value| value.as_bytes().split(|&byte| byte == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|coding| !coding.is_empty());
    let first = codings.next();
    first.is_some_and(|coding| coding.eq_ignore_ascii_case(b"chunked")) && codings.next().is_none()
}

/// The answer's `Content-Length`, when it has one: every value (fields and list items)
/// must be the same decimal number, which is then left as the only value, as the client
/// must read it (hyper's server writes no other form: `3, 3` would end the client's
/// connection with nothing sent).
pub(in crate::upstream_pool) fn content_length(
    headers: &mut HeaderMap,
) -> Result<Option<u64>, ExchangeError> {
    let mut length = None;
    let mut items = 0;
    for value in headers.get_all(CONTENT_LENGTH) {
        for item in value.as_bytes().split(|&byte| byte == b',') {
            let item = item.trim_ascii();
            let valid = !item.is_empty() && item.len() <= 19 && item.iter().all(u8::is_ascii_digit);
            let parsed = std::str::from_utf8(item)
                .ok()
                .and_then(|text| text.parse::<u64>().ok());
            items += 1;
            match (valid, parsed, length) {
                (true, Some(n), None) => length = Some(n),
                (true, Some(n), Some(seen)) if n == seen => {}
                _ => {
                    return Err(ExchangeError::Head(
                        "invalid or conflicting Content-Length".into(),
                    ));
                }
            }
        }
    }
    if let (Some(n), true) = (length, items > 1) {
        headers.insert(CONTENT_LENGTH, HeaderValue::from(n));
    }
    Ok(length)
}

/// Whether a comma-separated field holds `token` (case-insensitive).
fn has_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|item| item.trim().eq_ignore_ascii_case(token))
}
