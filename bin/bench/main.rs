//! The benchmark: `scripts/bench` (README: Benchmark).
//!
//! Against the release builds of the function binaries, the local PostgreSQL
//! and Redis, and a dedicated database seeded with many users, it measures in
//! one run, side by side (only same-run ratios hold on a noisy machine):
//!
//! 1. `pgbench` running exactly the transaction a route sends (the statement
//!    text comes from the library), as `onboarding_app` through the same RLS
//!    path, pipelined and prepared, at the same concurrency as the routes;
//! 2. the routes under `wrk` (random users, valid tokens): `status` (cache
//!    miss and hit), `GET` and `PUT steps/{step}`, `events`;
//! 3. the status route where deployments run it: through PgBouncer in
//!    transaction mode, with unnamed statements on a direct connection, and
//!    with 1 ms and 5 ms added to every round trip to PostgreSQL;
//! 4. CPU time per request of the function and of PostgreSQL, beside
//!    pgbench's per transaction, and pgbench's status at 1 to 64 clients;
//!    and the same load on Vercel's runtime answering a constant, the floor
//!    under any function's CPU (`floor`);
//! 5. the cold start of the `status` binary to its first 200;
//! 6. each function binary's size and resident memory after 10,000 requests.
//!
//! It prints a table and writes `target/bench/summary.json`, with every
//! figure of the targets tables (issues 7, 15 and 16), its target and
//! whether it was met.

mod cpu;
mod database;
mod delay;
mod floor;
mod functions;
mod network;
mod outbox;
mod pgbench;
mod poolers;
mod report;
mod wrk;

#[allow(dead_code)] // the reliability suite's clusters; the benchmark starts only PgBouncer
#[path = "../reliability/cluster.rs"]
mod cluster;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};

use crate::cpu::{CpuMeter, CpuPerRequest};
use crate::functions::{Call, Environment, Function, FunctionEnv};
use crate::report::{LoadAverage, Summary};

/// The HMAC secret the function binaries accept and the tokens are signed with.
const JWT_SECRET: &str = "bench-jwt-secret-0123456789abcdef0123456789";
const SESSION_SECRET: &str = "bench-session-secret-0123456789abcdef012345";
/// The step the step scenarios read and write; every seeded user has an answer to it.
const STEP: &str = "profile";
/// The status route: the status scenarios and their warm-up calls.
const STATUS_PATH: &str = "/api/onboarding/status";
/// Events per `POST /events` batch.
const EVENTS_PER_BATCH: u64 = 3;
/// pgbench's status transaction at each of these client counts, to find
/// where PostgreSQL alone peaks on this machine.
const SWEEP_CLIENTS: [usize; 7] = [1, 2, 4, 8, 16, 32, 64];
/// Pairs of the write with and without its outbox event.
const OUTBOX_PAIRS: usize = 3;

struct Args {
    seconds: u64,
    connections: usize,
    users: u32,
    cold_starts: usize,
    rss_requests: usize,
    sweep_seconds: u64,
    /// Connections of the runs across a delayed network: as many as one
    /// instance's pool holds, so requests wait for the network, not for a
    /// connection.
    network_connections: usize,
    release_dir: PathBuf,
    out: PathBuf,
    label: String,
    fn_env: Vec<(String, String)>,
    /// `--only status`: the status miss section alone, for comparing a
    /// change to the function in a minute; nothing else runs, no summary.
    only_status: bool,
    /// `--only network`: the status miss at the network connections, on
    /// loopback and across the added round trips, alone; no summary.
    only_network: bool,
    /// `--only pooled`: the status miss direct, with unnamed statements and
    /// through PgBouncer, alone; no summary.
    only_pooled: bool,
    /// `--only outbox`: the write with and without its outbox event, in
    /// pairs, alone; no summary.
    only_outbox: bool,
}

