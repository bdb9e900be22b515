//! The database catalog proves the security model: every table under forced
//! RLS with policies, and an application role that cannot bypass them.

use crate::support::{TestDb, connect};

#[tokio::test]
async fn every_table_in_the_schema_has_rls_enabled_forced_and_a_policy() {
    let db = TestDb::migrated().await;
    let admin = connect(&db.admin_url()).await;
    let rows = admin
        .query(
            "select c.relname, c.relrowsecurity, c.relforcerowsecurity,
                    (select count(*) from pg_policy p where p.polrelid = c.oid) as policies
             from pg_class c
             join pg_namespace n on n.oid = c.relnamespace
             where n.nspname = 'onboarding' and c.relkind in ('r', 'p')
             order by c.relname",
            &[],
        )
        .await
        .unwrap();
    assert!(
        rows.len() >= 9,
        "expected the foundation tables, found {}",
        rows.len()
    );
    for row in &rows {
        let table: &str = row.get(0);
        assert!(
            row.get::<_, bool>(1),
            "{table}: row level security is not enabled"
        );
        assert!(
            row.get::<_, bool>(2),
            "{table}: row level security is not forced"
        );
        assert!(row.get::<_, i64>(3) > 0, "{table}: has no policy");
    }
}

#[tokio::test]
async fn views_in_the_schema_run_with_the_callers_rights() {
    let db = TestDb::migrated().await;
    let admin = connect(&db.admin_url()).await;
    let definer_views: Vec<String> = admin
        .query(
            "select c.relname from pg_class c
             join pg_namespace n on n.oid = c.relnamespace
             where n.nspname = 'onboarding' and c.relkind = 'v'
               and not coalesce('security_invoker=true' = any(c.reloptions), false)",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert!(
        definer_views.is_empty(),
        "views without security_invoker: {definer_views:?}"
    );
}

