//! TLS to PostgreSQL with libpq's meaning of the URL's `sslmode`,
//! `sslrootcert`, `sslcert` and `sslkey`, so that a URL that works with
//! `psql` works here, and one that `psql` refuses is refused here too.
//!
//! | `sslmode` | encrypts | checks the certificate |
//! | --- | --- | --- |
//! | `disable` | never | — |
//! | `allow` | only if the server refuses a plain connection | chain, when a root is given |
//! | `prefer` (default) | when the server offers it; plain if that fails | chain, when a root is given |
//! | `require` | always | chain, when a root is given |
//! | `verify-ca` | always | chain (a root is required) |
//! | `verify-full` | always | chain and host name (a root is required) |
//!
//! The root is `sslrootcert` (a PEM file, or `system` for the public web
//! roots bundled in the binary, as libpq 16 reads it), else the PEM text of
//! `DATABASE_SSL_ROOT_CERT_PEM`, else `~/.postgresql/root.crt` when that file
//! exists, as libpq does.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use tokio::task::JoinHandle;
use tokio_postgres::config::SslMode as DriverSslMode;

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    const ACCEPTED: &str = "disable, allow, prefer, require, verify-ca, verify-full";

    fn parse(value: &str) -> Result<Self, String> {
        Ok(match value {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(format!(
                    "sslmode `{other}` is not one of {}",
                    Self::ACCEPTED
                ));
            }
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    fn verifies(self) -> bool {
        matches!(self, SslMode::VerifyCa | SslMode::VerifyFull)
    }
}

/// The URL's TLS parameters, as text, before they are checked.
#[derive(Debug, Default, Clone)]
pub struct TlsParameters {
    pub sslmode: Option<String>,
    pub sslrootcert: Option<String>,
    pub sslcert: Option<String>,
    pub sslkey: Option<String>,
}

impl TlsParameters {
    /// The parameters this module reads, which the driver must not see
    /// (it knows only `disable`, `prefer` and `require`).
    pub const NAMES: [&str; 4] = ["sslmode", "sslrootcert", "sslcert", "sslkey"];

    pub fn set(&mut self, name: &str, value: String) {
        match name {
            "sslmode" => self.sslmode = Some(value),
            "sslrootcert" => self.sslrootcert = Some(value),
            "sslcert" => self.sslcert = Some(value),
            "sslkey" => self.sslkey = Some(value),
            _ => {}
        }
    }
}

/// Where the trusted roots come from, besides the URL.
#[derive(Debug, Default, Clone)]
pub struct RootSources {
    /// PEM text (`DATABASE_SSL_ROOT_CERT_PEM`), used when the URL names no `sslrootcert`.
    pub pem: Option<String>,
    /// libpq's default root file, `~/.postgresql/root.crt`, used when it exists.
    pub home: Option<PathBuf>,
}

impl RootSources {
    /// The process's `HOME`, and no PEM text.
    pub fn from_home() -> Self {
        Self {
            pem: None,
            home: std::env::var_os("HOME").map(PathBuf::from),
        }
    }
}

/// How connections are opened: libpq's `sslmode` and, unless it is
/// `disable`, the TLS configuration that checks what that mode checks.
#[derive(Clone)]
pub struct LibpqTls {
    mode: SslMode,
    connector: Option<tokio_postgres_rustls::MakeRustlsConnect>,
}

impl std::fmt::Debug for LibpqTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LibpqTls")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

enum Roots {
    /// None given: the certificate is not checked (modes up to `require`).
    Unset,
    /// `sslrootcert=system`: the public web roots.
    System,
    Certificates(Vec<CertificateDer<'static>>),
}

impl LibpqTls {
    /// Checks the parameters and reads the files they name, so that a wrong
    /// path or mode stops the process at start with the parameter's name,
    /// not at the first request.
    pub fn new(parameters: &TlsParameters, sources: &RootSources) -> Result<Self, String> {
        let system = parameters.sslrootcert.as_deref() == Some("system");
        let mode = match parameters.sslmode.as_deref() {
            Some(value) => SslMode::parse(value)?,
            // libpq 16: a system root store makes the host name checked by default.
            None if system => SslMode::VerifyFull,
            None => SslMode::Prefer,
        };
        if system && mode != SslMode::VerifyFull {
            return Err(format!(
                "sslmode `{}` may not be used with sslrootcert=system (use verify-full), as libpq says",
                mode.as_str()
            ));
        }
        if mode == SslMode::Disable {
            return Ok(Self {
                mode,
                connector: None,
            });
        }
        let roots = match (&parameters.sslrootcert, &sources.pem) {
            (Some(_), _) if system => Roots::System,
            (Some(path), _) => {
                Roots::Certificates(read_certificates(Path::new(path), "sslrootcert")?)
            }
            (None, Some(pem)) => Roots::Certificates(
                CertificateDer::pem_slice_iter(pem.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|error| format!("DATABASE_SSL_ROOT_CERT_PEM is not PEM: {error}"))
                    .and_then(|certificates| {
                        non_empty(certificates, "DATABASE_SSL_ROOT_CERT_PEM")
                    })?,
            ),
            (None, None) => match sources
                .home
                .as_ref()
                .map(|home| home.join(".postgresql/root.crt"))
            {
                Some(default) if default.exists() => {
                    Roots::Certificates(read_certificates(&default, "sslrootcert")?)
                }
                _ => Roots::Unset,
            },
        };
        if mode.verifies() && matches!(roots, Roots::Unset) {
            return Err(format!(
                "sslmode={} needs the server's CA: add sslrootcert=<path of its PEM file> \
                 (or set DATABASE_SSL_ROOT_CERT_PEM), or sslrootcert=system for a public CA",
                mode.as_str()
            ));
        }
        let identity = match (&parameters.sslcert, &parameters.sslkey) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some((
                read_certificates(Path::new(cert), "sslcert")?,
                PrivateKeyDer::from_pem_file(key).map_err(|error| {
                    format!("sslkey: cannot read a private key from {key}: {error}")
                })?,
            )),
            (Some(_), None) => return Err("sslcert is given without sslkey".into()),
            (None, Some(_)) => return Err("sslkey is given without sslcert".into()),
        };
        let config = client_config(mode, roots, identity)?;
        Ok(Self {
            mode,
            connector: Some(tokio_postgres_rustls::MakeRustlsConnect::new(config)),
        })
    }

    pub fn mode(&self) -> SslMode {
        self.mode
    }

    /// Opens a connection as libpq would for this mode, and spawns the task
    /// that drives it. `allow` tries a plain connection first and `prefer` an
    /// encrypted one; each tries the other way when the server or the
    /// handshake refuses the first, never when the server is unreachable.
    pub async fn connect(
        &self,
        config: &tokio_postgres::Config,
    ) -> Result<(tokio_postgres::Client, JoinHandle<()>), tokio_postgres::Error> {
        match self.mode {
            SslMode::Disable => self.plain(config).await,
            SslMode::Allow => match self.plain(config).await {
                Err(error) if refused(&error) => {
                    self.encrypted(config, DriverSslMode::Require).await
                }
                outcome => outcome,
            },
            SslMode::Prefer => match self.encrypted(config, DriverSslMode::Prefer).await {
                Err(error) if refused(&error) => self.plain(config).await,
                outcome => outcome,
            },
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                self.encrypted(config, DriverSslMode::Require).await
            }
        }
    }

    async fn plain(
        &self,
        config: &tokio_postgres::Config,
    ) -> Result<(tokio_postgres::Client, JoinHandle<()>), tokio_postgres::Error> {
        let mut config = config.clone();
        config.ssl_mode(DriverSslMode::Disable);
        let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
        Ok((client, drive(connection)))
    }

    async fn encrypted(
        &self,
        config: &tokio_postgres::Config,
        mode: DriverSslMode,
    ) -> Result<(tokio_postgres::Client, JoinHandle<()>), tokio_postgres::Error> {
        let connector = self
            .connector
            .clone()
            .expect("every mode but disable has a TLS configuration");
        let mut config = config.clone();
        config.ssl_mode(mode);
        let (client, connection) = config.connect(connector).await?;
        Ok((client, drive(connection)))
    }
}

