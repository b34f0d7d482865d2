//! How the client trusts the server's certificate ([`TlsTrust`]) and the rustls configuration
//! that does it.
//!
//! A Proxmox node serves a certificate signed by the cluster's own CA (`pve-root-ca.pem`), or an
//! ACME one, or a self-signed one people pin by fingerprint (as PVE's own tools and the web UI
//! show it: SHA-256, `AA:BB:…`). Verification is never off unless the caller asks for
//! [`TlsTrust::InsecureSkipVerify`] by name. When a certificate is refused, the verifier records
//! the SHA-256 fingerprint the server presented, so the error can show it and a user who trusts
//! it can pin it.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};

use crate::error::Error;

/// A SHA-256 certificate fingerprint. Parses `AA:BB:…`, `aabb…` and `sha256:…`; displays as
/// Proxmox shows it (`AA:BB:…`, upper case).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The fingerprint of a DER-encoded certificate.
    pub fn of_der(der: &[u8]) -> Fingerprint {
        Fingerprint(Sha256::digest(der).into())
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// Why a string is not a SHA-256 fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a SHA-256 fingerprint: expected 32 hex bytes, as in AA:BB:CC:… (64 hex digits, colons optional)"
)]
pub struct FingerprintError(pub String);

impl FromStr for Fingerprint {
    type Err = FingerprintError;

    fn from_str(s: &str) -> Result<Fingerprint, FingerprintError> {
        let trimmed = s.trim();
        let body = trimmed
            .get(..7)
            .filter(|p| p.eq_ignore_ascii_case("sha256:"))
            .map_or(trimmed, |_| &trimmed[7..]);
        let digits: String = body.chars().filter(|c| *c != ':').collect();
        let bytes = hex::decode(&digits).map_err(|_| FingerprintError(s.to_string()))?;
        let array: [u8; 32] = bytes
            .try_into()
            .map_err(|_| FingerprintError(s.to_string()))?;
        Ok(Fingerprint(array))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, byte) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{byte:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// What the client trusts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum TlsTrust {
    /// Certificates issued by the CAs in this PEM file (the cluster's `pve-root-ca.pem`); the
    /// certificate must name the endpoint's host.
    CaFile(PathBuf),
    /// The same, from PEM text in memory.
    CaPem(Vec<u8>),
    /// Exactly the certificate with this SHA-256 fingerprint, whoever signed it and whatever
    /// name it has (how a self-signed node certificate is pinned).
    Fingerprint(Fingerprint),
    /// Certificates from the public web PKI (Mozilla's roots): a node with an ACME certificate.
    #[default]
    PublicRoots,
    /// No verification at all. Only on explicit request; the client warns when it is built.
    InsecureSkipVerify,
}

/// A certificate the verifier refused: what the server presented and (for a pin) what was
/// expected.
#[derive(Debug, Clone)]
pub(crate) struct Rejection {
    pub presented: Fingerprint,
    pub expected: Option<Fingerprint>,
    pub reason: String,
}

/// Where the verifiers leave their last refusal, for the client to turn into [`Error::Tls`].
#[derive(Debug, Default)]
pub(crate) struct RejectionSlot(Mutex<Option<Rejection>>);

impl RejectionSlot {
    fn record(&self, rejection: Rejection) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(rejection);
        }
    }

    pub(crate) fn take(&self) -> Option<Rejection> {
        self.0.lock().ok().and_then(|mut slot| slot.take())
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The rustls configuration for `trust`; refusals are recorded in `slot`.
pub(crate) fn client_config(
    trust: &TlsTrust,
    slot: Arc<RejectionSlot>,
) -> Result<rustls::ClientConfig, Error> {
    let provider = provider();
    let verifier: Arc<dyn ServerCertVerifier> = match trust {
        TlsTrust::CaFile(path) => {
            let pem = std::fs::read(path).map_err(|e| {
                Error::Config(format!("reading the CA file {}: {e}", path.display()))
            })?;
            recording(
                roots_from_pem(&pem, &path.display().to_string())?,
                &provider,
                slot,
            )?
        }
        TlsTrust::CaPem(pem) => recording(roots_from_pem(pem, "the CA PEM")?, &provider, slot)?,
        TlsTrust::PublicRoots => {
            let roots = RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            recording(roots, &provider, slot)?
        }
        TlsTrust::Fingerprint(expected) => Arc::new(PinnedVerifier {
            expected: *expected,
            provider: provider.clone(),
            slot,
        }),
        TlsTrust::InsecureSkipVerify => Arc::new(InsecureVerifier {
            provider: provider.clone(),
        }),
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS protocol versions: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(config)
}

fn roots_from_pem(pem: &[u8], what: &str) -> Result<RootCertStore, Error> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| Error::Config(format!("reading {what}: {e}")))?;
        roots.add(cert).map_err(|e| {
            Error::Config(format!("a certificate in {what} is not a usable CA: {e}"))
        })?;
    }
    if roots.is_empty() {
        return Err(Error::Config(format!(
            "{what} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
        )));
    }
    Ok(roots)
}

