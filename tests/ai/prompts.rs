//! Prompt templates in the database: the seed, publish checks and immutability.

use onboarding::ai::prompts::{self, Label, publish_check};
use onboarding::db::{DbError, RlsContext, Statement};
use tokio_postgres::error::SqlState;

use crate::support::{TestDb, connect};

#[tokio::test]
async fn the_seeded_production_prompt_resolves_for_any_caller_and_passes_the_publish_check() {
    let test_db = TestDb::migrated().await;
    let db = test_db.database();
    for context in [
        RlsContext::anonymous(Some(&"d".repeat(64))),
        RlsContext::user("user_reader", None, None),
    ] {
        let prompt = db
            .transaction(&context, async |tx| {
                prompts::resolve(tx, "goals.primaryGoal", Label::Production).await
            })
            .await
            .unwrap()
            .expect("the seeded prompt is labelled production");
        assert_eq!(prompt.version, 1);
        assert_eq!(
            prompt.variables,
            ["primaryGoal", "useCases", "organizationIndustry"]
        );
        assert_eq!(publish_check(&prompt.template, &prompt.variables), Ok(()));
        assert_eq!(
            prompt.output_schema["properties"]["primaryGoal"]["maxLength"],
            500
        );
        let staging = db
            .transaction(&context, async |tx| {
                prompts::resolve(tx, "goals.primaryGoal", Label::Staging).await
            })
            .await
            .unwrap();
        assert!(staging.is_none());
    }
}

#[tokio::test]
async fn updating_or_deleting_a_published_prompt_fails() {
    let test_db = TestDb::migrated().await;
    // Even the owner of the table (a superuser) cannot change a published version.
    let admin = connect(&test_db.admin_url()).await;
    for sql in [
        "update onboarding.prompts set template = 'Say {{primaryGoal}} {{useCases}} {{organizationIndustry}}' where key = 'goals.primaryGoal'",
        "update onboarding.prompts set status = 'draft', published_at = null where key = 'goals.primaryGoal'",
        "delete from onboarding.prompts where key = 'goals.primaryGoal'",
    ] {
        let error = admin.execute(sql, &[]).await.unwrap_err();
        let db_error = error.as_db_error().expect("a database error");
        assert_eq!(
            db_error.constraint(),
            Some("prompts_published_immutable"),
            "{sql}"
        );
    }
    // A new version is the way to change a prompt.
    admin
        .batch_execute(
            "insert into onboarding.prompts (key, version, system, template, variables, output_schema, status)
             select key, 2, system, template || ' Be brief.', variables, output_schema, 'published'
             from onboarding.prompts where key = 'goals.primaryGoal' and version = 1;
             update onboarding.prompt_labels set version = 2 where key = 'goals.primaryGoal' and label = 'production';",
        )
        .await
        .unwrap();
}

const WRITE_PROMPT: Statement = Statement::new(
    "update onboarding.prompts set max_tokens = 1 where key = 'goals.primaryGoal'",
    &[],
);

#[tokio::test]
async fn the_application_roles_cannot_write_prompts() {
    let test_db = TestDb::migrated().await;
    let db = test_db.database();
    for context in [
        RlsContext::anonymous(Some(&"e".repeat(64))),
        RlsContext::user("user_writer", None, None),
    ] {
        let error = db
            .transaction(&context, async |tx| tx.query(&WRITE_PROMPT, &[]).await)
            .await
            .unwrap_err();
        assert!(matches!(error, DbError::Query(_)));
        assert_eq!(error.code(), Some(&SqlState::INSUFFICIENT_PRIVILEGE));
    }
}

#[tokio::test]
async fn publishing_a_template_with_undeclared_variables_fails_in_rust_and_in_the_database() {
    let test_db = TestDb::migrated().await;
    let admin = connect(&test_db.admin_url()).await;
    let template = "Rewrite {{primaryGoal}} for {{email}}";
    let variables = vec!["primaryGoal".to_string()];
    assert!(publish_check(template, &variables).is_err());

    // A draft may be incomplete; publishing it is checked.
    admin
        .execute(
            "insert into onboarding.prompts (key, version, system, template, variables, output_schema)
             values ('goals.primaryGoal', 9, 'system', $1, $2, '{\"type\": \"object\"}')",
            &[&template, &variables],
        )
        .await
        .unwrap();
    let error = admin
        .execute(
            "update onboarding.prompts set status = 'published' where key = 'goals.primaryGoal' and version = 9",
            &[],
        )
        .await
        .unwrap_err();
    let db_error = error.as_db_error().unwrap();
    assert_eq!(db_error.constraint(), Some("prompts_publish_check"));
    assert!(
        db_error.message().contains("undeclared variable email"),
        "{}",
        db_error.message()
    );

    // A label cannot point at the draft either.
    let error = admin
        .execute(
            "insert into onboarding.prompt_labels (key, label, version) values ('goals.primaryGoal', 'staging', 9)",
            &[],
        )
        .await
        .unwrap_err();
    assert_eq!(
        error.as_db_error().unwrap().constraint(),
        Some("prompt_labels_published")
    );
}
