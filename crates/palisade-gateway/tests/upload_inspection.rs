//! Upload inspection end to end through `UploadService`, without a scanner: real images
//! from encoders, photos with EXIF and GPS, crafted bad files and malformed bodies.

mod upload_support;

use palisade_gateway::upload::{FileReport, UploadError, UploadService};
use palisade_policy::upload::{FileType, Reason, RequestHead, UploadSection};
use upload_support::*;

struct Forwarded {
    body: Vec<u8>,
    content_length: u64,
    files: Vec<FileReport>,
}

async fn upload(
    service: &UploadService,
    head: RequestHead<'_>,
    body: &[u8],
    piece: usize,
) -> Result<Forwarded, UploadError> {
    let mut inspection = service
        .begin("POST", "/upload/photos", head)
        .expect("an upload route")?;
    for chunk in body.chunks(piece) {
        inspection.feed(chunk).await?;
    }
    let mut passed = inspection.finish().await?;
    let content_length = passed.body.content_length();
    let mut forwarded = Vec::new();
    while let Some(chunk) = passed.body.next_chunk().await? {
        forwarded.extend_from_slice(&chunk);
    }
    Ok(Forwarded {
        body: forwarded,
        content_length,
        files: passed.files,
    })
}

fn multipart_head() -> RequestHead<'static> {
    RequestHead {
        content_type: Some(MULTIPART),
        ..RequestHead::default()
    }
}

fn raw_head(content_type: &str) -> RequestHead<'_> {
    RequestHead {
        content_type: Some(content_type),
        ..RequestHead::default()
    }
}

fn refusal(result: Result<Forwarded, UploadError>) -> palisade_gateway::upload::Refused {
    match result {
        Ok(_) => panic!("expected a refusal, the upload passed"),
        Err(UploadError::Refused(refused)) => *refused,
        Err(other) => panic!("expected a refusal, got {other}"),
    }
}

fn default_service(name: &str) -> (UploadService, TestDir) {
    let spool = temp_dir(name);
    (
        service(vec![UploadSection::with_path("/upload")], None, &spool),
        spool,
    )
}

#[tokio::test]
async fn real_jpeg_png_and_webp_pass_and_are_forwarded_byte_for_byte() {
    let (service, _spool) = default_service("formats");
    let (jpeg, png, webp) = (jpeg(320, 240), png(320, 240), webp(320, 240));
    let parts: Vec<(String, &[u8])> = vec![
        (file_headers("a", "a.jpg", "image/jpeg"), &jpeg),
        (file_headers("b", "b.png", "image/png"), &png),
        (file_headers("c", "c.webp", "image/webp"), &webp),
        (
            "Content-Disposition: form-data; name=\"caption\"".into(),
            b"three pictures",
        ),
    ];
    let parts: Vec<(&str, &[u8])> = parts.iter().map(|(h, c)| (h.as_str(), *c)).collect();
    let body = multipart(&parts);
    let forwarded = upload(&service, multipart_head(), &body, 4096)
        .await
        .expect("passes");
    assert_eq!(forwarded.body, body);
    assert_eq!(forwarded.content_length, body.len() as u64);
    let types: Vec<_> = forwarded.files.iter().map(|f| f.file.file_type).collect();
    assert_eq!(types, [FileType::Jpeg, FileType::Png, FileType::Webp]);
    assert!(
        forwarded
            .files
            .iter()
            .all(|f| f.file.dimensions == Some((320, 240)))
    );
}

#[tokio::test]
async fn raw_put_of_an_image_passes() {
    let (service, _spool) = default_service("raw");
    let mut inspection = service
        .begin("PUT", "/upload/me.png", raw_head("image/png"))
        .expect("PUT is inspected by default")
        .expect("headers fine");
    inspection.feed(&png(64, 64)).await.expect("feed");
    assert_eq!(inspection.finish().await.expect("passes").files.len(), 1);
    assert!(
        service
            .begin("GET", "/upload/x", raw_head("image/png"))
            .is_none()
    );
}