impl deadpool_postgres::Connect for LibpqTls {
    fn connect(
        &self,
        pg_config: &tokio_postgres::Config,
    ) -> futures_util::future::BoxFuture<
        '_,
        Result<(tokio_postgres::Client, JoinHandle<()>), tokio_postgres::Error>,
    > {
        let config = pg_config.clone();
        Box::pin(async move { LibpqTls::connect(self, &config).await })
    }
}

fn drive<F>(connection: F) -> JoinHandle<()>
where
    F: Future<Output = Result<(), tokio_postgres::Error>> + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "database connection closed");
        }
    })
}

/// Whether the server answered but refused this way of connecting (an
/// error from the server, or a failed handshake): libpq then tries the other
/// way. A server that cannot be reached is not asked twice.
fn refused(error: &tokio_postgres::Error) -> bool {
    error.as_db_error().is_some()
        || error
            .to_string()
            .starts_with("error performing TLS handshake")
}

fn read_certificates(path: &Path, parameter: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certificates = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|error| {
            format!(
                "{parameter}: cannot read certificates from {}: {error}",
                path.display()
            )
        })?;
    non_empty(certificates, &format!("{parameter} ({})", path.display()))
}

fn non_empty(
    certificates: Vec<CertificateDer<'static>>,
    source: &str,
) -> Result<Vec<CertificateDer<'static>>, String> {
    if certificates.is_empty() {
        Err(format!("{source} holds no PEM certificate"))
    } else {
        Ok(certificates)
    }
}

