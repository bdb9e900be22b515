//! Everything that needs no fault: successes and client errors, as tables
//! of cases run in order. A table ends where a later request needs what an
//! answer holds (a session, a suggestion's id).

use onboarding::ai::ProviderKind;
use serde_json::{Value, json};

use super::contract::Answer;
use super::probe::{
    Body::{Empty, Json, Malformed, Oversized, Raw},
    DELETE, GET, POST, PUT, Probe, case, decision_path, step_path, unique,
};
use super::{
    ACCEPT, CLERK, COMPLETE, CRON_SECRET, Contract, DELIVER, EVENTS, EXPORT, FLOW, FUNNEL, HEALTH,
    ME, MERGE, OPENAPI, POLICY, PREFERENCES, PURGE, REJECT, SESSION, STATUS, STEP, STEPS, SUGGEST,
};
use crate::ai::server::{self, FakeProvider};
use crate::support::api::{Auth, valid_answer};
use crate::support::webhook::{TEST_WEBHOOK_SECRET, now, signed_headers};
use crate::support::{TestApp, TestDb, spawn_app_with, token};

/// The callers most tables share.
struct Callers {
    nobody: Auth,
    forged: Auth,
    /// A visitor with a started session, `session`.
    visitor: Auth,
    session: String,
    /// A signed-in member, with no session of its own yet.
    member: Auth,
}

pub async fn answers_of_a_working_app(contract: &Contract) -> TestApp {
    let (app, _provider) = working_app().await;
    let probe = Probe::new(contract, &app);
    healthy(&probe).await;
    let callers = sessions(&probe).await;
    reads(&probe, &callers).await;
    saves(&probe, &callers).await;
    events(&probe, &callers).await;
    let (accepted, rejected) = suggestions(&probe, &callers).await;
    decisions(&probe, &callers, &accepted, &rejected).await;
    merge(&probe, &callers).await;
    completion(&probe, &callers).await;
    funnel(&probe, &app, &callers).await;
    purge(&probe, &callers).await;
    privacy(&probe, &callers).await;
    app
}

/// An app whose AI provider suggests twice, then fails for good.
async fn working_app() -> (TestApp, FakeProvider) {
    let provider = FakeProvider::start(
        ProviderKind::OpenAi,
        vec![
            server::structured(
                ProviderKind::OpenAi,
                json!({ "primaryGoal": "See our numbers in real time" }),
            ),
            server::structured(
                ProviderKind::OpenAi,
                json!({ "primaryGoal": "Ship the weekly report in minutes" }),
            ),
            // Then the provider fails for good: no suggestion, not an error.
            server::error(ProviderKind::OpenAi, 500, &[]),
        ],
    )
    .await;
    let app = spawn_app_with(
        TestDb::migrated().await,
        &[
            ("AI_PROVIDER", "openai".into()),
            ("AI_BASE_URL", provider.base_url.clone()),
            ("AI_API_KEY", "test-key".into()),
            ("AI_MODEL", "test-model".into()),
            ("AI_MAX_RETRIES", "0".into()),
            // Many writes from one visitor; the limits have a scenario of their own.
            ("RATE_LIMIT_WRITES_PER_MINUTE", "10000".into()),
            ("RATE_LIMIT_AI_PER_MINUTE", "10000".into()),
            ("CRON_SECRET", CRON_SECRET.into()),
            ("CLERK_WEBHOOK_SECRET", TEST_WEBHOOK_SECRET.into()),
        ],
    )
    .await;
    (app, provider)
}

async fn healthy(probe: &Probe<'_>) {
    let nobody = Auth::none();
    // A fresh pool's first connection can outlast health's 2 s budget on a
    // loaded machine (a 503, also documented); it is 200 once the database answers.
    let health = case(200, GET, HEALTH, HEALTH, &nobody, Empty);
    let mut status = 0;
    for _ in 0..10 {
        status = probe.send(&health).await.status;
        if status == 200 {
            break;
        }
    }
    assert_eq!(status, 200);
    probe
        .run(case(200, GET, OPENAPI, OPENAPI, &nobody, Empty))
        .await;
}

