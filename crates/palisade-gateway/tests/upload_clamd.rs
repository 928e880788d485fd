//! Scanning with a real clamd (started through `scripts/clamd`, or the one named by
//! `PALISADE_TEST_CLAMD`), quarantine of refused files, scanner failures, and the
//! `palisade upload check` library function.

mod upload_support;

use std::time::Duration;

use palisade_gateway::upload::{
    ClamdClient, ScanError, ScanOutcome, ScanVerdict, UploadError, UploadService, check_files,
};
use palisade_policy::upload::{OnScannerError, Reason, RequestHead, ScannerConfig, UploadSection};
use upload_support::*;

fn client(address: &str, timeout: Duration) -> ClamdClient {
    ClamdClient::new(&ScannerConfig {
        address: address.parse().expect("valid clamd address"),
        timeout,
    })
}

fn text_section() -> UploadSection {
    let mut section = UploadSection::with_path("/upload");
    section.allowed_types = vec!["text/plain".into(), "image/png".into(), "image/jpeg".into()];
    section
}

async fn upload_raw(
    service: &UploadService,
    content_type: &str,
    body: &[u8],
) -> Result<Vec<palisade_gateway::upload::FileReport>, UploadError> {
    let head = RequestHead {
        content_type: Some(content_type),
        ..RequestHead::default()
    };
    let mut inspection = service.begin("POST", "/upload", head).expect("route")?;
    inspection.feed(body).await?;
    Ok(inspection.finish().await?.files)
}

#[tokio::test]
async fn clamd_answers_ping_over_tcp_and_unix_socket() {
    let timeout = Duration::from_secs(10);
    client(&clamd_address(), timeout)
        .ping()
        .await
        .expect("tcp ping");
    client(&own_clamd().unix, timeout)
        .ping()
        .await
        .expect("unix ping");
}

#[tokio::test]
async fn eicar_is_found_and_clean_bytes_are_not() {
    let scanner = client(&clamd_address(), Duration::from_secs(10));
    let found = scanner.scan_bytes(&eicar()).await.expect("verdict");
    assert_eq!(
        found,
        ScanVerdict::Found("Palisade.Test.EICAR.UNOFFICIAL".into())
    );
    let clean = scanner.scan_bytes(&png(16, 16)).await.expect("verdict");
    assert_eq!(clean, ScanVerdict::Clean);
    // Split across many small INSTREAM chunks, the signature is still found.
    let mut stream = scanner.instream().await.expect("instream");
    for piece in eicar().chunks(5) {
        stream.send(piece).await.expect("send");
    }
    assert!(matches!(stream.finish().await, Ok(ScanVerdict::Found(_))));
}

#[tokio::test]
async fn eicar_in_a_text_file_is_refused_as_malware_and_quarantined_with_a_note() {
    let spool = temp_dir("eicar-spool");
    let quarantine = temp_dir("eicar-quarantine");
    let mut section = text_section();
    section.quarantine_dir = Some(quarantine.to_path_buf());
    let service = service(vec![section], Some(scanner(&clamd_address())), &spool);
    let mut file = b"notes for the meeting\n".to_vec();
    file.extend(eicar());
    let Err(UploadError::Refused(refused)) = upload_raw(&service, "text/plain", &file).await else {
        panic!("EICAR must be refused");
    };
    assert_eq!(refused.refusal.reason, Reason::Malware);
    assert_eq!(refused.status(), 422);
    assert!(refused.refusal.detail.contains("Palisade.Test.EICAR"));
    // The client learns the reason, never the signature.
    let client_json = serde_json::to_string(&refused.client_body()).expect("json");
    assert!(!client_json.contains("EICAR"), "{client_json}");

    let kept = refused.quarantined.clone().expect("quarantined");
    assert_eq!(std::fs::read(&kept).expect("kept file"), file);
    let note: serde_json::Value =
        serde_json::from_slice(&std::fs::read(kept.with_extension("json")).expect("note"))
            .expect("json note");
    assert_eq!(note["reason"], "malware");
    assert_eq!(note["refused_at_ms"], 1_000_000);
    assert_eq!(note["complete"], true);
    assert!(note["detail"].as_str().unwrap_or("").contains("EICAR"));
    assert_eq!(note["size"], file.len());
}

#[tokio::test]
async fn clean_files_pass_with_a_clean_scan() {
    let spool = temp_dir("clean");
    let service = service(
        vec![text_section()],
        Some(scanner(&clamd_address())),
        &spool,
    );
    let files = upload_raw(&service, "image/png", &png(120, 80))
        .await
        .expect("passes");
    assert_eq!(files[0].scan, ScanOutcome::Clean);
}

#[tokio::test]
async fn scanner_down_refuses_with_503_by_default() {
    let spool = temp_dir("down");
    let closed = closed_port();
    let service = service(vec![text_section()], Some(scanner(&closed)), &spool);
    let Err(UploadError::Refused(refused)) = upload_raw(&service, "image/png", &png(8, 8)).await
    else {
        panic!("must refuse while the scanner is down");
    };
    assert_eq!(refused.refusal.reason, Reason::ScannerUnavailable);
    assert_eq!(refused.status(), 503);
    assert_eq!(
        refused.client_body().message,
        Some("uploads are temporarily unavailable")
    );
}

#[tokio::test]
async fn scanner_down_lets_files_through_unscanned_when_allowed() {
    let spool = temp_dir("down-allow");
    let mut section = text_section();
    section.on_scanner_error = OnScannerError::Allow;
    let service = service(vec![section], Some(scanner(&closed_port())), &spool);
    let files = upload_raw(&service, "image/png", &png(8, 8))
        .await
        .expect("allowed");
    assert!(matches!(files[0].scan, ScanOutcome::Unavailable(_)));
}

#[tokio::test]
async fn a_scanner_that_never_answers_times_out() {
    // A listener that accepts and then says nothing, like a wedged clamd.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = format!("tcp://{}", silent.local_addr().expect("addr"));
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let error = client(&address, Duration::from_millis(300))
        .scan_bytes(b"hello")
        .await
        .expect_err("no answer");
    assert!(matches!(error, ScanError::Timeout(..)), "{error}");
    holder.abort();
}

#[tokio::test]
async fn check_files_gives_a_verdict_per_local_file() {
    let dir = temp_dir("check-files");
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        std::fs::write(&path, bytes).expect("write test file");
        path
    };
    let good = write("holiday.png", &png(64, 48));
    let eicar_file = write("notes.txt", &eicar());
    let misnamed = write("avatar.png", &jpeg(32, 32));
    let empty = write("empty.png", b"");
    let missing = dir.join("missing.png");

    let spool = temp_dir("check-spool");
    let service = service(
        vec![text_section()],
        Some(scanner(&clamd_address())),
        &spool,
    );
    let paths = [good, eicar_file, misnamed, empty, missing];
    let checks = check_files(&service, &paths).await;
    let summary: Vec<_> = checks
        .iter()
        .map(|c| match &c.outcome {
            Ok(_) => "pass".to_owned(),
            Err(UploadError::Refused(r)) => r.refusal.reason.to_string(),
            Err(UploadError::Spool(_) | UploadError::SpoolFull(_)) => "unreadable".to_owned(),
        })
        .collect();
    assert_eq!(
        summary,
        ["pass", "malware", "mismatch", "type", "unreadable"]
    );
    assert!(
        !checks.iter().all(|c| c.passed()),
        "the command would exit non-zero"
    );
}

fn closed_port() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    format!("tcp://127.0.0.1:{port}")
}
