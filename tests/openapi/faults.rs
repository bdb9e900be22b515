//! Answers of a deployment whose limits are reached or whose dependencies
//! fail.

use serde_json::{Value, json};

use super::probe::{
    Body::{Empty, Json, Raw},
    DELETE, GET, POST, PUT, Probe, case, decision_path, minted_session, step_path, unique,
};
use super::working::signed;
use super::{
    ACCEPT, CLERK, COMPLETE, CRON_SECRET, Contract, DELIVER, EVENTS, EXPORT, FLOW, FUNNEL, HEALTH,
    ME, MERGE, POLICY, PREFERENCES, PURGE, REJECT, SESSION, STATUS, STEP, SUGGEST,
};
use crate::support::api::{Auth, valid_answer};
use crate::support::webhook::TEST_WEBHOOK_SECRET;
use crate::support::{TestApp, TestDb, free_port, spawn_app_with, token};

/// One write per minute: a caller's second write of any kind is a 429.
pub async fn answers_at_the_rate_limit(contract: &Contract) -> TestApp {
    let app = spawn_app_with(
        TestDb::migrated().await,
        &[
            ("RATE_LIMIT_WRITES_PER_MINUTE", "1".into()),
            ("RATE_LIMIT_PREFIX", unique("contract-limits")),
            // The limiter fails open past the Redis timeout (250 ms by
            // default), which a loaded machine can reach on a fresh
            // connection; then the first write is not counted and the
            // second is not the 429 this probe expects.
            ("REDIS_TIMEOUT_MS", "5000".into()),
        ],
    )
    .await;
    let probe = Probe::new(contract, &app);
    crate::support::within_one_rate_limit_minute().await;
    // Starting a session is not counted: the visitor has no identity yet.
    let started = probe
        .run(case(201, POST, SESSION, SESSION, &Auth::none(), Empty))
        .await;
    let visitor = Auth::session(started.body["session"].as_str().unwrap());
    let user = Auth::token(&token(&unique("limited"), None));
    let primary_goal = json!({ "step": "goals", "field": "primaryGoal" });
    let profile = json!({ "answers": valid_answer("profile") });
    let id = uuid::Uuid::new_v4().to_string();
    let scheduler = Auth::token(CRON_SECRET);
    #[rustfmt::skip]
    let cases = [
        // The visitor's one write; this deployment has no AI provider.
        case(409, POST, SUGGEST, SUGGEST, &visitor, Json(primary_goal.clone())),
        case(429, PUT, STEP, step_path("profile"), &visitor, Json(profile)),
        case(429, POST, SESSION, SESSION, &visitor, Empty),
        case(429, POST, EVENTS, EVENTS, &visitor, Json(json!({ "events": [] }))),
        case(429, PUT, PREFERENCES, PREFERENCES, &visitor, Json(json!({ "mode": "off" }))),
        case(429, POST, SUGGEST, SUGGEST, &visitor, Json(primary_goal)),
        case(429, POST, ACCEPT, decision_path(&id, "accept"), &visitor, Empty),
        case(429, POST, REJECT, decision_path(&id, "reject"), &visitor, Empty),
        // A signed-in user's one write, then two more.
        case(422, POST, COMPLETE, COMPLETE, &user, Empty),
        case(429, POST, COMPLETE, COMPLETE, &user, Empty),
        case(429, POST, MERGE, MERGE, &user, Empty),
        case(429, PUT, POLICY, POLICY, &user, Json(json!({ "aiAllowed": false }))),
        // This deployment has no CRON_SECRET: the purge never runs.
        case(503, GET, PURGE, PURGE, &scheduler, Empty),
        case(503, GET, DELIVER, DELIVER, &scheduler, Empty),
        case(429, DELETE, ME, ME, &user, Empty),
    ];
    probe.run_all(cases).await;
    app
}

/// PostgreSQL unreachable: 503 wherever the database is needed.
pub async fn answers_with_the_database_down(contract: &Contract) -> TestApp {
    let closed = free_port();
    let app = spawn_app_with(
        TestDb::migrated().await,
        &[
            (
                "DATABASE_URL",
                format!("postgres://onboarding_app@127.0.0.1:{closed}/x?sslmode=disable"),
            ),
            ("CRON_SECRET", CRON_SECRET.into()),
            ("CLERK_WEBHOOK_SECRET", TEST_WEBHOOK_SECRET.into()),
        ],
    )
    .await;
    let probe = Probe::new(contract, &app);
    let nobody = Auth::none();
    probe
        .run_all([
            case(503, GET, HEALTH, HEALTH, &nobody, Empty),
            case(503, POST, SESSION, SESSION, &nobody, Empty),
        ])
        .await;
    every_database_route_answers(&probe, 503).await;
    app
}

/// The schema is gone: every statement fails, which is a 500 with nothing
/// of the cause in the body.
pub async fn answers_with_a_broken_database(contract: &Contract) -> TestApp {
    let app = spawn_app_with(
        TestDb::migrated().await,
        &[
            ("CRON_SECRET", CRON_SECRET.into()),
            ("CLERK_WEBHOOK_SECRET", TEST_WEBHOOK_SECRET.into()),
        ],
    )
    .await;
    crate::support::connect(&app.db.admin_url())
        .await
        .batch_execute("drop schema onboarding cascade")
        .await
        .unwrap();
    let probe = Probe::new(contract, &app);
    let nobody = Auth::none();
    let started = case(500, POST, SESSION, SESSION, &nobody, Empty).then(|answer| {
        let detail = answer.body["detail"].as_str().unwrap();
        assert!(!detail.contains("onboarding"));
    });
    probe.run(started).await;
    every_database_route_answers(&probe, 500).await;
    app
}

