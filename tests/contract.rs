//! The contract the wizard relies on when input is hostile or concurrent:
//! every refusal is a documented 4xx in problem+json; two tabs never lose a
//! write; retries with one idempotency key write once.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::api::{Api, Auth, valid_answer};
use crate::support::{TestApp, spawn_app, token};

async fn problem(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status(), status);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], status);
    assert!(body["requestId"].is_string());
    body
}

async fn app_with_session() -> (TestApp, Api, Auth) {
    let app = spawn_app().await;
    let api = Api::at(&app.address);
    let session = api.start_session().await;
    (app, api, Auth::session(&session))
}

#[tokio::test]
async fn malformed_json_is_a_400_and_a_wrong_type_a_422_with_a_pointer() {
    let (_app, api, auth) = app_with_session().await;
    let response = api
        .request(Method::PUT, "/api/onboarding/steps/profile", &auth)
        .header("content-type", "application/json")
        .body("{\"answers\": {")
        .send()
        .await
        .unwrap();
    problem(response, 400).await;

    let response = api
        .request(Method::PUT, "/api/onboarding/steps/profile", &auth)
        .json(&json!({ "answers": {}, "complete": "yes" }))
        .send()
        .await
        .unwrap();
    let body = problem(response, 422).await;
    assert_eq!(body["errors"][0]["pointer"], "/complete");
}

#[tokio::test]
async fn a_body_that_is_not_json_is_a_415() {
    let (_app, api, auth) = app_with_session().await;
    let response = api
        .request(Method::PUT, "/api/onboarding/steps/profile", &auth)
        .header("content-type", "text/plain")
        .body("fullName=Ada")
        .send()
        .await
        .unwrap();
    problem(response, 415).await;
}

#[tokio::test]
async fn a_body_over_the_limit_is_a_413() {
    let (_app, api, auth) = app_with_session().await;
    let huge = "x".repeat(200 * 1024);
    let response = api
        .request(Method::PUT, "/api/onboarding/steps/profile", &auth)
        .header("content-type", "application/json")
        .body(format!("{{\"answers\": {{\"fullName\": \"{huge}\"}}}}"))
        .send()
        .await
        .unwrap();
    problem(response, 413).await;
}

#[tokio::test]
async fn an_unknown_step_is_a_404_and_an_unknown_method_a_405() {
    let (_app, api, auth) = app_with_session().await;
    let response = api
        .put_step("not-a-step", &auth, json!({}), false, None)
        .await;
    problem(response, 404).await;
    let response = api
        .request(Method::DELETE, "/api/onboarding/steps/profile", &auth)
        .send()
        .await
        .unwrap();
    problem(response, 405).await;
}

#[tokio::test]
async fn invalid_answers_are_a_422_listing_every_field_error() {
    let (_app, api, auth) = app_with_session().await;
    let response = api
        .put_step(
            "organization",
            &auth,
            json!({ "name": "", "slug": "Not A Slug", "size": "huge", "website": "ftp://x", "extra": 1 }),
            true,
            None,
        )
        .await;
    let body = problem(response, 422).await;
    let pointers: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|error| error["pointer"].as_str().unwrap())
        .collect();
    for pointer in ["/name", "/slug", "/size", "/website", "/extra"] {
        assert!(
            pointers.contains(&pointer),
            "{pointer} missing from {pointers:?}"
        );
    }
}

#[tokio::test]
async fn a_forged_or_expired_token_is_a_401_with_www_authenticate() {
    let (_app, api, _) = app_with_session().await;
    let forged = {
        let real = token("mallory", None);
        let mut parts: Vec<&str> = real.split('.').collect();
        parts[2] = "c2lnbmF0dXJl";
        parts.join(".")
    };
    let expired = onboarding::auth::mint_dev_token(
        crate::support::TEST_JWT_SECRET.as_bytes(),
        &json!({ "sub": "late", "iat": 1_000, "exp": 2_000 }),
    );
    for bad in [forged, expired, "not.a.token".to_string()] {
        let response = api
            .request(Method::GET, "/api/onboarding/status", &Auth::token(&bad))
            .send()
            .await
            .unwrap();
        let www = response.headers().get("www-authenticate").cloned();
        problem(response, 401).await;
        assert!(www.is_some_and(|value| value.to_str().unwrap().starts_with("Bearer")));
    }
}