fn client_config(
    mode: SslMode,
    roots: Roots,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = match roots {
        Roots::Unset => None,
        Roots::System => {
            let mut store = rustls::RootCertStore::empty();
            store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            Some(store)
        }
        Roots::Certificates(certificates) => {
            let mut store = rustls::RootCertStore::empty();
            for certificate in certificates {
                store
                    .add(certificate)
                    .map_err(|error| format!("sslrootcert: unusable certificate: {error}"))?;
            }
            Some(store)
        }
    }
    .map(|store| {
        WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider.clone())
            .build()
            .map_err(|error| format!("sslrootcert: {error}"))
    })
    .transpose()?;
    let verifier = Arc::new(LibpqVerifier {
        chain,
        check_name: mode == SslMode::VerifyFull,
        provider: provider.clone(),
    });
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| format!("TLS: {error}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    match identity {
        Some((certificates, key)) => builder
            .with_client_auth_cert(certificates, key)
            .map_err(|error| format!("sslcert/sslkey: {error}")),
        None => Ok(builder.with_no_client_auth()),
    }
}

/// What libpq checks of the server's certificate. Without a root (modes up
/// to `require`), nothing: any certificate is taken. With one, the chain
/// must lead to it and be valid today; with `verify-full` the host name must
/// be in it too. The handshake's signatures are always checked, so the
/// server holds the key of the certificate it sent.
#[derive(Debug)]
struct LibpqVerifier {
    chain: Option<Arc<WebPkiServerVerifier>>,
    check_name: bool,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for LibpqVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        // webpki checks the name only after the chain, so a name error means the chain held.
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            outcome => outcome,
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn tls(pairs: &[(&str, &str)]) -> Result<LibpqTls, String> {
        let mut parameters = TlsParameters::default();
        for (name, value) in pairs {
            parameters.set(name, value.to_string());
        }
        LibpqTls::new(&parameters, &RootSources::default())
    }

    #[test]
    fn prefer_is_the_default_and_every_libpq_mode_is_accepted() {
        assert_eq!(tls(&[]).unwrap().mode(), SslMode::Prefer);
        for mode in ["disable", "allow", "prefer", "require"] {
            assert_eq!(tls(&[("sslmode", mode)]).unwrap().mode().as_str(), mode);
        }
        let error = tls(&[("sslmode", "verify_full")]).unwrap_err();
        assert!(
            error.contains("sslmode `verify_full`") && error.contains("verify-ca"),
            "{error}"
        );
    }

    #[test]
    fn verification_without_a_root_is_refused_with_what_to_add() {
        for mode in ["verify-ca", "verify-full"] {
            let error = tls(&[("sslmode", mode)]).unwrap_err();
            assert!(error.contains("sslrootcert"), "{error}");
        }
    }

    #[test]
    fn system_roots_mean_verify_full_as_in_libpq_16() {
        assert_eq!(
            tls(&[("sslrootcert", "system")]).unwrap().mode(),
            SslMode::VerifyFull
        );
        let error = tls(&[("sslrootcert", "system"), ("sslmode", "require")]).unwrap_err();
        assert!(error.contains("verify-full"), "{error}");
    }

    #[test]
    fn missing_files_name_their_parameter() {
        let error = tls(&[
            ("sslmode", "verify-ca"),
            ("sslrootcert", "/nonexistent/ca.pem"),
        ])
        .unwrap_err();
        assert!(
            error.starts_with("sslrootcert:") && error.contains("/nonexistent/ca.pem"),
            "{error}"
        );
        let error = tls(&[("sslcert", "/nonexistent/client.pem")]).unwrap_err();
        assert!(error.contains("sslkey"), "{error}");
    }
}
