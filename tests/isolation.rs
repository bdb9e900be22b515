//! Isolation, proven through the path the routes take: `Database` transactions
//! carrying an `RlsContext`, over the non-superuser application role.

use std::collections::BTreeSet;

use onboarding::db::answers;
use onboarding::db::progress::{self, ProgressRecord};
use onboarding::db::{Database, DbError, RlsContext, Statement, StatementMode};
use proptest::prelude::*;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;

use crate::support::TestDb;

fn user(id: &str, org: Option<&str>) -> RlsContext {
    RlsContext::user(id, org, None)
}

fn session(seed: char) -> (String, RlsContext) {
    let hash: String = std::iter::repeat_n(seed, 64).collect();
    let context = RlsContext::anonymous(Some(&hash));
    (hash, context)
}

async fn start(db: &Database, context: &RlsContext, flow: &str) -> ProgressRecord {
    db.transaction(context, async |tx| {
        progress::start(tx, flow, 1, "profile").await
    })
    .await
    .unwrap()
    .expect("a first start creates the row")
}

async fn visible(db: &Database, context: &RlsContext) -> Vec<ProgressRecord> {
    db.transaction(context, async |tx| progress::list_visible(tx).await)
        .await
        .unwrap()
}

const INSERT_FOR_USER: Statement = Statement::new(
    "insert into onboarding.progress (user_id, flow_id, flow_version) values ($1, $2, 1) returning id",
    &[Type::TEXT, Type::TEXT],
);

const UPDATE_ANY: Statement = Statement::new(
    "update onboarding.progress set current_step = 'hijacked' where id = $1 returning id",
    &[Type::UUID],
);

const CREATE_ORGANIZATION: Statement = Statement::new(
    "insert into onboarding.organizations (id, name, slug) values ($1, $2, $3) returning id",
    &[Type::TEXT, Type::TEXT, Type::TEXT],
);

const JOIN_AS_OWNER: Statement = Statement::new(
    "insert into onboarding.memberships (organization_id, user_id, role) values ($1, onboarding.current_user_id(), 'owner')",
    &[Type::TEXT],
);

const INSERT_MEMBERSHIP: Statement = Statement::new(
    "insert into onboarding.memberships (organization_id, user_id, role) values ($1, $2, $3)",
    &[Type::TEXT, Type::TEXT, Type::TEXT],
);

const SAVE_ANSWER: Statement = Statement::new(
    "insert into onboarding.step_answers (progress_id, step, answers, flow_version) values ($1, $2, $3, 1) returning step",
    &[Type::UUID, Type::TEXT, Type::JSONB],
);

const READ_ANSWERS: Statement = Statement::new(
    "select step from onboarding.step_answers order by step",
    &[],
);

fn is_rls_violation(error: &DbError) -> bool {
    error.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE)
}