impl Args {
    fn parse() -> anyhow::Result<Self> {
        let mut args = Args {
            seconds: 10,
            connections: 64,
            users: 100_000,
            cold_starts: 20,
            rss_requests: 10_000,
            sweep_seconds: 5,
            network_connections: 4,
            release_dir: PathBuf::from("target/release"),
            out: PathBuf::from("target/bench"),
            label: String::new(),
            fn_env: Vec::new(),
            only_status: false,
            only_network: false,
            only_pooled: false,
            only_outbox: false,
        };
        let mut it = std::env::args().skip(1);
        while let Some(arg) = it.next() {
            let mut value = || it.next().with_context(|| format!("{arg} needs a value"));
            match arg.as_str() {
                "--seconds" => args.seconds = value()?.parse().context("--seconds")?,
                "--connections" => args.connections = value()?.parse().context("--connections")?,
                "--users" => args.users = value()?.parse().context("--users")?,
                "--cold-starts" => args.cold_starts = value()?.parse().context("--cold-starts")?,
                "--rss-requests" => {
                    args.rss_requests = value()?.parse().context("--rss-requests")?
                }
                "--sweep-seconds" => {
                    args.sweep_seconds = value()?.parse().context("--sweep-seconds")?
                }
                "--network-connections" => {
                    args.network_connections = value()?.parse().context("--network-connections")?
                }
                "--release-dir" => args.release_dir = PathBuf::from(value()?),
                "--out" => args.out = PathBuf::from(value()?),
                "--label" => args.label = value()?,
                "--fn-env" => {
                    let pair = value()?;
                    let (key, val) = pair.split_once('=').context("--fn-env takes KEY=VALUE")?;
                    args.fn_env.push((key.to_string(), val.to_string()));
                }
                "--only" => match value()?.as_str() {
                    "status" => args.only_status = true,
                    "network" => args.only_network = true,
                    "pooled" => args.only_pooled = true,
                    "outbox" => args.only_outbox = true,
                    section => bail!(
                        "--only takes `status`, `network`, `pooled` or `outbox`, not {section}"
                    ),
                },
                "-h" | "--help" => {
                    println!(
                        "usage: bench [--seconds N (10)] [--connections N (64)] [--users N (100000)]\n\
                         \x20            [--cold-starts N (20)] [--rss-requests N (10000)] [--label TEXT]\n\
                         \x20            [--sweep-seconds N (5)] [--network-connections N (4)]\n\
                         \x20            [--fn-env KEY=VALUE ...] [--release-dir DIR] [--out DIR]\n\
                         \x20            [--only status|network|pooled|outbox]"
                    );
                    std::process::exit(0);
                }
                other => bail!("unknown argument {other}; see --help"),
            }
        }
        ensure!(args.seconds >= 1, "--seconds must be at least 1");
        ensure!(args.connections >= 1, "--connections must be at least 1");
        ensure!(
            args.network_connections >= 2 && args.sweep_seconds >= 1,
            "--network-connections must be at least 2 (wrk's threads), --sweep-seconds at least 1"
        );
        ensure!(
            args.users as usize > args.rss_requests + args.cold_starts,
            "--users must exceed --rss-requests plus --cold-starts"
        );
        Ok(args)
    }
}

fn main() {
    if std::env::var_os(floor::SERVE).is_some() {
        if let Err(error) = floor::serve() {
            eprintln!("bench (runtime floor): {error}");
            std::process::exit(2);
        }
        return;
    }
    let outcome = tokio::runtime::Runtime::new()
        .context("Failed to start the benchmark's runtime")
        .and_then(|runtime| runtime.block_on(run()));
    if let Err(error) = outcome {
        eprintln!("bench: {error:#}");
        std::process::exit(2);
    }
}

