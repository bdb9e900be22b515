//! The database's own limit: `pgbench` running the transaction a route sends,
//! built from the statement text the library itself sends.
//!
//! Prepared (`-M prepared`) and pipelined (`\startpipeline`) as the route does
//! it, as `onboarding_app` switching to `authenticated` with the same
//! `set_config` statement, so every RLS policy runs as it does for a request.
//! What pgbench forces to differ:
//! - the claims JSON is concatenated in SQL from the drawn user's number
//!   (pgbench has no string functions; the value is the one a request sends);
//! - the write script looks a drawn user's progress id up in `bench.users`
//!   once every [`WRITE_USER_DRAWS_EVERY`] transactions, because pgbench
//!   cannot read a result inside a pipeline, where the route learns the id:
//!   one indexed read per 50 round trips, which makes pgbench about 2% slower;
//! - pgbench prepares BEGIN, the `set_config` select and COMMIT too, where
//!   the route sends them unnamed (parsed each time), which makes pgbench a
//!   little faster.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail, ensure};
use onboarding::db::{BEGIN, COMMIT, SET_CONTEXT, Statement, outbox, progress};
use serde::Serialize;

use crate::database::{self, Flow};

/// A client of the write script keeps its user for this many transactions.
pub const WRITE_USER_DRAWS_EVERY: u32 = 10;

/// What the write script saves: the same answers as the PUT scenario's body,
/// already normalized, as a completed step.
pub const WRITE_ANSWERS: &str = r#"{"fullName": "Bench User", "jobRole": "engineering"}"#;

#[derive(Debug, Clone, Serialize)]
pub struct PgbenchResult {
    pub name: String,
    pub clients: usize,
    pub tps: f64,
    pub latency_avg_ms: f64,
    /// From pgbench's per-transaction log (`-l`).
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub transactions: i64,
    pub failed: i64,
}

impl PgbenchResult {
    pub fn print(&self, what: &str) {
        println!(
            "   {what:<16} {:>9.0} tps  p50 {:>6.2} ms  p99 {:>7.2} ms  {} transactions, {} failed",
            self.tps, self.p50_ms, self.p99_ms, self.transactions, self.failed
        );
    }
}

/// Substitutes pgbench variables for `$1..$n` of a statement the library sends.
fn bind(sql: &str, variables: &[&str]) -> String {
    let mut text = sql.to_string();
    for (index, variable) in variables.iter().enumerate().rev() {
        text = text.replace(&format!("${}", index + 1), variable);
    }
    assert!(!text.contains('$'), "unbound parameter in {text}");
    text
}

fn statement(stmt: &Statement, variables: &[&str]) -> String {
    bind(stmt.sql(), variables)
}

/// The claims a signed-in user's request publishes (`RlsContext::user` without
/// an organization), built in SQL from the drawn user number `:uid`.
fn claims() -> String {
    const MARK: u32 = 4_242_424_242;
    let example = onboarding::db::RlsContext::user(&database::user_id(MARK), None, None);
    let (head, tail) = example
        .claims()
        .split_once(&MARK.to_string())
        .expect("the claims name the user");
    let quote = |text: &str| format!("'{}'", text.replace('\'', "''"));
    format!("{} || :uid || {}", quote(head), quote(tail))
}

/// `GET /status` on a miss: one call that sets the caller's context and
/// reads the row with its answers (`Statement::each_in_one_call`), as the
/// route sends a read that finds no other queued: the call for several
/// reads, with one.
pub fn status_script() -> String {
    let call = progress::FETCH_OWN_WITH_ANSWERS
        .each_sql()
        .expect("the status read is sent as one call");
    let claims = format!("array[{}]", claims());
    format!(
        "\\set uid random(1, :b_users)\n{};\n",
        bind(call, &["array[:b_role]", &claims, "array[:b_flow]"]),
    )
}

/// `PUT /steps/{step}` without an idempotency key, with the statements
/// `wizard::save::write_answer` sends: BEGIN, the context and the locked
/// progress row in one pipeline; the row's answers; the replacement at the
/// version read and the progress update in one pipeline (the event of a
/// completed step joins it); COMMIT. The route sends the answers read in the
/// first pipeline, behind the lock; pgbench cannot keep a result (`\aset`)
/// inside a pipeline, so here it is a round trip of its own: four where the
/// route has three.
pub fn write_script() -> String {
    write_then("")
}

/// A UUIDv7 made in SQL (PostgreSQL 15 has no `uuidv7()`), standing in for
/// the `Uuid::now_v7()` the route sends: the milliseconds since the epoch
/// over the first 48 bits of a random UUID, version bits 0111.
const UUID_V7: &str = "encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid()) placing \
     substring(int8send(floor(extract(epoch from clock_timestamp()) * 1000)::bigint) from 3) \
     from 1 for 6), 52, 1), 53, 1), 'hex')::uuid";

