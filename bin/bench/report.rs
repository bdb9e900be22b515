//! The figures of the benchmark's targets (issues 7, 15 and 16), printed and
//! written to `summary.json` under stable keys, each with its target and
//! whether it was met.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::cpu::CpuPerRequest;
use crate::functions::{BinarySize, ColdStart, Memory};
use crate::outbox;
use crate::pgbench::PgbenchResult;
use crate::wrk::WrkResult;

/// 10^6 bytes: sizes and memory are reported in decimal megabytes.
const MB: f64 = 1_000_000.0;

/// `/proc/loadavg` at the start of each phase: the machine is shared, and
/// only ratios measured in the same run mean anything.
#[derive(Default)]
pub struct LoadAverage {
    samples: Vec<(String, [f64; 3])>,
}

impl LoadAverage {
    pub fn sample(&mut self, phase: &str) -> anyhow::Result<()> {
        let text = std::fs::read_to_string("/proc/loadavg")?;
        let mut fields = text
            .split_whitespace()
            .map(|field| field.parse().unwrap_or(0.0));
        let mut values = [0.0; 3];
        for value in &mut values {
            *value = fields.next().unwrap_or(0.0);
        }
        self.samples.push((phase.to_string(), values));
        Ok(())
    }

    fn to_json(&self) -> Value {
        self.samples
            .iter()
            .map(|(phase, [one, five, fifteen])| {
                json!({ "phase": phase, "1m": one, "5m": five, "15m": fifteen })
            })
            .collect()
    }

    fn one_minute(&self) -> Vec<f64> {
        self.samples.iter().map(|(_, values)| values[0]).collect()
    }
}

/// One figure of the targets table.
struct Figure {
    key: &'static str,
    what: &'static str,
    value: f64,
    unit: &'static str,
    at_least: bool,
    threshold: f64,
    /// What the figure compares with, measured in the same run.
    context: String,
}

impl Figure {
    fn met(&self) -> bool {
        if self.at_least {
            self.value >= self.threshold
        } else {
            self.value <= self.threshold
        }
    }

    fn target(&self) -> String {
        let op = if self.at_least { "≥" } else { "≤" };
        format!("{op} {}{}", self.threshold, self.unit)
    }
}

pub struct Summary {
    label: String,
    started_at: DateTime<Utc>,
    connections: usize,
    seconds: u64,
    users: u32,
    pub function_env: Vec<(String, String)>,
    pub pgbench_status: Vec<PgbenchResult>,
    pub pgbench_write: Vec<PgbenchResult>,
    /// The plain write run beside each run with the outbox event, pair by pair.
    pub pgbench_write_beside_event: Vec<PgbenchResult>,
    /// The write with its outbox event, one run per pair.
    pub pgbench_write_event: Vec<PgbenchResult>,
    /// pgbench's status transaction at each client count.
    pub pgbench_status_sweep: Vec<PgbenchResult>,
    pub routes: Vec<(&'static str, WrkResult)>,
    /// `status_miss` with this many ms added to every round trip to PostgreSQL.
    pub routes_across_network: Vec<(u64, WrkResult)>,
    /// `step_put` at the network connections, on loopback (0) and with ms added.
    pub put_across_network: Vec<(u64, WrkResult)>,
    cpu: Vec<(String, CpuPerRequest)>,
    pub cold_starts: Vec<ColdStart>,
    pub binaries: Vec<BinarySize>,
    pub load: LoadAverage,
    pub log_lines: Value,
    memory_after: Vec<(String, usize, Memory)>,
    memory_under_load: Vec<(String, Memory)>,
    write_checks: Vec<(String, i64, i64)>,
    events: Option<(u64, u64)>,
    figures: Vec<Figure>,
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let values: Vec<f64> = values.collect();
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

impl Summary {
    pub fn new(
        label: &str,
        started_at: DateTime<Utc>,
        connections: usize,
        seconds: u64,
        users: u32,
    ) -> Self {
        Self {
            label: label.to_string(),
            started_at,
            connections,
            seconds,
            users,
            function_env: Vec::new(),
            pgbench_status: Vec::new(),
            pgbench_write: Vec::new(),
            pgbench_write_beside_event: Vec::new(),
            pgbench_write_event: Vec::new(),
            pgbench_status_sweep: Vec::new(),
            routes: Vec::new(),
            routes_across_network: Vec::new(),
            put_across_network: Vec::new(),
            cpu: Vec::new(),
            cold_starts: Vec::new(),
            binaries: Vec::new(),
            load: LoadAverage::default(),
            log_lines: Value::Null,
            memory_after: Vec::new(),
            memory_under_load: Vec::new(),
            write_checks: Vec::new(),
            events: None,
            figures: Vec::new(),
        }
    }

    pub fn memory_after_requests(&mut self, name: &str, requests: usize, memory: Memory) {
        self.memory_after.push((name.to_string(), requests, memory));
    }

    pub fn memory_under_load(&mut self, name: &str, memory: Memory) {
        self.memory_under_load.push((name.to_string(), memory));
    }

    /// Records how many writes were acknowledged and how many the database shows.
    pub fn check_writes(&mut self, what: &str, acknowledged: impl TryInto<i64>, stored: i64) {
        let acknowledged = acknowledged.try_into().unwrap_or(i64::MAX);
        self.write_checks
            .push((what.to_string(), acknowledged, stored));
    }

    /// CPU per request of one run (`status_miss`, `pgbench_status` …).
    pub fn cpu(&mut self, run: &str, per_request: CpuPerRequest) {
        self.cpu.push((run.to_string(), per_request));
    }

    fn cpu_of(&self, run: &str) -> CpuPerRequest {
        self.cpu
            .iter()
            .find(|(name, _)| name == run)
            .map_or(CpuPerRequest::default(), |(_, per_request)| *per_request)
    }

    pub fn events_stored(&mut self, accepted: u64, stored: u64) {
        self.events = Some((accepted, stored));
    }

    fn route(&self, name: &str) -> Option<&WrkResult> {
        self.routes
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, result)| result)
    }

