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
//! 5. drains the outbox to a webhook receiver that failed and hung during
//!    the load, and checks every event was delivered and acknowledged;
//!
//! and prints a summary, exiting non-zero when any figure is wrong. Every loop
//! is bounded in count and time; every socket is on 127.0.0.1.
//!
//! With `--pgbouncer announced|unannounced`, the API reaches PostgreSQL
//! through a PgBouncer in transaction mode (Debian's package), with or
//! without `pgbouncer=true` in its URL; with `--pgbouncer prepared`, through
//! a PgBouncer 1.24.1 that keeps prepared statements
//! (`scripts/pgbouncer-prepared`), with named statements.
//!
//! This file holds the command line and the order of the run; each step lives
//! in its own module.

mod ai_provider;
mod cluster;
mod faults;
mod hostile;
mod lifecycle;
mod load;
mod report;
mod services;
mod tokens;
mod user;
mod verify;
mod webhooks;

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use onboarding::config::Settings;
use onboarding::settings::Profile;
use onboarding::{AppState, http, openapi, routes};

use crate::load::{Counters, Log, Shared};
use crate::services::{Postgres, Redis};

const SESSION_SECRET: &str = "reliability-session-secret-0123456789abcdef";

// ---- command line -------------------------------------------------------------

struct Args {
    seconds: u64,
    users: usize,
    redis_down: Duration,
    pg_down: Duration,
    pool_size: usize,
    keep: bool,
    pooler: Option<Pooler>,
}

