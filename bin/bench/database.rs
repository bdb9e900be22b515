//! The benchmark's own database on the local PostgreSQL: created, migrated and
//! seeded as the superuser with `generate_series` (seconds for 100,000 users),
//! reused by later runs while the seed still matches.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use tokio_postgres::{Client, NoTls};

/// The dedicated database; nothing else uses it.
pub const NAME: &str = "onboarding_bench";
pub const HOST: &str = "127.0.0.1";
pub const PORT: &str = "5432";

pub fn superuser_url() -> String {
    format!("postgres://postgres@{HOST}:{PORT}/{NAME}?sslmode=disable")
}

/// The functions' and pgbench's login: the app role, through RLS.
pub fn app_url() -> String {
    format!("postgres://onboarding_app@{HOST}:{PORT}/{NAME}?sslmode=disable")
}

/// The same login through a proxy or pooler on `port`, with `parameters`
/// (`&key=value…`) added.
pub fn app_url_at(port: u16, parameters: &str) -> String {
    format!("postgres://onboarding_app@{HOST}:{port}/{NAME}?sslmode=disable{parameters}")
}

/// The `sub` of seeded user `n` (1-based).
pub fn user_id(n: u32) -> String {
    format!("bench_{n}")
}

/// The flow the seeded progress belongs to, read from the Edge Config file
/// the functions serve.
pub struct Flow {
    pub id: String,
    pub version: i32,
}

impl Flow {
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("Failed to read {}", path.display()))?;
        let config: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("Failed to parse {}", path.display()))?;
        let flow = &config["onboardingFlow"];
        Ok(Self {
            id: flow["id"]
                .as_str()
                .context("the flow has no id")?
                .to_string(),
            version: i32::try_from(
                flow["version"]
                    .as_i64()
                    .context("the flow has no version")?,
            )?,
        })
    }
}

pub struct Database {
    client: Client,
}

/// Creates, migrates and (when the seed does not match) seeds the database,
/// then clears what earlier runs appended and vacuums, so runs start alike.
pub async fn prepare(users: u32, flow: &Flow) -> anyhow::Result<Database> {
    let url = superuser_url();
    onboarding::db::migrate::create_and_run(&url)
        .await
        .context("Failed to create or migrate the bench database")?;
    let (client, connection) = tokio_postgres::connect(&url, NoTls)
        .await
        .context("Failed to connect to the bench database as postgres")?;
    tokio::spawn(connection);
    let mut db = Database { client };
    db.seed_if_needed(users, flow).await?;
    // One by one: VACUUM cannot run in the implicit transaction of a batch.
    for statement in [
        "truncate onboarding.analytics_events, onboarding.idempotency_keys, onboarding.outbox",
        "vacuum (analyze) onboarding.progress",
        "vacuum (analyze) onboarding.step_answers",
        "vacuum (analyze) onboarding.analytics_events",
        "checkpoint",
    ] {
        db.client
            .batch_execute(statement)
            .await
            .with_context(|| format!("Failed to reset the bench database: {statement}"))?;
    }
    Ok(db)
}

/// Every seeded user has a progress row in the middle of the flow, a completed
/// first step and a draft of the second; `bench.users` maps a user's number to
/// their progress id (pgbench cannot carry a value out of a pipeline, so it
/// looks the id up there).
const SEED: &str = "
create schema if not exists bench;
create table if not exists bench.seed (users integer not null, flow_id text not null, flow_version integer not null);
create table if not exists bench.users (n integer primary key, progress_id uuid not null);
grant usage on schema bench to onboarding_app;
grant select on bench.users to onboarding_app;
";