#[tokio::test]
async fn security_definer_functions_pin_their_path_run_under_policies_and_are_not_public() {
    let db = TestDb::migrated().await;
    let admin = connect(&db.admin_url()).await;
    let rows = admin
        .query(
            "select p.proname::text,
                    coalesce(exists (select 1 from unnest(p.proconfig) c where c like 'search_path=%'), false),
                    r.rolsuper, r.rolbypassrls, r.rolcanlogin,
                    has_function_privilege('public', p.oid, 'execute'),
                    (select count(*) from pg_auth_members m where m.roleid = r.oid)
             from pg_proc p
             join pg_namespace n on n.oid = p.pronamespace
             join pg_roles r on r.oid = p.proowner
             where n.nspname = 'onboarding' and p.prosecdef
             order by 1",
            &[],
        )
        .await
        .unwrap();
    let names: Vec<String> = rows.iter().map(|row| row.get(0)).collect();
    assert_eq!(
        names,
        [
            "erase_caller",
            "erase_user",
            "outbox_claim",
            "outbox_settle",
            "purge_expired_idempotency_keys",
            "purge_expired_sessions",
            "purge_old_events",
            "purge_old_suggestions",
            "purge_settled_outbox",
        ]
    );
    for row in &rows {
        let name: String = row.get(0);
        assert!(row.get::<_, bool>(1), "{name}: search_path is not pinned");
        assert!(
            !row.get::<_, bool>(2) && !row.get::<_, bool>(3),
            "{name}: its owner bypasses row level security"
        );
        assert!(!row.get::<_, bool>(4), "{name}: its owner can log in");
        assert!(!row.get::<_, bool>(5), "{name}: anyone may execute it");
        assert_eq!(row.get::<_, i64>(6), 0, "{name}: its owner has members");
    }
    let may_erase_a_named_user: Vec<String> = admin
        .query(
            "select r.rolname::text from pg_roles r
             where has_function_privilege(r.oid, 'onboarding.erase_user(text)', 'execute')
               and not r.rolsuper and r.rolname not in ('onboarding_eraser')
             order by 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(may_erase_a_named_user, ["onboarding_app"]);
}

/// Functions the library no longer calls that stay for the instances of the
/// release before, which still call them while a deployment rolls out; the
/// next release's migration drops them and takes them off this list.
const KEPT_FOR_THE_RELEASE_BEFORE: &[&str] = &[];

/// A function nothing calls is still executable by the roles it was granted
/// to, and every later policy change has to keep it isolation-safe: one that a
/// migration replaced is dropped once no release calls it
/// (`migrations/V20261204000200__superseded_reads_dropped.sql`).
#[tokio::test]
async fn every_function_in_the_schema_is_called_by_the_library_or_by_the_schema() {
    let db = TestDb::migrated().await;
    let admin = connect(&db.admin_url()).await;
    let functions: Vec<(String, String)> = admin
        .query(
            "select p.proname::text, p.prosrc from pg_proc p
             join pg_namespace n on n.oid = p.pronamespace
             where n.nspname = 'onboarding'
             order by 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert!(functions.len() >= 20, "found {} functions", functions.len());
    let gone: Vec<&&str> = KEPT_FOR_THE_RELEASE_BEFORE
        .iter()
        .filter(|kept| !functions.iter().any(|(name, _)| name == *kept))
        .collect();
    assert!(
        gone.is_empty(),
        "dropped, so no longer kept: take them off KEPT_FOR_THE_RELEASE_BEFORE: {gone:?}"
    );
    // What else in the schema can call a function: policies, triggers,
    // constraints, column defaults and views.
    let schema_calls: String = admin
        .query_one(
            "select coalesce(string_agg(text, E'\\n'), '') from (
               select coalesce(pg_get_expr(p.polqual, p.polrelid), '') || ' '
                      || coalesce(pg_get_expr(p.polwithcheck, p.polrelid), '') as text
               from pg_policy p join pg_class c on c.oid = p.polrelid
               join pg_namespace n on n.oid = c.relnamespace where n.nspname = 'onboarding'
               union all
               select pg_get_triggerdef(t.oid) from pg_trigger t join pg_class c on c.oid = t.tgrelid
               join pg_namespace n on n.oid = c.relnamespace
               where n.nspname = 'onboarding' and not t.tgisinternal
               union all
               select pg_get_constraintdef(k.oid) from pg_constraint k
               join pg_namespace n on n.oid = k.connamespace where n.nspname = 'onboarding'
               union all
               select pg_get_expr(d.adbin, d.adrelid) from pg_attrdef d
               join pg_class c on c.oid = d.adrelid
               join pg_namespace n on n.oid = c.relnamespace where n.nspname = 'onboarding'
               union all
               select pg_get_viewdef(c.oid) from pg_class c
               join pg_namespace n on n.oid = c.relnamespace
               where n.nspname = 'onboarding' and c.relkind in ('v', 'm')
             ) calls",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let library = library_source();

    let uncalled: Vec<&str> = functions
        .iter()
        .map(|(name, _)| name.as_str())
        .filter(|name| !KEPT_FOR_THE_RELEASE_BEFORE.contains(name))
        .filter(|name| {
            let call = format!("onboarding.{name}(");
            let by_another_function = functions
                .iter()
                .any(|(other, body)| other != name && body.contains(&call));
            !(library.contains(&call) || schema_calls.contains(&call) || by_another_function)
        })
        .collect();
    assert!(
        uncalled.is_empty(),
        "functions nothing calls (drop them in a new migration): {uncalled:?}"
    );
}

/// Every Rust source under `lib/`, where the library's SQL is written, without
/// its comment lines: a function a comment names is not called for that.
fn library_source() -> String {
    fn read(dir: &std::path::Path, into: &mut String) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                read(&path, into);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                for line in std::fs::read_to_string(&path).unwrap().lines() {
                    if !line.trim_start().starts_with("//") {
                        into.push_str(line);
                        into.push('\n');
                    }
                }
            }
        }
    }
    let mut source = String::new();
    read(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("lib"),
        &mut source,
    );
    source
}

#[tokio::test]
async fn the_application_role_is_neither_superuser_nor_bypassrls() {
    let db = TestDb::migrated().await;
    // Asked over the application's own connection, so this is the role the
    // routes really use.
    let app = connect(&db.app_url()).await;
    let row = app
        .query_one(
            "select current_user::text, rolsuper, rolbypassrls, rolinherit
             from pg_roles where rolname = current_user",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "onboarding_app");
    assert!(!row.get::<_, bool>(1), "onboarding_app is a superuser");
    assert!(!row.get::<_, bool>(2), "onboarding_app has BYPASSRLS");
    assert!(
        !row.get::<_, bool>(3),
        "onboarding_app inherits its roles' privileges"
    );
    for role in ["anonymous", "authenticated"] {
        let row = app
            .query_one(
                "select rolsuper, rolbypassrls, rolcanlogin from pg_roles where rolname = $1",
                &[&role],
            )
            .await
            .unwrap();
        assert!(!row.get::<_, bool>(0) && !row.get::<_, bool>(1) && !row.get::<_, bool>(2));
    }
}

#[tokio::test]
async fn the_login_role_without_a_switched_role_can_touch_no_table() {
    let db = TestDb::migrated().await;
    let app = connect(&db.app_url()).await;
    let error = app
        .query("select * from onboarding.progress", &[])
        .await
        .unwrap_err();
    assert_eq!(
        error.code(),
        Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE)
    );
}