    fn rps(&self, name: &str) -> f64 {
        self.route(name).map_or(f64::NAN, |result| result.rps)
    }

    /// The errors under load: every non-2xx and socket error of the wrk runs,
    /// every acknowledged PUT the database does not show, every accepted
    /// event that was not stored. (The database may show a few more writes
    /// than were acknowledged: requests in flight when wrk stops are served
    /// but not counted.)
    fn errors(&self) -> (u64, Value) {
        let wrk: u64 = self.routes.iter().map(|(_, result)| result.errors()).sum();
        let put_missing: u64 = self
            .write_checks
            .iter()
            .filter(|(what, _, _)| what == "PUT step")
            .map(|(_, acknowledged, stored)| acknowledged.saturating_sub(*stored).max(0) as u64)
            .sum();
        let events_lost = self
            .events
            .map_or(0, |(accepted, stored)| accepted.saturating_sub(stored));
        let breakdown = json!({
            "wrk_non2xx_and_socket": wrk,
            "put_acknowledged_not_stored": put_missing,
            "events_accepted_not_stored": events_lost,
        });
        (wrk + put_missing + events_lost, breakdown)
    }

    /// Computes the figures of the targets table.
    pub fn finish(&mut self) {
        let pg_status = mean(self.pgbench_status.iter().map(|run| run.tps));
        let pg_status_p99 = mean(self.pgbench_status.iter().map(|run| run.p99_ms));
        let pg_write = mean(self.pgbench_write.iter().map(|run| run.tps));
        let miss_p99 = self.route("status_miss").map_or(f64::NAN, |run| run.p99_ms);
        let largest = self.binaries.iter().max_by_key(|binary| binary.bytes);
        let rss = self
            .memory_after
            .iter()
            .max_by_key(|(_, _, memory)| memory.rss_kb);
        let cold = median(
            self.cold_starts
                .iter()
                .map(|start| start.first_200_ms)
                .collect(),
        );
        let (errors, breakdown) = self.errors();
        let (miss, hit, put) = (
            self.rps("status_miss"),
            self.rps("status_hit"),
            self.rps("step_put"),
        );
        let best = self
            .pgbench_status_sweep
            .iter()
            .max_by(|a, b| a.tps.total_cmp(&b.tps));
        let (best_tps, best_clients) = best.map_or((f64::NAN, 0), |run| (run.tps, run.clients));
        let miss_cpu = self.cpu_of("status_miss");
        let miss_function_us = miss_cpu.function_us.unwrap_or(f64::NAN);
        let floor_cpu = self.cpu_of("runtime_floor");
        let floor_us = floor_cpu.function_us.unwrap_or(f64::NAN);
        let pgbench_cpu = self.cpu_of("pgbench_status");
        let pooled = self.rps("status_miss_pgbouncer");
        let across = |added_ms: u64| {
            self.routes_across_network
                .iter()
                .find(|(ms, _)| *ms == added_ms)
                .map_or(f64::NAN, |(_, run)| run.p50_ms)
        };
        // What the event adds in each pair, and the median pair's.
        let event_costs =
            outbox::costs(&self.pgbench_write_beside_event, &self.pgbench_write_event);
        let event_cost = median(event_costs.clone());
        let write_plain = mean(self.pgbench_write_beside_event.iter().map(|run| run.tps));
        let write_event_tps = mean(self.pgbench_write_event.iter().map(|run| run.tps));
        self.figures = vec![
            Figure {
                key: "status_miss_vs_pgbench",
                what: "status miss throughput / pgbench status",
                value: miss / pg_status,
                unit: "",
                at_least: true,
                threshold: 0.5,
                context: format!(
                    "{miss:.0} rps / {pg_status:.0} tps (mean of the pgbench runs around it)"
                ),
            },
            Figure {
                key: "status_miss_vs_pgbench_best",
                what: "status miss throughput / pgbench status at its best",
                value: miss / best_tps,
                unit: "",
                at_least: true,
                threshold: 0.5,
                context: format!(
                    "{miss:.0} rps / {best_tps:.0} tps (pgbench at {best_clients} clients)"
                ),
            },
            Figure {
                key: "status_miss_p99_vs_pgbench",
                what: "status miss p99 / pgbench status p99, same clients",
                value: miss_p99 / pg_status_p99,
                unit: "",
                at_least: false,
                threshold: 1.2,
                context: format!("{miss_p99:.2} ms / {pg_status_p99:.2} ms"),
            },
            Figure {
                key: "status_function_cpu_vs_postgres_cpu",
                what: "function CPU / PostgreSQL CPU per status miss",
                value: miss_function_us / miss_cpu.postgres_us,
                unit: "",
                at_least: false,
                threshold: 0.3,
                context: format!(
                    "{miss_function_us:.0} µs / {:.0} µs per request; of the function's, \
                     {floor_us:.0} µs are Vercel's runtime answering a constant; the function \
                     {}, the runtime {}",
                    miss_cpu.postgres_us,
                    miss_cpu.function_split_described(),
                    floor_cpu.function_split_described(),
                ),
            },
            Figure {
                key: "status_postgres_cpu_vs_pgbench",
                what: "PostgreSQL CPU per status miss / per pgbench status",
                value: miss_cpu.postgres_us / pgbench_cpu.postgres_us,
                unit: "",
                at_least: false,
                threshold: 1.1,
                context: format!(
                    "{:.0} µs / {:.0} µs",
                    miss_cpu.postgres_us, pgbench_cpu.postgres_us
                ),
            },
            Figure {
                key: "status_pgbouncer_vs_direct",
                what: "status miss through PgBouncer / direct",
                value: pooled / miss,
                unit: "",
                at_least: true,
                threshold: 0.7,
                context: format!(
                    "{pooled:.0} rps / {miss:.0} rps (transaction mode; unnamed statements on a direct connection: {:.0} rps; through a PgBouncer that keeps prepared statements, with named ones: {:.0} rps)",
                    self.rps("status_miss_unnamed"),
                    self.rps("status_miss_pgbouncer_prepared")
                ),
            },
            Figure {
                key: "status_p50_with_1ms_round_trips_ms",
                what: "status miss p50, 1 ms added per round trip",
                value: across(1),
                unit: " ms",
                at_least: false,
                threshold: 2.5,
                context: format!(
                    "{:.2} ms on loopback at the same connections",
                    self.route("status_miss_near")
                        .map_or(f64::NAN, |run| run.p50_ms)
                ),
            },
            Figure {
                key: "status_p50_with_5ms_round_trips_ms",
                what: "status miss p50, 5 ms added per round trip",
                value: across(5),
                unit: " ms",
                at_least: false,
                threshold: 6.5,
                context: "one round trip plus 1.5 ms".to_string(),
            },
            Figure {
                key: "outbox_event_write_cost",
                what: "time a step_completed event adds to a save",
                value: event_cost,
                unit: "",
                at_least: false,
                threshold: 0.25,
                context: format!(
                    "median of {} alternating pairs ({}); pgbench write {write_plain:.0} tps, with the outbox insert {write_event_tps:.0} tps (p50 {:.2} ms with, {:.2} ms without)",
                    event_costs.len(),
                    outbox::listed(&event_costs),
                    mean(self.pgbench_write_event.iter().map(|run| run.p50_ms)),
                    mean(self.pgbench_write_beside_event.iter().map(|run| run.p50_ms))
                ),
            },
            Figure {
                key: "status_hit_vs_miss",
                what: "status hit throughput / miss throughput",
                value: hit / miss,
                unit: "",
                at_least: true,
                threshold: 1.3,
                context: format!("{hit:.0} rps / {miss:.0} rps"),
            },
            Figure {
                key: "step_put_vs_pgbench_write",
                what: "PUT step throughput / pgbench write",
                value: put / pg_write,
                unit: "",
                at_least: true,
                threshold: 0.4,
                context: format!(
                    "{put:.0} rps / {pg_write:.0} tps (mean of the pgbench runs around it)"
                ),
            },
            Figure {
                key: "errors_under_load",
                what: "errors under load",
                value: errors as f64,
                unit: "",
                at_least: false,
                threshold: 0.0,
                context: breakdown.to_string(),
            },
            Figure {
                key: "cold_start_median_ms",
                what: "cold start to first 200, median",
                value: cold,
                unit: " ms",
                at_least: false,
                threshold: 50.0,
                context: format!("{} starts of onboarding-status", self.cold_starts.len()),
            },
            Figure {
                key: "largest_function_binary_mb",
                what: "largest function binary",
                value: largest.map_or(0.0, |binary| binary.bytes as f64 / MB),
                unit: " MB",
                at_least: false,
                threshold: 12.0,
                context: largest.map_or(String::new(), |binary| binary.name.clone()),
            },
            Figure {
                key: "rss_after_10k_requests_mb",
                what: "resident memory after 10,000 requests (largest)",
                value: rss.map_or(0.0, |(_, _, memory)| memory.rss_kb as f64 * 1024.0 / MB),
                unit: " MB",
                at_least: false,
                threshold: 40.0,
                context: rss.map_or(String::new(), |(name, requests, _)| {
                    format!("{name} after {requests} requests")
                }),
            },
        ];
    }

