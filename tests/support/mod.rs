//! Test harness: a fresh database per test, migrated from `migrations/`, reached
//! through the application's own non-superuser role.

pub mod api;
// The reliability suite's private servers, shared rather than copied.
#[path = "../../bin/reliability/cluster.rs"]
#[allow(dead_code)]
pub mod cluster;
pub mod proxy;
pub mod webhook;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use onboarding::config::Settings;
use onboarding::db::{Database, DatabaseSettings};
use onboarding::settings::{Profile, SecretString};
use onboarding::{AppState, http, openapi, routes};
use tokio_postgres::NoTls;

/// The local server as a superuser (trust auth), for creating databases.
pub const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable";

pub fn admin_url_for(database: &str) -> String {
    format!("postgres://postgres@127.0.0.1:5432/{database}?sslmode=disable")
}

/// The application's connections go to the local server, or to what
/// `TEST_APP_DATABASE_ADDRESS` names, with `TEST_APP_DATABASE_PARAMETERS`
/// added: `scripts/test-pooler` runs the suite through a PgBouncer so.
pub fn app_url_for(database: &str) -> String {
    let address =
        std::env::var("TEST_APP_DATABASE_ADDRESS").unwrap_or_else(|_| "127.0.0.1:5432".into());
    let parameters = std::env::var("TEST_APP_DATABASE_PARAMETERS")
        .map(|parameters| format!("&{parameters}"))
        .unwrap_or_default();
    format!("postgres://onboarding_app@{address}/{database}?sslmode=disable{parameters}")
}

/// One connection, with the URL read as the application reads it (so a
/// pooler's `pgbouncer=true` is understood).
pub async fn connect(url: &str) -> tokio_postgres::Client {
    let target = onboarding::db::parse_pg_url(
        url,
        Duration::from_secs(10),
        &onboarding::db::RootSources::default(),
    )
    .unwrap_or_else(|problem| panic!("{url} {problem}"));
    target
        .connect()
        .await
        .unwrap_or_else(|error| panic!("cannot connect to {url}: {error}"))
}

