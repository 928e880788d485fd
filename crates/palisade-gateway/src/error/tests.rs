use http_body_util::BodyExt;

use palisade_policy::upload::{FileRef, Reason, Refusal};

use http::header::RETRY_AFTER;

use super::*;
use crate::upload::Refused;

fn every_variant() -> Vec<GatewayError> {
    vec![
        GatewayError::BadFraming("content-length and transfer-encoding"),
        GatewayError::BadBody("invalid chunk size".into()),
        GatewayError::ClientClosed,
        GatewayError::HeadTooLarge,
        GatewayError::UriTooLong { limit: 10 },
        GatewayError::BodyTooLarge { limit: 10 },
        GatewayError::UpstreamConnect("connection refused to 10.1.2.3:3000".into()),
        GatewayError::UpstreamTls("certificate of secret-internal-host not trusted".into()),
        GatewayError::UpstreamTimeout,
        GatewayError::UpstreamProtocol("secret-internal-host closed".into()),
        GatewayError::StateUnavailable,
        GatewayError::Internal("pool poisoned at src/x.rs:12".into()),
        refused(Reason::Malware, "clamd found Secret.Sig at src/x.rs"),
        GatewayError::BodyTimeout(std::time::Duration::from_secs(10)),
        GatewayError::BodyTooSlow(500),
        GatewayError::UploadSpool("no space left on /var/secret-internal-host".into()),
        GatewayError::UploadSpoolFull(crate::upload::SpoolFull { limit: 123_456_789 }),
    ]
}

fn refused(reason: Reason, detail: &str) -> GatewayError {
    let file = FileRef {
        index: 0,
        field: Some("avatar<script>".into()),
        filename: Some("me.png".into()),
        body_offset: 0,
    };
    GatewayError::UploadRefused(Box::new(Refused {
        refusal: Refusal::file(reason, &file, detail),
        quarantined: None,
        quarantine_error: None,
    }))
}

fn expected(error: &GatewayError) -> (u16, ErrorSource) {
    use ErrorSource::*;
    match error {
        GatewayError::BadFraming(_) | GatewayError::BadBody(_) => (400, Client),
        GatewayError::ClientClosed => (499, Client),
        GatewayError::HeadTooLarge => (431, Client),
        GatewayError::UriTooLong { .. } => (414, Client),
        GatewayError::BodyTooLarge { .. } => (413, Client),
        GatewayError::UpstreamConnect(_)
        | GatewayError::UpstreamTls(_)
        | GatewayError::UpstreamProtocol(_) => (502, Upstream),
        GatewayError::UpstreamTimeout => (504, Upstream),
        GatewayError::StateUnavailable | GatewayError::UploadSpoolFull(_) => (503, Internal),
        GatewayError::Internal(_) | GatewayError::UploadSpool(_) => (500, Internal),
        GatewayError::UploadRefused(_) => (422, Client),
        GatewayError::BodyTimeout(_) | GatewayError::BodyTooSlow(_) => (408, Client),
    }
}

async fn body_text(response: Response<GatewayBody>) -> String {
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("in-memory body")
        .to_bytes();
    String::from_utf8(bytes.to_vec()).expect("utf-8 page")
}

#[tokio::test]
async fn every_error_maps_to_its_status_source_and_a_page_without_detail() {
    for error in every_variant() {
        let (status, source) = expected(&error);
        assert_eq!(error.status().as_u16(), status, "{error:?}");
        assert_eq!(error.source(), source, "{error:?}");

        let response = error.to_response(&HeaderMap::new());
        assert_eq!(response.status().as_u16(), status);
        assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
        // A 503 says when to come back (RFC 9110 §10.2.3); other statuses have no use for it.
        let retry_after = response.headers().get(RETRY_AFTER);
        assert_eq!(status == 503, retry_after.is_some(), "{error:?}");
        let page = body_text(response).await;
        assert!(page.contains("<h1>"), "{page}");
        for secret in [
            "10.1.2.3",
            "secret-internal-host",
            "src/x.rs",
            "chunk",
            "Secret.Sig",
        ] {
            assert!(!page.contains(secret), "{error:?} leaked {secret}: {page}");
        }
    }
}

#[tokio::test]
async fn clients_asking_for_json_get_json_errors() {
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::ACCEPT,
        HeaderValue::from_static("application/json"),
    );
    let response = GatewayError::UpstreamTimeout.to_response(&headers);
    assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
    let json: serde_json::Value =
        serde_json::from_str(&body_text(response).await).expect("json body");
    assert_eq!(json["status"], 504);
}

#[test]
fn framing_errors_close_the_connection() {
    let response = GatewayError::BadFraming("x").to_response(&HeaderMap::new());
    assert_eq!(response.headers()[CONNECTION], "close");
    let response = GatewayError::UpstreamTimeout.to_response(&HeaderMap::new());
    assert!(response.headers().get(CONNECTION).is_none());
}

#[test]
fn browsers_get_html_even_when_they_also_accept_json() {
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::ACCEPT,
        HeaderValue::from_static("text/html,application/json;q=0.9"),
    );
    assert!(!wants_json(&headers));
}

fn json_accept() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::ACCEPT,
        HeaderValue::from_static("application/json"),
    );
    headers
}

#[tokio::test]
async fn each_upload_refusal_answers_its_status_and_reason_without_detail() {
    let cases = [
        (Reason::Size, 413),
        (Reason::Type, 415),
        (Reason::Mismatch, 415),
        (Reason::Image, 422),
        (Reason::Polyglot, 422),
        (Reason::Malware, 422),
        (Reason::ScannerUnavailable, 503),
        (Reason::Malformed, 400),
    ];
    for (reason, status) in cases {
        let error = refused(reason, "detail-for-the-event-only");
        assert_eq!(error.status().as_u16(), status, "{reason}");
        let response = error.to_response(&json_accept());
        assert_eq!(response.status().as_u16(), status);
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
        let json: serde_json::Value =
            serde_json::from_str(&body_text(response).await).expect("json body");
        assert_eq!(json["error"], "upload refused");
        assert_eq!(json["reason"], reason.as_str());
        assert_eq!(json["file"], "avatar<script>");
        assert!(!json.to_string().contains("detail-for-the-event-only"));
    }
}

#[tokio::test]
async fn upload_refusal_pages_escape_the_field_name() {
    let response = refused(Reason::Polyglot, "php after IEND").to_response(&HeaderMap::new());
    assert_eq!(response.headers()[CONTENT_TYPE], "text/html; charset=utf-8");
    let page = body_text(response).await;
    assert!(page.contains("avatar&lt;script&gt;"), "{page}");
    assert!(!page.contains("<script>"), "{page}");
    assert!(!page.contains("php after IEND"), "{page}");
}

#[test]
fn an_unavailable_scanner_is_palisades_fault_and_asks_to_retry() {
    let error = refused(Reason::ScannerUnavailable, "connection refused");
    assert_eq!(error.source(), ErrorSource::Internal);
    let response = error.to_response(&HeaderMap::new());
    assert_eq!(response.headers()[http::header::RETRY_AFTER], "30");
}

#[test]
fn a_stalled_body_closes_the_connection() {
    let response =
        GatewayError::BodyTimeout(std::time::Duration::from_secs(1)).to_response(&HeaderMap::new());
    assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
    assert_eq!(response.headers()[CONNECTION], "close");
}
