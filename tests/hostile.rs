//! Hostile input that once reached PostgreSQL or a panic: every string a body
//! carries is checked before the database sees it, nothing is acknowledged
//! and then lost, and a caller who must sign in is told so with a 401.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::api::{Api, Auth, valid_answer};
use crate::support::{connect, count_until, spawn_app, token};

const PREFERENCES: &str = "/api/onboarding/ai/preferences";
const EVENTS: &str = "/api/onboarding/events";
const EVENT_COUNT: &str = "select count(*) from onboarding.analytics_events";

async fn put(api: &Api, path: &str, auth: &Auth, body: &Value) -> (u16, Value) {
    let response = api
        .request(Method::PUT, path, auth)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn pointers(problem: &Value) -> Vec<&str> {
    problem["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .filter_map(|e| e["pointer"].as_str())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn a_consent_version_the_database_cannot_store_is_a_422_naming_the_field() {
    let app = spawn_app().await;
    let api = Api::at(&app.address);
    let user = Auth::token(&token("hostile_consent", None));
    for consent in ["v".repeat(51), "v1\u{0}".to_string(), "v1\u{7}".to_string()] {
        let body = json!({ "mode": "suggest", "consentVersion": consent });
        let (status, problem) = put(&api, PREFERENCES, &user, &body).await;
        assert_eq!(status, 422, "{consent:?}: {problem}");
        assert_eq!(pointers(&problem), ["/consentVersion"], "{consent:?}");
    }
    let fifty = json!({ "mode": "suggest", "consentVersion": "v".repeat(50) });
    assert_eq!(put(&api, PREFERENCES, &user, &fifty).await.0, 200);
}

#[tokio::test]
async fn a_field_override_key_with_a_nul_is_a_422_not_a_500() {
    let app = spawn_app().await;
    let api = Api::at(&app.address);
    let user = Auth::token(&token("hostile_override", None));
    for key in ["profile.\u{0}", &"x".repeat(202)] {
        let body = json!({ "mode": "off", "fieldOverrides": { key: "off" } });
        let (status, problem) = put(&api, PREFERENCES, &user, &body).await;
        assert_eq!(status, 422, "{problem}");
        assert_eq!(pointers(&problem), ["/fieldOverrides"]);
    }
}

#[tokio::test]
async fn an_event_batch_holding_a_nul_is_refused_whole_and_nothing_of_it_is_stored() {
    let app = spawn_app().await;
    let api = Api::at(&app.address);
    let session = Auth::session(&api.start_session().await);
    let batch = json!({ "events": [
        { "type": "step_viewed", "step": "profile", "properties": { "fine": 1 } },
        { "type": "step_viewed", "step": "profile", "properties": { "a": "\u{0}" } },
        { "type": "step_viewed", "step": "profile", "properties": { "\u{0}": "key" } },
    ]});
    let response = api.post(EVENTS, &session, batch).await;
    assert_eq!(response.status(), 422);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(
        pointers(&problem),
        ["/events/1/properties", "/events/2/properties"]
    );

    let good = json!({ "events": [{ "type": "step_viewed", "step": "profile" }] });
    let response = api.post(EVENTS, &session, good).await;
    assert_eq!(response.status(), 202);
    let admin = connect(&app.db.admin_url()).await;
    let stored = count_until(&admin, EVENT_COUNT, &[], 1).await;
    assert_eq!(stored, 1, "only the acknowledged batch is stored");
}

#[tokio::test]
async fn an_anonymous_caller_asking_for_the_funnel_is_told_to_sign_in() {
    let app = spawn_app().await;
    let api = Api::at(&app.address);
    for auth in [Auth::none(), Auth::session(&api.start_session().await)] {
        let response = api
            .request(Method::GET, "/api/onboarding/analytics/funnel", &auth)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
        assert!(
            response.headers().contains_key("www-authenticate"),
            "401 without WWW-Authenticate"
        );
    }
}

/// Strings PostgreSQL refuses or a careless limit lets through: NUL, other
/// control characters, far too long, and not NFC-normalized.
fn hostile_strings() -> Vec<String> {
    vec![
        "\u{0}".into(),
        "a\u{0}b".into(),
        "\u{1b}[31m".into(),
        "x".repeat(100_000),
        "e\u{301}".into(),
        "\u{fffe}\u{feff}".into(),
    ]
}

/// Every string in `value` replaced, one at a time, by each hostile string.
fn variants(value: &Value) -> Vec<Value> {
    fn walk(value: &Value, replace: &mut dyn FnMut(&Value) -> Vec<Value>) -> Vec<Value> {
        match value {
            Value::String(_) => replace(value),
            Value::Array(items) => (0..items.len())
                .flat_map(|i| {
                    walk(&items[i], replace).into_iter().map(move |item| {
                        let mut copy = items.clone();
                        copy[i] = item;
                        Value::Array(copy)
                    })
                })
                .collect(),
            Value::Object(fields) => fields
                .iter()
                .flat_map(|(key, field)| {
                    let mut out: Vec<Value> = walk(field, replace)
                        .into_iter()
                        .map(|item| {
                            let mut copy = fields.clone();
                            copy.insert(key.clone(), item);
                            Value::Object(copy)
                        })
                        .collect();
                    for hostile in hostile_strings() {
                        let mut copy = fields.clone();
                        let field = copy.remove(key).unwrap();
                        copy.insert(hostile, field);
                        out.push(Value::Object(copy));
                    }
                    out
                })
                .collect(),
            _ => Vec::new(),
        }
    }
    walk(value, &mut |_| {
        hostile_strings().into_iter().map(Value::String).collect()
    })
}

#[tokio::test]
async fn every_string_of_every_body_is_refused_with_a_4xx_never_a_5xx() {
    let app = spawn_app_unlimited().await;
    let api = Api::at(&app.address);
    let user = Auth::token(&token("hostile_walker", None));
    let session = Auth::session(&api.start_session().await);
    let bodies: Vec<(Method, String, Auth, Value)> = vec![
        (
            Method::PUT,
            "/api/onboarding/steps/profile".into(),
            session.clone(),
            json!({ "answers": valid_answer("profile"), "complete": false }),
        ),
        (
            Method::PUT,
            "/api/onboarding/steps/organization".into(),
            user.clone(),
            json!({ "answers": valid_answer("organization"), "complete": true }),
        ),
        (
            Method::POST,
            EVENTS.into(),
            session.clone(),
            json!({ "events": [{ "type": "step_viewed", "step": "profile", "properties": { "source": "email" } }] }),
        ),
        (
            Method::PUT,
            PREFERENCES.into(),
            user.clone(),
            json!({ "mode": "suggest", "fieldOverrides": { "profile.jobTitle": "off" }, "consentVersion": "v1" }),
        ),
        (
            Method::POST,
            "/api/onboarding/ai/suggest".into(),
            user.clone(),
            json!({ "step": "profile", "field": "jobTitle" }),
        ),
    ];
    let mut sent = 0;
    for (method, path, auth, body) in bodies {
        for variant in variants(&body) {
            // Each save replaces what is stored, whatever its version.
            let response = api
                .request(method.clone(), &path, &auth)
                .header("if-match", "*")
                .json(&variant)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            sent += 1;
            assert!(
                status < 500,
                "{method} {path} answered {status} to {}",
                truncated(&variant)
            );
        }
    }
    assert!(sent > 100, "only {sent} variants were sent");
}

fn truncated(value: &Value) -> String {
    value.to_string().chars().take(300).collect()
}

async fn spawn_app_unlimited() -> crate::support::TestApp {
    crate::support::spawn_app_with(
        crate::support::TestDb::migrated().await,
        &[
            ("RATE_LIMIT_WRITES_PER_MINUTE", "1000000".into()),
            ("RATE_LIMIT_WRITES_PER_MINUTE_PER_IP", "1000000".into()),
            ("RATE_LIMIT_AI_PER_MINUTE", "1000000".into()),
            ("RATE_LIMIT_AI_PER_MINUTE_PER_IP", "1000000".into()),
        ],
    )
    .await
}

#[tokio::test]
async fn an_expired_session_is_refused_on_every_route_and_replaced_by_post_session() {
    // No Redis: what PostgreSQL says is all there is, as after 30 idle days
    // when the cached entry is gone too.
    let db = crate::support::TestDb::migrated().await;
    let app = crate::support::spawn_app_with(db, &[("REDIS_URL", String::new())]).await;
    let api = Api::at(&app.address);
    let cookie = api.start_session().await;
    let session = Auth::session(&cookie);
    let saved = api
        .put_step("profile", &session, valid_answer("profile"), false, None)
        .await;
    assert_eq!(saved.status(), 200);
    expire_every_session(&app).await;

    let requests = [
        (Method::GET, "/api/onboarding/status", None),
        (Method::GET, "/api/onboarding/flow", None),
        (Method::GET, "/api/onboarding/steps/profile", None),
        (
            Method::PUT,
            "/api/onboarding/steps/profile",
            Some(json!({ "answers": valid_answer("profile") })),
        ),
        (
            Method::POST,
            EVENTS,
            Some(json!({ "events": [{ "type": "step_viewed", "step": "profile" }] })),
        ),
        (Method::GET, PREFERENCES, None),
        (Method::PUT, PREFERENCES, Some(json!({ "mode": "off" }))),
    ];
    for (method, path, body) in requests {
        let mut request = api
            .request(method.clone(), path, &session)
            .header("if-match", "*");
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "{method} {path}");
        let challenge = response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(challenge.contains("session has expired"), "{challenge}");
    }

    // Signed in with the dead session: it is dropped, so there is nothing to
    // merge, which is a 200 that merged nothing (the client cannot know).
    let user = Auth::token(&token("hostile_expired_merge", None)).with_session(&cookie);
    let merge = api
        .post("/api/onboarding/session/merge", &user, json!({}))
        .await;
    assert_eq!(merge.status(), 200);
    let merged: Value = merge.json().await.unwrap();
    assert_eq!(merged["merged"], json!([]), "{merged}");

    // POST /session replaces it.
    let response = api
        .request(Method::POST, "/api/onboarding/session", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let fresh: Value = response.json().await.unwrap();
    assert_ne!(fresh["session"], cookie);
    let status = api
        .status(&Auth::session(fresh["session"].as_str().unwrap()))
        .await;
    assert_eq!(status["state"], "not_started");
}

#[tokio::test]
async fn a_session_that_does_not_verify_is_replaced_by_post_session_not_refused() {
    let app = spawn_app().await;
    let api = Api::at(&app.address);
    let forged = Auth::session("not-a-session.signature");
    let status = api
        .request(Method::GET, "/api/onboarding/status", &forged)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 401);
    let response = api
        .request(Method::POST, "/api/onboarding/session", &forged)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
}

const CLEARED: &str = "onboarding_session=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax";

/// The `onboarding_session` values of a response's `Set-Cookie` headers.
fn session_cookies_set(response: &reqwest::Response) -> Vec<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|value| value.to_str().unwrap().to_string())
        .filter(|value| value.starts_with("onboarding_session="))
        .collect()
}

