//! The suite's own PostgreSQL cluster and `redis-server`, on free loopback
//! ports in a temporary directory, so that it can stop and start them to
//! inject outages without touching any service a developer runs.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use tokio::task::JoinHandle;

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
pub struct Postgres {
    dir: PathBuf,
    pub port: u16,
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

    pub fn init(dir: PathBuf) -> anyhow::Result<Self> {
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

    pub fn start(&self) -> anyhow::Result<()> {
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

    pub fn stop(&self) -> anyhow::Result<()> {
        self.run(
            "pg_ctl",
            &["-D", &self.data(), "-m", "fast", "-w", "-t", "30", "stop"],
        )
    }

    pub fn superuser_url(&self, database: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{database}?sslmode=disable",
            self.port
        )
    }

    pub fn app_url(&self) -> String {
        format!(
            "postgres://onboarding_app@127.0.0.1:{}/onboarding?sslmode=disable",
            self.port
        )
    }

    /// A superuser connection to `database` and the task that drives it,
    /// which the caller aborts when done.
    pub async fn connect(
        &self,
        database: &str,
    ) -> Result<
        (
            tokio_postgres::Client,
            JoinHandle<Result<(), tokio_postgres::Error>>,
        ),
        tokio_postgres::Error,
    > {
        let (client, connection) =
            tokio_postgres::connect(&self.superuser_url(database), tokio_postgres::NoTls).await?;
        Ok((client, tokio::spawn(connection)))
    }

    /// Whether the server accepts a connection and answers a query.
    pub async fn accepting(&self) -> bool {
        let attempt = async {
            let (client, task) = self.connect("postgres").await?;
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
pub struct Redis {
    pub port: u16,
    child: Option<Child>,
    log: PathBuf,
}

impl Redis {
    /// A server on a free port, not yet started, that appends its output to `log`.
    pub fn new(log: PathBuf) -> anyhow::Result<Self> {
        Ok(Redis {
            port: free_port()?,
            child: None,
            log,
        })
    }

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

    /// Starts the server and waits up to 10 s for it to answer; returns when it did.
    pub async fn start_answering(&mut self) -> anyhow::Result<Instant> {
        self.start()?;
        wait_until("redis-server", Duration::from_secs(10), || self.answering()).await
    }

    pub fn stop(&mut self) {
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

/// Probes every 50 ms until `probe` holds; returns when it did, or fails after `limit`.
pub async fn wait_until<F, Fut>(
    what: &str,
    limit: Duration,
    mut probe: F,
) -> anyhow::Result<Instant>
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

/// Serves `app` on a free loopback port: its address and the serving task.
pub async fn serve_loopback(
    app: axum::Router,
) -> anyhow::Result<(SocketAddr, JoinHandle<std::io::Result<()>>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let task = tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((address, task))
}
