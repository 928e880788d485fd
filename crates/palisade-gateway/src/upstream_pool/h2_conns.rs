//! HTTP/2 connections to the upstream, with `[upstream] protocol = "http2"`: h2c with prior
//! knowledge, or ALPN `h2` over TLS. Requests are streams on shared connections, each
//! carrying at most [`H2_STREAMS_PER_CONNECTION`] at once; a worker opens another when all
//! of its connections are that busy, so clients that hold their streams (slow bodies,
//! unread answers) take connections of their own rather than the stream slots and
//! flow-control window everyone else needs. Requests with very large headers share a set
//! of connections of their own: an upstream that refuses such a header block ends the whole
//! connection, and only other such requests are on it.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use http::{Request, Response};
use http_body::Body;
use hyper::body::Incoming;
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::time::Instant;

use super::{Lease, PoolError, UpstreamPool};
use crate::body::RequestBody;

/// Per-stream receive window of an HTTP/2 upstream connection: how much of one response
/// may wait in palisade for a client that reads slowly.
const H2_STREAM_WINDOW: u32 = 256 * 1024;
/// Requests one HTTP/2 connection carries at once; more open another connection. Below the
/// 100 concurrent streams most servers allow, so the upstream's own limit is rarely what
/// queues a request.
pub const H2_STREAMS_PER_CONNECTION: usize = 32;
/// Receive window of a whole HTTP/2 connection: twice what its streams can hold, so
/// responses that clients never read cannot starve the others on it.
const H2_CONNECTION_WINDOW: u32 = 2 * H2_STREAMS_PER_CONNECTION as u32 * H2_STREAM_WINDOW;
/// Encoded header bytes (see [`encoded_len`]) above which a request is sent apart from the
/// others, or one field (the path included) above [`H2_LARGE_FIELD`]: servers refuse large
/// header blocks by ending the connection (HPACK state is the connection's), which would cut
/// off every other request on it. nginx's limit is 8 KB for one encoded field.
const H2_LARGE_HEADERS: usize = 8 * 1024;
const H2_LARGE_FIELD: usize = 4 * 1024;

/// An HTTP/2 connection of one worker: when it was last used and how many requests it
/// carries now.
struct Shared {
    id: u64,
    sender: http2::SendRequest<RequestBody>,
    since: Instant,
    streams: Arc<AtomicUsize>,
    /// Whether the connection has ever brought an answer back: until it has, a protocol
    /// failure on it says the upstream may not speak HTTP/2 at all.
    answered: Arc<AtomicBool>,
}

/// A place on an HTTP/2 connection, taken for one request.
struct Picked {
    id: u64,
    sender: http2::SendRequest<RequestBody>,
    slot: StreamSlot,
    answered: Arc<AtomicBool>,
    /// Whether the connection was already open (not opened for this request).
    reused: bool,
}

/// One request's place on an HTTP/2 connection, given back when dropped (with the response
/// body, or when the exchange fails).
pub(super) struct StreamSlot(Arc<AtomicUsize>);

