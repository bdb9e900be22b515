//! The reliability suite: `scripts/reliability [--seconds N]`.
//!
//! Runs a private PostgreSQL cluster and a private `redis-server` (free
//! loopback ports, a temporary directory), migrates a database there, serves
//! the whole API in-process, and then:
//!
//! 1. drives a mixed workload of many simulated users (status reads, saves
//!    with `If-Match` and `Idempotency-Key`, retries after simulated timeouts,
//!    events) for `--seconds`, recording every acknowledged save;
//! 2. injects faults during the load: Redis stopped and started again, then
//!    PostgreSQL stopped and started again;
//! 3. reads every acknowledged save back and checks nothing was lost or
//!    duplicated;
//! 4. sends a corpus of hostile tokens and bodies;
//!
//! and prints a summary, exiting non-zero when any figure is wrong. Every loop
//! is bounded in count and time; every socket is on 127.0.0.1.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use onboarding::config::Settings;
use onboarding::settings::Profile;
use onboarding::{AppState, http, routes};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const JWT_SECRET: &str = "reliability-jwt-secret-0123456789abcdef0123";
const SESSION_SECRET: &str = "reliability-session-secret-0123456789abcdef";
const ISSUER: &str = "https://issuer.reliability.test";
const AUDIENCE: &str = "onboarding-reliability";
const KID: &str = "reliability-rsa-1";
const RSA_PRIVATE_DER: &[u8] = include_bytes!("../lib/auth/testdata/rsa_private_pkcs1.der");
const RSA_PUBLIC_PEM: &[u8] = include_bytes!("../lib/auth/testdata/rsa_public.pem");

/// Steps the load saves, each with a text field that makes every save unique.
const SAVE_STEPS: [&str; 4] = ["profile", "organization", "goals", "preferences"];
/// How long PostgreSQL may take, once it accepts connections again, until a save succeeds.
const PG_RECOVERY_BUDGET: Duration = Duration::from_secs(5);
/// How long Redis may take, once it answers again, until health reports it up.
const REDIS_RECOVERY_BUDGET: Duration = Duration::from_secs(15);
/// Retries of one logical save (timeouts, 503, 409) before it is given up.
const SAVE_ATTEMPTS: usize = 10;

// ---- command line -------------------------------------------------------------

struct Args {
    seconds: u64,
    users: usize,
    redis_down: Duration,
    pg_down: Duration,
    pool_size: usize,
    keep: bool,
}

impl Args {
    fn parse() -> anyhow::Result<Self> {
        let mut args = Args {
            seconds: 60,
            users: 50,
            redis_down: Duration::from_secs(10),
            pg_down: Duration::from_secs(3),
            pool_size: 16,
            keep: false,
        };
        let mut it = std::env::args().skip(1);
        while let Some(arg) = it.next() {
            let mut number = |name: &str| -> anyhow::Result<u64> {
                it.next()
                    .with_context(|| format!("{name} needs a value"))?
                    .parse()
                    .with_context(|| format!("{name} needs a whole number"))
            };
            match arg.as_str() {
                "--seconds" => args.seconds = number("--seconds")?,
                "--users" => args.users = number("--users")? as usize,
                "--redis-down-seconds" => {
                    args.redis_down = Duration::from_secs(number("--redis-down-seconds")?)
                }
                "--pg-down-seconds" => {
                    args.pg_down = Duration::from_secs(number("--pg-down-seconds")?)
                }
                "--pool-size" => args.pool_size = number("--pool-size")? as usize,
                "--keep" => args.keep = true,
                "-h" | "--help" => {
                    println!(
                        "usage: reliability [--seconds N (60)] [--users N (50)] \
                         [--redis-down-seconds N (10)] [--pg-down-seconds N (3)] \
                         [--pool-size N (16)] [--keep]"
                    );
                    std::process::exit(0);
                }
                other => bail!("unknown argument {other:?} (try --help)"),
            }
        }
        ensure!(
            args.seconds >= 20,
            "--seconds must be at least 20 (both faults fit in the load)"
        );
        ensure!((1..=500).contains(&args.users), "--users must be 1 to 500");
        Ok(args)
    }
}

// ---- private services -----------------------------------------------------------

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn pg_bin(name: &str) -> PathBuf {
    let dir = std::env::var("PG_BIN").unwrap_or_else(|_| "/usr/lib/postgresql/15/bin".into());
    Path::new(&dir).join(name)
}

/// A PostgreSQL cluster in a temporary directory, run as `postgres` when we are root
/// (initdb refuses root).
struct Postgres {
    dir: PathBuf,
    port: u16,
    as_postgres: bool,
}

impl Postgres {
    fn command(&self, program: &Path) -> Command {
        if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    }

    fn run(&self, program: &str, args: &[&str]) -> anyhow::Result<()> {
        let output = self
            .command(&pg_bin(program))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("Failed to run {program}"))?;
        ensure!(
            output.status.success(),
            "{program} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(())
    }

    fn init(dir: PathBuf) -> anyhow::Result<Self> {
        let root = Command::new("id").arg("-u").output()?.stdout == b"0\n";
        std::fs::create_dir_all(&dir)?;
        if root {
            let status = Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(&dir)
                .status()?;
            ensure!(status.success(), "chown of {} failed", dir.display());
        }
        let pg = Postgres {
            port: free_port()?,
            dir,
            as_postgres: root,
        };
        let data = pg.data();
        pg.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ],
        )?;
        Ok(pg)
    }

    fn data(&self) -> String {
        self.dir.join("pgdata").display().to_string()
    }

    fn start(&self) -> anyhow::Result<()> {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c max_connections=100",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("postgres.log").display().to_string();
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-l",
                &log,
                "-o",
                &options,
                "-w",
                "-t",
                "30",
                "start",
            ],
        )
    }

    fn stop(&self) -> anyhow::Result<()> {
        self.run(
            "pg_ctl",
            &["-D", &self.data(), "-m", "fast", "-w", "-t", "30", "stop"],
        )
    }

    fn superuser_url(&self, database: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{database}?sslmode=disable",
            self.port
        )
    }

    fn app_url(&self) -> String {
        format!(
            "postgres://onboarding_app@127.0.0.1:{}/onboarding?sslmode=disable",
            self.port
        )
    }

    /// Whether the server accepts a connection and answers a query.
    async fn accepting(&self) -> bool {
        let url = self.superuser_url("postgres");
        let attempt = async {
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
            let task = tokio::spawn(connection);
            let result = client.simple_query("select 1").await.map(|_| ());
            task.abort();
            result
        };
        matches!(
            tokio::time::timeout(Duration::from_millis(500), attempt).await,
            Ok(Ok(()))
        )
    }
}

/// A `redis-server` child process on its own port, without persistence.
struct Redis {
    port: u16,
    child: Option<Child>,
    log: PathBuf,
}

