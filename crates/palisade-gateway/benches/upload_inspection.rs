//! Library-level throughput of upload inspection on a ~4 MB JPEG sent as multipart, in
//! 64 KiB chunks as a proxy would feed it. Compared against the same body going through
//! with no checks (copied chunk by chunk, as the gateway does with checks off).
//!
//! Run with `bench/upload-inspection`, which starts a clamd for the "with clamd" row;
//! without `PALISADE_BENCH_CLAMD` that row is reported as skipped.

#[path = "../tests/upload_support/mod.rs"]
mod upload_support;

use std::time::{Duration, Instant};

use palisade_gateway::upload::UploadService;
use palisade_policy::upload::{RequestHead, RequestInspector, UploadConfig, UploadSection};
use upload_support::*;

const CHUNK: usize = 64 << 10;
const ROUNDS: u32 = 12;

fn four_megabyte_jpeg() -> Vec<u8> {
    let (mut width, mut height) = (2000, 1500);
    loop {
        let image = image::DynamicImage::ImageRgb8(photo(width, height));
        let mut out = Vec::new();
        let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 98);
        image.write_with_encoder(encoder).expect("encode");
        if out.len() >= 4 << 20 {
            return out;
        }
        width += 250;
        height += 190;
    }
}

fn body(jpeg: &[u8]) -> Vec<u8> {
    let headers = file_headers("photo", "photo.jpg", "image/jpeg");
    multipart(&[(&headers, jpeg)])
}

fn head() -> RequestHead<'static> {
    RequestHead {
        content_type: Some(MULTIPART),
        ..RequestHead::default()
    }
}

/// Best of `ROUNDS` runs, in MB/s.
async fn measure<F, Fut>(bytes: usize, mut run: F) -> f64
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut best = Duration::MAX;
    for _ in 0..ROUNDS {
        let start = Instant::now();
        run().await;
        best = best.min(start.elapsed());
    }
    bytes as f64 / 1e6 / best.as_secs_f64()
}

async fn through_service(service: &UploadService, body: &[u8]) {
    let mut inspection = service
        .begin("POST", "/upload", head())
        .expect("route")
        .expect("headers");
    for chunk in body.chunks(CHUNK) {
        inspection.feed(chunk).await.expect("feed");
    }
    let mut passed = inspection.finish().await.expect("passes");
    while let Some(chunk) = passed.body.next_chunk().await.expect("read") {
        std::hint::black_box(chunk);
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let jpeg = four_megabyte_jpeg();
    let body = body(&jpeg);
    let spool = temp_dir("bench");
    let plain = service(vec![UploadSection::with_path("/upload")], None, &spool);
    let rule = UploadConfig::from_sections(&[UploadSection::with_path("/upload")], None)
        .expect("valid")
        .rules
        .remove(0);

    let no_checks = measure(body.len(), || async {
        let mut sink = Vec::with_capacity(CHUNK);
        for chunk in body.chunks(CHUNK) {
            sink.clear();
            sink.extend_from_slice(chunk);
            std::hint::black_box(&sink);
        }
    })
    .await;
    let streaming_only = measure(body.len(), || async {
        let mut inspector = RequestInspector::start(&rule, head()).expect("start");
        for chunk in body.chunks(CHUNK) {
            inspector.feed(chunk).expect("feed");
        }
        std::hint::black_box(inspector.finish().expect("passes"));
    })
    .await;
    let without_clamd = measure(body.len(), || through_service(&plain, &body)).await;
    let with_clamd = match std::env::var("PALISADE_BENCH_CLAMD") {
        Ok(address) => {
            let scanning = service(
                vec![UploadSection::with_path("/upload")],
                Some(scanner(&address)),
                &spool,
            );
            Some(measure(body.len(), || through_service(&scanning, &body)).await)
        }
        Err(_) => None,
    };

    println!(
        "upload inspection, {:.1} MB JPEG in a multipart body, {} KiB chunks, best of {ROUNDS}",
        jpeg.len() as f64 / 1e6,
        CHUNK >> 10
    );
    let row = |name: &str, mbps: f64| {
        println!(
            "  {name:<44} {mbps:>9.1} MB/s   {:>7.4} x no checks",
            mbps / no_checks
        );
    };
    row("no checks (chunks copied through)", no_checks);
    row(
        "streaming checks only (parse, sniff, structure)",
        streaming_only,
    );
    row(
        "full inspection without clamd (+spool, decode)",
        without_clamd,
    );
    match with_clamd {
        Some(mbps) => row("full inspection with clamd (INSTREAM)", mbps),
        None => println!("  full inspection with clamd: skipped (PALISADE_BENCH_CLAMD unset)"),
    }
}
