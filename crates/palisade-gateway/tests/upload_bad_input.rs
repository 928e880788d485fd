//! The bad inputs: malformed multipart bodies, bodies that end early, clients that
//! stop sending. Each is refused with a precise reason, nothing is forwarded, and no
//! temporary file is left behind.

mod upload_support;

use std::path::Path;

use palisade_gateway::upload::{UploadError, UploadInspection, UploadService};
use palisade_policy::upload::{Reason, RequestHead, UploadSection};
use upload_support::*;

fn head(content_type: &str) -> RequestHead<'_> {
    RequestHead {
        content_type: Some(content_type),
        ..RequestHead::default()
    }
}

fn start(service: &UploadService, content_type: &str) -> Result<UploadInspection, UploadError> {
    service
        .begin("POST", "/upload", head(content_type))
        .expect("upload route")
}

/// Feeds `body` and finishes; returns the refusal's reason and detail.
async fn refuse(service: &UploadService, content_type: &str, body: &[u8]) -> (Reason, String) {
    let outcome = async {
        let mut inspection = start(service, content_type)?;
        for chunk in body.chunks(8192) {
            inspection.feed(chunk).await?;
        }
        inspection.finish().await
    }
    .await;
    match outcome {
        Err(UploadError::Refused(refused)) => (refused.refusal.reason, refused.refusal.detail),
        Err(other) => panic!("expected a refusal, got {other}"),
        Ok(_) => panic!("expected a refusal, the body passed"),
    }
}

/// Files in the spool directory, and descriptors of this process pointing into it.
fn leftovers(spool: &Path) -> usize {
    let entries = std::fs::read_dir(spool).map_or(0, |d| d.count());
    let open = std::fs::read_dir("/proc/self/fd")
        .map(|fds| {
            fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
                .filter(|target| target.starts_with(spool))
                .count()
        })
        .unwrap_or(0);
    entries + open
}

fn setup(name: &str) -> (UploadService, TestDir) {
    let spool = temp_dir(name);
    (
        service(vec![UploadSection::with_path("/upload")], None, &spool),
        spool,
    )
}

#[tokio::test]
async fn multipart_without_a_boundary_is_refused_from_its_headers() {
    let (service, _spool) = setup("no-boundary");
    let Err(UploadError::Refused(refused)) = start(&service, "multipart/form-data") else {
        panic!("expected a refusal");
    };
    assert_eq!(refused.refusal.reason, Reason::Malformed);
    assert_eq!(refused.status(), 400);
    assert!(refused.refusal.detail.contains("without a boundary"));
}

#[tokio::test]
async fn boundary_that_never_ends_is_refused() {
    let (service, spool) = setup("never-ends");
    let headers = file_headers("f", "a.png", "image/png");
    let mut body = format!("--{BOUNDARY}\r\n{headers}\r\n\r\n").into_bytes();
    body.extend(png(300, 300));
    let (reason, detail) = refuse(&service, MULTIPART, &body).await;
    assert_eq!(reason, Reason::Malformed);
    assert!(detail.contains("closing boundary never came"), "{detail}");
    assert_eq!(leftovers(&spool), 0);
}

#[tokio::test]
async fn ten_thousand_parts_are_refused() {
    let (service, _spool) = setup("parts");
    let field = "Content-Disposition: form-data; name=\"x\"";
    let parts: Vec<(&str, &[u8])> = (0..10_000).map(|_| (field, &b"1"[..])).collect();
    let (reason, detail) = refuse(&service, MULTIPART, &multipart(&parts)).await;
    assert_eq!(reason, Reason::Malformed);
    assert!(detail.contains("more than 64 parts"), "{detail}");
}

#[tokio::test]
async fn a_one_megabyte_part_header_is_refused() {
    let (service, _spool) = setup("big-header");
    let huge = format!(
        "Content-Disposition: form-data; name=\"f\"\r\nX-Padding: {}",
        "a".repeat(1 << 20)
    );
    let (reason, detail) = refuse(&service, MULTIPART, &multipart(&[(&huge, b"x")])).await;
    assert_eq!(reason, Reason::Malformed);
    assert!(
        detail.contains("part headers longer than 8 KiB"),
        "{detail}"
    );
}

