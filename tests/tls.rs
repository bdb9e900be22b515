//! TLS as libpq does it. A private PostgreSQL server gets a certificate from
//! the test's own CA; for every `sslmode` × {no root, the right root, a wrong
//! root} × {the certificate's host name, another name of the same server} ×
//! {a database open to both, one that needs TLS, one that refuses it}, and
//! for a server whose certificate has expired, the project connects (and
//! encrypts) exactly when `psql` does.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use onboarding::db::{
    Database, DatabaseSettings, RlsContext, RootSources, Statement, parse_pg_url,
};
use onboarding::settings::{ExposeSecret, Profile, SecretString};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};

use crate::support::cluster::Postgres;

/// The CA, a CA the server does not use, and the certificates it signs.
struct Pki {
    ca: String,
    wrong_ca: String,
    server: (String, String),
    expired: (String, String),
    client: (String, String),
}

fn authority(name: &str) -> (rcgen::Certificate, KeyPair) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    (params.self_signed(&key).unwrap(), key)
}

fn leaf(names: &[&str], issuer: &(rcgen::Certificate, KeyPair), expired: bool) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(
        names
            .iter()
            .map(|name| name.to_string())
            .collect::<Vec<_>>(),
    )
    .unwrap();
    params.distinguished_name.push(DnType::CommonName, names[0]);
    if expired {
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    }
    let cert = params.signed_by(&key, &issuer.0, &issuer.1).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn pki() -> Pki {
    let ca = authority("onboarding test CA");
    let wrong = authority("another CA");
    Pki {
        ca: ca.0.pem(),
        wrong_ca: wrong.0.pem(),
        // Issued for `localhost` only: `127.0.0.1` is the same server under another name.
        server: leaf(&["localhost"], &ca, false),
        expired: leaf(&["localhost"], &ca, true),
        client: leaf(&["postgres"], &ca, false),
    }
}

const HBA: &str = "\
local all all trust
hostssl tlsonly all 127.0.0.1/32 trust
hostnossl plainonly all 127.0.0.1/32 trust
hostssl certonly all 127.0.0.1/32 trust clientcert=verify-ca
host postgres all 127.0.0.1/32 trust
";

async fn tls_server(dir: &Path, certificate: &(String, String), ca: &str) -> Postgres {
    let pg = Postgres::init(dir.to_path_buf()).unwrap();
    pg.write_file("server.crt", certificate.0.as_bytes())
        .unwrap();
    pg.write_file("server.key", certificate.1.as_bytes())
        .unwrap();
    pg.write_file("client_ca.crt", ca.as_bytes()).unwrap();
    pg.write_file("pg_hba.conf", HBA.as_bytes()).unwrap();
    pg.configure(
        "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\nssl_ca_file = 'client_ca.crt'",
    )
    .unwrap();
    pg.start().unwrap();
    let (admin, driver) = pg.connect("postgres").await.unwrap();
    for database in ["tlsonly", "plainonly", "certonly"] {
        admin
            .batch_execute(&format!("create database {database}"))
            .await
            .unwrap();
    }
    driver.abort();
    pg
}

/// Whether a connection was made, and whether it was encrypted.
type Outcome = Option<bool>;

const ENCRYPTED: &str = "select ssl from pg_stat_ssl where pid = pg_backend_pid()";

/// What `psql` (libpq) does with `url`, with an empty home directory so
/// that no `~/.postgresql/root.crt` is read.
fn psql(url: &str, home: &Path) -> Outcome {
    let output = Command::new("psql")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .args([url, "-X", "-A", "-t", "-c", ENCRYPTED])
        .output()
        .expect("psql runs (apt-get install postgresql-client)");
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim() == "t")
}

/// What the project does with `url`: the settings check, then the connect
/// that the pool runs for each new connection.
async fn project(url: &str, home: &Path) -> Outcome {
    let roots = RootSources {
        pem: None,
        home: Some(home.to_path_buf()),
    };
    let target = parse_pg_url(url, Duration::from_secs(5), &roots).ok()?;
    let client = target.connect().await.ok()?;
    let row = client.query_one(ENCRYPTED, &[]).await.ok()?;
    Some(row.get(0))
}

fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

