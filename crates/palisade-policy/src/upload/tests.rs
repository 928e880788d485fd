//! Whole-request inspection: raw and multipart bodies through [`RequestInspector`].

use super::config::{UploadConfig, UploadSection};
use super::testdata::{self, jpeg, multipart, png, webp};
use super::*;

fn rule_from(toml_like: impl FnOnce(&mut UploadSection)) -> UploadRule {
    let mut section = UploadSection::with_path("/upload");
    toml_like(&mut section);
    UploadConfig::from_sections(&[section], None)
        .expect("valid")
        .rules
        .remove(0)
}

fn default_rule() -> UploadRule {
    rule_from(|_| {})
}

fn raw(content_type: &str) -> RequestHead<'_> {
    RequestHead {
        content_type: Some(content_type),
        ..RequestHead::default()
    }
}

const CT: &str = "multipart/form-data; boundary=b0undary";

fn inspect(
    rule: &UploadRule,
    head: RequestHead<'_>,
    body: &[u8],
) -> Result<InspectedBody, Refusal> {
    let mut inspector = RequestInspector::start(rule, head)?;
    for piece in body.chunks(1000) {
        inspector.feed(piece)?;
    }
    inspector.finish()
}

fn file_part(name: &str, filename: &str, content_type: &str) -> String {
    format!(
        "Content-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\n\
         Content-Type: {content_type}"
    )
}

#[test]
fn raw_png_upload_passes() {
    let body = inspect(&default_rule(), raw("image/png"), &png(32, 32)).expect("passes");
    assert_eq!(body.files.len(), 1);
    assert_eq!(body.files[0].file_type, FileType::Png);
    assert_eq!(body.files[0].dimensions, Some((32, 32)));
    assert_eq!(body.files[0].file.display_name(), "body");
}

#[test]
fn multipart_with_files_and_fields_passes() {
    let png_part = file_part("avatar", "me.png", "image/png");
    let jpeg_part = file_part("photo", "trip.JPG", "image/jpeg");
    let parts: [(&str, &[u8]); 3] = [
        ("Content-Disposition: form-data; name=\"title\"", b"holiday"),
        (&png_part, &png(8, 8)),
        (&jpeg_part, &jpeg(8, 8)),
    ];
    let body = inspect(&default_rule(), raw(CT), &multipart("b0undary", &parts)).expect("ok");
    assert_eq!(body.fields, 1);
    let types: Vec<_> = body.files.iter().map(|f| f.file_type).collect();
    assert_eq!(types, [FileType::Png, FileType::Jpeg]);
    assert_eq!(body.files[1].file.field.as_deref(), Some("photo"));
}

#[test]
fn jpeg_declared_as_png_is_a_mismatch() {
    let part = file_part("f", "a.png", "image/png");
    let refusal = inspect(
        &default_rule(),
        raw(CT),
        &multipart("b0undary", &[(&part, &jpeg(8, 8))]),
    )
    .expect_err("mismatch");
    assert_eq!(refusal.reason, Reason::Mismatch);
    assert_eq!(refusal.file.map(|f| f.field), Some(Some("f".into())));
}

#[test]
fn png_named_php_is_a_mismatch_even_when_declared_generically() {
    let part = file_part("f", "shell.php", "application/octet-stream");
    let refusal = inspect(
        &default_rule(),
        raw(CT),
        &multipart("b0undary", &[(&part, &png(8, 8))]),
    )
    .expect_err("mismatch");
    assert_eq!(refusal.reason, Reason::Mismatch);
    assert!(refusal.detail.contains(".php"));
}

#[test]
fn types_not_allowed_are_refused_by_their_bytes() {
    let gif = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;";
    let refusal = inspect(&default_rule(), raw("image/png"), gif).expect_err("gif");
    assert_eq!(refusal.reason, Reason::Type);
    let text = b"just text, named like an image";
    let refusal = inspect(&default_rule(), raw("image/png"), text).expect_err("text");
    assert_eq!(refusal.reason, Reason::Type);
}

#[test]
fn empty_file_is_refused_but_an_empty_file_input_is_not_a_file() {
    let named = file_part("f", "a.png", "image/png");
    let refusal = inspect(
        &default_rule(),
        raw(CT),
        &multipart("b0undary", &[(&named, b"")]),
    )
    .expect_err("empty");
    assert_eq!(refusal.reason, Reason::Type);
    assert_eq!(refusal.detail, "empty file");

    let unchosen = file_part("f", "", "application/octet-stream");
    let body = inspect(
        &default_rule(),
        raw(CT),
        &multipart("b0undary", &[(&unchosen, b"")]),
    )
    .expect("no file chosen");
    assert!(body.files.is_empty());
    assert_eq!(body.fields, 1);
}

