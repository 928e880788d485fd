//! Malformed and hostile upload bodies over real HTTP: each gets a clear answer, the
//! upstream sees nothing of it, and no temporary file survives it.

mod common;
mod upload_gateway;
#[path = "../../palisade-gateway/tests/upload_support/mod.rs"]
mod upload_support;

use upload_gateway::*;
use upload_support::*;

/// Managed detection is off: it would refuse several of these bodies before the upload
/// checks, whose answers are under test here (`waf_managed.rs` covers the detection).
const RULES: &str = "[waf]\nmanaged = false\n\n\
                     [[upload]]\npath = \"/upload\"\nbody_read_timeout = \"1s\"\n";

fn reason(answer: &Answer) -> String {
    answer.json()["reason"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The start of a form whose file part is `file` (no closing boundary).
fn open_form(file: &[u8]) -> Vec<u8> {
    let headers = file_headers("f", "a.png", "image/png");
    let mut body = format!("--{BOUNDARY}\r\n{headers}\r\n\r\n").into_bytes();
    body.extend_from_slice(file);
    body
}

fn head(content_type: &str, extra: &str) -> String {
    format!(
        "POST /upload HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\n\
         Content-Type: {content_type}\r\n{extra}\r\n"
    )
}

#[tokio::test]
async fn multipart_without_a_boundary_is_refused() {
    let palisade = UploadGateway::start(RULES).await;
    let body = multipart(&[(&file_headers("f", "a.png", "image/png"), &png(8, 8))]);
    let answer = palisade
        .send("POST", "/upload", "multipart/form-data", body, &[])
        .await;
    assert_eq!(answer.status, 400);
    assert_eq!(reason(&answer), "malformed");
    palisade.assert_nothing_forwarded_nor_left().await;
}

#[tokio::test]
async fn a_form_whose_closing_boundary_never_comes_is_refused() {
    let palisade = UploadGateway::start(RULES).await;
    let body = open_form(&noisy_png(200, 200));
    let answer = palisade.send("POST", "/upload", MULTIPART, body, &[]).await;
    assert_eq!(answer.status, 400);
    assert_eq!(reason(&answer), "malformed");
    palisade.assert_nothing_forwarded_nor_left().await;
    let event = palisade.event("upload.refused").await;
    assert!(
        event["upload.detail"]
            .as_str()
            .unwrap_or_default()
            .contains("closing boundary")
    );
}

#[tokio::test]
async fn a_boundary_line_that_never_ends_is_refused() {
    let palisade = UploadGateway::start(RULES).await;
    // The delimiter starts, then megabytes follow without the line ever ending.
    let mut body = format!("--{BOUNDARY}").into_bytes();
    body.extend(std::iter::repeat_n(b'-', 6 << 20));
    let answer = palisade.send("POST", "/upload", MULTIPART, body, &[]).await;
    assert!(
        matches!(answer.status.as_u16(), 400 | 413),
        "{}",
        answer.status
    );
    palisade.assert_nothing_forwarded_nor_left().await;
}

#[tokio::test]
async fn ten_thousand_parts_are_refused() {
    let palisade = UploadGateway::start(RULES).await;
    let field = "Content-Disposition: form-data; name=\"x\"";
    let parts: Vec<(&str, &[u8])> = (0..10_000).map(|_| (field, &b"1"[..])).collect();
    let answer = palisade.post_form("/upload", &parts).await;
    assert_eq!(answer.status, 400);
    assert_eq!(reason(&answer), "malformed");
    palisade.assert_nothing_forwarded_nor_left().await;
}

#[tokio::test]
async fn a_one_megabyte_part_header_is_refused() {
    let palisade = UploadGateway::start(RULES).await;
    let huge = format!(
        "Content-Disposition: form-data; name=\"f\"\r\nX-Padding: {}",
        "a".repeat(1 << 20)
    );
    let answer = palisade.post_form("/upload", &[(&huge, b"x")]).await;
    assert_eq!(answer.status, 400);
    assert_eq!(reason(&answer), "malformed");
    palisade.assert_nothing_forwarded_nor_left().await;
}

#[tokio::test]
async fn nested_multipart_is_refused() {
    let palisade = UploadGateway::start(RULES).await;
    let inner = format!(
        "--inner\r\n{}\r\n\r\nx\r\n--inner--",
        file_headers("f", "a.png", "image/png")
    );
    let outer = "Content-Disposition: form-data; name=\"files\"\r\n\
                 Content-Type: multipart/mixed; boundary=inner";
    let answer = palisade
        .post_form("/upload", &[(outer, inner.as_bytes())])
        .await;
    assert_eq!(answer.status, 400);
    assert_eq!(reason(&answer), "malformed");
    palisade.assert_nothing_forwarded_nor_left().await;
}

#[tokio::test]
async fn a_body_that_ends_mid_chunk_is_refused_and_leaves_nothing() {
    let palisade = UploadGateway::start(RULES).await;
    // A chunk announced as 1 MiB; 300 KB of it (past the memory buffer, so on disk) and
    // then the client's end of stream.
    let data = open_form(&noisy_png(400, 400));
    let mut body = b"100000\r\n".to_vec();
    body.extend_from_slice(&data[..300_000]);
    let head = head(MULTIPART, "Transfer-Encoding: chunked\r\n");
    let response = raw_request(palisade.running.proxy_addr, &head, &body, Ending::HalfClose).await;
    assert_eq!(status_of(&response), 400, "{response}");
    palisade.assert_nothing_forwarded_nor_left().await;
}

#[tokio::test]
async fn a_form_cut_short_is_refused() {
    let palisade = UploadGateway::start(RULES).await;
    let form = multipart(&[(&file_headers("f", "a.jpg", "image/jpeg"), &jpeg(300, 200))]);
    let cut = form[..form.len() * 2 / 3].to_vec();
    let answer = palisade.send("POST", "/upload", MULTIPART, cut, &[]).await;
    assert_eq!(answer.status, 400);
    assert_eq!(reason(&answer), "malformed");
    palisade.assert_nothing_forwarded_nor_left().await;
}

#[tokio::test]
async fn a_client_that_stops_sending_gets_408_and_leaves_nothing() {
    let palisade = UploadGateway::start(RULES).await;
    let data = open_form(&noisy_png(400, 400));
    let head = head(MULTIPART, &format!("Content-Length: {}\r\n", data.len()));
    let response = raw_request(
        palisade.running.proxy_addr,
        &head,
        &data[..200_000],
        Ending::Stall,
    )
    .await;
    assert_eq!(status_of(&response), 408, "{response}");
    assert!(
        response.to_ascii_lowercase().contains("connection: close"),
        "{response}"
    );
    palisade.assert_nothing_forwarded_nor_left().await;
    let failed = palisade.event("request.failed").await;
    assert_eq!(failed["error.kind"], "body_timeout");
}

#[tokio::test]
async fn a_declared_length_over_the_rule_is_refused_before_any_byte_is_read() {
    let rules = "[[upload]]\npath = \"/upload\"\nmax_body_size = \"1MB\"\n";
    let palisade = UploadGateway::start(rules).await;
    let head = head(
        "image/png",
        "Content-Length: 2000000\r\nExpect: 100-continue\r\n",
    );
    let response = raw_request(palisade.running.proxy_addr, &head, b"", Ending::Stall).await;
    assert_eq!(status_of(&response), 413, "{response}");
    assert!(!response.contains("100 Continue"), "{response}");
    palisade.assert_nothing_forwarded_nor_left().await;
}
