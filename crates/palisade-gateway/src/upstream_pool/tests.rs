use super::*;
use http_body_util::BodyExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// An upstream answering `ok` to each request; with `close_after_one`, it closes every
/// connection after its first answer without saying so. Returns its address and the
/// count of connections it accepted.
async fn upstream(close_after_one: bool) -> (String, Arc<AtomicUsize>) {
    const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
    if close_after_one {
        scripted(|_, _, _| (OK.to_vec(), true)).await
    } else {
        scripted(|_, _, _| (OK.to_vec(), false)).await
    }
}

/// What the scripted upstream does with one request: the bytes to send back, then
/// whether to close the connection.
pub(in crate::upstream_pool) type Script =
    fn(connection: usize, request: usize, head: &str) -> (Vec<u8>, bool);

/// An upstream that answers each request head it reads as `script` says. Returns its
/// address and the count of connections it accepted.
pub(in crate::upstream_pool) async fn scripted(script: Script) -> (String, Arc<AtomicUsize>) {
    counted_upstream(move |mut socket, connection| async move {
        let mut seen = Vec::new();
        let mut buf = vec![0u8; 4096];
        let mut request = 0;
        loop {
            let Ok(n) = socket.read(&mut buf).await else {
                return;
            };
            if n == 0 {
                return;
            }
            seen.extend_from_slice(&buf[..n]);
            while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&seen[..end + 4]).into_owned();
                seen.drain(..end + 4);
                let (answer, close) = script(connection, request, &head);
                request += 1;
                if socket.write_all(&answer).await.is_err() || close {
                    return;
                }
            }
        }
    })
    .await
}

/// A loopback upstream that runs `serve` on each connection it accepts, with the
/// connection's number (from 0). Returns its address and the count of connections.
pub(in crate::upstream_pool) async fn counted_upstream<F, Fut>(
    serve: F,
) -> (String, Arc<AtomicUsize>)
where
    F: Fn(TcpStream, usize) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("addr").to_string();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let number = counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve(socket, number));
        }
    });
    (address, accepted)
}

fn pool(address: String) -> Arc<UpstreamPool> {
    let timeout = Duration::from_secs(5);
    Arc::new(UpstreamPool::new(
        address,
        None,
        UpstreamProtocol::Http1,
        timeout,
        Duration::from_secs(60),
        4,
    ))
}

async fn get(pool: &Arc<UpstreamPool>) -> Result<Bytes, PoolError> {
    let request = Request::builder()
        .uri("/")
        .header(http::header::HOST, "upstream.test")
        .body(RequestBody::empty())
        .expect("request");
    exchange(pool, request).await
}

/// Sends `request` through `pool` and reads the whole answer.
pub(in crate::upstream_pool) async fn exchange(
    pool: &Arc<UpstreamPool>,
    request: Request<RequestBody>,
) -> Result<Bytes, PoolError> {
    let response = pool.send(request).await?;
    let body = response.into_body().collect().await;
    Ok(body.expect("the answer's body arrives whole").to_bytes())
}

#[tokio::test]
async fn a_finished_exchange_leaves_its_connection_for_the_next_request() {
    let (address, accepted) = upstream(false).await;
    let pool = pool(address);
    for _ in 0..3 {
        assert_eq!(get(&pool).await.expect("answered"), "ok");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_connection_the_upstream_closed_while_idle_is_not_reused() {
    let (address, accepted) = upstream(true).await;
    let pool = pool(address);
    assert_eq!(get(&pool).await.expect("answered"), "ok");
    // Wait (bounded) until hyper has seen the upstream's close of the idle connection.
    for _ in 0..5000 {
        let closed = {
            let idle = pool.idle.lock().expect("lock");
            idle.iter().all(|entry| entry.sender.is_closed())
        };
        if closed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(
        get(&pool).await.expect("answered on a new connection"),
        "ok"
    );
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_refused_connection_is_a_connect_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("addr").to_string();
    drop(listener);
    let err = get(&pool(address)).await.expect_err("nothing listens");
    assert!(matches!(err, PoolError::Connect(_)), "{err:?}");
}
