//! The suggestion pipeline end to end: preferences, prompt, provider,
//! validation, repair, storage and decisions, over the real database.

use std::collections::BTreeMap;

use onboarding::ai::preferences::{self, AiMode, PreferencesInput};
use onboarding::ai::{AiClient, AiError, ProviderKind};
use onboarding::db::{Database, RlsContext, Statement};
use onboarding::wizard::flow::{AnswerMap, Flow};
use onboarding::wizard::suggest::{
    DecideOutcome, Decision, NoSuggestionReason, SuggestError, SuggestRequest, SuggestionOutcome,
    decide, suggest,
};
use serde_json::{Value, json};
use tokio_postgres::types::Type;
use uuid::Uuid;

use super::server::{self, FakeProvider};
use crate::support::{TestDb, connect, edge_config_file};

const EMAIL: &str = "grace.hopper@example.com";
const FULL_NAME: &str = "Ada Lovelace";
const ORGANIZATION_NAME: &str = "Analytical Engines Ltd";
const WEBSITE: &str = "https://private-site.example";
const GOAL: &str = "we want to like see our numbers faster i guess";

fn flow() -> Flow {
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(edge_config_file()).unwrap()).unwrap();
    Flow::from_value(config["onboardingFlow"].clone()).unwrap()
}

fn flags(flag: &str) -> bool {
    flag == "teamInvites"
}

fn answers() -> AnswerMap {
    [
        (
            "profile",
            json!({ "fullName": FULL_NAME, "jobRole": "founder" }),
        ),
        (
            "organization",
            json!({ "name": ORGANIZATION_NAME, "slug": "analytical-engines", "size": "2-10",
                    "industry": "fintech", "website": WEBSITE }),
        ),
        (
            "goals",
            json!({ "useCases": ["analytics", "reporting"], "primaryGoal": GOAL }),
        ),
        ("team", json!({ "invites": [EMAIL] })),
    ]
    .into_iter()
    .map(|(step, answers)| (step.to_string(), answers))
    .collect()
}

fn user(id: &str) -> RlsContext {
    RlsContext::user(id, None, None)
}

async fn opt_in(db: &Database, context: &RlsContext) {
    let input = PreferencesInput {
        mode: AiMode::Suggest,
        field_overrides: BTreeMap::new(),
        consent_version: Some("2026-11".to_string()),
    };
    db.transaction(context, async |tx| {
        preferences::set_own(tx, context.role(), &input).await
    })
    .await
    .unwrap();
}

async fn ask(
    db: &Database,
    context: &RlsContext,
    client: &AiClient,
) -> Result<SuggestionOutcome, SuggestError> {
    let flow = flow();
    let answers = answers();
    let request = SuggestRequest {
        flow: &flow,
        step: "goals",
        field: "primaryGoal",
        answers: &answers,
        flags: &flags,
    };
    suggest(db, context, Some(client), &request).await
}