impl Redis {
    fn start(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("Failed to start redis-server")?;
        self.child = Some(child);
        Ok(())
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    async fn answering(&self) -> bool {
        let attempt = async {
            let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await?;
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            stream.write_all(b"PING\r\n").await?;
            let mut buf = [0u8; 16];
            let n = stream.read(&mut buf).await?;
            Ok::<bool, std::io::Error>(buf[..n].starts_with(b"+PONG"))
        };
        matches!(
            tokio::time::timeout(Duration::from_millis(300), attempt).await,
            Ok(Ok(true))
        )
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn wait_until<F, Fut>(what: &str, limit: Duration, mut probe: F) -> anyhow::Result<Instant>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if probe().await {
            return Ok(Instant::now());
        }
        ensure!(
            Instant::now() < deadline,
            "{what} did not come up within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---- a JWKS endpoint, so kid handling is exercised ------------------------------

fn rsa_key() -> EncodingKey {
    EncodingKey::from_rsa_der(RSA_PRIVATE_DER)
}

async fn serve_jwks() -> anyhow::Result<String> {
    let mut jwk = Jwk::from_encoding_key(&rsa_key(), Algorithm::RS256)?;
    jwk.common.key_id = Some(KID.to_owned());
    jwk.common.key_algorithm = Some(KeyAlgorithm::RS256);
    let document = serde_json::to_value(JwkSet { keys: vec![jwk] })?;
    let app = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || {
            let document = document.clone();
            async move { axum::Json(document) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/jwks.json", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(url)
}

/// How the fake AI provider answers: normally, not at all, or with a 500.
const AI_OK: u8 = 0;
const AI_HANG: u8 = 1;
const AI_ERROR: u8 = 2;

/// An OpenAI-compatible provider on loopback (`POST /v1/chat/completions`,
/// the Chat Completions wire format) whose behaviour `mode` switches.
async fn serve_ai_provider(mode: Arc<std::sync::atomic::AtomicU8>) -> anyhow::Result<String> {
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move || {
            let mode = mode.load(Ordering::Relaxed);
            async move {
                match mode {
                    AI_HANG => {
                        tokio::time::sleep(Duration::from_secs(60)).await;
                        (StatusCode::GATEWAY_TIMEOUT, axum::Json(json!({})))
                    }
                    AI_ERROR => (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        axum::Json(json!({ "error": {
                            "message": "The server had an error while processing your request.",
                            "type": "server_error", "param": null, "code": null } })),
                    ),
                    _ => (
                        StatusCode::OK,
                        axum::Json(json!({
                            "id": "chatcmpl-reliability",
                            "object": "chat.completion",
                            "created": now(),
                            "model": "reliability",
                            "choices": [{
                                "index": 0,
                                "message": { "role": "assistant", "refusal": null,
                                             "content": json!({ "primaryGoal": "See every number in one place" }).to_string() },
                                "logprobs": null,
                                "finish_reason": "stop"
                            }],
                            "usage": { "prompt_tokens": 120, "completion_tokens": 12, "total_tokens": 132 }
                        })),
                    ),
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}/v1", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(base)
}

// ---- tokens -------------------------------------------------------------------------

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn claims(sub: &str) -> Value {
    json!({ "sub": sub, "iss": ISSUER, "aud": AUDIENCE, "iat": now(), "exp": now() + 3600 })
}

fn hs_token(claims: &Value) -> String {
    onboarding::auth::mint_dev_token(JWT_SECRET.as_bytes(), claims)
}

fn sign(alg: Algorithm, kid: Option<&str>, claims: &Value, key: &EncodingKey) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).expect("tokens sign")
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).expect("json"))
}

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

/// Replaces the payload of a signed token, keeping header and signature.
fn tampered(token: &str) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    format!("{}.{}.{}", parts[0], b64(&claims("rel_admin")), parts[2])
}

/// Tokens that must each be answered 401.
fn bad_tokens() -> Vec<(&'static str, String)> {
    let base = claims("rel_hostile");
    let none_header = b64(&json!({ "alg": "none", "typ": "JWT" }));
    vec![
        ("alg none", format!("{none_header}.{}.", b64(&base))),
        (
            "alg none, signature kept",
            format!(
                "{none_header}.{}.{}",
                b64(&base),
                hs_token(&base).rsplit('.').next().unwrap_or("")
            ),
        ),
        (
            "HS256 signed with the RSA public key",
            sign(
                Algorithm::HS256,
                Some(KID),
                &base,
                &EncodingKey::from_secret(RSA_PUBLIC_PEM),
            ),
        ),
        (
            "expired",
            hs_token(&with(base.clone(), "exp", json!(now() - 3600))),
        ),
        (
            "future nbf",
            hs_token(&with(base.clone(), "nbf", json!(now() + 3600))),
        ),
        (
            "wrong issuer",
            hs_token(&with(
                base.clone(),
                "iss",
                json!("https://evil.example.test"),
            )),
        ),
        (
            "wrong audience",
            hs_token(&with(base.clone(), "aud", json!("someone-else"))),
        ),
        (
            "unknown kid",
            sign(Algorithm::RS256, Some("no-such-key"), &base, &rsa_key()),
        ),
        ("tampered HS256 payload", tampered(&hs_token(&base))),
        (
            "tampered RS256 payload",
            tampered(&sign(Algorithm::RS256, Some(KID), &base, &rsa_key())),
        ),
        (
            "100 KB token",
            hs_token(&with(
                base.clone(),
                "padding",
                json!("x".repeat(100 * 1024)),
            )),
        ),
        (
            "broken base64",
            "eyJhbGciOiJIUzI1NiJ9!!.abc.def".to_string(),
        ),
        ("not three segments", "abc.def".to_string()),
        ("JWE shaped", "a.b.c.d.e".to_string()),
        (
            "signed with another secret",
            onboarding::auth::mint_dev_token(b"another-secret-0123456789abcdef0123456789", &base),
        ),
    ]
}

// ---- a small deterministic PRNG (no dependency) -----------------------------------

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

// ---- what the load saw ----------------------------------------------------------------

/// One request's outcome, kept for the outage accounting.
#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    saves_acknowledged: AtomicU64,
    replays: AtomicU64,
    simulated_timeouts: AtomicU64,
    retries: AtomicU64,
    stale_412: AtomicU64,
    refresh_412: AtomicU64,
    given_up: AtomicU64,
    status_reads: AtomicU64,
    events: AtomicU64,
    /// Events the server acknowledged with 202 (the sum of `accepted`).
    events_acknowledged: AtomicU64,
    /// AI suggestions made, and answered "unavailable" (the provider down).
    ai_suggested: AtomicU64,
    ai_unavailable: AtomicU64,
}

#[derive(Debug, Clone)]
struct ServerError {
    at: Instant,
    status: u16,
    retry_after: bool,
    what: String,
}

/// Failures the summary lists; any one fails the run.
#[derive(Default)]
struct Log {
    server_errors: Vec<ServerError>,
    problems: Vec<String>,
    transport_errors: Vec<(Instant, String)>,
    first_save_after: Vec<Instant>,
}

#[derive(Debug, Clone)]
enum StepEvent {
    Ack {
        version: i64,
        answers: Value,
    },
    /// A save whose outcome the client does not know (it may have landed).
    Uncertain,
}

struct Shared {
    base: String,
    client: reqwest::Client,
    counters: Counters,
    log: Mutex<Log>,
    deadline: Instant,
    /// Set once PostgreSQL accepts connections again after its restart.
    pg_back: Mutex<Option<Instant>>,
    run_id: String,
    ai_mode: Arc<std::sync::atomic::AtomicU8>,
}

impl Shared {
    fn problem(&self, text: String) {
        let mut log = self.log.lock().unwrap();
        if log.problems.len() < 1000 {
            log.problems.push(text);
        }
    }

    fn server_error(&self, status: u16, retry_after: bool, what: &str) {
        self.log.lock().unwrap().server_errors.push(ServerError {
            at: Instant::now(),
            status,
            retry_after,
            what: what.to_string(),
        });
    }

    fn transport_error(&self, what: String) {
        self.log
            .lock()
            .unwrap()
            .transport_errors
            .push((Instant::now(), what));
    }

    /// Sends a request; 5xx answers and transport errors are recorded.
    async fn send(
        &self,
        what: &str,
        request: reqwest::RequestBuilder,
    ) -> Option<(StatusCode, reqwest::header::HeaderMap, Vec<u8>)> {
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        match request.send().await {
            Ok(response) => {
                let status = response.status();
                let headers = response.headers().clone();
                let body = response
                    .bytes()
                    .await
                    .map(|b| b.to_vec())
                    .unwrap_or_default();
                if status.is_server_error() {
                    self.server_error(status.as_u16(), headers.contains_key("retry-after"), what);
                }
                Some((status, headers, body))
            }
            Err(error) => {
                self.transport_error(format!("{what}: {error}"));
                None
            }
        }
    }
}

#[derive(Clone)]
enum Credential {
    Token(String),
    Session(String),
}

struct User {
    name: String,
    credential: Credential,
    rng: Rng,
    /// The version of each step as this user last saw it (its ETag).
    seen: HashMap<&'static str, i64>,
    history: HashMap<&'static str, Vec<StepEvent>>,
    seq: u64,
    ai_opted_in: bool,
}

impl User {
    fn request(&self, shared: &Shared, method: Method, path: &str) -> reqwest::RequestBuilder {
        let request = shared
            .client
            .request(method, format!("{}{path}", shared.base));
        match &self.credential {
            Credential::Token(token) => request.bearer_auth(token),
            Credential::Session(session) => request.header("x-onboarding-session", session),
        }
    }

    fn answers(&mut self, step: &str) -> Value {
        self.seq += 1;
        let marker = format!("{} #{}", self.name, self.seq);
        match step {
            "profile" => json!({ "fullName": marker, "jobRole": "founder" }),
            "organization" => json!({ "name": marker, "slug": format!("org-{}", self.seq),
                                      "size": "2-10", "industry": "saas" }),
            "goals" => json!({ "useCases": ["analytics"], "primaryGoal": marker }),
            _ => {
                json!({ "productUpdates": self.seq.is_multiple_of(2), "weeklyDigest": self.seq.is_multiple_of(3),
                         "timezone": "Europe/Berlin", "locale": "de-DE" })
            }
        }
    }

    async fn run(mut self, shared: Arc<Shared>) -> User {
        // Bounded: the deadline, and at most this many actions.
        for _ in 0..100_000 {
            if Instant::now() >= shared.deadline {
                break;
            }
            match self.rng.below(100) {
                0..=39 => self.save(&shared).await,
                40..=64 => self.status(&shared).await,
                65..=74 => {
                    let step = SAVE_STEPS[self.rng.below(4) as usize];
                    self.refresh(&shared, step).await;
                }
                75..=89 => self.event(&shared).await,
                90..=94 => self.ai_suggestion(&shared).await,
                _ => self.stale_save(&shared).await,
            }
            let think = 20 + self.rng.below(80);
            tokio::time::sleep(Duration::from_millis(think)).await;
        }
        self
    }

    async fn status(&mut self, shared: &Shared) {
        let request = self.request(shared, Method::GET, "/api/onboarding/status");
        if let Some((status, _, body)) = shared.send("GET status", request).await {
            shared.counters.status_reads.fetch_add(1, Ordering::Relaxed);
            if status != 200 && status != 503 {
                shared.problem(format!(
                    "{}: GET status answered {status}: {}",
                    self.name,
                    String::from_utf8_lossy(&body)
                ));
            }
        }
    }

    /// Opts in to AI suggestions once, then asks for one. With the provider
    /// down the wizard must answer 200 `{"suggestion": null}`, never 5xx.
    async fn ai_suggestion(&mut self, shared: &Shared) {
        if !self.ai_opted_in {
            let request = self
                .request(shared, Method::PUT, "/api/onboarding/ai/preferences")
                .json(&json!({ "mode": "suggest", "consentVersion": "2026-11" }));
            match shared.send("PUT ai/preferences", request).await {
                Some((status, _, _)) if status == 200 => self.ai_opted_in = true,
                Some((status, _, body)) if !status.is_server_error() => shared.problem(format!(
                    "{}: PUT ai/preferences answered {status}: {}",
                    self.name,
                    String::from_utf8_lossy(&body)
                )),
                _ => {}
            }
            return;
        }
        let request = self
            .request(shared, Method::POST, "/api/onboarding/ai/suggest")
            .json(&json!({ "step": "goals", "field": "primaryGoal" }));
        let Some((status, _, body)) = shared.send("POST ai/suggest", request).await else {
            return;
        };
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        match status.as_u16() {
            201 => {
                shared.counters.ai_suggested.fetch_add(1, Ordering::Relaxed);
            }
            200 if body["suggestion"].is_null() => {
                shared
                    .counters
                    .ai_unavailable
                    .fetch_add(1, Ordering::Relaxed);
            }
            500..=599 => {}
            _ => shared.problem(format!(
                "{}: POST ai/suggest answered {status}: {body}",
                self.name
            )),
        }
    }

    async fn event(&mut self, shared: &Shared) {
        let step = SAVE_STEPS[self.rng.below(4) as usize];
        let request = self
            .request(shared, Method::POST, "/api/onboarding/events")
            .json(&json!({ "events": [
                { "type": "step_viewed", "step": step },
                { "type": "step_completed", "step": step, "properties": { "ms": 1200 } }
            ]}));
        if let Some((status, _, body)) = shared.send("POST events", request).await {
            shared.counters.events.fetch_add(1, Ordering::Relaxed);
            if status == 202 {
                let accepted = serde_json::from_slice::<Value>(&body)
                    .ok()
                    .and_then(|body| body["accepted"].as_u64());
                match accepted {
                    Some(accepted) => {
                        shared
                            .counters
                            .events_acknowledged
                            .fetch_add(accepted, Ordering::Relaxed);
                    }
                    None => shared.problem(format!(
                        "{}: POST events 202 without `accepted`: {}",
                        self.name,
                        String::from_utf8_lossy(&body)
                    )),
                }
            } else if status != 503 {
                shared.problem(format!(
                    "{}: POST events answered {status}: {}",
                    self.name,
                    String::from_utf8_lossy(&body)
                ));
            }
        }
    }

    /// Reads a step and remembers its version.
    async fn refresh(&mut self, shared: &Shared, step: &'static str) -> bool {
        let request = self.request(
            shared,
            Method::GET,
            &format!("/api/onboarding/steps/{step}"),
        );
        match shared.send("GET step", request).await {
            Some((status, _, body)) if status == 200 => {
                match serde_json::from_slice::<Value>(&body) {
                    Ok(view) => {
                        let version = view["version"].as_i64().unwrap_or(-1);
                        self.seen.insert(step, version);
                        true
                    }
                    Err(error) => {
                        shared.problem(format!("{}: GET {step} is not JSON: {error}", self.name));
                        false
                    }
                }
            }
            Some((status, _, body)) if status != 503 => {
                shared.problem(format!(
                    "{}: GET {step} answered {status}: {}",
                    self.name,
                    String::from_utf8_lossy(&body)
                ));
                false
            }
            _ => false,
        }
    }

    /// A save with an outdated `If-Match`, as a second tab would send: must be 412.
    async fn stale_save(&mut self, shared: &Shared) {
        let step = SAVE_STEPS[self.rng.below(4) as usize];
        let version = self.seen.get(step).copied().unwrap_or(0);
        if version < 1 {
            return self.save(shared).await;
        }
        let answers = self.answers(step);
        let request = self
            .request(
                shared,
                Method::PUT,
                &format!("/api/onboarding/steps/{step}"),
            )
            .header("if-match", format!("\"{}\"", version - 1))
            .json(&json!({ "answers": answers }));
        match shared.send("PUT step (stale)", request).await {
            Some((status, _, _)) if status == 412 => {
                shared.counters.stale_412.fetch_add(1, Ordering::Relaxed);
            }
            Some((status, _, _)) if status == 503 => {}
            Some((status, _, body)) => shared.problem(format!(
                "{}: a stale If-Match on {step} (v{} < v{version}) answered {status}: {}",
                self.name,
                version - 1,
                String::from_utf8_lossy(&body)
            )),
            None => {}
        }
    }

    /// One logical save: one Idempotency-Key, retried after timeouts, 503 and 409.
    async fn save(&mut self, shared: &Shared) {
        let step = SAVE_STEPS[self.rng.below(4) as usize];
        if !self.seen.contains_key(step) && !self.refresh(shared, step).await {
            return;
        }
        let if_match = self.seen[step];
        let answers = self.answers(step);
        let complete = self.rng.below(3) == 0;
        let body =
            serde_json::to_vec(&json!({ "answers": answers, "complete": complete })).expect("json");
        let key = format!("rel-{}-{}-{}", shared.run_id, self.name, self.seq);
        let simulate_timeout = self.rng.below(10) == 0;
        let path = format!("/api/onboarding/steps/{step}");
        for attempt in 0..SAVE_ATTEMPTS {
            if Instant::now() >= shared.deadline + Duration::from_secs(20) {
                break;
            }
            if attempt > 0 {
                shared.counters.retries.fetch_add(1, Ordering::Relaxed);
            }
            let started = Instant::now();
            let mut request = self
                .request(shared, Method::PUT, &path)
                .header("content-type", "application/json")
                .header("if-match", format!("\"{if_match}\""))
                .header("idempotency-key", &key)
                .body(body.clone());
            if simulate_timeout && attempt == 0 {
                // Give up on the answer after a few milliseconds, as a client on
                // a bad network would; the write may or may not land.
                let timeout = Duration::from_millis(1 + self.rng.below(150));
                request = request.timeout(timeout);
                shared.counters.requests.fetch_add(1, Ordering::Relaxed);
                match request.send().await {
                    Err(error) if error.is_timeout() => {
                        shared
                            .counters
                            .simulated_timeouts
                            .fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        continue;
                    }
                    Err(error) => {
                        shared.transport_error(format!("PUT step: {error}"));
                        continue;
                    }
                    Ok(response) => {
                        let status = response.status();
                        let headers = response.headers().clone();
                        let bytes = response
                            .bytes()
                            .await
                            .map(|b| b.to_vec())
                            .unwrap_or_default();
                        if status.is_server_error() {
                            shared.server_error(
                                status.as_u16(),
                                headers.contains_key("retry-after"),
                                "PUT step",
                            );
                        }
                        match self.settle(shared, step, if_match, status, &headers, &bytes, started)
                        {
                            Settled::Done => return,
                            Settled::Retry(wait) => {
                                tokio::time::sleep(wait).await;
                                continue;
                            }
                        }
                    }
                }
            }
            let Some((status, headers, bytes)) = shared.send("PUT step", request).await else {
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            };
            match self.settle(shared, step, if_match, status, &headers, &bytes, started) {
                Settled::Done => return,
                Settled::Retry(wait) => tokio::time::sleep(wait).await,
            }
        }
        shared.counters.given_up.fetch_add(1, Ordering::Relaxed);
        self.history
            .entry(step)
            .or_default()
            .push(StepEvent::Uncertain);
        // Learn the version again before the next save of this step.
        self.seen.remove(step);
    }

    #[allow(clippy::too_many_arguments)]
    fn settle(
        &mut self,
        shared: &Shared,
        step: &'static str,
        if_match: i64,
        status: StatusCode,
        headers: &reqwest::header::HeaderMap,
        bytes: &[u8],
        started: Instant,
    ) -> Settled {
        match status.as_u16() {
            200 => {
                let view: Value = match serde_json::from_slice(bytes) {
                    Ok(view) => view,
                    Err(error) => {
                        shared.problem(format!("{}: a 200 save is not JSON: {error}", self.name));
                        return Settled::Done;
                    }
                };
                let version = view["version"].as_i64().unwrap_or(-1);
                let etag = headers
                    .get("etag")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                if etag != format!("\"{version}\"") {
                    shared.problem(format!(
                        "{}: save of {step} answered ETag {etag:?} for version {version}",
                        self.name
                    ));
                }
                if version != if_match + 1 {
                    shared.problem(format!(
                        "{}: save of {step} with If-Match {if_match} acknowledged version {version}",
                        self.name
                    ));
                }
                if headers.contains_key("idempotent-replayed") {
                    shared.counters.replays.fetch_add(1, Ordering::Relaxed);
                }
                shared
                    .counters
                    .saves_acknowledged
                    .fetch_add(1, Ordering::Relaxed);
                if let Some(back) = *shared.pg_back.lock().unwrap()
                    && started >= back
                {
                    shared
                        .log
                        .lock()
                        .unwrap()
                        .first_save_after
                        .push(Instant::now());
                }
                self.seen.insert(step, version);
                self.history.entry(step).or_default().push(StepEvent::Ack {
                    version,
                    answers: view["answers"].clone(),
                });
                Settled::Done
            }
            503 => {
                let wait = headers
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(1)
                    .min(2);
                Settled::Retry(Duration::from_secs(wait))
            }
            // Another request with this key is in flight (our abandoned attempt).
            409 if String::from_utf8_lossy(bytes).contains("Idempotency-Key") => {
                Settled::Retry(Duration::from_millis(200))
            }
            412 => {
                // Only a retry can meet this: our own abandoned attempt landed
                // after the retry read the row. Its outcome is unknown to us.
                shared.counters.refresh_412.fetch_add(1, Ordering::Relaxed);
                self.history
                    .entry(step)
                    .or_default()
                    .push(StepEvent::Uncertain);
                self.seen.remove(step);
                Settled::Done
            }
            _ => {
                shared.problem(format!(
                    "{}: save of {step} (If-Match {if_match}) answered {status}: {}",
                    self.name,
                    String::from_utf8_lossy(bytes)
                ));
                self.history
                    .entry(step)
                    .or_default()
                    .push(StepEvent::Uncertain);
                self.seen.remove(step);
                Settled::Done
            }
        }
    }
}

enum Settled {
    Done,
    Retry(Duration),
}

// ---- checks after the load --------------------------------------------------------------

#[derive(Default)]
struct Verification {
    acknowledged: usize,
    events_stored: u64,
    steps_checked: usize,
    explained_extra_versions: usize,
    problems: Vec<String>,
}

/// Counts the stored analytics events, waiting up to 15 s for the writer to
/// catch up with what was acknowledged (it stores after the response).
async fn count_stored_events(pg: &Postgres, acknowledged: u64) -> anyhow::Result<u64> {
    let (client, connection) =
        tokio_postgres::connect(&pg.superuser_url("onboarding"), tokio_postgres::NoTls).await?;
    let task = tokio::spawn(connection);
    let deadline = Instant::now() + Duration::from_secs(15);
    let stored = loop {
        let stored: i64 = client
            .query_one("select count(*) from onboarding.analytics_events", &[])
            .await?
            .get(0);
        let stored = u64::try_from(stored)?;
        if stored >= acknowledged || Instant::now() > deadline {
            break stored;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    task.abort();
    Ok(stored)
}

/// Reads every step a user saved and compares it with what was acknowledged.
async fn verify(shared: &Shared, users: &[User]) -> Verification {
    let mut result = Verification::default();
    for user in users {
        for (step, events) in &user.history {
            let mut last_ack: Option<(i64, &Value)> = None;
            let mut uncertain_since_ack = 0i64;
            for event in events {
                match event {
                    StepEvent::Uncertain => uncertain_since_ack += 1,
                    StepEvent::Ack { version, answers } => {
                        result.acknowledged += 1;
                        let previous = last_ack.map(|(v, _)| v).unwrap_or(0);
                        if *version <= previous {
                            result.problems.push(format!(
                                "{}/{step}: acknowledged version {version} after {previous} (duplicate or reordered)",
                                user.name
                            ));
                        } else if version - previous - 1 > uncertain_since_ack {
                            result.problems.push(format!(
                                "{}/{step}: versions {previous} -> {version} skip more than the {uncertain_since_ack} unacknowledged save(s) explain",
                                user.name
                            ));
                        }
                        last_ack = Some((*version, answers));
                        uncertain_since_ack = 0;
                    }
                }
            }
            let Some((version, answers)) = last_ack else {
                continue;
            };
            result.steps_checked += 1;
            let stored = read_step(shared, user, step).await;
            match stored {
                Err(error) => result
                    .problems
                    .push(format!("{}/{step}: read back failed: {error}", user.name)),
                Ok(view) => {
                    let stored_version = view["version"].as_i64().unwrap_or(-1);
                    if stored_version < version {
                        result.problems.push(format!(
                            "{}/{step}: LOST: stored version {stored_version} < acknowledged {version}",
                            user.name
                        ));
                    } else if stored_version == version {
                        if &view["answers"] != answers {
                            result.problems.push(format!(
                                "{}/{step}: version {version} stores {} but {} was acknowledged",
                                user.name, view["answers"], answers
                            ));
                        }
                    } else if stored_version - version <= uncertain_since_ack {
                        result.explained_extra_versions += (stored_version - version) as usize;
                    } else {
                        result.problems.push(format!(
                            "{}/{step}: stored version {stored_version} > acknowledged {version} with only {uncertain_since_ack} unacknowledged save(s) after it",
                            user.name
                        ));
                    }
                }
            }
        }
    }
    result
}

async fn read_step(shared: &Shared, user: &User, step: &str) -> anyhow::Result<Value> {
    for _ in 0..20 {
        let response = user
            .request(
                shared,
                Method::GET,
                &format!("/api/onboarding/steps/{step}"),
            )
            .send()
            .await?;
        if response.status() == 200 {
            return Ok(response.json().await?);
        }
        if response.status() != 503 {
            bail!("GET answered {}", response.status());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    bail!("still 503 after 20 tries")
}

// ---- hostile input ------------------------------------------------------------------------

#[derive(Default)]
struct Hostile {
    tried: usize,
    failures: Vec<String>,
}

impl Hostile {
    fn check(
        &mut self,
        what: &str,
        expect: &str,
        outcome: Result<reqwest::Response, reqwest::Error>,
    ) {
        self.tried += 1;
        let response = match outcome {
            Ok(response) => response,
            Err(error) => {
                self.failures.push(format!("{what}: no answer: {error}"));
                return;
            }
        };
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let ok = match expect {
            "401" => status == 401 && response.headers().contains_key("www-authenticate"),
            _ => status.is_client_error(),
        };
        if !ok || content_type != "application/problem+json" {
            self.failures.push(format!(
                "{what}: expected {expect} problem+json, got {status} {content_type:?}"
            ));
        }
    }
}

async fn hostile(base: &str, client: &reqwest::Client) -> anyhow::Result<Hostile> {
    let mut result = Hostile::default();
    let valid = hs_token(&claims("rel_hostile_control"));
    let rs_valid = sign(
        Algorithm::RS256,
        Some(KID),
        &claims("rel_hostile_rs"),
        &rsa_key(),
    );
    // Controls: the corpus is rejected for what it is, not because nothing is accepted.
    for (name, token) in [("HS256", &valid), ("RS256 via JWKS", &rs_valid)] {
        let response = client
            .get(format!("{base}/api/onboarding/status"))
            .bearer_auth(token)
            .send()
            .await?;
        ensure!(
            response.status() == 200,
            "control: a valid {name} token answered {}",
            response.status()
        );
    }

    let targets: [(Method, &str); 3] = [
        (Method::GET, "/api/onboarding/status"),
        (Method::PUT, "/api/onboarding/steps/profile"),
        (Method::POST, "/api/onboarding/events"),
    ];
    for (name, token) in bad_tokens() {
        for (method, path) in &targets {
            let body = if *path == "/api/onboarding/events" {
                json!({ "events": [] })
            } else {
                json!({ "answers": { "fullName": "x" } })
            };
            let mut request = client
                .request(method.clone(), format!("{base}{path}"))
                .bearer_auth(&token);
            if *method != Method::GET {
                request = request.json(&body);
            }
            result.check(
                &format!("token {name} → {method} {path}"),
                "401",
                request.send().await,
            );
        }
        // The same token in a cookie the Supabase preset reads.
        let cookie = format!("sb-reliability-auth-token={token}");
        result.check(
            &format!("token {name} in cookie → GET status"),
            "401",
            client
                .get(format!("{base}/api/onboarding/status"))
                .header("cookie", cookie)
                .send()
                .await,
        );
    }

    let mut bodies: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "truncated JSON",
            br#"{"answers": {"fullName": "Ad"#.to_vec(),
            "application/json",
        ),
        ("empty body", Vec::new(), "application/json"),
        (
            "deep nesting [ x100k",
            "[".repeat(100_000).into_bytes(),
            "application/json",
        ),
        (
            "deep nesting {\"a\": x100k",
            "{\"a\":".repeat(100_000).into_bytes(),
            "application/json",
        ),
        (
            "deep nesting inside answers",
            format!("{{\"answers\": {{\"fullName\": {}}}}}", "[".repeat(50_000)).into_bytes(),
            "application/json",
        ),
        (
            "60 KB string",
            serde_json::to_vec(&json!({ "answers": { "fullName": "x".repeat(30_000) },
                                       "events": [{ "type": "step_viewed", "step": "y".repeat(30_000) }] }))?,
            "application/json",
        ),
        (
            "1 MB string",
            serde_json::to_vec(&json!({ "answers": { "fullName": "x".repeat(1 << 20) } }))?,
            "application/json",
        ),
        (
            "answers a string",
            br#"{"answers": "x", "complete": "yes", "events": 1}"#.to_vec(),
            "application/json",
        ),
        ("an array", b"[]".to_vec(), "application/json"),
        ("null", b"null".to_vec(), "application/json"),
        ("a number", b"123".to_vec(), "application/json"),
        (
            "unknown field",
            br#"{"answers": {}, "events": [], "extra": 1}"#.to_vec(),
            "application/json",
        ),
        (
            "wrong field types",
            br#"{"answers": {"fullName": 7, "jobRole": ["founder"]}, "events": [{"type": 3}]}"#
                .to_vec(),
            "application/json",
        ),
        (
            "invalid UTF-8",
            b"{\"answers\": {\"fullName\": \"\xff\xfe\xc3\x28\"}, \"events\": []}".to_vec(),
            "application/json",
        ),
        (
            "NaN literal",
            br#"{"answers": {"fullName": NaN}}"#.to_vec(),
            "application/json",
        ),
        (
            "BOM first",
            b"\xef\xbb\xbf{\"answers\": {}}".to_vec(),
            "application/json",
        ),
        (
            "wrong content type",
            br#"{"answers": {}}"#.to_vec(),
            "text/plain",
        ),
        (
            "form content type",
            b"answers=1".to_vec(),
            "application/x-www-form-urlencoded",
        ),
        ("no content type", br#"{"answers": {}}"#.to_vec(), ""),
    ];
    // A JSON body that is valid everywhere but is an array of 200 events.
    let many: Vec<Value> = (0..200).map(|_| json!({ "type": "step_viewed" })).collect();
    bodies.push((
        "too many events",
        serde_json::to_vec(&json!({ "answers": 1, "events": many }))?,
        "application/json",
    ));

    let body_targets: [(Method, &str); 3] = [
        (Method::PUT, "/api/onboarding/steps/profile"),
        (Method::POST, "/api/onboarding/events"),
        (Method::POST, "/api/onboarding/complete"),
    ];
    // A fresh user with nothing saved: complete cannot succeed whatever the body.
    let token = hs_token(&claims("rel_hostile_bodies"));
    for (name, body, content_type) in bodies {
        for (method, path) in &body_targets {
            if body.len() > 65536 {
                check_raw(
                    &mut result,
                    &format!("body {name} → {method} {path}"),
                    send_raw(base, method.as_str(), path, &token, content_type, &body).await,
                );
                continue;
            }
            let mut request = client
                .request(method.clone(), format!("{base}{path}"))
                .bearer_auth(&token)
                .body(body.clone());
            if !content_type.is_empty() {
                request = request.header("content-type", content_type);
            }
            result.check(
                &format!("body {name} → {method} {path}"),
                "4xx",
                request.send().await,
            );
        }
    }
    // 10 MB bodies: the server may answer 413 and close before the client has
    // sent everything, which an ordinary client reports as a send error.
    // Written by hand, so whatever the server answered is read.
    let huge = vec![b' '; 10 << 20];
    for (method, path) in &body_targets {
        let what = format!("body 10 MB → {method} {path}");
        let outcome = send_raw(
            base,
            method.as_str(),
            path,
            &token,
            "application/json",
            &huge,
        )
        .await;
        check_raw(&mut result, &what, outcome);
    }
    Ok(result)
}

fn check_raw(result: &mut Hostile, what: &str, outcome: anyhow::Result<(u16, String)>) {
    result.tried += 1;
    match outcome {
        Ok((status, content_type)) => {
            if !(400..500).contains(&status) || content_type != "application/problem+json" {
                result.failures.push(format!(
                    "{what}: expected 4xx problem+json, got {status} {content_type:?}"
                ));
            }
        }
        Err(error) => result
            .failures
            .push(format!("{what}: no answer: {error:#}")),
    }
}

/// Sends a body by hand and returns the answer's status and
/// content type, however much of the body the server read.
async fn send_raw(
    base: &str,
    method: &str,
    path: &str,
    token: &str,
    content_type: &str,
    body: &[u8],
) -> anyhow::Result<(u16, String)> {
    let size = body.len();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {address}\r\nauthorization: Bearer {token}\r\n\
         content-type: {content_type}\r\ncontent-length: {size}\r\nconnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await?;
    for chunk in body.chunks(64 * 1024) {
        match tokio::time::timeout(Duration::from_secs(5), stream.write_all(chunk)).await {
            Ok(Ok(())) => {}
            _ => break,
        }
    }
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .context("no status line in the answer")?;
    let content_type = text
        .lines()
        .take_while(|line| !line.is_empty())
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-type")
                .then(|| value.trim().to_string())
        })
        .unwrap_or_default();
    Ok((status, content_type))
}

// ---- the run --------------------------------------------------------------------------------

#[derive(Default)]
struct Faults {
    injected: Vec<String>,
    redis_recovery: Option<Duration>,
    redis_degraded_seen: bool,
    pg_stopped_at: Option<Instant>,
    pg_back_at: Option<Instant>,
    pg_recovery: Option<Duration>,
    health_503_outside: usize,
}

#[tokio::main]
async fn main() {
    match run().await {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(error) => {
            eprintln!("reliability: {error:#}");
            std::process::exit(2);
        }
    }
}

static PANICS: AtomicUsize = AtomicUsize::new(0);

async fn run() -> anyhow::Result<bool> {
    let args = Args::parse()?;
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        default_hook(info);
    }));
    if std::env::var_os("RUST_LOG").is_none() {
        // SAFETY: before any other thread reads the environment.
        unsafe { std::env::set_var("RUST_LOG", "error") };
    }
    if std::env::var_os("LOG_FORMAT").is_none() {
        // SAFETY: as above.
        unsafe { std::env::set_var("LOG_FORMAT", "pretty") };
    }
    onboarding::monitoring::init();