#[test]
fn oversized_file_is_refused_as_soon_as_the_limit_is_crossed() {
    let rule = default_rule();
    let mut inspector = RequestInspector::start(&rule, raw("image/png")).expect("start");
    // Signature and IHDR, then an ancillary chunk announcing 1 GiB of data.
    let mut head = png(1000, 1000)[..33].to_vec();
    head.extend_from_slice(&(1u32 << 30).to_be_bytes());
    head.extend_from_slice(b"tEXt");
    inspector.feed(&head).expect("header is fine");
    let piece = vec![0u8; 64 << 10];
    let mut fed = head.len() as u64;
    let refusal = loop {
        match inspector.feed(&piece) {
            Ok(()) => fed += piece.len() as u64,
            Err(refusal) => break refusal,
        }
    };
    assert_eq!(refusal.reason, Reason::Size);
    assert!(
        fed <= rule.limits.max_file_size,
        "refused on the piece that crossed"
    );
    assert_eq!(inspector.feed(b"more").expect_err("stays refused"), refusal);
}

#[test]
fn declared_length_over_the_body_limit_is_refused_before_reading() {
    let head = RequestHead {
        content_type: Some("image/png"),
        content_length: Some(1 << 40),
        ..RequestHead::default()
    };
    let refusal = RequestInspector::start(&default_rule(), head).expect_err("too long");
    assert_eq!(refusal.reason, Reason::Size);
    assert_eq!(refusal.reason.http_status(), 413);
}

#[test]
fn ten_thousand_parts_are_refused() {
    let field = "Content-Disposition: form-data; name=\"x\"";
    let parts: Vec<(&str, &[u8])> = (0..10_000).map(|_| (field, &b"v"[..])).collect();
    let refusal = inspect(&default_rule(), raw(CT), &multipart("b0undary", &parts))
        .expect_err("too many parts");
    assert_eq!(refusal.reason, Reason::Malformed);
    assert!(refusal.detail.contains("more than 64 parts"));
}

#[test]
fn too_many_files_and_oversized_fields_are_size_refusals() {
    let rule = rule_from(|s| s.max_files = 2);
    let part = file_part("f", "a.png", "image/png");
    let image = png(4, 4);
    let parts: Vec<(&str, &[u8])> = (0..3).map(|_| (part.as_str(), &image[..])).collect();
    let refusal = inspect(&rule, raw(CT), &multipart("b0undary", &parts)).expect_err("3 files");
    assert_eq!(refusal.reason, Reason::Size);

    let big = vec![b'a'; 65 << 10];
    let field = "Content-Disposition: form-data; name=\"comment\"";
    let refusal = inspect(
        &default_rule(),
        raw(CT),
        &multipart("b0undary", &[(field, &big)]),
    )
    .expect_err("big field");
    assert_eq!(refusal.reason, Reason::Size);
    assert_eq!(refusal.client_body().file.as_deref(), Some("comment"));
}

#[test]
fn unsafe_file_names_are_refused() {
    for name in ["../../etc/passwd.png", "a%2F..%2Fb.png", "evil\u{7}.png"] {
        let part = file_part("f", name, "image/png");
        let refusal = inspect(
            &default_rule(),
            raw(CT),
            &multipart("b0undary", &[(&part, &png(4, 4))]),
        )
        .expect_err(name);
        assert_eq!(refusal.reason, Reason::Malformed, "{name}");
    }
}

#[test]
fn raw_body_file_name_comes_from_content_disposition() {
    let head = RequestHead {
        content_type: Some("image/webp"),
        content_disposition: Some("attachment; filename=\"x.jpg\""),
        ..RequestHead::default()
    };
    let refusal = inspect(&default_rule(), head, &webp(4, 4, None, None)).expect_err("mismatch");
    assert_eq!(refusal.reason, Reason::Mismatch);
}

#[test]
fn other_multipart_types_and_missing_boundaries_are_malformed() {
    for ct in [
        "multipart/mixed; boundary=x",
        "multipart/form-data",
        "multipart/form-data; boundary=",
    ] {
        let refusal = RequestInspector::start(&default_rule(), raw(ct)).expect_err(ct);
        assert_eq!(refusal.reason, Reason::Malformed, "{ct}");
    }
}

