//! Uploads through a listening palisade to a real upstream: what passes arrives byte for
//! byte, what is refused never reaches the upstream and answers with its reason; clamd is
//! real (`scripts/clamd`).

mod common;
mod upload_gateway;
#[path = "../../palisade-gateway/tests/upload_support/mod.rs"]
mod upload_support;

use upload_gateway::*;
use upload_support::*;

/// The rules most tests use: images and text under `/upload`, a 1 s body timeout.
const RULES: &str = "[[upload]]\npath = \"/upload\"\n\
    allowed_types = [\"image/jpeg\", \"image/png\", \"image/webp\", \"text/plain\"]\n\
    body_read_timeout = \"1s\"\n";

async fn gateway() -> UploadGateway {
    UploadGateway::start(RULES).await
}

fn reason(answer: &Answer) -> String {
    answer.json()["reason"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn valid_jpeg_png_and_webp_reach_the_upstream_byte_for_byte() {
    let palisade = gateway().await;
    let (jpeg, png, webp) = (jpeg(320, 200), png(64, 48), webp(40, 30));
    let parts = [
        (file_headers("a", "photo.jpg", "image/jpeg"), &jpeg),
        (file_headers("b", "icon.png", "image/png"), &png),
        (file_headers("c", "pic.webp", "image/webp"), &webp),
    ];
    let parts: Vec<(&str, &[u8])> = parts.iter().map(|(h, b)| (h.as_str(), &b[..])).collect();
    let sent = multipart(&parts);
    let answer = palisade.post_form("/upload/form", &parts).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.body, sent, "the upstream got the form as sent");
    assert_eq!(
        answer.headers["x-seen-content-length"],
        sent.len().to_string().as_str()
    );

    // A raw PUT of each, too.
    for (content_type, bytes) in [
        ("image/jpeg", jpeg),
        ("image/png", png),
        ("image/webp", webp),
    ] {
        let answer = palisade
            .send("PUT", "/upload/raw", content_type, bytes.clone(), &[])
            .await;
        assert_eq!(answer.status, 200, "{content_type}: {}", answer.text());
        assert_eq!(answer.body, bytes, "{content_type}");
    }
    let passed = palisade.event("upload.passed").await;
    assert_eq!(passed["upload.types"][1], "image/png");
    assert_eq!(passed["upload.forwarded"], sent.len());
}

#[tokio::test]
async fn a_6_mb_png_is_refused_with_413_without_reading_the_rest() {
    let palisade = gateway().await;
    let big = noisy_png(1300, 1200);
    assert!(big.len() > 6_000_000, "{}", big.len());
    // The client sends one byte past the 5 MB limit, then nothing: only an answer given
    // as the limit is crossed (not at the end of the body) can reach it, and it is not the
    // 408 of a stalled body.
    let sent = (5 << 20) + 1;
    let head = format!(
        "PUT /upload/big.png HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n\
         Accept: application/json\r\nContent-Length: {}\r\n\r\n",
        big.len()
    );
    let response = raw_request(
        palisade.running.proxy_addr,
        &head,
        &big[..sent],
        Ending::Stall,
    )
    .await;
    assert_eq!(status_of(&response), 413, "{response}");
    assert!(response.contains("\"reason\":\"size\""), "{response}");
    palisade.assert_nothing_forwarded_nor_left().await;
}

#[tokio::test]
async fn a_jpeg_declared_as_png_is_refused_as_a_mismatch() {
    let palisade = gateway().await;
    let headers = file_headers("avatar", "me.png", "image/png");
    let answer = palisade
        .post_form("/upload", &[(&headers, &jpeg(32, 32))])
        .await;
    assert_eq!(answer.status, 415);
    assert_eq!(reason(&answer), "mismatch");
    assert_eq!(answer.json()["file"], "avatar");
    palisade.assert_nothing_forwarded_nor_left().await;
}

#[tokio::test]
async fn a_png_carrying_php_is_refused_as_a_polyglot_and_counted() {
    let palisade = gateway().await;
    let mut polyglot = png(64, 64);
    polyglot.extend_from_slice(b"<?php system($_GET['c']); ?>");
    let headers = file_headers("avatar", "me.png", "image/png");
    let answer = palisade
        .post_form("/upload", &[(&headers, &polyglot)])
        .await;
    assert_eq!(answer.status, 422);
    assert_eq!(reason(&answer), "polyglot");
    palisade.assert_nothing_forwarded_nor_left().await;
    let event = palisade.event("upload.refused").await;
    assert_eq!(event["upload.reason"], "polyglot");
    assert_eq!(event["upload.filename"], "me.png");
    let metrics = palisade.metrics().await;
    assert!(
        metrics.contains("palisade_uploads_total{outcome=\"refused\",reason=\"polyglot\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn an_image_claiming_100000_by_100000_pixels_is_refused_before_decoding() {
    let palisade = gateway().await;
    let bomb = png_claiming(100_000, 100_000);
    let answer = palisade
        .send("PUT", "/upload/bomb.png", "image/png", bomb, &[])
        .await;
    assert_eq!(answer.status, 422);
    assert_eq!(reason(&answer), "image");
    palisade.assert_nothing_forwarded_nor_left().await;
    let event = palisade.event("upload.refused").await;
    assert!(
        event["upload.detail"]
            .as_str()
            .unwrap_or_default()
            .contains("pixels"),
        "{event}"
    );
}

#[tokio::test]
async fn a_truncated_jpeg_and_an_empty_file_are_refused() {
    let palisade = gateway().await;
    let jpeg = jpeg(200, 150);
    let cut = jpeg[..jpeg.len() - 200].to_vec();
    let answer = palisade
        .send("PUT", "/upload/cut.jpg", "image/jpeg", cut, &[])
        .await;
    assert_eq!(answer.status, 422);
    assert_eq!(reason(&answer), "image");

    let answer = palisade
        .send("PUT", "/upload/empty.png", "image/png", Vec::new(), &[])
        .await;
    assert!(answer.status.is_client_error(), "{}", answer.status);
    assert_eq!(answer.json()["error"], "upload refused");
    palisade.assert_nothing_forwarded_nor_left().await;
}

#[tokio::test]
async fn eicar_text_is_refused_as_malware_naming_the_signature_only_in_the_event() {
    let palisade = UploadGateway::start(&format!("{RULES}{}", real_scanner())).await;
    let mut notes = b"minutes of the meeting\n".to_vec();
    notes.extend(eicar());
    let headers = file_headers("notes", "notes.txt", "text/plain");
    let answer = palisade.post_form("/upload", &[(&headers, &notes)]).await;
    assert_eq!(answer.status, 422);
    assert_eq!(reason(&answer), "malware");
    assert!(!answer.text().contains("EICAR"), "{}", answer.text());
    palisade.assert_nothing_forwarded_nor_left().await;
    let event = palisade.event("upload.refused").await;
    assert_eq!(event["upload.signature"], "Palisade.Test.EICAR.UNOFFICIAL");

    // Clean files pass the same scanner.
    let headers = file_headers("notes", "notes.txt", "text/plain");
    let answer = palisade
        .post_form("/upload", &[(&headers, b"just notes\n")])
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let passed = palisade.event("upload.passed").await;
    assert_eq!(passed["upload.scans"][0], "clean");
}

#[tokio::test]
async fn a_dead_scanner_refuses_with_503_unless_the_rule_allows() {
    let rules = "[[upload]]\npath = \"/upload\"\n\n\
                 [[upload]]\npath = \"/upload/lenient\"\non_scanner_error = \"allow\"\n";
    let palisade = UploadGateway::start(&format!("{rules}{}", dead_scanner())).await;
    let image = png(32, 32);
    let answer = palisade
        .send("PUT", "/upload/a.png", "image/png", image.clone(), &[])
        .await;
    assert_eq!(answer.status, 503);
    assert_eq!(reason(&answer), "scanner_unavailable");
    assert_eq!(
        answer.json()["message"],
        "uploads are temporarily unavailable"
    );
    assert_eq!(answer.headers["retry-after"], "30");
    palisade.assert_nothing_forwarded_nor_left().await;

    let answer = palisade
        .send(
            "PUT",
            "/upload/lenient/a.png",
            "image/png",
            image.clone(),
            &[],
        )
        .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, image);
    let passed = palisade.event("upload.passed").await;
    assert_eq!(passed["upload.scans"][0], "unavailable");
}

#[tokio::test]
async fn strip_metadata_removes_exif_and_gps_before_forwarding() {
    let rules = "[[upload]]\npath = \"/upload\"\nstrip_metadata = true\n";
    let palisade = UploadGateway::start(rules).await;
    for (content_type, photo) in [
        ("image/jpeg", photo_with_exif(160, 120)),
        ("image/png", png_with_exif(64, 48)),
        ("image/webp", webp_with_exif(40, 30)),
    ] {
        let answer = palisade
            .send("PUT", "/upload/p", content_type, photo.clone(), &[])
            .await;
        assert_eq!(answer.status, 200, "{content_type}: {}", answer.text());
        let forwarded = &answer.body;
        assert!(
            forwarded.len() < photo.len(),
            "{content_type}: nothing removed"
        );
        assert_eq!(
            answer.headers["x-seen-content-length"],
            forwarded.len().to_string().as_str()
        );
        for marker in [&b"Palisade Optics"[..], b"GPSLatitude", b"Exif\0\0"] {
            assert!(
                !forwarded.windows(marker.len()).any(|w| w == marker),
                "{content_type} still carries {}",
                String::from_utf8_lossy(marker)
            );
        }
        let decoded = image::load_from_memory(forwarded).expect("still an image");
        assert!(decoded.width() > 0);
    }
}

#[tokio::test]
async fn file_names_with_paths_nul_or_control_characters_are_refused() {
    let palisade = gateway().await;
    // A climbing name, and a backslash that parsers read differently, are attacks: managed
    // detection (before the upload checks) refuses them.
    for name in ["../../etc/cron.d/x.png", "a\\b.png"] {
        let headers = file_headers("f", name, "image/png");
        let answer = palisade
            .post_form("/upload", &[(&headers, &png(8, 8))])
            .await;
        assert_eq!(answer.status, 403, "{name}: {}", answer.text());
    }
    for name in ["dir/x.png", "x\u{1}.png"] {
        let headers = file_headers("f", name, "image/png");
        let answer = palisade
            .post_form("/upload", &[(&headers, &png(8, 8))])
            .await;
        assert_eq!(answer.status, 400, "{name}: {}", answer.text());
        assert_eq!(reason(&answer), "malformed", "{name}");
    }
    // A NUL cannot be written in a quoted header value, but a percent-encoded one can.
    let headers = file_headers("f", "x.png%00.php", "image/png");
    let answer = palisade
        .post_form("/upload", &[(&headers, &png(8, 8))])
        .await;
    assert!(answer.status.is_client_error(), "{}", answer.status);
    palisade.assert_nothing_forwarded_nor_left().await;
}

#[tokio::test]
async fn other_paths_and_methods_are_forwarded_untouched() {
    let palisade = gateway().await;
    let mut polyglot = png(16, 16);
    polyglot.extend_from_slice(b"<?php echo 1; ?>");
    let headers = file_headers("f", "x.png", "image/png");
    let answer = palisade.post_form("/other", &[(&headers, &polyglot)]).await;
    assert_eq!(answer.status, 200);
    assert!(
        answer.text().contains("<?php echo 1; ?>"),
        "{}",
        answer.text()
    );
    let answer = palisade
        .send("GET", "/upload/list", "text/plain", Vec::new(), &[])
        .await;
    assert_eq!(answer.status, 200);
    assert_eq!(palisade.upstream.hits(), 2);
    assert!(palisade.events("upload.refused").is_empty());
}

#[tokio::test]
async fn other_spellings_of_an_upload_path_are_inspected_too() {
    let palisade = gateway().await;
    let mut polyglot = png(16, 16);
    polyglot.extend_from_slice(b"<?php echo 1; ?>");
    for path in [
        "/%75pload/x",
        "/img/../upload/x",
        "//upload/x",
        "/upload;a=b/x",
    ] {
        let answer = palisade
            .send("PUT", path, "image/png", polyglot.clone(), &[])
            .await;
        assert_eq!(answer.status, 422, "{path}");
    }
    palisade.assert_nothing_forwarded_nor_left().await;
}

#[tokio::test]
async fn browsers_get_an_html_refusal_page() {
    let palisade = gateway().await;
    let answer = palisade
        .send(
            "PUT",
            "/upload/x",
            "image/png",
            jpeg(16, 16),
            &[("accept", "text/html")],
        )
        .await;
    assert_eq!(answer.status, 415);
    assert!(
        answer.headers["content-type"]
            .to_str()
            .unwrap_or_default()
            .starts_with("text/html")
    );
    assert!(
        answer.text().contains("Upload refused"),
        "{}",
        answer.text()
    );
}

fn palisade_upload_check(args: &[&std::path::Path]) -> (Option<i32>, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["upload", "check"])
        .args(args)
        .output()
        .expect("palisade upload check runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    (
        output.status.code(),
        stdout + &String::from_utf8_lossy(&output.stderr),
    )
}

#[test]
fn upload_check_prints_a_verdict_per_file_and_fails_when_any_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).expect("write");
        path
    };
    let good = write("photo.jpg", &jpeg(64, 48));
    let mut bytes = png(16, 16);
    bytes.extend_from_slice(b"<?php echo 1; ?>");
    let polyglot = write("icon.png", &bytes);
    let renamed = write("photo.png", &jpeg(16, 16));

    let (code, out) = palisade_upload_check(&[&good]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("photo.jpg: passed (image/jpeg, 64x48"),
        "{out}"
    );

    let (code, out) = palisade_upload_check(&[&good, &polyglot, &renamed]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("icon.png: refused (polyglot)"), "{out}");
    assert!(out.contains("photo.png: refused (mismatch)"), "{out}");

    // With the configuration's rule and scanner: text allowed, EICAR found by clamd.
    let config = dir.path().join("palisade.toml");
    let toml = format!(
        "[[upload]]\npath = \"/\"\nallowed_types = [\"text/plain\"]\n{}",
        upload_gateway::real_scanner()
    );
    std::fs::write(&config, toml).expect("config");
    let mut text = b"notes\n".to_vec();
    text.extend(eicar());
    let infected = write("notes.txt", &text);
    let clean = write("clean.txt", b"just notes\n");
    let (code, out) =
        palisade_upload_check(&[&clean, &infected, std::path::Path::new("--config"), &config]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("clean.txt: passed (text/plain"), "{out}");
    assert!(out.contains("scan clean"), "{out}");
    assert!(
        out.contains("notes.txt: refused (malware): clamd found Palisade.Test.EICAR"),
        "{out}"
    );
}

#[test]
fn palisade_check_points_at_a_bad_upload_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("palisade.toml");
    let text = "[[upload]]\npath = \"/upload\"\nallowed_types = [\"image/png\", \"image/exe\"]\n";
    std::fs::write(&config, text).expect("config");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .expect("palisade check runs");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let expected = format!("{}:3:17: upload[0].allowed_types", config.display());
    assert!(stderr.starts_with(&expected), "{stderr}");
}