/// Asserts that `sql`, run as `role` with `claims`, is planned without a
/// sequential scan of any table. With `enable_seqscan` off the planner still
/// picks a sequential scan when no index can serve the filter, so a missing
/// index shows up as `Seq Scan` in the plan.
async fn assert_uses_indexes(db: &TestDb, role: &str, claims: &str, sql: &str) {
    let app = connect(&db.app_url()).await;
    app.batch_execute("begin").await.unwrap();
    app.execute(
        "select set_config('role', $1, true), set_config('request.jwt.claims', $2, true), set_config('enable_seqscan', 'off', true)",
        &[&role, &claims],
    )
    .await
    .unwrap();
    let plan: Vec<String> = app
        .query(&format!("explain {sql}"), &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    app.batch_execute("rollback").await.unwrap();
    let plan = plan.join("\n");
    assert!(
        !plan.contains("Seq Scan"),
        "`{sql}` as {role} scans a table:\n{plan}"
    );
}

#[tokio::test]
async fn policy_and_hot_query_filters_are_served_by_indexes() {
    let db = TestDb::migrated().await;
    let user = r#"{"role":"authenticated","sub":"user_1","org_id":"org_1"}"#;
    let session = format!(
        r#"{{"role":"anonymous","session_id":"{}"}}"#,
        "a".repeat(64)
    );
    let cases = [
        (
            "authenticated",
            user.to_string(),
            "select * from onboarding.progress where flow_id = 'default' and user_id = 'user_1'",
        ),
        (
            "anonymous",
            session.clone(),
            "select * from onboarding.progress where flow_id = 'default'",
        ),
        (
            "authenticated",
            user.to_string(),
            "select * from onboarding.step_answers where progress_id = '00000000-0000-0000-0000-000000000000'",
        ),
        (
            "anonymous",
            session.clone(),
            "select * from onboarding.step_answers where progress_id = '00000000-0000-0000-0000-000000000000'",
        ),
        (
            "authenticated",
            user.to_string(),
            "select * from onboarding.memberships",
        ),
        (
            "authenticated",
            user.to_string(),
            "select * from onboarding.organizations",
        ),
        (
            "authenticated",
            user.to_string(),
            "select * from onboarding.user_profiles",
        ),
        (
            "authenticated",
            user.to_string(),
            "select * from onboarding.invitations",
        ),
        (
            "anonymous",
            session.clone(),
            "select * from onboarding.anonymous_sessions",
        ),
        (
            "anonymous",
            session.clone(),
            "select * from onboarding.idempotency_keys where key = 'k'",
        ),
        (
            "authenticated",
            user.to_string(),
            "select * from onboarding.analytics_events where flow_id = 'default' and occurred_at > now() - interval '7 days'",
        ),
        (
            "anonymous",
            session.clone(),
            "select * from onboarding.analytics_events",
        ),
        // AI: preferences, organization policy, prompts, suggestions.
        (
            "authenticated",
            user.to_string(),
            "select * from onboarding.ai_preferences",
        ),
        (
            "anonymous",
            session.clone(),
            "select * from onboarding.ai_preferences",
        ),
        (
            "authenticated",
            user.to_string(),
            "select * from onboarding.organization_ai_policies",
        ),
        (
            "anonymous",
            session.clone(),
            "select p.* from onboarding.prompt_labels l join onboarding.prompts p on p.key = l.key and p.version = l.version where l.key = 'goals.primaryGoal' and l.label = 'production'",
        ),
        (
            "authenticated",
            user.to_string(),
            "select * from onboarding.ai_suggestions order by created_at desc limit 20",
        ),
        (
            "anonymous",
            session.clone(),
            "select * from onboarding.ai_suggestions where id = '00000000-0000-0000-0000-000000000000'",
        ),
        (
            "anonymous",
            session.clone(),
            "select * from onboarding.ai_suggestions",
        ),
    ];
    for (role, claims, sql) in cases {
        assert_uses_indexes(&db, role, &claims, sql).await;
    }
}
