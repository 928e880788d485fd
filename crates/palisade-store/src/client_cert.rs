//! A client certificate and its key, read from PEM files and checked (readable, in its
//! validity dates, not encrypted, the key the certificate's), for the TLS servers that ask
//! palisade for one: a Redis with `tls-auth-clients yes` (`[state] redis_client_cert`) and an
//! `https://` upstream that requires client certificates (`[upstream] client_cert`).

use std::fmt;
use std::path::Path;

use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::ca::read_pem;

/// Which file of a client certificate pair a problem is with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientCertFile {
    /// The certificate file (`redis_client_cert`, `[upstream] client_cert`).
    Cert,
    /// The key file (`redis_client_key`, `[upstream] client_key`).
    Key,
}

/// What is wrong with a client certificate pair: each problem found, with the file it is in.
pub type ClientCertProblems = Vec<(ClientCertFile, String)>;

/// The problems of a pair as one message, each named by its key and file (`keys` are the
/// certificate's and the key's full config keys, e.g. `upstream.client_cert`).
fn problems_message(
    problems: &[(ClientCertFile, String)],
    (cert_key, cert): (&str, &Path),
    (key_key, key): (&str, &Path),
) -> String {
    problems
        .iter()
        .map(|(file, why)| {
            let (name, path) = match file {
                ClientCertFile::Cert => (cert_key, cert),
                ClientCertFile::Key => (key_key, key),
            };
            format!("{name}: {}: {why}", path.display())
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// A client certificate (chain, PEM) and its private key (PEM), as palisade presents them to
/// a server that checks its clients.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientCert {
    cert: Vec<u8>,
    key: Vec<u8>,
    /// The certificate's subject and end of validity, for logs.
    summary: String,
    /// The end of the certificate's (or an earlier-expiring chain certificate's) validity,
    /// in seconds since the Unix epoch.
    not_after: i64,
}

impl ClientCert {
    /// Reads and checks a certificate file and its key file; the problems say which file is
    /// wrong and how, without naming it (both files are checked, so one round of fixes
    /// does).
    pub fn from_files(cert: &Path, key: &Path) -> Result<Self, ClientCertProblems> {
        let cert = read_pem(cert, "a PEM certificate").map_err(|why| (ClientCertFile::Cert, why));
        let key = read_pem(key, "a PEM private key").map_err(|why| (ClientCertFile::Key, why));
        match (cert, key) {
            (Ok(cert), Ok(key)) => Self::from_pem(cert, key),
            (cert, key) => Err([cert.err(), key.err()].into_iter().flatten().collect()),
        }
    }

    /// Checks a PEM certificate chain (the client's certificate first) and its private key:
    /// each readable, every certificate of the chain within its validity dates, the key one
    /// palisade can sign with and the one the certificate names.
    pub fn from_pem(cert: Vec<u8>, key: Vec<u8>) -> Result<Self, ClientCertProblems> {
        let chain = read_chain(&cert).map_err(|why| (ClientCertFile::Cert, why));
        let private = read_key(&key).map_err(|why| (ClientCertFile::Key, why));
        let ((chain, summary, not_after), private) = match (chain, private) {
            (Ok(chain), Ok(private)) => (chain, private),
            (chain, private) => {
                return Err([chain.err(), private.err()].into_iter().flatten().collect());
            }
        };
        let provider = rustls::crypto::ring::default_provider();
        match CertifiedKey::from_der(chain, private, &provider) {
            Ok(_) => Ok(Self {
                cert,
                key,
                summary,
                not_after,
            }),
            Err(rustls::Error::InconsistentKeys(_)) => Err(vec![(
                ClientCertFile::Key,
                "is not the private key of the client certificate it is paired with".into(),
            )]),
            Err(err) => Err(vec![(
                ClientCertFile::Key,
                format!(
                    "not a usable private key: palisade signs with RSA (2048 bits or more), \
                     ECDSA P-256 or P-384, and Ed25519 keys ({err})"
                ),
            )]),
        }
    }

    /// The certificate's subject and when it (or its chain) stops being valid, for logs.
    pub fn summary(&self) -> &str {
        &self.summary
    }

    /// Reads the pair configured in `[section]` under `keys` (the certificate's and the
    /// key's), and logs its warnings; the error names each problem by its key and file.
    pub fn load(
        section: &str,
        keys: (&str, &str),
        cert: &Path,
        key: &Path,
    ) -> Result<Self, String> {
        let pair = Self::from_files(cert, key).map_err(|problems| {
            problems_message(
                &problems,
                (&format!("{section}.{}", keys.0), cert),
                (&format!("{section}.{}", keys.1), key),
            )
        })?;
        let (cert_name, key_name) = (
            format!("[{section}] {}", keys.0),
            format!("[{section}] {}", keys.1),
        );
        for warning in pair.warnings(&cert_name, &key_name, key) {
            tracing::warn!("{warning}");
        }
        Ok(pair)
    }

    /// What an operator should hear about the pair at start-up and on each reload: a
    /// certificate that stops being valid within 14 days, and a key file (`key`) that users
    /// other than palisade's may read. Each is a sentence naming `key_name`'s pair.
    pub fn warnings(&self, cert_name: &str, key_name: &str, key: &Path) -> Vec<String> {
        const SOON: i64 = 14 * 24 * 3_600;
        let mut warnings = Vec::new();
        if self.expires_within(SOON) {
            warnings.push(format!(
                "{cert_name} expires within 14 days ({}): renew it, then reload palisade \
                 (SIGHUP) to take the new one",
                self.summary
            ));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if let Ok(meta) = std::fs::metadata(key) {
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    warnings.push(format!(
                        "{key_name} {} can be read by other users (mode {mode:o}): make it \
                         readable by palisade's user only (chmod 600)",
                        key.display()
                    ));
                }
            }
        }
        warnings
    }

    /// Whether the certificate (or a certificate of its chain) stops being valid within
    /// `seconds` from now.
    pub fn expires_within(&self, seconds: i64) -> bool {
        let now = x509_parser::time::ASN1Time::now().timestamp();
        self.not_after - now < seconds
    }
}

/// Reads a PEM chain, each certificate of it within its validity dates (a server refuses a
/// chain with an expired certificate at the first connection, and `palisade check` can say
/// so first): the chain, the first certificate's summary, and the earliest end of validity.
fn read_chain(pem: &[u8]) -> Result<(Vec<CertificateDer<'static>>, String, i64), String> {
    let chain = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| format!("not valid PEM: {}", crate::ca::pem_error(&err)))?;
    if chain.is_empty() {
        return Err("no certificate found (expected PEM: -----BEGIN CERTIFICATE-----)".into());
    }
    let now = x509_parser::time::ASN1Time::now();
    let mut summary = String::new();
    let mut earliest = i64::MAX;
    for (index, cert) in chain.iter().enumerate() {
        let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref())
            .map_err(|err| format!("not a valid X.509 certificate: {err}"))?;
        let validity = parsed.validity();
        let which = if index == 0 {
            String::new()
        } else {
            format!(
                "certificate {} of the chain ({}): ",
                index + 1,
                parsed.subject()
            )
        };
        if now > validity.not_after {
            return Err(format!(
                "{which}expired on {} (renew the client certificate)",
                validity.not_after
            ));
        }
        if now < validity.not_before {
            return Err(format!("{which}not valid before {}", validity.not_before));
        }
        if index == 0 {
            summary = format!("{}, valid until {}", parsed.subject(), validity.not_after);
        }
        earliest = earliest.min(validity.not_after.timestamp());
    }
    Ok((chain, summary, earliest))
}