/// The backend pids of the application's connections (`onboarding_app`) to
/// `database`, as the server lists them.
pub async fn app_backends(admin: &tokio_postgres::Client, database: &str) -> Vec<i32> {
    admin
        .query(
            "select pid from pg_stat_activity where datname = $1 and usename = 'onboarding_app'",
            &[&database],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

/// A fingerprint of the migrations, so a changed migration gets a new template.
fn migrations_fingerprint() -> String {
    let mut entries: Vec<_> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .expect("migrations/ exists")
        .map(|entry| entry.expect("readable entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "sql"))
        .collect();
    entries.sort();
    // FNV-1a: stable across runs and processes, unlike std's hasher.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for path in entries {
        let bytes = std::fs::read(&path).expect("readable migration");
        for byte in path
            .file_name()
            .unwrap()
            .as_encoded_bytes()
            .iter()
            .chain(&bytes)
        {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

/// Creates (once per machine and migration set) a migrated template database.
/// An advisory lock on the maintenance database serializes this across the
/// test processes that nextest runs in parallel.
async fn template_name() -> String {
    let name = format!("onboarding_test_template_{}", migrations_fingerprint());
    let admin = connect(ADMIN_URL).await;
    admin
        .execute("select pg_advisory_lock(72007001)", &[])
        .await
        .unwrap();
    let ready: Option<bool> = admin
        .query_opt(
            "select datistemplate from pg_database where datname = $1",
            &[&name],
        )
        .await
        .unwrap()
        .map(|row| row.get(0));
    if ready != Some(true) {
        if ready.is_some() {
            admin
                .batch_execute(&format!("drop database \"{name}\" with (force)"))
                .await
                .unwrap();
        }
        admin
            .batch_execute(&format!("create database \"{name}\""))
            .await
            .unwrap();
        onboarding::db::migrate::run(&admin_url_for(&name))
            .await
            .expect("migrations apply to an empty database");
        admin
            .batch_execute(&format!("alter database \"{name}\" is_template true"))
            .await
            .unwrap();
    }
    admin
        .execute("select pg_advisory_unlock(72007001)", &[])
        .await
        .unwrap();
    name
}

/// A database of its own for one test, dropped when the test ends.
pub struct TestDb {
    pub name: String,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

impl TestDb {
    /// A migrated database, cloned from the template.
    pub async fn migrated() -> Self {
        let template = template_name().await;
        let db = Self::named();
        let admin = connect(ADMIN_URL).await;
        admin
            .batch_execute(&format!(
                "create database \"{}\" template \"{template}\"",
                db.name
            ))
            .await
            .unwrap();
        db
    }

    /// An empty database, for migration tests.
    pub async fn empty() -> Self {
        let db = Self::named();
        let admin = connect(ADMIN_URL).await;
        admin
            .batch_execute(&format!("create database \"{}\"", db.name))
            .await
            .unwrap();
        db
    }

    /// A name no database has yet, for a test that creates it through the
    /// code under test; dropped at the end like the others.
    pub fn absent() -> Self {
        Self::named()
    }

    fn named() -> Self {
        let name = format!(
            "onboarding_test_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        Self { name }
    }

    pub fn admin_url(&self) -> String {
        admin_url_for(&self.name)
    }

    /// The URL of the application's login role: neither superuser nor BYPASSRLS.
    pub fn app_url(&self) -> String {
        app_url_for(&self.name)
    }

    /// Settings as a deployed function would have them, pointed at this database.
    pub fn settings(&self) -> Settings {
        self.settings_with(&[])
    }

    pub fn settings_with(&self, extra: &[(&str, String)]) -> Settings {
        let mut pairs: Vec<(String, String)> = vec![
            ("DATABASE_URL".into(), self.app_url()),
            ("REDIS_URL".into(), "redis://127.0.0.1:6379".into()),
            ("EDGE_CONFIG_FILE".into(), edge_config_file()),
            ("AUTH_PROVIDER".into(), "hs256".into()),
            ("AUTH_JWT_SECRET".into(), TEST_JWT_SECRET.into()),
            ("SESSION_SECRET".into(), TEST_SESSION_SECRET.into()),
            // Every app counts its own requests: they all come from 127.0.0.1.
            (
                "RATE_LIMIT_PREFIX".into(),
                format!("test-{}", uuid::Uuid::new_v4().simple()),
            ),
        ];
        pairs.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
        let lookup = move |name: &str| {
            pairs
                .iter()
                .rev()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.clone())
        };
        Settings::from_lookup(&lookup, Profile::Deployed).expect("valid test settings")
    }

    /// The application's database handle, as the routes use it.
    pub fn database(&self) -> Database {
        Database::new(&self.settings().database).unwrap()
    }

    pub fn database_at(&self, settings: &DatabaseSettings, url: String) -> Database {
        Database::new(&settings.with_url(SecretString::from(url)).unwrap()).unwrap()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Async work cannot run in Drop; a short-lived thread with its own
        // runtime drops the database so the machine does not fill up.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                if let Ok((client, connection)) = tokio_postgres::connect(ADMIN_URL, NoTls).await {
                    tokio::spawn(connection);
                    let _ = client
                        .batch_execute(&format!("drop database if exists \"{name}\" with (force)"))
                        .await;
                }
            });
        })
        .join();
    }
}

pub const TEST_JWT_SECRET: &str = "test-jwt-secret-that-is-at-least-32-bytes-long";
pub const TEST_SESSION_SECRET: &str = "test-session-secret-that-is-at-least-32-bytes";

/// A valid HS256 token for `sub`, in `org`, signed with the test secret.
#[allow(dead_code)]
pub fn token(sub: &str, org: Option<&str>) -> String {
    let now = chrono::Utc::now().timestamp();
    let mut claims = serde_json::json!({ "sub": sub, "iat": now, "exp": now + 3600 });
    if let Some(org) = org {
        claims["org_id"] = org.into();
    }
    onboarding::auth::mint_dev_token(TEST_JWT_SECRET.as_bytes(), &claims)
}

pub fn edge_config_file() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/config/edge-config.json").to_string()
}

/// The API served on a random local port, as the dev server mounts it.
pub struct TestApp {
    pub address: String,
    pub http: reqwest::Client,
    /// Keeps the database alive as long as the app; tests may also inspect it.
    #[allow(dead_code)]
    pub db: TestDb,
}

pub async fn spawn_app() -> TestApp {
    let db = TestDb::migrated().await;
    spawn_app_with(db, &[]).await
}

pub async fn spawn_app_with(db: TestDb, extra: &[(&str, String)]) -> TestApp {
    let state = AppState::build(db.settings_with(extra)).unwrap();
    let app = http::app(state, routes::all().merge(openapi::router()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
        .unwrap();
    });
    TestApp {
        address,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        db,
    }
}

/// A function binary to run as a deployed function runs: an empty
/// environment but for the settings that point it at `db`, local Redis and
/// the test secrets; stdout discarded, warnings only.
pub fn function_command(binary: &str, db: &TestDb) -> std::process::Command {
    let mut command = std::process::Command::new(binary);
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", db.app_url())
        .env("REDIS_URL", "redis://127.0.0.1:6379")
        .env("EDGE_CONFIG_FILE", edge_config_file())
        .env("AUTH_JWT_SECRET", TEST_JWT_SECRET)
        .env("SESSION_SECRET", TEST_SESSION_SECRET)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null());
    command
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits, when less than [`LIMIT_SEQUENCE`] is left of the current minute,
/// until the next one starts.
///
/// The per-minute limits use `@upstash/ratelimit`'s sliding window, which
/// weighs the previous minute's count by how much of it still overlaps and
/// rounds down: just after a minute turns, a caller who spent a limit of 2
/// has `floor(0.99 × 2) = 1` counted and is allowed a third request. A test
/// that expects a limit to hold exactly must run its requests within one
/// minute.
pub async fn within_one_rate_limit_minute() {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let into_minute = Duration::from_millis((since_epoch.as_millis() % 60_000) as u64);
    let left = Duration::from_secs(60) - into_minute;
    if left < LIMIT_SEQUENCE {
        tokio::time::sleep(left + Duration::from_millis(50)).await;
    }
}

/// The longest a rate-limit test's requests may take, on a loaded machine.
const LIMIT_SEQUENCE: Duration = Duration::from_secs(15);

/// Polls until `sql` (one count) reaches `expected` or 30 s pass; returns the
/// last count, for the caller to assert. Rows stored after their response
/// (events) arrive a moment later.
pub async fn count_until(
    admin: &tokio_postgres::Client,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    expected: i64,
) -> i64 {
    let mut counted = -1;
    for _ in 0..300 {
        counted = admin.query_one(sql, params).await.unwrap().get::<_, i64>(0);
        if counted == expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    counted
}