#[tokio::test]
async fn photo_with_exif_and_gps_passes_and_stripping_removes_every_trace() {
    let spool = temp_dir("strip");
    let mut section = UploadSection::with_path("/upload");
    section.strip_metadata = true;
    let stripping = service(vec![section], None, &spool);
    let photo = photo_with_exif(800, 600);
    let png = png_with_exif(200, 150);
    assert!(photo.windows(6).any(|w| w == b"Exif\0\0"));
    let parts_owned = [
        (
            file_headers("photo", "IMG_0001.JPG", "image/jpeg"),
            photo.as_slice(),
        ),
        (
            file_headers("scan", "scan.png", "image/png"),
            png.as_slice(),
        ),
    ];
    let parts: Vec<(&str, &[u8])> = parts_owned.iter().map(|(h, c)| (h.as_str(), *c)).collect();
    let body = multipart(&parts);

    let forwarded = upload(&stripping, multipart_head(), &body, 1500)
        .await
        .expect("passes");
    assert_eq!(forwarded.body.len() as u64, forwarded.content_length);
    assert!(forwarded.body.len() < body.len());
    for needle in [&b"Exif\0\0"[..], b"Palisade Optics", b"xmpmeta", b"eXIf"] {
        assert!(
            !forwarded.body.windows(needle.len()).any(|w| w == needle),
            "{} survived stripping",
            String::from_utf8_lossy(needle)
        );
    }
    // The stripped files still decode, at the same size.
    let again = upload(&stripping, multipart_head(), &forwarded.body, 9000)
        .await
        .expect("valid");
    assert_eq!(again.body, forwarded.body, "stripping is idempotent");
    let first = &again.files[0].file;
    let start = first.body_range().start as usize;
    let jpeg = image::load_from_memory(&forwarded.body[start..start + first.size as usize])
        .expect("stripped JPEG decodes");
    assert_eq!((jpeg.width(), jpeg.height()), (800, 600));

    // Without stripping the same photo goes through untouched.
    let (plain, _spool) = default_service("nostrip");
    assert_eq!(
        upload(&plain, multipart_head(), &body, 1500)
            .await
            .expect("ok")
            .body,
        body
    );
}

#[tokio::test]
async fn png_with_php_appended_is_refused_as_a_polyglot() {
    let (service, _spool) = default_service("polyglot");
    let mut file = png(32, 32);
    file.extend_from_slice(b"<?php system($_GET['cmd']); ?>");
    let refused = refusal(upload(&service, raw_head("image/png"), &file, 1000).await);
    assert_eq!(refused.refusal.reason, Reason::Polyglot);
    assert_eq!(refused.status(), 422);
    assert!(
        refused.refusal.detail.to_lowercase().contains("php"),
        "{}",
        refused.refusal.detail
    );
}

#[tokio::test]
async fn jpeg_declared_as_png_is_refused_as_a_mismatch() {
    let (service, _spool) = default_service("mismatch");
    let headers = file_headers("avatar", "avatar.png", "image/png");
    let body = multipart(&[(&headers, &jpeg(64, 64))]);
    let refused = refusal(upload(&service, multipart_head(), &body, 1000).await);
    assert_eq!(refused.refusal.reason, Reason::Mismatch);
    assert_eq!(refused.status(), 415);
    let client = serde_json::to_value(refused.client_body()).expect("json");
    assert_eq!(
        client,
        serde_json::json!({"error": "upload refused", "reason": "mismatch", "file": "avatar"})
    );
}

#[tokio::test]
async fn tiny_png_claiming_100000_by_100000_pixels_is_refused_before_decoding() {
    let (service, _spool) = default_service("bomb");
    let bomb = png_claiming(100_000, 100_000);
    assert!(bomb.len() < 1000);
    let refused = refusal(upload(&service, raw_head("image/png"), &bomb, 64).await);
    assert_eq!(refused.refusal.reason, Reason::Image);
    assert!(refused.refusal.detail.contains("100000 x 100000"));
}