async fn sessions(probe: &Probe<'_>) -> Callers {
    let nobody = Auth::none();
    let started = probe
        .run(case(201, POST, SESSION, SESSION, &nobody, Empty))
        .await;
    let session = started.body["session"].as_str().unwrap().to_string();
    let callers = Callers {
        nobody,
        forged: Auth::token("not.a.token"),
        visitor: Auth::session(&session),
        member: Auth::token(&token(&unique("member"), None)),
        session,
    };
    let (visitor, member) = (&callers.visitor, &callers.member);
    // A session the server does not accept is replaced, not refused: the
    // cookie is HttpOnly, so the browser could not drop it itself.
    let forged_session = Auth::session("forged");
    #[rustfmt::skip]
    let cases = [
        case(200, POST, SESSION, SESSION, visitor, Empty),
        case(201, POST, SESSION, SESSION, &forged_session, Empty),
        case(401, POST, SESSION, SESSION, &callers.forged, Empty),
        case(409, POST, SESSION, SESSION, member, Empty),
    ];
    probe.run_all(cases).await;
    callers
}

async fn reads(probe: &Probe<'_>, callers: &Callers) {
    let (visitor, forged) = (&callers.visitor, &callers.forged);
    let profile = step_path("profile");
    #[rustfmt::skip]
    let cases = [
        case(200, GET, STATUS, STATUS, visitor, Empty),
        case(401, GET, STATUS, STATUS, forged, Empty),
        case(200, GET, FLOW, FLOW, visitor, Empty),
        case(401, GET, FLOW, FLOW, forged, Empty),
        case(200, GET, STEP, &profile, visitor, Empty)
            .then(|read| assert_eq!(read.headers["etag"], "\"0\"")),
        case(404, GET, STEP, step_path("nope"), visitor, Empty),
        case(401, GET, STEP, &profile, forged, Empty),
        // A segment or query axum cannot decode is answered in the problem shape too.
        case(400, GET, STEP, step_path("%FF"), visitor, Empty),
        case(400, GET, STEP, format!("{profile}?step=a&step=b"), visitor, Empty),
    ];
    probe.run_all(cases).await;
}

/// The profile step's answers, not yet complete.
fn profile() -> Value {
    json!({ "answers": valid_answer("profile"), "complete": false })
}

async fn saves(probe: &Probe<'_>, callers: &Callers) {
    let (visitor, nobody) = (&callers.visitor, &callers.nobody);
    let path = step_path("profile");
    let invalid = json!({ "answers": { "name": "", "slug": "Not A Slug" }, "complete": true });
    #[rustfmt::skip]
    let cases = [
        case(200, PUT, STEP, &path, visitor, Json(profile()))
            .then(|saved| assert_eq!(saved.headers["etag"], "\"1\"")),
        case(428, PUT, STEP, &path, visitor, Json(profile())),
        case(412, PUT, STEP, &path, visitor, Json(profile())).if_match("\"7\""),
        case(400, PUT, STEP, &path, visitor, Malformed),
        case(415, PUT, STEP, &path, visitor, Raw("text/plain", "fullName=Ada")),
        case(413, PUT, STEP, &path, visitor, Oversized),
        case(404, PUT, STEP, step_path("nope"), visitor, Json(profile())),
        case(422, PUT, STEP, step_path("organization"), visitor, Json(invalid))
            .then(|answer| assert!(answer.body["errors"].as_array().unwrap().len() >= 2)),
        case(401, PUT, STEP, &path, nobody, Json(profile())),
    ];
    probe.run_all(cases).await;
}

