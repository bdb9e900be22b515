//! A route where deployments run it: with unnamed statements on a direct
//! connection, through PgBouncer 1.18 (Debian's package) announced, and
//! through a PgBouncer 1.24.1 that keeps prepared statements, with named ones.

use crate::cluster;
use crate::cpu::CpuPerRequest;
use crate::database;
use crate::functions::FunctionEnv;
use crate::wrk;

/// A route as deployments behind a transaction-mode pooler run it.
pub struct BehindPoolers {
    /// With `pgbouncer=true` on the direct URL: unnamed statements.
    pub unnamed: (wrk::WrkResult, CpuPerRequest),
    /// Through a PgBouncer (Debian's package, transaction mode, pool of 16).
    pub pgbouncer: (wrk::WrkResult, CpuPerRequest),
    /// Through a PgBouncer that keeps prepared statements (1.24.1,
    /// `max_prepared_statements`, pool of 16), `DATABASE_STATEMENT_MODE=prepared`.
    pub pgbouncer_prepared: (wrk::WrkResult, CpuPerRequest),
}

impl BehindPoolers {
    /// Throughput and CPU per request of each run beside `direct`'s, and the ratios.
    pub fn print_beside(&self, what: &str, direct: &wrk::WrkResult, direct_cpu: &CpuPerRequest) {
        for (run, cpu) in [
            (direct, direct_cpu),
            (&self.unnamed.0, &self.unnamed.1),
            (&self.pgbouncer.0, &self.pgbouncer.1),
            (&self.pgbouncer_prepared.0, &self.pgbouncer_prepared.1),
        ] {
            println!(
                "   {:>8.0} rps  function {:.1} µs  PostgreSQL {:.1} µs",
                run.rps,
                cpu.function_us.unwrap_or_default(),
                cpu.postgres_us
            );
        }
        println!(
            "{what}: PgBouncer ÷ direct {:.2}; unnamed ÷ direct {:.2}; PgBouncer keeping prepared statements ÷ direct {:.2}",
            self.pgbouncer.0.rps / direct.rps,
            self.unnamed.0.rps / direct.rps,
            self.pgbouncer_prepared.0.rps / direct.rps
        );
    }
}

/// `route` (named `{prefix}-…` in the output) behind each kind of pooler.
pub async fn behind_poolers(
    prefix: &str,
    env: &FunctionEnv,
    route: impl AsyncFn(&str, &FunctionEnv) -> anyhow::Result<(wrk::WrkResult, CpuPerRequest)>,
) -> anyhow::Result<BehindPoolers> {
    let unnamed_env = FunctionEnv {
        database_url: format!("{}&pgbouncer=true", database::app_url()),
        ..env.clone()
    };
    let unnamed = route(&format!("{prefix}-unnamed"), &unnamed_env).await?;
    unnamed.0.print("unnamed");
    let pooled_env = |port: u16| FunctionEnv {
        database_url: database::app_url_at(port, "&pgbouncer=true"),
        ..env.clone()
    };
    let pgbouncer = through_pgbouncer(cluster::PoolMode::Transaction, async |port| {
        route(&format!("{prefix}-pgbouncer"), &pooled_env(port)).await
    })
    .await?;
    pgbouncer.0.print("PgBouncer");
    let pgbouncer_prepared = through_pgbouncer(
        cluster::PoolMode::TransactionKeepingPrepared,
        async |port| {
            let mut prepared_env = FunctionEnv {
                database_url: database::app_url_at(port, ""),
                ..env.clone()
            };
            prepared_env
                .extra
                .push(("DATABASE_STATEMENT_MODE".into(), "prepared".into()));
            route(&format!("{prefix}-pgbouncer-prepared"), &prepared_env).await
        },
    )
    .await?;
    pgbouncer_prepared.0.print("PgBouncer, named");
    Ok(BehindPoolers {
        unnamed,
        pgbouncer,
        pgbouncer_prepared,
    })
}

/// `run` with the port of a PgBouncer in `mode` (pool of 16) in front of
/// the benchmark's server, stopped after it.
async fn through_pgbouncer<T>(
    mode: cluster::PoolMode,
    run: impl AsyncFnOnce(u16) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    // Under /tmp: when we are root, PgBouncer runs as `postgres`, which must
    // reach its directory.
    let bouncer_dir = std::env::temp_dir().join(format!(
        "onboarding-bench-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    let bouncer = cluster::PgBouncer::start(&bouncer_dir, database::PORT.parse()?, mode, 16)?;
    let outcome = run(bouncer.port).await;
    drop(bouncer);
    let _ = std::fs::remove_dir_all(&bouncer_dir);
    outcome
}