#[tokio::test]
async fn truncated_jpeg_and_empty_file_are_refused() {
    let (service, _spool) = default_service("truncated");
    let jpeg = jpeg(200, 200);
    let refused = refusal(
        upload(
            &service,
            raw_head("image/jpeg"),
            &jpeg[..jpeg.len() / 2],
            999,
        )
        .await,
    );
    assert_eq!(refused.refusal.reason, Reason::Image);
    assert!(refused.refusal.detail.contains("truncated"));

    let headers = file_headers("f", "empty.png", "image/png");
    let body = multipart(&[(&headers, b"")]);
    let refused = refusal(upload(&service, multipart_head(), &body, 999).await);
    assert_eq!(refused.refusal.reason, Reason::Type);
}

#[tokio::test]
async fn six_megabyte_png_is_refused_as_soon_as_five_megabytes_are_crossed() {
    let (service, _spool) = default_service("big");
    let big = noisy_png(1300, 1250);
    assert!(big.len() > 6_000_000, "{} bytes", big.len());
    let mut inspection = service
        .begin("POST", "/upload", raw_head("image/png"))
        .expect("route")
        .expect("headers");
    let mut fed = 0usize;
    let refused = loop {
        let chunk = &big[fed..fed + 64 * 1024];
        match inspection.feed(chunk).await {
            Ok(()) => fed += chunk.len(),
            Err(error) => break error,
        }
    };
    assert_eq!(refused.status(), 413);
    assert!(
        fed <= 5 << 20,
        "stopped at the chunk that crossed 5 MB, fed {fed}"
    );
}

#[tokio::test]
async fn gif_is_refused_by_default_and_accepted_when_allowed() {
    let (service, _spool) = default_service("gif");
    let gif = gif(40, 30);
    let refused = refusal(upload(&service, raw_head("image/gif"), &gif, 512).await);
    assert_eq!(refused.refusal.reason, Reason::Type);

    let spool = temp_dir("gif-allowed");
    let mut section = UploadSection::with_path("/upload");
    section.allowed_types = vec!["image/gif".into()];
    let allowing = service_with(section, &spool);
    upload(&allowing, raw_head("image/gif"), &gif, 512)
        .await
        .expect("gif allowed");
}

fn service_with(section: UploadSection, spool: &std::path::Path) -> UploadService {
    upload_support::service(vec![section], None, spool)
}

#[tokio::test]
async fn png_with_corrupt_pixel_data_but_valid_structure_fails_to_decode() {
    let (service, _spool) = default_service("corrupt");
    let mut file = png(64, 64);
    // Find IDAT, scramble its compressed data, and fix the CRC so only decoding can tell.
    let idat = file.windows(4).position(|w| w == b"IDAT").expect("IDAT") - 4;
    let len = u32::from_be_bytes(file[idat..idat + 4].try_into().expect("4 bytes")) as usize;
    for byte in &mut file[idat + 10..idat + 8 + len] {
        *byte = byte.wrapping_mul(7).wrapping_add(3);
    }
    let crc = crc32fast::hash(&file[idat + 4..idat + 8 + len]);
    file[idat + 8 + len..idat + 12 + len].copy_from_slice(&crc.to_be_bytes());
    let refused = refusal(upload(&service, raw_head("image/png"), &file, 700).await);
    assert_eq!(refused.refusal.reason, Reason::Image);
    assert!(
        refused.refusal.detail.contains("does not decode"),
        "{}",
        refused.refusal.detail
    );
}