#[tokio::test]
async fn writing_without_a_session_or_token_is_a_401() {
    let app = spawn_app().await;
    let api = Api::at(&app.address);
    let response = api
        .put_step(
            "profile",
            &Auth::none(),
            valid_answer("profile"),
            false,
            None,
        )
        .await;
    problem(response, 401).await;
}

#[tokio::test]
async fn overwriting_without_if_match_is_428_and_with_a_stale_version_412() {
    let (_app, api, auth) = app_with_session().await;
    let first = api
        .put_step("profile", &auth, valid_answer("profile"), false, None)
        .await;
    assert_eq!(first.status(), 200);
    let response = api
        .put_step("profile", &auth, valid_answer("profile"), false, None)
        .await;
    problem(response, 428).await;
    let second = api
        .put_step("profile", &auth, valid_answer("profile"), false, Some(1))
        .await;
    assert_eq!(second.status(), 200);
    assert_eq!(second.headers()["etag"], "\"2\"");
    let response = api
        .put_step("profile", &auth, valid_answer("profile"), false, Some(1))
        .await;
    problem(response, 412).await;
}

#[tokio::test]
async fn a_412_carries_the_current_version_as_etag_and_the_current_answer() {
    let (_app, api, auth) = app_with_session().await;
    let save = |if_match: &str, name: &str| {
        api.request(Method::PUT, "/api/onboarding/steps/profile", &auth)
            .header("if-match", if_match)
            .json(&json!({ "answers": { "fullName": name }, "complete": false }))
            .send()
    };
    // `*` is "an answer exists" (RFC 9110): nothing is stored yet, so 412.
    let response = save("*", "Ada").await.unwrap();
    assert_eq!(response.headers()["etag"], "\"0\"");
    let body = problem(response, 412).await;
    assert_eq!(
        body["type"],
        "https://onboarding.dev/problems/precondition-failed"
    );
    assert_eq!(body["currentVersion"], 0);
    assert!(body["currentAnswers"].is_null(), "{body}");
    assert_eq!(body["currentCompleted"], false);

    assert_eq!(save("\"0\"", "Ada").await.unwrap().status(), 200);
    assert_eq!(save("\"1\"", "Grace").await.unwrap().status(), 200);
    // Another tab still holding version 1.
    let response = save("\"1\"", "Edsger").await.unwrap();
    let etag = response.headers()["etag"].to_str().unwrap().to_string();
    assert_eq!(etag, "\"2\"");
    let body = problem(response, 412).await;
    assert_eq!(body["currentVersion"], 2);
    assert_eq!(body["currentAnswers"], json!({ "fullName": "Grace" }));
    // What the 412 said is enough to overwrite deliberately.
    let response = save(&etag, "Edsger").await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["etag"], "\"3\"");
    // With an answer stored, `*` overwrites whatever version it has.
    let response = save("*", "Barbara").await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["etag"], "\"4\"");
}