async fn create_organization_owned_by(db: &Database, owner: &RlsContext, id: &str) {
    let (id, slug) = (id.to_string(), id.replace('_', "-"));
    db.transaction(owner, async |tx| {
        tx.query(&CREATE_ORGANIZATION, &[&id, &"Acme", &slug])
            .await?;
        tx.query(&JOIN_AS_OWNER, &[&id]).await?;
        Ok::<_, DbError>(())
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_user_cannot_read_update_delete_or_insert_as_another_user() {
    let test_db = TestDb::migrated().await;
    let db = test_db.database();
    // Same organization and different organizations: isolation is per user.
    let alice = user("alice", Some("org_a"));
    let bob_same_org = user("bob", Some("org_a"));
    let carol_other_org = user("carol", Some("org_b"));
    let alices = start(&db, &alice, "default").await;

    for other in [&bob_same_org, &carol_other_org] {
        // Read
        assert!(visible(&db, other).await.is_empty());
        let own = db
            .one_trip(
                other,
                &Statement::new(
                    "select id from onboarding.progress where id = $1",
                    &[Type::UUID],
                ),
                &[&alices.id],
            )
            .await
            .unwrap();
        assert!(own.is_empty());
        // Update: through the named function and through a bare statement.
        let moved = db
            .transaction(other, async |tx| {
                progress::set_current_step(tx, alices.id, alices.row_version, "goals").await
            })
            .await
            .unwrap();
        assert_eq!(moved, None);
        let updated = db
            .transaction(other, async |tx| tx.query(&UPDATE_ANY, &[&alices.id]).await)
            .await
            .unwrap();
        assert!(updated.is_empty());
        // Delete
        let deleted = db
            .transaction(other, async |tx| progress::delete(tx, alices.id).await)
            .await
            .unwrap();
        assert!(!deleted);
        // Insert as alice
        let error = db
            .transaction(other, async |tx| {
                tx.query(&INSERT_FOR_USER, &[&"alice", &"other-flow"]).await
            })
            .await
            .unwrap_err();
        assert!(is_rls_violation(&error), "{error:?}");
    }

    let after = visible(&db, &alice).await;
    assert_eq!(after, vec![alices], "alice's row is untouched");
}

#[tokio::test]
async fn anonymous_sessions_cannot_see_or_touch_each_other() {
    let test_db = TestDb::migrated().await;
    let db = test_db.database();
    let (_, first) = session('a');
    let (_, second) = session('b');
    let firsts = start(&db, &first, "default").await;
    db.transaction(&first, async |tx| {
        tx.query(
            &SAVE_ANSWER,
            &[
                &firsts.id,
                &"profile",
                &serde_json::json!({"fullName": "Ada"}),
            ],
        )
        .await
    })
    .await
    .unwrap();

    assert!(visible(&db, &second).await.is_empty());
    let answers = db.one_trip(&second, &READ_ANSWERS, &[]).await.unwrap();
    assert!(answers.is_empty());
    let error = db
        .transaction(&second, async |tx| {
            tx.query(
                &SAVE_ANSWER,
                &[&firsts.id, &"goals", &serde_json::json!({})],
            )
            .await
        })
        .await
        .unwrap_err();
    assert!(is_rls_violation(&error), "{error:?}");
    // A caller with no session at all sees nothing either.
    assert!(visible(&db, &RlsContext::anonymous(None)).await.is_empty());
    assert_eq!(visible(&db, &first).await, vec![firsts]);
}

#[tokio::test]
async fn a_signed_in_user_sees_no_anonymous_drafts_but_the_session_they_present() {
    let test_db = TestDb::migrated().await;
    let db = test_db.database();
    let (hash, anonymous) = session('c');
    let draft = start(&db, &anonymous, "default").await;
    assert!(visible(&db, &user("dave", None)).await.is_empty());
    let presenting = RlsContext::user("dave", None, Some(&hash));
    assert_eq!(visible(&db, &presenting).await, vec![draft]);
}

/// The application's database with prepared statements, and with unnamed
/// ones as behind a pooler.
fn prepared_and_unnamed(test_db: &TestDb) -> (Database, Database) {
    let in_mode = |mode| {
        let settings = test_db.settings().database.with_statement_mode(mode);
        test_db.database_at(&settings, test_db.app_url())
    };
    (
        in_mode(StatementMode::Prepared),
        in_mode(StatementMode::Unnamed),
    )
}

/// The status and step reads are sent as one call of a function that sets
/// the caller's context itself (`Statement::each_in_one_call`), with prepared
/// statements and behind a pooler (unnamed). For every kind of caller both
/// answer exactly what the queries answer inside a transaction with the
/// caller's context, and only the caller's own row: the admin of an
/// organization, whose policies show them its members' progress, gets no
/// member's row from any of them.
#[tokio::test]
async fn the_reads_sent_as_one_call_answer_as_the_queries_and_only_the_callers_own() {
    let test_db = TestDb::migrated().await;
    let (prepared, unnamed) = prepared_and_unnamed(&test_db);
    let admin = user("admin_h", Some("org_h"));
    create_organization_owned_by(&prepared, &admin, "org_h").await;
    let member = user("member_h", Some("org_h"));
    let other = user("other_h", None);
    let (_, visitor) = session('e');
    for (caller, name) in [(&member, "Mia"), (&other, "Otto"), (&visitor, "Vic")] {
        let row = start(&prepared, caller, "default").await;
        prepared
            .transaction(caller, async |tx| {
                tx.query(
                    &SAVE_ANSWER,
                    &[&row.id, &"profile", &serde_json::json!({"fullName": name})],
                )
                .await
            })
            .await
            .unwrap();
    }
    assert_eq!(
        visible(&prepared, &admin).await.len(),
        1,
        "the member's row"
    );

    // The same queries, run inside a transaction that carries the context.
    let status_query = Statement::new(progress::FETCH_OWN_WITH_ANSWERS.sql(), &[Type::TEXT]);
    let step_query = Statement::new(answers::FETCH_OWN_STEP.sql(), &[Type::TEXT, Type::TEXT]);
    for (caller, expected) in [
        (&admin, None),
        (&member, Some("Mia")),
        (&other, Some("Otto")),
        (&visitor, Some("Vic")),
    ] {
        let (status_rows, step_rows) = prepared
            .transaction(caller, async |tx| {
                let status = tx.query(&status_query, &[&"default"]).await?;
                let step = tx.query(&step_query, &[&"default", &"profile"]).await?;
                Ok::<_, DbError>((status, step))
            })
            .await
            .unwrap();
        let queried = (
            status_rows.first().map(|row| {
                (
                    row.get::<_, uuid::Uuid>("id"),
                    row.get::<_, serde_json::Value>("answers"),
                )
            }),
            step_rows.first().map(|row| {
                (
                    row.get::<_, serde_json::Value>("answers"),
                    row.get::<_, i64>("version"),
                )
            }),
        );
        for db in [&prepared, &unnamed] {
            let own =
                progress::fetch_own_with_answers_in_one_trip(db, caller, "default", &|_| true)
                    .await
                    .unwrap();
            let step = answers::fetch_own_in_one_trip(db, caller, "default", "profile")
                .await
                .unwrap();
            let called = (
                own.as_ref()
                    .map(|(row, answers)| (row.id, serde_json::Value::Object(answers.clone()))),
                step.as_ref()
                    .map(|answer| (answer.answers.clone(), answer.version)),
            );
            assert_eq!(
                called, queried,
                "{expected:?}: the call and the query differ"
            );
            let name =
                |answers: &serde_json::Value| answers["fullName"].as_str().map(str::to_owned);
            assert_eq!(
                own.as_ref()
                    .and_then(|(_, answers)| answers.get("profile"))
                    .and_then(name),
                expected.map(str::to_owned)
            );
            assert_eq!(
                step.as_ref().and_then(|answer| name(&answer.answers)),
                expected.map(str::to_owned)
            );
        }
    }
}

/// A read sent as one call switches role and claims for its query only:
/// the next statement on the same connection runs as the login role with no
/// claims, and inside a longer transaction the call leaves the role, claims
/// and plan cache mode as they were before it.
#[tokio::test]
async fn a_read_in_one_call_leaves_no_context_behind() {
    let test_db = TestDb::migrated().await;
    let member = user("member_k", None);
    let row = start(&test_db.database(), &member, "default").await;
    let client = crate::support::connect(&test_db.app_url()).await;
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] =
        [&"authenticated", &member.claims(), &"default"];
    // The role, the claims and the plan cache mode the connection is left with.
    let context = async || {
        let row = client
            .query_one(
                "select current_user::text,
                        coalesce(current_setting('request.jwt.claims', true), ''),
                        current_setting('plan_cache_mode')",
                &[],
            )
            .await
            .unwrap();
        (
            row.get::<_, String>(0),
            row.get::<_, String>(1),
            row.get::<_, String>(2),
        )
    };
    let ids = |rows: Vec<tokio_postgres::Row>| {
        rows.iter()
            .map(|r| r.get::<_, uuid::Uuid>(0))
            .collect::<Vec<_>>()
    };

    let call = "select id from onboarding.own_progress_with_answers_each_as(array[$1::text], array[$2::text], array[$3::text])";
    // In its own implicit transaction, as the application sends it.
    assert_eq!(
        ids(client.query(call, &params).await.unwrap()),
        vec![row.id]
    );
    assert_eq!(
        context().await,
        ("onboarding_app".into(), String::new(), "auto".into())
    );
    let hidden = client
        .query("select id from onboarding.progress", &[])
        .await
        .unwrap_err();
    assert_eq!(hidden.code(), Some(&SqlState::INSUFFICIENT_PRIVILEGE));

    // Inside a transaction that already carries settings of its own.
    client
        .batch_execute(
            "begin; select set_config('request.jwt.claims', '{\"sub\":\"someone_else\"}', true)",
        )
        .await
        .unwrap();
    assert_eq!(
        ids(client.query(call, &params).await.unwrap()),
        vec![row.id]
    );
    assert_eq!(
        context().await,
        (
            "onboarding_app".into(),
            r#"{"sub":"someone_else"}"#.into(),
            "auto".into()
        )
    );
    client.batch_execute("rollback").await.unwrap();
}

/// Reads of many callers in flight at once, as a busy instance sends them
/// (the ones that queue up as one call: `lib/db/batched_read.rs`): each
/// caller gets their own row and answers, never a neighbour's.
#[tokio::test]
async fn reads_in_flight_together_each_answer_only_their_own_caller() {
    let test_db = TestDb::migrated().await;
    each_reads_only_their_own(&test_db.database()).await;
}

/// The same with unnamed statements, as behind a pooler.
#[tokio::test]
async fn reads_batched_behind_a_pooler_each_answer_only_their_own_caller() {
    let test_db = TestDb::migrated().await;
    let unnamed = test_db.database_at(
        &test_db
            .settings()
            .database
            .with_statement_mode(StatementMode::Unnamed),
        test_db.app_url(),
    );
    each_reads_only_their_own(&unnamed).await;
}

/// 17 callers (members with an answer, anonymous visitors without, one with
/// no row), each reading their status and their profile step four times,
/// all in flight at once.
async fn each_reads_only_their_own(db: &Database) {
    let db = db.clone();
    let mut callers = Vec::new();
    for n in 0..12 {
        let member = user(&format!("member_{n}"), None);
        let row = start(&db, &member, "default").await;
        db.transaction(&member, async |tx| {
            let answer = serde_json::json!({ "n": n });
            answers::store(
                tx,
                row.id,
                "profile",
                &answer,
                true,
                1,
                answers::Write::Insert,
            )
            .await
        })
        .await
        .unwrap()
        .expect("a first answer");
        callers.push((member, row.id, Some(n)));
    }
    for seed in ['c', 'd', 'e', 'f'] {
        let (_, visitor) = session(seed);
        let row = start(&db, &visitor, "default").await;
        callers.push((visitor, row.id, None));
    }
    // A caller with no row at all reads nothing.
    callers.push((user("member_without_a_row", None), uuid::Uuid::nil(), None));

    let reads = callers
        .iter()
        .cycle()
        .take(callers.len() * 4)
        .map(|(context, _, _)| async {
            futures_util::future::join(
                progress::fetch_own_with_answers_in_one_trip(&db, context, "default", &|_| true),
                answers::fetch_own_in_one_trip(&db, context, "default", "profile"),
            )
            .await
        });
    let results = futures_util::future::join_all(reads).await;
    for ((context, id, answer), (result, step)) in callers.iter().cycle().zip(results) {
        let found = result.unwrap();
        let step = step.unwrap().map(|stored| stored.answers);
        assert_eq!(
            step,
            answer.map(|n| serde_json::json!({ "n": n })),
            "{context:?} read another caller's step"
        );
        if id.is_nil() {
            assert!(found.is_none(), "{context:?} read a row that is not theirs");
            continue;
        }
        let (record, answers) = found.expect("the caller's own row");
        assert_eq!(record.id, *id, "{context:?} read another caller's row");
        let expected = answer.map(|n| serde_json::json!({ "profile": { "n": n } }));
        assert_eq!(
            serde_json::Value::Object(answers),
            expected.unwrap_or_else(|| serde_json::json!({})),
            "{context:?} read another caller's answers"
        );
    }
}

#[tokio::test]
async fn an_organization_admin_sees_their_organizations_progress_and_nothing_else() {
    let test_db = TestDb::migrated().await;
    let db = test_db.database();
    let admin = user("admin_a", Some("org_a"));
    create_organization_owned_by(&db, &admin, "org_a").await;
    let other_admin = user("admin_b", Some("org_b"));
    create_organization_owned_by(&db, &other_admin, "org_b").await;

    let member_a = user("member_a", Some("org_a"));
    let member_b = user("member_b", Some("org_b"));
    let row_a = start(&db, &member_a, "default").await;
    let row_b = start(&db, &member_b, "default").await;
    db.transaction(&member_a, async |tx| {
        tx.query(
            &SAVE_ANSWER,
            &[
                &row_a.id,
                &"profile",
                &serde_json::json!({"fullName": "Mia"}),
            ],
        )
        .await
    })
    .await
    .unwrap();

    let seen = visible(&db, &admin).await;
    assert_eq!(
        seen,
        vec![row_a.clone()],
        "admin of org_a sees org_a's rows only"
    );
    assert_eq!(visible(&db, &other_admin).await, vec![row_b]);
    // Aggregates, not answers: the admin reads no member's answers.
    assert!(
        db.one_trip(&admin, &READ_ANSWERS, &[])
            .await
            .unwrap()
            .is_empty()
    );
    // Nor can they write the member's row.
    let moved = db
        .transaction(&admin, async |tx| {
            progress::set_current_step(tx, row_a.id, row_a.row_version, "goals").await
        })
        .await
        .unwrap();
    assert_eq!(moved, None);
    // A token naming org_b does not make org_a's admin an admin of org_b.
    let hopping = user("admin_a", Some("org_b"));
    assert!(visible(&db, &hopping).await.is_empty());
    // A member cannot promote themselves, nor enrol anyone into an organization.
    let error = db
        .transaction(&member_a, async |tx| {
            tx.query(&INSERT_MEMBERSHIP, &[&"org_a", &"member_a", &"admin"])
                .await
        })
        .await
        .unwrap_err();
    assert!(is_rls_violation(&error), "{error:?}");
}

/// One randomly generated world: users spread over organizations, some
/// anonymous sessions, each with rows in some flows.
#[derive(Debug, Clone)]
struct World {
    users: Vec<(usize, usize)>,
    sessions: usize,
    flows_per_owner: Vec<usize>,
}

fn world() -> impl Strategy<Value = World> {
    (
        prop::collection::vec((0..3usize, 0..3usize), 1..6),
        0..4usize,
        prop::collection::vec(0..3usize, 10),
    )
        .prop_map(|(users, sessions, flows_per_owner)| World {
            users,
            sessions,
            flows_per_owner,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// Every read returns exactly the rows the caller owns.
    #[test]
    fn every_read_returns_exactly_the_callers_own_rows(world in world()) {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let test_db = TestDb::migrated().await;
            let db = test_db.database();
            let mut owners: Vec<RlsContext> = Vec::new();
            for (index, (org, _)) in world.users.iter().enumerate() {
                owners.push(user(&format!("user_{index}"), Some(&format!("org_{org}"))));
            }
            for index in 0..world.sessions {
                let hash = format!("{index:064x}");
                owners.push(RlsContext::anonymous(Some(&hash)));
            }
            let mut expected: Vec<BTreeSet<uuid::Uuid>> = Vec::new();
            for (index, owner) in owners.iter().enumerate() {
                let mut mine = BTreeSet::new();
                for flow in 0..world.flows_per_owner[index % world.flows_per_owner.len()] {
                    mine.insert(start(&db, owner, &format!("flow_{flow}")).await.id);
                }
                expected.push(mine);
            }
            for (index, owner) in owners.iter().enumerate() {
                let seen: BTreeSet<_> = visible(&db, owner).await.into_iter().map(|row| row.id).collect();
                assert_eq!(seen, expected[index], "owner {index} of {world:?}");
            }
        });
    }
}

/// The calls of a save, as one user runs them in one transaction: the row
/// locked with every answer, the profile answer replaced (or inserted when
/// there is none) with the steps recorded. Timestamps and ids left out, so
/// two runs compare.
async fn save_profile(
    db: &Database,
    caller: &RlsContext,
    name: &str,
) -> Result<Vec<String>, DbError> {
    db.transaction(caller, async |tx| {
        let (record, stored) = progress::fetch_own_for_update_with_answers(tx, "default")
            .await?
            .expect("the caller has a row");
        let write = match stored.get("profile") {
            Some(answer) => answers::Write::ReplaceAt(answer.version),
            None => answers::Write::Insert,
        };
        let answer = serde_json::json!({"fullName": name});
        let (saved, recorded) = progress::store_answer_and_record_step(
            tx,
            record.id,
            1,
            answers::NewAnswer {
                step: "profile",
                answers: &answer,
                completed: true,
                write,
            },
            progress::RecordedSteps {
                completed_steps: &["profile".to_string()],
                current_step: "goals",
            },
        )
        .await?
        .expect("the write's precondition holds");
        Ok::<_, DbError>(vec![
            format!("{:?} {:?}", record.state, record.current_step),
            format!("{:?}", stored.keys().collect::<Vec<_>>()),
            format!(
                "{} {} {} {}",
                saved.step, saved.answers, saved.completed, saved.version
            ),
            format!(
                "{:?} {:?} {}",
                recorded.completed_steps, recorded.current_step, recorded.row_version
            ),
        ])
    })
    .await
}

/// A save is two calls of functions whose plans the server keeps, in either
/// statement mode; behind a pooler (unnamed statements) the merge's single
/// statements are calls too (`Statement::when_unnamed`). They answer alike
/// in both modes, each goes through its function, and another caller
/// reaches nothing of anyone's through them.
#[tokio::test]
async fn a_saves_calls_behind_a_pooler_answer_as_its_statements_and_only_the_callers_own() {
    let test_db = TestDb::migrated().await;
    let admin = crate::support::connect(&test_db.admin_url()).await;
    let (prepared, unnamed) = prepared_and_unnamed(&test_db);

    // The same saves, one user's with each kind of statement: an insert, then a replace.
    let mut outcomes = Vec::new();
    for (db, id) in [(&prepared, "saver_p"), (&unnamed, "saver_u")] {
        let caller = user(id, None);
        start(db, &caller, "default").await;
        let first = save_profile(db, &caller, "Ada").await.unwrap();
        let second = save_profile(db, &caller, "Ada Lovelace").await.unwrap();
        outcomes.push((first, second));
    }
    assert_eq!(outcomes[0], outcomes[1]);
    assert!(outcomes[1].1[2].ends_with(" true 2"), "{outcomes:?}");

    // Another caller, through the calls, with the first saver's progress id.
    let owner = user("saver_u", None);
    let owners = unnamed
        .transaction(&owner, async |tx| progress::fetch_own(tx, "default").await)
        .await
        .unwrap()
        .unwrap();
    for other in [user("intruder", None), session('f').1] {
        let reached = unnamed
            .transaction(&other, async |tx| {
                let locked = progress::fetch_own_for_update_with_answers(tx, "default").await?;
                let read = answers::all_for_progress(tx, owners.id).await?;
                let replaced = answers::store(
                    tx,
                    owners.id,
                    "profile",
                    &serde_json::json!({"fullName": "Mallory"}),
                    true,
                    1,
                    answers::Write::ReplaceAt(2),
                )
                .await?;
                Ok::<_, DbError>((locked, read, replaced))
            })
            .await
            .unwrap();
        assert_eq!(reached, (None, Default::default(), None));
        let recorded = unnamed
            .transaction(&other, async |tx| {
                progress::record_step(tx, owners.id, &[], "hijacked", 1).await
            })
            .await;
        assert!(
            matches!(recorded, Err(DbError::MissingRow(_))),
            "{recorded:?}"
        );
        let inserted = unnamed
            .transaction(&other, async |tx| {
                answers::store(
                    tx,
                    owners.id,
                    "goals",
                    &serde_json::json!({}),
                    false,
                    1,
                    answers::Write::Insert,
                )
                .await
            })
            .await
            .unwrap_err();
        assert!(is_rls_violation(&inserted), "{inserted:?}");
        let through_the_save = |write, step| {
            let (unnamed, other) = (&unnamed, &other);
            async move {
                unnamed
                    .transaction(other, async |tx| {
                        progress::store_answer_and_record_step(
                            tx,
                            owners.id,
                            1,
                            answers::NewAnswer {
                                step,
                                answers: &serde_json::json!({"fullName": "Mallory"}),
                                completed: true,
                                write,
                            },
                            progress::RecordedSteps {
                                completed_steps: &[],
                                current_step: "hijacked",
                            },
                        )
                        .await
                    })
                    .await
            }
        };
        let replaced = through_the_save(answers::Write::ReplaceAt(2), "profile").await;
        assert!(matches!(replaced, Ok(None)), "{replaced:?}");
        let inserted = through_the_save(answers::Write::Insert, "goals")
            .await
            .unwrap_err();
        assert!(is_rls_violation(&inserted), "{inserted:?}");
    }
    let after = unnamed
        .transaction(&owner, async |tx| progress::fetch_own(tx, "default").await)
        .await
        .unwrap();
    assert_eq!(after, Some(owners), "the saver's row is untouched");

    // A save goes through its two functions in either statement mode: it
    // fails where the caller may not execute one.
    for function in [
        "own_progress_for_update_with_answers(text)",
        "store_answer_and_record_step(uuid, text, jsonb, text, integer, bigint, text[], text)",
    ] {
        let (refused_unnamed, refused_prepared) =
            with_execute_revoked(&admin, function, async || {
                let saver_p = user("saver_p", None);
                (
                    save_profile(&unnamed, &owner, "Ada").await.unwrap_err(),
                    save_profile(&prepared, &saver_p, "Ada").await.unwrap_err(),
                )
            })
            .await;
        for refused in [refused_unnamed, refused_prepared] {
            assert!(refused_by(function, &refused), "{function}: {refused:?}");
        }
    }

    // The merge's statements, one by one, go through their functions with
    // unnamed statements only.
    for function in [
        "own_progress_for_update(text)",
        "replace_step_answer_if_version(uuid, text, jsonb, text, integer, bigint)",
        "record_step(uuid, text[], text, integer)",
    ] {
        let writers = [(&unnamed, &owner), (&prepared, &user("saver_p", None))];
        refused_statement_by_statement_with_unnamed_only(&admin, function, writers).await;
    }
    let insert = "insert_step_answer(uuid, text, jsonb, text, integer)";
    let (first_u, first_p) = (user("first_u", None), user("first_p", None));
    start(&unnamed, &first_u, "default").await;
    start(&prepared, &first_p, "default").await;
    let writers = [(&unnamed, &first_u), (&prepared, &first_p)];
    refused_statement_by_statement_with_unnamed_only(&admin, insert, writers).await;
}

/// Writes the profile statement by statement while `function` is revoked,
/// as the first writer (unnamed statements) and as the second (prepared
/// ones): the first must be refused by `function`, the second must not be.
async fn refused_statement_by_statement_with_unnamed_only(
    admin: &tokio_postgres::Client,
    function: &str,
    [(unnamed, unnamed_caller), (prepared, prepared_caller)]: [(&Database, &RlsContext); 2],
) {
    let (refused, written) = with_execute_revoked(admin, function, async || {
        (
            write_profile_statement_by_statement(unnamed, unnamed_caller, "Ada")
                .await
                .unwrap_err(),
            write_profile_statement_by_statement(prepared, prepared_caller, "Ada").await,
        )
    })
    .await;
    assert!(refused_by(function, &refused), "{function}: {refused:?}");
    assert!(written.is_ok(), "{function}: {written:?}");
}

/// `work`, run while `authenticated` may not execute `function` (its
/// signature, e.g. `record_step(uuid, text[], text, integer)`).
async fn with_execute_revoked<T>(
    admin: &tokio_postgres::Client,
    function: &str,
    work: impl AsyncFnOnce() -> T,
) -> T {
    let privilege = format!("execute on function onboarding.{function}");
    admin
        .batch_execute(&format!("revoke {privilege} from authenticated"))
        .await
        .unwrap();
    let outcome = work().await;
    admin
        .batch_execute(&format!("grant {privilege} to authenticated"))
        .await
        .unwrap();
    outcome
}

/// Whether `error` is PostgreSQL refusing to execute `function`.
fn refused_by(function: &str, error: &DbError) -> bool {
    let name = function.split('(').next().unwrap();
    format!("{error:?}").contains(&format!("permission denied for function {name}"))
}

/// The profile answer written as the merge writes answers: the row locked,
/// the answer replaced (or inserted when there is none), the steps recorded,
/// each a statement of its own.
async fn write_profile_statement_by_statement(
    db: &Database,
    caller: &RlsContext,
    name: &str,
) -> Result<(), DbError> {
    db.transaction(caller, async |tx| {
        let record = progress::fetch_own_for_update(tx, "default")
            .await?
            .expect("the caller has a row");
        let stored = answers::all_for_progress(tx, record.id).await?;
        let write = match stored.get("profile") {
            Some(answer) => answers::Write::ReplaceAt(answer.version),
            None => answers::Write::Insert,
        };
        let answer = serde_json::json!({"fullName": name});
        answers::store(tx, record.id, "profile", &answer, true, 1, write)
            .await?
            .expect("the write's precondition holds");
        progress::record_step(tx, record.id, &["profile".to_string()], "goals", 1).await?;
        Ok(())
    })
    .await
}
