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

/// A client certificate (chain, PEM) and its private key (PEM), as palisade presents them to
/// a server that checks its clients.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientCert {
    cert: Vec<u8>,
    key: Vec<u8>,
}

impl ClientCert {
    /// Reads and checks a certificate file and its key file; the error says which file is
    /// wrong and how, without naming it.
    pub fn from_files(cert: &Path, key: &Path) -> Result<Self, (ClientCertFile, String)> {
        let cert =
            read_pem(cert, "a PEM certificate").map_err(|why| (ClientCertFile::Cert, why))?;
        let key = read_pem(key, "a PEM private key").map_err(|why| (ClientCertFile::Key, why))?;
        Self::from_pem(cert, key)
    }

    /// Checks a PEM certificate chain (the client's certificate first) and its private key:
    /// both readable, and the key the one the certificate names.
    pub fn from_pem(cert: Vec<u8>, key: Vec<u8>) -> Result<Self, (ClientCertFile, String)> {
        let chain = CertificateDer::pem_slice_iter(&cert)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| {
                let why = crate::ca::pem_error(&err);
                (ClientCertFile::Cert, format!("not valid PEM: {why}"))
            })?;
        if chain.is_empty() {
            return Err((
                ClientCertFile::Cert,
                "no certificate found (expected PEM: -----BEGIN CERTIFICATE-----)".into(),
            ));
        }
        in_validity(&chain[0]).map_err(|why| (ClientCertFile::Cert, why))?;
        if is_encrypted_key(&key) {
            return Err((
                ClientCertFile::Key,
                "is encrypted, and palisade cannot ask for its passphrase: write it out \
                 unencrypted (openssl pkey -in KEY -out KEY.plain) and keep that file \
                 readable by palisade only"
                    .into(),
            ));
        }
        let private = PrivateKeyDer::from_pem_slice(&key).map_err(|_| {
            (
                ClientCertFile::Key,
                "no private key found (expected PEM: -----BEGIN PRIVATE KEY-----, or an RSA or \
                 EC key)"
                    .to_owned(),
            )
        })?;
        let provider = rustls::crypto::ring::default_provider();
        match CertifiedKey::from_der(chain, private, &provider) {
            Ok(_) => Ok(Self { cert, key }),
            Err(rustls::Error::InconsistentKeys(_)) => Err((
                ClientCertFile::Key,
                "is not the private key of the client certificate it is paired with".into(),
            )),
            Err(err) => Err((
                ClientCertFile::Key,
                format!("not a usable private key: {err}"),
            )),
        }
    }
}

/// Refuses a certificate outside its validity dates: the server would refuse it at the first
/// connection, and `palisade check` can say so first.
fn in_validity(cert: &CertificateDer<'_>) -> Result<(), String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|err| format!("not a valid X.509 certificate: {err}"))?;
    let validity = parsed.validity();
    let now = x509_parser::time::ASN1Time::now();
    if now > validity.not_after {
        return Err(format!(
            "expired on {} (renew the client certificate)",
            validity.not_after
        ));
    }
    if now < validity.not_before {
        return Err(format!("not valid before {}", validity.not_before));
    }
    Ok(())
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
            .field("cert_bytes", &self.cert.len())
            .field("key", &"<redacted>")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: an encrypted private key (PKCS#8 `ENCRYPTED PRIVATE KEY`, or a legacy PEM
    /// with `Proc-Type: 4,ENCRYPTED`) read "no private key found", which sent the operator
    /// looking for a missing key rather than at the passphrase.
    #[test]
    fn an_encrypted_client_key_is_named_as_such() {
        let made = rcgen::generate_simple_self_signed(vec!["palisade".into()]).expect("cert");
        let cert = made.cert.pem().into_bytes();
        for key in [
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIBAA==\n-----END ENCRYPTED PRIVATE KEY-----\n",
            "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\n\
             MIIBAA==\n-----END RSA PRIVATE KEY-----\n",
        ] {
            let (file, why) =
                ClientCert::from_pem(cert.clone(), key.as_bytes().to_vec()).expect_err("encrypted");
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
        let (file, why) = ClientCert::from_pem(cert.clone(), wrong_key).expect_err("mismatch");
        assert_eq!(file, ClientCertFile::Key);
        assert!(
            why.contains("not the private key of the client certificate"),
            "{why}"
        );

        let (file, why) = ClientCert::from_pem(cert.clone(), cert).expect_err("no key");
        assert_eq!(file, ClientCertFile::Key);
        assert!(why.starts_with("no private key found"), "{why}");

        let (file, why) = ClientCert::from_pem(key.clone(), key).expect_err("no cert");
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
        let (file, why) =
            ClientCert::from_pem(cert.pem().into_bytes(), key.serialize_pem().into_bytes())
                .expect_err("expired");
        assert_eq!(file, ClientCertFile::Cert);
        assert!(why.starts_with("expired on"), "{why}");
    }
}