    let dir = std::env::temp_dir().join(format!("onboarding-reliability-{}", std::process::id()));
    println!("== private services in {}", dir.display());
    let pg = Postgres::init(dir.clone())?;
    pg.start()?;
    let mut redis = Redis {
        port: free_port()?,
        child: None,
        log: dir.join("redis.log"),
    };
    redis.start()?;
    wait_until("redis-server", Duration::from_secs(10), || {
        redis.answering()
    })
    .await?;
    println!(
        "   postgres 127.0.0.1:{}, redis 127.0.0.1:{}",
        pg.port, redis.port
    );

    let outcome = load_and_check(&args, &pg, &mut redis).await;

    redis.stop();
    if let Err(error) = pg.stop() {
        eprintln!("stopping the private PostgreSQL: {error:#}");
    }
    if args.keep {
        println!("kept {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    outcome
}

async fn load_and_check(args: &Args, pg: &Postgres, redis: &mut Redis) -> anyhow::Result<bool> {
    let migration_url = pg.superuser_url("onboarding");
    onboarding::db::migrate::create_database_if_missing(&migration_url)
        .await
        .context("Failed to create the database")?;
    onboarding::db::migrate::run(&migration_url)
        .await
        .context("Failed to migrate")?;

    let jwks_url = serve_jwks().await?;
    let ai_mode = Arc::new(std::sync::atomic::AtomicU8::new(AI_OK));
    let ai_url = serve_ai_provider(Arc::clone(&ai_mode)).await?;
    let pairs: Vec<(&str, String)> = vec![
        ("DATABASE_URL", pg.app_url()),
        ("REDIS_URL", format!("redis://127.0.0.1:{}", redis.port)),
        (
            "EDGE_CONFIG_FILE",
            concat!(env!("CARGO_MANIFEST_DIR"), "/config/edge-config.json").into(),
        ),
        ("AUTH_PROVIDER", "supabase".into()),
        ("AUTH_JWT_SECRET", JWT_SECRET.into()),
        ("AUTH_JWKS_URL", jwks_url),
        ("AUTH_ISSUER", ISSUER.into()),
        ("AUTH_AUDIENCE", AUDIENCE.into()),
        ("SESSION_SECRET", SESSION_SECRET.into()),
        ("DATABASE_POOL_MAX_SIZE", args.pool_size.to_string()),
        // Every simulated user comes from 127.0.0.1; limits are not under test here.
        ("RATE_LIMIT_WRITES_PER_MINUTE", "1000000".into()),
        ("RATE_LIMIT_WRITES_PER_MINUTE_PER_IP", "1000000".into()),
        ("RATE_LIMIT_AI_PER_MINUTE", "1000000".into()),
        ("RATE_LIMIT_AI_PER_MINUTE_PER_IP", "1000000".into()),
        ("AI_PROVIDER", "openai".into()),
        ("AI_BASE_URL", ai_url),
        ("AI_API_KEY", "reliability-key".into()),
        ("AI_MODEL", "reliability".into()),
        ("AI_TIMEOUT_MS", "300".into()),
        ("AI_DEADLINE_MS", "1000".into()),
    ];
    let lookup = move |name: &str| {
        pairs
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.clone())
    };
    let settings = Settings::from_lookup(&lookup, Profile::Deployed)?;
    let app = http::app(AppState::build(settings)?, routes::all());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    println!(
        "   API {base} (in-process), pool {} connections",
        args.pool_size
    );

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .pool_max_idle_per_host(args.users * 2)
        .build()?;
    let started = Instant::now();
    let shared = Arc::new(Shared {
        base: base.clone(),
        client: client.clone(),
        counters: Counters::default(),
        log: Mutex::new(Log::default()),
        deadline: started + Duration::from_secs(args.seconds),
        pg_back: Mutex::new(None),
        run_id: format!("{:x}", now()),
        ai_mode,
    });

    // Users: four in five sign in with a JWT, one in five is an anonymous session.
    let mut users = Vec::new();
    for i in 0..args.users {
        let name = format!("rel_u{i}");
        let credential = if i % 5 == 4 {
            let response = client
                .post(format!("{base}/api/onboarding/session"))
                .send()
                .await?;
            ensure!(
                response.status() == 201,
                "POST session answered {}",
                response.status()
            );
            let body: Value = response.json().await?;
            Credential::Session(body["session"].as_str().unwrap_or_default().to_string())
        } else {
            Credential::Token(hs_token(&claims(&name)))
        };
        users.push(User {
            name,
            credential,
            rng: Rng(0x9e37_79b9_7f4a_7c15 ^ ((i as u64 + 1) * 0x1000_0001)),
            seen: HashMap::new(),
            history: HashMap::new(),
            seq: 0,
            ai_opted_in: false,
        });
    }

    println!(
        "== load: {} users for {} s (Redis down {:?} at ~10%, PostgreSQL down {:?} after it)",
        args.users, args.seconds, args.redis_down, args.pg_down
    );
    let tasks: Vec<_> = users
        .into_iter()
        .map(|user| tokio::spawn(user.run(Arc::clone(&shared))))
        .collect();
    let faults = inject_faults(args, &shared, pg, redis, started).await?;

    let mut users = Vec::new();
    for task in tasks {
        match tokio::time::timeout(Duration::from_secs(120), task).await {
            Ok(Ok(user)) => users.push(user),
            Ok(Err(error)) => bail!("a simulated user panicked: {error}"),
            Err(_) => bail!("a simulated user did not finish within 120 s after the load"),
        }
    }
    let load_seconds = started.elapsed().as_secs_f64();

    println!("== reading every acknowledged save back");
    let mut verification = verify(&shared, &users).await;
    let events_acknowledged = shared.counters.events_acknowledged.load(Ordering::Relaxed);
    let events_stored = count_stored_events(pg, events_acknowledged).await?;
    verification.events_stored = events_stored;
    // More stored than acknowledged is a batch whose 202 the client never
    // saw; fewer is a lost acknowledged write.
    if events_stored < events_acknowledged {
        verification.problems.push(format!(
            "{events_acknowledged} analytics events acknowledged with 202, only {events_stored} stored"
        ));
    }
    println!("== hostile input");
    let hostile = hostile(&base, &client).await?;
    let server_alive = !server.is_finished();
    server.abort();

    Ok(report(
        &shared,
        &faults,
        &verification,
        &hostile,
        load_seconds,
        server_alive,
    ))
}

/// Redis down for `redis_down` from ~10% of the load, then PostgreSQL down for
/// `pg_down`; health is polled throughout.
async fn inject_faults(
    args: &Args,
    shared: &Arc<Shared>,
    pg: &Postgres,
    redis: &mut Redis,
    started: Instant,
) -> anyhow::Result<Faults> {
    let mut faults = Faults::default();
    let health = tokio::spawn(watch_health(Arc::clone(shared)));
    // The AI provider hangs, then errors, from a quarter into the load; the
    // wizard's routes must not notice and suggest must degrade, not fail.
    let ai_fault = {
        let shared = Arc::clone(shared);
        let at = started + Duration::from_secs(args.seconds / 4);
        tokio::spawn(async move {
            tokio::time::sleep_until(at.into()).await;
            println!(
                "   t={:>5.1}s AI provider hangs",
                started.elapsed().as_secs_f64()
            );
            shared.ai_mode.store(AI_HANG, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_secs(3)).await;
            println!(
                "   t={:>5.1}s AI provider answers 500",
                started.elapsed().as_secs_f64()
            );
            shared.ai_mode.store(AI_ERROR, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_secs(3)).await;
            shared.ai_mode.store(AI_OK, Ordering::Relaxed);
            "AI provider hanging for 3s, then answering 500 for 3s".to_string()
        })
    };

    tokio::time::sleep_until((started + Duration::from_secs(args.seconds / 10)).into()).await;
    println!("   t={:>5.1}s stop Redis", started.elapsed().as_secs_f64());
    redis.stop();
    faults
        .injected
        .push(format!("Redis stopped for {:?}", args.redis_down));
    let redis_stopped = Instant::now();
    tokio::time::sleep(args.redis_down).await;
    redis.start()?;
    let redis_back = wait_until("redis-server", Duration::from_secs(10), || {
        redis.answering()
    })
    .await?;
    println!(
        "   t={:>5.1}s Redis answers again",
        started.elapsed().as_secs_f64()
    );

    // PostgreSQL: stop after the Redis recovery had a moment, or at mid-load.
    let pg_at =
        (redis_back + Duration::from_secs(2)).max(started + Duration::from_secs(args.seconds / 2));
    tokio::time::sleep_until(pg_at.into()).await;
    println!(
        "   t={:>5.1}s stop PostgreSQL (-m fast)",
        started.elapsed().as_secs_f64()
    );
    let pg_stopped = Instant::now();
    pg.stop()?;
    faults.injected.push(format!(
        "PostgreSQL stopped for {:?} (pg_ctl stop -m fast, start)",
        args.pg_down
    ));
    tokio::time::sleep(args.pg_down).await;
    pg.start()?;
    let pg_back = wait_until("PostgreSQL", Duration::from_secs(30), || pg.accepting()).await?;
    *shared.pg_back.lock().unwrap() = Some(pg_back);
    println!(
        "   t={:>5.1}s PostgreSQL accepts connections",
        started.elapsed().as_secs_f64()
    );
    faults.pg_stopped_at = Some(pg_stopped);
    faults.pg_back_at = Some(pg_back);

    // Keep the load going until recovery had its budget, even past --seconds.
    tokio::time::sleep_until(
        (shared
            .deadline
            .max(pg_back + PG_RECOVERY_BUDGET + Duration::from_secs(1)))
        .into(),
    )
    .await;
    if let Ok(injected) = ai_fault.await {
        faults.injected.push(injected);
    }
    let samples = health.await.unwrap_or_default();

    faults.pg_recovery = shared
        .log
        .lock()
        .unwrap()
        .first_save_after
        .iter()
        .min()
        .map(|at| at.saturating_duration_since(pg_back));
    faults.redis_degraded_seen = samples
        .iter()
        .any(|(at, _, redis)| *at > redis_stopped && *at < redis_back && redis == "down");
    faults.redis_recovery = samples
        .iter()
        .filter(|(at, _, redis)| *at >= redis_back && redis == "up")
        .map(|(at, _, _)| at.saturating_duration_since(redis_back))
        .min();
    let window_end = pg_back + PG_RECOVERY_BUDGET;
    faults.health_503_outside = samples
        .iter()
        .filter(|(at, status, _)| *status == 503 && (*at < pg_stopped || *at > window_end))
        .count();
    Ok(faults)
}

/// Polls `/api/health` every 250 ms until the load ends: (when, status, redis state).
async fn watch_health(shared: Arc<Shared>) -> Vec<(Instant, u16, String)> {
    let mut samples = Vec::new();
    let end = shared.deadline + Duration::from_secs(30);
    while Instant::now() < end && samples.len() < 2000 {
        let sent = Instant::now();
        if let Ok(response) = shared
            .client
            .get(format!("{}/api/health", shared.base))
            .send()
            .await
        {
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or_default();
            let redis = body["checks"]["redis"]["status"]
                .as_str()
                .unwrap_or("?")
                .to_string();
            samples.push((sent, status, redis));
        }
        if Instant::now() >= shared.deadline && shared.pg_back.lock().unwrap().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    samples
}

fn report(
    shared: &Shared,
    faults: &Faults,
    verification: &Verification,
    hostile: &Hostile,
    load_seconds: f64,
    server_alive: bool,
) -> bool {
    let c = &shared.counters;
    let log = shared.log.lock().unwrap();
    let (pg_stopped, pg_back) = (
        faults.pg_stopped_at.expect("PostgreSQL was restarted"),
        faults.pg_back_at.expect("PostgreSQL came back"),
    );
    let window_end = pg_back + PG_RECOVERY_BUDGET;
    let in_outage = |at: Instant| at >= pg_stopped && at <= window_end;
    let outage_503 = log
        .server_errors
        .iter()
        .filter(|e| e.status == 503 && e.retry_after && in_outage(e.at))
        .count();
    let after_back_503 = log
        .server_errors
        .iter()
        .filter(|e| e.status == 503 && e.at > pg_back && e.at <= window_end)
        .count();
    let other_5xx: Vec<&ServerError> = log
        .server_errors
        .iter()
        .filter(|e| !(e.status == 503 && e.retry_after && in_outage(e.at)))
        .collect();
    let panics = PANICS.load(Ordering::SeqCst);

    let mut failures: Vec<String> = Vec::new();
    for e in &other_5xx {
        failures.push(format!(
            "{} on {} outside the database outage (or without Retry-After: {})",
            e.status, e.what, e.retry_after
        ));
    }
    failures.extend(log.problems.iter().cloned());
    failures.extend(verification.problems.iter().cloned());
    failures.extend(hostile.failures.iter().cloned());
    for (_, what) in &log.transport_errors {
        failures.push(format!("transport error: {what}"));
    }
    match faults.pg_recovery {
        Some(recovery) if recovery <= PG_RECOVERY_BUDGET => {}
        Some(recovery) => failures.push(format!(
            "first save after PostgreSQL came back took {recovery:?} (> {PG_RECOVERY_BUDGET:?})"
        )),
        None => failures.push("no save succeeded after PostgreSQL came back".into()),
    }
    if !faults.redis_degraded_seen {
        failures.push("health never reported Redis down during its outage".into());
    }
    match faults.redis_recovery {
        Some(recovery) if recovery <= REDIS_RECOVERY_BUDGET => {}
        other => failures.push(format!(
            "health did not report Redis up again within {REDIS_RECOVERY_BUDGET:?} ({other:?})"
        )),
    }
    if faults.health_503_outside > 0 {
        failures.push(format!(
            "{} health 503s outside the database outage",
            faults.health_503_outside
        ));
    }
    if panics > 0 {
        failures.push(format!("{panics} panic(s) in the process"));
    }
    if c.ai_suggested.load(Ordering::Relaxed) == 0 {
        failures.push("no AI suggestion was made (was the provider path exercised?)".into());
    }
    if c.ai_unavailable.load(Ordering::Relaxed) == 0 {
        failures.push("suggest never degraded while the AI provider was down".into());
    }
    if !server_alive {
        failures.push("the server task ended".into());
    }
    if outage_503 == 0 {
        failures
            .push("no 503 was seen while PostgreSQL was down (was the outage exercised?)".into());
    }

    let requests = c.requests.load(Ordering::Relaxed);
    println!();
    println!("== reliability summary");
    println!(
        "load               {load_seconds:.1} s, {requests} requests ({:.0}/s)",
        requests as f64 / load_seconds
    );
    println!(
        "  saves            {} acknowledged ({} idempotent replays), {} retries, {} simulated timeouts, {} given up",
        c.saves_acknowledged.load(Ordering::Relaxed),
        c.replays.load(Ordering::Relaxed),
        c.retries.load(Ordering::Relaxed),
        c.simulated_timeouts.load(Ordering::Relaxed),
        c.given_up.load(Ordering::Relaxed),
    );
    println!(
        "  412              {} for stale If-Match (expected), {} on a retry racing its own abandoned attempt",
        c.stale_412.load(Ordering::Relaxed),
        c.refresh_412.load(Ordering::Relaxed),
    );
    println!(
        "  reads/events     {} status reads, {} event batches",
        c.status_reads.load(Ordering::Relaxed),
        c.events.load(Ordering::Relaxed)
    );
    println!(
        "  AI suggest       {} suggestions, {} answered unavailable (provider down or its circuit open)",
        c.ai_suggested.load(Ordering::Relaxed),
        c.ai_unavailable.load(Ordering::Relaxed)
    );
    println!(
        "  events stored    {} of {} acknowledged",
        verification.events_stored,
        c.events_acknowledged.load(Ordering::Relaxed)
    );
    println!(
        "verified           {} acknowledged writes over {} user/steps read back; {} later unacknowledged version(s) explained by unknown outcomes",
        verification.acknowledged,
        verification.steps_checked,
        verification.explained_extra_versions
    );
    println!("faults injected    {}", faults.injected.join("; "));
    println!(
        "5xx                {} during the database outage (503 + Retry-After; {} of them after it accepted connections again), {} otherwise",
        outage_503,
        after_back_503,
        other_5xx.len()
    );
    println!(
        "recovery           PostgreSQL: first save {} after it accepted connections (budget {:?}); Redis: health up {} after restart, degraded seen: {}",
        faults
            .pg_recovery
            .map(|d| format!("{:.2} s", d.as_secs_f64()))
            .unwrap_or("never".into()),
        PG_RECOVERY_BUDGET,
        faults
            .redis_recovery
            .map(|d| format!("{:.2} s", d.as_secs_f64()))
            .unwrap_or("never".into()),
        faults.redis_degraded_seen,
    );
    println!(
        "hostile input      {} bad tokens/bodies tried, {} wrong answers",
        hostile.tried,
        hostile.failures.len()
    );
    println!("transport errors   {}", log.transport_errors.len());
    println!("panics             {panics}");
    if failures.is_empty() {
        println!("RESULT             PASS");
        true
    } else {
        println!("RESULT             FAIL ({} problem(s)):", failures.len());
        for failure in failures.iter().take(60) {
            println!("  - {failure}");
        }
        if failures.len() > 60 {
            println!("  ... and {} more", failures.len() - 60);
        }
        false
    }
}