impl StreamSlot {
    fn take(streams: &Arc<AtomicUsize>) -> Self {
        streams.fetch_add(1, Ordering::Relaxed);
        Self(Arc::clone(streams))
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A set of HTTP/2 connections requests share.
#[derive(Default)]
pub(super) struct H2Set {
    conns: Mutex<Vec<Shared>>,
    /// Held while a new connection is opened: requests arriving meanwhile wait for it
    /// instead of each opening one of their own (64 at once after every `GOAWAY`).
    opening: tokio::sync::Mutex<()>,
    /// When the last attempt to open a connection failed, and why: the requests that waited
    /// for it fail with it rather than each trying (and timing out) in turn.
    last_failure: Mutex<Option<(Instant, Arc<PoolError>)>>,
}

impl UpstreamPool {
    /// Sends `request` as a new stream on an HTTP/2 connection with room for it, opening one
    /// when none has. A request the upstream never saw (the connection was closing) is sent
    /// again once, on another connection. Requests with large headers use connections apart
    /// from the others' (see [`H2_LARGE_HEADERS`]).
    pub(super) async fn send_h2(
        self: &Arc<Self>,
        mut request: Request<RequestBody>,
    ) -> Result<(Response<Incoming>, Lease), PoolError> {
        let set = &self.h2[usize::from(large_headers(&request))];
        let mut retried = false;
        // An idempotent request without a body can be sent again when the upstream says it
        // never processed it (a graceful `GOAWAY` naming an earlier last stream,
        // `REFUSED_STREAM`): keep its head for that.
        let mut again = (request.body().is_end_stream() && request.method().is_idempotent())
            .then(|| head_of(&request));
        loop {
            let picked = match self.shared_h2(set) {
                Some(picked) => picked,
                None => self.open_h2(set).await?,
            };
            let Picked {
                id,
                mut sender,
                slot,
                answered,
                reused,
            } = picked;
            let may_retry = reused && !retried;
            // On a connection that never answered, a refusal of HTTP/2 itself says what to
            // change.
            let failed = |err: hyper::Error| {
                if !answered.load(Ordering::Relaxed) && answered_without_http2(&err) {
                    PoolError::NotHttp2(err)
                } else {
                    PoolError::Send(err)
                }
            };
            if let Err(err) = sender.ready().await {
                self.forget_h2(set, id);
                if may_retry {
                    retried = true;
                    continue;
                }
                return Err(failed(err));
            }
            match sender.try_send_request(request).await {
                Ok(response) => {
                    answered.store(true, Ordering::Relaxed);
                    let lease = Lease {
                        sender: None,
                        _slot: Some(slot),
                        pool: Arc::clone(self),
                    };
                    return Ok((response, lease));
                }
                Err(mut err) => match err.take_message() {
                    Some(unsent) if may_retry => {
                        self.forget_h2(set, id);
                        retried = true;
                        request = unsent;
                    }
                    None if !retried && unprocessed(err.error()) && again.is_some() => {
                        // A refused stream leaves its connection usable; a `GOAWAY` does not.
                        if going_away(err.error()) {
                            self.forget_h2(set, id);
                        }
                        retried = true;
                        request = again.take().map(rebuild).expect("checked");
                    }
                    _ => return Err(failed(err.into_error())),
                },
            }
        }
    }

    /// An HTTP/2 connection with room for one more request once some request has opened
    /// it: this one (`false`), or one a request already opening it made (`true`, as for a
    /// connection found open).
    async fn open_h2(self: &Arc<Self>, set: &H2Set) -> Result<Picked, PoolError> {
        let asked = Instant::now();
        let _opening = set.opening.lock().await;
        if let Some(picked) = self.shared_h2(set) {
            return Ok(picked);
        }
        if let Some(err) = failed_since(set, asked) {
            return Err(PoolError::Shared(err));
        }
        match self.connect_h2().await {
            Ok(sender) => {
                let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                let streams = Arc::new(AtomicUsize::new(0));
                let answered = Arc::new(AtomicBool::new(false));
                let slot = StreamSlot::take(&streams);
                let mut shared = set.conns.lock().unwrap_or_else(PoisonError::into_inner);
                shared.push(Shared {
                    id,
                    sender: sender.clone(),
                    since: Instant::now(),
                    streams,
                    answered: Arc::clone(&answered),
                });
                Ok(Picked {
                    id,
                    sender,
                    slot,
                    answered,
                    reused: false,
                })
            }
            Err(err) => {
                let err = Arc::new(err);
                *set.last_failure
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) =
                    Some((Instant::now(), Arc::clone(&err)));
                Err(PoolError::Shared(err))
            }
        }
    }

    /// An open HTTP/2 connection with fewer than [`H2_STREAMS_PER_CONNECTION`] requests on
    /// it, and a place on it taken; closed connections, and idle ones unused for
    /// `pool_idle_timeout`, are dropped on the way.
    fn shared_h2(&self, set: &H2Set) -> Option<Picked> {
        let now = Instant::now();
        let mut shared = set.conns.lock().unwrap_or_else(PoisonError::into_inner);
        shared.retain(|entry| self.h2_usable(entry, now));
        let entry = shared
            .iter_mut()
            .find(|entry| entry.streams.load(Ordering::Relaxed) < H2_STREAMS_PER_CONNECTION)?;
        entry.since = now;
        Some(Picked {
            id: entry.id,
            sender: entry.sender.clone(),
            slot: StreamSlot::take(&entry.streams),
            answered: Arc::clone(&entry.answered),
            reused: true,
        })
    }

    /// Whether an HTTP/2 connection is open, and busy or used within `pool_idle_timeout`.
    fn h2_usable(&self, entry: &Shared, now: Instant) -> bool {
        let busy = entry.streams.load(Ordering::Relaxed) > 0;
        !entry.sender.is_closed() && (busy || now.duration_since(entry.since) < self.idle_timeout)
    }

    /// Drops the closed and expired connections of every set.
    pub(super) fn sweep_h2(&self, now: Instant) {
        for set in &self.h2 {
            let mut shared = set.conns.lock().unwrap_or_else(PoisonError::into_inner);
            shared.retain(|entry| self.h2_usable(entry, now));
        }
    }

    /// Drops connection `id` after it failed a request: the next request opens a new one.
    fn forget_h2(&self, set: &H2Set, id: u64) {
        let mut shared = set.conns.lock().unwrap_or_else(PoisonError::into_inner);
        shared.retain(|entry| entry.id != id);
    }

    /// A new HTTP/2 connection, driven by its own task on this worker's runtime.
    async fn connect_h2(self: &Arc<Self>) -> Result<http2::SendRequest<RequestBody>, PoolError> {
        let (stream, deadline) = self.open_tcp().await?;
        let sender = match &self.tls {
            None => http2_handshake(TokioIo::new(stream)).await?,
            Some(tls) => {
                let stream = match tokio::time::timeout_at(deadline, tls.handshake_h2(stream)).await
                {
                    Err(_) => return Err(PoolError::TlsTimeout),
                    Ok(Err(why)) => return Err(PoolError::Tls(why)),
                    Ok(Ok(stream)) => stream,
                };
                http2_handshake(TokioIo::new(stream)).await?
            }
        };
        Ok(sender)
    }
}

/// What it takes to send a bodiless request again.
type Head = (http::Method, http::Uri, http::Version, http::HeaderMap);

fn head_of(request: &Request<RequestBody>) -> Head {
    (
        request.method().clone(),
        request.uri().clone(),
        request.version(),
        request.headers().clone(),
    )
}

fn rebuild((method, uri, version, headers): Head) -> Request<RequestBody> {
    let mut request = Request::new(RequestBody::empty());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = version;
    *request.headers_mut() = headers;
    request
}

/// Whether the upstream said it did not process the request sent (RFC 9113 §8.7): its stream
/// was above the last one a graceful `GOAWAY` (`NO_ERROR`) named, or was refused
/// (`REFUSED_STREAM`). A `GOAWAY` with an error code also ends streams it may have processed.
fn unprocessed(err: &hyper::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(err);
    while let Some(inner) = cause {
        if let Some(h2) = inner.downcast_ref::<h2::Error>() {
            let reason = h2.reason();
            return h2.is_remote()
                && ((h2.is_go_away() && reason == Some(h2::Reason::NO_ERROR))
                    || reason == Some(h2::Reason::REFUSED_STREAM));
        }
        cause = inner.source();
    }
    false
}

/// The error of an attempt to open an HTTP/2 connection that failed after `since`.
fn failed_since(set: &H2Set, since: Instant) -> Option<Arc<PoolError>> {
    let failed = set
        .last_failure
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    failed
        .as_ref()
        .filter(|(at, _)| *at >= since)
        .map(|(_, err)| Arc::clone(err))
}

/// Whether `err` comes from a `GOAWAY` the upstream sent: the connection is ending.
fn going_away(err: &hyper::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(err);
    while let Some(inner) = cause {
        if let Some(h2) = inner.downcast_ref::<h2::Error>() {
            return h2.is_go_away();
        }
        cause = inner.source();
    }
    false
}

/// Whether a request's header block (its fields, and the `:path` and `:authority` it is
/// sent with) may be large enough, once encoded, to risk its connection.
fn large_headers(request: &Request<RequestBody>) -> bool {
    let uri = request.uri();
    let pseudo = [
        uri.path_and_query()
            .map_or(&b""[..], |p| p.as_str().as_bytes()),
        uri.authority().map_or(&b""[..], |a| a.as_str().as_bytes()),
    ];
    let mut total = 0;
    let fields = request
        .headers()
        .iter()
        .map(|(name, value)| encoded_len(name.as_str().as_bytes()) + encoded_len(value.as_bytes()));
    for field in pseudo.iter().map(|p| encoded_len(p)).chain(fields) {
        total += field;
        if field > H2_LARGE_FIELD || total > H2_LARGE_HEADERS {
            return true;
        }
    }
    false
}

/// An upper bound on the bytes `text` takes once HPACK-Huffman-encoded, as the HTTP/2 client
/// always encodes it: a byte whose code is at most 8 bits (letters, digits, `-._/:=%&*,;`
/// and space: RFC 7541 Appendix B) counts 1, any other 4 (codes run to 30 bits: `\` is
/// 19, bytes above 127 are 20 to 30), so a 3.9 KB value of backslashes counts as 15.6 KB,
/// not 3.9.
fn encoded_len(text: &[u8]) -> usize {
    text.iter()
        .map(|&b| {
            let short = b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b' ' | b'-'
                        | b'.'
                        | b'_'
                        | b'/'
                        | b':'
                        | b'='
                        | b'%'
                        | b'&'
                        | b'*'
                        | b','
                        | b';'
                );
            if short { 1 } else { 4 }
        })
        .sum()
}

