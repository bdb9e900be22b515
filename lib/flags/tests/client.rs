//! `EdgeConfigClient`: the read API's endpoints, ETags, auth and the 404 cases.

use std::time::Duration;

use http::StatusCode;
use serde_json::json;

use super::*;
use crate::flags::edge_config::Items;
use crate::flags::{EdgeConfigError, EdgeConfigSource};

#[tokio::test]
async fn items_come_with_an_etag_and_an_unchanged_config_answers_304_without_a_body() {
    let server = EdgeConfigServer::start(items_marked("one")).await;
    let client = server.client();

    let Items::Changed { body, etag } = client.items(None).await.unwrap() else {
        panic!("expected the items");
    };
    let items: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(items["flags"]["marker"], "one");
    let etag = etag.expect("an ETag");

    assert_eq!(client.items(Some(&etag)).await.unwrap(), Items::NotModified);

    server.set_items(items_marked("two"));
    let Items::Changed { body, etag: new } = client.items(Some(&etag)).await.unwrap() else {
        panic!("a changed config comes back in full");
    };
    assert_ne!(new.as_deref(), Some(etag.as_str()));
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["flags"]["marker"],
        "two"
    );

    let seen = server.seen();
    assert_eq!(
        seen.iter().map(|s| s.status).collect::<Vec<_>>(),
        [200, 304, 200]
    );
    assert_eq!(seen[0].if_none_match, None);
    assert_eq!(seen[1].if_none_match.as_deref(), Some(etag.as_str()));
}

#[tokio::test]
async fn every_request_carries_the_bearer_token() {
    let server = EdgeConfigServer::start(items_marked("one")).await;
    let client = server.client();
    client.items(None).await.unwrap();
    client.item("flags").await.unwrap();
    client.digest().await.unwrap();
    let seen = server.seen();
    assert_eq!(seen.len(), 3);
    for request in seen {
        assert_eq!(
            request.authorization.as_deref(),
            Some("Bearer test-token"),
            "{}",
            request.path
        );
    }
}

#[tokio::test]
async fn a_rejected_token_is_a_configuration_error() {
    let server = EdgeConfigServer::start(items_marked("one")).await;
    let client = server.client_with(server.base_url.clone(), "wrong", Duration::from_secs(5));
    let error = client.items(None).await.unwrap_err();
    assert_eq!(
        error,
        EdgeConfigError::Unauthorized(StatusCode::UNAUTHORIZED)
    );
    assert!(error.is_configuration_error());
    assert!(error.to_string().contains("EDGE_CONFIG"), "{error}");

    server.set_mode(Mode::Status(403));
    let error = server.client().item("flags").await.unwrap_err();
    assert_eq!(error, EdgeConfigError::Unauthorized(StatusCode::FORBIDDEN));
    assert!(error.is_configuration_error());
}

#[tokio::test]
async fn a_missing_item_and_a_missing_config_are_told_apart() {
    let server = EdgeConfigServer::start(items_marked("one")).await;
    let client = server.client();
    assert_eq!(client.item("noSuchItem").await.unwrap(), None);
    assert_eq!(
        client.item("flags").await.unwrap().unwrap()["marker"],
        json!("one")
    );

    let mut other = server.base_url.clone();
    other.set_path("/ecfg_doesnotexist");
    let missing = server.client_with(other, TOKEN, Duration::from_secs(5));
    assert_eq!(
        missing.item("flags").await.unwrap_err(),
        EdgeConfigError::ConfigNotFound
    );
    assert_eq!(
        missing.items(None).await.unwrap_err(),
        EdgeConfigError::ConfigNotFound
    );
    assert_eq!(
        missing.digest().await.unwrap_err(),
        EdgeConfigError::ConfigNotFound
    );
    assert!(EdgeConfigError::ConfigNotFound.is_configuration_error());
}

#[tokio::test]
async fn the_digest_is_read_as_a_json_string_and_changes_with_the_items() {
    let server = EdgeConfigServer::start(items_marked("one")).await;
    let client = server.client();
    let first = client.digest().await.unwrap();
    server.set_items(items_marked("two"));
    let second = client.digest().await.unwrap();
    assert!(!first.is_empty());
    assert_ne!(first, second);
}

#[tokio::test]
async fn a_server_error_and_a_timeout_are_reported_as_such() {
    let server = EdgeConfigServer::start(items_marked("one")).await;
    server.set_mode(Mode::Status(502));
    let error = server.client().items(None).await.unwrap_err();
    assert_eq!(error, EdgeConfigError::Status(StatusCode::BAD_GATEWAY));
    assert!(!error.is_configuration_error());

    server.set_mode(Mode::Hang);
    let timeout = Duration::from_millis(200);
    let client = server.client_with(server.base_url.clone(), TOKEN, timeout);
    assert_eq!(
        client.items(None).await.unwrap_err(),
        EdgeConfigError::Timeout(timeout)
    );
}

#[tokio::test]
async fn a_connection_string_with_the_local_server_reaches_it() {
    let server = EdgeConfigServer::start(items_marked("one")).await;
    let raw = format!("{}?token={TOKEN}", server.base_url);
    let EdgeConfigSource::Remote { base_url, token } =
        EdgeConfigSource::parse_connection_string(&raw).unwrap()
    else {
        panic!("a remote source");
    };
    let client = EdgeConfigClient::new(
        reqwest::Client::new(),
        base_url,
        token,
        Duration::from_secs(5),
    );
    assert!(client.item("flags").await.unwrap().is_some());
}
