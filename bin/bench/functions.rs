//! The function binaries, started as Vercel's dev mode starts them (the
//! runtime listens on `VERCEL_DEV_PORT`), with the deployed defaults except
//! what the benchmark must set: its database, Redis key prefix, secrets, and
//! rate limits high enough for one client IP sending everything.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use futures_util::StreamExt;
use serde::Serialize;

pub const REDIS_URL: &str = "redis://127.0.0.1:6379";
pub const EDGE_CONFIG_FILE: &str = "config/edge-config.json";

/// What every function process is started with.
#[derive(Clone)]
pub struct FunctionEnv {
    pub database_url: String,
    pub redis_prefix: String,
    pub jwt_secret: String,
    pub session_secret: String,
    /// `--fn-env KEY=VALUE`: e.g. `DATABASE_POOL_MAX_SIZE=16` to compare.
    pub extra: Vec<(String, String)>,
    pub logs: PathBuf,
}

impl FunctionEnv {
    /// The same, without Redis: the status cache is disabled, every read is a miss.
    pub fn without_redis(&self) -> FunctionEnvNoRedis<'_> {
        FunctionEnvNoRedis(self)
    }

    fn vars(&self, redis: bool) -> Vec<(String, String)> {
        let mut vars = vec![
            ("DATABASE_URL".into(), self.database_url.clone()),
            ("EDGE_CONFIG_FILE".into(), EDGE_CONFIG_FILE.into()),
            ("AUTH_JWT_SECRET".into(), self.jwt_secret.clone()),
            ("SESSION_SECRET".into(), self.session_secret.clone()),
            ("CACHE_TTL_SECONDS".into(), "600".into()),
            ("RATE_LIMIT_WRITES_PER_MINUTE".into(), "1000000".into()),
            (
                "RATE_LIMIT_WRITES_PER_MINUTE_PER_IP".into(),
                "1000000".into(),
            ),
            // The benchmark measures capacity, not the limits.
            ("RATE_LIMIT_EVENTS_PER_MINUTE".into(), "1000000".into()),
            (
                "RATE_LIMIT_EVENTS_PER_MINUTE_PER_IP".into(),
                "1000000".into(),
            ),
        ];
        if redis {
            vars.push(("REDIS_URL".into(), REDIS_URL.into()));
            vars.push(("REDIS_KEY_PREFIX".into(), self.redis_prefix.clone()));
            vars.push((
                "RATE_LIMIT_PREFIX".into(),
                format!("{}:ratelimit", self.redis_prefix),
            ));
        }
        vars.extend(self.extra.iter().cloned());
        vars
    }
}

/// [`FunctionEnv`] without `REDIS_URL`.
pub struct FunctionEnvNoRedis<'a>(&'a FunctionEnv);

/// Either environment.
pub trait Environment {
    fn vars(&self) -> Vec<(String, String)>;
    fn logs(&self) -> &Path;
}

impl Environment for FunctionEnv {
    fn vars(&self) -> Vec<(String, String)> {
        FunctionEnv::vars(self, true)
    }
    fn logs(&self) -> &Path {
        &self.logs
    }
}

impl Environment for FunctionEnvNoRedis<'_> {
    fn vars(&self) -> Vec<(String, String)> {
        self.0.vars(false)
    }
    fn logs(&self) -> &Path {
        &self.0.logs
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Spawns a function binary on a free port, its stdout piped (the runtime
/// announces the port there) and its log lines (stderr) piped too, as Vercel
/// and Lambda read them, copied by a harness thread to `logs/{name}.log`. A
/// write to a pipe costs the writer more than one to a file, and the
/// function's CPU figures should count what it costs where it is deployed.
fn spawn(
    name: &str,
    binary: &Path,
    env: &dyn Environment,
) -> anyhow::Result<(Child, u16, Instant, LogCopier)> {
    let port = free_port()?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(env.logs().join(format!("{name}.log")))
        .context("Failed to open the function's log")?;
    let mut command = Command::new(binary);
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("VERCEL_DEV_PORT", port.to_string())
        .envs(env.vars())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let spawned = Instant::now();
    let mut child = command
        .spawn()
        .with_context(|| format!("Failed to start {}", binary.display()))?;
    let mut stderr = child.stderr.take().context("stderr is piped")?;
    let copier = std::thread::spawn(move || {
        let mut log = log;
        let _ = std::io::copy(&mut stderr, &mut log);
    });
    Ok((child, port, spawned, LogCopier(Some(copier))))
}

/// Blocks until the runtime prints that it listens.
fn wait_listening(child: &mut Child, name: &str) -> anyhow::Result<()> {
    let stdout = child.stdout.take().context("stdout is piped")?;
    let mut lines = BufReader::new(stdout);
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line)? == 0 {
            bail!("{name} exited before it listened");
        }
        if line.contains("listening") {
            // Keep draining stdout so the process never blocks on a full pipe.
            std::thread::spawn(move || {
                let mut sink = Vec::new();
                let _ = lines.read_to_end(&mut sink);
            });
            return Ok(());
        }
    }
}