#[tokio::test]
async fn nested_multipart_is_refused() {
    let (service, _spool) = setup("nested");
    let inner = format!(
        "--inner\r\n{}\r\n\r\n{}\r\n--inner--",
        file_headers("f", "a.png", "image/png"),
        "x"
    );
    let outer = "Content-Disposition: form-data; name=\"files\"\r\n\
                 Content-Type: multipart/mixed; boundary=inner";
    let (reason, detail) = refuse(
        &service,
        MULTIPART,
        &multipart(&[(outer, inner.as_bytes())]),
    )
    .await;
    assert_eq!(reason, Reason::Malformed);
    assert!(detail.contains("nested multipart"), "{detail}");
}

#[tokio::test]
async fn a_file_that_ends_mid_chunk_is_refused() {
    let (service, spool) = setup("mid-chunk");
    let headers = file_headers("f", "a.jpg", "image/jpeg");
    let body = multipart(&[(&headers, &jpeg(400, 300))]);
    let (reason, _) = refuse(&service, MULTIPART, &body[..body.len() * 2 / 3]).await;
    assert_eq!(reason, Reason::Malformed);
    // A raw upload cut short is a truncated image.
    let jpeg = jpeg(400, 300);
    let (reason, detail) = refuse(&service, "image/jpeg", &jpeg[..jpeg.len() - 100]).await;
    assert_eq!(reason, Reason::Image);
    assert!(detail.contains("truncated"), "{detail}");
    assert_eq!(leftovers(&spool), 0);
}

#[tokio::test]
async fn a_client_that_stops_sending_leaves_no_temporary_file() {
    let (service, spool) = setup("stalled");
    let headers = file_headers("f", "a.png", "image/png");
    let body = multipart(&[(&headers, &noisy_png(400, 400))]);
    let mut inspection = start(&service, MULTIPART).expect("start");
    inspection
        .feed(&body[..300_000])
        .await
        .expect("first half is fine");
    assert!(
        inspection.is_spooled_to_disk(),
        "the body is on disk by now"
    );
    assert!(
        leftovers(&spool) > 0,
        "the open temporary file is visible while in use"
    );
    // The gateway's body timeout fires and the request future is dropped.
    drop(inspection);
    assert_eq!(leftovers(&spool), 0);
}

#[tokio::test]
async fn no_temporary_file_survives_a_refusal_or_a_pass() {
    let (service, spool) = setup("cleanup");
    let big = noisy_png(300, 300);
    let mut polyglot = big.clone();
    polyglot.extend_from_slice(b"PK\x03\x04 a zip rides along");
    let _ = refuse(&service, "image/png", &polyglot).await;
    assert_eq!(leftovers(&spool), 0);

    let mut inspection = start(&service, "image/png").expect("start");
    inspection.feed(&big).await.expect("feed");
    let mut passed = inspection.finish().await.expect("passes");
    while passed.body.next_chunk().await.expect("read").is_some() {}
    drop(passed);
    assert_eq!(leftovers(&spool), 0);
}

#[tokio::test]
async fn unsafe_file_names_are_refused() {
    let (service, _spool) = setup("names");
    for name in [
        "../../../etc/cron.d/x.png",
        "..\\\\win.png",
        "a\u{1}.png",
        "x.png%00.php",
    ] {
        let headers = file_headers("f", name, "image/png");
        let (reason, detail) =
            refuse(&service, MULTIPART, &multipart(&[(&headers, &png(4, 4))])).await;
        assert!(
            matches!(reason, Reason::Malformed | Reason::Mismatch),
            "{name}: {reason} {detail}"
        );
    }
}

#[tokio::test]
async fn memory_stays_bounded_while_a_large_upload_streams() {
    let spool = temp_dir("bounded");
    let mut section = UploadSection::with_path("/upload");
    section.max_file_size = palisade_policy::units::ByteSize(1 << 30);
    section.max_body_size = Some(palisade_policy::units::ByteSize(1 << 30));
    section.allowed_types = vec!["text/plain".into()];
    let service = service(vec![section], None, &spool);
    let mut inspection = start(&service, MULTIPART).expect("start");
    let headers = format!(
        "--{BOUNDARY}\r\n{}\r\n\r\n",
        file_headers("log", "big.txt", "text/plain")
    );
    inspection.feed(headers.as_bytes()).await.expect("headers");
    let chunk = b"line of a long log file\r\n".repeat(2600);
    let mut peak = 0;
    for _ in 0..500 {
        inspection.feed(&chunk).await.expect("text streams");
        peak = peak.max(inspection.buffered_len());
    }
    assert!(inspection.received() > 30 << 20);
    // 16 KiB spool memory, 8 KiB header limit, 4 KiB sniff window.
    assert!(peak <= 32 << 10, "held {peak} bytes in memory");
}
