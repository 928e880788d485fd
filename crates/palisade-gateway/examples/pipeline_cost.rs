//! Where palisade's own time per request goes: runs the pipeline of `bench/gateway.sh`'s
//! configuration (default protections, rate limits in `log` mode, the JSON security log to
//! a file) over the request wrk sends and an answer like its upstream's, in one thread, and
//! prints the time each stage takes, the per-request bookkeeping around them, and the whole
//! process's CPU (the log writer thread included) per request.
//!
//! It measures no network and no upstream exchange: those are `bench/gateway.sh`'s. It is a
//! diagnostic for cutting the pipeline's cost, not a comparison with a peer.
//!
//! Usage: `cargo run --release -p palisade-gateway --example pipeline_cost [REQUESTS]`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use palisade_gateway::body::{BodyPace, RequestBody};
use palisade_gateway::config::Config;
use palisade_gateway::pipeline::{GatewayRequest, Pipeline, RequestContext};
use palisade_gateway::services::Services;

// The allocator the `palisade` binary uses, so allocation costs what it costs there.
#[global_allocator]
static ALLOCATOR: palisade_alloc::Allocator = palisade_alloc::Allocator;

/// The rate limits `bench/gateway.sh` runs palisade with; the security log is added below.
const CONFIG: &str = include_str!("../../../bench/gateway.toml");

fn main() {
    let requests: u32 = std::env::args()
        .nth(1)
        .map_or(200_000, |n| n.parse().expect("REQUESTS: a number"));
    let dir = std::env::temp_dir().join(format!("pipeline-cost-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    let log = dir.join("security.log");
    let path = dir.join("palisade.toml");
    let text = format!(
        "{CONFIG}\n[log]\nsecurity = {:?}\n",
        log.display().to_string()
    );
    std::fs::write(&path, &text).expect("config written");
    let config = Config::from_toml(&path, &text).expect("the benchmark's configuration is valid");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let services = Services::start(&config).await.expect("services");
        let pipeline = Pipeline::build(&config, &services);
        let names = pipeline.stage_names();
        let split = pipeline.request_stage_count();
        let mut spent = vec![Duration::ZERO; names.len()];
        let mut context = Duration::ZERO;
        let peer: SocketAddr = "127.0.0.1:40000".parse().expect("peer");
        let cpu_start = process_cpu();
        let wall = Instant::now();
        for _ in 0..requests {
            let start = Instant::now();
            let head = http::Request::get("/")
                .header(http::header::HOST, "127.0.0.1:18182")
                .body(())
                .expect("head")
                .into_parts()
                .0;
            let mut ctx = RequestContext::new(peer, false, services.events.clone());
            let mut request = GatewayRequest {
                head,
                body: RequestBody::new(
                    None,
                    1 << 20,
                    BodyPace {
                        stall: Duration::from_secs(10),
                        min_rate: 0,
                    },
                ),
            };
            context += start.elapsed();
            let (request_spent, response_spent) = spent.split_at_mut(split);
            let answer = pipeline
                .run_request_timed(&mut request, &mut ctx, request_spent)
                .await
                .expect("the request passes");
            assert!(answer.is_none(), "a stage answered the benchmark's request");
            let mut parts = upstream_answer();
            pipeline
                .run_response_timed(&request.head, &mut parts, &mut ctx, response_spent)
                .await;
            let start = Instant::now();
            services.metrics.record_request(
                parts.status.as_u16(),
                ctx.outcome.as_str(),
                ctx.started.elapsed(),
            );
            drop((ctx, request, parts));
            context += start.elapsed();
        }
        let wall = wall.elapsed();
        let cpu = process_cpu() - cpu_start;
        let per = |d: Duration| d.as_nanos() as f64 / f64::from(requests);
        println!("{requests} requests, per request:");
        let mut staged = Duration::ZERO;
        for (name, d) in names.iter().zip(&spent) {
            staged += *d;
            println!("  {name:<22} {:>8.0} ns", per(*d));
        }
        println!("  {:<22} {:>8.0} ns", "context+metrics", per(context));
        println!("  {:<22} {:>8.0} ns", "stages together", per(staged));
        println!("  {:<22} {:>8.0} ns", "wall", per(wall));
        println!(
            "  {:<22} {:>8.0} ns (all threads, the log writer's included)",
            "process CPU",
            per(cpu)
        );
    });
    let _ = std::fs::remove_dir_all(&dir);
}

/// An answer head like the benchmark upstream's (nginx serving a small page).
fn upstream_answer() -> http::response::Parts {
    http::Response::builder()
        .status(200)
        .header("server", "nginx/1.22.1")
        .header("date", "Sat, 05 Dec 2026 16:00:00 GMT")
        .header("content-type", "text/html")
        .header("content-length", "615")
        .header("last-modified", "Sat, 05 Dec 2026 15:00:00 GMT")
        .header("etag", "\"6751c1c0-267\"")
        .header("accept-ranges", "bytes")
        .body(())
        .expect("answer")
        .into_parts()
        .0
}

/// User plus system time of the whole process, from `/proc/self/stat`.
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .expect("stat format")
        .1
        .split_whitespace()
        .collect();
    // Fields 14 and 15 of the file; the first after the command name is field 3.
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    Duration::from_secs_f64(ticks as f64 / 100.0)
}