/// The stored suggestions, read as the superuser (no RLS) to see everything.
async fn stored(test_db: &TestDb) -> Vec<tokio_postgres::Row> {
    connect(&test_db.admin_url())
        .await
        .query(
            "select status, prompt_key, prompt_version, provider, model, input_fields, output, value,
                    latency_ms, input_tokens, output_tokens, user_id, session_id
             from onboarding.ai_suggestions order by created_at",
            &[],
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn a_user_who_has_not_opted_in_is_refused_and_the_provider_receives_nothing() {
    let test_db = TestDb::migrated().await;
    let db = test_db.database();
    let server = FakeProvider::start(
        ProviderKind::OpenAi,
        vec![server::structured(
            ProviderKind::OpenAi,
            json!({ "primaryGoal": "x" }),
        )],
    )
    .await;
    let client = server.client();
    let ada = user("user_not_opted_in");

    let error = ask(&db, &ada, &client).await.unwrap_err();
    assert!(matches!(error, SuggestError::NotOptedIn), "{error:?}");

    // Choosing `off`, or opting in for other fields only, changes nothing.
    let input = PreferencesInput {
        mode: AiMode::Off,
        field_overrides: [("profile.jobRole".to_string(), AiMode::Suggest)].into(),
        consent_version: Some("2026-11".to_string()),
    };
    db.transaction(&ada, async |tx| {
        preferences::set_own(tx, ada.role(), &input).await
    })
    .await
    .unwrap();
    let error = ask(&db, &ada, &client).await.unwrap_err();
    assert!(matches!(error, SuggestError::NotOptedIn), "{error:?}");

    assert_eq!(server.count(), 0);
    assert!(server.requests().is_empty());
    assert!(stored(&test_db).await.is_empty());
}

#[tokio::test]
async fn opting_in_without_a_consent_version_is_rejected_by_the_database() {
    let test_db = TestDb::migrated().await;
    let db = test_db.database();
    let ada = user("user_no_consent");
    let input = PreferencesInput {
        mode: AiMode::Suggest,
        field_overrides: BTreeMap::new(),
        consent_version: None,
    };
    let error = db
        .transaction(&ada, async |tx| {
            preferences::set_own(tx, ada.role(), &input).await
        })
        .await
        .unwrap_err();
    assert_eq!(
        error.constraint(),
        Some("ai_preferences_opt_in_has_consent")
    );
}

const CREATE_ORGANIZATION: Statement = Statement::new(
    "insert into onboarding.organizations (id, name, slug) values ($1, 'Forbidding Co', 'forbidding-co')",
    &[Type::TEXT],
);

const JOIN_AS_OWNER: Statement = Statement::new(
    "insert into onboarding.memberships (organization_id, user_id, role) values ($1, onboarding.current_user_id(), 'owner')",
    &[Type::TEXT],
);

#[tokio::test]
async fn an_organization_that_forbids_ai_stops_the_request_before_anything_is_sent() {
    let test_db = TestDb::migrated().await;
    let db = test_db.database();
    let server = FakeProvider::start(
        ProviderKind::Anthropic,
        vec![server::structured(
            ProviderKind::Anthropic,
            json!({ "primaryGoal": "x" }),
        )],
    )
    .await;
    let client = server.client();
    let org = "org_forbids_ai";
    let admin = RlsContext::user("user_admin", Some(org), None);
    db.transaction(&admin, async |tx| {
        tx.query(&CREATE_ORGANIZATION, &[&org]).await?;
        tx.query(&JOIN_AS_OWNER, &[&org]).await?;
        preferences::set_organization_policy(tx, false).await
    })
    .await
    .unwrap();

    // A member who opted in, acting in that organization.
    let member = RlsContext::user("user_member", Some(org), None);
    opt_in(&db, &member).await;
    let error = ask(&db, &member, &client).await.unwrap_err();
    assert!(
        matches!(error, SuggestError::OrganizationForbids),
        "{error:?}"
    );

    // Members cannot lift the prohibition themselves.
    let lifted = db
        .transaction(&member, async |tx| {
            preferences::set_organization_policy(tx, true).await
        })
        .await;
    assert!(lifted.is_err());

    assert_eq!(server.count(), 0);
    assert!(stored(&test_db).await.is_empty());
}

async fn only_declared_variables(kind: ProviderKind) {
    let test_db = TestDb::migrated().await;
    let db = test_db.database();
    let server = FakeProvider::start(
        kind,
        vec![server::structured(
            kind,
            json!({ "primaryGoal": "  See our key numbers in real time.  " }),
        )],
    )
    .await;
    let ada = user("user_opted_in");
    opt_in(&db, &ada).await;

    let outcome = ask(&db, &ada, &server.client()).await.unwrap();
    let SuggestionOutcome::Suggested { id, value } = outcome else {
        panic!("expected a suggestion, got {outcome:?}");
    };
    // Normalized like user input (trimmed).
    assert_eq!(value, json!("See our key numbers in real time."));

    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let sent = &requests[0].raw;
    for declared in [GOAL, "analytics, reporting", "fintech"] {
        assert!(sent.contains(declared), "{declared} missing from {sent}");
    }
    for undeclared in [
        EMAIL,
        "grace.hopper",
        FULL_NAME,
        ORGANIZATION_NAME,
        WEBSITE,
        "analytical-engines",
        "founder",
    ] {
        assert!(!sent.contains(undeclared), "{undeclared} was sent: {sent}");
    }

    let rows = stored(&test_db).await;
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(row.get::<_, &str>("status"), "pending");
    assert_eq!(row.get::<_, &str>("prompt_key"), "goals.primaryGoal");
    assert_eq!(row.get::<_, i32>("prompt_version"), 1);
    assert_eq!(row.get::<_, &str>("provider"), kind.as_str());
    assert_eq!(row.get::<_, &str>("model"), server::SERVED_MODEL);
    assert_eq!(
        row.get::<_, Vec<String>>("input_fields"),
        vec![
            "goals.primaryGoal",
            "goals.useCases",
            "organization.industry"
        ]
    );
    assert_eq!(row.get::<_, Option<Value>>("value"), Some(value.clone()));
    assert_eq!(row.get::<_, Option<i32>>("input_tokens"), Some(120));
    assert_eq!(row.get::<_, Option<i32>>("output_tokens"), Some(30));
    assert!(row.get::<_, i32>("latency_ms") >= 0);
    assert_eq!(
        row.get::<_, Option<String>>("user_id").as_deref(),
        Some("user_opted_in")
    );

    // Accepting returns the value to write; deciding again is idempotent or a conflict.
    let outcome = db
        .transaction(&ada, async |tx| decide(tx, id, Decision::Accept).await)
        .await
        .unwrap();
    let DecideOutcome::Decided(decided) = outcome else {
        panic!("expected a decision, got {outcome:?}");
    };
    assert_eq!(
        (decided.step.as_str(), decided.field.as_str()),
        ("goals", "primaryGoal")
    );
    assert_eq!(decided.value, Some(value));
    let again = db
        .transaction(&ada, async |tx| decide(tx, id, Decision::Accept).await)
        .await
        .unwrap();
    assert!(
        matches!(again, DecideOutcome::AlreadyDecided(_)),
        "{again:?}"
    );
    let reversed = db
        .transaction(&ada, async |tx| decide(tx, id, Decision::Reject).await)
        .await
        .unwrap();
    assert!(
        matches!(reversed, DecideOutcome::Conflict { .. }),
        "{reversed:?}"
    );
}
for_both_providers!(
    only_the_prompts_declared_variables_are_sent_and_the_suggestion_is_stored,
    super::only_declared_variables
);

async fn repair_then_nothing(kind: ProviderKind) {
    let test_db = TestDb::migrated().await;
    let db = test_db.database();
    let server = FakeProvider::start(
        kind,
        vec![
            server::structured(kind, json!({ "primaryGoal": "x".repeat(600) })),
            server::structured(kind, json!({ "primaryGoal": "still\tbad" })),
        ],
    )
    .await;
    let ada = user("user_repair");
    opt_in(&db, &ada).await;

    let outcome = ask(&db, &ada, &server.client()).await.unwrap();
    assert_eq!(
        outcome,
        SuggestionOutcome::NoSuggestion {
            reason: NoSuggestionReason::InvalidOutput
        }
    );
    let requests = server.requests();
    assert_eq!(requests.len(), 2, "one call and one repair attempt");
    assert!(!requests[0].raw.contains("too_long"));
    assert!(requests[1].raw.contains("too_long"), "{}", requests[1].raw);
    let rows = stored(&test_db).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, &str>("status"), "invalid");
    assert_eq!(rows[0].get::<_, Option<Value>>("value"), None);
    assert_eq!(
        rows[0].get::<_, Option<i32>>("input_tokens"),
        Some(240),
        "both calls counted"
    );
}
for_both_providers!(
    schema_violating_output_gets_one_repair_attempt_and_then_no_suggestion,
    super::repair_then_nothing
);

#[tokio::test]
async fn output_repaired_on_the_second_attempt_becomes_a_suggestion() {
    let kind = ProviderKind::OpenAi;
    let test_db = TestDb::migrated().await;
    let db = test_db.database();
    let server = FakeProvider::start(
        kind,
        vec![
            server::prose(kind, "Here you go: See numbers faster."),
            server::structured(kind, json!({ "primaryGoal": "See our numbers faster." })),
        ],
    )
    .await;
    let ada = user("user_repaired");
    opt_in(&db, &ada).await;
    let outcome = ask(&db, &ada, &server.client()).await.unwrap();
    assert!(
        matches!(&outcome, SuggestionOutcome::Suggested { value, .. } if value == "See our numbers faster."),
        "{outcome:?}"
    );
    assert_eq!(server.count(), 2);
}

#[tokio::test]
async fn a_refusal_or_a_failing_provider_is_no_suggestion_rather_than_an_error() {
    let kind = ProviderKind::Anthropic;
    let test_db = TestDb::migrated().await;
    let db = test_db.database();
    let ada = user("user_unlucky");
    opt_in(&db, &ada).await;

    let server = FakeProvider::start(kind, vec![server::refusal(kind)]).await;
    let outcome = ask(&db, &ada, &server.client()).await.unwrap();
    assert_eq!(
        outcome,
        SuggestionOutcome::NoSuggestion {
            reason: NoSuggestionReason::Refused
        }
    );

    let server = FakeProvider::start(kind, vec![server::error(kind, 401, &[])]).await;
    let outcome = ask(&db, &ada, &server.client()).await.unwrap();
    assert_eq!(
        outcome,
        SuggestionOutcome::NoSuggestion {
            reason: NoSuggestionReason::Unavailable(AiError::Provider { status: 401 })
        }
    );
    let statuses: Vec<String> = stored(&test_db)
        .await
        .iter()
        .map(|r| r.get("status"))
        .collect();
    assert_eq!(
        statuses,
        vec!["invalid"],
        "a refusal is recorded, an outage is not"
    );
}

#[tokio::test]
async fn an_anonymous_session_that_opted_in_gets_a_suggestion_only_it_can_decide() {
    let kind = ProviderKind::OpenAi;
    let test_db = TestDb::migrated().await;
    let db = test_db.database();
    let server = FakeProvider::start(
        kind,
        vec![server::structured(
            kind,
            json!({ "primaryGoal": "See numbers faster." }),
        )],
    )
    .await;
    let hash = "b".repeat(64);
    let visitor = RlsContext::anonymous(Some(&hash));
    opt_in(&db, &visitor).await;
    let SuggestionOutcome::Suggested { id, .. } =
        ask(&db, &visitor, &server.client()).await.unwrap()
    else {
        panic!("expected a suggestion");
    };
    let rows = stored(&test_db).await;
    assert_eq!(
        rows[0].get::<_, Option<String>>("session_id"),
        Some(hash.clone())
    );

    let other = RlsContext::anonymous(Some(&"c".repeat(64)));
    let outcome = db
        .transaction(&other, async |tx| decide(tx, id, Decision::Reject).await)
        .await
        .unwrap();
    assert_eq!(outcome, DecideOutcome::NotFound);
    let stranger = user("user_stranger");
    let outcome = db
        .transaction(&stranger, async |tx| {
            decide(tx, Uuid::new_v4(), Decision::Accept).await
        })
        .await
        .unwrap();
    assert_eq!(outcome, DecideOutcome::NotFound);
    let outcome = db
        .transaction(&visitor, async |tx| decide(tx, id, Decision::Reject).await)
        .await
        .unwrap();
    assert!(
        matches!(&outcome, DecideOutcome::Decided(d) if d.value.is_none()),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn a_field_that_is_not_ai_enhanceable_or_ai_that_is_off_refuses_before_the_database() {
    let test_db = TestDb::migrated().await;
    let db = test_db.database();
    let flow = flow();
    let answers = answers();
    let ada = user("user_x");
    let request = SuggestRequest {
        flow: &flow,
        step: "profile",
        field: "fullName",
        answers: &answers,
        flags: &flags,
    };
    let error = suggest(&db, &ada, None, &request).await.unwrap_err();
    assert!(
        matches!(error, SuggestError::NotEnhanceable(_)),
        "{error:?}"
    );
    let request = SuggestRequest {
        step: "goals",
        field: "primaryGoal",
        ..request
    };
    let error = suggest(&db, &ada, None, &request).await.unwrap_err();
    assert!(matches!(error, SuggestError::Off), "{error:?}");
}
