//! The whole API on one port, for a laptop: `cargo run --bin dev`.
//!
//! Creates the database `DATABASE_URL` names when missing, applies pending
//! migrations to it (with `MIGRATION_DATABASE_URL`'s credentials, default the
//! local superuser), then mounts every route. Defaults: PostgreSQL and Redis on 127.0.0.1, the Edge
//! Config file `config/edge-config.json`, port 3001 (`PORT`; Next.js keeps 3000).

use anyhow::Context;
use onboarding::config::Settings;
use onboarding::db::LOCAL_MIGRATION_DATABASE_URL;
use onboarding::settings::{ExposeSecret, Profile};
use onboarding::{AppState, db, http, monitoring, openapi, routes};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::var_os("LOG_FORMAT").is_none() {
        // SAFETY: single-threaded at this point; nothing else reads the environment yet.
        unsafe { std::env::set_var("LOG_FORMAT", "pretty") };
    }
    monitoring::init();
    let settings = Settings::from_env(Profile::Local)?;
    let credentials = std::env::var("MIGRATION_DATABASE_URL")
        .unwrap_or_else(|_| LOCAL_MIGRATION_DATABASE_URL.to_string());
    // The database it serves is the one it migrates.
    let migration_url =
        db::migrate::migration_url_for(settings.database.url().expose_secret(), &credentials)?;
    let report = db::migrate::create_and_run(&migration_url).await?;
    if report.created {
        tracing::info!("created the database");
    }
    for name in &report.applied {
        tracing::info!(migration = %name, "applied");
    }
    let port: u16 = match std::env::var("PORT") {
        Ok(port) => port.parse().context("PORT is not a port number")?,
        Err(_) => onboarding::config::DEV_SERVER_PORT,
    };
    let state = AppState::build(settings)?;
    let app = http::app(state, routes::all().merge(openapi::router()));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .with_context(|| format!("cannot listen on 127.0.0.1:{port}"))?;
    println!("onboarding API listening on http://127.0.0.1:{port}  (try /api/health)");
    // The TCP peer is the client for the per-IP limits (README: Rate limits).
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