/// The thread copying a function's log lines to its file. Joined once the
/// function exited, so the log is whole when the run counts its lines.
struct LogCopier(Option<std::thread::JoinHandle<()>>);

impl LogCopier {
    fn join(&mut self) {
        if let Some(copier) = self.0.take() {
            let _ = copier.join();
        }
    }
}

/// A running function binary.
pub struct Function {
    name: String,
    child: Child,
    log_copier: LogCopier,
    pub address: String,
}

impl Function {
    pub fn start(name: &str, binary: &Path, env: &dyn Environment) -> anyhow::Result<Self> {
        let (mut child, port, _, mut log_copier) = spawn(name, binary, env)?;
        if let Err(error) = wait_listening(&mut child, name) {
            let _ = child.kill();
            let _ = child.wait();
            log_copier.join();
            return Err(error);
        }
        Ok(Self {
            name: name.to_string(),
            child,
            log_copier,
            address: format!("http://127.0.0.1:{port}"),
        })
    }

    /// Starts the function and sends it `calls` first, `concurrency` at a
    /// time: its pools and caches are warm before it is measured, and the
    /// memory read after them is that of a function that has served them.
    pub async fn start_warmed(
        name: &str,
        binary: &Path,
        env: &dyn Environment,
        calls: &[Call],
        concurrency: usize,
    ) -> anyhow::Result<Self> {
        let function = Self::start(name, binary, env)?;
        drive(&function, calls, concurrency).await?;
        Ok(function)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory now and at its peak.
    pub fn memory(&self) -> anyhow::Result<Memory> {
        Memory::of(self.child.id())
            .with_context(|| format!("Failed to read the memory of {}", self.name))
    }

    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.log_copier.join();
    }
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Memory {
    pub rss_kb: u64,
    pub peak_rss_kb: u64,
}

impl Memory {
    fn of(pid: u32) -> anyhow::Result<Self> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let field = |name: &str| -> anyhow::Result<u64> {
            let line = status
                .lines()
                .find(|line| line.starts_with(name))
                .with_context(|| format!("no {name} in /proc/{pid}/status"))?;
            Ok(line[name.len()..]
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()?)
        };
        Ok(Self {
            rss_kb: field("VmRSS:")?,
            peak_rss_kb: field("VmHWM:")?,
        })
    }
}

/// One request the harness itself sends (warm-up, memory).
pub struct Call {
    method: reqwest::Method,
    path: String,
    token: String,
    body: Option<&'static str>,
}

impl Call {
    pub fn get(path: &str, token: &str) -> Self {
        Self {
            method: reqwest::Method::GET,
            path: path.to_string(),
            token: token.to_string(),
            body: None,
        }
    }

    pub fn post_events(token: &str) -> Self {
        Self {
            method: reqwest::Method::POST,
            path: "/api/onboarding/events".into(),
            token: token.to_string(),
            body: Some(crate::wrk::events_body()),
        }
    }
}

/// Sends `calls` to `function`, `concurrency` at a time on keep-alive
/// connections; every answer must be 2xx.
async fn drive(function: &Function, calls: &[Call], concurrency: usize) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .timeout(Duration::from_secs(30))
        .build()?;
    let failures: Vec<String> = futures_util::stream::iter(calls)
        .map(|call| {
            let mut request = client
                .request(
                    call.method.clone(),
                    format!("{}{}", function.address, call.path),
                )
                .bearer_auth(&call.token);
            if let Some(body) = call.body {
                request = request
                    .header("content-type", "application/json")
                    .body(body);
            }
            async move {
                match request.send().await {
                    Ok(response) if response.status().is_success() => {
                        let _ = response.bytes().await;
                        None
                    }
                    Ok(response) => Some(format!(
                        "{} {}: {}",
                        call.method,
                        call.path,
                        response.status()
                    )),
                    Err(error) => Some(format!("{} {}: {error}", call.method, call.path)),
                }
            }
        })
        .buffer_unordered(concurrency)
        .filter_map(|failure| async move { failure })
        .collect()
        .await;
    ensure!(
        failures.is_empty(),
        "{} of {} requests to {} failed, e.g. {}",
        failures.len(),
        calls.len(),
        function.name,
        failures[0]
    );
    Ok(())
}

