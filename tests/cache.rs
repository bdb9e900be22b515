//! Redis infrastructure against the real Redis: the answer cache and its
//! stale-fill guard, PostgreSQL-backed sessions, `@upstash/ratelimit`-compatible
//! limits, and what happens when Redis refuses, hangs, or restarts.
//! Every test writes under keys of its own, so they run in parallel.

use std::net::TcpListener as StdTcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use onboarding::auth::{SessionId, UserId};
use onboarding::breaker::CircuitSettings;
use onboarding::cache::rate_limit::DEFAULT_PREFIX;
use onboarding::cache::{
    Cache, CacheEntry, CacheSettings, FillOutcome, Lookup, Policy, RateLimiter, Redis,
    RedisSettings, SessionSettings, SessionSource, Sessions, Subject,
};
use onboarding::settings::SecretString;
use redis::AsyncCommands;
use serde_json::{Value, json};

use crate::support::{TestDb, connect, free_port};

const LOCAL_REDIS: &str = "redis://127.0.0.1:6379";

fn unique(label: &str) -> String {
    format!("{label}-{}", uuid::Uuid::new_v4().simple())
}

fn settings(url: &str, timeout: Duration, circuit: CircuitSettings) -> RedisSettings {
    RedisSettings {
        url: SecretString::from(url),
        command_timeout: timeout,
        key_prefix: unique("test"),
        circuit,
    }
}

/// A client of the local Redis under a key prefix of its own.
fn local_redis() -> Redis {
    Redis::new(&settings(
        LOCAL_REDIS,
        Duration::from_secs(2),
        CircuitSettings {
            failures: 3,
            cooldown: Duration::from_secs(5),
        },
    ))
    .unwrap()
}

