//! How the client trusts a BMC's certificate: public roots, a CA file, a pinned SHA-256
//! fingerprint of the BMC's own certificate, or (explicitly) nothing. Builds the rustls
//! `ClientConfig` handed to reqwest.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};

use crate::RedfishError;

/// The trust for one BMC's certificate.
#[derive(Clone, PartialEq, Eq)]
pub enum TlsVerify {
    /// The public web PKI roots (rarely what a BMC has; most ship a self-signed certificate).
    PublicRoots,
    /// Certificates signed by the CA(s) in this PEM file; the name or IP must match.
    CaFile(PathBuf),
    /// CA certificates given as PEM text.
    CaPem(String),
    /// Exactly the certificate with this SHA-256 fingerprint (of its DER form), whatever its
    /// issuer, name or dates: the usual way to trust a BMC's self-signed certificate.
    Fingerprint([u8; 32]),
    /// Accept any certificate. Only when the manifest says `insecureSkipVerify: true`.
    InsecureSkipVerify,
}

impl fmt::Debug for TlsVerify {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsVerify::PublicRoots => f.write_str("PublicRoots"),
            TlsVerify::CaFile(path) => f.debug_tuple("CaFile").field(path).finish(),
            TlsVerify::CaPem(_) => f.write_str("CaPem(..)"),
            TlsVerify::Fingerprint(fp) => f
                .debug_tuple("Fingerprint")
                .field(&format_fingerprint(fp))
                .finish(),
            TlsVerify::InsecureSkipVerify => f.write_str("InsecureSkipVerify"),
        }
    }
}

impl TlsVerify {
    /// A pin from its text: 64 hex digits, with or without `:` between bytes, optionally
    /// prefixed by `sha256:` or `SHA256:` (openssl's `-fingerprint -sha256` output works).
    pub fn fingerprint(text: &str) -> Result<TlsVerify, RedfishError> {
        parse_fingerprint(text).map(TlsVerify::Fingerprint)
    }
}

/// Parses a SHA-256 certificate fingerprint (see [`TlsVerify::fingerprint`]).
pub fn parse_fingerprint(text: &str) -> Result<[u8; 32], RedfishError> {
    let trimmed = text.trim();
    let body = trimmed
        .split_once('=')
        .filter(|(k, _)| k.to_ascii_lowercase().contains("fingerprint"))
        .map(|(_, v)| v)
        .unwrap_or(trimmed);
    let body = body
        .strip_prefix("sha256:")
        .or_else(|| body.strip_prefix("SHA256:"))
        .unwrap_or(body);
    let hex_digits: String = body.chars().filter(|c| *c != ':' && *c != ' ').collect();
    let bytes = hex::decode(&hex_digits).map_err(|_| {
        RedfishError::Config(format!(
            "certificate fingerprint `{trimmed}` is not hex; expected 64 hex digits of a SHA-256 digest, e.g. AB:CD:…"
        ))
    })?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
        RedfishError::Config(format!(
            "certificate fingerprint `{trimmed}` has {} bytes; expected the 32 bytes of a SHA-256 digest",
            bytes.len()
        ))
    })
}

/// `AB:CD:…`, as openssl prints it.
pub fn format_fingerprint(fp: &[u8; 32]) -> String {
    fp.iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The SHA-256 fingerprint of a DER certificate.
pub fn certificate_fingerprint(der: &[u8]) -> [u8; 32] {
    Sha256::digest(der).into()
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The rustls configuration for `verify`.
pub fn client_config(verify: &TlsVerify) -> Result<ClientConfig, RedfishError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| RedfishError::Config(format!("TLS setup: {e}")))?;
    let config = match verify {
        TlsVerify::PublicRoots => {
            let roots = RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        TlsVerify::CaFile(path) => {
            let pem = std::fs::read(path).map_err(|e| {
                RedfishError::Config(format!("reading the CA file {}: {e}", path.display()))
            })?;
            let roots = roots_from_pem(&pem, &path.display().to_string())?;
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        TlsVerify::CaPem(pem) => {
            let roots = roots_from_pem(pem.as_bytes(), "the CA certificate")?;
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        TlsVerify::Fingerprint(pin) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedVerifier {
                pin: *pin,
                algorithms: provider.signature_verification_algorithms,
            }))
            .with_no_client_auth(),
        TlsVerify::InsecureSkipVerify => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate {
                algorithms: provider.signature_verification_algorithms,
            }))
            .with_no_client_auth(),
    };
    Ok(config)
}

fn roots_from_pem(pem: &[u8], what: &str) -> Result<RootCertStore, RedfishError> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert =
            cert.map_err(|e| RedfishError::Config(format!("{what} is not valid PEM: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| RedfishError::Config(format!("{what}: unusable certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(RedfishError::Config(format!(
            "{what} holds no certificate; expected PEM (-----BEGIN CERTIFICATE-----)"
        )));
    }
    Ok(roots)
}

/// Trusts exactly one certificate. Name and dates are not checked (the pin is the trust, as for
/// an SSH host key), but the handshake signatures are, so the peer must hold the key.
#[derive(Debug)]
struct PinnedVerifier {
    pin: [u8; 32],
    algorithms: WebPkiSupportedAlgorithms,
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
        let got = certificate_fingerprint(end_entity.as_ref());
        if got == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "the BMC's certificate has SHA-256 fingerprint {}, not the pinned {}",
                format_fingerprint(&got),
                format_fingerprint(&self.pin)
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// `insecureSkipVerify`: any certificate. Signatures are still checked so the session is at
/// least with the holder of the presented key.
#[derive(Debug)]
struct AnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AnyCertificate {
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
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_in_the_forms_people_paste() {
        let hex64 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let expected: [u8; 32] = hex::decode(hex64).unwrap().try_into().unwrap();
        let colons = format_fingerprint(&expected);
        for text in [
            hex64.to_string(),
            hex64.to_uppercase(),
            colons.clone(),
            format!("sha256:{hex64}"),
            format!("SHA256:{colons}"),
            format!("sha256 Fingerprint={colons}"),
            format!("  {colons}\n"),
        ] {
            assert_eq!(parse_fingerprint(&text).unwrap(), expected, "{text}");
        }
    }

    #[test]
    fn bad_fingerprints_say_what_was_expected() {
        let short = parse_fingerprint("AB:CD").unwrap_err().to_string();
        assert!(
            short.contains("2 bytes") && short.contains("32 bytes"),
            "{short}"
        );
        let not_hex = parse_fingerprint("zz").unwrap_err().to_string();
        assert!(not_hex.contains("not hex"), "{not_hex}");
    }

    #[test]
    fn ca_pem_without_certificates_is_refused() {
        let err = client_config(&TlsVerify::CaPem("hello".into())).unwrap_err();
        assert!(err.to_string().contains("holds no certificate"), "{err}");
    }
}
