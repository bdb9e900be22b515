//! CPU time per request, from `/proc`: the function process's own user and
//! system time, and PostgreSQL's, summed over every `postgres` process with
//! the time of the backends that already exited (their parent, the
//! postmaster, holds it as `cutime`/`cstime` once it reaped them). pgbench's
//! and wrk's own time is not counted. The function's time is also given
//! split into user and system time, with its context switches: what the
//! library's own code costs and what the kernel's loopback TCP and the
//! scheduler cost around it are told apart in every run. Ticks are
//! 1/`CLK_TCK` s (10 ms), so a phase needs thousands of requests for the
//! figure to mean anything; every phase of the benchmark has tens of
//! thousands.

use std::process::Command;

use anyhow::Context;
use serde::Serialize;

/// CPU seconds consumed so far by the measured processes.
#[derive(Debug, Clone, Copy)]
pub struct CpuSnapshot {
    function: Option<FunctionTime>,
    postgres: f64,
}

/// The function process's time and context switches so far.
#[derive(Debug, Clone, Copy)]
struct FunctionTime {
    user: f64,
    system: f64,
    voluntary_switches: u64,
    involuntary_switches: u64,
}

/// CPU per request (or per pgbench transaction) over one phase.
#[derive(Debug, Clone, Copy, Serialize, Default)]
pub struct CpuPerRequest {
    /// µs of the function process per request; `None` for pgbench.
    pub function_us: Option<f64>,
    /// `function_us` split, with the function's context switches.
    pub function_split: Option<FunctionSplit>,
    /// µs of every PostgreSQL process per request.
    pub postgres_us: f64,
}

/// Where the function's time per request went: its own code (user) or the
/// kernel (system: the sockets, the scheduler), and how often per request
/// it slept (voluntary switches: nothing to do until a socket is ready) or
/// was preempted (involuntary: another process took its core).
#[derive(Debug, Clone, Copy, Serialize, Default)]
pub struct FunctionSplit {
    pub user_us: f64,
    pub system_us: f64,
    pub voluntary_switches: f64,
    pub involuntary_switches: f64,
}

impl FunctionSplit {
    /// `user 8.4 + system 8.9 µs, 0.11 voluntary + 0.22 involuntary
    /// switches`, for a report's line.
    pub fn describe(&self) -> String {
        format!(
            "user {:.1} + system {:.1} µs, {:.2} voluntary + {:.2} involuntary switches",
            self.user_us, self.system_us, self.voluntary_switches, self.involuntary_switches
        )
    }
}

impl CpuPerRequest {
    /// The function's split as [`FunctionSplit::describe`] writes it; `-`
    /// for a run without a function (pgbench).
    pub fn function_split_described(&self) -> String {
        self.function_split
            .map_or_else(|| "-".to_string(), |split| split.describe())
    }
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
            Some(pid) => Some(self.function_time(pid)?),
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
                postgres_ticks += ticks.user + ticks.system + ticks.reaped_children;
            }
        }
        Ok(CpuSnapshot {
            function,
            postgres: self.seconds(postgres_ticks),
        })
    }

    fn function_time(&self, pid: u32) -> anyhow::Result<FunctionTime> {
        let ticks = process_ticks(pid)?;
        // A process's `status` counts its first thread's switches only.
        let (mut voluntary_switches, mut involuntary_switches) = (0, 0);
        for thread in std::fs::read_dir(format!("/proc/{pid}/task"))? {
            let path = thread?.path().join("status");
            // A thread may exit between the listing and the read.
            let Ok(status) = std::fs::read_to_string(&path) else {
                continue;
            };
            let (voluntary, involuntary) = parse_switches(&status)
                .with_context(|| format!("{} has no context switch counts", path.display()))?;
            voluntary_switches += voluntary;
            involuntary_switches += involuntary;
        }
        Ok(FunctionTime {
            user: self.seconds(ticks.user),
            system: self.seconds(ticks.system),
            voluntary_switches,
            involuntary_switches,
        })
    }

    fn seconds(&self, ticks: u64) -> f64 {
        ticks as f64 / self.ticks_per_second
    }
}