fn recording(
    roots: RootCertStore,
    provider: &Arc<CryptoProvider>,
    slot: Arc<RejectionSlot>,
) -> Result<Arc<dyn ServerCertVerifier>, Error> {
    let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| Error::Config(format!("TLS verifier: {e}")))?;
    Ok(Arc::new(RecordingVerifier { inner, slot }))
}

/// WebPKI verification (chain to the roots, name, validity), recording what it refuses.
#[derive(Debug)]
struct RecordingVerifier {
    inner: Arc<WebPkiServerVerifier>,
    slot: Arc<RejectionSlot>,
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            .inspect_err(|e| {
                self.slot.record(Rejection {
                    presented: Fingerprint::of_der(end_entity),
                    expected: None,
                    reason: e.to_string(),
                })
            })
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Accepts exactly the pinned certificate. The handshake signatures are still checked, so the
/// server must hold the certificate's key.
#[derive(Debug)]
struct PinnedVerifier {
    expected: Fingerprint,
    provider: Arc<CryptoProvider>,
    slot: Arc<RejectionSlot>,
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let presented = Fingerprint::of_der(end_entity);
        if presented == self.expected {
            return Ok(ServerCertVerified::assertion());
        }
        self.slot.record(Rejection {
            presented,
            expected: Some(self.expected),
            reason: "the certificate does not match the pinned fingerprint".to_string(),
        });
        Err(rustls::Error::InvalidCertificate(
            CertificateError::ApplicationVerificationFailure,
        ))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Accepts any certificate ([`TlsTrust::InsecureSkipVerify`]); signatures are still checked so
/// the handshake itself is sound.
#[derive(Debug)]
struct InsecureVerifier {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for InsecureVerifier {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The [`Error::Tls`] for a refusal.
pub(crate) fn rejection_error(endpoint: &str, rejection: Rejection) -> Error {
    let message = match rejection.expected {
        Some(expected) => format!(
            "TLS: the certificate of {endpoint} does not match the pinned fingerprint: expected \
             SHA-256 {expected}, the server presented {}",
            rejection.presented
        ),
        None => format!(
            "TLS: the certificate of {endpoint} is not trusted ({}); its SHA-256 fingerprint is \
             {}: if you trust it, pin that fingerprint or give the CA that signed it",
            rejection.reason, rejection.presented
        ),
    };
    Error::Tls {
        endpoint: endpoint.to_string(),
        message,
        presented: Some(rejection.presented),
        expected: rejection.expected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn fingerprints_parse_in_every_spelling() {
        let colons = "01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF";
        let want: Fingerprint = HEX.parse().expect("plain hex");
        for text in [
            colons.to_string(),
            colons.to_lowercase(),
            format!("sha256:{HEX}"),
            format!("SHA256:{colons}"),
            format!("  {HEX}\n"),
        ] {
            assert_eq!(text.parse::<Fingerprint>(), Ok(want), "{text}");
        }
        assert_eq!(want.to_string(), colons);
    }

    #[test]
    fn a_wrong_fingerprint_is_refused() {
        for text in [
            "",
            "01:23",
            &HEX[..62],
            &format!("{HEX}00"),
            &HEX.replace('a', "g"),
        ] {
            assert!(text.parse::<Fingerprint>().is_err(), "{text:?}");
        }
    }

    #[test]
    fn the_fingerprint_of_a_der_is_its_sha256() {
        // sha256("abc"), a standard test vector.
        assert_eq!(
            Fingerprint::of_der(b"abc").to_string(),
            "BA:78:16:BF:8F:01:CF:EA:41:41:40:DE:5D:AE:22:23:B0:03:61:A3:96:17:7A:9C:B4:10:FF:61:F2:00:15:AD"
        );
    }

    #[test]
    fn a_ca_file_without_certificates_is_a_config_error() {
        let err = roots_from_pem(b"not a pem", "ca.pem").expect_err("no certificate");
        assert!(err.to_string().contains("no PEM certificate"), "{err}");
    }
}