/// The same write when it completes the step for the first time: the
/// `onboarding.step_completed` event goes into the outbox in the same
/// transaction, pipelined with the progress update (`wizard::save`).
pub fn write_with_event_script() -> String {
    write_then(&format!(
        "{};\n",
        statement(
            &outbox::ENQUEUE,
            &[UUID_V7, ":b_pid", ":b_event_type", ":b_event"],
        )
    ))
}

/// The write script with `with_update` (whole statements) pipelined with the
/// answer's call, as a save sends them: the row locked with its answers,
/// then the answer stored with the steps recorded.
fn write_then(with_update: &str) -> String {
    let context = bind(SET_CONTEXT, &[":b_role", &claims(), "'5000'"]);
    format!(
        "\\set k :k + 1\n\
         \\if :k % {WRITE_USER_DRAWS_EVERY} = 1\n\
         \\set uid random(1, :b_users)\n\
         select progress_id as b_pid from bench.users where n = :uid \\gset\n\
         \\endif\n\
         \\startpipeline\n\
         {BEGIN};\n\
         {context};\n\
         \\endpipeline\n\
         {} \\aset\n\
         \\startpipeline\n\
         {};\n\
         {with_update}\
         \\endpipeline\n\
         {COMMIT};\n",
        // One row per answer, ordered by step, so the last row (what \aset
        // keeps) is the profile answer, whose `version` the replacement
        // below must match.
        statement(&progress::FETCH_OWN_FOR_UPDATE_WITH_ANSWERS, &[":b_flow"]),
        statement(
            &progress::STORE_ANSWER_AND_RECORD_STEP,
            &[
                ":b_pid",
                ":b_step",
                ":b_answers",
                ":b_status",
                ":b_flow_version",
                ":version",
                ":b_completed",
                ":b_current"
            ],
        ),
    )
}

/// The body `outbox::step_completed` writes for the step the script saves.
fn event_body(flow: &Flow) -> String {
    serde_json::to_string(&onboarding::outbox::Envelope {
        event_type: onboarding::outbox::STEP_COMPLETED.to_string(),
        timestamp: chrono::Utc::now(),
        data: onboarding::outbox::StepCompletedData {
            user_id: String::new(),
            flow_id: flow.id.clone(),
            flow_version: flow.version,
            step: crate::STEP.to_string(),
        },
    })
    .expect("events serialize")
}

/// Runs a script for `seconds` at `clients` connections and parses the result.
pub fn run(
    name: &str,
    script: &str,
    flow: &Flow,
    users: u32,
    clients: usize,
    seconds: u64,
    out: &Path,
) -> anyhow::Result<PgbenchResult> {
    let file = out.join(format!("pgbench-{name}.sql"));
    std::fs::write(&file, script).context("Failed to write the pgbench script")?;
    let defines = [
        ("b_users", users.to_string()),
        ("b_role", "authenticated".to_string()),
        ("b_flow", flow.id.clone()),
        ("b_flow_version", flow.version.to_string()),
        ("b_step", crate::STEP.to_string()),
        ("b_answers", WRITE_ANSWERS.to_string()),
        ("b_status", "completed".to_string()),
        ("b_completed", format!("{{{}}}", crate::STEP)),
        ("b_current", "organization".to_string()),
        ("k", "0".to_string()),
        (
            "b_event_type",
            onboarding::outbox::STEP_COMPLETED.to_string(),
        ),
        ("b_event", event_body(flow)),
    ];
    let log_dir = out.join(format!("pgbench-{name}-log"));
    let _ = std::fs::remove_dir_all(&log_dir);
    std::fs::create_dir_all(&log_dir)?;
    let mut command = Command::new("pgbench");
    // The functions connect with `sslmode=disable`; pgbench's default
    // (`prefer`) would encrypt on a server with TLS on (Debian's default) and
    // charge both pgbench and PostgreSQL for it.
    command
        .env("PGSSLMODE", "disable")
        .args(["-n", "-M", "prepared", "-r", "-l"])
        .arg(format!("--log-prefix={}", log_dir.join("txn").display()))
        .args([
            "-h",
            database::HOST,
            "-p",
            database::PORT,
            "-U",
            "onboarding_app",
        ])
        .arg(format!("--client={clients}"))
        .arg(format!("--jobs={}", clients.min(2)))
        .arg(format!("--time={seconds}"))
        .arg("-f")
        .arg(&file);
    for (variable, value) in &defines {
        command.arg("-D").arg(format!("{variable}={value}"));
    }
    command.arg(database::NAME);
    let output = command.output().context("Failed to run pgbench")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    std::fs::write(
        out.join(format!("pgbench-{name}.log")),
        format!("{stdout}\n{stderr}"),
    )?;
    ensure!(
        output.status.success(),
        "pgbench {name} failed:\n{stdout}\n{stderr}"
    );
    let mut result = parse(name, clients, &stdout)?;
    let mut latencies = transaction_latencies(&log_dir)?;
    let _ = std::fs::remove_dir_all(&log_dir);
    latencies.sort_unstable();
    result.p50_ms = percentile(&latencies, 50.0);
    result.p99_ms = percentile(&latencies, 99.0);
    Ok(result)
}

