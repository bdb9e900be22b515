//! The function binaries themselves, started the way Vercel starts them: the
//! runtime listens on VERCEL_DEV_PORT.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{TEST_JWT_SECRET, TEST_SESSION_SECRET, TestDb, edge_config_file, free_port};

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
        let port = free_port();
        let child = Command::new(binary)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("VERCEL_DEV_PORT", port.to_string())
            .env("DATABASE_URL", db.app_url())
            .env("REDIS_URL", "redis://127.0.0.1:6379")
            .env("EDGE_CONFIG_FILE", edge_config_file())
            .env("AUTH_JWT_SECRET", TEST_JWT_SECRET)
            .env("SESSION_SECRET", TEST_SESSION_SECRET)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
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
