//! A bare HTTP/1.1 keep-alive reverse proxy on tokio, used only by `bench/gateway.sh`
//! (`BENCH_FLOOR=1`) to measure the least CPU a proxy built like palisade (one
//! single-threaded tokio runtime per worker, `SO_REUSEPORT`, a per-worker pool of upstream
//! connections) spends per request on this machine. It is a measuring instrument, not a
//! product: no checks, no limits, no timeouts, no pipeline; requests and responses must
//! carry `Content-Length` (or no body); anything else closes the connection.
//!
//! Per request it does what any proxy must: parse the request head, write it to an upstream
//! connection with `X-Forwarded-For` added and hop-by-hop fields left out, parse the answer's
//! head, and write the answer back with hop-by-hop fields, `Server` and `X-Powered-By` left
//! out. The upstream exchange runs inline in the client connection's task.
//!
//! Usage: `floor_proxy LISTEN UPSTREAM WORKERS [HEADERS_FILE]`, where `HEADERS_FILE` holds
//! header lines (`name: value`, one per line) added to every answer, so that the floor can
//! write as many bytes per response as palisade's security headers make it write.

use std::cell::RefCell;
use std::io;
use std::net::{IpAddr, SocketAddr};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Most header fields in one head.
const MAX_HEADERS: usize = 64;

/// Fields a proxy does not pass on (RFC 9110 section 7.6.1), plus what it replaces or hides.
const DROPPED: [&str; 11] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "x-forwarded-for",
    "server",
    "x-powered-by",
    "content-length",
];

thread_local! {
    /// This worker's idle upstream connections, each with its read buffer.
    static IDLE: RefCell<Vec<(TcpStream, Vec<u8>)>> = const { RefCell::new(Vec::new()) };
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: floor_proxy LISTEN UPSTREAM WORKERS [HEADERS_FILE]");
        std::process::exit(2);
    }
    let listen: SocketAddr = args[1]
        .parse()
        .expect("LISTEN: an address such as 127.0.0.1:8080");
    let upstream: SocketAddr = args[2].parse().expect("UPSTREAM: an address");
    let workers: usize = args[3].parse().expect("WORKERS: a number");
    let extra: &'static [u8] = match args.get(4) {
        Some(path) => {
            let text = std::fs::read_to_string(path).expect("HEADERS_FILE readable");
            let lines: String = text
                .lines()
                .filter(|line| !line.trim().is_empty())
                .map(|line| format!("{}\r\n", line.trim()))
                .collect();
            Box::leak(lines.into_bytes().into_boxed_slice())
        }
        None => b"",
    };
    let threads: Vec<_> = (0..workers)
        .map(|_| {
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                runtime.block_on(accept(listen, upstream, extra));
            })
        })
        .collect();
    for thread in threads {
        let _ = thread.join();
    }
}

async fn accept(listen: SocketAddr, upstream: SocketAddr, extra: &'static [u8]) {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_reuseaddr(true).expect("reuseaddr");
    socket.set_reuseport(true).expect("reuseport");
    socket.bind(listen).expect("bind");
    let listener = socket.listen(1024).expect("listen");
    loop {
        let Ok((client, peer)) = listener.accept().await else {
            continue;
        };
        let _ = client.set_nodelay(true);
        tokio::spawn(async move {
            let _ = serve(client, peer.ip(), upstream, extra).await;
        });
    }
}

/// Reads more bytes into `buf`; `Ok(false)` at end of stream.
async fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<bool> {
    buf.reserve(8192);
    Ok(stream.read_buf(buf).await? > 0)
}

fn dropped(name: &str) -> bool {
    DROPPED.iter().any(|d| d.eq_ignore_ascii_case(name))
}