async fn run() -> anyhow::Result<()> {
    let args = Args::parse()?;
    for tool in ["pgbench", "wrk"] {
        ensure!(
            on_path(tool),
            "`{tool}` is not on PATH (scripts/bench installs it)"
        );
    }
    // Function logs of this run only (they are counted at the end).
    let _ = std::fs::remove_dir_all(args.out.join("logs"));
    std::fs::create_dir_all(args.out.join("logs")).context("Failed to create the output dir")?;
    let binaries = functions::api_binaries(Path::new("Cargo.toml"))?;
    for (name, _) in &binaries {
        if args.only_outbox
            || (args.only_status || args.only_network || args.only_pooled)
                && name != "onboarding-status"
        {
            continue;
        }
        let path = args.release_dir.join(name);
        ensure!(
            path.exists(),
            "{} is missing: build the release binaries first (scripts/bench does)",
            path.display()
        );
    }
    let started_at = chrono::Utc::now();
    let cpu = CpuMeter::new()?;
    let mut load = LoadAverage::default();
    load.sample("start")?;

    println!("== database {} ({} users)", database::NAME, args.users);
    let flow = database::Flow::from_file(Path::new(functions::EDGE_CONFIG_FILE))?;
    let db = database::prepare(args.users, &flow).await?;

    println!("== tokens");
    let tokens = Tokens::mint(&args)?;
    let redis_prefix = format!("onb-bench-{}", std::process::id());
    database::clean_redis(functions::REDIS_URL, "onb-bench-*").await?;
    let env = FunctionEnv {
        database_url: database::app_url(),
        redis_prefix: redis_prefix.clone(),
        jwt_secret: JWT_SECRET.into(),
        session_secret: SESSION_SECRET.into(),
        extra: args.fn_env.clone(),
        logs: args.out.join("logs"),
    };
    let bin = |name: &str| args.release_dir.join(name);
    let runs = RouteRuns {
        args: &args,
        tokens: &tokens,
        cpu: &cpu,
    };
    // The routes' own transactions under pgbench, at the same clients and
    // duration as wrk, for the figures to be compared.
    let pgbench_run = |name: &str, script: &str| {
        pgbench::run(
            name,
            script,
            &flow,
            args.users,
            args.connections,
            args.seconds,
            &args.out,
        )
    };
    if args.only_network {
        network::across_network(&runs, &env, &mut load).await?;
        return Ok(());
    }
    if args.only_outbox {
        let (pairs, (acknowledged, stored)) =
            outbox::pairs(&db, OUTBOX_PAIRS, &pgbench_run).await?;
        ensure!(
            acknowledged == stored,
            "{acknowledged} writes with an event acknowledged, {stored} events stored"
        );
        let costs = outbox::costs(&pairs.beside_event, &pairs.with_event);
        println!(
            "time a step_completed event adds to a save: {:.2}, the median of {}",
            report::median(costs.clone()),
            outbox::listed(&costs)
        );
        return Ok(());
    }
    if args.only_pooled {
        let status_miss = async |name: &str, env: &FunctionEnv| {
            runs.status_miss(name, env, args.connections).await
        };
        let (direct, direct_cpu) = status_miss("status-miss", &env).await?;
        direct.print("direct");
        let pooled = poolers::behind_poolers("status", &env, status_miss).await?;
        pooled.print_beside("status", &direct, &direct_cpu);
        let step_put =
            async |name: &str, env: &FunctionEnv| runs.step_put(name, env, args.connections).await;
        let (direct, direct_cpu) = step_put("step-put", &env).await?;
        direct.print("PUT direct");
        let pooled = poolers::behind_poolers("step-put", &env, step_put).await?;
        pooled.print_beside("PUT", &direct, &direct_cpu);
        return Ok(());
    }
    let mut summary = Summary::new(
        &args.label,
        started_at,
        args.connections,
        args.seconds,
        args.users,
    );
    summary.function_env = args.fn_env.clone();
    let seconds = args.seconds;
    let clients = args.connections;

    // A route under wrk at the benchmark's connections: printed as `label`,
    // its CPU per request recorded under the scenario's name.
    let under_load =
        |summary: &mut Summary, function: &Function, scenario: wrk::Scenario, label: &str| {
            let (run, per_request) = measured(&cpu, function, || {
                wrk::run(&scenario, &function.address, seconds, clients, &args.out)
            })?;
            run.print(label);
            summary.cpu(&scenario.name.replace('-', "_"), per_request);
            anyhow::Ok((run, per_request))
        };
    // The status route under load as `case` (miss, hit), its memory read
    // under that load, then stopped.
    let status_under_load =
        |summary: &mut Summary, function: Function, case: &str, tokens: &Path| {
            let scenario = wrk::Scenario::get(&format!("status-{case}"), STATUS_PATH, tokens);
            let measured = under_load(summary, &function, scenario, &format!("status {case}"))?;
            summary.memory_under_load(&format!("onboarding-status ({case})"), function.memory()?);
            function.stop();
            anyhow::Ok(measured)
        };

    // ---- status: the database's limit, then the route on a cache miss ------------
    println!("== status: pgbench, route (cache miss), pgbench");
    load.sample("status")?;
    let status_script = pgbench::status_script();
    // pgbench_run, with PostgreSQL's CPU per transaction.
    let pgbench_measured = |name: &str, script: &str| {
        let before = cpu.snapshot(None)?;
        let run = pgbench_run(name, script)?;
        let per_transaction = cpu
            .snapshot(None)?
            .per_request_since(&before, run.transactions as u64);
        anyhow::Ok((run, per_transaction))
    };
    let (pg_status_a, pg_status_cpu) = pgbench_measured("status-a", &status_script)?;
    pg_status_a.print("pgbench status");
    summary.cpu("pgbench_status", pg_status_cpu);
    // No Redis: every request reads PostgreSQL (the cache is disabled, not just cold).
    let miss = Function::start_warmed(
        "status-miss",
        &bin("onboarding-status"),
        &env.without_redis(),
        &status_calls(&tokens.all, 1000),
        clients,
    )
    .await?;
    let (miss_run, miss_cpu) = status_under_load(&mut summary, miss, "miss", &tokens.all_file)?;
    let pg_status_b = pgbench_run("status-b", &status_script)?;
    pg_status_b.print("pgbench status");
    // The same requests to Vercel's runtime answering a constant: what the
    // miss costs the function below the library.
    let floor = Function::start(
        "runtime-floor",
        &std::env::current_exe().context("Failed to find the benchmark's executable")?,
        &floor::FloorEnv { logs: &env.logs },
    )?;
    let (floor_run, floor_cpu) = under_load(
        &mut summary,
        &floor,
        wrk::Scenario::get("runtime-floor", STATUS_PATH, &tokens.all_file),
        "runtime floor",
    )?;
    floor.stop();
    if args.only_status {
        let pgbench_tps = (pg_status_a.tps + pg_status_b.tps) / 2.0;
        let function_us = miss_cpu.function_us.unwrap_or_default();
        println!(
            "status miss ÷ pgbench (same clients) {:.2}; function CPU {function_us:.1} µs ÷ PostgreSQL's {:.1} µs = {:.2} (the runtime alone {:.1} µs); PostgreSQL ÷ pgbench's {:.1} µs = {:.2}\nfunction per request: {}; the runtime alone: {}",
            miss_run.rps / pgbench_tps,
            miss_cpu.postgres_us,
            function_us / miss_cpu.postgres_us,
            floor_cpu.function_us.unwrap_or_default(),
            pg_status_cpu.postgres_us,
            miss_cpu.postgres_us / pg_status_cpu.postgres_us,
            miss_cpu.function_split_described(),
            floor_cpu.function_split_described(),
        );
        return Ok(());
    }

    // ---- status: cache hit --------------------------------------------------------
    println!("== status: route (cache hit)");
    load.sample("status-hit")?;
    // The 10,000 requests that fill the cache are the ones RSS is read after.
    let hit = Function::start_warmed(
        "status-hit",
        &bin("onboarding-status"),
        &env,
        &status_calls(&tokens.warm, tokens.warm.len()),
        clients,
    )
    .await?;
    summary.memory_after_requests("onboarding-status", args.rss_requests, hit.memory()?);
    let (hit_run, _) = status_under_load(&mut summary, hit, "hit", &tokens.warm_file)?;

    // ---- steps: GET, then the write transaction and PUT -----------------------------
    println!("== steps: route GET; pgbench write, route PUT, pgbench write");
    load.sample("steps")?;
    let step_path = format!("/api/onboarding/steps/{STEP}");
    let gets: Vec<Call> = tokens
        .all
        .iter()
        .take(args.rss_requests)
        .map(|token| Call::get(&step_path, token))
        .collect();
    let step =
        Function::start_warmed("step", &bin("onboarding-step"), &env, &gets, clients).await?;
    summary.memory_after_requests("onboarding-step", args.rss_requests, step.memory()?);
    let (get_run, _) = under_load(
        &mut summary,
        &step,
        wrk::Scenario::get("step-get", &step_path, &tokens.all_file),
        "GET step",
    )?;

    let write_script = pgbench::write_script();
    let before = db.versions_of(STEP).await?;
    let (pg_write_a, pg_write_cpu) = pgbench_measured("write-a", &write_script)?;
    pg_write_a.print("pgbench write");
    summary.cpu("pgbench_write", pg_write_cpu);
    let after_a = db.versions_of(STEP).await?;
    summary.check_writes(
        "pgbench write (a)",
        pg_write_a.transactions,
        after_a - before,
    );

    let (put_run, _) = under_load(
        &mut summary,
        &step,
        wrk::Scenario::put_step(&step_path, &tokens.all_file),
        "PUT step",
    )?;
    let after_put = db.versions_of(STEP).await?;
    summary.check_writes("PUT step", put_run.succeeded(), after_put - after_a);
    summary.memory_under_load("onboarding-step", step.memory()?);
    step.stop();

    let pg_write_b = pgbench_run("write-b", &write_script)?;
    pg_write_b.print("pgbench write");
    let after_b = db.versions_of(STEP).await?;
    summary.check_writes(
        "pgbench write (b)",
        pg_write_b.transactions,
        after_b - after_put,
    );

    // ---- the outbox: what a save that completes a step adds -------------------------
    println!("== outbox: pgbench write with its step_completed event, alternating with writes");
    load.sample("outbox")?;
    let (outbox_pairs, (acknowledged, stored)) =
        outbox::pairs(&db, OUTBOX_PAIRS, &pgbench_run).await?;
    summary.check_writes("pgbench write + outbox event", acknowledged, stored);

    // ---- status where deployments run it -------------------------------------------
    println!("== status (cache miss): pgbench at 1 to 64 clients");
    load.sample("sweep")?;
    let mut sweep = Vec::new();
    for sweep_clients in SWEEP_CLIENTS {
        let run = pgbench::run(
            &format!("status-c{sweep_clients}"),
            &status_script,
            &flow,
            args.users,
            sweep_clients,
            args.sweep_seconds,
            &args.out,
        )?;
        run.print(&format!("{sweep_clients} clients"));
        sweep.push(run);
    }

    println!("== status (cache miss): unnamed statements, through PgBouncer");
    load.sample("pooled")?;
    let pooled = poolers::behind_poolers("status", &env, async |name: &str, env: &FunctionEnv| {
        runs.status_miss(name, env, clients).await
    })
    .await?;
    let (unnamed_run, unnamed_cpu) = pooled.unnamed;
    summary.cpu("status_miss_unnamed", unnamed_cpu);
    let (pooled_run, pooled_cpu) = pooled.pgbouncer;
    summary.cpu("status_miss_pgbouncer", pooled_cpu);
    let (prepared_run, prepared_cpu) = pooled.pgbouncer_prepared;
    summary.cpu("status_miss_pgbouncer_prepared", prepared_cpu);

    let (near_run, far_runs, put_runs) = network::across_network(&runs, &env, &mut load).await?;

    // ---- events ------------------------------------------------------------------
    println!("== events: route POST");
    load.sample("events")?;
    let events_before = db.events().await?;
    let posts: Vec<Call> = tokens
        .all
        .iter()
        .take(args.rss_requests)
        .map(|token| Call::post_events(token))
        .collect();
    let events =
        Function::start_warmed("events", &bin("onboarding-events"), &env, &posts, clients).await?;
    summary.memory_after_requests("onboarding-events", args.rss_requests, events.memory()?);
    let events_run = wrk::run(
        &wrk::Scenario::post_events(&tokens.all_file),
        &events.address,
        seconds,
        clients,
        &args.out,
    )?;
    events_run.print("POST events");
    let accepted = (events_run.succeeded() + args.rss_requests as u64) * EVENTS_PER_BATCH;
    let stored = db
        .wait_for_events(events_before + accepted as i64, Duration::from_secs(60))
        .await?
        - events_before;
    summary.memory_under_load("onboarding-events", events.memory()?);
    events.stop();
    summary.events_stored(accepted, stored as u64);

    // ---- memory of the other read-only functions ------------------------------------
    println!(
        "== memory after {} requests: flow, health",
        args.rss_requests
    );
    load.sample("memory")?;
    for (name, path) in [
        ("onboarding-flow", "/api/onboarding/flow"),
        ("health", "/api/health"),
    ] {
        let calls: Vec<Call> = tokens
            .all
            .iter()
            .take(args.rss_requests)
            .map(|token| Call::get(path, token))
            .collect();
        let function = Function::start_warmed(name, &bin(name), &env, &calls, clients).await?;
        summary.memory_after_requests(name, args.rss_requests, function.memory()?);
        function.stop();
    }

    // ---- cold start ----------------------------------------------------------------
    println!(
        "== cold start of onboarding-status, {} times",
        args.cold_starts
    );
    load.sample("cold-start")?;
    let mut starts = Vec::new();
    for token in &tokens.cold {
        starts.push(functions::cold_start(
            &bin("onboarding-status"),
            &env,
            token,
        )?);
        // Let the killed process's connections close before the next start.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // ---- sizes ---------------------------------------------------------------------
    let sizes = binaries
        .iter()
        .map(|(name, source)| functions::size(name, source, &bin(name)))
        .collect::<anyhow::Result<Vec<_>>>()?;

    database::clean_redis(functions::REDIS_URL, &format!("{redis_prefix}*")).await?;
    load.sample("end")?;

    summary.pgbench_status = vec![pg_status_a, pg_status_b];
    summary.pgbench_write = vec![pg_write_a, pg_write_b];
    summary.pgbench_write_beside_event = outbox_pairs.beside_event;
    summary.pgbench_write_event = outbox_pairs.with_event;
    summary.pgbench_status_sweep = sweep;
    summary.routes = vec![
        ("status_miss", miss_run),
        ("runtime_floor", floor_run),
        ("status_hit", hit_run),
        ("step_get", get_run),
        ("step_put", put_run),
        ("events", events_run),
        ("status_miss_unnamed", unnamed_run),
        ("status_miss_pgbouncer", pooled_run),
        ("status_miss_pgbouncer_prepared", prepared_run),
        ("status_miss_near", near_run),
    ];
    summary.routes_across_network = far_runs;
    summary.put_across_network = put_runs;
    summary.cold_starts = starts;
    summary.binaries = sizes;
    summary.load = load;
    summary.log_lines = functions::count_log_levels(&args.out.join("logs"))?;
    summary.finish();
    summary.print();
    let path = args.out.join("summary.json");
    std::fs::write(&path, serde_json::to_string_pretty(&summary.to_json())?)
        .with_context(|| format!("Failed to write {}", path.display()))?;
    println!("wrote {}", path.display());
    Ok(())
}

/// Runs `load` against a running function and measures the CPU it and
/// PostgreSQL spent per request.
fn measured(
    cpu: &CpuMeter,
    function: &Function,
    load: impl FnOnce() -> anyhow::Result<wrk::WrkResult>,
) -> anyhow::Result<(wrk::WrkResult, CpuPerRequest)> {
    let before = cpu.snapshot(Some(function.pid()))?;
    let run = load()?;
    let after = cpu.snapshot(Some(function.pid()))?;
    let per_request = after.per_request_since(&before, run.requests);
    Ok((run, per_request))
}

/// What each route run started from a phase needs of the harness: the
/// arguments (where the release binaries are, how long to run), the tokens
/// and the CPU meter.
pub struct RouteRuns<'a> {
    args: &'a Args,
    tokens: &'a Tokens,
    cpu: &'a CpuMeter,
}