async fn events(probe: &Probe<'_>, callers: &Callers) {
    let (visitor, nobody) = (&callers.visitor, &callers.nobody);
    let events = json!({ "events": [{ "type": "step_viewed", "step": "profile" }] });
    let too_many = json!({ "events": vec![json!({ "type": "step_viewed" }); 101] });
    let unknown = json!({ "events": [{ "type": "teleported" }] });
    #[rustfmt::skip]
    let cases = [
        case(202, POST, EVENTS, EVENTS, visitor, Json(events.clone())),
        case(400, POST, EVENTS, EVENTS, visitor, Malformed),
        case(401, POST, EVENTS, EVENTS, nobody, Json(events)),
        case(413, POST, EVENTS, EVENTS, visitor, Json(too_many)),
        case(415, POST, EVENTS, EVENTS, visitor, Raw("text/plain", "step_viewed")),
        case(422, POST, EVENTS, EVENTS, visitor, Json(unknown)),
    ];
    probe.run_all(cases).await;
}

/// AI preferences and suggestions: the ids of two suggestions, one to
/// accept and one to reject.
async fn suggestions(probe: &Probe<'_>, callers: &Callers) -> (String, String) {
    let (visitor, nobody) = (&callers.visitor, &callers.nobody);
    let goals = json!({ "answers": { "useCases": ["analytics"], "primaryGoal": "numbers faster i guess" } });
    let goal = json!({ "step": "goals", "field": "primaryGoal" });
    let opt_in = json!({ "mode": "suggest", "consentVersion": "2026-11" });
    #[rustfmt::skip]
    let opting_in = [
        case(200, GET, PREFERENCES, PREFERENCES, visitor, Empty),
        case(401, GET, PREFERENCES, PREFERENCES, nobody, Empty),
        case(200, PUT, STEP, step_path("goals"), visitor, Json(goals)),
        // Not opted in yet.
        case(403, POST, SUGGEST, SUGGEST, visitor, Json(goal.clone())),
        case(200, PUT, PREFERENCES, PREFERENCES, visitor, Json(opt_in.clone())),
        case(400, PUT, PREFERENCES, PREFERENCES, visitor, Malformed),
        case(401, PUT, PREFERENCES, PREFERENCES, nobody, Json(opt_in)),
        case(413, PUT, PREFERENCES, PREFERENCES, visitor, Oversized),
        case(415, PUT, PREFERENCES, PREFERENCES, visitor, Raw("text/plain", "suggest")),
        case(422, PUT, PREFERENCES, PREFERENCES, visitor, Json(json!({ "mode": "maybe" }))),
    ];
    probe.run_all(opting_in).await;

    let suggest = || case(201, POST, SUGGEST, SUGGEST, visitor, Json(goal.clone()));
    let id = |answer: Answer| {
        answer.body["suggestion"]["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let accepted = id(probe.run(suggest()).await);
    let rejected = id(probe.run(suggest()).await);

    let not_suggestable = json!({ "step": "profile", "field": "fullName" });
    #[rustfmt::skip]
    let cases = [
        // The provider has failed for good.
        case(200, POST, SUGGEST, SUGGEST, visitor, Json(goal.clone()))
            .then(|none| assert_eq!(none.body["suggestion"], Value::Null)),
        case(422, POST, SUGGEST, SUGGEST, visitor, Json(not_suggestable)),
        case(400, POST, SUGGEST, SUGGEST, visitor, Malformed),
        case(415, POST, SUGGEST, SUGGEST, visitor, Raw("text/plain", "goals")),
        case(413, POST, SUGGEST, SUGGEST, visitor, Oversized),
        case(401, POST, SUGGEST, SUGGEST, nobody, Json(goal.clone())),
    ];
    probe.run_all(cases).await;
    (accepted, rejected)
}

/// Deciding on the suggestions `accepted` and `rejected`.
async fn decisions(probe: &Probe<'_>, callers: &Callers, accepted: &str, rejected: &str) {
    let (visitor, nobody) = (&callers.visitor, &callers.nobody);
    let accept = decision_path(accepted, "accept");
    let reject = decision_path(rejected, "reject");
    let unknown = uuid::Uuid::new_v4().to_string();
    #[rustfmt::skip]
    let cases = [
        case(428, POST, ACCEPT, &accept, visitor, Empty),
        case(412, POST, ACCEPT, &accept, visitor, Empty).if_match("\"7\""),
        case(400, POST, ACCEPT, &accept, visitor, Empty).if_match("W/\"1\""),
        case(422, POST, ACCEPT, &accept, visitor, Raw("application/json", "[1]")),
        case(413, POST, ACCEPT, &accept, visitor, Oversized),
        case(401, POST, ACCEPT, &accept, nobody, Empty),
        case(200, POST, ACCEPT, &accept, visitor, Empty)
            .if_match("\"1\"")
            .then(|decided| assert_eq!(decided.headers["etag"], "\"2\"")),
        case(404, POST, ACCEPT, decision_path(&unknown, "accept"), visitor, Empty)
            .if_match("\"2\""),
        case(404, POST, ACCEPT, decision_path("not-a-uuid", "accept"), visitor, Empty),
        case(200, POST, REJECT, &reject, visitor, Empty),
        // Each is decided already, the other way.
        case(409, POST, ACCEPT, decision_path(rejected, "accept"), visitor, Empty)
            .if_match("\"2\""),
        case(409, POST, REJECT, decision_path(accepted, "reject"), visitor, Empty),
        case(404, POST, REJECT, decision_path(&unknown, "reject"), visitor, Empty),
        case(400, POST, REJECT, &reject, visitor, Malformed),
        case(422, POST, REJECT, &reject, visitor, Raw("application/json", "[1]")),
        case(413, POST, REJECT, &reject, visitor, Oversized),
        case(401, POST, REJECT, &reject, nobody, Empty),
        case(400, POST, ACCEPT, decision_path("%FF", "accept"), visitor, Empty),
        case(400, POST, REJECT, format!("{reject}?id=a&id=b"), visitor, Empty),
    ];
    probe.run_all(cases).await;
}

/// Signing in: the visitor's drafts move to the member.
async fn merge(probe: &Probe<'_>, callers: &Callers) {
    let (member, nobody, session) = (&callers.member, &callers.nobody, &callers.session);
    let with_session = member.clone().with_session(session);
    #[rustfmt::skip]
    let cases = [
        case(200, POST, MERGE, MERGE, &with_session, Json(json!({})))
            .idempotency_key("merge-1")
            .then(|merged| {
                let cookie = merged.headers["set-cookie"].to_str().unwrap();
                assert!(cookie.contains("Max-Age=0"));
            }),
        // The same key with another body.
        case(422, POST, MERGE, MERGE, &with_session, Json(json!({ "again": true })))
            .idempotency_key("merge-1"),
        // No session to merge: the page cannot know, so it is a 200 that merged nothing.
        case(200, POST, MERGE, MERGE, member, Empty)
            .then(|merged| assert_eq!(merged.body["merged"], json!([]))),
        case(400, POST, MERGE, MERGE, member, Empty).idempotency_key("not a key"),
        case(413, POST, MERGE, MERGE, member, Oversized),
        case(401, POST, MERGE, MERGE, nobody, Empty),
    ];
    probe.run_all(cases).await;
}

/// Completing: too early, then after every step.
async fn completion(probe: &Probe<'_>, callers: &Callers) {
    let Callers { visitor, .. } = callers;
    let newcomer = Auth::token(&token(&unique("newcomer"), None));
    #[rustfmt::skip]
    let too_early = [
        case(422, POST, COMPLETE, COMPLETE, &newcomer, Empty),
        case(400, POST, COMPLETE, COMPLETE, &newcomer, Empty).idempotency_key("two words"),
        case(413, POST, COMPLETE, COMPLETE, &newcomer, Oversized),
        case(401, POST, COMPLETE, COMPLETE, visitor, Empty),
    ];
    probe.run_all(too_early).await;

    let finisher = Auth::token(&token(&unique("finisher"), None));
    let every_step = STEPS.map(|step| {
        let mut answers = valid_answer(step);
        if step == "organization" {
            answers["slug"] = json!(unique("contract").replace('_', "-"));
        }
        let body = json!({ "answers": answers, "complete": true });
        case(200, PUT, STEP, step_path(step), &finisher, Json(body))
    });
    probe.run_all(every_step).await;
    #[rustfmt::skip]
    let cases = [
        case(200, POST, COMPLETE, COMPLETE, &finisher, Empty),
        case(409, PUT, STEP, step_path("profile"), &finisher, Json(profile())).if_match("*"),
    ];
    probe.run_all(cases).await;
}

/// The funnel, for an organization's admin.
async fn funnel(probe: &Probe<'_>, app: &TestApp, callers: &Callers) {
    let (visitor, forged) = (&callers.visitor, &callers.forged);
    let boss = unique("boss");
    let admin = crate::support::connect(&app.db.admin_url()).await;
    admin
        .execute(
            "insert into onboarding.organizations (id, name, slug, created_by) values ('org_contract', 'Contract Co', 'contract-co', $1)",
            &[&boss],
        )
        .await
        .unwrap();
    admin
        .execute(
            "insert into onboarding.memberships (organization_id, user_id, role) values ('org_contract', $1, 'owner')",
            &[&boss],
        )
        .await
        .unwrap();
    let boss = Auth::token(&token(&boss, Some("org_contract")));
    let stranger = Auth::token(&token(&unique("stranger"), Some("org_contract")));
    #[rustfmt::skip]
    let cases = [
        case(200, GET, FUNNEL, FUNNEL, &boss, Empty),
        case(400, GET, FUNNEL, format!("{FUNNEL}?from=yesterday"), &boss, Empty),
        case(403, GET, FUNNEL, FUNNEL, &stranger, Empty),
        case(401, GET, FUNNEL, FUNNEL, visitor, Empty),
        case(401, GET, FUNNEL, FUNNEL, forged, Empty),
        // The organization's AI policy, for the same admin.
        case(200, GET, POLICY, POLICY, &boss, Empty)
            .then(|policy| assert_eq!(policy.body["aiAllowed"], true)),
        case(200, PUT, POLICY, POLICY, &boss, Json(json!({ "aiAllowed": false })))
            .then(|policy| assert_eq!(policy.body["aiAllowed"], false)),
        case(400, PUT, POLICY, POLICY, &boss, Malformed),
        case(401, GET, POLICY, POLICY, visitor, Empty),
        case(401, PUT, POLICY, POLICY, forged, Json(json!({ "aiAllowed": true }))),
        case(403, GET, POLICY, POLICY, &stranger, Empty),
        case(403, PUT, POLICY, POLICY, &stranger, Json(json!({ "aiAllowed": true }))),
        case(413, PUT, POLICY, POLICY, &boss, Oversized),
        case(415, PUT, POLICY, POLICY, &boss, Raw("text/plain", "false")),
        case(422, PUT, POLICY, POLICY, &boss, Json(json!({ "aiAllowed": "no" }))),
    ];
    probe.run_all(cases).await;
}

/// The retention run, for Vercel's scheduler and for anyone else.
async fn purge(probe: &Probe<'_>, callers: &Callers) {
    let (nobody, member) = (&callers.nobody, &callers.member);
    let scheduler = Auth::token(CRON_SECRET);
    let impostor = Auth::token("contract-cron-secret-9876543210");
    #[rustfmt::skip]
    let cases = [
        case(200, GET, PURGE, PURGE, &scheduler, Empty)
            .then(|purged| assert_eq!(purged.body["complete"], true)),
        case(401, GET, PURGE, PURGE, nobody, Empty),
        case(401, GET, PURGE, PURGE, &impostor, Empty),
        // A user's token is not the cron secret.
        case(401, GET, PURGE, PURGE, member, Empty),
        case(200, GET, DELIVER, DELIVER, &scheduler, Empty)
            .then(|delivered| assert_eq!(delivered.body["complete"], true)),
        case(401, GET, DELIVER, DELIVER, nobody, Empty),
        case(401, GET, DELIVER, DELIVER, &impostor, Empty),
    ];
    probe.run_all(cases).await;
}

/// Signed webhook bodies (a signature covers the exact bytes).
const USER_DELETED: &str = r#"{"type": "user.deleted", "object": "event", "data": {"id": "user_contract_deleted", "deleted": true}}"#;
const USER_CREATED: &str =
    r#"{"type": "user.created", "object": "event", "data": {"id": "user_contract_created"}}"#;
const UNNAMED_DELETION: &str = r#"{"type": "user.deleted", "data": {"deleted": true}}"#;
const NOT_AN_EVENT: &str = r#"{"data": {}}"#;
const NOT_JSON: &str = r#"{"type": "user.deleted""#;

/// The Svix headers of a delivery of `body`, signed now.
pub fn signed(body: &str) -> Vec<(&'static str, String)> {
    signed_headers(TEST_WEBHOOK_SECRET, &unique("msg"), now(), body)
}

/// Export and erasure, and the identity provider's webhook.
async fn privacy(probe: &Probe<'_>, callers: &Callers) {
    let (member, nobody) = (&callers.member, &callers.nobody);
    let leaving = Auth::token(&token(&unique("leaving"), None));
    let json = "application/json";
    #[rustfmt::skip]
    let cases = [
        case(200, GET, EXPORT, EXPORT, member, Empty).then(|export| {
            assert_eq!(
                export.headers["content-disposition"],
                "attachment; filename=\"onboarding-export.json\""
            );
            assert!(!export.body["progress"].as_array().unwrap().is_empty());
        }),
        case(401, GET, EXPORT, EXPORT, nobody, Empty),
        case(200, PUT, STEP, step_path("profile"), &leaving, Json(profile())),
        case(200, DELETE, ME, ME, &leaving, Empty)
            .then(|erased| assert_eq!(erased.body["deleted"]["progress"], 1)),
        case(200, DELETE, ME, ME, &leaving, Empty)
            .then(|again| assert_eq!(again.body["deleted"]["progress"], 0)),
        case(401, DELETE, ME, ME, nobody, Empty),
        case(200, POST, CLERK, CLERK, nobody, Raw(json, USER_DELETED))
            .headers(signed(USER_DELETED))
            .then(|receipt| assert_eq!(receipt.body["received"], "user.deleted")),
        case(200, POST, CLERK, CLERK, nobody, Raw(json, USER_CREATED))
            .headers(signed(USER_CREATED))
            .then(|receipt| assert_eq!(receipt.body["erased"], Value::Null)),
        case(401, POST, CLERK, CLERK, nobody, Raw(json, USER_DELETED)),
        case(401, POST, CLERK, CLERK, nobody, Raw(json, USER_DELETED)).headers(signed(USER_CREATED)),
        case(400, POST, CLERK, CLERK, nobody, Raw(json, NOT_JSON)).headers(signed(NOT_JSON)),
        case(422, POST, CLERK, CLERK, nobody, Raw(json, UNNAMED_DELETION))
            .headers(signed(UNNAMED_DELETION)),
        case(422, POST, CLERK, CLERK, nobody, Raw(json, NOT_AN_EVENT)).headers(signed(NOT_AN_EVENT)),
        case(413, POST, CLERK, CLERK, nobody, Oversized),
    ];
    probe.run_all(cases).await;
}
