//! Test files and services for the upload tests: real images from the `image` crate's
//! encoders, photos carrying hand-built EXIF (with GPS) and XMP segments, crafted bad
//! files, multipart bodies, and a private clamd started through `scripts/clamd`.

#![allow(dead_code)]

use std::io::Cursor;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, OnceLock};

use image::{DynamicImage, ImageFormat, RgbImage, RgbaImage};
use palisade_gateway::upload::{SpoolSettings, UploadOptions, UploadService};
use palisade_policy::clock::ManualClock;
use palisade_policy::units::HumanDuration;
use palisade_policy::upload::{ScannerSection, UploadConfig, UploadSection};

/// A deterministic pseudo-random byte source (xorshift), so files are the same every run.
pub struct Noise(u64);

impl Noise {
    pub fn new(seed: u64) -> Self {
        Self(seed | 1)
    }
    pub fn next_byte(&mut self) -> u8 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 24) as u8
    }
}

/// A photo-like picture: smooth gradients with a little grain.
pub fn photo(width: u32, height: u32) -> RgbImage {
    let mut noise = Noise::new(u64::from(width * 31 + height));
    RgbImage::from_fn(width, height, |x, y| {
        let grain = noise.next_byte() / 16;
        image::Rgb([
            (x * 255 / width) as u8 / 2 + grain,
            (y * 255 / height) as u8 / 2 + grain,
            ((x + y) % 256) as u8 / 3 + grain,
        ])
    })
}

pub fn encode(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, format).expect("encode test image");
    out.into_inner()
}

pub fn jpeg(width: u32, height: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90);
    photo(width, height)
        .write_with_encoder(encoder)
        .expect("encode jpeg");
    out
}

pub fn png(width: u32, height: u32) -> Vec<u8> {
    encode(
        &DynamicImage::ImageRgb8(photo(width, height)),
        ImageFormat::Png,
    )
}

pub fn webp(width: u32, height: u32) -> Vec<u8> {
    encode(
        &DynamicImage::ImageRgb8(photo(width, height)),
        ImageFormat::WebP,
    )
}

pub fn gif(width: u32, height: u32) -> Vec<u8> {
    encode(
        &DynamicImage::ImageRgb8(photo(width, height)),
        ImageFormat::Gif,
    )
}

/// A PNG of pure noise, which does not compress: about `4 × width × height` bytes.
pub fn noisy_png(width: u32, height: u32) -> Vec<u8> {
    let mut noise = Noise::new(7);
    let image = RgbaImage::from_fn(width, height, |_, _| {
        image::Rgba([noise.next_byte(), noise.next_byte(), noise.next_byte(), 255])
    });
    encode(&DynamicImage::ImageRgba8(image), ImageFormat::Png)
}

/// EXIF (TIFF, big-endian) as a camera writes it: make, model, orientation, date, and a
/// GPS IFD with latitude and longitude.
pub fn exif_with_gps() -> Vec<u8> {
    let mut tiff = b"MM\0\x2A\0\0\0\x08".to_vec();
    // IFD0 at 8: 5 entries (2 + 5×12 + 4 = 66 bytes), then its data from 74.
    let make = b"Palisade Optics\0";
    let model = b"PX-100\0";
    let date = b"2026:06:01 12:34:56\0";
    let data_start = 8 + 2 + 5 * 12 + 4;
    let make_at = data_start;
    let model_at = make_at + make.len();
    let date_at = model_at + model.len();
    let gps_at = date_at + date.len();
    let mut ifd = Vec::new();
    ifd.extend_from_slice(&5u16.to_be_bytes());
    let mut entry = |tag: u16, kind: u16, count: u32, value: u32| {
        ifd.extend_from_slice(&tag.to_be_bytes());
        ifd.extend_from_slice(&kind.to_be_bytes());
        ifd.extend_from_slice(&count.to_be_bytes());
        ifd.extend_from_slice(&value.to_be_bytes());
    };
    entry(0x010F, 2, make.len() as u32, make_at as u32);
    entry(0x0110, 2, model.len() as u32, model_at as u32);
    entry(0x0112, 3, 1, 1 << 16);
    entry(0x0132, 2, date.len() as u32, date_at as u32);
    entry(0x8825, 4, 1, gps_at as u32);
    ifd.extend_from_slice(&0u32.to_be_bytes());
    tiff.extend(ifd);
    tiff.extend_from_slice(make);
    tiff.extend_from_slice(model);
    tiff.extend_from_slice(date);
    // GPS IFD: 4 entries, rationals after it.
    let rationals_at = gps_at + 2 + 4 * 12 + 4;
    let mut gps = Vec::new();
    gps.extend_from_slice(&4u16.to_be_bytes());
    let mut gps_entry = |tag: u16, kind: u16, count: u32, value: u32| {
        gps.extend_from_slice(&tag.to_be_bytes());
        gps.extend_from_slice(&kind.to_be_bytes());
        gps.extend_from_slice(&count.to_be_bytes());
        gps.extend_from_slice(&value.to_be_bytes());
    };
    gps_entry(0x0001, 2, 2, u32::from_be_bytes(*b"N\0\0\0"));
    gps_entry(0x0002, 5, 3, rationals_at as u32);
    gps_entry(0x0003, 2, 2, u32::from_be_bytes(*b"E\0\0\0"));
    gps_entry(0x0004, 5, 3, (rationals_at + 24) as u32);
    gps.extend_from_slice(&0u32.to_be_bytes());
    for (num, den) in [(48, 1), (51, 1), (2940, 100), (2, 1), (17, 1), (4020, 100)] {
        gps.extend_from_slice(&(num as u32).to_be_bytes());
        gps.extend_from_slice(&(den as u32).to_be_bytes());
    }
    tiff.extend(gps);
    tiff
}

