//! The function binaries themselves, started the way Vercel starts them: the
//! runtime listens on VERCEL_DEV_PORT.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{TestDb, free_port, function_command};

/// A running function binary, killed when dropped.
pub struct Function {
    child: Child,
    pub address: String,
}

impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Function {
    pub async fn start(binary: &str, db: &TestDb) -> Self {
        Self::start_with(binary, db, &[]).await
    }

    /// As [`Function::start`], with `env` set too.
    pub async fn start_with(binary: &str, db: &TestDb, env: &[(&str, &str)]) -> Self {
        let port = free_port();
        let child = function_command(binary, db)
            .envs(env.iter().copied())
            .env("VERCEL_DEV_PORT", port.to_string())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let function = Self {
            child,
            address: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "{binary} did not listen on {port}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        function
    }
}

#[tokio::test]
async fn the_health_function_binary_answers_on_vercels_port() {
    let db = TestDb::migrated().await;
    let function = Function::start(env!("CARGO_BIN_EXE_health"), &db).await;
    let response = reqwest::get(format!("{}/api/health", function.address))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["checks"]["database"]["status"], "up", "{body}");
    // Only its own route is mounted; anything else is a problem+json 404.
    let response = reqwest::get(format!("{}/api/onboarding/status", function.address))
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
}

#[tokio::test]
async fn a_json_answer_leaves_the_function_whole_with_its_length() {
    // Streamed (chunked), the body went out in a second write that, on a
    // kept-alive connection, waited for the client's delayed ACK: 40 ms each.
    let db = TestDb::migrated().await;
    let function = Function::start(env!("CARGO_BIN_EXE_onboarding-status"), &db).await;
    let response = reqwest::get(format!("{}/api/onboarding/status", function.address))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert!(
        response.headers().get("transfer-encoding").is_none(),
        "{:?}",
        response.headers()
    );
    let length: usize = response.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(response.bytes().await.unwrap().len(), length);
}

#[tokio::test]
async fn the_purge_function_binary_runs_for_the_cron_secret_only() {
    let db = TestDb::migrated().await;
    let secret = "function-cron-secret-0123456789";
    let function = Function::start_with(
        env!("CARGO_BIN_EXE_cron-purge"),
        &db,
        &[("CRON_SECRET", secret)],
    )
    .await;
    let client = reqwest::Client::new();
    let url = format!("{}/api/cron/purge", function.address);
    let response = client.get(&url).bearer_auth(secret).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["complete"], true, "{body}");
    let response = client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn a_function_without_a_database_url_exits_naming_the_variable() {
    let output = Command::new(env!("CARGO_BIN_EXE_health"))
        .env_clear()
        .env("VERCEL_DEV_PORT", free_port().to_string())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("DATABASE_URL"), "{stderr}");
}

/// Every function binary, each on its own port, and a client that sends each
/// path to the binary Vercel would route it to.
async fn start_all(db: &TestDb) -> (Vec<Function>, crate::support::api::Api) {
    let routes: [(&str, &str); 7] = [
        (
            "/api/onboarding/session/merge",
            env!("CARGO_BIN_EXE_onboarding-session-merge"),
        ),
        (
            "/api/onboarding/session",
            env!("CARGO_BIN_EXE_onboarding-session"),
        ),
        (
            "/api/onboarding/status",
            env!("CARGO_BIN_EXE_onboarding-status"),
        ),
        (
            "/api/onboarding/flow",
            env!("CARGO_BIN_EXE_onboarding-flow"),
        ),
        (
            "/api/onboarding/steps/",
            env!("CARGO_BIN_EXE_onboarding-step"),
        ),
        (
            "/api/onboarding/complete",
            env!("CARGO_BIN_EXE_onboarding-complete"),
        ),
        (
            "/api/onboarding/events",
            env!("CARGO_BIN_EXE_onboarding-events"),
        ),
    ];
    let mut functions = Vec::new();
    let mut table = Vec::new();
    for (prefix, binary) in routes {
        let function = Function::start(binary, db).await;
        table.push((prefix.to_string(), function.address.clone()));
        functions.push(function);
    }
    let api = crate::support::api::Api::routed(move |path| {
        table
            .iter()
            .find(|(prefix, _)| path.starts_with(prefix.as_str()))
            .map(|(_, address)| address.clone())
            .unwrap_or_else(|| panic!("no function serves {path}"))
    });
    (functions, api)
}