/// The latency (µs, third field) of every transaction in pgbench's logs.
fn transaction_latencies(dir: &Path) -> anyhow::Result<Vec<u64>> {
    let mut latencies = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let text = std::fs::read_to_string(entry?.path())?;
        latencies.extend(
            text.lines()
                .filter_map(|line| line.split_whitespace().nth(2)?.parse::<u64>().ok()),
        );
    }
    Ok(latencies)
}

/// The `p`th percentile of sorted microseconds, in milliseconds.
fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1000.0
}

fn parse(name: &str, clients: usize, output: &str) -> anyhow::Result<PgbenchResult> {
    let number = |prefix: &str| -> anyhow::Result<f64> {
        let line = output
            .lines()
            .find(|line| line.starts_with(prefix))
            .with_context(|| format!("pgbench printed no `{prefix}`"))?;
        let value = line[prefix.len()..]
            .split_whitespace()
            .next()
            .context("no value")?;
        value
            .parse()
            .with_context(|| format!("`{value}` after `{prefix}` is not a number"))
    };
    let result = PgbenchResult {
        name: name.to_string(),
        clients,
        tps: number("tps = ")?,
        latency_avg_ms: number("latency average = ")?,
        p50_ms: f64::NAN,
        p99_ms: f64::NAN,
        transactions: number("number of transactions actually processed: ")? as i64,
        failed: number("number of failed transactions: ").unwrap_or(0.0) as i64,
    };
    if result.transactions == 0 {
        bail!("pgbench {name} processed no transaction");
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_script_is_the_call_the_route_sends_with_the_drawn_users_claims() {
        let script = status_script();
        let call = progress::FETCH_OWN_WITH_ANSWERS.each_sql().unwrap();
        let (before_params, _) = call.split_once("($1").unwrap();
        assert!(script.contains(before_params), "{script}");
        assert!(
            script.contains(&format!(
                "(array[:b_role], array[{}], array[:b_flow])",
                claims()
            )),
            "{script}"
        );
        assert!(!script.contains('$'), "{script}");
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let sorted: Vec<u64> = (1..=100).map(|n| n * 1000).collect();
        assert_eq!(percentile(&sorted, 50.0), 50.0);
        assert_eq!(percentile(&sorted, 99.0), 99.0);
        assert_eq!(percentile(&[7000], 99.0), 7.0);
    }

    #[test]
    fn parameters_are_bound_from_the_highest_number_down() {
        assert_eq!(bind("a = $1 and b = $10", &["x"; 10]), "a = x and b = x");
        assert_eq!(bind("$2, $1", &[":a", ":b"]), ":b, :a");
    }

    #[test]
    fn the_event_script_is_the_write_script_with_the_outbox_insert_beside_the_update() {
        let write = write_script();
        let with_event = write_with_event_script();
        let insert = with_event
            .lines()
            .position(|line| line.starts_with("insert into onboarding.outbox"))
            .expect("the event script inserts into the outbox");
        let lines: Vec<&str> = with_event.lines().collect();
        let end = insert
            + lines[insert..]
                .iter()
                .position(|line| line.ends_with(';'))
                .unwrap();
        assert!(lines[insert..=end].join("\n").contains(":b_event"));
        assert!(lines[insert - 1].ends_with(';'), "after the update");
        assert_eq!(lines[end + 1..], ["\\endpipeline", &format!("{COMMIT};")]);
        let without: Vec<&str> = lines[..insert]
            .iter()
            .chain(&lines[end + 1..])
            .copied()
            .collect();
        assert_eq!(without, write.lines().collect::<Vec<_>>());
    }

    #[test]
    fn the_claims_expression_builds_the_claims_a_request_publishes() {
        let expression = claims();
        let built = expression
            .replace("' || :uid || '", "42")
            .trim_matches('\'')
            .replace("''", "'");
        let expected = onboarding::db::RlsContext::user("bench_42", None, None);
        assert_eq!(built, expected.claims());
    }
}
