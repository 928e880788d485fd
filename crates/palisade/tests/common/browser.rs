//! A real headless Chromium for end-to-end tests, driven through chromedriver's WebDriver
//! HTTP API (W3C WebDriver, the JSON wire protocol over HTTP) with the HTTP client the other
//! tests use.
//!
//! [`Browser::start`] launches `chromedriver` on a free loopback port (Debian's
//! `chromium-driver`, installed by `scripts/services up`) and opens one session with a fresh
//! profile directory. [`Browser::quit`] closes the session (which stops Chromium) and then
//! stops chromedriver by its PID; dropping a `Browser` without `quit` (a failed test) does the
//! same with blocking calls, and as a last resort stops the Chromium whose PID the profile's
//! lock file names. Nothing is ever stopped by name.
//!
//! Without chromedriver installed the tests that need it fail with a message saying how to
//! install it, rather than passing silently.
#![allow(dead_code)]

use std::io::{Read as _, Write as _};
use std::net::TcpStream as StdTcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

/// Flags every test browser runs with: headless, no sandbox (tests run as root in CI), and
/// nothing that talks to the network on its own (the tests may only reach loopback).
pub const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1024,768",
];

/// The Chromium launcher Debian installs.
const CHROMIUM: &str = "/usr/bin/chromium";