    pub fn print(&self) {
        println!();
        println!(
            "load average (1 min) per phase: {:?}",
            self.load.one_minute()
        );
        println!();
        println!(
            "{:<18} {:>10} {:>9} {:>9} {:>9} {:>8}",
            "run", "per s", "p50 ms", "p99 ms", "avg ms", "errors"
        );
        for run in self
            .pgbench_status
            .iter()
            .chain(&self.pgbench_write)
            .chain(&self.pgbench_write_event)
            .chain(&self.pgbench_write_beside_event)
            .chain(&self.pgbench_status_sweep)
        {
            println!(
                "{:<18} {:>10.0} {:>9.2} {:>9.2} {:>9.2} {:>8}",
                format!("pgbench {}", run.name),
                run.tps,
                run.p50_ms,
                run.p99_ms,
                run.latency_avg_ms,
                run.failed
            );
        }
        let across: Vec<(String, &WrkResult)> = self
            .routes_across_network
            .iter()
            .map(|(ms, run)| (format!("status_miss_+{ms}ms"), run))
            .collect();
        for (name, run) in self
            .routes
            .iter()
            .map(|(name, run)| (name.to_string(), run))
            .chain(across)
        {
            println!(
                "{:<18} {:>10.0} {:>9.2} {:>9.2} {:>9.2} {:>8}",
                name,
                run.rps,
                run.p50_ms,
                run.p99_ms,
                run.mean_ms,
                run.errors()
            );
        }
        println!();
        for (run, per_request) in &self.cpu {
            println!(
                "CPU per request, {run}: function {}, PostgreSQL {:.0} µs",
                per_request
                    .function_us
                    .map_or("-".to_string(), |us| format!(
                        "{us:.0} µs ({})",
                        per_request.function_split_described()
                    )),
                per_request.postgres_us
            );
        }
        for (what, acknowledged, stored) in &self.write_checks {
            println!("{what}: {acknowledged} acknowledged, {stored} stored");
        }
        if let Some((accepted, stored)) = self.events {
            println!("events: {accepted} accepted, {stored} stored");
        }
        let colds: Vec<f64> = self
            .cold_starts
            .iter()
            .map(|start| start.first_200_ms)
            .collect();
        if !colds.is_empty() {
            println!(
                "cold start to first 200: median {:.1} ms, min {:.1}, max {:.1} (listening: median {:.1} ms)",
                median(colds.clone()),
                colds.iter().copied().fold(f64::INFINITY, f64::min),
                colds.iter().copied().fold(0.0, f64::max),
                median(
                    self.cold_starts
                        .iter()
                        .map(|start| start.listening_ms)
                        .collect()
                )
            );
        }
        for (name, requests, memory) in &self.memory_after {
            println!(
                "{name}: {:.1} MB resident after {requests} requests",
                memory.rss_kb as f64 * 1024.0 / MB
            );
        }
        for (name, memory) in &self.memory_under_load {
            println!(
                "{name}: {:.1} MB resident after its load runs (peak {:.1} MB)",
                memory.rss_kb as f64 * 1024.0 / MB,
                memory.peak_rss_kb as f64 * 1024.0 / MB
            );
        }
        for binary in &self.binaries {
            println!(
                "{:<28} {:>6.2} MB{}",
                binary.name,
                binary.bytes as f64 / MB,
                if binary.stripped {
                    ""
                } else {
                    " (not stripped)"
                }
            );
        }
        println!();
        println!("{:<50} {:>10} {:>10}  met", "figure", "value", "target");
        for figure in &self.figures {
            println!(
                "{:<50} {:>10} {:>10}  {:<3}  {}",
                figure.what,
                format!("{:.2}{}", figure.value, figure.unit),
                figure.target(),
                if figure.met() { "yes" } else { "NO" },
                figure.context
            );
        }
    }