pub const XMP: &[u8] = b"<x:xmpmeta xmlns:x=\"adobe:ns:meta/\"><rdf:RDF xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\"><rdf:Description xmlns:exif=\"http://ns.adobe.com/exif/1.0/\" exif:GPSLatitude=\"48,51.49N\"/></rdf:RDF></x:xmpmeta>";

fn jpeg_segment(code: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0xFF, code];
    out.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// A JPEG photo as a phone writes it: EXIF with GPS and an XMP packet in APP1 segments.
pub fn photo_with_exif(width: u32, height: u32) -> Vec<u8> {
    let plain = jpeg(width, height);
    let mut exif = b"Exif\0\0".to_vec();
    exif.extend(exif_with_gps());
    let mut xmp = b"http://ns.adobe.com/xap/1.0/\0".to_vec();
    xmp.extend_from_slice(XMP);
    let mut out = plain[..2].to_vec();
    out.extend(jpeg_segment(0xE1, &exif));
    out.extend(jpeg_segment(0xE1, &xmp));
    out.extend_from_slice(&plain[2..]);
    out
}

fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = (data.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut crc = crc32(kind);
    crc = crc32_update(crc, data);
    out.extend_from_slice(&(!crc).to_be_bytes());
    out
}

fn crc32(data: &[u8]) -> u32 {
    crc32_update(0xFFFF_FFFF, data)
}

fn crc32_update(mut crc: u32, data: &[u8]) -> u32 {
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    crc
}

/// A PNG with `eXIf` (GPS) and XMP `iTXt` chunks after IHDR.
pub fn png_with_exif(width: u32, height: u32) -> Vec<u8> {
    let plain = png(width, height);
    let mut xmp = b"XML:com.adobe.xmp\0\0\0\0\0".to_vec();
    xmp.extend_from_slice(XMP);
    let ihdr_end = 8 + 25;
    let mut out = plain[..ihdr_end].to_vec();
    out.extend(png_chunk(b"eXIf", &exif_with_gps()));
    out.extend(png_chunk(b"iTXt", &xmp));
    out.extend_from_slice(&plain[ihdr_end..]);
    out
}

/// A PNG whose IHDR claims `width` × `height` (with a valid CRC) around a tiny image.
pub fn png_claiming(width: u32, height: u32) -> Vec<u8> {
    let mut bytes = png(4, 4);
    bytes[16..20].copy_from_slice(&width.to_be_bytes());
    bytes[20..24].copy_from_slice(&height.to_be_bytes());
    let crc = !crc32(&bytes[12..29]);
    bytes[29..33].copy_from_slice(&crc.to_be_bytes());
    bytes
}

/// The EICAR test string, assembled so this source file does not itself match.
pub fn eicar() -> Vec<u8> {
    let halves = [
        "X5O!P%@AP[4\\PZX54(P^)7CC)7}$",
        "EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*",
    ];
    halves.concat().into_bytes()
}

/// A multipart body from `(headers, content)` parts, boundary `test-boundary-42`.
pub const BOUNDARY: &str = "test-boundary-42";
pub const MULTIPART: &str = "multipart/form-data; boundary=test-boundary-42";

