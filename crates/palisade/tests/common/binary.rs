//! The real `palisade` binary as a child process with its own environment and working
//! directory (what in-process tests cannot give: environment variables are process-wide).
//! Stopped by its PID when dropped.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use super::free_port;

/// How to start `palisade serve`.
#[derive(Debug, Default)]
pub struct ServeOptions {
    /// `--config FILE`, if any.
    pub config: Option<PathBuf>,
    /// The working directory (a fresh temporary one by default).
    pub dir: Option<PathBuf>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
}

/// A running `palisade serve`.
pub struct Binary {
    child: Child,
    /// `http://127.0.0.1:PORT` of the proxy.
    pub proxy: String,
    /// `http://127.0.0.1:PORT` of the admin API.
    pub admin: String,
    /// The working directory.
    pub dir: PathBuf,
    stderr: PathBuf,
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Binary {
    /// Starts `palisade serve --upstream upstream` and waits (bounded) for its admin port.
    pub async fn serve(upstream: &str, options: ServeOptions) -> Self {
        let dir = options
            .dir
            .unwrap_or_else(|| super::config_file("").with_file_name("cwd"));
        std::fs::create_dir_all(&dir).expect("working dir");
        let (proxy_port, admin_port) = (free_port(), free_port());
        let stderr = dir.join("palisade.stderr");
        let mut command = Command::new(env!("CARGO_BIN_EXE_palisade"));
        command
            .args(["serve", "--upstream", upstream])
            .args(["--listen", &format!("127.0.0.1:{proxy_port}")])
            .args(["--admin-listen", &format!("127.0.0.1:{admin_port}")])
            .current_dir(&dir)
            .env_remove("PALISADE_CSRF_SECRET")
            .env_remove("PALISADE_ADMIN_TOKEN")
            .envs(options.env)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).expect("stderr file"));
        if let Some(config) = &options.config {
            command.arg("--config").arg(config);
        }
        let child = command.spawn().expect("palisade binary starts");
        let binary = Self {
            child,
            proxy: format!("http://127.0.0.1:{proxy_port}"),
            admin: format!("http://127.0.0.1:{admin_port}"),
            dir,
            stderr,
        };
        binary.wait_listening(admin_port).await;
        binary
    }

    async fn wait_listening(&self, port: u16) {
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("palisade did not start: {}", self.log());
    }

    /// What the process wrote on stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

/// Runs `palisade ARGS` to completion with extra environment variables.
pub fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(args)
        .env_remove("PALISADE_ADMIN_TOKEN")
        .envs(env.iter().copied())
        .output()
        .expect("palisade runs")
}

/// The text of a finished command's stdout and stderr.
pub fn outputs(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).to_string(),
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}