/// Reads an unencrypted PEM private key.
fn read_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, String> {
    if is_encrypted_key(pem) {
        return Err(
            "is encrypted, and palisade cannot ask for its passphrase: write it out \
                    unencrypted (openssl pkey -in KEY -out KEY.plain) and keep that file \
                    readable by palisade only"
                .into(),
        );
    }
    PrivateKeyDer::from_pem_slice(pem).map_err(|_| {
        "no private key found (expected PEM: -----BEGIN PRIVATE KEY-----, or an RSA or EC key)"
            .to_owned()
    })
}

/// Whether `pem` holds an encrypted private key (PKCS#8 or a legacy OpenSSL PEM header),
/// which no PEM reader here can decrypt.
fn is_encrypted_key(pem: &[u8]) -> bool {
    let text = String::from_utf8_lossy(pem);
    text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----")
        || text.contains("Proc-Type: 4,ENCRYPTED")
}

impl ClientCert {
    /// The certificate chain, PEM.
    pub fn cert_pem(&self) -> &[u8] {
        &self.cert
    }

    /// The private key, PEM.
    pub fn key_pem(&self) -> &[u8] {
        &self.key
    }

    /// The chain and key for a rustls client configuration (checked when read).
    pub fn for_rustls(&self) -> Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
        let chain = CertificateDer::pem_slice_iter(&self.cert)
            .collect::<Result<Vec<_>, _>>()
            .ok()?;
        let key = PrivateKeyDer::from_pem_slice(&self.key).ok()?;
        Some((chain, key))
    }
}