impl CpuSnapshot {
    /// What was spent since `earlier`, per one of `requests`.
    pub fn per_request_since(&self, earlier: &CpuSnapshot, requests: u64) -> CpuPerRequest {
        let requests = requests.max(1) as f64;
        let per = |now: f64, then: f64| (now - then) * 1e6 / requests;
        // Saturating: a thread that exited takes its switches with it.
        let per_switch = |now: u64, then: u64| now.saturating_sub(then) as f64 / requests;
        let function_split = match (self.function, earlier.function) {
            (Some(now), Some(then)) => Some(FunctionSplit {
                user_us: per(now.user, then.user),
                system_us: per(now.system, then.system),
                voluntary_switches: per_switch(now.voluntary_switches, then.voluntary_switches),
                involuntary_switches: per_switch(
                    now.involuntary_switches,
                    then.involuntary_switches,
                ),
            }),
            _ => None,
        };
        CpuPerRequest {
            function_us: function_split.map(|split| split.user_us + split.system_us),
            function_split,
            postgres_us: per(self.postgres, earlier.postgres),
        }
    }
}

struct ProcessTicks {
    command: String,
    user: u64,
    system: u64,
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
        user: field(11)?,
        system: field(12)?,
        reaped_children: field(13)? + field(14)?,
    })
}

/// `voluntary_ctxt_switches` and `nonvoluntary_ctxt_switches` of a
/// `/proc/<pid>/status`.
fn parse_switches(status: &str) -> Option<(u64, u64)> {
    let count = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))?
            .trim()
            .parse()
            .ok()
    };
    Some((
        count("voluntary_ctxt_switches")?,
        count("nonvoluntary_ctxt_switches")?,
    ))
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
        assert_eq!((ticks.user, ticks.system), (120, 30));
        assert_eq!(ticks.reaped_children, 10);
    }

    #[test]
    fn a_split_reads_as_user_and_system_time_and_switches() {
        let split = FunctionSplit {
            user_us: 8.44,
            system_us: 8.86,
            voluntary_switches: 0.112,
            involuntary_switches: 0.256,
        };
        assert_eq!(
            split.describe(),
            "user 8.4 + system 8.9 µs, 0.11 voluntary + 0.26 involuntary switches"
        );
        let pgbench = CpuPerRequest::default();
        assert_eq!(pgbench.function_split_described(), "-");
        let function = CpuPerRequest {
            function_split: Some(split),
            ..pgbench
        };
        assert_eq!(function.function_split_described(), split.describe());
    }

    #[test]
    fn context_switches_are_read_by_name() {
        let status = "Name:\tonboarding-stat\nThreads:\t2\n\
                      voluntary_ctxt_switches:\t1234\n\
                      nonvoluntary_ctxt_switches:\t56\n";
        assert_eq!(parse_switches(status), Some((1234, 56)));
        assert_eq!(
            parse_switches("Name:\tx\nvoluntary_ctxt_switches:\t1\n"),
            None
        );
    }

    #[test]
    fn the_time_this_process_spins_is_seen_as_user_time() {
        let meter = CpuMeter::new().unwrap();
        let me = Some(std::process::id());
        let before = meter.snapshot(me).unwrap();
        let started = std::time::Instant::now();
        let mut spin = 0u64;
        loop {
            for _ in 0..1_000_000 {
                spin = std::hint::black_box(spin.wrapping_add(1));
            }
            let spent = meter.snapshot(me).unwrap().per_request_since(&before, 1);
            let split = spent.function_split.unwrap();
            if split.user_us >= 50_000.0 {
                // Spinning makes no system calls: reading `/proc` is the
                // only kernel time in it.
                assert!(
                    split.system_us < split.user_us,
                    "spinning counted as system time: {split:?}"
                );
                assert_eq!(spent.function_us, Some(split.user_us + split.system_us));
                break;
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(30),
                "30 s of spinning and only {spent:?} of CPU seen"
            );
        }
    }
}