#[tokio::test]
async fn a_whole_onboarding_runs_through_the_function_binaries() {
    let db = TestDb::migrated().await;
    let (_functions, api) = start_all(&db).await;
    crate::wizard::whole_onboarding(&api, "user_binaries", "acme-binaries").await;
}

#[tokio::test]
async fn the_step_function_takes_the_step_from_vercels_query_parameter() {
    let db = TestDb::migrated().await;
    let (_functions, api) = start_all(&db).await;
    let session = api.start_session().await;
    let auth = crate::support::api::Auth::session(&session);
    let response = api
        .request(reqwest::Method::PUT, "/api/onboarding/steps/%5Bstep%5D?step=profile", &auth)
        .json(&serde_json::json!({ "answers": crate::support::api::valid_answer("profile"), "complete": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let response = api
        .request(
            reqwest::Method::GET,
            "/api/onboarding/steps/%5Bstep%5D?step=profile",
            &auth,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["etag"], "\"1\"");
}

#[tokio::test]
async fn the_erasure_and_export_functions_and_the_webhook_answer_on_vercels_port() {
    let db = TestDb::migrated().await;
    let erase = Function::start(env!("CARGO_BIN_EXE_onboarding-me"), &db).await;
    let export = Function::start(env!("CARGO_BIN_EXE_onboarding-me-export"), &db).await;
    let clerk = Function::start(env!("CARGO_BIN_EXE_webhooks-clerk"), &db).await;
    let client = reqwest::Client::new();
    let bearer = format!(
        "Bearer {}",
        crate::support::token("user_function_erased", None)
    );
    let response = client
        .get(format!("{}/api/onboarding/me/export", export.address))
        .header("authorization", &bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-disposition"],
        "attachment; filename=\"onboarding-export.json\""
    );
    let response = client
        .delete(format!("{}/api/onboarding/me", erase.address))
        .header("authorization", &bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let erased: serde_json::Value = response.json().await.unwrap();
    assert_eq!(erased["deleted"]["progress"], 0, "{erased}");
    // Deployed without CLERK_WEBHOOK_SECRET: not configured.
    let response = client
        .post(format!("{}/api/webhooks/clerk", clerk.address))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
}

#[tokio::test]
async fn the_dev_server_migrates_the_database_it_serves() {
    // A database nobody created or migrated: the dev server must do both to
    // the database DATABASE_URL names, not to its default one.
    let name = format!("dev_served_{}", uuid::Uuid::new_v4().simple());
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_dev"))
        .env(
            "DATABASE_URL",
            format!("postgres://onboarding_app@127.0.0.1:5432/{name}?sslmode=disable"),
        )
        .env("PORT", port.to_string())
        .env("RUST_LOG", "warn")
        .env_remove("MIGRATION_DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let dev = Function {
        child,
        address: format!("http://127.0.0.1:{port}"),
    };
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let health = client
            .get(format!("{}/api/health", dev.address))
            .send()
            .await;
        if health.is_ok_and(|response| response.status() == 200) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the dev server never became healthy"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let token = onboarding::auth::mint_dev_token(
        onboarding::auth::LOCAL_AUTH_JWT_SECRET.as_bytes(),
        &serde_json::json!({ "sub": "dev_served_user", "exp": 4_102_444_800u64 }),
    );
    let status = client
        .get(format!("{}/api/onboarding/status", dev.address))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(status.status(), 200, "{}", status.text().await.unwrap());
    drop(dev);
    let admin = crate::support::connect(crate::support::ADMIN_URL).await;
    admin
        .batch_execute(&format!("drop database if exists {name} with (force)"))
        .await
        .unwrap();
}
