use super::*;
use crate::upload::edit::EditPlan;
use crate::upload::testdata::{gif, jpeg, jpeg_app, jpeg_with, png, png_chunk, png_with, webp};

const SETTINGS: ImageSettings = ImageSettings {
    max_pixels: 50_000_000,
    strip_metadata: false,
};
const STRIP: ImageSettings = ImageSettings {
    max_pixels: 50_000_000,
    strip_metadata: true,
};

/// Runs a check with the file cut into pieces of every size from 1 to 7 bytes and whole,
/// asserting that all agree, and returns the whole-file result.
fn check(
    file_type: FileType,
    bytes: &[u8],
    settings: ImageSettings,
) -> Result<ImageInfo, ImageProblem> {
    let run = |piece: usize| {
        let mut check = ImageCheck::for_type(file_type, settings).expect("image type");
        for chunk in bytes.chunks(piece.max(1)) {
            check.feed(chunk)?;
        }
        check.finish()
    };
    let whole = run(bytes.len());
    for piece in 1..=7 {
        assert_eq!(run(piece), whole, "piece size {piece} disagrees");
    }
    whole
}

fn apply(bytes: &[u8], info: &ImageInfo) -> Vec<u8> {
    let plan = EditPlan::new(info.edits.clone());
    let mut out = Vec::new();
    plan.into_cursor().apply(bytes, &mut out);
    out
}

#[test]
fn valid_images_of_each_format_pass_with_their_dimensions() {
    let cases = [
        (FileType::Png, png(640, 480)),
        (FileType::Jpeg, jpeg(640, 480)),
        (FileType::Webp, webp(640, 480, None, None)),
        (FileType::Gif, gif(640, 480)),
    ];
    for (file_type, bytes) in cases {
        let info = check(file_type, &bytes, SETTINGS).expect("valid image");
        assert_eq!((info.width, info.height), (640, 480), "{file_type}");
        assert!(info.edits.is_empty());
    }
}

#[test]
fn tiny_png_claiming_100000_by_100000_pixels_is_refused_from_its_header() {
    let bomb = png(100_000, 100_000);
    assert!(bomb.len() < 100);
    let mut check = ImageCheck::for_type(FileType::Png, SETTINGS).expect("png");
    // The header alone (signature + IHDR) is enough: no decoding needed.
    let err = check.feed(&bomb[..33]).expect_err("bomb");
    assert_eq!(err.reason, Reason::Image);
    assert!(err.detail.contains("100000 x 100000"), "{}", err.detail);
}

#[test]
fn oversized_claims_are_refused_for_every_format() {
    let cases = [
        (FileType::Jpeg, jpeg(65_000, 65_000)),
        (FileType::Webp, webp(16_000, 16_000, None, None)),
        (FileType::Gif, gif(65_000, 65_000)),
    ];
    for (file_type, bytes) in cases {
        let err = check(file_type, &bytes, SETTINGS).expect_err("too many pixels");
        assert_eq!(err.reason, Reason::Image, "{file_type}");
    }
}

#[test]
fn png_with_php_appended_is_a_polyglot() {
    let mut bytes = png(16, 16);
    bytes.extend_from_slice(b"<?php system($_GET['c']); ?>");
    let err = check(FileType::Png, &bytes, SETTINGS).expect_err("polyglot");
    assert_eq!(err.reason, Reason::Polyglot);
    assert!(err.detail.contains("php"), "{}", err.detail);
}

#[test]
fn jpeg_with_zip_or_html_appended_is_a_polyglot() {
    for payload in [
        &b"PK\x03\x04\x14\0\0\0"[..],
        b"<html><script>alert(1)</script>",
    ] {
        let mut bytes = jpeg(16, 16);
        bytes.extend_from_slice(payload);
        let err = check(FileType::Jpeg, &bytes, SETTINGS).expect_err("polyglot");
        assert_eq!(err.reason, Reason::Polyglot);
    }
}

#[test]
fn zero_padding_after_the_end_marker_is_accepted() {
    let mut bytes = jpeg(16, 16);
    bytes.extend_from_slice(&[0; 32]);
    check(FileType::Jpeg, &bytes, SETTINGS).expect("padding is harmless");
}

