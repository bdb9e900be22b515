//! `EdgeConfigStore` over the remote client: TTL, stale-while-revalidate,
//! stale-if-error and the embedded default. Nothing here asserts on elapsed
//! time: the server counts requests, and gated requests prove who waited.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::flags::Freshness;

const LONG: Duration = Duration::from_secs(3600);
const TIMEOUT: Duration = Duration::from_secs(5);

/// A snapshot read with a safety net: a read that should not wait on the
/// (gated) server fails the test instead of hanging it.
async fn read(store: &EdgeConfigStore<Flow>) -> crate::flags::Snapshot<Flow> {
    tokio::time::timeout(Duration::from_secs(30), store.snapshot())
        .await
        .expect("the read returned without waiting for the server")
}

fn stale_reason(snapshot: &crate::flags::Snapshot<Flow>) -> String {
    match snapshot.freshness() {
        Freshness::Stale { reason } => reason.clone(),
        other => panic!("expected a stale snapshot, got {other:?}"),
    }
}

#[tokio::test]
async fn a_snapshot_within_its_ttl_is_served_without_asking_again() {
    let server = EdgeConfigServer::start(items_marked("one")).await;
    let store = server.store(LONG, TIMEOUT);
    for _ in 0..10 {
        let snapshot = read(&store).await;
        assert_eq!(marker(&snapshot).as_deref(), Some("one"));
        assert_eq!(snapshot.freshness(), &Freshness::Fresh);
    }
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn concurrent_cold_reads_share_one_fetch() {
    let server = EdgeConfigServer::start(items_marked("one")).await;
    server.set_mode(Mode::Gated);
    let store = server.store(Duration::ZERO, TIMEOUT);
    let reads: Vec<_> = (0..10)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.snapshot().await })
        })
        .collect();
    server.wait_for_hits(1).await;
    server.release(1);
    for task in reads {
        let snapshot = task.await.unwrap();
        assert_eq!(marker(&snapshot).as_deref(), Some("one"));
    }
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn after_the_ttl_reads_get_the_stale_snapshot_at_once_and_one_refresh_runs() {
    let server = EdgeConfigServer::start(items_marked("one")).await;
    // TTL zero: every read after the first finds its snapshot expired.
    let store = server.store(Duration::ZERO, TIMEOUT);
    assert_eq!(marker(&read(&store).await).as_deref(), Some("one"));
    assert_eq!(server.hits(), 1);

    server.set_items(items_marked("two"));
    server.set_mode(Mode::Gated);
    // The server holds the refresh; these reads return only because they do not wait for it.
    assert_eq!(marker(&read(&store).await).as_deref(), Some("one"));
    server.wait_for_hits(2).await;
    let reads: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { read(&store).await })
        })
        .collect();
    for task in reads {
        assert_eq!(marker(&task.await.unwrap()).as_deref(), Some("one"));
    }

    server.release(1);
    store.settled().await;
    assert_eq!(
        server.hits(),
        2,
        "concurrent reads during a refresh add no request"
    );
    let snapshot = read(&store).await;
    assert_eq!(marker(&snapshot).as_deref(), Some("two"));
    assert_eq!(snapshot.freshness(), &Freshness::Fresh);
    server.release(100);
}

#[tokio::test]
async fn an_unchanged_config_is_revalidated_with_a_304_and_the_snapshot_is_kept() {
    let server = EdgeConfigServer::start(items_marked("one")).await;
    let store = server.store(Duration::ZERO, TIMEOUT);
    let first = read(&store).await;
    read(&store).await;
    store.settled().await;
    let again = read(&store).await;
    store.settled().await;
    let statuses: Vec<u16> = server.seen().iter().map(|s| s.status).collect();
    assert_eq!(&statuses[..2], [200, 304]);
    assert!(Arc::ptr_eq(first.config(), again.config()));
    assert_eq!(again.freshness(), &Freshness::Fresh);
}

#[tokio::test]
async fn a_slow_answer_past_the_timeout_serves_the_stale_snapshot() {
    let server = EdgeConfigServer::start(items_marked("one")).await;
    let store = server.store(Duration::ZERO, Duration::from_millis(200));
    let first = read(&store).await;

    server.set_mode(Mode::Hang);
    read(&store).await;
    store.settled().await;
    let snapshot = read(&store).await;
    assert!(Arc::ptr_eq(first.config(), snapshot.config()));
    assert!(stale_reason(&snapshot).contains("no answer within"));
}