const MODES: [&str; 6] = [
    "disable",
    "allow",
    "prefer",
    "require",
    "verify-ca",
    "verify-full",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sslmode_connects_exactly_when_psql_does() {
    let dir = std::env::temp_dir().join(format!("onboarding-tls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let pki = pki();
    let right = write(&dir, "ca.pem", &pki.ca);
    let wrong = write(&dir, "wrong-ca.pem", &pki.wrong_ca);
    let client_cert = write(&dir, "client.pem", &pki.client.0);
    let client_key = write(&dir, "client.key", &pki.client.1);
    std::fs::set_permissions(
        &client_key,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let (valid_dir, expired_dir) = (dir.join("valid"), dir.join("expired"));
    let (valid, expired) = tokio::join!(
        tls_server(&valid_dir, &pki.server, &pki.ca),
        tls_server(&expired_dir, &pki.expired, &pki.ca),
    );

    let roots = [
        ("no root", None),
        ("right root", Some(&right)),
        ("wrong root", Some(&wrong)),
    ];
    let mut cases = Vec::new();
    for mode in MODES {
        for (root_label, root) in &roots {
            let root = root.map_or(String::new(), |path| {
                format!("&sslrootcert={}", path.display())
            });
            for host in ["localhost", "127.0.0.1"] {
                for database in ["postgres", "tlsonly", "plainonly"] {
                    cases.push((
                        format!("{mode}, {root_label}, {host}, {database}"),
                        format!(
                            "postgresql://postgres@{host}:{}/{database}?sslmode={mode}{root}&connect_timeout=5",
                            valid.port
                        ),
                    ));
                }
            }
            cases.push((
                format!("{mode}, {root_label}, expired certificate"),
                format!(
                    "postgresql://postgres@localhost:{}/postgres?sslmode={mode}{root}&connect_timeout=5",
                    expired.port
                ),
            ));
        }
    }
    for (label, certificate) in [
        (
            "client certificate",
            format!(
                "&sslcert={}&sslkey={}",
                client_cert.display(),
                client_key.display()
            ),
        ),
        ("no client certificate", String::new()),
    ] {
        cases.push((
            format!("verify-full, right root, {label}, certonly"),
            format!(
                "postgresql://postgres@localhost:{}/certonly?sslmode=verify-full&sslrootcert={}{certificate}&connect_timeout=5",
                valid.port,
                right.display()
            ),
        ));
    }

    let mut mismatches = Vec::new();
    let mut connected = 0;
    for (label, url) in &cases {
        let expected = psql(url, &home);
        let actual = project(url, &home).await;
        if expected.is_some() {
            connected += 1;
        }
        if expected != actual {
            mismatches.push(format!("{label}: psql {expected:?}, project {actual:?}"));
        }
    }
    valid.stop().unwrap();
    expired.stop().unwrap();
    assert!(
        mismatches.is_empty(),
        "{} of {} cases differ from psql (Some(encrypted) = connected):\n{}",
        mismatches.len(),
        cases.len(),
        mismatches.join("\n")
    );
    // Not a matrix that agrees because nothing connects, or everything does.
    assert!(
        connected > 20 && connected < cases.len() - 20,
        "{connected} of {}",
        cases.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_verifies_the_server_with_a_ca_given_as_pem_text() {
    let dir = std::env::temp_dir().join(format!("onboarding-tls-pem-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let pki = pki();
    let pg = tls_server(&dir.join("server"), &pki.server, &pki.ca).await;
    let url = |host: &str| {
        SecretString::from(format!(
            "postgres://postgres@{host}:{}/tlsonly?sslmode=verify-full",
            pg.port
        ))
    };
    let settings = |host: &str, pem: &str| {
        let url = url(host);
        let lookup = move |name: &str| match name {
            "DATABASE_URL" => Some(url.expose_secret().to_string()),
            "DATABASE_SSL_ROOT_CERT_PEM" => Some(pem.to_string()),
            _ => None,
        };
        DatabaseSettings::from_lookup(&lookup, Profile::Deployed).map_err(|error| error.to_string())
    };
    let probe = Statement::new("select 1", &[]);
    let query = async |host: &str, ca: &str| {
        let db = Database::new(&settings(host, ca).unwrap()).unwrap();
        db.one_trip(&RlsContext::login_role(), &probe, &[])
            .await
            .map(|_| ())
            .map_err(|error| error.to_string())
    };

    query("localhost", &pki.ca)
        .await
        .expect("verify-full with the server's CA as PEM text connects");
    let error = query("127.0.0.1", &pki.ca).await.unwrap_err();
    assert!(
        error.contains("TLS handshake") && error.contains("not valid for name \"127.0.0.1\""),
        "a wrong host name is refused, and says why: {error}"
    );

    let error = query("localhost", &pki.wrong_ca).await.unwrap_err();
    assert!(
        error.contains("UnknownIssuer"),
        "a wrong CA is refused, and says why: {error}"
    );

    let error = settings("localhost", "not a certificate").unwrap_err();
    assert!(error.contains("DATABASE_SSL_ROOT_CERT_PEM"), "{error}");
    pg.stop().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// The test servers are stopped when their handles go, so a test that
/// fails between a server's start and its `stop` leaves nothing running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_server_whose_handle_goes_is_stopped() {
    let dir = std::env::temp_dir().join(format!("onboarding-tls-drop-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let pg = Postgres::init(dir.clone()).unwrap();
    pg.start().unwrap();
    let port = pg.port;
    assert!(pg.is_running());
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    drop(pg);
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "nothing listens on {port} once the handle is dropped"
    );
    assert!(!dir.join("pgdata").join("postmaster.pid").exists());
    let _ = std::fs::remove_dir_all(&dir);
}