pub fn multipart(parts: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (headers, content) in parts {
        out.extend_from_slice(format!("--{BOUNDARY}\r\n{headers}\r\n\r\n").as_bytes());
        out.extend_from_slice(content);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    out
}

pub fn file_headers(field: &str, filename: &str, content_type: &str) -> String {
    format!(
        "Content-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n\
         Content-Type: {content_type}"
    )
}

/// A fresh empty directory, removed when dropped.
pub struct TestDir(tempfile::TempDir);

impl std::ops::Deref for TestDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        self.0.path()
    }
}

pub fn temp_dir(name: &str) -> TestDir {
    TestDir(
        tempfile::Builder::new()
            .prefix(&format!("palisade-upload-test-{name}-"))
            .tempdir()
            .expect("create temp dir"),
    )
}

/// A service for `sections`, spooling into `spool_dir` with a small memory buffer and a
/// manual clock standing at 1 000 000 ms.
pub fn service(
    sections: Vec<UploadSection>,
    scanner: Option<ScannerSection>,
    spool_dir: &Path,
) -> UploadService {
    let config = UploadConfig::from_sections(&sections, scanner.as_ref()).expect("valid config");
    let options = UploadOptions {
        spool: SpoolSettings {
            dir: spool_dir.to_owned(),
            memory_limit: 16 << 10,
            ..SpoolSettings::default()
        },
        decode_concurrency: 2,
        clock: Arc::new(ManualClock::new(1_000_000)),
    };
    UploadService::new(config, options)
}

pub fn scanner(address: &str) -> ScannerSection {
    ScannerSection {
        clamd: address.to_owned(),
        timeout: HumanDuration(std::time::Duration::from_secs(10)),
    }
}

/// A clamd this test binary started (TCP address and Unix socket), stopped by
/// `scripts/clamd`'s watcher when the binary exits.
pub struct OwnClamd {
    pub tcp: String,
    pub unix: String,
}

pub fn own_clamd() -> &'static OwnClamd {
    static CLAMD: OnceLock<OwnClamd> = OnceLock::new();
    CLAMD.get_or_init(|| {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let dir = std::env::temp_dir().join(format!("palisade-clamd-{}", std::process::id()));
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/clamd");
        let output = Command::new(script)
            .args(["start", "--port", &port.to_string(), "--watch"])
            .arg(std::process::id().to_string())
            .arg("--dir")
            .arg(&dir)
            .output()
            .expect("run scripts/clamd");
        assert!(
            output.status.success(),
            "scripts/clamd start failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        OwnClamd {
            tcp: String::from_utf8_lossy(&output.stdout).trim().to_owned(),
            unix: format!("unix://{}", dir.join("clamd.sock").display()),
        }
    })
}

/// The clamd to scan with: `PALISADE_TEST_CLAMD` when set (e.g. by `scripts/services`),
/// else one this binary starts.
pub fn clamd_address() -> String {
    match std::env::var("PALISADE_TEST_CLAMD") {
        Ok(address) if !address.is_empty() => address,
        _ => own_clamd().tcp.clone(),
    }
}

fn riff_chunk(fourcc: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = fourcc.to_vec();
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(data);
    if data.len() % 2 == 1 {
        out.push(0);
    }
    out
}

/// A real (lossless) WebP rewrapped in the extended format with EXIF (GPS) and XMP chunks,
/// as cameras and editors write them.
pub fn webp_with_exif(width: u32, height: u32) -> Vec<u8> {
    let simple = webp(width, height);
    assert_eq!(
        &simple[12..16],
        b"VP8L",
        "the encoder writes simple lossless WebP"
    );
    let image_chunk = &simple[12..];
    let mut vp8x = vec![0x08 | 0x04, 0, 0, 0];
    vp8x.extend_from_slice(&(width - 1).to_le_bytes()[..3]);
    vp8x.extend_from_slice(&(height - 1).to_le_bytes()[..3]);
    let mut chunks = riff_chunk(b"VP8X", &vp8x);
    chunks.extend_from_slice(image_chunk);
    chunks.extend(riff_chunk(b"EXIF", &exif_with_gps()));
    chunks.extend(riff_chunk(b"XMP ", XMP));
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&((chunks.len() + 4) as u32).to_le_bytes());
    out.extend_from_slice(b"WEBP");
    out.extend(chunks);
    out
}
