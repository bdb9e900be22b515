//! The suite's own PostgreSQL cluster and `redis-server`, on free loopback
//! ports in a temporary directory, so that it can stop and start them to
//! inject outages without touching any service a developer runs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use tokio::task::JoinHandle;

pub use crate::cluster::{Postgres, free_port};

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