/// A PgBouncer in transaction mode between the API and PostgreSQL.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Pooler {
    /// `pgbouncer=true` in the URL: unnamed statements from the start.
    Announced,
    /// A plain URL: the pool must find the pooler by its answers.
    Unannounced,
    /// A plain URL to a PgBouncer that keeps prepared statements: the
    /// pool's named statements work through it.
    KeepingPrepared,
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
            pooler: None,
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
                "--pgbouncer" => {
                    args.pooler = match it.next().as_deref() {
                        Some("announced") => Some(Pooler::Announced),
                        Some("unannounced") => Some(Pooler::Unannounced),
                        Some("prepared") => Some(Pooler::KeepingPrepared),
                        _ => bail!("--pgbouncer needs announced, unannounced or prepared"),
                    }
                }
                "-h" | "--help" => {
                    println!(
                        "usage: reliability [--seconds N (60)] [--users N (50)] \
                         [--redis-down-seconds N (10)] [--pg-down-seconds N (3)] \
                         [--pool-size N (16)] [--pgbouncer announced|unannounced|prepared] [--keep]"
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

// ---- the run --------------------------------------------------------------------------------

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

/// Panics anywhere in the process (the API's tasks included); any one fails the run.
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
    let mut redis = Redis::new(dir.join("redis.log"))?;
    redis.start_answering().await?;
    println!(
        "   postgres 127.0.0.1:{}, redis 127.0.0.1:{}",
        pg.port, redis.port
    );

    // Kept until the run ends: dropping it stops PgBouncer.
    let bouncer = match args.pooler {
        None => None,
        Some(pooler) => {
            let mode = match pooler {
                Pooler::KeepingPrepared => cluster::PoolMode::TransactionKeepingPrepared,
                Pooler::Announced | Pooler::Unannounced => cluster::PoolMode::Transaction,
            };
            let bouncer = cluster::PgBouncer::start(&dir.join("pgbouncer"), pg.port, mode, 10)?;
            println!(
                "   PgBouncer 127.0.0.1:{} (transaction mode, {pooler:?})",
                bouncer.port
            );
            Some((bouncer, pooler))
        }
    };
    let database_url = match &bouncer {
        None => pg.app_url(),
        Some((bouncer, pooler)) => format!(
            "postgres://onboarding_app@127.0.0.1:{}/onboarding?sslmode=disable{}",
            bouncer.port,
            if *pooler == Pooler::Announced {
                "&pgbouncer=true"
            } else {
                ""
            }
        ),
    };
    let outcome = load_and_check(&args, &pg, &mut redis, database_url).await;
    drop(bouncer);

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

/// Every route, configured for the private PostgreSQL and Redis, with
/// `extra` settings over the common ones.
pub fn api(
    pg: &Postgres,
    redis_port: u16,
    extra: Vec<(&'static str, String)>,
) -> anyhow::Result<axum::Router> {
    let mut pairs: Vec<(&str, String)> = vec![
        ("DATABASE_URL", pg.app_url()),
        ("REDIS_URL", format!("redis://127.0.0.1:{redis_port}")),
        (
            "EDGE_CONFIG_FILE",
            concat!(env!("CARGO_MANIFEST_DIR"), "/config/edge-config.json").into(),
        ),
        ("AUTH_JWT_SECRET", tokens::JWT_SECRET.into()),
        ("SESSION_SECRET", SESSION_SECRET.into()),
    ];
    pairs.extend(extra);
    let lookup = move |name: &str| {
        pairs
            .iter()
            .rev()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.clone())
    };
    let settings = Settings::from_lookup(&lookup, Profile::Deployed)?;
    Ok(http::app(
        AppState::build(settings)?,
        routes::all().merge(openapi::router()),
    ))
}

async fn load_and_check(
    args: &Args,
    pg: &Postgres,
    redis: &mut Redis,
    database_url: String,
) -> anyhow::Result<bool> {
    let migration_url = pg.superuser_url("onboarding");
    onboarding::db::migrate::create_and_run(&migration_url)
        .await
        .context("Failed to create or migrate the database")?;

    lifecycle::seed_expired(pg).await?;
    let jwks_url = tokens::serve_jwks().await?;
    let ai_mode = Arc::new(AtomicU8::new(ai_provider::AI_OK));
    let ai_url = ai_provider::serve(Arc::clone(&ai_mode)).await?;
    let receiver = webhooks::Receiver::default();
    let receiver_url = receiver.serve().await?;
    let mut extra = vec![
        ("DATABASE_URL", database_url),
        ("AUTH_PROVIDER", "supabase".into()),
        ("AUTH_JWKS_URL", jwks_url),
        ("AUTH_ISSUER", tokens::ISSUER.into()),
        ("AUTH_AUDIENCE", tokens::AUDIENCE.into()),
        ("CRON_SECRET", lifecycle::CRON_SECRET.into()),
        ("DATABASE_POOL_MAX_SIZE", args.pool_size.to_string()),
        // Every simulated user comes from 127.0.0.1; limits are not under test here.
        ("RATE_LIMIT_WRITES_PER_MINUTE", "1000000".into()),
        ("RATE_LIMIT_WRITES_PER_MINUTE_PER_IP", "1000000".into()),
        ("RATE_LIMIT_AI_PER_MINUTE", "1000000".into()),
        ("RATE_LIMIT_AI_PER_MINUTE_PER_IP", "1000000".into()),
        ("RATE_LIMIT_EVENTS_PER_MINUTE", "1000000".into()),
        ("RATE_LIMIT_EVENTS_PER_MINUTE_PER_IP", "1000000".into()),
        ("AI_PROVIDER", "openai".into()),
        ("AI_BASE_URL", ai_url),
        ("AI_API_KEY", "reliability-key".into()),
        ("AI_MODEL", "reliability".into()),
        ("AI_TIMEOUT_MS", "300".into()),
        ("AI_DEADLINE_MS", "1000".into()),
    ];
    extra.extend(webhooks::settings(receiver_url));
    let (address, server) = services::serve_loopback(api(pg, redis.port, extra)?).await?;
    let base = format!("http://{address}");
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
        run_id: format!("{:x}", tokens::now()),
        ai_mode,
        receiver_mode: Arc::clone(&receiver.mode),
    });
    let users = user::sign_in(&client, &base, args.users).await?;
    let leaver = lifecycle::prepare_leaver(&client, &base).await?;

    println!(
        "== load: {} users for {} s (Redis down {:?} at ~10%, PostgreSQL down {:?} after it)",
        args.users, args.seconds, args.redis_down, args.pg_down
    );
    let tasks: Vec<_> = users
        .into_iter()
        .map(|user| tokio::spawn(user.run(Arc::clone(&shared))))
        .collect();
    // As Vercel's cron would, while the users work and before the outages.
    let purge = tokio::spawn(lifecycle::call_during_load(
        client
            .get(format!("{base}/api/cron/purge"))
            .bearer_auth(lifecycle::CRON_SECRET),
        Duration::from_secs(1),
        "the purge",
    ));
    let erasure = tokio::spawn(lifecycle::call_during_load(
        client
            .delete(format!("{base}/api/onboarding/me"))
            .bearer_auth(leaver),
        Duration::from_secs(2),
        "the erasure",
    ));
    let faults = faults::inject(args, &shared, pg, redis, started).await?;

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
    let mut verification = verify::read_back(&shared, &users).await;
    let events_acknowledged = shared.counters.events_acknowledged.load(Ordering::Relaxed);
    let events_stored = verify::count_stored_events(pg, events_acknowledged).await?;
    verification.events_stored = events_stored;
    // More stored than acknowledged is a batch whose 202 the client never
    // saw; fewer is a lost acknowledged write.
    if events_stored < events_acknowledged {
        verification.problems.push(format!(
            "{events_acknowledged} analytics events acknowledged with 202, only {events_stored} stored"
        ));
    }
    println!("== hostile input");
    let hostile = hostile::send_corpus(&base, &client).await?;
    println!("== the outbox drained to the webhook receiver");
    let outbox = webhooks::drain_and_check(
        &client,
        &base,
        lifecycle::CRON_SECRET,
        pg,
        &receiver,
        Duration::from_secs(60),
    )
    .await?;
    let server_alive = !server.is_finished();
    server.abort();
    println!("== the purge and the erasure during the load, then anonymous floods");
    let mut lifecycle = lifecycle::Lifecycle::default();
    let purged = purge.await.context("the purge task panicked")?;
    let erased = erasure.await.context("the erasure task panicked")?;
    lifecycle::check_purge_and_erasure(pg, purged, erased, &mut lifecycle).await?;
    lifecycle::floods(pg, redis.port, &mut lifecycle).await?;
    lifecycle.lines.extend(outbox.lines);
    lifecycle.failures.extend(outbox.failures);

    Ok(report::print(
        &shared,
        &faults,
        &verification,
        &hostile,
        &lifecycle,
        load_seconds,
        server_alive,
    ))
}