impl RouteRuns<'_> {
    /// `GET /status` on a cache miss (no Redis) with `env`'s database URL:
    /// the function started, its pool warmed, then `connections` under wrk.
    pub async fn status_miss(
        &self,
        name: &str,
        env: &FunctionEnv,
        connections: usize,
    ) -> anyhow::Result<(wrk::WrkResult, CpuPerRequest)> {
        let env: &dyn Environment = &env.without_redis();
        let calls = status_calls(&self.tokens.all, 1000);
        let binary = self.args.release_dir.join("onboarding-status");
        let function = Function::start_warmed(name, &binary, env, &calls, connections).await?;
        let scenario = wrk::Scenario::get(name, STATUS_PATH, &self.tokens.all_file);
        self.measured_then_stopped(function, &scenario, connections)
    }

    /// `PUT /steps/{step}` (`If-Match: *`) with `env`'s database URL: the
    /// function started, then `connections` under wrk.
    pub async fn step_put(
        &self,
        name: &str,
        env: &FunctionEnv,
        connections: usize,
    ) -> anyhow::Result<(wrk::WrkResult, CpuPerRequest)> {
        let binary = self.args.release_dir.join("onboarding-step");
        let function = Function::start(name, &binary, env)?;
        let path = format!("/api/onboarding/steps/{STEP}");
        let mut scenario = wrk::Scenario::put_step(&path, &self.tokens.all_file);
        scenario.name = name.to_string();
        self.measured_then_stopped(function, &scenario, connections)
    }

    /// The connections of the runs across a network: one instance's pool.
    pub fn network_connections(&self) -> usize {
        self.args.network_connections
    }

    /// `scenario` against `function` at `connections` for the run's seconds,
    /// with the CPU it cost; the function is stopped after it.
    fn measured_then_stopped(
        &self,
        function: Function,
        scenario: &wrk::Scenario,
        connections: usize,
    ) -> anyhow::Result<(wrk::WrkResult, CpuPerRequest)> {
        let args = self.args;
        let outcome = measured(self.cpu, &function, || {
            wrk::run(
                scenario,
                &function.address,
                args.seconds,
                connections,
                &args.out,
            )
        });
        function.stop();
        outcome
    }
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
}

