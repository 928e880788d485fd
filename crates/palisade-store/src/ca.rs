//! CA certificates an operator gives palisade to trust instead of the public web roots
//! (a private CA, or an internal service's self-signed certificate): for `rediss://`
//! (`[state] redis_ca_file`) and for an `https://` upstream (`[upstream] ca_file`).
//!
//! Reading is bounded in size, and a file is accepted only when every PEM block in it is a
//! certificate rustls can use as a trust anchor, so a wrong file fails at `palisade check`
//! rather than at the first connection.

use std::fmt;
use std::io::Read;
use std::path::Path;

use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// The largest PEM file read (a CA bundle, a client certificate or its key): a bundle of a
/// few hundred certificates fits.
const MAX_PEM_FILE: u64 = 1 << 20;

/// Reads a PEM file of at most [`MAX_PEM_FILE`] bytes. The error says what is wrong with the
/// file, without naming it (the caller knows the key and path); `expected` says what the
/// file should hold.
pub(crate) fn read_pem(path: &Path, expected: &str) -> Result<Vec<u8>, String> {
    let file = std::fs::File::open(path).map_err(|err| err.to_string())?;
    let mut pem = Vec::new();
    file.take(MAX_PEM_FILE + 1)
        .read_to_end(&mut pem)
        .map_err(|err| err.to_string())?;
    if pem.len() as u64 > MAX_PEM_FILE {
        return Err(format!(
            "larger than {MAX_PEM_FILE} bytes, expected {expected}"
        ));
    }
    Ok(pem)
}

/// One or more CA certificates (PEM), checked to be usable trust anchors.
#[derive(Clone, PartialEq, Eq)]
pub struct CaCertificates {
    pem: Vec<u8>,
}

impl CaCertificates {
    /// Reads and checks a PEM file of one or more CA certificates. The error says what is
    /// wrong with the file, without naming it (the caller knows the key and path).
    pub fn from_file(path: &Path) -> Result<Self, String> {
        Self::from_pem(read_pem(path, "PEM certificates")?)
    }

    /// Checks PEM text holding one or more CA certificates: each a CA (`CA:TRUE`), or a
    /// self-signed certificate pinned as the server's own.
    pub fn from_pem(pem: Vec<u8>) -> Result<Self, String> {
        let roots = roots_of(&pem)?;
        if roots.is_empty() {
            return Err("no certificate found (expected PEM: -----BEGIN CERTIFICATE-----)".into());
        }
        Ok(Self { pem })
    }

    /// The PEM text, as read.
    pub fn pem(&self) -> &[u8] {
        &self.pem
    }

    /// The certificates as rustls trust anchors.
    pub fn root_store(&self) -> RootCertStore {
        roots_of(&self.pem).expect("checked by from_pem when made")
    }
}

/// Every certificate of `pem` as a trust anchor; an error for the first one that is not,
/// or that may not vouch for others ([`vouches`]).
// TODO: a self-signed CA:FALSE certificate pinned here could still sign other certificates
// that are then trusted (webpki keeps only an anchor's name and key); it takes the pinned
// certificate's own private key, and pinning exactly that end-entity needs our own verifier.
fn roots_of(pem: &[u8]) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for (n, cert) in CertificateDer::pem_slice_iter(pem).enumerate() {
        let cert = cert.map_err(|err| format!("not valid PEM: {}", pem_error(&err)))?;
        roots
            .add(cert.clone())
            .map_err(|err| format!("not a usable CA certificate: {err}"))?;
        vouches(&cert).map_err(|why| format!("certificate {}: {why}", n + 1))?;
    }
    Ok(roots)
}

