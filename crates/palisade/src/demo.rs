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
    let dir = DemoDir::create()?;
    let source = ConfigSource {
        file: Some(dir.config()?),
        overrides: Overrides {
            listen: Some(listen),
            upstream: Some(upstream),
            admin_listen: Some(admin_listen),
        },
    };
    eprintln!("{}", tour(listen, admin_listen, app));
    let served = crate::stopped(palisade_gateway::serve::run_until_signalled(source).await);
    drop(dir);
    served
}

/// The demo's own temporary directory (`palisade-demo-<pid>`, or `-<pid>-<n>` when that
/// name is taken), removed when the demo ends: its configuration and its upload spool, so
/// that trying the demo leaves nothing behind.
struct DemoDir(std::path::PathBuf);

impl DemoDir {
    /// Makes a new directory, private to this user: never one that already exists, nor a
    /// symlink, which another user of a shared temporary directory could have planted at the
    /// predictable name (red-team finding: the demo wrote through a planted `palisade.toml`
    /// link and removed the planter's files).
    fn create() -> anyhow::Result<Self> {
        use std::os::unix::fs::DirBuilderExt as _;
        let base = format!("palisade-demo-{}", std::process::id());
        for n in 0..100 {
            let name = if n == 0 {
                base.clone()
            } else {
                format!("{base}-{n}")
            };
            let dir = std::env::temp_dir().join(name);
            match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => return Ok(Self(dir)),
                Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(err) => {
                    return Err(err).context("cannot create the demo's temporary directory");
                }
            }
        }
        Err(anyhow::anyhow!(
            "cannot create the demo's temporary directory: {base} and the 99 names after it \
             are taken in {}",
            std::env::temp_dir().display()
        ))
    }

    /// The demo's configuration: the defaults, with sessions in memory (no database file)
    /// and the upload spool inside this directory.
    fn config(&self) -> anyhow::Result<std::path::PathBuf> {
        let file = self.0.join("palisade.toml");
        let spool = self.0.join("spool");
        let text = format!(
            "[session]\nstore = \"memory\"\n[spool]\ndir = {}\n",
            toml::Value::String(spool.to_string_lossy().into_owned())
        );
        std::fs::write(&file, text).context("cannot write the demo's configuration")?;
        Ok(file)
    }
}

impl Drop for DemoDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tour(listen: SocketAddr, admin: SocketAddr, app: SocketAddr) -> String {
    let items = format!("http://{listen}/api/items");
    let limited = format!("-w '%{{http_code}} ' {items}; done; echo");
    // One string per line: a `\` line continuation would swallow each line's indentation.
    // The login comes before the loop, which uses up the client's 10 requests per 10 s.
    let lines = [
        String::new(),
        format!(
            "palisade demo: http://{listen} protects a sample app on http://{app} (loopback only)"
        ),
        String::new(),
        "Try:".to_owned(),
        format!(
            "  curl -i http://{listen}/          # security headers; Server, X-Powered-By gone"
        ),
        format!("  curl -i -d 'user=a&password=demo' http://{listen}/login"),
        "                                   # the app's cookie gets HttpOnly, SameSite".to_owned(),
        format!("  curl -i {items}   # JSON API, with RateLimit-* headers"),
        format!("  for i in $(seq 12); do curl -s -o /dev/null {limited}"),
        "                                   # 429 once 10 requests in 10 s are used up,".to_owned(),
        "                                   # the commands above included".to_owned(),
        format!("  curl -i -H 'Accept: application/json' {items}   # 429 as JSON"),
        format!("  curl -s http://{admin}/metrics | grep palisade_   # Prometheus metrics"),
        String::new(),
        format!("Or open http://{listen}/ in a browser: the page and its assets load without"),
        "being limited. Security events are printed below as JSON lines. Stop with Ctrl-C."
            .to_owned(),
    ];
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory or symlink already at the demo's name is left alone: the demo makes a new
    /// private directory beside it, and removes only that one.
    #[test]
    fn the_demo_never_reuses_or_removes_a_directory_it_did_not_make() {
        use std::os::unix::fs::PermissionsExt as _;
        let taken = std::env::temp_dir().join(format!("palisade-demo-{}", std::process::id()));
        std::fs::create_dir(&taken).expect("planted directory");
        std::fs::write(taken.join("palisade.toml"), "planted").expect("planted file");
        let dir = DemoDir::create().expect("a directory of its own");
        assert_ne!(dir.0, taken);
        let mode = std::fs::metadata(&dir.0)
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
        let config = dir.config().expect("config");
        assert!(config.starts_with(&dir.0));
        let own = dir.0.clone();
        drop(dir);
        assert!(!own.exists());
        let planted = std::fs::read_to_string(taken.join("palisade.toml")).expect("kept");
        assert_eq!(planted, "planted");
        std::fs::remove_dir_all(&taken).expect("cleanup");
    }

    /// The tour once lost its indentation to `\` line continuations and listed the login
    /// after the loop that uses up the rate limit, so the login answered 429.
    #[test]
    fn the_tour_is_indented_and_tries_the_login_before_the_rate_limit() {
        let addr = |port| SocketAddr::from(([127, 0, 0, 1], port));
        let tour = tour(addr(8080), addr(9090), addr(3000));
        let commands: Vec<&str> = tour.lines().filter(|l| l.contains("curl ")).collect();
        assert_eq!(commands.len(), 6, "{tour}");
        assert!(
            commands
                .iter()
                .all(|l| l.starts_with("  curl") || l.starts_with("  for"))
        );
        let login = commands
            .iter()
            .position(|l| l.contains("/login"))
            .expect("a login");
        let counting = commands
            .iter()
            .position(|l| l.contains("seq 12"))
            .expect("a loop");
        assert!(login < counting, "{tour}");
        // The loop's 429 comes sooner than its 11th request: the tour's earlier requests
        // count in the same window, so the hint must not promise the 11th.
        assert!(!tour.contains("11th"), "{tour}");
        assert!(tour.contains("the commands above included"), "{tour}");
        assert!(tour.contains("http://127.0.0.1:9090/metrics"), "{tour}");
    }
}
