//! Funnel events: what the route acknowledges is what the database holds,
//! also when many callers send at once through a small pool.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::StreamExt;
use onboarding::db::event_writer::EventWriter;
use onboarding::db::{DbError, RlsContext};
use serde_json::{Value, json};

use crate::support::api::{Api, Auth};
use crate::support::proxy::DelayProxy;
use crate::support::{TestDb, connect, count_until, spawn_app_with, token};

fn batch(size: usize) -> Value {
    let events: Vec<Value> = (0..size)
        .map(|i| json!({ "type": "step_viewed", "step": "profile", "properties": { "i": i } }))
        .collect();
    json!({ "events": events })
}

#[tokio::test]
async fn every_acknowledged_event_is_stored_when_many_callers_send_at_once() {
    let db = TestDb::migrated().await;
    // A database 10 ms away behind one pooled connection that requests wait
    // at most 300 ms for: one insert per request cannot keep up with 64
    // concurrent senders, so only grouping stores everything acknowledged.
    let proxy = DelayProxy::start("127.0.0.1:5432", Duration::from_millis(10)).await;
    let url = format!(
        "postgres://onboarding_app@127.0.0.1:{}/{}?sslmode=disable",
        proxy.port, db.name
    );
    let app = spawn_app_with(
        db,
        &[
            ("DATABASE_URL", url),
            ("DATABASE_POOL_MAX_SIZE", "1".into()),
            ("DATABASE_POOL_TIMEOUT_MS", "300".into()),
            ("RATE_LIMIT_WRITES_PER_MINUTE", "100000".into()),
            ("RATE_LIMIT_WRITES_PER_MINUTE_PER_IP", "100000".into()),
            ("RATE_LIMIT_EVENTS_PER_MINUTE", "1000000".into()),
            ("RATE_LIMIT_EVENTS_PER_MINUTE_PER_IP", "1000000".into()),
        ],
    )
    .await;
    let api = Api::at(&app.address);
    let mut callers: Vec<Auth> = Vec::new();
    for _ in 0..8 {
        callers.push(Auth::session(&api.start_session().await));
    }
    for user in 0..8 {
        callers.push(Auth::token(&token(&format!("user_events_{user}"), None)));
    }

    let requests = (0..640).map(|i| {
        let api = &api;
        let caller = i % callers.len();
        let auth = &callers[caller];
        async move {
            let size = 1 + i % 20;
            let response = api.post("/api/onboarding/events", auth, batch(size)).await;
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap();
            (caller, status, body)
        }
    });
    let answers: Vec<(usize, u16, Value)> = futures_util::stream::iter(requests)
        .buffer_unordered(64)
        .collect()
        .await;

    let mut acknowledged_by_caller: HashMap<usize, i64> = HashMap::new();
    for (caller, status, body) in &answers {
        assert!(*status == 202 || *status == 503, "status {status}: {body}");
        if *status == 202 {
            *acknowledged_by_caller.entry(*caller).or_default() +=
                body["accepted"].as_i64().unwrap();
        }
    }
    let acknowledged: i64 = acknowledged_by_caller.values().sum();
    assert!(
        acknowledged > 1000,
        "most batches should be accepted: {acknowledged}"
    );

    let admin = connect(&app.db.admin_url()).await;
    let stored = count_until(
        &admin,
        "select count(*) from onboarding.analytics_events",
        &[],
        acknowledged,
    )
    .await;
    assert_eq!(stored, acknowledged, "acknowledged events lost or doubled");
    // Nothing arrives late either: the count stays put.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let settled: i64 = admin
        .query_one("select count(*) from onboarding.analytics_events", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(settled, acknowledged);
    // Each user's events are stored as theirs, not as a neighbour's in the same write.
    for user in 0..8 {
        let expected = acknowledged_by_caller
            .get(&(8 + user))
            .copied()
            .unwrap_or(0);
        let owned: i64 = admin
            .query_one(
                "select count(*) from onboarding.analytics_events where user_id = $1",
                &[&format!("user_events_{user}")],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(owned, expected, "user_events_{user}");
    }
}

#[tokio::test]
async fn a_batch_the_database_refuses_does_not_take_its_neighbours_with_it() {
    let test_db = TestDb::migrated().await;
    let writer = EventWriter::new(test_db.database());
    let event = |step: &str| {
        json!([{ "flow_id": "default", "flow_version": 1, "step": step,
                 "event_type": "step_viewed", "occurred_at": chrono::Utc::now(),
                 "properties": {} }])
    };
    // An anonymous caller without a session owns nothing, so Row Level
    // Security refuses its insert; the users' batches queued beside it stand.
    let refused = RlsContext::anonymous(None);
    let alice = RlsContext::user("user_alice", None, None);
    let bob = RlsContext::user("user_bob", None, None);
    let (a, r, b) = tokio::join!(
        writer.enqueue(alice, event("profile"), 1),
        writer.enqueue(refused, event("profile"), 1),
        writer.enqueue(bob, event("team"), 1),
    );
    let (a, r, b) = tokio::join!(
        a.unwrap().stored(),
        r.unwrap().stored(),
        b.unwrap().stored()
    );
    assert_eq!(a.unwrap(), 1);
    assert_eq!(b.unwrap(), 1);
    assert!(matches!(r, Err(DbError::Query(_))), "{r:?}");
    // Never silent: the refused batch is counted (and logged) as lost.
    assert_eq!(writer.lost(), 1);

    let admin = connect(&test_db.admin_url()).await;
    let rows = admin
        .query(
            "select user_id, step from onboarding.analytics_events order by user_id",
            &[],
        )
        .await
        .unwrap();
    let owners: Vec<(Option<String>, Option<String>)> =
        rows.iter().map(|row| (row.get(0), row.get(1))).collect();
    assert_eq!(
        owners,
        vec![
            (Some("user_alice".into()), Some("profile".into())),
            (Some("user_bob".into()), Some("team".into())),
        ]
    );
}

#[tokio::test]
async fn events_held_during_a_database_outage_are_stored_when_it_returns() {
    let test_db = TestDb::migrated().await;
    let proxy = DelayProxy::start("127.0.0.1:5432", Duration::ZERO).await;
    let url = format!(
        "postgres://onboarding_app@127.0.0.1:{}/{}?sslmode=disable",
        proxy.port, test_db.name
    );
    let writer = EventWriter::new(test_db.database_at(&test_db.settings().database, url));
    let event = json!([{ "flow_id": "default", "flow_version": 1, "step": "profile",
                         "event_type": "step_viewed", "occurred_at": chrono::Utc::now(),
                         "properties": {} }]);
    let carol = || RlsContext::user("user_carol", None, None);

    proxy.cut();
    let held = writer.enqueue(carol(), event.clone(), 1).await.unwrap();
    // While the writer retries, new batches are refused rather than risked.
    let mut refused = false;
    let mut also_held = Vec::new();
    for _ in 0..50 {
        match writer.enqueue(carol(), event.clone(), 1).await {
            Err(_) => {
                refused = true;
                break;
            }
            Ok(receipt) => also_held.push(receipt),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused, "a batch was accepted while the database was down");
    proxy.restore();
    let stored = held.stored().await;
    assert_eq!(
        stored.unwrap(),
        1,
        "the held batch is written after the outage"
    );
    let expected = 1 + also_held.len() as i64;
    for receipt in also_held {
        assert_eq!(receipt.stored().await.unwrap(), 1);
    }

    let admin = connect(&test_db.admin_url()).await;
    let written: i64 = admin
        .query_one(
            "select count(*) from onboarding.analytics_events where user_id = 'user_carol'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(written, expected, "every accepted batch once");
}