/// How long one WebDriver command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// One headless Chromium session.
pub struct Browser {
    driver: Option<Child>,
    base: String,
    session: String,
    profile: PathBuf,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Browser {
    /// Starts chromedriver and a Chromium session with a fresh profile.
    pub async fn start() -> Self {
        Self::start_with_prefs(json!({})).await
    }

    /// Like [`Browser::start`] with Chromium preferences set, e.g.
    /// `{"profile.default_content_setting_values.cookies": 2}` to block cookies.
    pub async fn start_with_prefs(prefs: Value) -> Self {
        let driver_binary = find_chromedriver();
        let port = super::free_port();
        let dir = super::config_file("").with_file_name("browser");
        let profile = dir.join("profile");
        std::fs::create_dir_all(&profile).expect("profile dir");
        let log = std::fs::File::create(dir.join("chromedriver.log")).expect("driver log");
        let driver = Command::new(&driver_binary)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {}: {err}", driver_binary.display()));
        let mut browser = Self {
            driver: Some(driver),
            base: format!("http://127.0.0.1:{port}"),
            session: String::new(),
            profile,
            client: Client::builder(TokioExecutor::new()).build_http(),
        };
        browser.wait_ready().await;
        browser.session = browser.new_session(prefs).await;
        browser
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(status) = self.call(Method::GET, "/status", None).await {
                if status["ready"] == true {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not become ready on {}", self.base);
    }

    async fn new_session(&self, prefs: Value) -> String {
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|f| f.to_string()).collect();
        args.push(format!("--user-data-dir={}", self.profile.display()));
        let capabilities = json!({
            "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": { "binary": CHROMIUM, "args": args, "prefs": prefs },
            }}
        });
        let value = self
            .call(Method::POST, "/session", Some(capabilities))
            .await
            .unwrap_or_else(|err| panic!("chromium did not start: {err}"));
        value["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session id in {value}"))
            .to_string()
    }

    /// Navigates to `url` and waits for the page to load.
    pub async fn goto(&self, url: &str) {
        self.command(Method::POST, "url", Some(json!({ "url": url })))
            .await;
    }

    /// The URL of the current page.
    pub async fn url(&self) -> String {
        let value = self.command(Method::GET, "url", None).await;
        value.as_str().unwrap_or_default().to_string()
    }

    /// The title of the current page.
    pub async fn title(&self) -> String {
        let value = self.command(Method::GET, "title", None).await;
        value.as_str().unwrap_or_default().to_string()
    }

    /// The current page's DOM, serialised.
    pub async fn source(&self) -> String {
        let value = self.command(Method::GET, "source", None).await;
        value.as_str().unwrap_or_default().to_string()
    }

    /// The visible text of the page (`document.body.innerText`).
    pub async fn text(&self) -> String {
        let value = self
            .execute(
                "return document.body ? document.body.innerText : '';",
                json!([]),
            )
            .await;
        value.as_str().unwrap_or_default().to_string()
    }

    /// Runs `script` (a function body; `arguments` holds `args`) and returns its result.
    pub async fn execute(&self, script: &str, args: Value) -> Value {
        let body = json!({ "script": script, "args": args });
        self.command(Method::POST, "execute/sync", Some(body)).await
    }

    /// Polls `script` until it returns something truthy (then returns it) or `timeout` ends.
    pub async fn wait_for(&self, script: &str, timeout: Duration) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let value = self.execute(script, json!([])).await;
            let truthy = !matches!(value, Value::Null | Value::Bool(false))
                && value != json!("")
                && value != json!(0);
            if truthy {
                return Some(value);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Adds `headers` to every request the browser sends from now on (through the DevTools
    /// protocol), e.g. the `X-Forwarded-For` a trusted proxy in front of palisade would set.
    pub async fn set_extra_headers(&self, headers: &[(&str, &str)]) {
        let map: serde_json::Map<String, Value> = headers
            .iter()
            .map(|(name, value)| (name.to_string(), json!(value)))
            .collect();
        self.cdp("Network.enable", json!({})).await;
        self.cdp("Network.setExtraHTTPHeaders", json!({ "headers": map }))
            .await;
    }

    /// One Chrome DevTools Protocol command through chromedriver.
    pub async fn cdp(&self, command: &str, params: Value) -> Value {
        let body = json!({ "cmd": command, "params": params });
        self.command(Method::POST, "goog/cdp/execute", Some(body))
            .await
    }

    /// Every cookie the browser holds for the current page (name, value, flags).
    pub async fn cookies(&self) -> Vec<Value> {
        let value = self.command(Method::GET, "cookie", None).await;
        value.as_array().cloned().unwrap_or_default()
    }

    /// Saves a PNG screenshot of the current page, for looking at a failure.
    pub async fn screenshot(&self, path: &Path) {
        use base64::Engine as _;
        let value = self.command(Method::GET, "screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(value.as_str().unwrap_or_default())
            .expect("screenshot is base64");
        std::fs::write(path, png).expect("write screenshot");
    }

    /// Closes the session (Chromium exits) and stops chromedriver by PID.
    pub async fn quit(mut self) {
        let path = format!("/session/{}", self.session);
        let _ = self.call(Method::DELETE, &path, None).await;
        self.session.clear();
        self.stop_driver();
    }

    /// A command on this session; panics with WebDriver's message on error.
    async fn command(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let path = format!("/session/{}/{path}", self.session);
        self.call(method, &path, body)
            .await
            .unwrap_or_else(|err| panic!("webdriver {path}: {err}"))
    }

    /// One WebDriver call; `Ok` holds the response's `value`.
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value, String> {
        let bytes = body.map_or_else(Bytes::new, |b| Bytes::from(b.to_string()));
        let request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("content-type", "application/json; charset=utf-8")
            .body(Full::new(bytes))
            .map_err(|err| err.to_string())?;
        let response = tokio::time::timeout(COMMAND_TIMEOUT, self.client.request(request))
            .await
            .map_err(|_| format!("no answer within {COMMAND_TIMEOUT:?}"))?
            .map_err(|err| err.to_string())?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|err| err.to_string())?
            .to_bytes();
        let json: Value = serde_json::from_slice(&body).map_err(|err| err.to_string())?;
        if !status.is_success() {
            return Err(format!("{status}: {}", json["value"]));
        }
        Ok(json["value"].clone())
    }

    fn stop_driver(&mut self) {
        if let Some(mut driver) = self.driver.take() {
            let _ = driver.kill();
            let _ = driver.wait();
        }
        let _ = std::fs::remove_dir_all(&self.profile);
    }

    /// The PID of the Chromium using our profile, from its `SingletonLock` (`host-PID`).
    fn chromium_pid(&self) -> Option<u32> {
        let target = std::fs::read_link(self.profile.join("SingletonLock")).ok()?;
        let text = target.to_string_lossy().into_owned();
        text.rsplit('-').next()?.parse().ok()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if self.driver.is_none() {
            return;
        }
        if !self.session.is_empty() {
            blocking_delete(&self.base, &format!("/session/{}", self.session));
        }
        // If the session could not be closed, stop the browser itself, by its own PID.
        if let Some(pid) = self.chromium_pid() {
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
        self.stop_driver();
    }
}

/// `DELETE path` with a plain blocking socket, for `Drop` (no async there).
fn blocking_delete(base: &str, path: &str) {
    let Some(authority) = base.strip_prefix("http://") else {
        return;
    };
    let Ok(mut stream) = StdTcpStream::connect(authority) else {
        return;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let request = format!(
        "DELETE {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    if stream.write_all(request.as_bytes()).is_ok() {
        let mut sink = Vec::new();
        let _ = stream.read_to_end(&mut sink);
    }
}

/// chromedriver from `PATH` or Debian's location; a clear failure when it is missing.
fn find_chromedriver() -> PathBuf {
    let candidates = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"];
    for candidate in candidates {
        if Path::new(candidate).exists() {
            return PathBuf::from(candidate);
        }
    }
    panic!(
        "chromedriver is not installed: run `scripts/services up` (it installs Debian's \
         chromium and chromium-driver)"
    );
}
