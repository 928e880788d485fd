//! A redis-server of a test's own on a free loopback port, plain or TLS, stopped by PID on
//! drop; and the certificates a TLS one needs. Shared by the test binaries that stop,
//! pause or re-certify Redis, which the machine's shared Redis must never be: this crate's
//! and `crates/palisade/tests/redis.rs` (by path).
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

/// A redis-server of this test's own on a free loopback port, stopped by PID on drop.
pub struct OwnRedis {
    pub port: u16,
    child: Option<Child>,
    /// The server's certificate and key when it speaks only TLS.
    tls: Option<(PathBuf, PathBuf)>,
    /// The CA clients' certificates must be signed by, when it requires them.
    client_ca: Option<PathBuf>,
}

impl OwnRedis {
    /// A plain-text redis-server.
    pub fn start() -> Self {
        Self::start_with(None, None)
    }

    /// A redis-server that speaks only TLS, with `pki`'s server certificate.
    pub fn start_tls(pki: &TestPki) -> Self {
        Self::start_with(Some((pki.cert_file.clone(), pki.key_file.clone())), None)
    }

    /// A redis-server that speaks only TLS and accepts only clients presenting a
    /// certificate signed by `pki`'s CA (`tls-auth-clients yes`).
    pub fn start_tls_requiring_client_certs(pki: &TestPki) -> Self {
        let server = (pki.cert_file.clone(), pki.key_file.clone());
        Self::start_with(Some(server), Some(pki.ca_file.clone()))
    }

    fn start_with(tls: Option<(PathBuf, PathBuf)>, client_ca: Option<PathBuf>) -> Self {
        let mut redis = Self {
            port: 0,
            child: None,
            tls,
            client_ca,
        };
        // A server that could not bind its port (taken since it was found free) exits: the
        // next port is tried.
        for _ in 0..5 {
            redis.port = unused_port();
            if redis.try_start() {
                return redis;
            }
        }
        panic!("own redis-server did not start on any of five ports");
    }
    /// `redis://127.0.0.1:PORT`, or `rediss://` for a TLS server.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// Starts the server again on its port, after `stop`.
    pub fn restart(&mut self) {
        assert!(
            self.try_start(),
            "own redis-server did not start again on port {}",
            self.port
        );
    }

    /// Starts redis-server on `self.port` and waits until it takes connections; false when
    /// it exits first (its port was taken) or does not answer in 2 s.
    fn try_start(&mut self) -> bool {
        let port = self.port.to_string();
        let mut command = Command::new("redis-server");
        match (&self.tls, &self.client_ca) {
            (None, _) => command.args(["--port", &port]),
            (Some((cert, key)), client_ca) => {
                command
                    .args(["--port", "0", "--tls-port", &port])
                    .arg("--tls-cert-file")
                    .arg(cert)
                    .arg("--tls-key-file")
                    .arg(key)
                    .arg("--tls-auth-clients");
                match client_ca {
                    None => command.arg("no"),
                    Some(ca) => command.arg("yes").arg("--tls-ca-cert-file").arg(ca),
                }
            }
        };
        let child = command
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server installed: run scripts/services up");
        self.child = Some(child);
        for _ in 0..100 {
            if self.exited() {
                self.stop();
                return false;
            }
            if self.answers() {
                // One more look: a server that lost the port exits right after binding fails,
                // and what answered was then someone else's.
                std::thread::sleep(Duration::from_millis(20));
                if self.exited() {
                    self.stop();
                    return false;
                }
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stop();
        false
    }

    fn exited(&mut self) -> bool {
        let child = self.child.as_mut().expect("started");
        !matches!(child.try_wait(), Ok(None))
    }

    /// Whether the server takes connections: a PING for plain text; for TLS, an accepted
    /// TCP connection (the listener is opened once the server is ready).
    fn answers(&self) -> bool {
        if self.tls.is_some() {
            return std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok();
        }
        let client = redis::Client::open(self.url()).expect("valid url");
        client
            .get_connection()
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
            .is_ok()
    }

    /// Sends `signal` (`-STOP`, `-CONT`) to this test's redis-server.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let status = Command::new("kill")
            .args([signal, &pid])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {signal} {pid}");
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A loopback port below the kernel's ephemeral range (32768-60999 here), so that neither the
/// port another test was given by `bind(0)` nor a client's own source port (a TCP
/// self-connect that looks like a server answering) can be the same one. Each process
/// starts at its own place and counts up, taking only ports found free. 21000-24999:
/// `crates/palisade/tests/common`'s `free_port` keeps to 25000-29999.
fn unused_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = (std::process::id() % 400) * 10;
    for _ in 0..4_000 {
        let offset = (start + NEXT.fetch_add(1, Ordering::Relaxed)) % 4_000;
        let port = u16::try_from(21_000 + offset).expect("below 25000");
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in 21000-24999");
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A CA of the test's own, and a server certificate and a client certificate it signed,
/// as PEM files in a temporary directory removed on drop.
pub struct TestPki {
    /// The CA's certificate, for `redis_ca_file`.
    pub ca_file: PathBuf,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// A client certificate (for `redis_client_cert`) and its key.
    pub client_cert_file: PathBuf,
    pub client_key_file: PathBuf,
    _dir: tempfile::TempDir,
}

impl TestPki {
    /// A new CA, and a server certificate for `names` (host names or IP addresses).
    pub fn new(names: &[&str]) -> Self {
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "palisade test CA");
        let ca_key = KeyPair::generate().expect("ca key");
        let ca_cert = ca.self_signed(&ca_key).expect("ca certificate");
        let issuer = Issuer::new(ca, ca_key);

        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let server = CertificateParams::new(names).expect("server params");
        let server_key = KeyPair::generate().expect("server key");
        let server_cert = server
            .signed_by(&server_key, &issuer)
            .expect("server certificate");
        let mut client = CertificateParams::new(Vec::<String>::new()).expect("client params");
        client
            .distinguished_name
            .push(DnType::CommonName, "palisade test client");
        let client_key = KeyPair::generate().expect("client key");
        let client_cert = client
            .signed_by(&client_key, &issuer)
            .expect("client certificate");

        let dir = tempfile::tempdir().expect("temp dir");
        let write = |name: &str, pem: String| {
            let path = dir.path().join(name);
            std::fs::write(&path, pem).expect("write pem");
            path
        };
        Self {
            ca_file: write("ca.pem", ca_cert.pem()),
            cert_file: write("server.pem", server_cert.pem()),
            key_file: write("server.key", server_key.serialize_pem()),
            client_cert_file: write("client.pem", client_cert.pem()),
            client_key_file: write("client.key", client_key.serialize_pem()),
            _dir: dir,
        }
    }

    /// A CA and server certificate for this machine's loopback Redis.
    pub fn loopback() -> Self {
        Self::new(&["127.0.0.1", "localhost"])
    }
}