/// Writes the fields a proxy passes on, as `name: value` lines.
fn copy_fields(out: &mut Vec<u8>, fields: &[httparse::Header<'_>]) {
    for field in fields.iter().filter(|field| !dropped(field.name)) {
        out.extend_from_slice(field.name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(field.value);
        out.extend_from_slice(b"\r\n");
    }
}

fn content_length(headers: &[httparse::Header<'_>]) -> Option<usize> {
    let mut length = 0;
    for header in headers {
        if header.name.eq_ignore_ascii_case("transfer-encoding") {
            return None;
        }
        if header.name.eq_ignore_ascii_case("content-length") {
            length = std::str::from_utf8(header.value)
                .ok()?
                .trim()
                .parse()
                .ok()?;
        }
    }
    Some(length)
}

/// Serves one client connection until it closes or sends something unsupported.
async fn serve(
    mut client: TcpStream,
    peer: IpAddr,
    upstream: SocketAddr,
    extra: &'static [u8],
) -> io::Result<()> {
    let mut input = Vec::with_capacity(8192);
    let mut out = Vec::with_capacity(4096);
    let peer = peer.to_string();
    loop {
        // The request head, copied for the upstream as it is parsed.
        let (head, body) = loop {
            let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut request = httparse::Request::new(&mut fields);
            match request.parse(&input) {
                Ok(httparse::Status::Complete(head)) => {
                    let Some(body) = content_length(request.headers) else {
                        return Ok(());
                    };
                    out.clear();
                    out.extend_from_slice(request.method.unwrap_or("GET").as_bytes());
                    out.push(b' ');
                    out.extend_from_slice(request.path.unwrap_or("/").as_bytes());
                    out.extend_from_slice(b" HTTP/1.1\r\n");
                    copy_fields(&mut out, request.headers);
                    out.extend_from_slice(b"x-forwarded-for: ");
                    out.extend_from_slice(peer.as_bytes());
                    if body > 0 {
                        out.extend_from_slice(format!("\r\ncontent-length: {body}").as_bytes());
                    }
                    out.extend_from_slice(b"\r\n\r\n");
                    break (head, body);
                }
                Ok(httparse::Status::Partial) => {}
                Err(_) => return Ok(()),
            }
            if !fill(&mut client, &mut input).await? {
                return Ok(());
            }
        };
        while input.len() < head + body {
            if !fill(&mut client, &mut input).await? {
                return Ok(());
            }
        }
        out.extend_from_slice(&input[head..head + body]);
        input.drain(..head + body);

        let (mut conn, mut buf) = match IDLE.with(|idle| idle.borrow_mut().pop()) {
            Some(idle) => idle,
            None => {
                let stream = TcpStream::connect(upstream).await?;
                stream.set_nodelay(true)?;
                (stream, Vec::with_capacity(8192))
            }
        };
        conn.write_all(&out).await?;

        // The answer's head, copied for the client as it is parsed.
        let (head, body) = loop {
            let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut response = httparse::Response::new(&mut fields);
            match response.parse(&buf) {
                Ok(httparse::Status::Complete(head)) => {
                    let Some(body) = content_length(response.headers) else {
                        return Ok(());
                    };
                    out.clear();
                    out.extend_from_slice(b"HTTP/1.1 ");
                    out.extend_from_slice(response.code.unwrap_or(502).to_string().as_bytes());
                    out.push(b' ');
                    out.extend_from_slice(response.reason.unwrap_or("").as_bytes());
                    out.extend_from_slice(b"\r\n");
                    copy_fields(&mut out, response.headers);
                    out.extend_from_slice(extra);
                    out.extend_from_slice(format!("content-length: {body}\r\n\r\n").as_bytes());
                    break (head, body);
                }
                Ok(httparse::Status::Partial) => {}
                Err(_) => return Ok(()),
            }
            if !fill(&mut conn, &mut buf).await? {
                return Ok(());
            }
        };
        while buf.len() < head + body {
            if !fill(&mut conn, &mut buf).await? {
                return Ok(());
            }
        }
        out.extend_from_slice(&buf[head..head + body]);
        buf.drain(..head + body);
        IDLE.with(|idle| idle.borrow_mut().push((conn, buf)));
        client.write_all(&out).await?;
    }
}
