//! `palisade demo`: the sample app on a free loopback port, palisade in front of it with the
//! default protections, and a short tour of what to try.

use std::net::SocketAddr;

use anyhow::Context as _;
use palisade_gateway::config::{ConfigSource, Overrides, UpstreamUrl};

/// Runs the demo until Ctrl-C.
pub async fn run(listen: SocketAddr, admin_listen: SocketAddr) -> anyhow::Result<()> {
    let (listener, app) = palisade_gateway::demo_app::bind()
        .await
        .context("cannot start the sample app")?;
    tokio::spawn(palisade_gateway::demo_app::run(listener));
    let upstream: UpstreamUrl = format!("http://{app}")
        .parse()
        .map_err(|e: String| anyhow::anyhow!(e))?;
    let source = ConfigSource {
        file: Some(demo_config()?),
        overrides: Overrides {
            listen: Some(listen),
            upstream: Some(upstream),
            admin_listen: Some(admin_listen),
        },
    };
    eprintln!("{}", tour(listen, admin_listen, app));
    palisade_gateway::serve::run_until_signalled(source)
        .await
        .context("palisade could not start")
}

/// The demo's configuration: the defaults, with sessions in memory so that trying the demo
/// leaves no database file behind.
fn demo_config() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("palisade-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).context("cannot create the demo's temporary directory")?;
    let file = dir.join("palisade.toml");
    std::fs::write(&file, "[session]\nstore = \"memory\"\n")
        .context("cannot write the demo's configuration")?;
    Ok(file)
}

fn tour(listen: SocketAddr, admin: SocketAddr, app: SocketAddr) -> String {
    format!(
        "\n\
palisade demo: a sample app on http://{app} (loopback only), protected on http://{listen}\n\
\n\
Try:\n\
  curl -i http://{listen}/                  # security headers added; Server and X-Powered-By gone\n\
  curl -i http://{listen}/api/items         # JSON API, with RateLimit-* headers\n\
  for i in $(seq 12); do curl -s -o /dev/null -w '%{{http_code}} ' http://{listen}/api/items; done; echo\n\
                                              # the 11th request in 10 s gets 429\n\
  curl -i -H 'Accept: application/json' http://{listen}/api/items   # 429 as JSON when limited\n\
  curl -i -d 'user=a&password=demo' http://{listen}/login            # cookie gets HttpOnly, SameSite\n\
  curl -s http://{admin}/metrics | grep palisade_                    # Prometheus metrics\n\
\n\
Or open http://{listen}/ in a browser: the page and its assets load without being limited.\n\
Security events are printed below as JSON lines. Stop with Ctrl-C.\n"
    )
}