#[test]
fn truncated_images_are_refused() {
    let cases = [
        (FileType::Png, png(16, 16)),
        (FileType::Jpeg, jpeg(16, 16)),
        (FileType::Webp, webp(16, 16, None, None)),
        (FileType::Gif, gif(16, 16)),
    ];
    for (file_type, bytes) in cases {
        let cut = &bytes[..bytes.len() - 3];
        let err = check(file_type, cut, SETTINGS).expect_err("truncated");
        assert_eq!(err.reason, Reason::Image, "{file_type}");
        assert!(err.detail.contains("truncated"), "{}", err.detail);
    }
}

#[test]
fn png_with_a_corrupted_chunk_fails_its_crc() {
    let mut bytes = png(16, 16);
    bytes[30] ^= 0x01; // IHDR's stored CRC
    let err = check(FileType::Png, &bytes, SETTINGS).expect_err("bad crc");
    assert!(err.detail.contains("CRC"), "{}", err.detail);
}

#[test]
fn png_without_idat_or_with_unknown_critical_chunks_is_refused() {
    let unknown = png_with(4, 4, &[png_chunk(b"ABCD", b"xx")]);
    assert!(check(FileType::Png, &unknown, SETTINGS).is_err());
}

#[test]
fn webp_whose_riff_size_is_short_of_the_file_is_a_polyglot() {
    let mut bytes = webp(16, 16, None, None);
    bytes.extend_from_slice(b"<script>alert(1)</script>");
    let err = check(FileType::Webp, &bytes, SETTINGS).expect_err("polyglot");
    assert_eq!(err.reason, Reason::Polyglot);
}

#[test]
fn jpeg_stripping_removes_exif_and_xmp_but_keeps_jfif_and_icc() {
    let exif = jpeg_app(0xE1, b"Exif\0\0MM\0*\0\0\0\x08GPS...");
    let xmp = jpeg_app(0xE1, b"http://ns.adobe.com/xap/1.0/\0<x:xmpmeta/>");
    let icc = jpeg_app(0xE2, b"ICC_PROFILE\0\x01\x01profile");
    let comment = jpeg_app(0xFE, b"<?php echo 1; ?>");
    let bytes = jpeg_with(32, 32, &[exif, icc.clone(), xmp, comment]);
    let info = check(FileType::Jpeg, &bytes, STRIP).expect("valid");
    assert_eq!(info.edits.len(), 3);
    let stripped = apply(&bytes, &info);
    assert_eq!(stripped, jpeg_with(32, 32, &[icc]));
    check(FileType::Jpeg, &stripped, SETTINGS).expect("stripped file is still valid");
}

#[test]
fn png_stripping_removes_exif_and_text_chunks() {
    let exif = png_chunk(b"eXIf", b"MM\0*\0\0\0\x08");
    let xmp = png_chunk(b"iTXt", b"XML:com.adobe.xmp\0\0\0\0\0<x:xmpmeta/>");
    let gamma = png_chunk(b"gAMA", &45_455u32.to_be_bytes());
    let bytes = png_with(8, 8, &[exif, gamma.clone(), xmp]);
    let info = check(FileType::Png, &bytes, STRIP).expect("valid");
    let stripped = apply(&bytes, &info);
    assert_eq!(stripped, png_with(8, 8, &[gamma]));
}

#[test]
fn webp_stripping_removes_chunks_and_fixes_size_and_flags() {
    let bytes = webp(8, 8, Some(b"MM\0*\0\0\0\x08gps"), Some(b"<x:xmpmeta/>"));
    let info = check(FileType::Webp, &bytes, STRIP).expect("valid");
    let stripped = apply(&bytes, &info);
    assert_eq!(stripped, webp(8, 8, None, None));
    check(FileType::Webp, &stripped, SETTINGS).expect("stripped file is still valid");
}

#[test]
fn without_stripping_no_edits_are_planned() {
    let bytes = webp(8, 8, Some(b"exif"), None);
    assert!(
        check(FileType::Webp, &bytes, SETTINGS)
            .expect("valid")
            .edits
            .is_empty()
    );
}