#[derive(Debug, Clone, Serialize)]
pub struct ColdStart {
    /// From exec to the runtime's "listening" line.
    pub listening_ms: f64,
    /// From exec to the status line of the first answer, a 200.
    pub first_200_ms: f64,
}

/// Execs the status binary and times its first `GET /status` for a user
/// nobody asked for yet: a cache miss, so it opens the first database (and
/// Redis) connection.
pub fn cold_start(binary: &Path, env: &dyn Environment, token: &str) -> anyhow::Result<ColdStart> {
    let (mut child, port, spawned, mut log_copier) = spawn("status-cold", binary, env)?;
    let result = (|| {
        wait_listening(&mut child, "status-cold")?;
        let listening = spawned.elapsed();
        let mut stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_nodelay(true)?;
        write!(
            stream,
            "GET /api/onboarding/status HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
             Authorization: Bearer {token}\r\nConnection: close\r\n\r\n"
        )?;
        let mut status_line = String::new();
        BufReader::new(&mut stream).read_line(&mut status_line)?;
        let first = spawned.elapsed();
        ensure!(
            status_line.starts_with("HTTP/1.1 200"),
            "the first answer was `{}`",
            status_line.trim()
        );
        Ok(ColdStart {
            listening_ms: listening.as_secs_f64() * 1000.0,
            first_200_ms: first.as_secs_f64() * 1000.0,
        })
    })();
    let _ = child.kill();
    let _ = child.wait();
    log_copier.join();
    result
}

/// Every `[[bin]]` of Cargo.toml whose source is under `api/`: the functions.
pub fn api_binaries(manifest: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(manifest).context("Failed to read Cargo.toml")?;
    let value = |line: &str, key: &str| -> Option<String> {
        let rest = line
            .trim()
            .strip_prefix(key)?
            .trim_start()
            .strip_prefix('=')?;
        Some(rest.trim().trim_matches('"').to_string())
    };
    let mut binaries = Vec::new();
    for section in text.split("[[bin]]").skip(1) {
        let section = section.split("\n[").next().unwrap_or(section);
        let name = section.lines().find_map(|line| value(line, "name"));
        let path = section.lines().find_map(|line| value(line, "path"));
        if let (Some(name), Some(path)) = (name, path)
            && path.starts_with("api/")
        {
            binaries.push((name, path));
        }
    }
    ensure!(!binaries.is_empty(), "Cargo.toml lists no function binary");
    Ok(binaries)
}

#[derive(Debug, Clone, Serialize)]
pub struct BinarySize {
    pub name: String,
    pub source: String,
    pub bytes: u64,
    /// No `.symtab` section: the profile's `strip = true` took effect.
    pub stripped: bool,
}

pub fn size(name: &str, source: &str, path: &Path) -> anyhow::Result<BinarySize> {
    let bytes =
        std::fs::read(path).with_context(|| format!("Failed to read {}", path.display()))?;
    Ok(BinarySize {
        name: name.to_string(),
        source: source.to_string(),
        bytes: bytes.len() as u64,
        stripped: !bytes.windows(8).any(|window| window == b".symtab\0"),
    })
}

/// Log lines per level over every function log of this run.
pub fn count_log_levels(dir: &Path) -> anyhow::Result<serde_json::Value> {
    let mut counts = serde_json::Map::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        for level in ["ERROR", "WARN"] {
            let needle = format!("\"level\":\"{level}\"");
            let count = text.lines().filter(|line| line.contains(&needle)).count();
            if count > 0 {
                let name = path
                    .file_stem()
                    .map(|stem| stem.to_string_lossy().into_owned())
                    .unwrap_or_default();
                counts.insert(format!("{name}:{level}"), count.into());
            }
        }
    }
    Ok(counts.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_api_binary_of_the_manifest_is_found() {
        let binaries = api_binaries(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/Cargo.toml"
        )))
        .unwrap();
        let names: Vec<&str> = binaries.iter().map(|(name, _)| name.as_str()).collect();
        assert!(names.contains(&"onboarding-status"));
        assert!(names.contains(&"onboarding-ai-reject"));
        assert!(!names.contains(&"bench"));
        assert!(binaries.iter().all(|(_, path)| path.starts_with("api/")));
    }
}
