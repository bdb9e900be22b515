//! The status miss and the save with a delay added to every round trip to
//! PostgreSQL: what the one-round-trip design buys where a deployment's
//! database is a network hop away, not on loopback.

use std::time::Duration;

use crate::functions::FunctionEnv;
use crate::report::LoadAverage;
use crate::{RouteRuns, database, delay, wrk};

/// Round trips added between the function and PostgreSQL.
pub const ADDED_ROUND_TRIPS_MS: [u64; 2] = [1, 5];

/// Runs with this many ms added to every round trip to PostgreSQL.
pub type AcrossNetwork = Vec<(u64, wrk::WrkResult)>;

/// The status miss at the network connections (one instance's pool), on
/// loopback and through a proxy that adds each of [`ADDED_ROUND_TRIPS_MS`]
/// to every round trip; then `PUT /steps/{step}` on loopback and with the
/// largest delay.
pub async fn across_network(
    runs: &RouteRuns<'_>,
    env: &FunctionEnv,
    load: &mut LoadAverage,
) -> anyhow::Result<(wrk::WrkResult, AcrossNetwork, AcrossNetwork)> {
    let network_clients = runs.network_connections();
    println!(
        "== status (cache miss), then PUT, at {network_clients} connections: loopback, then {ADDED_ROUND_TRIPS_MS:?} ms added per round trip"
    );
    load.sample("network")?;
    let (near_run, _) = runs
        .status_miss("status-rtt0", env, network_clients)
        .await?;
    near_run.print("loopback");
    let mut far_runs = Vec::new();
    for added_ms in ADDED_ROUND_TRIPS_MS {
        let (_proxy, far_env) = delayed(env, added_ms)?;
        let name = format!("status-rtt{added_ms}");
        let (far_run, _) = runs.status_miss(&name, &far_env, network_clients).await?;
        far_run.print(&format!("+{added_ms} ms"));
        far_runs.push((added_ms, far_run));
    }
    // A save's round trips (three: README, Poolers) each carry the delay.
    let mut put_runs = Vec::new();
    for added_ms in [0, ADDED_ROUND_TRIPS_MS[ADDED_ROUND_TRIPS_MS.len() - 1]] {
        let (_proxy, put_env) = delayed(env, added_ms)?;
        let name = format!("step-put-rtt{added_ms}");
        let (run, _) = runs.step_put(&name, &put_env, network_clients).await?;
        run.print(&format!("PUT +{added_ms} ms"));
        put_runs.push((added_ms, run));
    }
    Ok((near_run, far_runs, put_runs))
}

/// `env` with its database behind a proxy that adds `added_ms` to every
/// round trip (see `delay::DelayProxy` for how long it runs).
fn delayed(env: &FunctionEnv, added_ms: u64) -> anyhow::Result<(delay::DelayProxy, FunctionEnv)> {
    let proxy = delay::DelayProxy::start(
        &format!("{}:{}", database::HOST, database::PORT),
        Duration::from_millis(added_ms),
    )?;
    let delayed_env = FunctionEnv {
        database_url: database::app_url_at(proxy.port, ""),
        ..env.clone()
    };
    Ok((proxy, delayed_env))
}