/// Whether `err` is the HTTP/2 client giving up on a connection whose peer sent bytes that
/// are no HTTP/2 frames (`HTTP/1.1 400 ...` read as a frame header has an impossible size).
fn answered_without_http2(err: &hyper::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(err);
    while let Some(inner) = cause {
        if let Some(h2) = inner.downcast_ref::<h2::Error>() {
            return h2.is_go_away()
                && h2.is_library()
                && matches!(
                    h2.reason(),
                    Some(h2::Reason::FRAME_SIZE_ERROR | h2::Reason::PROTOCOL_ERROR)
                );
        }
        cause = inner.source();
    }
    false
}

/// The HTTP/2 connection over `io`, driven by its own task. Its receive windows bound what
/// a slow client's responses can hold in palisade's memory.
async fn http2_handshake<T>(io: T) -> Result<http2::SendRequest<RequestBody>, PoolError>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (sender, connection) = http2::Builder::new(TokioExecutor::new())
        .initial_stream_window_size(H2_STREAM_WINDOW)
        .initial_connection_window_size(H2_CONNECTION_WINDOW)
        .handshake(io)
        .await
        .map_err(PoolError::Handshake)?;
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::debug!(error = %err, "upstream HTTP/2 connection ended with an error");
        }
    });
    Ok(sender)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::UpstreamProtocol;
    use crate::upstream_pool::tests::{counted_upstream, exchange};
    use crate::upstream_tls::UpstreamTls;
    use bytes::Bytes;
    use http_body_util::BodyExt;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// An HTTP/2 upstream that ends every connection after its first answer with a GOAWAY
    /// (as a server shutting down or recycling connections does). Returns its address and
    /// the count of connections it accepted.
    async fn h2_upstream_recycling_connections() -> (String, Arc<AtomicUsize>) {
        use hyper::server::conn::http2 as server;
        counted_upstream(|socket, _| async move {
            let answered = Arc::new(tokio::sync::Notify::new());
            let notify = Arc::clone(&answered);
            let service = hyper::service::service_fn(move |_req| {
                notify.notify_one();
                async { Ok::<_, std::convert::Infallible>(ok()) }
            });
            let connection = server::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(socket), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => return,
                () = answered.notified() => connection.as_mut().graceful_shutdown(),
            }
            let _ = connection.await;
        })
        .await
    }

    /// An `ok` answer.
    fn ok() -> Response<http_body_util::Full<Bytes>> {
        Response::new(http_body_util::Full::new(Bytes::from_static(b"ok")))
    }

    /// A pool speaking HTTP/2 to `address` (5 s to connect, 60 s idle).
    fn h2_pool(address: &str) -> Arc<UpstreamPool> {
        Arc::new(UpstreamPool::new(
            address.to_owned(),
            None,
            UpstreamProtocol::Http2,
            Duration::from_secs(5),
            Duration::from_secs(60),
            4,
        ))
    }

    async fn get_h2(pool: &Arc<UpstreamPool>, authority: &str) -> Result<Bytes, PoolError> {
        let request = Request::builder()
            .uri(format!("http://{authority}/"))
            .version(http::Version::HTTP_2)
            .body(RequestBody::empty())
            .expect("request");
        exchange(pool, request).await
    }

    #[tokio::test]
    async fn an_http2_connection_the_upstream_closed_is_replaced() {
        let (address, accepted) = h2_upstream_recycling_connections().await;
        let pool = h2_pool(&address);
        assert_eq!(get_h2(&pool, &address).await.expect("first"), "ok");
        // Wait (bounded) until hyper has seen the GOAWAY; a request racing it would be
        // retried on a new connection all the same.
        for _ in 0..5000 {
            if pool.shared_h2(&pool.h2[0]).is_none() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(get_h2(&pool, &address).await.expect("second"), "ok");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn http2_requests_share_one_connection() {
        let (address, accepted) = upstream_h2_plain().await;
        let pool = h2_pool(&address);
        for _ in 0..3 {
            assert_eq!(get_h2(&pool, &address).await.expect("answered"), "ok");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    /// Requests that find no connection open at once wait for the one being opened: one
    /// connection, not one each. When that attempt fails, they fail with its error.
    #[tokio::test]
    async fn concurrent_http2_requests_open_one_connection_and_share_its_failure() {
        let (address, accepted) = upstream_h2_plain().await;
        let pool = h2_pool(&address);
        let requests: Vec<_> = (0..16)
            .map(|_| {
                let (pool, address) = (Arc::clone(&pool), address.clone());
                tokio::spawn(async move { get_h2(&pool, &address).await })
            })
            .collect();
        for request in requests {
            assert_eq!(request.await.expect("task").expect("answered"), "ok");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);

        // An upstream that takes TCP connections and never answers the TLS handshake: the
        // first request's attempt times out, and the others, waiting, share its failure.
        let (silent, taken) = counted_upstream(|socket, _| async move {
            let _held = socket;
            std::future::pending::<()>().await;
        })
        .await;
        let url: crate::config::UpstreamUrl = format!("https://{silent}").parse().expect("url");
        let tls = UpstreamTls::new(&url, None, None).expect("tls");
        let pool = Arc::new(UpstreamPool::new(
            silent.clone(),
            Some(tls),
            UpstreamProtocol::Http2,
            Duration::from_millis(300),
            Duration::from_secs(60),
            4,
        ));
        let requests: Vec<_> = (0..16)
            .map(|_| {
                let (pool, address) = (Arc::clone(&pool), silent.clone());
                tokio::spawn(async move { get_h2(&pool, &address).await })
            })
            .collect();
        let mut first: Option<Arc<PoolError>> = None;
        for request in requests {
            let err = request.await.expect("task").expect_err("no handshake");
            let PoolError::Shared(shared) = err else {
                panic!("not the shared attempt's error: {err:?}");
            };
            assert!(matches!(*shared, PoolError::TlsTimeout), "{shared:?}");
            let first = first.get_or_insert_with(|| Arc::clone(&shared));
            assert!(
                Arc::ptr_eq(first, &shared),
                "each request made its own attempt"
            );
        }
        assert_eq!(taken.load(Ordering::SeqCst), 1);
    }

    /// Regression: a 3.9 KB field of backslashes (19-bit codes), a 7 KB path, or 2.6 KB of
    /// bytes above 127 passed as small and, encoded past nginx's 8 KB, ended the shared
    /// connection.
    #[test]
    fn header_blocks_are_measured_as_encoded_with_the_path() {
        let request = |uri: String, value: Vec<u8>| {
            let mut request = Request::builder()
                .uri(uri)
                .body(RequestBody::empty())
                .expect("request");
            request.headers_mut().insert(
                "x-data",
                http::HeaderValue::from_bytes(&value).expect("value"),
            );
            request
        };
        let base = "http://app.test/";
        assert!(!large_headers(&request(base.into(), vec![b'a'; 3900])));
        assert!(large_headers(&request(base.into(), vec![b'\\'; 1100])));
        assert!(large_headers(&request(base.into(), vec![0xff; 1100])));
        let long_path = format!("{base}p?{}", "{".repeat(1100));
        assert!(large_headers(&request(long_path, b"v".to_vec())));
        let many = format!("{base}{}", "a".repeat(3000));
        let mut split = request(many, vec![b'b'; 3000]);
        split
            .headers_mut()
            .insert("x-more", http::HeaderValue::from_static("c"));
        split.headers_mut().insert(
            "x-other",
            http::HeaderValue::from_bytes(&[b'd'; 3000]).expect("value"),
        );
        assert!(large_headers(&split), "over 8 KB together");
    }

    fn clone(request: &Request<RequestBody>) -> Request<RequestBody> {
        rebuild(head_of(request))
    }

    /// Requests whose answers are not read yet hold their streams: past
    /// [`H2_STREAMS_PER_CONNECTION`] of them, the next request gets a new connection instead
    /// of waiting behind them. Requests with large header blocks get connections apart from
    /// the others', which they share among themselves.
    #[tokio::test]
    async fn busy_http2_connections_and_large_header_blocks_get_connections_of_their_own() {
        let (address, accepted) = upstream_h2_plain().await;
        let pool = h2_pool(&address);
        let request = || {
            Request::builder()
                .uri(format!("http://{address}/"))
                .version(http::Version::HTTP_2)
                .body(RequestBody::empty())
                .expect("request")
        };
        let mut held = Vec::new();
        for _ in 0..H2_STREAMS_PER_CONNECTION {
            held.push(pool.send(request()).await.expect("answered"));
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        held.push(pool.send(request()).await.expect("answered"));
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        // Answers read (or dropped): their places are free again.
        drop(held);
        assert_eq!(get_h2(&pool, &address).await.expect("answered"), "ok");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);

        let mut large = request();
        large.headers_mut().insert(
            "x-large",
            http::HeaderValue::from_str(&"a".repeat(H2_LARGE_FIELD + 1)).expect("value"),
        );
        for _ in 0..3 {
            let body = pool
                .send(clone(&large))
                .await
                .expect("answered apart")
                .into_body();
            assert_eq!(body.collect().await.expect("body").to_bytes(), "ok");
            assert_eq!(accepted.load(Ordering::SeqCst), 3);
        }
        assert_eq!(get_h2(&pool, &address).await.expect("answered"), "ok");
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
    }

    /// An HTTP/2 upstream (the `h2` crate's server, to control frames) whose first
    /// connection refuses its second request (`REFUSED_STREAM`: not processed) while the
    /// first waits, then answers the first. Later connections answer everything. Returns
    /// its address, the connections accepted, and a signal given once it holds the first
    /// request.
    async fn h2_upstream_refusing_a_stream() -> (String, Arc<AtomicUsize>, Arc<tokio::sync::Notify>)
    {
        let holding = Arc::new(tokio::sync::Notify::new());
        let signal = Arc::clone(&holding);
        let (address, accepted) = counted_upstream(move |socket, number| {
            let signal = Arc::clone(&signal);
            async move {
                let Ok(mut conn) = h2::server::handshake(socket).await else {
                    return;
                };
                let ok = |mut respond: h2::server::SendResponse<Bytes>| {
                    if let Ok(mut body) = respond.send_response(Response::new(()), false) {
                        let _ = body.send_data(Bytes::from_static(b"ok"), true);
                    }
                };
                if number == 0 {
                    let Some(Ok((_, waiting))) = conn.accept().await else {
                        return;
                    };
                    signal.notify_one();
                    let Some(Ok((_, mut refused))) = conn.accept().await else {
                        return;
                    };
                    refused.send_reset(h2::Reason::REFUSED_STREAM);
                    ok(waiting);
                }
                while let Some(Ok((_, respond))) = conn.accept().await {
                    ok(respond);
                }
            }
        })
        .await;
        (address, accepted, holding)
    }

    /// RFC 9113 §8.7: a request the upstream refused (or that was above the last stream of
    /// a graceful `GOAWAY`) was not processed, and an idempotent one without a body is sent
    /// again. A refused stream leaves its connection in use: the retry may take it again.
    #[tokio::test]
    async fn a_request_the_upstream_did_not_process_is_sent_again() {
        let (address, accepted, holding) = h2_upstream_refusing_a_stream().await;
        let pool = h2_pool(&address);
        let first = {
            let (pool, address) = (Arc::clone(&pool), address.clone());
            tokio::spawn(async move { get_h2(&pool, &address).await })
        };
        holding.notified().await;
        let both = async {
            let second = get_h2(&pool, &address).await;
            (second, first.await.expect("task"))
        };
        let (second, first) = tokio::time::timeout(Duration::from_secs(10), both)
            .await
            .expect("answered in time");
        assert_eq!(second.expect("sent again"), "ok");
        assert_eq!(first.expect("processed"), "ok");
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    /// An HTTP/2 upstream answering `ok` on connections it keeps open.
    async fn upstream_h2_plain() -> (String, Arc<AtomicUsize>) {
        use hyper::server::conn::http2 as server;
        counted_upstream(|socket, _| async move {
            let service = hyper::service::service_fn(|_req| async {
                Ok::<_, std::convert::Infallible>(ok())
            });
            let _ = server::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(socket), service)
                .await;
        })
        .await
    }

    /// An HTTP/1.1 server reads HTTP/2's connection preface as a bad request and says so in
    /// HTTP/1.1: the error names the `protocol` setting.
    #[tokio::test]
    async fn an_http1_server_behind_protocol_http2_is_named_as_such() {
        let (address, _) = counted_upstream(|mut socket, _| async move {
            let mut buf = [0u8; 1024];
            let _ = socket.read(&mut buf).await;
            let _ = socket
                .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                .await;
            // Kept open: the error must come from the bytes, not from a close.
            tokio::time::sleep(Duration::from_secs(5)).await;
        })
        .await;
        let pool = h2_pool(&address);
        let err = get_h2(&pool, &address).await.expect_err("not HTTP/2");
        assert!(matches!(err, PoolError::NotHttp2(_)), "{err:?}");
        let text = err.to_string();
        assert!(text.contains("protocol = \"http1\""), "{text}");
    }
}
