//! Many function instances against a database that takes fewer connections
//! than they would open: 30 `health` processes, each with a pool of 4,
//! against a database limited to 40 connections, 30 of which other clients
//! hold while the load runs. Under load the database refuses some (503s);
//! once the load stops and the idle timeout passes, the instances have given
//! every connection back, and each one answers a single request with 200.

use std::time::Duration;

use futures_util::future::join_all;

use crate::functions::Function;
use crate::support::{TestDb, app_backends, connect};

const INSTANCES: usize = 30;
const LIMIT: usize = 40;
/// Connections other clients hold during the load. What is left (10) is less
/// than one per instance, so the load is refused in part however quickly each
/// instance serves it: each one keeps a connection it opened for a second.
const HELD_ELSEWHERE: usize = 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_at_rest_give_their_connections_back_and_each_answers_again() {
    let db = TestDb::migrated().await;
    let admin = connect(&db.admin_url()).await;
    admin
        .batch_execute(&format!(
            "alter database \"{}\" connection limit {LIMIT}",
            db.name
        ))
        .await
        .unwrap();
    let env = [
        ("DATABASE_POOL_MAX_SIZE", "4"),
        ("DATABASE_POOL_IDLE_TIMEOUT_MS", "1000"),
    ];
    let instances = join_all(
        (0..INSTANCES).map(|_| Function::start_with(env!("CARGO_BIN_EXE_health"), &db, &env)),
    )
    .await;
    let app_url = db.app_url();
    let elsewhere = join_all((0..HELD_ELSEWHERE).map(|_| connect(&app_url))).await;
    let http = reqwest::Client::new();
    let health = |address: &str| {
        let request = http.get(format!("{address}/api/health"));
        async move { request.send().await.unwrap().status().as_u16() }
    };

    // Eight requests at once per instance: up to 4 connections each, 120 asked of the 10 left.
    let load = instances
        .iter()
        .flat_map(|instance| (0..8).map(|_| health(&instance.address)));
    let statuses = join_all(load).await;
    assert!(
        statuses
            .iter()
            .all(|status| *status == 200 || *status == 503),
        "{statuses:?}"
    );
    let refused = statuses.iter().filter(|status| **status == 503).count();
    assert!(
        refused > 0,
        "the load asks for more than the limit: some are refused"
    );
    let held = app_backends(&admin, &db.name).await.len();
    assert!(
        held <= LIMIT,
        "the database's limit holds: {held} connections"
    );
    drop(elsewhere);

    // At rest: the sweep closes the idle connections, in every instance.
    let mut open = held - HELD_ELSEWHERE;
    for _ in 0..100 {
        if open == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        open = app_backends(&admin, &db.name).await.len();
    }
    assert_eq!(
        open, 0,
        "connections kept at rest ({refused} refused under load)"
    );

    // Each instance, asked once, gets a connection and answers.
    let statuses = join_all(instances.iter().map(|instance| health(&instance.address))).await;
    assert_eq!(
        statuses,
        vec![200; INSTANCES],
        "({refused} refused under load)"
    );
}
