//! A client for clamd's stream scanning (`INSTREAM`) and `PING`, over TCP or a Unix socket.
//!
//! Protocol (clamd(8)): commands are sent as `zCOMMAND\0`; after `zINSTREAM\0` the data
//! follows in chunks, each prefixed by its length as a 4-byte big-endian number, and a
//! zero-length chunk ends it. clamd answers one NUL-terminated line: `stream: OK`,
//! `stream: <signature> FOUND`, or a message ending in `ERROR`.
//! Every exchange is bounded by the configured timeout; an answer is read up to
//! [`MAX_REPLY`] bytes.

use std::io;
use std::time::Duration;

use palisade_policy::upload::{ClamdAddress, ScannerConfig};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

use super::spool::{READ_CHUNK, SpooledBody};

/// Longest answer accepted from clamd.
pub const MAX_REPLY: usize = 4096;

/// What clamd concluded about a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanVerdict {
    /// No signature matched.
    Clean,
    /// A signature matched; its name.
    Found(String),
}

/// Why no verdict could be had.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// clamd could not be reached.
    #[error("cannot connect to clamd at {address}: {source}")]
    Connect {
        /// Where we tried.
        address: String,
        /// What the system said.
        source: io::Error,
    },
    /// An exchange took longer than the timeout.
    #[error("clamd did not answer within {0:?} ({1})")]
    Timeout(Duration, &'static str),
    /// The connection failed mid-exchange.
    #[error("clamd connection failed: {0}")]
    Io(#[from] io::Error),
    /// clamd answered with an error (size limit, out of memory, ...).
    #[error("clamd reported an error: {0}")]
    Scanner(String),
    /// clamd's answer was not one we understand.
    #[error("unexpected answer from clamd: {0:?}")]
    Protocol(String),
}

trait Connection: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Connection for T {}

/// A clamd client. Each scan opens its own connection (clamd serves one command per
/// connection outside sessions).
#[derive(Debug, Clone)]
pub struct ClamdClient {
    address: ClamdAddress,
    timeout: Duration,
}

impl ClamdClient {
    /// A client for the configured scanner.
    pub fn new(config: &ScannerConfig) -> Self {
        Self {
            address: config.address.clone(),
            timeout: config.timeout,
        }
    }

    /// Where clamd is expected.
    pub fn address(&self) -> &ClamdAddress {
        &self.address
    }

    /// Checks that clamd answers `PONG`.
    pub async fn ping(&self) -> Result<(), ScanError> {
        let mut connection = self.connect().await?;
        self.bounded("sending PING", connection.write_all(b"zPING\0"))
            .await??;
        match self.reply(&mut connection).await?.as_str() {
            "PONG" => Ok(()),
            other => Err(ScanError::Protocol(other.to_owned())),
        }
    }

    /// Starts an `INSTREAM` scan to which data is then sent in pieces.
    pub async fn instream(&self) -> Result<Instream, ScanError> {
        let mut connection = self.connect().await?;
        self.bounded("sending INSTREAM", connection.write_all(b"zINSTREAM\0"))
            .await??;
        Ok(Instream {
            client: self.clone(),
            connection,
        })
    }

    /// Scans bytes held in memory.
    pub async fn scan_bytes(&self, data: &[u8]) -> Result<ScanVerdict, ScanError> {
        let mut stream = self.instream().await?;
        for piece in data.chunks(READ_CHUNK) {
            stream.send(piece).await?;
        }
        stream.finish().await
    }

    /// Scans a byte range of a spooled body, reading it piece by piece.
    pub async fn scan_spooled(
        &self,
        body: &SpooledBody,
        range: std::ops::Range<u64>,
    ) -> Result<ScanVerdict, ScanError> {
        let mut stream = self.instream().await?;
        let mut at = range.start;
        while at < range.end {
            let want = (range.end - at).min(READ_CHUNK as u64) as usize;
            let piece = body.read_at(at, want).await?;
            if piece.is_empty() {
                break;
            }
            at += piece.len() as u64;
            stream.send(&piece).await?;
        }
        stream.finish().await
    }

    async fn connect(&self) -> Result<Box<dyn Connection>, ScanError> {
        let address = self.address.to_string();
        let connected: io::Result<Box<dyn Connection>> = match &self.address {
            ClamdAddress::Tcp(addr) => self
                .bounded("connecting", TcpStream::connect(addr.as_str()))
                .await?
                .map(|s| Box::new(s) as Box<dyn Connection>),
            ClamdAddress::Unix(path) => self
                .bounded("connecting", UnixStream::connect(path))
                .await?
                .map(|s| Box::new(s) as Box<dyn Connection>),
        };
        connected.map_err(|source| ScanError::Connect { address, source })
    }

    async fn bounded<F: Future>(&self, what: &'static str, f: F) -> Result<F::Output, ScanError> {
        tokio::time::timeout(self.timeout, f)
            .await
            .map_err(|_| ScanError::Timeout(self.timeout, what))
    }

    /// Reads one NUL-terminated answer (or up to the connection's end).
    async fn reply(&self, connection: &mut Box<dyn Connection>) -> Result<String, ScanError> {
        let mut answer = Vec::new();
        let mut byte = [0u8; 256];
        loop {
            let n = self
                .bounded("waiting for the verdict", connection.read(&mut byte))
                .await??;
            let piece = &byte[..n];
            let end = piece.iter().position(|&b| b == 0 || b == b'\n');
            answer.extend_from_slice(&piece[..end.unwrap_or(n)]);
            if n == 0 || end.is_some() {
                break;
            }
            if answer.len() > MAX_REPLY {
                return Err(ScanError::Protocol("answer longer than 4 KiB".into()));
            }
        }
        Ok(String::from_utf8_lossy(&answer).trim().to_owned())
    }
}

/// An `INSTREAM` scan in progress.
pub struct Instream {
    client: ClamdClient,
    connection: Box<dyn Connection>,
}

impl std::fmt::Debug for Instream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instream")
            .field("address", &self.client.address)
            .finish_non_exhaustive()
    }
}