impl Database {
    async fn seed_if_needed(&mut self, users: u32, flow: &Flow) -> anyhow::Result<()> {
        self.client
            .batch_execute(SEED)
            .await
            .context("Failed to create the bench schema")?;
        let seeded = self
            .client
            .query_opt("select users, flow_id, flow_version from bench.seed", &[])
            .await?
            .map(|row| {
                (
                    row.get::<_, i32>(0),
                    row.get::<_, String>(1),
                    row.get::<_, i32>(2),
                )
            });
        let wanted = (users as i32, flow.id.clone(), flow.version);
        if seeded.as_ref() == Some(&wanted) {
            println!("   seed of {users} users is in place");
            return Ok(());
        }
        let started = Instant::now();
        let users = users as i32;
        let (id, version) = (&flow.id, &flow.version);
        let transaction = self.client.transaction().await?;
        transaction
            .batch_execute(
                "truncate onboarding.step_answers, onboarding.progress, onboarding.analytics_events,
                          onboarding.idempotency_keys, onboarding.outbox, bench.users, bench.seed",
            )
            .await
            .context("Failed to empty the bench database")?;
        let steps: [(&str, &[&(dyn tokio_postgres::types::ToSql + Sync)]); 5] = [
            (
                "insert into onboarding.progress (user_id, flow_id, flow_version, state, current_step, completed_steps)
                 select 'bench_' || g, $2, $3, 'in_progress', 'organization', '{profile}'
                 from generate_series(1, $1::int) g",
                &[&users, id, version],
            ),
            (
                "insert into bench.users (n, progress_id)
                 select substr(user_id, 7)::int, id from onboarding.progress where flow_id = $1",
                &[id],
            ),
            (
                "insert into onboarding.step_answers (progress_id, step, answers, status, flow_version)
                 select progress_id, 'profile',
                        jsonb_build_object('fullName', 'Bench User ' || n, 'jobRole', 'engineering'),
                        'completed', $1
                 from bench.users",
                &[version],
            ),
            (
                "insert into onboarding.step_answers (progress_id, step, answers, status, flow_version)
                 select progress_id, 'organization', jsonb_build_object('name', 'Bench Org ' || n),
                        'draft', $1
                 from bench.users",
                &[version],
            ),
            (
                "insert into bench.seed (users, flow_id, flow_version) values ($1, $2, $3)",
                &[&users, id, version],
            ),
        ];
        for (statement, params) in steps {
            transaction
                .execute(statement, params)
                .await
                .with_context(|| format!("Failed to seed: {statement}"))?;
        }
        transaction
            .commit()
            .await
            .context("Failed to commit the seed")?;
        println!(
            "   seeded {users} users in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }

    /// The sum of the versions of every answer to `step`: each successful
    /// save adds exactly one, so it proves how many writes really happened.
    pub async fn versions_of(&self, step: &str) -> anyhow::Result<i64> {
        let row = self
            .client
            .query_one(
                "select coalesce(sum(version), 0)::bigint from onboarding.step_answers where step = $1",
                &[&step],
            )
            .await
            .context("Failed to sum answer versions")?;
        Ok(row.get(0))
    }

    /// Writes every dirty buffer out and starts a new checkpoint cycle.
    pub async fn checkpoint(&self) -> anyhow::Result<()> {
        self.client
            .batch_execute("checkpoint")
            .await
            .context("Failed to checkpoint the bench database")
    }

    /// Events in the outbox (the benchmark never delivers them).
    pub async fn outbox_events(&self) -> anyhow::Result<i64> {
        Ok(self
            .client
            .query_one("select count(*) from onboarding.outbox", &[])
            .await?
            .get(0))
    }

    /// Stored analytics events.
    pub async fn events(&self) -> anyhow::Result<i64> {
        let row = self
            .client
            .query_one("select count(*) from onboarding.analytics_events", &[])
            .await
            .context("Failed to count events")?;
        Ok(row.get(0))
    }

    /// Waits until `expected` events are stored (they are written after the
    /// response), or the count stops growing for 3 s; returns the count.
    pub async fn wait_for_events(&self, expected: i64, limit: Duration) -> anyhow::Result<i64> {
        let deadline = Instant::now() + limit;
        let mut last = (self.events().await?, Instant::now());
        loop {
            let count = self.events().await?;
            if count >= expected || Instant::now() > deadline {
                return Ok(count);
            }
            if count != last.0 {
                last = (count, Instant::now());
            } else if last.1.elapsed() > Duration::from_secs(3) {
                return Ok(count);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Deletes the keys matching `pattern` (this run's prefix, or what an earlier
/// run left behind): the cache generations outlive a run by 24 hours.
pub async fn clean_redis(url: &str, pattern: &str) -> anyhow::Result<()> {
    ensure!(
        pattern.starts_with("onb-bench-"),
        "refusing to delete {pattern}"
    );
    let client = redis::Client::open(url).context("Failed to open Redis")?;
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .context("Failed to connect to Redis")?;
    let mut cursor: u64 = 0;
    let mut deleted = 0usize;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(5000)
            .query_async(&mut connection)
            .await
            .context("Failed to scan Redis")?;
        if !keys.is_empty() {
            deleted += keys.len();
            let _: i64 = redis::cmd("UNLINK")
                .arg(&keys)
                .query_async(&mut connection)
                .await
                .context("Failed to delete Redis keys")?;
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
    if deleted > 0 {
        println!("   deleted {deleted} Redis keys matching {pattern}");
    }
    Ok(())
}
