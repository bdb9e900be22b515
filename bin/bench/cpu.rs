//! CPU time per request, from `/proc`: the function process's own user and
//! system time, and PostgreSQL's, summed over every `postgres` process with
//! the time of the backends that already exited (their parent, the
//! postmaster, holds it as `cutime`/`cstime` once it reaped them). pgbench's
//! and wrk's own time is not counted. Ticks are 1/`CLK_TCK` s (10 ms), so a
//! phase needs thousands of requests for the figure to mean anything; every
//! phase of the benchmark has tens of thousands.

use std::process::Command;

use anyhow::Context;
use serde::Serialize;

/// CPU seconds consumed so far by the measured processes.
#[derive(Debug, Clone, Copy)]
pub struct CpuSnapshot {
    function: Option<f64>,
    postgres: f64,
}

/// CPU per request (or per pgbench transaction) over one phase.
#[derive(Debug, Clone, Copy, Serialize, Default)]
pub struct CpuPerRequest {
    /// µs of the function process per request; `None` for pgbench.
    pub function_us: Option<f64>,
    /// µs of every PostgreSQL process per request.
    pub postgres_us: f64,
}

pub struct CpuMeter {
    ticks_per_second: f64,
}

impl CpuMeter {
    pub fn new() -> anyhow::Result<Self> {
        let output = Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .context("Failed to run getconf CLK_TCK")?;
        let ticks_per_second = String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .context("getconf CLK_TCK printed no number")?;
        Ok(Self { ticks_per_second })
    }

    /// The time so far of `function` (a pid) and of PostgreSQL.
    pub fn snapshot(&self, function: Option<u32>) -> anyhow::Result<CpuSnapshot> {
        let function = match function {
            Some(pid) => Some(self.seconds(process_ticks(pid)?.own)),
            None => None,
        };
        let mut postgres_ticks = 0;
        for entry in std::fs::read_dir("/proc")? {
            let Ok(pid) = entry?.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            // A process may exit between the listing and the read.
            let Ok(ticks) = process_ticks(pid) else {
                continue;
            };
            if ticks.command == "postgres" {
                postgres_ticks += ticks.own + ticks.reaped_children;
            }
        }
        Ok(CpuSnapshot {
            function,
            postgres: self.seconds(postgres_ticks),
        })
    }

    fn seconds(&self, ticks: u64) -> f64 {
        ticks as f64 / self.ticks_per_second
    }
}

impl CpuSnapshot {
    /// What was spent since `earlier`, per one of `requests`.
    pub fn per_request_since(&self, earlier: &CpuSnapshot, requests: u64) -> CpuPerRequest {
        let per = |now: f64, then: f64| (now - then) * 1e6 / requests.max(1) as f64;
        CpuPerRequest {
            function_us: match (self.function, earlier.function) {
                (Some(now), Some(then)) => Some(per(now, then)),
                _ => None,
            },
            postgres_us: per(self.postgres, earlier.postgres),
        }
    }
}

struct ProcessTicks {
    command: String,
    own: u64,
    reaped_children: u64,
}

fn process_ticks(pid: u32) -> anyhow::Result<ProcessTicks> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_stat(&stat).with_context(|| format!("/proc/{pid}/stat is not as expected"))
}

/// `pid (comm) state ppid …`: `comm` may hold spaces and parentheses, so the
/// fields are counted from the last `)`. utime, stime, cutime and cstime are
/// fields 14 to 17 (1-based), the 12th to 15th after the `)`.
fn parse_stat(stat: &str) -> Option<ProcessTicks> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let command = stat.get(open + 1..close)?.to_string();
    let fields: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    let field = |n: usize| fields.get(n)?.parse::<u64>().ok();
    Some(ProcessTicks {
        command,
        own: field(11)? + field(12)?,
        reaped_children: field(13)? + field(14)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        let stat = "4242 (post (gres)) S 1 4242 4242 0 -1 4194560 1 0 0 0 \
                    120 30 7 3 20 0 1 0 100 0 0";
        let ticks = parse_stat(stat).unwrap();
        assert_eq!(ticks.command, "post (gres)");
        assert_eq!(ticks.own, 150);
        assert_eq!(ticks.reaped_children, 10);
    }

    #[test]
    fn the_time_this_process_spins_is_seen() {
        let meter = CpuMeter::new().unwrap();
        let me = Some(std::process::id());
        let before = meter.snapshot(me).unwrap();
        let started = std::time::Instant::now();
        let mut spin = 0u64;
        loop {
            for _ in 0..1_000_000 {
                spin = std::hint::black_box(spin.wrapping_add(1));
            }
            let spent = meter
                .snapshot(me)
                .unwrap()
                .per_request_since(&before, 1)
                .function_us
                .unwrap();
            if spent >= 50_000.0 {
                break;
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(30),
                "30 s of spinning and only {spent} µs of CPU seen"
            );
        }
    }
}
