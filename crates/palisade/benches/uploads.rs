//! Uploads through the real `palisade` binary over loopback, in one run:
//! 1. throughput (MB/s) of a ~4 MB JPEG sent as multipart to an upload path, through
//!    palisade with upload checks off, with checks but no clamd, and with clamd; ratios
//!    against checks off;
//! 2. palisade's peak RSS growth while a 1 GB upload (text, generated as it is sent) is
//!    inspected, spooled and forwarded.
//!
//! Run with `bench/uploads`, which starts a clamd; without `PALISADE_BENCH_CLAMD` the
//! clamd row is skipped.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../../palisade-gateway/tests/upload_support/mod.rs"]
mod upload_support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Upstream, config_file, free_port, full, send, streamed};
use http::Request;
use upload_support::{MULTIPART, file_headers, multipart, photo};

const ROUNDS: u32 = 12;
const GIGABYTE: u64 = 1 << 30;

/// A palisade process, killed by PID when dropped.
struct Palisade {
    child: Child,
    url: String,
}

impl Drop for Palisade {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Palisade {
    async fn start(upstream: &str, toml: &str) -> Self {
        let config = config_file(&format!(
            "rate_limit = []\n[log]\nsecurity = \"off\"\n{toml}"
        ));
        let (port, admin) = (free_port(), free_port());
        let child = Command::new(env!("CARGO_BIN_EXE_palisade"))
            .args(["serve", "--upstream", upstream, "--config"])
            .arg(&config)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--admin-listen", &format!("127.0.0.1:{admin}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("palisade starts");
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", admin))
                .await
                .is_ok()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    fn memory_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("memory field")
    }
}

/// A photo-like JPEG of at least 4 MiB (and under the 5 MB default limit).
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

/// Best of `ROUNDS` uploads of `body` to `url`, in MB/s of body.
async fn throughput(url: &str, body: &[u8]) -> f64 {
    let mut best = Duration::MAX;
    for _ in 0..ROUNDS {
        let request = Request::post(url)
            .header("content-type", MULTIPART)
            .body(full(body.to_vec()))
            .expect("request");
        let start = Instant::now();
        let reply = send(request).await;
        let elapsed = start.elapsed();
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(
            reply.body,
            body.len().to_string(),
            "the upstream got it all"
        );
        best = best.min(elapsed);
    }
    body.len() as f64 / 1e6 / best.as_secs_f64()
}

const JPEG_RULE: &str = "[[upload]]\npath = \"/sink\"\n";

async fn jpeg_rows(upstream: &str) {
    let jpeg = four_megabyte_jpeg();
    let body = multipart(&[(&file_headers("photo", "photo.jpg", "image/jpeg"), &jpeg)]);
    println!(
        "uploads through palisade: {:.1} MB JPEG as multipart, best of {ROUNDS}",
        jpeg.len() as f64 / 1e6
    );

    let off = Palisade::start(upstream, "").await;
    let base = throughput(&format!("{}/sink", off.url), &body).await;
    println!("  {:<28} {base:>8.1} MB/s  1.00", "upload checks off");

    let checks = Palisade::start(upstream, JPEG_RULE).await;
    let rate = throughput(&format!("{}/sink", checks.url), &body).await;
    println!(
        "  {:<28} {rate:>8.1} MB/s  {:.3}",
        "checks, no clamd",
        rate / base
    );

    match std::env::var("PALISADE_BENCH_CLAMD") {
        Ok(clamd) if !clamd.is_empty() => {
            let toml = format!("{JPEG_RULE}[scanner]\nclamd = \"{clamd}\"\n");
            let scanned = Palisade::start(upstream, &toml).await;
            let rate = throughput(&format!("{}/sink", scanned.url), &body).await;
            println!(
                "  {:<28} {rate:>8.1} MB/s  {:.3}",
                "checks and clamd",
                rate / base
            );
        }
        _ => {
            println!("  checks and clamd: skipped (set PALISADE_BENCH_CLAMD, or run bench/uploads)")
        }
    }
}

async fn gigabyte_row(upstream: &str) {
    let spool = std::env::temp_dir().join(format!("palisade-bench-spool-{}", std::process::id()));
    let toml = format!(
        "[server]\nmax_body_size = \"2GB\"\n[spool]\ndir = \"{}\"\n\
         [[upload]]\npath = \"/sink\"\nallowed_types = [\"text/plain\"]\n\
         max_file_size = \"2GB\"\nmax_body_size = \"2GB\"\n",
        spool.display()
    );
    let palisade = Palisade::start(upstream, &toml).await;
    let idle = palisade.memory_kib("VmRSS:");
    // A first, small upload sets up what any first request does (worker buffers, the
    // blocking pool for file I/O, the upstream connection); then the 1 GiB one.
    upload_text(&palisade, 16 << 20).await;
    let warm = palisade.memory_kib("VmRSS:");
    let elapsed = upload_text(&palisade, GIGABYTE).await;
    let peak = palisade.memory_kib("VmHWM:");
    println!(
        "1 GiB upload inspected, spooled and forwarded in {:.1} s ({:.0} MB/s): RSS idle {} MiB, \
         after a 16 MiB upload {} MiB, peak {} MiB: growth {} MiB over the 16 MiB upload, \
         {} MiB over idle",
        elapsed.as_secs_f64(),
        GIGABYTE as f64 / 1e6 / elapsed.as_secs_f64(),
        idle / 1024,
        warm / 1024,
        peak / 1024,
        peak.saturating_sub(warm) / 1024,
        peak.saturating_sub(idle) / 1024,
    );
    drop(palisade);
    let _ = std::fs::remove_dir(&spool);
}

/// PUTs `size` bytes of text to `/sink`, generated as they are sent; returns the time taken.
async fn upload_text(palisade: &Palisade, size: u64) -> Duration {
    let request = Request::put(format!("{}/sink", palisade.url))
        .header("content-type", "text/plain")
        .body(streamed(size))
        .expect("request");
    let start = Instant::now();
    let reply = send(request).await;
    let elapsed = start.elapsed();
    assert_eq!(reply.body, size.to_string(), "the upstream got it all");
    elapsed
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is not supported.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let upstream = Upstream::start().await;
        jpeg_rows(&upstream.url()).await;
        gigabyte_row(&upstream.url()).await;
    });
}