fn status_calls(tokens: &[String], count: usize) -> Vec<Call> {
    tokens
        .iter()
        .cycle()
        .take(count)
        .map(|token| Call::get(STATUS_PATH, token))
        .collect()
}

/// Valid tokens for the seeded users: every user (random picks), the users
/// whose status the cache holds (hits), and users nobody asked for (cold starts).
struct Tokens {
    all: Vec<String>,
    all_file: PathBuf,
    warm: Vec<String>,
    warm_file: PathBuf,
    cold: Vec<String>,
}

impl Tokens {
    fn mint(args: &Args) -> anyhow::Result<Self> {
        let started = Instant::now();
        let now = chrono::Utc::now().timestamp();
        let all: Vec<String> = (1..=args.users)
            .map(|n| {
                let claims = serde_json::json!({
                    "sub": database::user_id(n),
                    "iat": now,
                    "exp": now + 4 * 3600,
                });
                onboarding::auth::mint_dev_token(JWT_SECRET.as_bytes(), &claims)
            })
            .collect();
        let warm = all[..args.rss_requests].to_vec();
        let cold = all[all.len() - args.cold_starts..].to_vec();
        let all_file = args.out.join("tokens-all.txt");
        let warm_file = args.out.join("tokens-warm.txt");
        std::fs::write(&all_file, all.join("\n") + "\n").context("Failed to write tokens")?;
        std::fs::write(&warm_file, warm.join("\n") + "\n").context("Failed to write tokens")?;
        println!(
            "   {} tokens in {:.1} s ({} warm, {} for cold starts)",
            all.len(),
            started.elapsed().as_secs_f64(),
            warm.len(),
            cold.len()
        );
        Ok(Self {
            all,
            all_file,
            warm,
            warm_file,
            cold,
        })
    }
}
