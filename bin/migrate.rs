//! Applies pending migrations to any database:
//! `cargo run --bin migrate -- --database-url URL [--create-database]`.
//! Without `--database-url` it reads MIGRATION_DATABASE_URL, then
//! POSTGRES_URL_NON_POOLING.

use anyhow::Context;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut url = None;
    let mut create = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--database-url" => url = Some(args.next().context("--database-url needs a value")?),
            "--create-database" => create = true,
            "-h" | "--help" => {
                println!(
                    "usage: migrate [--database-url URL] [--create-database]\n\
                     URL defaults to MIGRATION_DATABASE_URL, then POSTGRES_URL_NON_POOLING."
                );
                return Ok(());
            }
            other => anyhow::bail!("unknown argument {other}; see --help"),
        }
    }
    let url = url
        .or_else(|| std::env::var("MIGRATION_DATABASE_URL").ok())
        .or_else(|| std::env::var("POSTGRES_URL_NON_POOLING").ok())
        .context("no database: pass --database-url or set MIGRATION_DATABASE_URL")?;
    let report = if create {
        onboarding::db::migrate::create_and_run(&url).await?
    } else {
        onboarding::db::migrate::run(&url).await?
    };
    if report.created {
        println!("created the database");
    }
    if report.applied.is_empty() {
        println!("no pending migrations");
    }
    for name in report.applied {
        println!("applied {name}");
    }
    Ok(())
}
