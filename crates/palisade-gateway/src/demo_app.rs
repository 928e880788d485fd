//! The sample application behind `palisade demo`: a page, static assets, a JSON API and a
//! login form, served on loopback so a new user can watch palisade protect something real.
//!
//! It is deliberately careless in the ways real apps are: it announces itself in `Server`
//! and `X-Powered-By`, sets a session cookie without flags, and sends no security headers,
//! so the difference palisade makes is visible. Never expose it beyond loopback.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue, LOCATION, SET_COOKIE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

const PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>palisade demo app</title>
<link rel="stylesheet" href="/static/app.css"></head>
<body><h1>Demo shop</h1>
<img src="/static/logo.svg" alt="logo" width="48">
<p>This page, its assets, <a href="/api/items">a JSON API</a> and
<a href="/login">a login form</a> sit behind palisade.</p>
<ul id="items"></ul>
<script src="/static/app.js"></script></body></html>
"#;

const LOGIN: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>Sign in</title>
<link rel="stylesheet" href="/static/app.css"></head>
<body><h1>Sign in</h1>
<form method="post" action="/login">
<label>User <input name="user"></label>
<label>Password <input name="password" type="password"></label>
<button>Sign in</button></form></body></html>
"#;

const CSS: &str = "body { font-family: sans-serif; margin: 2rem; } h1 { color: #234; }\n";
const JS: &str = "fetch('/api/items').then(r => r.json()).then(items => {\n  \
    const list = document.getElementById('items');\n  \
    for (const item of items) { const li = document.createElement('li'); \
    li.textContent = item.name; list.appendChild(li); }\n});\n";
const SVG: &str = "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 10 10\">\
    <rect width=\"10\" height=\"10\" fill=\"#2a6\"/></svg>\n";

/// Starts the sample app on `listener` and serves until the task is dropped.
pub async fn run(listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let service = service_fn(|request| async { Ok::<_, Infallible>(route(request).await) });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Binds the sample app to a free loopback port.
pub async fn bind() -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

async fn route(request: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_string();
    let mut response = match (request.method().clone(), path.as_str()) {
        (Method::GET, "/") => page("text/html; charset=utf-8", PAGE),
        (Method::GET, "/login") => page("text/html; charset=utf-8", LOGIN),
        (Method::POST, "/login") => login(request).await,
        (Method::GET, "/static/app.css") => page("text/css", CSS),
        (Method::GET, "/static/app.js") => page("text/javascript", JS),
        (Method::GET, "/static/logo.svg") => page("image/svg+xml", SVG),
        (Method::GET, "/api/items") => page(
            "application/json",
            r#"[{"id":1,"name":"lamp"},{"id":2,"name":"kettle"},{"id":3,"name":"chair"}]"#,
        ),
        _ => status_page(StatusCode::NOT_FOUND, "not found\n"),
    };
    let headers = response.headers_mut();
    headers.insert("server", HeaderValue::from_static("DemoApp/0.1 (Linux)"));
    headers.insert(
        "x-powered-by",
        HeaderValue::from_static("demo-framework 1.0"),
    );
    response
}

async fn login(request: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let body = Limited::new(request.into_body(), 16 * 1024).collect().await;
    let Ok(body) = body else {
        return status_page(StatusCode::BAD_REQUEST, "bad form\n");
    };
    let form = String::from_utf8_lossy(&body.to_bytes()).to_string();
    if !form.contains("password=demo") {
        return status_page(StatusCode::UNAUTHORIZED, "wrong password (try: demo)\n");
    }
    let mut response = status_page(StatusCode::SEE_OTHER, "");
    let headers = response.headers_mut();
    headers.insert(LOCATION, HeaderValue::from_static("/"));
    headers.insert(
        SET_COOKIE,
        HeaderValue::from_static("demo_session=3f2a9c; Path=/"),
    );
    response
}

fn page(content_type: &'static str, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn status_page(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = page("text/plain; charset=utf-8", body);
    *response.status_mut() = status;
    response
}