/// Whether `cert` may vouch for a server's certificate: a CA (`basicConstraints` with
/// `CA:TRUE`), or a self-signed certificate, which can only be the server's own. rustls keeps
/// only a trust anchor's name and key, so a leaf certificate of someone else's (`CA:FALSE`,
/// issued by another CA) would otherwise let its key sign certificates that are trusted.
fn vouches(cert: &CertificateDer<'_>) -> Result<(), String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|err| format!("not a valid X.509 certificate: {err}"))?;
    let ca = parsed
        .basic_constraints()
        .map_err(|err| format!("unreadable basicConstraints: {err}"))?
        .is_some_and(|constraints| constraints.value.ca);
    // Self-signed: its own name as issuer, and its signature checks with its own key.
    let self_signed = parsed.subject() == parsed.issuer() && parsed.verify_signature(None).is_ok();
    if ca || self_signed {
        return Ok(());
    }
    Err(format!(
        "{} is not a CA (no basicConstraints CA:TRUE) and not self-signed, so it cannot vouch \
         for another certificate: give the certificate of the CA that issued it ({})",
        parsed.subject(),
        parsed.issuer()
    ))
}

/// A PEM reading error in words: the end line a section lacks is written out as text, not
/// as the list of byte values the error's own message prints.
pub(crate) fn pem_error(err: &rustls_pki_types::pem::Error) -> String {
    match err {
        rustls_pki_types::pem::Error::MissingSectionEnd { end_marker } => format!(
            "a section has no end line (expected -----END {}-----)",
            String::from_utf8_lossy(end_marker)
        ),
        other => other.to_string(),
    }
}

impl fmt::Debug for CaCertificates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaCertificates")
            .field("bytes", &self.pem.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_must_hold_at_least_one_pem_certificate() {
        let made = rcgen::generate_simple_self_signed(vec!["ca.example".into()]).expect("cert");
        let ca = CaCertificates::from_pem(made.cert.pem().into_bytes()).expect("a CA");
        assert_eq!(ca.root_store().len(), 1);
        let empty = CaCertificates::from_pem(b"just text\n".to_vec()).expect_err("none");
        assert!(empty.starts_with("no certificate found"), "{empty}");
        let key = made.signing_key.serialize_pem().into_bytes();
        assert!(CaCertificates::from_pem(key).is_err(), "a key is no CA");
        let torn = "-----BEGIN CERTIFICATE-----\nAAAA\n";
        let err = CaCertificates::from_pem(torn.as_bytes().to_vec()).expect_err("torn");
        // Regression: the end line was printed as a list of byte values ([45, 45, ...]).
        assert!(
            err.contains("-----END CERTIFICATE-----") && !err.contains("[45"),
            "{err}"
        );
    }

    /// Regression: a leaf certificate issued by another CA was taken as a trust anchor, so
    /// its key could sign server certificates that were then trusted.
    #[test]
    fn a_leaf_issued_by_another_ca_cannot_be_a_ca_file() {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_key = KeyPair::generate().expect("key");
        let ca = ca_params.self_signed(&ca_key).expect("ca");
        assert!(CaCertificates::from_pem(ca.pem().into_bytes()).is_ok());
        let issuer = Issuer::new(ca_params, ca_key);
        for is_ca in [IsCa::NoCa, IsCa::ExplicitNoCa] {
            let mut leaf = CertificateParams::new(vec!["app.internal".into()]).expect("params");
            leaf.is_ca = is_ca;
            let leaf_key = KeyPair::generate().expect("key");
            let leaf = leaf.signed_by(&leaf_key, &issuer).expect("leaf");
            let err = CaCertificates::from_pem(leaf.pem().into_bytes()).expect_err("a leaf");
            assert!(err.contains("is not a CA"), "{err}");
        }
    }

    #[test]
    fn a_ca_file_larger_than_the_bound_is_refused_unread() {
        let file = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(file.path(), vec![b'x'; (MAX_PEM_FILE + 1) as usize]).expect("write");
        let err = CaCertificates::from_file(file.path()).expect_err("too large");
        assert!(err.starts_with("larger than"), "{err}");
    }
}