#[tokio::test]
async fn two_tabs_saving_the_same_version_one_wins_the_other_gets_412() {
    let (_app, api, auth) = app_with_session().await;
    let first = api
        .put_step("profile", &auth, valid_answer("profile"), false, None)
        .await;
    assert_eq!(first.status(), 200);
    for round in 0..5 {
        let version = 1 + round;
        let left = json!({ "fullName": format!("Left {round}") });
        let right = json!({ "fullName": format!("Right {round}") });
        let (a, b) = tokio::join!(
            api.put_step("profile", &auth, left.clone(), false, Some(version)),
            api.put_step("profile", &auth, right.clone(), false, Some(version)),
        );
        let statuses = [a.status().as_u16(), b.status().as_u16()];
        let mut sorted = statuses;
        sorted.sort();
        assert_eq!(sorted, [200, 412], "round {round}");
        let winner = if statuses[0] == 200 { left } else { right };
        let stored = api.get_step("profile", &auth).await;
        assert_eq!(
            stored["answers"]["fullName"], winner["fullName"],
            "round {round}"
        );
        assert_eq!(stored["version"], version + 1);
    }
}

/// A save that has to wait for another tab's lock on the caller's progress
/// reads the answers once it holds the lock (they are read behind it in one
/// round trip), so it sees what that tab committed: `If-Match: *` replaces
/// the newest version, where answers read before the lock would name a
/// version that no longer exists and end in a 412.
#[tokio::test]
async fn a_save_waiting_for_another_tabs_lock_sees_what_that_tab_committed() {
    let (app, api, auth) = app_with_session().await;
    let first = api
        .put_step("profile", &auth, valid_answer("profile"), false, None)
        .await;
    assert_eq!(first.status(), 200);
    // The other tab, mid-save: the progress row locked, the answer replaced.
    let other_tab = crate::support::connect(&app.db.admin_url()).await;
    other_tab
        .batch_execute(
            "begin;
             select 1 from onboarding.progress for update;
             update onboarding.step_answers
               set answers = '{\"fullName\": \"Other Tab\"}', version = version + 1
               where step = 'profile'",
        )
        .await
        .unwrap();
    let waiting = tokio::spawn(
        api.request(Method::PUT, "/api/onboarding/steps/profile", &auth)
            .header("if-match", "*")
            .json(&json!({ "answers": { "fullName": "This Tab" }, "complete": false }))
            .send(),
    );
    let observer = crate::support::connect(&app.db.admin_url()).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let waiters: i64 = observer
            .query_one(
                "select count(*) from pg_stat_activity
                 where datname = current_database() and wait_event_type = 'Lock'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if waiters == 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the save never waited for the lock"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    other_tab.batch_execute("commit").await.unwrap();

    let response = waiting.await.unwrap().unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["etag"], "\"3\"");
    let stored = api.get_step("profile", &auth).await;
    assert_eq!(stored["answers"]["fullName"], "This Tab");
    assert_eq!(stored["version"], 3);
}