/// Sends a request the database must serve to every route that uses it.
async fn every_database_route_answers(probe: &Probe<'_>, status: u16) {
    let user = unique("stranded");
    let user = Auth::token(&token(&user, Some("org_stranded"))).with_session(&minted_session());
    let id = uuid::Uuid::new_v4().to_string();
    let profile = json!({ "answers": valid_answer("profile") });
    let primary_goal = json!({ "step": "goals", "field": "primaryGoal" });
    let scheduler = Auth::token(CRON_SECRET);
    let nobody = Auth::none();
    #[rustfmt::skip]
    let cases = [
        case(status, GET, STATUS, STATUS, &user, Empty),
        case(status, GET, FLOW, FLOW, &user, Empty),
        case(status, GET, STEP, step_path("profile"), &user, Empty),
        case(status, PUT, STEP, step_path("profile"), &user, Json(profile)),
        case(status, POST, COMPLETE, COMPLETE, &user, Empty),
        case(status, POST, MERGE, MERGE, &user, Empty),
        case(status, GET, FUNNEL, FUNNEL, &user, Empty),
        case(status, GET, PREFERENCES, PREFERENCES, &user, Empty),
        case(status, PUT, PREFERENCES, PREFERENCES, &user, Json(json!({ "mode": "off" }))),
        case(status, GET, POLICY, POLICY, &user, Empty),
        case(status, PUT, POLICY, POLICY, &user, Json(json!({ "aiAllowed": false }))),
        case(status, POST, SUGGEST, SUGGEST, &user, Json(primary_goal)),
        case(status, POST, ACCEPT, decision_path(&id, "accept"), &user, Empty),
        case(status, POST, REJECT, decision_path(&id, "reject"), &user, Empty),
        case(status, GET, PURGE, PURGE, &scheduler, Empty),
        case(status, GET, DELIVER, DELIVER, &scheduler, Empty),
        case(status, DELETE, ME, ME, &user, Empty),
        case(status, GET, EXPORT, EXPORT, &user, Empty),
        case(status, POST, CLERK, CLERK, &nobody, Raw("application/json", USER_DELETED))
            .headers(signed(USER_DELETED)),
    ];
    probe.run_all(cases).await;
}

const USER_DELETED: &str = r#"{"type": "user.deleted", "data": {"id": "user_stranded"}}"#;

/// The webhook is limited per client address like every write: Svix
/// retries a 429 later.
pub async fn answers_of_the_webhook_at_the_address_limit(contract: &Contract) -> TestApp {
    let app = spawn_app_with(
        TestDb::migrated().await,
        &[
            ("RATE_LIMIT_WRITES_PER_MINUTE_PER_IP", "1".into()),
            ("RATE_LIMIT_PREFIX", unique("contract-webhook-limits")),
            // As in `answers_at_the_rate_limit`: no failing open on a slow start.
            ("REDIS_TIMEOUT_MS", "5000".into()),
            ("CLERK_WEBHOOK_SECRET", TEST_WEBHOOK_SECRET.into()),
        ],
    )
    .await;
    let probe = Probe::new(contract, &app);
    crate::support::within_one_rate_limit_minute().await;
    let nobody = Auth::none();
    let delivery = || Raw("application/json", USER_DELETED);
    probe
        .run_all([
            case(200, POST, CLERK, CLERK, &nobody, delivery()).headers(signed(USER_DELETED)),
            case(429, POST, CLERK, CLERK, &nobody, delivery()).headers(signed(USER_DELETED)),
        ])
        .await;
    app
}

/// The identity provider's key set cannot be fetched: a token cannot be
/// verified, which is the provider's outage (503), not the caller's fault.
pub async fn answers_with_the_identity_providers_keys_unavailable(contract: &Contract) -> TestApp {
    let closed = free_port();
    let app = spawn_app_with(
        TestDb::migrated().await,
        &[
            ("AUTH_PROVIDER", "oidc".into()),
            (
                "AUTH_JWKS_URL",
                format!("http://127.0.0.1:{closed}/jwks.json"),
            ),
            ("AUTH_ISSUER", "https://issuer.test".into()),
            ("AUTH_AUDIENCE", "onboarding".into()),
        ],
    )
    .await;
    let probe = Probe::new(contract, &app);
    let unverifiable = Auth::token(&rs256_token_for_unknown_key());
    let events = json!({ "events": [{ "type": "flow_started" }] });
    probe
        .run(case(503, POST, EVENTS, EVENTS, &unverifiable, Json(events)))
        .await;
    app
}

/// A well-formed RS256 token whose key must be fetched to check it.
fn rs256_token_for_unknown_key() -> String {
    use base64::Engine as _;
    let encode =
        |value: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string());
    let now = chrono::Utc::now().timestamp();
    format!(
        "{}.{}.{}",
        encode(json!({ "alg": "RS256", "typ": "JWT", "kid": "contract-key" })),
        encode(json!({
            "sub": "user_keys_down", "iss": "https://issuer.test", "aud": "onboarding",
            "iat": now, "exp": now + 3600
        })),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b"not a signature"),
    )
}
