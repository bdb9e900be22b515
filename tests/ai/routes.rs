//! The AI routes over HTTP: preferences gate every call, suggestions never
//! touch the answers until accepted, and the wizard works with AI down.

use reqwest::Method;
use serde_json::{Value, json};

use super::server::{self, FakeProvider};
use crate::support::api::{Api, Auth, valid_answer};
use crate::support::{TestApp, TestDb, free_port, spawn_app_with, token};
use onboarding::ai::ProviderKind;

/// `PUT /api/onboarding/ai/policy` with `body`, as `admin`.
async fn put_policy(api: &Api, admin: &Auth, body: Value) -> reqwest::Response {
    api.request(Method::PUT, "/api/onboarding/ai/policy", admin)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// A provider whose one answer suggests `primary_goal`, and an app that calls it.
async fn suggesting(primary_goal: &str) -> (FakeProvider, TestApp) {
    let provider = FakeProvider::start(
        ProviderKind::OpenAi,
        vec![server::structured(
            ProviderKind::OpenAi,
            json!({ "primaryGoal": primary_goal }),
        )],
    )
    .await;
    let app = app_with_provider(&provider).await;
    (provider, app)
}

async fn app_with_provider(provider: &FakeProvider) -> TestApp {
    let settings = provider.settings();
    spawn_app_with(
        TestDb::migrated().await,
        &[
            ("AI_PROVIDER", "openai".into()),
            ("AI_BASE_URL", settings.base_url.to_string()),
            ("AI_API_KEY", "test-key".into()),
            ("AI_MODEL", settings.model.clone()),
            ("AI_TIMEOUT_MS", "2000".into()),
            ("AI_DEADLINE_MS", "5000".into()),
        ],
    )
    .await
}

async fn suggest(api: &Api, auth: &Auth) -> reqwest::Response {
    api.post(
        "/api/onboarding/ai/suggest",
        auth,
        json!({ "step": "goals", "field": "primaryGoal" }),
    )
    .await
}

#[tokio::test]
async fn a_suggestion_is_offered_only_after_opt_in_and_written_only_on_accept() {
    let (provider, app) = suggesting("See our numbers in real time").await;
    let api = Api::at(&app.address);
    let auth = Auth::session(&api.start_session().await);
    let goals = json!({ "useCases": ["analytics"], "primaryGoal": "numbers faster i guess" });
    assert_eq!(
        api.put_step("goals", &auth, goals.clone(), false, None)
            .await
            .status(),
        200
    );

    // Not opted in: refused before anything leaves the backend.
    let response = suggest(&api, &auth).await;
    assert_eq!(response.status(), 403);
    assert_eq!(provider.count(), 0, "the provider must receive nothing");

    let preferences: Value = api
        .request(Method::GET, "/api/onboarding/ai/preferences", &auth)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(preferences["mode"], "off");
    assert_eq!(preferences["available"], true);
    // Opting in needs the consent text version.
    let response = api
        .request(Method::PUT, "/api/onboarding/ai/preferences", &auth)
        .json(&json!({ "mode": "suggest" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    let response = api
        .request(Method::PUT, "/api/onboarding/ai/preferences", &auth)
        .json(&json!({ "mode": "suggest", "consentVersion": "2026-11" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let response = suggest(&api, &auth).await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    let id = body["suggestion"]["id"].as_str().unwrap().to_string();
    assert_eq!(body["suggestion"]["value"], "See our numbers in real time");
    assert_eq!(provider.count(), 1);

    // The answers are untouched until the user accepts.
    let stored = api.get_step("goals", &auth).await;
    assert_eq!(stored["answers"]["primaryGoal"], "numbers faster i guess");

    // Accepting follows the save rules: the version must match.
    let accept = |version: i64| {
        api.request(
            Method::POST,
            &format!("/api/onboarding/ai/suggestions/{id}/accept"),
            &auth,
        )
        .header("if-match", format!("\"{version}\""))
        .send()
    };
    let stale = accept(7).await.unwrap();
    assert_eq!(stale.status(), 412);
    // The 412 says what is stored, so the client need not read it again.
    assert_eq!(stale.headers()["etag"], "\"1\"");
    let problem: Value = stale.json().await.unwrap();
    assert_eq!(problem["currentVersion"], 1);
    assert_eq!(problem["currentAnswers"], stored["answers"]);
    let accepted = accept(1).await.unwrap();
    assert_eq!(accepted.status(), 200);
    assert_eq!(accepted.headers()["etag"], "\"2\"");
    let body: Value = accepted.json().await.unwrap();
    assert_eq!(
        body["saved"]["answers"]["primaryGoal"],
        "See our numbers in real time"
    );
    assert_eq!(body["saved"]["answers"]["useCases"], json!(["analytics"]));
    // A retried accept changes nothing.
    let again: Value = accept(2).await.unwrap().json().await.unwrap();
    assert_eq!(again["status"], "accepted");
    assert_eq!(again["step"]["version"], 2);
    // Rejecting an accepted suggestion is a conflict.
    let response = api
        .post(
            &format!("/api/onboarding/ai/suggestions/{id}/reject"),
            &auth,
            json!({}),
        )
        .await;
    assert_eq!(response.status(), 409);
}

#[tokio::test]
async fn a_rejected_suggestion_leaves_the_answers_alone_and_a_failing_provider_is_no_suggestion() {
    let (provider, app) = suggesting("Grow revenue").await;
    let api = Api::at(&app.address);
    let auth = Auth::token(&token("ai_user", None));
    let goals = json!({ "useCases": ["analytics"], "primaryGoal": "money" });
    assert_eq!(
        api.put_step("goals", &auth, goals, false, None)
            .await
            .status(),
        200
    );
    let response = api
        .request(Method::PUT, "/api/onboarding/ai/preferences", &auth)
        .json(&json!({ "mode": "off", "fieldOverrides": { "goals.primaryGoal": "suggest" }, "consentVersion": "v1" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let body: Value = suggest(&api, &auth).await.json().await.unwrap();
    let id = body["suggestion"]["id"].as_str().unwrap().to_string();
    let response = api
        .post(
            &format!("/api/onboarding/ai/suggestions/{id}/reject"),
            &auth,
            json!({}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let stored = api.get_step("goals", &auth).await;
    assert_eq!(stored["answers"]["primaryGoal"], "money");
    assert_eq!(stored["version"], 1);

    provider.set_replies(vec![
        server::error(ProviderKind::OpenAi, 500, &[]),
        server::error(ProviderKind::OpenAi, 500, &[]),
        server::error(ProviderKind::OpenAi, 500, &[]),
    ]);
    let response = suggest(&api, &auth).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["suggestion"], Value::Null);
    assert_eq!(body["reason"], "unavailable");
}

#[tokio::test]
async fn the_whole_onboarding_works_unchanged_with_the_ai_provider_down() {
    let closed = free_port();
    let app = spawn_app_with(
        TestDb::migrated().await,
        &[
            ("AI_PROVIDER", "openai".into()),
            ("AI_BASE_URL", format!("http://127.0.0.1:{closed}/v1")),
            ("AI_API_KEY", "test-key".into()),
            ("AI_MODEL", "gpt-test".into()),
        ],
    )
    .await;
    let api = Api::at(&app.address);
    crate::wizard::whole_onboarding(&api, "user_ai_down", "acme-ai-down").await;
    // And a suggestion request degrades to "no suggestion", not an error page.
    let auth = Auth::session(&api.start_session().await);
    api.put_step("goals", &auth, valid_answer("goals"), false, None)
        .await;
    api.request(Method::PUT, "/api/onboarding/ai/preferences", &auth)
        .json(&json!({ "mode": "suggest", "consentVersion": "v1" }))
        .send()
        .await
        .unwrap();
    let response = suggest(&api, &auth).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["reason"], "unavailable");
}

/// An organization's admins read and set its AI policy; the owner is whoever
/// completed onboarding with the organization step, and a member (or anyone
/// else) is refused, by the database's check of the membership.
#[tokio::test]
async fn an_organization_admin_forbids_ai_for_its_members_through_the_policy_route() {
    const POLICY: &str = "/api/onboarding/ai/policy";
    let (provider, app) = suggesting("See our numbers in real time").await;
    let api = Api::at(&app.address);

    // Completing onboarding with an organization makes the caller its owner.
    let owner = "policy_owner".to_string();
    let signed_in = Auth::token(&token(&owner, None));
    for step in ["profile", "organization", "goals", "team", "preferences"] {
        let response = api
            .put_step(step, &signed_in, valid_answer(step), true, None)
            .await;
        assert_eq!(response.status(), 200, "{step}");
    }
    let completed: Value = api
        .post("/api/onboarding/complete", &signed_in, json!({}))
        .await
        .json()
        .await
        .unwrap();
    let organization = completed["organizationId"].as_str().unwrap().to_string();
    let admin = Auth::token(&token(&owner, Some(&organization)));

    // The default: allowed, never set.
    let response = api
        .request(Method::GET, POLICY, &admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let policy: Value = response.json().await.unwrap();
    assert_eq!(policy["organizationId"], organization.as_str());
    assert_eq!(policy["aiAllowed"], true);
    assert!(policy["updatedAt"].is_null());
    assert_eq!(policy["available"], true);

    // A member of the organization (added as the database would) cannot set it,
    // nor can someone whose token merely names the organization.
    let member = "policy_member";
    let superuser = crate::support::connect(&app.db.admin_url()).await;
    superuser
        .execute(
            "insert into onboarding.memberships (organization_id, user_id, role) values ($1, $2, 'member')",
            &[&organization, &member],
        )
        .await
        .unwrap();
    let member = Auth::token(&token(member, Some(&organization)));
    let stranger = Auth::token(&token("policy_stranger", Some(&organization)));
    for caller in [&member, &stranger] {
        for method in [Method::GET, Method::PUT] {
            let response = api
                .request(method.clone(), POLICY, caller)
                .json(&json!({ "aiAllowed": true }))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 403, "{method}");
        }
    }
    // Signed in without an organization, or not signed in at all.
    let response = api
        .request(Method::GET, POLICY, &signed_in)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let visitor = Auth::session(&api.start_session().await);
    let response = api
        .request(Method::GET, POLICY, &visitor)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let response = put_policy(&api, &admin, json!({ "aiAllowed": "no" })).await;
    assert_eq!(response.status(), 422);

    // The member opts in; AI is allowed until the admin forbids it.
    let opt_in = json!({ "mode": "suggest", "consentVersion": "2026-11" });
    let response = api
        .request(Method::PUT, "/api/onboarding/ai/preferences", &member)
        .json(&opt_in)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = put_policy(&api, &admin, json!({ "aiAllowed": false })).await;
    assert_eq!(response.status(), 200);
    let policy: Value = response.json().await.unwrap();
    assert_eq!(policy["aiAllowed"], false);
    assert!(policy["updatedAt"].is_string());
    let stored: (bool, String) = {
        let row = superuser
            .query_one(
                "select ai_allowed, updated_by from onboarding.organization_ai_policies where organization_id = $1",
                &[&organization],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!(stored, (false, owner.clone()));
    let response = suggest(&api, &member).await;
    assert_eq!(response.status(), 403);
    assert_eq!(provider.count(), 0, "the provider must receive nothing");

    // Allowed again: the member's own opt-in still holds.
    let response = put_policy(&api, &admin, json!({ "aiAllowed": true })).await;
    assert_eq!(response.status(), 200);
    let policy: Value = api
        .request(Method::GET, POLICY, &admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(policy["aiAllowed"], true);
    let response = suggest(&api, &member).await;
    assert_eq!(response.status(), 201);
}