#[tokio::test]
async fn webp_with_exif_is_stripped_into_a_valid_webp() {
    let spool = temp_dir("strip-webp");
    let mut section = UploadSection::with_path("/upload");
    section.strip_metadata = true;
    let stripping = service(vec![section], None, &spool);
    let original = webp_with_exif(90, 60);
    image::load_from_memory(&original).expect("the test file itself decodes");
    let forwarded = upload(&stripping, raw_head("image/webp"), &original, 100)
        .await
        .expect("passes");
    assert!(forwarded.body.len() < original.len());
    assert!(
        !forwarded
            .body
            .windows(4)
            .any(|w| w == b"EXIF" || w == b"XMP ")
    );
    let size = u32::from_le_bytes(forwarded.body[4..8].try_into().expect("4 bytes"));
    assert_eq!(
        size as usize + 8,
        forwarded.body.len(),
        "RIFF size matches the new length"
    );
    assert_eq!(forwarded.body[20] & 0x0C, 0, "EXIF and XMP flags cleared");
    let decoded = image::load_from_memory(&forwarded.body).expect("stripped WebP decodes");
    assert_eq!((decoded.width(), decoded.height()), (90, 60));
}

#[tokio::test]
async fn refused_files_are_quarantined_whole_or_in_part_with_a_note() {
    let spool = temp_dir("quarantine-spool");
    let quarantine = temp_dir("quarantine");
    let mut section = UploadSection::with_path("/upload");
    section.quarantine_dir = Some(quarantine.to_path_buf());
    section.max_file_size = palisade_policy::units::ByteSize(200 << 10);
    let service = service(vec![section], None, &spool);

    let mut polyglot = png(64, 64);
    polyglot.extend_from_slice(b"<?php eval($_POST['x']); ?>");
    let headers = file_headers("upload", "cute.png", "image/png");
    let body = multipart(&[(&headers, &polyglot)]);
    let refused = refusal(upload(&service, multipart_head(), &body, 333).await);
    let kept = refused.quarantined.clone().expect("kept");
    assert_eq!(std::fs::read(&kept).expect("read"), polyglot);
    let note: serde_json::Value =
        serde_json::from_slice(&std::fs::read(kept.with_extension("json")).expect("note"))
            .expect("json");
    assert_eq!(note["reason"], "polyglot");
    assert_eq!(note["field"], "upload");
    assert_eq!(note["filename"], "cute.png");
    assert_eq!(note["complete"], true);
    let event = refused.event();
    assert_eq!((event.reason, event.status), ("polyglot", 422));
    assert_eq!(event.quarantined, Some(kept));

    // Refused on size while streaming: what arrived is kept, marked incomplete.
    let big = noisy_png(300, 300);
    let refused = refusal(upload(&service, raw_head("image/png"), &big, 64 << 10).await);
    assert_eq!(refused.refusal.reason, Reason::Size);
    let kept = refused.quarantined.expect("kept");
    let partial = std::fs::read(&kept).expect("read");
    assert!(partial.len() < big.len() && big.starts_with(&partial));
    let note: serde_json::Value =
        serde_json::from_slice(&std::fs::read(kept.with_extension("json")).expect("note"))
            .expect("json");
    assert_eq!(note["complete"], false);
    assert_eq!(std::fs::read_dir(&*quarantine).expect("dir").count(), 4);
}

#[tokio::test]
async fn the_passed_body_streams_as_an_http_body_with_an_exact_length() {
    use http_body::Body;

    let spool = temp_dir("http-body");
    let mut section = UploadSection::with_path("/upload");
    section.strip_metadata = true;
    let service = service(vec![section], None, &spool);
    let photo = photo_with_exif(640, 480);
    let mut inspection = service
        .begin("PUT", "/upload/x.jpg", raw_head("image/jpeg"))
        .expect("route")
        .expect("headers");
    for chunk in photo.chunks(10_000) {
        inspection.feed(chunk).await.expect("feed");
    }
    let passed = inspection.finish().await.expect("passes");
    let mut body = passed.body.into_http_body();
    let length = body.size_hint().exact().expect("exact length");
    assert!(length < photo.len() as u64, "metadata removed");
    let mut sent = Vec::new();
    while let Some(frame) =
        std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await
    {
        sent.extend_from_slice(&frame.expect("frame").into_data().expect("data"));
    }
    assert_eq!(sent.len() as u64, length);
    assert!(body.is_end_stream());
    image::load_from_memory(&sent).expect("forwarded JPEG decodes");
}