/// A plain connection, for looking at what the code under test wrote.
async fn raw(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

fn user_subject() -> Subject {
    Subject::user(&UserId::parse(&unique("user")).unwrap())
}

// ---------------------------------------------------------------------------
// Cache
// ---------------------------------------------------------------------------

#[tokio::test]
async fn the_cache_stores_json_with_a_ttl_and_invalidate_drops_it() {
    let redis = local_redis();
    let cache = Cache::new(
        Some(&redis),
        CacheSettings {
            ttl: Duration::from_secs(30),
        },
    );
    let subject = user_subject();

    let Lookup::Miss(ticket) = cache.get_json::<Value>(CacheEntry::Status, &subject).await else {
        panic!("a fresh subject is a miss");
    };
    assert!(
        ticket.is_some(),
        "Redis answered, so the miss can be filled"
    );
    let answer = json!({ "state": "in_progress", "currentStep": "profile" });
    assert_eq!(
        cache
            .set_json(CacheEntry::Status, &subject, ticket.as_ref(), &answer)
            .await,
        FillOutcome::Stored
    );
    match cache.get_json::<Value>(CacheEntry::Status, &subject).await {
        Lookup::Hit(value) => assert_eq!(value, answer),
        Lookup::Miss(_) => panic!("the stored answer is a hit"),
    }

    let mut raw = raw(LOCAL_REDIS).await;
    let key = redis.keys().status(&subject);
    assert!(key.starts_with(&format!("{}:v1:status:user:", redis.keys().prefix())));
    let ttl_ms: i64 = raw.pttl(&key).await.unwrap();
    assert!((1..=30_000).contains(&ttl_ms), "pttl {ttl_ms}");

    // The flow entry is separate, and invalidation drops both.
    let Lookup::Miss(ticket) = cache.get_json::<Value>(CacheEntry::Flow, &subject).await else {
        panic!("the flow entry is not filled yet");
    };
    cache
        .set_json(
            CacheEntry::Flow,
            &subject,
            ticket.as_ref(),
            &json!({"steps": []}),
        )
        .await;
    assert!(cache.invalidate(&subject).await);
    for entry in [CacheEntry::Status, CacheEntry::Flow] {
        assert!(matches!(
            cache.get_json::<Value>(entry, &subject).await,
            Lookup::Miss(Some(_))
        ));
    }
}

#[tokio::test]
async fn a_stale_fill_that_races_a_write_cannot_resurrect_old_data() {
    let redis = local_redis();
    let cache = Cache::new(Some(&redis), CacheSettings::default());
    let subject = user_subject();

    // A reader misses and reads the row as it was before the write...
    let Lookup::Miss(reader_ticket) = cache.get_json::<Value>(CacheEntry::Status, &subject).await
    else {
        panic!("miss expected");
    };
    let old = json!({ "rowVersion": 1, "currentStep": "welcome" });
    // ...the writer commits and invalidates...
    assert!(cache.invalidate(&subject).await);
    // ...and a second reader, who read after the commit, fills first.
    let Lookup::Miss(fresh_ticket) = cache.get_json::<Value>(CacheEntry::Status, &subject).await
    else {
        panic!("miss expected");
    };
    let new = json!({ "rowVersion": 2, "currentStep": "profile" });
    assert_eq!(
        cache
            .set_json(CacheEntry::Status, &subject, fresh_ticket.as_ref(), &new)
            .await,
        FillOutcome::Stored
    );
    // The first reader's late fill is refused, so the old row never returns.
    assert_eq!(
        cache
            .set_json(CacheEntry::Status, &subject, reader_ticket.as_ref(), &old)
            .await,
        FillOutcome::Stale
    );
    match cache.get_json::<Value>(CacheEntry::Status, &subject).await {
        Lookup::Hit(value) => assert_eq!(value, new),
        Lookup::Miss(_) => panic!("the fresh answer stays cached"),
    }

    // Many interleavings at once: every fill that took its ticket before the
    // invalidation is refused, whatever order the tasks run in.
    let subject = user_subject();
    let mut tickets = Vec::new();
    for _ in 0..20 {
        if let Lookup::Miss(ticket) = cache.get_json::<Value>(CacheEntry::Flow, &subject).await {
            tickets.push(ticket);
        }
    }
    assert!(cache.invalidate(&subject).await);
    let fills = tickets
        .iter()
        .map(|ticket| cache.set_json(CacheEntry::Flow, &subject, ticket.as_ref(), &old));
    for outcome in futures_util::future::join_all(fills).await {
        assert_eq!(outcome, FillOutcome::Stale);
    }
    assert!(matches!(
        cache.get_json::<Value>(CacheEntry::Flow, &subject).await,
        Lookup::Miss(_)
    ));
}

// ---------------------------------------------------------------------------
// Sessions
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_session_survives_a_redis_flush_and_is_refilled_from_postgresql() {
    let test_db = TestDb::migrated().await;
    let db = test_db.database();
    let redis = local_redis();
    let sessions = Sessions::new(&db, Some(&redis), SessionSettings::default());
    let session = SessionId::generate();

    let created = sessions.create(&session).await.unwrap();
    let found = sessions.find(&session).await.unwrap().unwrap();
    assert_eq!(found.source, SessionSource::Redis);

    // Redis loses everything it had about the session.
    let mut raw = raw(LOCAL_REDIS).await;
    let key = redis.keys().session(&session);
    assert!(!key.contains(&session.to_hex()), "never the raw session id");
    let deleted: i64 = raw.del(&key).await.unwrap();
    assert_eq!(deleted, 1);

    let found = sessions.find(&session).await.unwrap().unwrap();
    assert_eq!(found.source, SessionSource::Database);
    assert_eq!(found.created_at, created.created_at);
    let refilled: bool = raw.exists(&key).await.unwrap();
    assert!(refilled, "the miss refilled Redis");
    let found = sessions.find(&session).await.unwrap().unwrap();
    assert_eq!(found.source, SessionSource::Redis);

    // An unknown session is not invented.
    assert_eq!(sessions.find(&SessionId::generate()).await.unwrap(), None);
}

#[tokio::test]
async fn touching_a_session_slides_its_ttl_and_writes_postgresql_at_most_once_per_interval() {
    let test_db = TestDb::migrated().await;
    let db = test_db.database();
    let redis = local_redis();
    let settings = SessionSettings {
        ttl: Duration::from_secs(3600),
        touch_interval: Duration::from_secs(600),
    };
    let sessions = Sessions::new(&db, Some(&redis), settings);
    let session = SessionId::generate();
    sessions.create(&session).await.unwrap();

    let admin = connect(&test_db.admin_url()).await;
    let last_seen_in_db = async || -> chrono::DateTime<chrono::Utc> {
        admin
            .query_one(
                "select last_seen_at from onboarding.anonymous_sessions where id_hash = $1",
                &[&session.hash_hex()],
            )
            .await
            .unwrap()
            .get(0)
    };
    let first_db_touch = last_seen_in_db().await;

    let mut raw = raw(LOCAL_REDIS).await;
    let key = redis.keys().session(&session);
    let _: bool = raw.pexpire(&key, 5_000).await.unwrap();
    let touched = sessions.touch(&session).await.unwrap().unwrap();
    assert_eq!(touched.source, SessionSource::Redis);
    let ttl_ms: i64 = raw.pttl(&key).await.unwrap();
    assert!(ttl_ms > 3_500_000, "the TTL slid back to an hour: {ttl_ms}");
    assert_eq!(
        last_seen_in_db().await,
        first_db_touch,
        "within the interval PostgreSQL is not written"
    );

    // Eleven minutes later (as far as the cache knows), the touch reaches PostgreSQL.
    let eleven_minutes_ago = chrono::Utc::now().timestamp_millis() - 11 * 60 * 1000;
    let _: i64 = raw
        .hset(&key, "db_seen_at", eleven_minutes_ago)
        .await
        .unwrap();
    sessions.touch(&session).await.unwrap().unwrap();
    assert!(last_seen_in_db().await > first_db_touch);
}

// ---------------------------------------------------------------------------
// Rate limits
// ---------------------------------------------------------------------------

#[tokio::test]
async fn the_rate_limiter_allows_exactly_the_limit_then_denies_with_upstash_keys() {
    let redis = local_redis();
    let limiter = RateLimiter::new(Some(&redis), DEFAULT_PREFIX);
    let policy = Policy::new("writes:session", 5, Duration::from_secs(60));
    let identifier = unique("session");
    // Early in a window, far from the previous one: window index 28333333.
    let now = 1_700_000_010_000_i64;

    for expected_remaining in (0..5).rev() {
        let decision = limiter.check_at(&policy, &identifier, now).await;
        assert!(decision.allowed);
        assert!(!decision.degraded);
        assert_eq!(decision.remaining, expected_remaining);
        assert_eq!(decision.limit, 5);
        assert_eq!(decision.reset_at_ms, 1_700_000_040_000);
    }
    let denied = limiter.check_at(&policy, &identifier, now + 1_000).await;
    assert!(!denied.allowed);
    assert_eq!(denied.remaining, 0);
    assert_eq!(denied.reset_at_ms, 1_700_000_040_000);
    let headers = denied.headers_at(now + 1_000);
    assert_eq!(headers.retry_after_seconds, Some(29));
    assert_eq!(headers.reset_seconds, 29);

    // The keys are exactly @upstash/ratelimit's, with its value and expiry.
    let mut raw = raw(LOCAL_REDIS).await;
    let pattern = format!("{DEFAULT_PREFIX}:writes:session:{identifier}:*");
    let keys: Vec<String> = raw.keys(&pattern).await.unwrap();
    let current = format!("@upstash/ratelimit:writes:session:{identifier}:28333333");
    assert_eq!(keys, vec![current.clone()]);
    let count: String = raw.get(&current).await.unwrap();
    assert_eq!(count, "5", "denied requests are not counted");
    let ttl_ms: i64 = raw.pttl(&current).await.unwrap();
    assert!(ttl_ms > 120_000 && ttl_ms <= 121_000, "pttl {ttl_ms}");
    let _: i64 = raw.del(&current).await.unwrap();
}

#[tokio::test]
async fn the_previous_window_counts_in_proportion_to_its_overlap() {
    let redis = local_redis();
    let limiter = RateLimiter::new(Some(&redis), DEFAULT_PREFIX);
    let policy = Policy::new("ai:user", 10, Duration::from_secs(60));
    let identifier = unique("user");
    let window_start = 1_700_000_040_000_i64; // index 28333334 begins here

    // Ten requests at the very end of the previous window.
    for _ in 0..10 {
        let decision = limiter
            .check_at(&policy, &identifier, window_start - 1)
            .await;
        assert!(decision.allowed);
    }
    // A quarter into the next window, 3/4 of those 10 still count: floor(7.5) = 7.
    let quarter = window_start + 15_000;
    let mut allowed = 0;
    for _ in 0..5 {
        if limiter
            .check_at(&policy, &identifier, quarter)
            .await
            .allowed
        {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 3, "10 - floor(0.75 * 10)");
    // Upstash's arithmetic, reproduced: three quarters in, only floor(2.5) = 2
    // of the old window count, plus the 3 new ones: 5 remain, and this one takes one.
    let later = limiter
        .check_at(&policy, &identifier, window_start + 45_000)
        .await;
    assert!(later.allowed);
    assert_eq!(later.remaining, 10 - (4 + 2));

    let mut raw = raw(LOCAL_REDIS).await;
    let keys: Vec<String> = raw
        .keys(format!("{DEFAULT_PREFIX}:ai:user:{identifier}:*"))
        .await
        .unwrap();
    let mut keys = keys;
    keys.sort();
    assert_eq!(
        keys,
        vec![
            format!("@upstash/ratelimit:ai:user:{identifier}:28333333"),
            format!("@upstash/ratelimit:ai:user:{identifier}:28333334"),
        ]
    );
    let _: i64 = raw.del(keys).await.unwrap();
}

// ---------------------------------------------------------------------------
// Degraded mode
// ---------------------------------------------------------------------------

async fn assert_degraded_everywhere(redis: &Redis, test_db: &TestDb) {
    let cache = Cache::new(Some(redis), CacheSettings::default());
    let subject = user_subject();
    assert!(matches!(
        cache.get_json::<Value>(CacheEntry::Status, &subject).await,
        Lookup::Miss(None)
    ));
    assert_eq!(
        cache
            .set_json(CacheEntry::Status, &subject, None, &json!({}))
            .await,
        FillOutcome::Skipped
    );
    assert!(!cache.invalidate(&subject).await);

    let limiter = RateLimiter::new(Some(redis), DEFAULT_PREFIX);
    let policy = Policy::new("writes:ip", 1, Duration::from_secs(60));
    for _ in 0..3 {
        let decision = limiter.check(&policy, "192.0.2.1").await;
        assert!(decision.allowed, "fails open");
        assert!(decision.degraded);
    }

    let db = test_db.database();
    let sessions = Sessions::new(&db, Some(redis), SessionSettings::default());
    let session = SessionId::generate();
    sessions.create(&session).await.unwrap();
    let found = sessions.find(&session).await.unwrap().unwrap();
    assert_eq!(found.source, SessionSource::Database);
    let touched = sessions.touch(&session).await.unwrap().unwrap();
    assert_eq!(touched.source, SessionSource::Database);
}

#[tokio::test]
async fn with_redis_refusing_connections_everything_degrades_and_the_circuit_opens() {
    let test_db = TestDb::migrated().await;
    let closed = free_port();
    let redis = Redis::new(&settings(
        &format!("redis://127.0.0.1:{closed}"),
        Duration::from_millis(200),
        CircuitSettings {
            failures: 2,
            cooldown: Duration::from_secs(60),
        },
    ))
    .unwrap();
    assert_degraded_everywhere(&redis, &test_db).await;
    assert!(redis.circuit_is_open());
    assert!(matches!(
        redis.ping().await,
        Err(onboarding::cache::RedisError::CircuitOpen)
    ));
}

/// A TCP server that accepts connections, counts them, and never answers:
/// a hung Redis.
async fn hanging_server() -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            held.push(socket);
        }
    });
    (port, accepted)
}