#[test]
fn stripping_edits_are_placed_at_body_offsets() {
    let rule = rule_from(|s| s.strip_metadata = true);
    let part = file_part("f", "a.webp", "image/webp");
    let image = webp(4, 4, Some(b"exif-with-gps"), None);
    let body = multipart("b0undary", &[(&part, &image)]);
    let inspected = inspect(&rule, raw(CT), &body).expect("ok");
    let file = &inspected.files[0];
    assert_eq!(&body[file.body_range().start as usize..][..4], b"RIFF");
    let mut out = Vec::new();
    inspected.edits.clone().into_cursor().apply(&body, &mut out);
    assert_eq!(
        out.len() as u64,
        inspected.edits.output_len(body.len() as u64)
    );
    let expected = multipart("b0undary", &[(&part, &webp(4, 4, None, None))]);
    assert_eq!(out, expected);
}

#[test]
fn memory_stays_bounded_while_a_large_body_streams() {
    let rule = rule_from(|s| {
        s.max_file_size = crate::units::ByteSize(1 << 40);
        s.max_body_size = Some(crate::units::ByteSize(1 << 40));
        s.allowed_types = vec!["text/plain".into()];
    });
    let mut inspector = RequestInspector::start(&rule, raw(CT)).expect("start");
    let header =
        "--b0undary\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\n\r\n";
    inspector.feed(header.as_bytes()).expect("header");
    let piece = b"all work and no play\r\n-".repeat(2800);
    let mut peak = 0;
    for _ in 0..1000 {
        inspector.feed(&piece).expect("text streams");
        peak = peak.max(inspector.buffered_len());
    }
    assert!(inspector.received() > 60 << 20);
    assert!(peak <= 16 << 10, "held {peak} bytes");
    inspector.feed(b"\r\n--b0undary--\r\n").expect("close");
    assert_eq!(
        inspector.finish().expect("passes").files[0].size,
        1000 * piece.len() as u64
    );
}

mod chunking {
    use proptest::prelude::*;

    use super::*;

    fn feed_in(body: &[u8], cuts: &[usize]) -> Result<InspectedBody, Refusal> {
        let rule = rule_from(|s| s.strip_metadata = true);
        let mut inspector = RequestInspector::start(&rule, raw(CT))?;
        let mut at = 0;
        for &cut in cuts {
            let end = (at + cut).min(body.len());
            inspector.feed(&body[at..end])?;
            at = end;
        }
        inspector.feed(&body[at..])?;
        inspector.finish()
    }

    proptest! {
        #[test]
        fn the_verdict_does_not_depend_on_how_the_body_is_cut(
            cuts in proptest::collection::vec(0usize..700, 0..40),
            trailing in proptest::option::of(prop_oneof![
                Just(&b"<?php echo 1; ?>"[..]), Just(&b"PK\x03\x04"[..]), Just(&b"\0\0\0"[..])
            ]),
        ) {
            let mut tail_png = png(16, 16);
            if let Some(extra) = trailing {
                tail_png.extend_from_slice(extra);
            }
            let (a, b, c) = (
                file_part("a", "a.png", "image/png"),
                file_part("b", "b.jpg", "image/jpeg"),
                file_part("c", "c.webp", "image/webp"),
            );
            let parts: [(&str, &[u8]); 3] = [
                (&a, &tail_png),
                (&b, &jpeg(20, 10)),
                (&c, &webp(9, 9, Some(b"exif"), None)),
            ];
            let body = multipart("b0undary", &parts);
            prop_assert_eq!(feed_in(&body, &cuts), feed_in(&body, &[]));
        }
    }
}

#[test]
fn php_hidden_in_a_jpeg_comment_is_a_polyglot() {
    let comment = testdata::jpeg_app(0xFE, b"<?php system($_GET['c']); ?>");
    let image = testdata::jpeg_with(16, 16, &[comment]);
    let refusal = inspect(&default_rule(), raw("image/jpeg"), &image).expect_err("polyglot");
    assert_eq!(refusal.reason, Reason::Polyglot);
    assert_eq!(refusal.detail, "PHP code inside the image");
}

#[test]
fn script_markers_in_plain_text_files_are_not_image_polyglots() {
    let rule = rule_from(|s| s.allowed_types = vec!["text/plain".into()]);
    inspect(
        &rule,
        raw("text/plain"),
        b"how to write <?php echo 1; in a tutorial",
    )
    .expect("text");
}
