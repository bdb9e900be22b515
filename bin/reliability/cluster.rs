//! Private PostgreSQL clusters and PgBouncers on free loopback ports, in a
//! temporary directory, from Debian's packages: the reliability suite stops
//! and starts them to inject outages, and the integration tests (which
//! include this file) give them certificates or put a pooler in front,
//! without touching any service a developer runs.

use std::hash::BuildHasher;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, ensure};
use tokio::task::JoinHandle;

/// A loopback port nothing listens on, below the kernel's range of ports
/// for outgoing connections. One the kernel picks (a bind to port 0) comes
/// from that range, and in the second before a server started here binds it
/// a client connection of a test running beside it could be given the same
/// port: the server then failed to start.
pub fn free_port() -> anyhow::Result<u16> {
    const LOWEST: u16 = 20_000;
    let outgoing_from = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .filter(|&first| first > LOWEST + 1_000)
        .unwrap_or(32_768);
    let random = std::collections::hash_map::RandomState::new();
    for attempt in 0..200_u32 {
        let offset = random.hash_one(attempt) % u64::from(outgoing_from - LOWEST);
        let port = LOWEST + offset as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    anyhow::bail!("no free loopback port between {LOWEST} and {outgoing_from}")
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

/// The system user the servers run as when we are root (initdb and
/// PgBouncer refuse root).
const SERVICE_USER: &str = "postgres";

impl Postgres {
    fn command(&self, program: &Path) -> Command {
        if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", SERVICE_USER, "--"]).arg(program);
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
        let root = service_directory(&dir)?;
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

    /// Writes `contents` to `name` in the data directory, readable by the
    /// server alone (as a TLS key must be), e.g. a certificate or `pg_hba.conf`.
    pub fn write_file(&self, name: &str, contents: &[u8]) -> anyhow::Result<()> {
        write_private(
            &self.dir.join("pgdata").join(name),
            contents,
            self.as_postgres,
        )
    }

    /// Appends `settings` (lines of `postgresql.conf`) for the next start.
    pub fn configure(&self, settings: &str) -> anyhow::Result<()> {
        let path = self.dir.join("pgdata").join("postgresql.conf");
        let mut conf = std::fs::read_to_string(&path)?;
        conf.push('\n');
        conf.push_str(settings);
        conf.push('\n');
        write_private(&path, conf.as_bytes(), self.as_postgres)
    }

    pub fn start(&self) -> anyhow::Result<()> {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c max_connections=100",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("postgres.log");
        let started = self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-l",
                &log.display().to_string(),
                "-o",
                &options,
                "-w",
                "-t",
                "30",
                "start",
            ],
        );
        // pg_ctl only says to look at the server's log, which goes with the
        // temporary directory: the reason is kept in the error instead.
        started.with_context(|| {
            let written = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = written.lines().rev().take(5).collect();
            format!(
                "the server's log ends: {}",
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            )
        })
    }

    pub fn stop(&self) -> anyhow::Result<()> {
        self.stop_in("fast")
    }

    /// `pg_ctl stop` in shutdown `mode`, waiting up to 30 s.
    fn stop_in(&self, mode: &str) -> anyhow::Result<()> {
        self.run(
            "pg_ctl",
            &["-D", &self.data(), "-m", mode, "-w", "-t", "30", "stop"],
        )
    }

    /// Whether the server is running: `postmaster.pid` is there from its
    /// start until it has stopped.
    pub fn is_running(&self) -> bool {
        Path::new(&self.data()).join("postmaster.pid").exists()
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

/// Creates `dir` for a server; when we are root (which initdb and PgBouncer
/// refuse) gives it to the service user and says so.
fn service_directory(dir: &Path) -> anyhow::Result<bool> {
    let root = Command::new("id").arg("-u").output()?.stdout == b"0\n";
    std::fs::create_dir_all(dir)?;
    if root {
        give_to_service_user(dir)?;
    }
    Ok(root)
}

fn give_to_service_user(path: &Path) -> anyhow::Result<()> {
    let status = Command::new("chown")
        .arg("-R")
        .arg(format!("{SERVICE_USER}:"))
        .arg(path)
        .status()?;
    ensure!(status.success(), "chown of {} failed", path.display());
    Ok(())
}

/// Writes a file only its owner may read, owned by the service user when we are root.
fn write_private(path: &Path, contents: &[u8], for_service_user: bool) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, contents)
        .with_context(|| format!("Failed to write {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    if for_service_user {
        give_to_service_user(path)?;
    }
    Ok(())
}

/// How PgBouncer hands out server connections.
#[derive(Debug, Clone, Copy)]
pub enum PoolMode {
    /// A server connection per transaction: what Supabase's and most hosted poolers do.
    Transaction,
    /// The same, keeping the clients' protocol-level prepared statements
    /// (`max_prepared_statements`): PgBouncer prepares each on whichever
    /// server connection a transaction gets, under a name of its own, as
    /// PgBouncer 1.21 and later and Neon's pooler can. Needs such a PgBouncer
    /// ([`PgBouncer::binary_keeping_prepared`]).
    TransactionKeepingPrepared,
}

/// Prepared statements a [`PoolMode::TransactionKeepingPrepared`] PgBouncer
/// keeps per connection: more than the application ever prepares.
const MAX_PREPARED_STATEMENTS: u32 = 200;

/// A `pgbouncer` child process in front of a PostgreSQL server, with trust
/// authentication, and its admin console (`PAUSE`, `RESUME`) open to `pgbouncer`.
pub struct PgBouncer {
    pub port: u16,
    child: Child,
    pid_file: PathBuf,
}

impl PgBouncer {
    /// The binary: `PGBOUNCER` or Debian's `/usr/sbin/pgbouncer`.
    pub fn binary() -> PathBuf {
        std::env::var_os("PGBOUNCER")
            .map_or_else(|| PathBuf::from("/usr/sbin/pgbouncer"), PathBuf::from)
    }

    /// A PgBouncer that can keep prepared statements (1.21 or later):
    /// `PGBOUNCER_PREPARED`, or the one `scripts/pgbouncer-prepared` builds.
    pub fn binary_keeping_prepared() -> PathBuf {
        std::env::var_os("PGBOUNCER_PREPARED").map_or_else(
            || Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/pgbouncer-1.24.1/bin/pgbouncer"),
            PathBuf::from,
        )
    }

    /// Starts PgBouncer in `dir`, forwarding every database to `server_port`
    /// on 127.0.0.1, and waits until it accepts connections.
    pub fn start(
        dir: &Path,
        server_port: u16,
        mode: PoolMode,
        pool_size: u16,
    ) -> anyhow::Result<Self> {
        let (binary, keeping) = match mode {
            PoolMode::Transaction => (Self::binary(), String::new()),
            // A setting PgBouncer 1.18 does not know: only where it is wanted.
            PoolMode::TransactionKeepingPrepared => (
                Self::binary_keeping_prepared(),
                format!("max_prepared_statements = {MAX_PREPARED_STATEMENTS}\n"),
            ),
        };
        ensure!(
            binary.exists(),
            "PgBouncer is not installed ({}): apt-get install pgbouncer, and \
             scripts/pgbouncer-prepared for one that keeps prepared statements (.ci/run does both)",
            binary.display()
        );
        let root = service_directory(dir)?;
        let port = free_port()?;
        let users = dir.join("users.txt");
        write_private(
            &users,
            b"\"postgres\" \"\"\n\"onboarding_app\" \"\"\n\"pgbouncer\" \"\"\n",
            root,
        )?;
        let ini = dir.join("pgbouncer.ini");
        let config = format!(
            "[databases]\n* = host=127.0.0.1 port={server_port}\n\n[pgbouncer]\n\
             listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n\
             auth_type = trust\nauth_file = {users}\nadmin_users = pgbouncer, postgres\n\
             pool_mode = transaction\ndefault_pool_size = {pool_size}\nmax_client_conn = 1000\n\
             ignore_startup_parameters = extra_float_digits,options\n\
             server_login_retry = 1\n{keeping}\
             server_reset_query =\nlogfile = {log}\npidfile = {pid}\n",
            users = users.display(),
            log = dir.join("pgbouncer.log").display(),
            pid = dir.join("pgbouncer.pid").display(),
        );
        write_private(&ini, config.as_bytes(), root)?;
        let mut command = if root {
            let mut command = Command::new("runuser");
            command.args(["-u", SERVICE_USER, "--"]).arg(&binary);
            command
        } else {
            Command::new(&binary)
        };
        let child = command
            .arg(&ini)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("Failed to start {}", binary.display()))?;
        let bouncer = PgBouncer {
            port,
            child,
            pid_file: dir.join("pgbouncer.pid"),
        };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(bouncer);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        anyhow::bail!(
            "PgBouncer did not listen on {port}; see {}",
            dir.join("pgbouncer.log").display()
        )
    }

    /// Runs `command` (`PAUSE`, `RESUME`, `SHOW POOLS`) on the admin console.
    #[allow(dead_code)] // tests/pooler.rs pauses it; the reliability suite does not
    pub async fn admin(&self, command: &str) -> anyhow::Result<()> {
        self.admin_rows(command).await.map(drop)
    }

    /// The rows `command` (`SHOW STATS`, `SHOW SERVERS`) answers on the
    /// admin console, each as column name → text.
    #[allow(dead_code)] // tests/pooler.rs and the benchmark read them; the reliability suite does not
    pub async fn admin_rows(
        &self,
        command: &str,
    ) -> anyhow::Result<Vec<std::collections::HashMap<String, String>>> {
        let url = format!(
            "postgres://pgbouncer@127.0.0.1:{}/pgbouncer?sslmode=disable",
            self.port
        );
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
        let driver = tokio::spawn(connection);
        let outcome = client.simple_query(command).await;
        driver.abort();
        let messages = outcome.with_context(|| format!("PgBouncer refused {command}"))?;
        Ok(messages
            .iter()
            .filter_map(|message| match message {
                tokio_postgres::SimpleQueryMessage::Row(row) => Some(
                    row.columns()
                        .iter()
                        .enumerate()
                        .map(|(index, column)| {
                            let value = row.get(index).unwrap_or_default().to_string();
                            (column.name().to_string(), value)
                        })
                        .collect(),
                ),
                _ => None,
            })
            .collect())
    }
}

/// A server still running when its handle goes (a test that failed before
/// its `stop`) is stopped at once, so it does not keep its port, its
/// directory and its memory after the run.
impl Drop for Postgres {
    fn drop(&mut self) {
        if self.is_running() {
            let _ = self.stop_in("immediate");
        }
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        // SIGTERM to PgBouncer itself (runuser cannot pass a SIGKILL on):
        // an immediate shutdown that closes every connection.
        if let Ok(pid) = std::fs::read_to_string(&self.pid_file) {
            let _ = Command::new("kill").args(["-TERM", pid.trim()]).status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