impl fmt::Debug for ClientCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCert")
            .field("summary", &self.summary)
            .field("key", &"<redacted>")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An encrypted PKCS#8 key (its body is not a real key: only the label is read).
    const ENCRYPTED_PKCS8: &str =
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIBAA==\n-----END ENCRYPTED PRIVATE KEY-----\n";

    /// The one problem of a refused pair.
    fn one_problem(refused: Result<ClientCert, ClientCertProblems>) -> (ClientCertFile, String) {
        let problems = refused.expect_err("refused");
        assert_eq!(problems.len(), 1, "{problems:?}");
        problems.into_iter().next().expect("one")
    }

    /// Regression: an encrypted private key (PKCS#8 `ENCRYPTED PRIVATE KEY`, or a legacy PEM
    /// with `Proc-Type: 4,ENCRYPTED`) read "no private key found", which sent the operator
    /// looking for a missing key rather than at the passphrase.
    #[test]
    fn an_encrypted_client_key_is_named_as_such() {
        let made = rcgen::generate_simple_self_signed(vec!["palisade".into()]).expect("cert");
        let cert = made.cert.pem().into_bytes();
        for key in [
            ENCRYPTED_PKCS8,
            "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\n\
             MIIBAA==\n-----END RSA PRIVATE KEY-----\n",
        ] {
            let (file, why) =
                one_problem(ClientCert::from_pem(cert.clone(), key.as_bytes().to_vec()));
            assert_eq!(file, ClientCertFile::Key);
            assert!(why.starts_with("is encrypted"), "{why}");
        }
    }

    #[test]
    fn a_client_certificate_needs_its_own_key() {
        let made = rcgen::generate_simple_self_signed(vec!["palisade".into()]).expect("cert");
        let other = rcgen::generate_simple_self_signed(vec!["other".into()]).expect("cert");
        let cert = made.cert.pem().into_bytes();
        let key = made.signing_key.serialize_pem().into_bytes();
        let pair = ClientCert::from_pem(cert.clone(), key.clone()).expect("a usable pair");
        assert!(!format!("{pair:?}").contains("PRIVATE"), "{pair:?}");

        let wrong_key = other.signing_key.serialize_pem().into_bytes();
        let (file, why) = one_problem(ClientCert::from_pem(cert.clone(), wrong_key));
        assert_eq!(file, ClientCertFile::Key);
        assert!(
            why.contains("not the private key of the client certificate"),
            "{why}"
        );

        let (file, why) = one_problem(ClientCert::from_pem(cert.clone(), cert));
        assert_eq!(file, ClientCertFile::Key);
        assert!(why.starts_with("no private key found"), "{why}");

        let (file, why) = one_problem(ClientCert::from_pem(key.clone(), key));
        assert_eq!(file, ClientCertFile::Cert);
        assert!(why.starts_with("no certificate found"), "{why}");
    }

    #[test]
    fn an_expired_client_certificate_is_refused_before_any_connection() {
        let mut params = rcgen::CertificateParams::new(vec!["palisade".into()]).expect("params");
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("cert");
        let (file, why) = one_problem(ClientCert::from_pem(
            cert.pem().into_bytes(),
            key.serialize_pem().into_bytes(),
        ));
        assert_eq!(file, ClientCertFile::Cert);
        assert!(why.starts_with("expired on"), "{why}");
    }

    /// A certificate and its key each wrong: both said at once, so one round of fixes does.
    #[test]
    fn problems_of_both_files_are_reported_together() {
        let mut params = rcgen::CertificateParams::new(vec!["palisade".into()]).expect("params");
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        let key = rcgen::KeyPair::generate().expect("key");
        let expired = params.self_signed(&key).expect("cert");
        let encrypted = ENCRYPTED_PKCS8;
        let problems = ClientCert::from_pem(expired.pem().into_bytes(), encrypted.into())
            .expect_err("refused");
        let files: Vec<ClientCertFile> = problems.iter().map(|(file, _)| *file).collect();
        assert_eq!(
            files,
            [ClientCertFile::Cert, ClientCertFile::Key],
            "{problems:?}"
        );
    }

    /// Servers refuse a chain whose intermediate expired, whatever the leaf's dates.
    #[test]
    fn every_certificate_of_the_chain_must_be_in_its_dates() {
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "old intermediate");
        ca.not_before = rcgen::date_time_ymd(2019, 1, 1);
        ca.not_after = rcgen::date_time_ymd(2020, 1, 1);
        let ca_key = rcgen::KeyPair::generate().expect("key");
        let ca_cert = ca.self_signed(&ca_key).expect("ca");
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let mut leaf = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        leaf.distinguished_name
            .push(rcgen::DnType::CommonName, "palisade");
        let leaf_key = rcgen::KeyPair::generate().expect("key");
        let leaf_cert = leaf.signed_by(&leaf_key, &issuer).expect("leaf");
        let chain = format!("{}{}", leaf_cert.pem(), ca_cert.pem());
        let (file, why) = one_problem(ClientCert::from_pem(
            chain.into_bytes(),
            leaf_key.serialize_pem().into_bytes(),
        ));
        assert_eq!(file, ClientCertFile::Cert);
        assert!(
            why.starts_with("certificate 2 of the chain (CN=old intermediate): expired on"),
            "{why}"
        );

        let alone = ClientCert::from_pem(
            leaf_cert.pem().into_bytes(),
            leaf_key.serialize_pem().into_bytes(),
        )
        .expect("the leaf alone is in its dates");
        assert!(
            alone.summary().starts_with("CN=palisade, valid until"),
            "{}",
            alone.summary()
        );
        assert!(!alone.expires_within(3_600));
        assert!(alone.expires_within(i64::MAX / 2));
    }

    /// Warned at start-up and on reload: a certificate about to expire, a key others may read.
    #[cfg(unix)]
    #[test]
    fn a_pair_about_to_expire_or_with_an_open_key_file_is_warned_about() {
        use std::os::unix::fs::PermissionsExt;
        let mut params = rcgen::CertificateParams::new(vec!["palisade".into()]).expect("params");
        let now = x509_parser::time::ASN1Time::now().to_datetime();
        params.not_before = now - std::time::Duration::from_secs(3_600);
        params.not_after = now + std::time::Duration::from_secs(5 * 24 * 3_600);
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("cert");
        let dir = tempfile::tempdir().expect("dir");
        let key_file = dir.path().join("client.key");
        std::fs::write(&key_file, key.serialize_pem()).expect("write");
        let pair = ClientCert::from_pem(cert.pem().into_bytes(), key.serialize_pem().into_bytes())
            .expect("a pair");

        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let warnings = pair.warnings("c", "k", &key_file);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(
            warnings[0].starts_with("c expires within 14 days"),
            "{warnings:?}"
        );
        assert!(warnings[1].contains("mode 644"), "{warnings:?}");

        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert_eq!(pair.warnings("c", "k", &key_file).len(), 1);
    }
}