    pub fn to_json(&self) -> Value {
        let figures: serde_json::Map<String, Value> = self
            .figures
            .iter()
            .map(|figure| {
                (
                    figure.key.to_string(),
                    json!({
                        "figure": figure.what,
                        "value": figure.value,
                        "unit": figure.unit.trim(),
                        "target": figure.target(),
                        "comparison": if figure.at_least { ">=" } else { "<=" },
                        "threshold": figure.threshold,
                        "met": figure.met(),
                        "context": figure.context,
                    }),
                )
            })
            .collect();
        let (_, errors) = self.errors();
        json!({
            "label": self.label,
            "started_at": self.started_at.to_rfc3339(),
            "machine": {
                "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
                "load_average": self.load.to_json(),
            },
            "settings": {
                "connections": self.connections,
                "seconds_per_run": self.seconds,
                "users": self.users,
                "function_env": self.function_env.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
            },
            "all_met": self.figures.iter().all(Figure::met),
            "figures": figures,
            "pgbench": {
                "status": self.pgbench_status,
                "write": self.pgbench_write,
                "write_with_event": self.pgbench_write_event,
                "write_beside_event": self.pgbench_write_beside_event,
                "status_by_clients": self.pgbench_status_sweep,
            },
            "routes": self.routes.iter().map(|(name, run)| (name.to_string(), json!(run))).collect::<serde_json::Map<_, _>>(),
            "status_miss_across_network": self.routes_across_network.iter().map(|(ms, run)| json!({"added_round_trip_ms": ms, "run": run})).collect::<Vec<_>>(),
            "step_put_across_network": self.put_across_network.iter().map(|(ms, run)| json!({"added_round_trip_ms": ms, "run": run})).collect::<Vec<_>>(),
            "cpu_per_request_us": self.cpu.iter().map(|(run, per_request)| (run.clone(), json!(per_request))).collect::<serde_json::Map<_, _>>(),
            "errors": errors,
            "write_checks": self.write_checks.iter().map(|(what, acknowledged, stored)| json!({"what": what, "acknowledged": acknowledged, "stored": stored})).collect::<Vec<_>>(),
            "events": self.events.map(|(accepted, stored)| json!({"accepted": accepted, "stored": stored})),
            "cold_starts_ms": self.cold_starts,
            "memory_after_requests": self.memory_after.iter().map(|(name, requests, memory)| json!({"binary": name, "requests": requests, "rss_kb": memory.rss_kb, "peak_rss_kb": memory.peak_rss_kb})).collect::<Vec<_>>(),
            "memory_after_load": self.memory_under_load.iter().map(|(name, memory)| json!({"binary": name, "rss_kb": memory.rss_kb, "peak_rss_kb": memory.peak_rss_kb})).collect::<Vec<_>>(),
            "binaries": self.binaries,
            "function_log_lines": self.log_lines,
        })
    }
}
