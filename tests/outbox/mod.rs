//! The transactional outbox and its delivery, against the real database
//! (through the application's role), local webhook receivers, local
//! stand-ins speaking Clerk's and Supabase's admin wire formats, the
//! `cron-deliver` function binary, and the `standardwebhooks` package from
//! PyPI (installed by scripts/test-deps into .tools/py).

mod receiver;

use std::collections::BTreeMap;
use std::time::Duration;

use onboarding::outbound::{Outbound, OutboundSettings};
use onboarding::outbox;
use reqwest::Method;
use serde_json::{Value, json};

use crate::functions::Function;
use crate::support::api::{Api, Auth, valid_answer};
use crate::support::{TestApp, TestDb, connect, count_until, spawn_app_with, token};
use receiver::{Receiver, Reply};

/// A Standard Webhooks secret (24 bytes), as receivers are given it.
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const CRON_SECRET: &str = "outbox-cron-secret-0123456789";
const DELIVER: &str = "/api/cron/deliver";
const STEPS: [&str; 5] = ["profile", "organization", "goals", "team", "preferences"];

fn unique(label: &str) -> String {
    format!(
        "{label}_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    )
}

async fn app_with(extra: &[(&str, String)]) -> TestApp {
    let mut settings = vec![("CRON_SECRET", CRON_SECRET.to_string())];
    settings.extend(extra.iter().cloned());
    spawn_app_with(TestDb::migrated().await, &settings).await
}

fn webhooks_to(receiver: &Receiver, timeout_ms: u64) -> Vec<(&'static str, String)> {
    vec![
        ("OUTBOUND_WEBHOOK_URLS", format!("{}/hooks", receiver.url)),
        ("OUTBOUND_WEBHOOK_SECRET", SECRET.to_string()),
        ("OUTBOUND_TIMEOUT_MS", timeout_ms.to_string()),
        ("OUTBOX_BACKOFF_BASE_MS", "100".to_string()),
    ]
}

/// Saves `steps` (completed) as `user`, with a unique organization slug.
async fn save_steps(api: &Api, auth: &Auth, steps: &[&str]) {
    for step in steps {
        let mut answers = valid_answer(step);
        if *step == "organization" {
            answers["slug"] = json!(unique("outbox").replace('_', "-"));
        }
        let response = api.put_step(step, auth, answers, true, None).await;
        assert_eq!(
            response.status(),
            200,
            "{step}: {}",
            response.text().await.unwrap()
        );
    }
}

/// The whole wizard and completion; returns the completion's body.
async fn onboard(api: &Api, user: &str) -> Value {
    let auth = Auth::token(&token(user, None));
    save_steps(api, &auth, &STEPS).await;
    let response = api.post("/api/onboarding/complete", &auth, json!({})).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// An outbox row, as the superuser reads it.
#[derive(Debug, Clone)]
struct Row {
    id: i64,
    event_id: String,
    user_id: String,
    event_type: String,
    payload: Value,
    state: String,
    attempts: i32,
    delivered_to: Vec<String>,
    last_error: Option<String>,
}

async fn rows(admin: &tokio_postgres::Client) -> Vec<Row> {
    admin
        .query(
            "select id, event_id::text, user_id, event_type, payload, state, attempts,
                    delivered_to, last_error
             from onboarding.outbox order by id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| Row {
            id: row.get(0),
            event_id: row.get(1),
            user_id: row.get(2),
            event_type: row.get(3),
            payload: row.get(4),
            state: row.get(5),
            attempts: row.get(6),
            delivered_to: row.get(7),
            last_error: row.get(8),
        })
        .collect()
}

/// Makes every pending event due now, as time passing would.
async fn make_due(admin: &tokio_postgres::Client) {
    admin
        .execute(
            "update onboarding.outbox set next_attempt_at = now() where state = 'pending'",
            &[],
        )
        .await
        .unwrap();
}

async fn scheduled_run(http: &reqwest::Client, base: &str) -> Value {
    let response = http
        .get(format!("{base}{DELIVER}"))
        .bearer_auth(CRON_SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

fn outbound(pairs: &[(&str, String)]) -> Outbound {
    let lookup = |name: &str| {
        pairs
            .iter()
            .rev()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.clone())
    };
    Outbound::new(OutboundSettings::from_lookup(&lookup).unwrap()).unwrap()
}

#[tokio::test]
async fn events_are_written_with_the_change_that_causes_them_and_only_then() {
    let app = app_with(&[]).await;
    let api = Api::at(&app.address);
    let admin = connect(&app.db.admin_url()).await;

    // A whole onboarding: one event per step completed, then the completion.
    let user = unique("user_events");
    let completed = onboard(&api, &user).await;
    let events = rows(&admin).await;
    let types: Vec<&str> = events.iter().map(|row| row.event_type.as_str()).collect();
    assert_eq!(
        types,
        [
            "onboarding.step_completed",
            "onboarding.step_completed",
            "onboarding.step_completed",
            "onboarding.step_completed",
            "onboarding.step_completed",
            "onboarding.completed"
        ]
    );
    let steps: Vec<&str> = events[..5]
        .iter()
        .map(|row| row.payload["data"]["step"].as_str().unwrap())
        .collect();
    assert_eq!(steps, STEPS);
    for row in &events {
        assert_eq!(row.user_id, user);
        // The owner in the body is the database's, from the context.
        assert_eq!(row.payload["data"]["userId"], json!(user));
        assert_eq!(row.payload["type"], json!(row.event_type));
        assert_eq!(row.state, "pending");
    }
    assert_eq!(
        events[5].payload["data"]["organizationId"],
        completed["organizationId"]
    );
    // Their ids are time-ordered (UUIDv7), so the `event_id` index takes
    // each at its right edge: in the order the events were written.
    let ids: Vec<uuid::Uuid> = events
        .iter()
        .map(|row| row.event_id.parse().unwrap())
        .collect();
    assert!(ids.iter().all(|id| id.get_version_num() == 7), "{ids:?}");
    assert!(ids.is_sorted(), "{ids:?}");
    // Completing again writes nothing.
    let auth = Auth::token(&token(&user, None));
    let again = api.post("/api/onboarding/complete", &auth, json!({})).await;
    assert_eq!(again.status(), 200);
    assert_eq!(rows(&admin).await.len(), 6);

    // A completion that fails (steps missing) writes no event; saving a
    // completed step again is no new completion.
    let partial = unique("user_partial");
    let auth = Auth::token(&token(&partial, None));
    save_steps(&api, &auth, &["profile"]).await;
    let failed = api.post("/api/onboarding/complete", &auth, json!({})).await;
    assert_eq!(failed.status(), 422);
    let again = api
        .put_step("profile", &auth, valid_answer("profile"), true, Some(1))
        .await;
    assert_eq!(again.status(), 200);
    let draft = api.put_step("goals", &auth, json!({}), false, None).await;
    assert_eq!(draft.status(), 200);
    let theirs: Vec<Row> = rows(&admin)
        .await
        .into_iter()
        .filter(|row| row.user_id == partial)
        .collect();
    assert_eq!(theirs.len(), 1, "{theirs:?}");
    assert_eq!(theirs[0].event_type, "onboarding.step_completed");

    // An anonymous visitor's steps make no event; moving them to the user
    // at sign-in makes one.
    let session = api.start_session().await;
    let visitor = Auth::session(&session);
    save_steps(&api, &visitor, &["profile", "organization"]).await;
    let before = rows(&admin).await.len();
    assert_eq!(before, 7);
    let merger = unique("user_merged");
    let signed_in = Auth::token(&token(&merger, None)).with_session(&session);
    let merged = api
        .post("/api/onboarding/session/merge", &signed_in, json!({}))
        .await;
    assert_eq!(merged.status(), 200);
    let all = rows(&admin).await;
    assert_eq!(all.len(), 8);
    let event = &all[7];
    assert_eq!(event.event_type, "onboarding.merged");
    assert_eq!(event.user_id, merger);
    assert_eq!(
        event.payload["data"]["fromSession"],
        json!(["organization", "profile"])
    );
}

#[tokio::test]
async fn no_request_role_can_read_change_or_forge_an_event() {
    let app = app_with(&[]).await;
    let api = Api::at(&app.address);
    let user = unique("user_forge");
    onboard(&api, &user).await;
    let client = connect(&app.db.app_url()).await;
    let denied = tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE;

    // The login role reaches no event, even its own function's table.
    let error = client
        .query("select * from onboarding.outbox", &[])
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(&denied));

    // A signed-in request may add only its own user's events, and read none.
    let as_user = |sub: &str| {
        format!(
            "select set_config('role', 'authenticated', true), \
             set_config('request.jwt.claims', '{{\"role\":\"authenticated\",\"sub\":\"{sub}\"}}', true)"
        )
    };
    for (sql, expected) in [
        ("select count(*) from onboarding.outbox", &denied),
        (
            "update onboarding.outbox set state = 'delivered'",
            &denied,
        ),
        ("select * from onboarding.outbox_claim(10, 30)", &denied),
        (
            "insert into onboarding.outbox (event_id, user_id, progress_id, event_type, payload)
             values (gen_random_uuid(), 'someone_else', gen_random_uuid(), 'onboarding.completed', '{}')",
            &denied,
        ),
    ] {
        client.batch_execute("begin").await.unwrap();
        client.batch_execute(&as_user(&user)).await.unwrap();
        let error = client.batch_execute(sql).await.unwrap_err();
        assert_eq!(error.code(), Some(expected), "{sql}: {error}");
        client.batch_execute("rollback").await.unwrap();
    }
}

#[tokio::test]
async fn every_delivery_verifies_with_the_standardwebhooks_package_and_tampered_ones_do_not() {
    let receiver = Receiver::start().await;
    let app = app_with(&webhooks_to(&receiver, 3_000)).await;
    let api = Api::at(&app.address);
    let admin = connect(&app.db.admin_url()).await;
    let user = unique("user_signed");
    onboard(&api, &user).await;

    // Each write's own attempt after its response delivers its event.
    let received = receiver.until(|received| received.len() >= 6).await;
    assert_eq!(received.len(), 6);
    let delivered = count_until(
        &admin,
        "select count(*) from onboarding.outbox where state = 'delivered'",
        &[],
        6,
    )
    .await;
    assert_eq!(delivered, 6);
    // In order, each under its event's id.
    let events = rows(&admin).await;
    let ids: Vec<&str> = received.iter().map(|r| r.header("webhook-id")).collect();
    let expected: Vec<&str> = events.iter().map(|row| row.event_id.as_str()).collect();
    assert_eq!(ids, expected);
    for (request, row) in received.iter().zip(&events) {
        assert_eq!(request.method, Method::POST);
        assert_eq!(request.path, "/hooks");
        assert_eq!(request.header("content-type"), "application/json");
        assert_eq!(request.json(), row.payload);
        assert!(request.header("webhook-signature").starts_with("v1,"));
        assert_eq!(
            row.delivered_to,
            [format!("webhook:{}/hooks", receiver.url)]
        );
    }

    let job = json!({
        "secret": SECRET,
        "deliveries": received.iter().map(|request| json!({
            "headers": {
                "webhook-id": request.header("webhook-id"),
                "webhook-timestamp": request.header("webhook-timestamp"),
                "webhook-signature": request.header("webhook-signature"),
            },
            "body": request.body,
        })).collect::<Vec<_>>(),
    });
    let result = standardwebhooks_verify(&job);
    assert_eq!(result["verified"], 6, "{result}");
    assert_eq!(result["rejected"], 0, "{result}");
    assert_eq!(result["tamperedRejected"], 12, "{result}");
    assert_eq!(result["tamperedAccepted"], 0, "{result}");
    assert_eq!(result["types"][5], "onboarding.completed");
}

/// Runs tests/outbox/verify.py with the `standardwebhooks` package.
fn standardwebhooks_verify(job: &Value) -> Value {
    use std::io::Write;
    let root = env!("CARGO_MANIFEST_DIR");
    let python = format!("{root}/.tools/py/bin/python");
    assert!(
        std::path::Path::new(&python).exists(),
        "run scripts/test-deps: it installs the standardwebhooks package into .tools/py"
    );
    let mut child = std::process::Command::new(python)
        .arg(format!("{root}/tests/outbox/verify.py"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(job.to_string().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    serde_json::from_slice(&output.stdout).unwrap()
}

#[tokio::test]
async fn a_hanging_receiver_holds_up_no_route_and_loses_nothing() {
    let receiver = Receiver::start().await;
    receiver.answer(|_, _| Reply::Hang);
    let app = app_with(&webhooks_to(&receiver, 4_000)).await;
    let api = Api::at(&app.address);
    let admin = connect(&app.db.admin_url()).await;
    let user = unique("user_hang");
    let auth = Auth::token(&token(&user, None));
    save_steps(&api, &auth, &["profile"]).await;
    // The answer came before the attempt ended: had the route waited for
    // it, the hanging receiver would have made it fail by now.
    let events = rows(&admin).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].last_error, None, "{events:?}");
    assert_eq!(events[0].state, "pending");
    let received = receiver.until(|received| !received.is_empty()).await;
    assert_eq!(received.len(), 1);

    // The attempt times out and is retried; once the receiver answers, the
    // event arrives again under the same id.
    let timed_out = count_until(
        &admin,
        "select count(*) from onboarding.outbox where last_error like '%timed out%'",
        &[],
        1,
    )
    .await;
    assert_eq!(timed_out, 1);
    receiver.answer(|_, _| Reply::Status(200));
    make_due(&admin).await;
    let run = scheduled_run(&app.http, &app.address).await;
    assert_eq!(run["delivered"], 1, "{run}");
    let received = receiver.received();
    assert_eq!(received.len(), 2);
    assert_eq!(
        received[0].header("webhook-id"),
        received[1].header("webhook-id")
    );
    assert_eq!(received[0].body, received[1].body);
    assert_eq!(rows(&admin).await[0].state, "delivered");
}

#[tokio::test]
async fn a_courier_killed_mid_batch_loses_nothing_keeps_each_users_order_and_resends_under_the_same_id()
 {
    // Events of four users, written while no destination is configured.
    let app = app_with(&[]).await;
    let api = Api::at(&app.address);
    let admin = connect(&app.db.admin_url()).await;
    let users: Vec<String> = (0..4).map(|n| unique(&format!("user_kill{n}"))).collect();
    for user in &users {
        onboard(&api, user).await;
    }
    let events = rows(&admin).await;
    assert_eq!(events.len(), 24);

    // The receiver acknowledges eight deliveries, then holds every other.
    let receiver = Receiver::start().await;
    receiver.answer(|index, _| {
        if index < 8 {
            Reply::Status(204)
        } else {
            Reply::Hang
        }
    });
    let url = format!("{}/hooks", receiver.url);
    let env = [
        ("CRON_SECRET", CRON_SECRET),
        ("OUTBOUND_WEBHOOK_URLS", url.as_str()),
        ("OUTBOUND_WEBHOOK_SECRET", SECRET),
        ("OUTBOUND_TIMEOUT_MS", "3000"),
    ];
    let courier = Function::start_with(env!("CARGO_BIN_EXE_cron-deliver"), &app.db, &env).await;
    let http = reqwest::Client::new();
    let run = tokio::spawn({
        let (http, base) = (http.clone(), courier.address.clone());
        async move {
            http.get(format!("{base}{DELIVER}"))
                .bearer_auth(CRON_SECRET)
                .send()
                .await
        }
    });
    // Round one: each user's first event; round two: their second; round
    // three hangs. Kill the courier while it waits.
    let received = receiver.until(|received| received.len() >= 12).await;
    assert_eq!(received.len(), 12);
    drop(courier);
    assert!(run.await.unwrap().is_err(), "the killed courier answered");
    let midway = rows(&admin).await;
    let delivered = midway.iter().filter(|row| row.state == "delivered").count();
    assert_eq!(delivered, 8, "{midway:?}");

    // A new courier: once the dead one's leases end, it delivers the rest.
    receiver.answer(|_, _| Reply::Status(204));
    let courier = Function::start_with(env!("CARGO_BIN_EXE_cron-deliver"), &app.db, &env).await;
    let mut pending = i64::MAX;
    for _ in 0..60 {
        scheduled_run(&http, &courier.address).await;
        pending = admin
            .query_one(
                "select count(*) from onboarding.outbox where state <> 'delivered'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if pending == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(pending, 0);

    let received = receiver.received();
    let events = rows(&admin).await;
    // Every event arrived; the four cut off arrived twice, the same each time.
    let mut by_id: BTreeMap<&str, Vec<&receiver::Received>> = BTreeMap::new();
    for request in &received {
        by_id
            .entry(request.header("webhook-id"))
            .or_default()
            .push(request);
    }
    assert_eq!(by_id.len(), 24);
    for row in &events {
        let copies = &by_id[row.event_id.as_str()];
        for copy in copies.iter() {
            assert_eq!(copy.json(), row.payload);
        }
    }
    let twice: Vec<&str> = by_id
        .iter()
        .filter(|(_, copies)| copies.len() > 1)
        .map(|(id, _)| *id)
        .collect();
    assert_eq!(twice.len(), 4, "{twice:?}");
    assert_eq!(received.len(), 28);
    // Per user, first arrivals follow the order the events were written in.
    for user in &users {
        let written: Vec<&str> = events
            .iter()
            .filter(|row| &row.user_id == user)
            .map(|row| row.event_id.as_str())
            .collect();
        let mut arrived: Vec<&str> = Vec::new();
        for request in &received {
            let id = request.header("webhook-id");
            if request.json()["data"]["userId"] == json!(user) && !arrived.contains(&id) {
                arrived.push(id);
            }
        }
        assert_eq!(arrived, written, "{user}");
    }
}

#[tokio::test]
async fn clerk_metadata_is_set_on_completion_through_429_and_5xx_and_webhooks_are_not_repeated() {
    let app = app_with(&[]).await;
    let api = Api::at(&app.address);
    let admin = connect(&app.db.admin_url()).await;
    let user = unique("user_clerk");
    let completed = onboard(&api, &user).await;

    // Clerk's Backend API: rate limited first, then an outage, then the user.
    let clerk = Receiver::start().await;
    let user_id = user.clone();
    clerk.answer(move |index, _| match index {
        0 => Reply::RetryAfter(429, 30),
        1 => Reply::Status(502),
        _ => Reply::Json(json!({
            "object": "user",
            "id": user_id,
            "public_metadata": { "onboardingComplete": true },
        })),
    });
    let hooks = Receiver::start().await;
    let mut pairs = webhooks_to(&hooks, 3_000);
    pairs.extend([
        ("IDP_SYNC", "on".to_string()),
        ("AUTH_PROVIDER", "clerk".to_string()),
        ("CLERK_SECRET_KEY", "sk_test_outbox".to_string()),
        ("CLERK_API_URL", clerk.url.clone()),
    ]);
    let outbound = outbound(&pairs);
    let db = app.db.database();
    let run = |db: onboarding::db::Database, outbound: Outbound| async move {
        outbox::deliver(&db, &outbound, outbox::BATCH_SIZE, Duration::from_secs(8))
            .await
            .unwrap()
    };

    // The steps' events go to the webhook only; the completion to both,
    // and Clerk's 429 holds it for as long as Retry-After says.
    let first = run(db.clone(), outbound.clone()).await;
    assert_eq!((first.delivered, first.retried), (5, 1), "{first:?}");
    let held: bool = admin
        .query_one(
            "select next_attempt_at > now() + interval '25 seconds'
             from onboarding.outbox where event_type = 'onboarding.completed'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(held, "Retry-After: 30 was not honoured");
    let event = rows(&admin).await.pop().unwrap();
    assert_eq!(event.state, "pending");
    assert!(
        event.last_error.as_deref().unwrap().contains("429"),
        "{event:?}"
    );
    assert_eq!(event.delivered_to, [format!("webhook:{}/hooks", hooks.url)]);
    // Not due yet: nothing is sent.
    assert_eq!(run(db.clone(), outbound.clone()).await.retried, 0);
    assert_eq!(clerk.received().len(), 1);

    make_due(&admin).await;
    let second = run(db.clone(), outbound.clone()).await;
    assert_eq!(second.retried, 1, "{second:?}");
    make_due(&admin).await;
    let third = run(db.clone(), outbound.clone()).await;
    assert_eq!(third.delivered, 1, "{third:?}");

    let event = rows(&admin).await.pop().unwrap();
    assert_eq!(event.state, "delivered");
    assert_eq!(event.attempts, 3);
    assert!(event.delivered_to.contains(&"idp:clerk".to_string()));
    // The webhook had the completion once: a retry skips who acknowledged.
    assert_eq!(hooks.received().len(), 6);
    let calls = clerk.received();
    assert_eq!(calls.len(), 3);
    for call in &calls {
        assert_eq!(call.method, Method::PATCH);
        assert_eq!(call.path, format!("/v1/users/{user}/metadata"));
        assert_eq!(call.header("authorization"), "Bearer sk_test_outbox");
        assert_eq!(call.header("content-type"), "application/json");
        assert_eq!(
            call.json(),
            json!({ "public_metadata": {
                "onboardingComplete": true,
                "organizationId": completed["organizationId"],
            }})
        );
    }
}

#[tokio::test]
async fn supabase_app_metadata_is_set_on_completion_through_a_503() {
    let app = app_with(&[]).await;
    let api = Api::at(&app.address);
    let admin = connect(&app.db.admin_url()).await;
    let user = unique("user_supabase");
    let completed = onboard(&api, &user).await;

    let supabase = Receiver::start().await;
    let user_id = user.clone();
    supabase.answer(move |index, _| match index {
        0 => Reply::RetryAfter(503, 1),
        _ => Reply::Json(json!({ "id": user_id, "app_metadata": { "onboarding_complete": true } })),
    });
    let outbound = outbound(&[
        ("IDP_SYNC", "on".to_string()),
        ("AUTH_PROVIDER", "supabase".to_string()),
        ("SUPABASE_URL", supabase.url.clone()),
        ("SUPABASE_SERVICE_ROLE_KEY", "service-role-key".to_string()),
        ("OUTBOX_BACKOFF_BASE_MS", "100".to_string()),
    ]);
    let db = app.db.database();
    let first = outbox::deliver(&db, &outbound, 50, Duration::from_secs(8))
        .await
        .unwrap();
    assert_eq!((first.delivered, first.retried), (5, 1), "{first:?}");
    make_due(&admin).await;
    let second = outbox::deliver(&db, &outbound, 50, Duration::from_secs(8))
        .await
        .unwrap();
    assert_eq!(second.delivered, 1, "{second:?}");
    assert_eq!(
        rows(&admin).await.pop().unwrap().delivered_to,
        ["idp:supabase"]
    );
    let calls = supabase.received();
    assert_eq!(calls.len(), 2);
    for call in &calls {
        assert_eq!(call.method, Method::PUT);
        assert_eq!(call.path, format!("/auth/v1/admin/users/{user}"));
        assert_eq!(call.header("apikey"), "service-role-key");
        assert_eq!(call.header("authorization"), "Bearer service-role-key");
        assert_eq!(
            call.json(),
            json!({ "app_metadata": {
                "onboarding_complete": true,
                "organization_id": completed["organizationId"],
            }})
        );
    }
}

#[tokio::test]
async fn an_event_that_keeps_failing_is_dead_lettered_and_the_users_next_event_proceeds() {
    let app = app_with(&[]).await;
    let api = Api::at(&app.address);
    let admin = connect(&app.db.admin_url()).await;
    let user = unique("user_dead");
    save_steps(
        &api,
        &Auth::token(&token(&user, None)),
        &["profile", "organization"],
    )
    .await;

    let receiver = Receiver::start().await;
    receiver.answer(|_, _| Reply::Status(500));
    let mut pairs = webhooks_to(&receiver, 3_000);
    pairs.push(("OUTBOX_MAX_ATTEMPTS", "2".to_string()));
    let outbound = outbound(&pairs);
    let db = app.db.database();
    let deliver = || outbox::deliver(&db, &outbound, 50, Duration::from_secs(8));

    // Only the head of the user's queue is tried.
    assert_eq!(deliver().await.unwrap().retried, 1);
    make_due(&admin).await;
    assert_eq!(deliver().await.unwrap().dead, 1);
    let events = rows(&admin).await;
    assert_eq!(events[0].state, "dead");
    assert_eq!(events[0].attempts, 2);
    assert_eq!(
        events[1].attempts, 1,
        "the next event waited, then was tried: {events:?}"
    );
    assert_eq!(receiver.received().len(), 3);
    assert!(events.windows(2).all(|pair| pair[0].id < pair[1].id));

    receiver.answer(|_, _| Reply::Status(200));
    make_due(&admin).await;
    assert_eq!(deliver().await.unwrap().delivered, 1);
    let states: Vec<String> = rows(&admin)
        .await
        .into_iter()
        .map(|row| row.state)
        .collect();
    assert_eq!(states, ["dead", "delivered"]);
}

#[tokio::test]
async fn the_scheduled_run_answers_only_the_cron_secret() {
    let app = app_with(&[]).await;
    let response = app
        .http
        .get(format!("{}{DELIVER}", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let run = scheduled_run(&app.http, &app.address).await;
    assert_eq!(
        run,
        json!({ "delivered": 0, "retried": 0, "dead": 0, "complete": true })
    );
}