#[tokio::test]
async fn a_hanging_redis_costs_a_few_timeouts_then_the_circuit_skips_it() {
    let test_db = TestDb::migrated().await;
    let (port, accepted) = hanging_server().await;
    let timeout = Duration::from_millis(150);
    let redis = Redis::new(&settings(
        &format!("redis://127.0.0.1:{port}"),
        timeout,
        CircuitSettings {
            failures: 2,
            cooldown: Duration::from_secs(60),
        },
    ))
    .unwrap();

    let started = Instant::now();
    assert_degraded_everywhere(&redis, &test_db).await;
    assert!(redis.circuit_is_open());
    let attempts = accepted.load(Ordering::SeqCst);
    assert!(
        (1..=4).contains(&attempts),
        "two failed commands open the circuit: {attempts} connections"
    );

    // Open: a hundred more calls reach nothing and wait for nothing.
    let cache = Cache::new(Some(&redis), CacheSettings::default());
    let subject = user_subject();
    let skipping = Instant::now();
    for _ in 0..100 {
        assert!(matches!(
            cache.get_json::<Value>(CacheEntry::Status, &subject).await,
            Lookup::Miss(None)
        ));
    }
    assert!(skipping.elapsed() < timeout, "{:?}", skipping.elapsed());
    assert_eq!(accepted.load(Ordering::SeqCst), attempts);
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// A private `redis-server` on a fixed port, killed on drop.
struct PrivateRedis {
    port: u16,
    child: Option<Child>,
}

impl PrivateRedis {
    fn start(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        let server = Self {
            port,
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port_for_a_server() -> u16 {
    StdTcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn redis_stopped_mid_run_degrades_the_wizard_and_it_recovers_when_redis_is_back() {
    let test_db = TestDb::migrated().await;
    let db = test_db.database();
    let mut server = PrivateRedis::start(free_port_for_a_server());
    let cooldown = Duration::from_secs(1);
    let redis = Redis::new(&settings(
        &server.url(),
        Duration::from_millis(300),
        CircuitSettings {
            failures: 2,
            cooldown,
        },
    ))
    .unwrap();
    let cache = Cache::new(Some(&redis), CacheSettings::default());
    let sessions = Sessions::new(&db, Some(&redis), SessionSettings::default());
    let limiter = RateLimiter::new(Some(&redis), DEFAULT_PREFIX);
    let policy = Policy::new("writes:session", 100, Duration::from_secs(60));
    let subject = user_subject();
    let session = SessionId::generate();

    // Up: everything goes through Redis.
    let Lookup::Miss(ticket) = cache.get_json::<Value>(CacheEntry::Status, &subject).await else {
        panic!("miss expected");
    };
    assert_eq!(
        cache
            .set_json(
                CacheEntry::Status,
                &subject,
                ticket.as_ref(),
                &json!({"v": 1})
            )
            .await,
        FillOutcome::Stored
    );
    sessions.create(&session).await.unwrap();
    assert_eq!(
        sessions.find(&session).await.unwrap().unwrap().source,
        SessionSource::Redis
    );
    assert!(!limiter.check(&policy, "s").await.degraded);

    // Down.
    server.kill();
    assert!(matches!(
        cache.get_json::<Value>(CacheEntry::Status, &subject).await,
        Lookup::Miss(None)
    ));
    let decision = limiter.check(&policy, "s").await;
    assert!(decision.allowed && decision.degraded);
    let found = sessions.find(&session).await.unwrap().unwrap();
    assert_eq!(
        found.source,
        SessionSource::Database,
        "the session is not lost"
    );
    assert!(redis.circuit_is_open());

    // Back, on the same port, empty (no persistence).
    let port = server.port;
    let _server = PrivateRedis::start(port);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if redis.ping().await.is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "the client did not reconnect");
        tokio::time::sleep(cooldown).await;
    }
    assert!(!redis.circuit_is_open());
    assert!(!limiter.check(&policy, "s").await.degraded);
    // The restarted Redis lost the session; PostgreSQL still has it and refills it.
    let found = sessions.find(&session).await.unwrap().unwrap();
    assert_eq!(found.source, SessionSource::Database);
    let found = sessions.find(&session).await.unwrap().unwrap();
    assert_eq!(found.source, SessionSource::Redis);
    // The cache works again.
    let Lookup::Miss(ticket) = cache.get_json::<Value>(CacheEntry::Status, &subject).await else {
        panic!("the restarted Redis is empty");
    };
    assert!(ticket.is_some());
    assert_eq!(
        cache
            .set_json(
                CacheEntry::Status,
                &subject,
                ticket.as_ref(),
                &json!({"v": 2})
            )
            .await,
        FillOutcome::Stored
    );
}

// ---------------------------------------------------------------------------
// The middleware, mounted as the routes will mount it
// ---------------------------------------------------------------------------

#[tokio::test]
async fn the_write_middleware_answers_429_with_rate_limit_headers_once_the_ip_limit_is_spent() {
    use axum::routing::post;
    use onboarding::{AppState, http};

    let test_db = TestDb::migrated().await;
    let prefix = unique("@upstash/ratelimit-test");
    let state = AppState::build(test_db.settings_with(&[
        ("RATE_LIMIT_PREFIX", prefix.clone()),
        ("RATE_LIMIT_WRITES_PER_MINUTE_PER_IP", "2".into()),
        // As behind a proxy that writes the client's address into x-real-ip.
        ("CLIENT_IP_HEADER", "x-real-ip".into()),
    ]))
    .unwrap();
    // http::app mounts the write limiter in front of every route.
    let routes = axum::Router::new().route(
        "/api/thing",
        post(|| async { "written" }).get(|| async { "read" }),
    );
    let app = http::app(state, routes);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}/api/thing", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client = reqwest::Client::new();
    let ip = "198.51.100.23";
    crate::support::within_one_rate_limit_minute().await;

    for remaining in ["1", "0"] {
        let response = client
            .post(&address)
            .header("x-real-ip", ip)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["ratelimit-limit"], "2");
        assert_eq!(response.headers()["ratelimit-remaining"], remaining);
        let reset: u64 = response.headers()["ratelimit-reset"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&reset), "reset {reset}");
    }
    let denied = client
        .post(&address)
        .header("x-real-ip", ip)
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 429);
    assert_eq!(denied.headers()["content-type"], "application/problem+json");
    assert_eq!(denied.headers()["ratelimit-remaining"], "0");
    let retry_after: u64 = denied.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "retry-after {retry_after}");
    let body: Value = denied.json().await.unwrap();
    assert_eq!(body["type"], "https://onboarding.dev/problems/rate-limited");

    // Reads are not limited, and another client IP has its own budget.
    let read = client
        .get(&address)
        .header("x-real-ip", ip)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    assert!(!read.headers().contains_key("ratelimit-limit"));
    let other = client
        .post(&address)
        .header("x-real-ip", "198.51.100.24")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200);

    let mut raw = raw(LOCAL_REDIS).await;
    let keys: Vec<String> = raw.keys(format!("{prefix}:*")).await.unwrap();
    // One counter per IP: every request fell in one minute.
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(
        keys.iter()
            .any(|key| key.starts_with(&format!("{prefix}:writes:ip:{ip}:")))
    );
    let _: i64 = raw.del(keys).await.unwrap();
}