#[tokio::test]
async fn retried_writes_with_one_idempotency_key_write_once() {
    let (app, api, auth) = app_with_session().await;
    let body = json!({ "answers": valid_answer("profile"), "complete": true });
    let mut responses = Vec::new();
    for _ in 0..3 {
        responses.push(
            api.request(Method::PUT, "/api/onboarding/steps/profile", &auth)
                .header("idempotency-key", "save-profile-1")
                .json(&body)
                .send()
                .await
                .unwrap(),
        );
    }
    for (index, response) in responses.into_iter().enumerate() {
        assert_eq!(response.status(), 200, "attempt {index}");
        assert_eq!(response.headers()["etag"], "\"1\"", "attempt {index}");
        if index > 0 {
            assert_eq!(response.headers()["idempotent-replayed"], "true");
        }
    }
    // The same key with another body is refused, with a problem type of its
    // own: nothing is wrong with the body's fields, the key is.
    let response = api
        .request(Method::PUT, "/api/onboarding/steps/profile", &auth)
        .header("idempotency-key", "save-profile-1")
        .json(&json!({ "answers": { "fullName": "Someone Else" }, "complete": false }))
        .send()
        .await
        .unwrap();
    let body = problem(response, 422).await;
    assert_eq!(
        body["type"],
        "https://onboarding.dev/problems/idempotency-key-reused"
    );
    assert!(body.get("errors").is_none(), "{body}");

    let admin = crate::support::connect(&app.db.admin_url()).await;
    let versions: i64 = admin
        .query_one(
            "select max(version) from onboarding.step_answers where step = 'profile'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(versions, 1, "three attempts wrote one version");
}

#[tokio::test]
async fn concurrent_retries_with_one_key_create_one_write() {
    let (app, api, auth) = app_with_session().await;
    let body = json!({ "answers": valid_answer("profile"), "complete": false });
    let send = || {
        api.request(Method::PUT, "/api/onboarding/steps/profile", &auth)
            .header("idempotency-key", "burst-1")
            .json(&body)
            .send()
    };
    let results = futures_util::future::join_all((0..6).map(|_| send())).await;
    for result in results {
        let response = result.unwrap();
        // The key's lock queues them; all but the first replay its answer.
        assert_eq!(response.status(), 200);
    }
    let admin = crate::support::connect(&app.db.admin_url()).await;
    let rows: i64 = admin
        .query_one(
            "select count(*) from onboarding.idempotency_keys where key = 'burst-1'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 1);
    let version: i64 = admin
        .query_one(
            "select version from onboarding.step_answers where step = 'profile'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(version, 1, "one write for six concurrent attempts");
}

#[tokio::test]
async fn an_event_batch_is_accepted_and_stored_after_the_response() {
    let (app, api, auth) = app_with_session().await;
    let response = api
        .post(
            "/api/onboarding/events",
            &auth,
            json!({ "events": [
                { "type": "flow_started" },
                { "type": "step_viewed", "step": "profile", "properties": { "source": "email" } }
            ]}),
        )
        .await;
    assert_eq!(response.status(), 202);
    let admin = crate::support::connect(&app.db.admin_url()).await;
    let mut stored = 0;
    for _ in 0..50 {
        stored = admin
            .query_one("select count(*) from onboarding.analytics_events", &[])
            .await
            .unwrap()
            .get::<_, i64>(0);
        if stored == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(stored, 2);
    let response = api
        .post(
            "/api/onboarding/events",
            &auth,
            json!({ "events": [{ "type": "teleported" }] }),
        )
        .await;
    problem(response, 422).await;
}

#[tokio::test]
async fn cors_preflight_is_answered_for_configured_origins_only() {
    let db = crate::support::TestDb::migrated().await;
    let app = crate::support::spawn_app_with(
        db,
        &[("CORS_ALLOWED_ORIGINS", "https://wizard.example".into())],
    )
    .await;
    let preflight = |origin: &'static str| {
        app.http
            .request(
                Method::OPTIONS,
                format!("{}/api/onboarding/steps/profile", app.address),
            )
            .header("origin", origin)
            .header("access-control-request-method", "PUT")
            .header("access-control-request-headers", "if-match,content-type")
            .send()
    };
    let allowed = preflight("https://wizard.example").await.unwrap();
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://wizard.example"
    );
    assert_eq!(
        allowed.headers()["access-control-allow-credentials"],
        "true"
    );
    let refused = preflight("https://evil.example").await.unwrap();
    assert!(
        refused
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}

#[tokio::test]
async fn the_status_after_a_save_is_never_the_stale_cached_one() {
    let (_app, api, auth) = app_with_session().await;
    let before = api.status(&auth).await;
    assert_eq!(before["state"], "not_started");
    // Cached now; the caller's own write must invalidate it.
    assert_eq!(api.status(&auth).await, before);
    let response = api
        .put_step("profile", &auth, valid_answer("profile"), true, None)
        .await;
    assert_eq!(response.status(), 200);
    let after = api.status(&auth).await;
    assert_eq!(after["state"], "in_progress");
    assert_eq!(after["completedSteps"], json!(["profile"]));
}

#[tokio::test]
async fn the_funnel_is_for_organization_admins_and_counts_per_step() {
    let app = spawn_app().await;
    let api = Api::at(&app.address);
    let admin = crate::support::connect(&app.db.admin_url()).await;
    admin
        .batch_execute(
            "insert into onboarding.organizations (id, name, slug, created_by) values ('org_f', 'Funnel Co', 'funnel-co', 'boss');
             insert into onboarding.memberships (organization_id, user_id, role) values ('org_f', 'boss', 'owner'), ('org_f', 'worker', 'member');",
        )
        .await
        .unwrap();
    let now = chrono::Utc::now();
    for (user, completed) in [("m1", true), ("m2", true), ("m3", false)] {
        let auth = Auth::token(&token(user, Some("org_f")));
        let mut events = vec![
            json!({ "type": "step_viewed", "step": "profile", "occurredAt": now - chrono::Duration::seconds(100) }),
        ];
        if completed {
            events.push(json!({ "type": "step_completed", "step": "profile", "occurredAt": now - chrono::Duration::seconds(40) }));
        }
        let response = api
            .post("/api/onboarding/events", &auth, json!({ "events": events }))
            .await;
        assert_eq!(response.status(), 202);
    }
    let boss = Auth::token(&token("boss", Some("org_f")));
    let mut profile = Value::Null;
    for _ in 0..50 {
        let response = api
            .request(Method::GET, "/api/onboarding/analytics/funnel", &boss)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        profile = body["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|step| step["step"] == "profile")
            .cloned()
            .unwrap_or(Value::Null);
        if profile["reached"] == 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(profile["reached"], 3);
    assert_eq!(profile["completed"], 2);
    assert_eq!(profile["dropped"], 1);
    assert_eq!(profile["medianSeconds"], 60.0);

    for (who, org) in [
        ("worker", Some("org_f")),
        ("boss", None),
        ("outsider", Some("org_f")),
    ] {
        let response = api
            .request(
                Method::GET,
                "/api/onboarding/analytics/funnel",
                &Auth::token(&token(who, org)),
            )
            .send()
            .await
            .unwrap();
        problem(response, 403).await;
    }
}

#[tokio::test]
async fn a_draft_saved_under_an_older_flow_version_is_upgraded_on_read_by_its_rules() {
    let db = crate::support::TestDb::migrated().await;
    let v1 = crate::support::spawn_app_with(db, &[]).await;
    let api = Api::at(&v1.address);
    let auth = Auth::session(&api.start_session().await);
    let response = api
        .put_step(
            "profile",
            &auth,
            json!({ "fullName": "Ada", "jobRole": "founder" }),
            false,
            None,
        )
        .await;
    assert_eq!(response.status(), 200);

    // Version 2 renames the `founder` role and declares how to carry it over.
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(crate::support::edge_config_file()).unwrap())
            .unwrap();
    let flow = &mut config["onboardingFlow"];
    flow["version"] = json!(2);
    let options = &mut flow["steps"][0]["fields"][1]["kind"]["options"];
    options[0] = json!("executive");
    flow["upgrades"] = json!([{ "fromVersion": 1, "toVersion": 2, "rules": [
        { "mapEnumValue": { "step": "profile", "field": "jobRole", "from": "founder", "to": "executive" } }
    ]}]);
    let file = std::env::temp_dir().join(format!("edge-config-v2-{}.json", uuid::Uuid::new_v4()));
    std::fs::write(&file, config.to_string()).unwrap();
    let v2 = crate::support::spawn_app_with(
        // A second app on the same database (either handle may drop it at the end).
        crate::support::TestDb {
            name: v1.db.name.clone(),
        },
        &[("EDGE_CONFIG_FILE", file.display().to_string())],
    )
    .await;
    let api = Api::at(&v2.address);
    let response = api
        .request(Method::GET, "/api/onboarding/steps/profile", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["etag"], "\"1\"");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["answers"]["jobRole"], "executive");
    assert_eq!(body["flowVersion"], 1);
    assert!(body.get("needsAttention").is_none());
    let _ = std::fs::remove_file(file);
}