impl Instream {
    /// Sends the next piece of the stream as one size-prefixed chunk.
    pub async fn send(&mut self, data: &[u8]) -> Result<(), ScanError> {
        if data.is_empty() {
            return Ok(());
        }
        let length = u32::try_from(data.len())
            .map_err(|_| ScanError::Protocol("chunk larger than 4 GiB".into()))?;
        let write = async {
            self.connection.write_all(&length.to_be_bytes()).await?;
            self.connection.write_all(data).await
        };
        match self.client.bounded("sending data", write).await? {
            Ok(()) => Ok(()),
            // clamd closes the connection when the stream passes its StreamMaxLength; its
            // answer says so and is more useful than "broken pipe".
            Err(e) => match self.client.reply(&mut self.connection).await {
                Ok(answer) if !answer.is_empty() => Err(interpret(&answer)
                    .err()
                    .unwrap_or(ScanError::Scanner(answer))),
                _ => Err(ScanError::Io(e)),
            },
        }
    }

    /// Ends the stream and waits for the verdict.
    pub async fn finish(mut self) -> Result<ScanVerdict, ScanError> {
        self.client
            .bounded(
                "ending the stream",
                self.connection.write_all(&[0, 0, 0, 0]),
            )
            .await??;
        let answer = self.client.reply(&mut self.connection).await?;
        interpret(&answer)
    }
}

/// Reads `stream: OK`, `stream: NAME FOUND` or `... ERROR`.
fn interpret(answer: &str) -> Result<ScanVerdict, ScanError> {
    let body = answer.strip_prefix("stream:").map(str::trim);
    match body {
        Some("OK") => Ok(ScanVerdict::Clean),
        Some(found) if found.ends_with(" FOUND") => {
            let name = found.trim_end_matches(" FOUND").trim();
            Ok(ScanVerdict::Found(name.to_owned()))
        }
        _ if answer.ends_with("ERROR") => Err(ScanError::Scanner(answer.to_owned())),
        _ => Err(ScanError::Protocol(answer.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_interpreted() {
        assert_eq!(interpret("stream: OK").ok(), Some(ScanVerdict::Clean));
        assert_eq!(
            interpret("stream: Win.Test.EICAR_HDB-1 FOUND").ok(),
            Some(ScanVerdict::Found("Win.Test.EICAR_HDB-1".into()))
        );
        assert!(matches!(
            interpret("INSTREAM size limit exceeded. ERROR"),
            Err(ScanError::Scanner(_))
        ));
        assert!(matches!(interpret("PONG"), Err(ScanError::Protocol(_))));
    }
}