#[tokio::test]
async fn a_server_error_serves_the_stale_snapshot_until_the_server_recovers() {
    let server = EdgeConfigServer::start(items_marked("one")).await;
    let store = server.store(Duration::ZERO, TIMEOUT);
    let first = read(&store).await;

    server.set_mode(Mode::Status(500));
    read(&store).await;
    store.settled().await;
    let snapshot = read(&store).await;
    assert!(Arc::ptr_eq(first.config(), snapshot.config()));
    assert!(stale_reason(&snapshot).contains("500"));
    assert!(!snapshot.is_degraded());

    store.settled().await;
    server.set_mode(Mode::Normal);
    server.set_items(items_marked("two"));
    read(&store).await;
    store.settled().await;
    let snapshot = read(&store).await;
    assert_eq!(marker(&snapshot).as_deref(), Some("two"));
    assert_eq!(snapshot.freshness(), &Freshness::Fresh);
}

#[tokio::test]
async fn with_nothing_cached_a_failing_source_falls_back_to_the_embedded_default_marked_degraded() {
    let server = EdgeConfigServer::start(items_marked("one")).await;
    server.set_mode(Mode::Status(500));
    let store = server.store(LONG, TIMEOUT);
    let snapshot = read(&store).await;
    assert!(snapshot.is_degraded());
    let Freshness::Degraded { reason } = snapshot.freshness() else {
        unreachable!()
    };
    assert!(reason.contains("500"), "{reason}");
    assert_eq!(snapshot.flow().id(), "default");
    assert_eq!(
        marker(&snapshot),
        None,
        "the embedded default, not the server's items"
    );
    // The failure is remembered for a TTL: no request per read.
    read(&store).await;
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn a_rejected_token_at_cold_start_serves_the_embedded_default_naming_the_problem() {
    let server = EdgeConfigServer::start(items_marked("one")).await;
    let store = EdgeConfigStore::remote(
        server.client_with(server.base_url.clone(), "revoked", TIMEOUT),
        LONG,
    );
    let snapshot = read(&store).await;
    let Freshness::Degraded { reason } = snapshot.freshness() else {
        panic!("expected the embedded default: {:?}", snapshot.freshness());
    };
    assert!(
        reason.contains("check the token in EDGE_CONFIG"),
        "{reason}"
    );
}

#[tokio::test]
async fn the_embedded_default_is_replaced_once_the_source_answers() {
    let server = EdgeConfigServer::start(items_marked("one")).await;
    server.set_mode(Mode::Status(503));
    let store = server.store(Duration::ZERO, TIMEOUT);
    assert!(read(&store).await.is_degraded());
    server.set_mode(Mode::Normal);
    read(&store).await;
    store.settled().await;
    let snapshot = read(&store).await;
    assert_eq!(marker(&snapshot).as_deref(), Some("one"));
    assert_eq!(snapshot.freshness(), &Freshness::Fresh);
}

#[tokio::test]
async fn an_invalid_flow_in_a_new_config_keeps_the_old_one() {
    let server = EdgeConfigServer::start(items_marked("one")).await;
    let store = server.store(Duration::ZERO, TIMEOUT);
    let first = read(&store).await;
    let first_request = server.seen()[0].clone();
    assert_eq!(first_request.status, 200);

    server.set_items(items_with_an_invalid_flow("bad"));
    read(&store).await;
    store.settled().await;
    let snapshot = read(&store).await;
    store.settled().await;
    assert!(Arc::ptr_eq(first.config(), snapshot.config()));
    let reason = stale_reason(&snapshot);
    assert!(reason.contains("invalid"), "{reason}");

    // The bad version's ETag was not kept: the next refresh still asks with the
    // good one's, so a 304 can never bless the invalid config.
    let seen = server.seen();
    let last = seen.last().unwrap();
    assert_eq!(last.status, 200);
    assert_eq!(last.if_none_match, seen[1].if_none_match);

    server.set_items(items_marked("three"));
    read(&store).await;
    store.settled().await;
    let snapshot = read(&store).await;
    assert_eq!(marker(&snapshot).as_deref(), Some("three"));
    assert_eq!(snapshot.freshness(), &Freshness::Fresh);
}

#[tokio::test]
async fn an_out_of_range_rollout_makes_a_new_config_invalid_too() {
    let server = EdgeConfigServer::start(items_marked("one")).await;
    let store = server.store(Duration::ZERO, TIMEOUT);
    read(&store).await;
    server.set_items(items_with_flags(
        json!({ "marker": "bad", "newCheckout": 150 }),
    ));
    read(&store).await;
    store.settled().await;
    let snapshot = read(&store).await;
    assert_eq!(marker(&snapshot).as_deref(), Some("one"));
    assert!(stale_reason(&snapshot).contains("flags.newCheckout"));
}