/// Ends every anonymous session of `app`'s database, as time would.
async fn expire_every_session(app: &crate::support::TestApp) {
    connect(&app.db.admin_url())
        .await
        .execute(
            "update onboarding.anonymous_sessions set expires_at = now() - interval '1 second'",
            &[],
        )
        .await
        .unwrap();
}

/// A request carrying `cookie` (a browser's, not the test API's header session).
async fn with_cookie(
    app: &crate::support::TestApp,
    method: Method,
    path: &str,
    cookie: &str,
) -> reqwest::Response {
    app.http
        .request(method, format!("{}{path}", app.address))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_merged_session_is_refused_afterwards_and_post_session_starts_afresh() {
    // With Redis: the session's cached liveness must go with the merge.
    let app = crate::support::spawn_app().await;
    let api = Api::at(&app.address);
    let session = api.start_session().await;
    let visitor = Auth::session(&session);
    let response = api
        .put_step(
            "profile",
            &visitor,
            crate::support::api::valid_answer("profile"),
            false,
            None,
        )
        .await;
    assert_eq!(response.status(), 200);
    let user = Auth::token(&token("merged_session_user", None)).with_session(&session);
    let response = api
        .post("/api/onboarding/session/merge", &user, json!({}))
        .await;
    assert_eq!(response.status(), 200);

    // Presented again alone: refused; the cookie is left for POST /session
    // to replace.
    let cookie = format!("onboarding_session={session}");
    let response = with_cookie(&app, Method::GET, "/api/onboarding/status", &cookie).await;
    assert_eq!(response.status(), 401);
    assert!(session_cookies_set(&response).is_empty());
    // With the user's token beside it: the user, whose drafts they now are.
    let status = api.status(&user).await;
    assert_eq!(status["authenticated"], true);
    assert_eq!(status["completedSteps"], json!([]));
    assert_eq!(status["currentStep"], "profile", "{status}");
    // POST /session gives the browser a new session in its place.
    let response = with_cookie(&app, Method::POST, "/api/onboarding/session", &cookie).await;
    assert_eq!(response.status(), 201);
    let set = session_cookies_set(&response);
    assert!(set.len() == 1 && !set[0].contains("Max-Age=0"), "{set:?}");
}

#[tokio::test]
async fn a_visitors_rejected_session_cookie_is_left_for_post_session_to_replace() {
    // No Redis, so an expired session is expired as PostgreSQL says.
    let db = crate::support::TestDb::migrated().await;
    let app = crate::support::spawn_app_with(db, &[("REDIS_URL", String::new())]).await;
    let api = Api::at(&app.address);
    // Signed with another SESSION_SECRET, as after a rotation.
    let rotated = onboarding::auth::SessionCookies::new(
        "a-rotated-session-secret-of-at-least-32-bytes"
            .as_bytes()
            .to_vec(),
    )
    .unwrap()
    .issue(&onboarding::auth::SessionId::generate());
    let stale = format!("onboarding_session={rotated}");

    // Refused (the visitor presented a credential that fails), and not
    // cleared: a clearing on a slow 401 could land after the cookie that
    // POST /session set meanwhile and delete that one.
    let response = with_cookie(&app, Method::GET, "/api/onboarding/status", &stale).await;
    assert_eq!(response.status(), 401);
    assert!(session_cookies_set(&response).is_empty());
    let response = with_cookie(&app, Method::GET, "/api/onboarding/steps/profile", &stale).await;
    assert_eq!(response.status(), 401);
    assert!(session_cookies_set(&response).is_empty());
    // Without the cookie the browser is a plain anonymous visitor.
    let response = api
        .http
        .get(format!("{}/api/onboarding/status", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(session_cookies_set(&response).is_empty());

    // A signed-in user with the stale cookie is that user, and the cookie goes.
    let response = api
        .http
        .get(format!("{}/api/onboarding/status", app.address))
        .header("cookie", &stale)
        .bearer_auth(token("stale_cookie_user", None))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(session_cookies_set(&response), [CLEARED]);
    let status: Value = response.json().await.unwrap();
    assert_eq!(status["authenticated"], true);

    // POST /session: a new session (201) in place of the stale cookie, whose
    // Set-Cookie is the new one, not the clearing.
    let response = with_cookie(&app, Method::POST, "/api/onboarding/session", &stale).await;
    assert_eq!(response.status(), 201);
    let set = session_cookies_set(&response);
    assert_eq!(set.len(), 1, "{set:?}");
    assert!(!set[0].contains("Max-Age=0"), "{set:?}");
    let fresh = set[0].split(';').next().unwrap().to_string();
    let response = with_cookie(&app, Method::GET, "/api/onboarding/status", &fresh).await;
    assert_eq!(response.status(), 200);
    assert!(
        session_cookies_set(&response).is_empty(),
        "a live session stays"
    );

    // The same session once expired: refused, then replaced.
    expire_every_session(&app).await;
    let response = with_cookie(&app, Method::GET, "/api/onboarding/flow", &fresh).await;
    assert_eq!(response.status(), 401);
    assert!(session_cookies_set(&response).is_empty());
    let response = with_cookie(&app, Method::POST, "/api/onboarding/session", &fresh).await;
    assert_eq!(response.status(), 201);
    assert_ne!(
        session_cookies_set(&response)[0].split(';').next().unwrap(),
        fresh
    );

    // A session sent in X-Onboarding-Session is not a cookie: nothing to clear.
    let response = api
        .request(
            Method::GET,
            "/api/onboarding/status",
            &Auth::session(&rotated),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(session_cookies_set(&response).is_empty());
}

async fn spawn_app_limited(extra: &[(&str, &str)]) -> crate::support::TestApp {
    let extra: Vec<(&str, String)> = extra.iter().map(|(k, v)| (*k, v.to_string())).collect();
    crate::support::spawn_app_with(crate::support::TestDb::migrated().await, &extra).await
}

async fn new_session_status(api: &Api, forwarded: Option<&str>) -> u16 {
    let mut request = api.request(Method::POST, "/api/onboarding/session", &Auth::none());
    if let Some(ip) = forwarded {
        request = request.header("x-real-ip", ip);
    }
    request.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn new_sessions_are_limited_per_address_and_a_forged_forwarding_header_changes_nothing() {
    let app = spawn_app_limited(&[("RATE_LIMIT_SESSIONS_PER_MINUTE_PER_IP", "3")]).await;
    let api = Api::at(&app.address);
    crate::support::within_one_rate_limit_minute().await;
    // No trusted proxy: the TCP peer is the client, whatever X-Real-IP says.
    let mut statuses = Vec::new();
    for i in 0..5 {
        statuses.push(new_session_status(&api, Some(&format!("203.0.113.{i}"))).await);
    }
    assert_eq!(statuses, [201, 201, 201, 429, 429]);
}

#[tokio::test]
async fn behind_a_named_proxy_its_header_is_the_client_address() {
    let app = spawn_app_limited(&[
        ("RATE_LIMIT_SESSIONS_PER_MINUTE_PER_IP", "2"),
        ("CLIENT_IP_HEADER", "X-Real-IP"),
    ])
    .await;
    let api = Api::at(&app.address);
    crate::support::within_one_rate_limit_minute().await;
    let mut statuses = Vec::new();
    for ip in [
        "198.51.100.1",
        "198.51.100.1",
        "198.51.100.1",
        "198.51.100.2",
    ] {
        statuses.push(new_session_status(&api, Some(ip)).await);
    }
    assert_eq!(statuses, [201, 201, 429, 201]);
}

/// A new session asked for by the app's own proxy for the visitor at `ip`,
/// presenting `secret`.
async fn proxied_session_status(api: &Api, ip: &str, secret: &str) -> u16 {
    api.request(Method::POST, "/api/onboarding/session", &Auth::none())
        .header("x-onboarding-client-ip", ip)
        .header("x-onboarding-proxy-secret", secret)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn the_apps_own_proxy_names_each_visitor_with_its_secret_and_nobody_else_can() {
    const SECRET: &str = "proxy-secret-0123456789abcdef";
    let app = spawn_app_limited(&[
        ("RATE_LIMIT_SESSIONS_PER_MINUTE_PER_IP", "2"),
        ("TRUSTED_PROXY_SECRET", SECRET),
    ])
    .await;
    let api = Api::at(&app.address);
    crate::support::within_one_rate_limit_minute().await;
    // Every request comes from the proxy's address; each visitor has its own budget.
    let mut statuses = Vec::new();
    for ip in [
        "198.51.100.7",
        "198.51.100.7",
        "198.51.100.7",
        "198.51.100.8",
    ] {
        statuses.push(proxied_session_status(&api, ip, SECRET).await);
    }
    assert_eq!(statuses, [201, 201, 429, 201]);
    // Without the secret the header names nobody: the peer's own budget (2) counts.
    let mut statuses = Vec::new();
    for i in 0..3 {
        let ip = format!("203.0.113.{i}");
        statuses.push(proxied_session_status(&api, &ip, "proxy-secret-0123456789abcdeX").await);
    }
    assert_eq!(statuses, [201, 201, 429]);
}

#[tokio::test]
async fn events_are_counted_one_by_one_and_new_sessions_do_not_escape_the_address_limit() {
    let app = spawn_app_limited(&[
        ("RATE_LIMIT_EVENTS_PER_MINUTE", "10"),
        ("RATE_LIMIT_EVENTS_PER_MINUTE_PER_IP", "30"),
        ("RATE_LIMIT_SESSIONS_PER_MINUTE_PER_IP", "1000"),
        ("RATE_LIMIT_WRITES_PER_MINUTE_PER_IP", "100000"),
    ])
    .await;
    let api = Api::at(&app.address);
    crate::support::within_one_rate_limit_minute().await;
    let batch = |size: usize| json!({ "events": (0..size).map(|_| json!({ "type": "step_viewed", "step": "profile" })).collect::<Vec<_>>() });
    // One session: 8 events pass; 8 more would pass the 10 of the minute.
    let session = Auth::session(&api.start_session().await);
    let first = api.post(EVENTS, &session, batch(8)).await;
    assert_eq!(first.status(), 202);
    // The event limit the batch counted against, not the write limit.
    assert_eq!(first.headers()["ratelimit-limit"], "10");
    assert_eq!(first.headers()["ratelimit-remaining"], "2");
    let mut statuses = vec![202];
    for _ in 0..2 {
        statuses.push(api.post(EVENTS, &session, batch(8)).await.status().as_u16());
    }
    assert_eq!(statuses, [202, 429, 429]);

    // A new session after every 429: the address's budget still holds.
    let mut accepted = 8;
    for _ in 0..20 {
        let fresh = Auth::session(&api.start_session().await);
        let response = api.post(EVENTS, &fresh, batch(8)).await;
        if response.status() == 202 {
            accepted += 8;
        } else {
            assert_eq!(response.status(), 429);
        }
    }
    // 30 per minute per address (the denied batches count too).
    assert!(accepted <= 30, "{accepted} events accepted");
    let admin = connect(&app.db.admin_url()).await;
    let stored = count_until(&admin, EVENT_COUNT, &[], accepted).await;
    assert_eq!(stored, accepted, "what was acknowledged is what is stored");
}
