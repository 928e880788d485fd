//! A real headless Chromium against a small HTML app behind palisade: the user logs in
//! through a form (the app answers with `Palisade-Session-Login`), posts a note through a
//! form that carries the CSRF token from the `palisade_csrf` cookie (accepted), and then a
//! page on another origin (another loopback port) replays that token in an auto-submitted
//! form (refused: its `Origin` is not the app's).

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::browser::Browser;
use common::*;
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

/// The notes the app saved, as `text by user`.
type Saved = Arc<Mutex<Vec<String>>>;

#[tokio::test]
async fn a_form_with_the_token_is_accepted_and_its_replay_from_another_origin_refused() {
    let saved = Saved::default();
    let app = serve(Arc::new({
        let saved = Arc::clone(&saved);
        move |request| notes_app(request, Arc::clone(&saved))
    }))
    .await;
    let palisade = start_palisade(&format!("http://{app}"), "rate_limit = []\n").await;
    let site = format!("http://{}", palisade.proxy_addr);
    let attacker = serve(Arc::new(|request| async move { attacker_page(request) })).await;
    let browser = Browser::start().await;

    // Log in through the form; the app's answer carries Palisade-Session-Login.
    browser.goto(&format!("{site}/login")).await;
    browser
        .execute(
            "document.querySelector('[name=username]').value = 'alice';
             document.querySelector('form').submit();",
            serde_json::json!([]),
        )
        .await;
    let notes = wait_text(&browser, "Signed in as alice").await;
    assert!(notes, "logged in: {}", browser.text().await);
    let cookies = browser
        .execute("return document.cookie;", serde_json::json!([]))
        .await;
    let cookies = cookies.as_str().unwrap_or_default().to_string();
    assert!(
        !cookies.contains("palisade_session"),
        "the session is HttpOnly: {cookies}"
    );
    let token = cookie_value(&cookies, "palisade_csrf").expect("scripts read the CSRF cookie");

    // Submit the page's form: the token rides in its hidden _csrf field.
    browser
        .execute(
            "document.querySelector('[name=text]').value = 'hello';
             document.querySelector('form').submit();",
            serde_json::json!([]),
        )
        .await;
    assert!(
        wait_text(&browser, "saved: hello by alice").await,
        "{}",
        browser.text().await
    );

    // Another origin replays the token in a form aimed at the app.
    let target = format!("{site}/notes");
    let url = format!("http://{attacker}/attack?target={target}&token={token}");
    browser.goto(&url).await;
    assert!(wait_text(&browser, "403").await, "{}", browser.text().await);
    assert!(
        browser
            .text()
            .await
            .contains("Cross-site requests are not allowed")
    );
    assert_eq!(*saved.lock().expect("lock"), ["hello by alice"]);

    browser.quit().await;
    palisade.shutdown().await;
}

/// Waits (bounded) until the page's text contains `text`.
async fn wait_text(browser: &Browser, text: &str) -> bool {
    let script = format!(
        "return document.body && document.body.innerText.includes({}) && 'yes';",
        serde_json::json!(text)
    );
    browser
        .wait_for(&script, Duration::from_secs(10))
        .await
        .is_some()
}

fn cookie_value(cookies: &str, name: &str) -> Option<String> {
    cookies
        .split("; ")
        .find_map(|pair| pair.strip_prefix(&format!("{name}=")))
        .map(str::to_string)
}

type Handler<F> = Arc<dyn Fn(Request<hyper::body::Incoming>) -> F + Send + Sync>;

/// Serves `handler` on a free loopback port until the test ends.
async fn serve<F>(handler: Handler<F>) -> SocketAddr
where
    F: Future<Output = Response<TestBody>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let handler = Arc::clone(&handler);
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let answer = handler(request);
                    async move { Ok::<_, Infallible>(answer.await) }
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// The protected app: a login form, and a notes page whose form carries the CSRF token.
async fn notes_app(request: Request<hyper::body::Incoming>, saved: Saved) -> Response<TestBody> {
    let (head, body) = request.into_parts();
    let user = head
        .headers
        .get("palisade-user-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let form = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let form = String::from_utf8_lossy(&form).to_string();
    match (head.method, head.uri.path()) {
        (Method::GET, "/login") => html(
            "<form method=post action=/login><input name=username>\
             <button>Log in</button></form>",
        ),
        (Method::POST, "/login") => {
            let name = field(&form, "username").unwrap_or_default();
            let mut response = redirect("/notes");
            let value = http::HeaderValue::from_str(&name).expect("plain name");
            response
                .headers_mut()
                .insert("palisade-session-login", value);
            response
        }
        (Method::GET, "/notes") => html(&format!(
            "<p>Signed in as {}</p>
             <form method=post action=/notes><input type=hidden name=_csrf>
             <input name=text><button>Save</button></form>
             <script src=/app.js></script>",
            user.as_deref().unwrap_or("nobody")
        )),
        // An external script: palisade's default CSP allows no inline scripts.
        (Method::GET, "/app.js") => {
            let mut response = Response::new(full(FILL_TOKEN));
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/javascript"),
            );
            response
        }
        (Method::POST, "/notes") => {
            let text = field(&form, "text").unwrap_or_default();
            let by = user.unwrap_or_else(|| "nobody".into());
            saved.lock().expect("lock").push(format!("{text} by {by}"));
            html(&format!("<p>saved: {text} by {by}</p>"))
        }
        _ => status(StatusCode::NOT_FOUND),
    }
}

/// Copies the token from the script-readable `palisade_csrf` cookie into the form.
const FILL_TOKEN: &str = "
  const token = document.cookie.match(/(?:^|; )palisade_csrf=([^;]+)/);
  document.querySelector('[name=_csrf]').value = token ? token[1] : '';
";

/// The other origin: a page that posts a stolen token to the app as soon as it loads.
fn attacker_page(request: Request<hyper::body::Incoming>) -> Response<TestBody> {
    let query = request.uri().query().unwrap_or_default().to_string();
    let target = field(&query, "target").unwrap_or_default();
    let token = field(&query, "token").unwrap_or_default();
    html(&format!(
        "<form method=post action=\"{target}\">
         <input type=hidden name=_csrf value=\"{token}\">
         <input type=hidden name=text value=evil></form>
         <script>document.querySelector('form').submit();</script>"
    ))
}

/// A field of an urlencoded form or query (the tests only send plain words and tokens).
fn field(form: &str, name: &str) -> Option<String> {
    form.split('&')
        .find_map(|pair| pair.strip_prefix(&format!("{name}=")))
        .map(|v| v.replace('+', " "))
}

fn html(body: &str) -> Response<TestBody> {
    let page =
        format!("<!doctype html><html><head><meta charset=utf-8></head><body>{body}</body></html>");
    let mut response = Response::new(full(page));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

fn redirect(to: &'static str) -> Response<TestBody> {
    let mut response = status(StatusCode::SEE_OTHER);
    response
        .headers_mut()
        .insert(http::header::LOCATION, http::HeaderValue::from_static(to));
    response
}
