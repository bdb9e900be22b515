//! Erasure and export, through HTTP and the application's own role, checked
//! as the superuser: after an erasure no row of any table in the schema
//! mentions the user, and nobody else's rows changed.

use std::collections::BTreeMap;

use onboarding::db::{DbError, RlsContext, Statement};
use reqwest::Method;
use serde_json::{Value, json};
use tokio_postgres::error::SqlState;

use crate::support::api::{Api, Auth, valid_answer};
use crate::support::webhook::{
    CLERK_WEBHOOK, TEST_WEBHOOK_SECRET, now, signature, signed_headers, user_deleted,
};
use crate::support::{TestApp, TestDb, connect, spawn_app_with, token};

const ME: &str = "/api/onboarding/me";
const EXPORT: &str = "/api/onboarding/me/export";

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

async fn app() -> TestApp {
    spawn_app_with(
        TestDb::migrated().await,
        &[
            ("CLERK_WEBHOOK_SECRET", TEST_WEBHOOK_SECRET.into()),
            ("RATE_LIMIT_WRITES_PER_MINUTE", "10000".into()),
            ("RATE_LIMIT_WRITES_PER_MINUTE_PER_IP", "10000".into()),
        ],
    )
    .await
}

/// Every base table of the `onboarding` schema, from the catalog.
async fn tables(admin: &tokio_postgres::Client) -> Vec<String> {
    admin
        .query(
            "select table_name::text from information_schema.tables
             where table_schema = 'onboarding' and table_type = 'BASE TABLE'
             order by 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

/// Per table, the rows (as text) in which `needle` appears anywhere.
async fn rows_mentioning(
    admin: &tokio_postgres::Client,
    needle: &str,
) -> BTreeMap<String, Vec<String>> {
    let mut found = BTreeMap::new();
    for table in tables(admin).await {
        let rows: Vec<String> = admin
            .query(
                &format!(
                    "select r::text from onboarding.\"{table}\" r where strpos(r::text, $1) > 0 order by 1"
                ),
                &[&needle],
            )
            .await
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect();
        if !rows.is_empty() {
            found.insert(table, rows);
        }
    }
    found
}

/// Columns that hold a user id, listed from the catalog, so a new table
/// with one is checked without being named here.
async fn user_columns(admin: &tokio_postgres::Client) -> Vec<(String, String)> {
    admin
        .query(
            "select table_name::text, column_name::text from information_schema.columns
             where table_schema = 'onboarding'
               and (column_name in ('user_id', 'created_by', 'invited_by', 'updated_by')
                    or column_name like '%user_id')
             order by 1, 2",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect()
}

/// Asserts that no row of any table mentions `user`: neither in a user
/// column (nor as an idempotency subject) nor anywhere in its text.
async fn assert_nothing_left_of(admin: &tokio_postgres::Client, user: &str) {
    let columns = user_columns(admin).await;
    for known in [
        ("ai_preferences", "user_id"),
        ("ai_suggestions", "user_id"),
        ("analytics_events", "user_id"),
        ("anonymous_sessions", "merged_into_user_id"),
        ("invitations", "invited_by"),
        ("memberships", "user_id"),
        ("organization_ai_policies", "updated_by"),
        ("organizations", "created_by"),
        ("progress", "user_id"),
        ("user_profiles", "user_id"),
    ] {
        assert!(
            columns.contains(&(known.0.to_string(), known.1.to_string())),
            "{known:?} not listed: {columns:?}"
        );
    }
    for (table, column) in &columns {
        let left: i64 = admin
            .query_one(
                &format!("select count(*) from onboarding.\"{table}\" where \"{column}\" = $1"),
                &[&user],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(left, 0, "{table}.{column} still holds {user}");
    }
    let subjects: i64 = admin
        .query_one(
            "select count(*) from onboarding.idempotency_keys where subject = 'user:' || $1",
            &[&user],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(subjects, 0, "idempotency records of {user} are left");
    let anywhere = rows_mentioning(admin, user).await;
    assert!(
        anywhere.is_empty(),
        "rows still mention {user}: {anywhere:#?}"
    );
}

/// Waits until `sql` (one count, one text parameter) reaches `expected`.
async fn count_until(admin: &tokio_postgres::Client, sql: &str, param: &str, expected: i64) {
    let counted = crate::support::count_until(admin, sql, &[&param], expected).await;
    assert_eq!(counted, expected, "`{sql}`");
}

async fn ok(response: reqwest::Response) -> Value {
    let status = response.status();
    let text = response.text().await.unwrap();
    assert!(status.is_success(), "{status}: {text}");
    serde_json::from_str(&text).unwrap()
}

fn events(count: usize) -> Value {
    let events: Vec<Value> = (0..count)
        .map(|i| json!({ "type": "step_viewed", "step": "profile", "properties": { "i": i } }))
        .collect();
    json!({ "events": events })
}

/// Gives `user` data of every kind: drafts made in an anonymous session and
/// merged in (the session keeps its events and AI choice), a completed
/// onboarding (profile, an organization they alone own, an invitation; a
/// step saved with an `Idempotency-Key`), AI preferences, events, a
/// suggestion; and,
/// in the database, an organization they own with `other`, where they
/// invited someone and set the AI policy, and `other`'s organization they
/// are a member of. Returns the merged session's hash and the id of the
/// organization they alone own.
async fn user_with_everything(
    api: &Api,
    admin: &tokio_postgres::Client,
    user: &str,
    other: &str,
) -> (String, String) {
    let session = api.start_session().await;
    let visitor = Auth::session(&session);
    ok(api
        .put_step(
            "profile",
            &visitor,
            json!({ "fullName": "Ada" }),
            false,
            None,
        )
        .await)
    .await;
    ok(api
        .post("/api/onboarding/events", &visitor, events(2))
        .await)
    .await;
    let opt_in = json!({ "mode": "suggest", "consentVersion": "2026-11" });
    ok(api
        .request(Method::PUT, "/api/onboarding/ai/preferences", &visitor)
        .json(&opt_in)
        .send()
        .await
        .unwrap())
    .await;

    let signed_in = Auth::token(&token(user, None));
    ok(api
        .post(
            "/api/onboarding/session/merge",
            &signed_in.clone().with_session(&session),
            json!({}),
        )
        .await)
    .await;
    let hash: String = admin
        .query_one(
            "select id_hash from onboarding.anonymous_sessions where merged_into_user_id = $1",
            &[&user],
        )
        .await
        .unwrap()
        .get(0);

    let slug = unique("erase").replace('_', "-");
    for step in ["profile", "organization", "goals", "team", "preferences"] {
        let mut answers = valid_answer(step);
        if step == "organization" {
            answers["slug"] = json!(slug);
        }
        let mut request = api
            .request(
                Method::PUT,
                &format!("/api/onboarding/steps/{step}"),
                &signed_in,
            )
            .json(&json!({ "answers": answers, "complete": true }));
        if step == "profile" {
            // The draft came from the session, at version 1.
            request = request.header("if-match", "\"1\"");
        }
        if step == "preferences" {
            // Its answer is stored with the key, under the user.
            request = request.header("idempotency-key", unique("save"));
        }
        ok(request.send().await.unwrap()).await;
    }
    let completed = ok(api
        .post("/api/onboarding/complete", &signed_in, json!({}))
        .await)
    .await;
    let sole = completed["organizationId"].as_str().unwrap().to_string();
    ok(api
        .request(Method::PUT, "/api/onboarding/ai/preferences", &signed_in)
        .json(&opt_in)
        .send()
        .await
        .unwrap())
    .await;
    ok(api
        .post("/api/onboarding/events", &signed_in, events(3))
        .await)
    .await;
    count_until(
        admin,
        "select count(*) from onboarding.analytics_events where user_id = $1",
        user,
        3,
    )
    .await;
    count_until(
        admin,
        "select count(*) from onboarding.analytics_events where session_id = $1",
        &hash,
        2,
    )
    .await;

    let shared = unique("org_shared");
    let others = unique("org_others");
    admin
        .batch_execute(&format!(
            "insert into onboarding.organizations (id, name, slug, created_by) values
               ('{shared}', 'Shared', '{shared_slug}', '{user}'),
               ('{others}', 'Others', '{others_slug}', '{other}');
             insert into onboarding.memberships (organization_id, user_id, role) values
               ('{shared}', '{user}', 'owner'), ('{shared}', '{other}', 'owner'),
               ('{others}', '{other}', 'owner'), ('{others}', '{user}', 'member');
             insert into onboarding.invitations (organization_id, email, invited_by) values
               ('{shared}', 'from-the-erased@example.com', '{user}'),
               ('{others}', 'from-the-other@example.com', '{other}');
             insert into onboarding.organization_ai_policies (organization_id, ai_allowed, updated_by) values
               ('{shared}', false, '{user}'), ('{others}', true, '{other}');
             insert into onboarding.ai_suggestions
               (user_id, flow_id, step, field, prompt_key, prompt_version, provider, model, value, status, latency_ms)
             values ('{user}', 'default', 'goals', 'primaryGoal', 'goals.primaryGoal', 1, 'openai', 'test-model',
                     '\"Ship faster\"', 'pending', 12);",
            shared_slug = shared.replace('_', "-"),
            others_slug = others.replace('_', "-"),
        ))
        .await
        .unwrap();
    (hash, sole)
}

/// `other`'s own data: a saved step and events.
async fn another_user(api: &Api, admin: &tokio_postgres::Client, other: &str) {
    let auth = Auth::token(&token(other, None));
    ok(api
        .put_step("profile", &auth, valid_answer("profile"), true, None)
        .await)
    .await;
    ok(api.post("/api/onboarding/events", &auth, events(2)).await).await;
    count_until(
        admin,
        "select count(*) from onboarding.analytics_events where user_id = $1",
        other,
        2,
    )
    .await;
}

/// `user`'s step answers, as text (their rows do not name the user).
async fn answers_of(admin: &tokio_postgres::Client, user: &str) -> Vec<String> {
    admin
        .query(
            "select a::text from onboarding.step_answers a
             join onboarding.progress p on p.id = a.progress_id
             where p.user_id = $1 order by 1",
            &[&user],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

/// The prompts and their labels, as text: nobody's, never erased.
async fn prompts(admin: &tokio_postgres::Client) -> Vec<String> {
    admin
        .query(
            "select p::text from onboarding.prompts p
             union all select l::text from onboarding.prompt_labels l
             order by 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

fn all_zero(counts: &Value) -> bool {
    counts
        .as_object()
        .unwrap()
        .values()
        .all(|count| count.as_i64() == Some(0))
}

#[tokio::test]
async fn erasing_me_leaves_nothing_of_the_user_in_any_table_and_nothing_else_changes() {
    let app = app().await;
    let api = Api::at(&app.address);
    let admin = connect(&app.db.admin_url()).await;
    let (user, other, member) = (
        unique("user_erased"),
        unique("user_kept"),
        unique("user_member"),
    );
    let (session_hash, sole) = user_with_everything(&api, &admin, &user, &other).await;
    another_user(&api, &admin, &other).await;
    // A third user belongs to the organization the erased user alone owns.
    admin
        .execute(
            "insert into onboarding.memberships (organization_id, user_id, role) values ($1, $2, 'member')",
            &[&sole, &member],
        )
        .await
        .unwrap();
    let others_before = rows_mentioning(&admin, &other).await;
    assert!(others_before.len() >= 5, "{others_before:#?}");
    // What is there to erase: the user in twelve tables (the outbox's events
    // included, which go with their progress), the session in three.
    let users_before = rows_mentioning(&admin, &user).await;
    assert_eq!(users_before.len(), 12, "{users_before:#?}");
    assert!(users_before.contains_key("outbox"), "{users_before:#?}");
    assert_eq!(rows_mentioning(&admin, &session_hash).await.len(), 3);
    assert_eq!(answers_of(&admin, &user).await.len(), 5);
    let answers_before = answers_of(&admin, &other).await;
    let prompts_before = prompts(&admin).await;
    let signed_in = Auth::token(&token(&user, None));
    assert_eq!(api.status(&signed_in).await["state"], "completed");

    let response = api
        .request(Method::DELETE, ME, &signed_in)
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "application/json");
    let erased = ok(response).await;
    let deleted = &erased["deleted"];
    for (table, expected) in [
        ("progress", 1),
        ("stepAnswers", 5),
        ("userProfiles", 1),
        // The one they alone own; the shared one stays.
        ("organizations", 1),
        // Theirs and the third user's in the deleted one, theirs in two others.
        ("memberships", 4),
        // The completion's invitation and the one they sent to the shared one.
        ("invitations", 2),
        ("organizationAiPolicies", 0),
        // Theirs and the merged session's.
        ("aiPreferences", 2),
        ("aiSuggestions", 1),
        ("analyticsEvents", 5),
        ("idempotencyKeys", 1),
        ("anonymousSessions", 1),
    ] {
        assert_eq!(deleted[table], expected, "{table}: {erased}");
    }
    assert_eq!(
        erased["anonymized"],
        json!({ "organizations": 1, "organizationAiPolicies": 1 })
    );

    assert_nothing_left_of(&admin, &user).await;
    assert!(answers_of(&admin, &user).await.is_empty());
    let session_left = rows_mentioning(&admin, &session_hash).await;
    assert!(session_left.is_empty(), "{session_left:#?}");
    assert!(rows_mentioning(&admin, &sole).await.is_empty());
    assert!(rows_mentioning(&admin, &member).await.is_empty());
    assert_eq!(rows_mentioning(&admin, &other).await, others_before);
    assert_eq!(answers_of(&admin, &other).await, answers_before);
    assert_eq!(prompts(&admin).await, prompts_before);
    // The shared organization stays with its other owner and its AI policy.
    let shared = admin
        .query_one(
            "select o.created_by, p.ai_allowed, p.updated_by
             from onboarding.organizations o
             join onboarding.organization_ai_policies p on p.organization_id = o.id
             where o.name = 'Shared'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(shared.get::<_, Option<String>>(0), None);
    assert!(!shared.get::<_, bool>(1));
    assert_eq!(shared.get::<_, Option<String>>(2), None);

    // The cached status is gone with the data, and erasing again finds nothing.
    assert_eq!(api.status(&signed_in).await["state"], "not_started");
    let again = ok(api
        .request(Method::DELETE, ME, &signed_in)
        .send()
        .await
        .unwrap())
    .await;
    assert!(all_zero(&again["deleted"]), "{again}");
    assert!(all_zero(&again["anonymized"]), "{again}");
}

#[tokio::test]
async fn an_anonymous_caller_can_neither_erase_nor_export() {
    let app = app().await;
    let api = Api::at(&app.address);
    let session = api.start_session().await;
    for auth in [Auth::none(), Auth::session(&session)] {
        for (method, path) in [(Method::DELETE, ME), (Method::GET, EXPORT)] {
            let response = api
                .request(method.clone(), path, &auth)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 401, "{method} {path}");
            assert!(response.headers().contains_key("www-authenticate"));
            assert_eq!(
                response.headers()["content-type"],
                "application/problem+json"
            );
        }
    }
}

#[tokio::test]
async fn the_export_holds_the_saved_answers_and_nothing_of_anyone_else() {
    let app = app().await;
    let api = Api::at(&app.address);
    let admin = connect(&app.db.admin_url()).await;
    let (user, member) = (unique("user_exports"), unique("user_member"));
    let organization = unique("org_export");
    admin
        .batch_execute(&format!(
            "insert into onboarding.organizations (id, name, slug, created_by)
               values ('{organization}', 'Exporters', '{slug}', '{user}');
             insert into onboarding.memberships (organization_id, user_id, role)
               values ('{organization}', '{user}', 'owner'), ('{organization}', '{member}', 'member');
             insert into onboarding.invitations (organization_id, email, invited_by)
               values ('{organization}', 'grace@example.com', '{user}');",
            slug = organization.replace('_', "-"),
        ))
        .await
        .unwrap();
    // Both act in the organization, so its owner (an admin) may read the
    // member's progress and events: the export must still hold only theirs.
    let owner = Auth::token(&token(&user, Some(&organization)));
    let colleague = Auth::token(&token(&member, Some(&organization)));
    ok(api
        .put_step("profile", &owner, valid_answer("profile"), true, None)
        .await)
    .await;
    ok(api
        .put_step(
            "organization",
            &owner,
            json!({ "name": "Exporters" }),
            false,
            None,
        )
        .await)
    .await;
    ok(api
        .put_step(
            "profile",
            &colleague,
            json!({ "fullName": "Someone Else" }),
            false,
            None,
        )
        .await)
    .await;
    ok(api.post("/api/onboarding/events", &owner, events(1)).await).await;
    ok(api
        .post("/api/onboarding/events", &colleague, events(2))
        .await)
    .await;
    count_until(
        &admin,
        "select count(*) from onboarding.analytics_events where organization_id = $1",
        &organization,
        3,
    )
    .await;

    let response = api
        .request(Method::GET, EXPORT, &owner)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-disposition"],
        "attachment; filename=\"onboarding-export.json\""
    );
    assert_eq!(response.headers()["cache-control"], "no-store");
    let export: Value = response.json().await.unwrap();
    assert_eq!(export["userId"], user.as_str());
    let progress = export["progress"].as_array().unwrap();
    assert_eq!(progress.len(), 1, "{export}");
    let stored: Value = admin
        .query_one(
            "select a.answers from onboarding.step_answers a join onboarding.progress p on p.id = a.progress_id
             where p.user_id = $1 and a.step = 'profile'",
            &[&user],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(progress[0]["answers"]["profile"]["answers"], stored);
    assert_eq!(progress[0]["answers"]["profile"]["status"], "completed");
    assert_eq!(
        progress[0]["answers"]["organization"]["answers"]["name"],
        "Exporters"
    );
    assert_eq!(progress[0]["answers"]["organization"]["status"], "draft");
    assert!(export.to_string().contains("Ada Lovelace"));
    assert_eq!(export["events"].as_array().unwrap().len(), 1);
    assert_eq!(export["organizations"][0]["id"], organization.as_str());
    assert_eq!(export["organizations"][0]["createdByYou"], true);
    assert_eq!(export["memberships"][0]["role"], "owner");
    assert_eq!(export["invitationsSent"][0]["email"], "grace@example.com");
    let text = export.to_string();
    assert!(
        !text.contains(&member) && !text.contains("Someone Else"),
        "{export}"
    );
}

/// Sends `body` to the webhook with `headers`.
async fn deliver(
    app: &TestApp,
    headers: &[(&'static str, String)],
    body: &str,
) -> reqwest::Response {
    let mut request = app
        .http
        .post(format!("{}{CLERK_WEBHOOK}", app.address))
        .header("content-type", "application/json")
        .body(body.to_string());
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn a_signed_user_deleted_event_erases_that_user_and_a_replay_is_harmless() {
    let app = app().await;
    let api = Api::at(&app.address);
    let admin = connect(&app.db.admin_url()).await;
    let (user, other) = (unique("user_deleted"), unique("user_kept"));
    user_with_everything(&api, &admin, &user, &other).await;
    another_user(&api, &admin, &other).await;
    let others_before = rows_mentioning(&admin, &other).await;

    let body = user_deleted(&user);
    let headers = signed_headers(TEST_WEBHOOK_SECRET, "msg_erase_1", now(), &body);
    let receipt = ok(deliver(&app, &headers, &body).await).await;
    assert_eq!(receipt["received"], "user.deleted");
    assert_eq!(receipt["erased"]["deleted"]["progress"], 1, "{receipt}");
    assert_eq!(receipt["erased"]["deleted"]["analyticsEvents"], 5);
    assert_nothing_left_of(&admin, &user).await;
    assert_eq!(rows_mentioning(&admin, &other).await, others_before);

    // Svix delivers again (same id, timestamp and signature): nothing more goes.
    let replay = ok(deliver(&app, &headers, &body).await).await;
    assert!(all_zero(&replay["erased"]["deleted"]), "{replay}");
    assert_eq!(rows_mentioning(&admin, &other).await, others_before);
}

#[tokio::test]
async fn the_webhook_refuses_bad_signatures_and_stale_timestamps_and_erases_nothing() {
    let app = app().await;
    let api = Api::at(&app.address);
    let user = unique("user_spared");
    let auth = Auth::token(&token(&user, None));
    ok(api
        .put_step("profile", &auth, valid_answer("profile"), true, None)
        .await)
    .await;
    let admin = connect(&app.db.admin_url()).await;
    let before = rows_mentioning(&admin, &user).await;
    assert!(!before.is_empty());

    let body = user_deleted(&user);
    let at = now();
    let other_secret = "whsec_c29tZW9uZSBlbHNlJ3Mgc2lnbmluZyBrZXk=";
    let wrong_key = signed_headers(other_secret, "msg_1", at, &body);
    let old = signed_headers(TEST_WEBHOOK_SECRET, "msg_2", at - 6 * 60, &body);
    let future = signed_headers(TEST_WEBHOOK_SECRET, "msg_3", at + 6 * 60, &body);
    let other_body = signed_headers(TEST_WEBHOOK_SECRET, "msg_4", at, &user_deleted("user_x"));
    let unsigned = vec![
        ("svix-id", "msg_5".to_string()),
        ("svix-timestamp", at.to_string()),
    ];
    let tampered_id = {
        let mut headers = signed_headers(TEST_WEBHOOK_SECRET, "msg_6", at, &body);
        headers[0].1 = "msg_7".into();
        headers
    };
    for (case, headers) in [
        ("another secret", wrong_key),
        ("six minutes old", old),
        ("six minutes ahead", future),
        ("signed for another body", other_body),
        ("no signature", unsigned),
        ("another message id", tampered_id),
    ] {
        let response = deliver(&app, &headers, &body).await;
        assert_eq!(response.status(), 401, "{case}");
        assert!(
            response.headers().contains_key("www-authenticate"),
            "{case}"
        );
        let problem: Value = response.json().await.unwrap();
        assert_eq!(
            problem["type"],
            "https://onboarding.dev/problems/unauthorized"
        );
    }
    assert_eq!(rows_mentioning(&admin, &user).await, before);

    // The unbranded header names carry a valid delivery too.
    let unbranded = vec![
        ("webhook-id", "msg_8".to_string()),
        ("webhook-timestamp", at.to_string()),
        (
            "webhook-signature",
            signature(TEST_WEBHOOK_SECRET, "msg_8", at, &body),
        ),
    ];
    ok(deliver(&app, &unbranded, &body).await).await;
    assert!(rows_mentioning(&admin, &user).await.is_empty());
}

#[tokio::test]
async fn other_events_are_acknowledged_and_ignored() {
    let app = app().await;
    let api = Api::at(&app.address);
    let user = unique("user_created");
    let auth = Auth::token(&token(&user, None));
    ok(api
        .put_step("profile", &auth, valid_answer("profile"), true, None)
        .await)
    .await;
    let admin = connect(&app.db.admin_url()).await;
    let before = rows_mentioning(&admin, &user).await;
    for kind in ["user.created", "user.updated", "session.ended"] {
        let body = json!({ "type": kind, "object": "event", "data": { "id": user } }).to_string();
        let headers = signed_headers(TEST_WEBHOOK_SECRET, &unique("msg"), now(), &body);
        let receipt = ok(deliver(&app, &headers, &body).await).await;
        assert_eq!(receipt, json!({ "received": kind, "erased": null }));
    }
    assert_eq!(rows_mentioning(&admin, &user).await, before);
}

#[tokio::test]
async fn the_webhook_without_its_secret_is_not_configured() {
    let app = spawn_app_with(TestDb::migrated().await, &[]).await;
    let body = user_deleted("user_anyone");
    let headers = signed_headers(TEST_WEBHOOK_SECRET, "msg_1", now(), &body);
    let response = deliver(&app, &headers, &body).await;
    assert_eq!(response.status(), 503);
    let problem: Value = response.json().await.unwrap();
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("not configured"),
        "{problem}"
    );
}

const ERASE_USER: Statement = Statement::new(
    "select onboarding.erase_user($1)",
    &[tokio_postgres::types::Type::TEXT],
);
const ERASE_CALLER: Statement = Statement::new("select onboarding.erase_caller()", &[]);
const READ_PROGRESS: Statement = Statement::new("select count(*) from onboarding.progress", &[]);

fn is_refused(error: &DbError) -> bool {
    error.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE)
}

#[tokio::test]
async fn only_the_login_role_may_erase_a_user_it_names_and_only_a_user_may_erase_themselves() {
    let test_db = TestDb::migrated().await;
    let db = test_db.database();
    let user = RlsContext::user("user_a", None, None);
    let visitor = RlsContext::anonymous(Some(&"a".repeat(64)));
    let refused = db
        .one_trip(&user, &ERASE_USER, &[&"user_b"])
        .await
        .unwrap_err();
    assert!(is_refused(&refused), "{refused:?}");
    let refused = db
        .one_trip(&visitor, &ERASE_USER, &[&"user_b"])
        .await
        .unwrap_err();
    assert!(is_refused(&refused), "{refused:?}");
    let refused = db.one_trip(&visitor, &ERASE_CALLER, &[]).await.unwrap_err();
    assert!(is_refused(&refused), "{refused:?}");
    let login = RlsContext::login_role();
    let refused = db.one_trip(&login, &ERASE_CALLER, &[]).await.unwrap_err();
    assert!(is_refused(&refused), "{refused:?}");
    // The login role itself reaches no table.
    let refused = db.one_trip(&login, &READ_PROGRESS, &[]).await.unwrap_err();
    assert!(is_refused(&refused), "{refused:?}");
    // What each may do.
    assert_eq!(
        db.one_trip(&login, &ERASE_USER, &[&"user_b"])
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        db.one_trip(&user, &ERASE_CALLER, &[]).await.unwrap().len(),
        1
    );
}
