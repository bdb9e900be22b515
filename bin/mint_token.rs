//! Mints an HS256 token for local development, signed with AUTH_JWT_SECRET
//! (default: the dev secret of `.env.example`, which the dev server accepts):
//!
//! ```sh
//! TOKEN=$(cargo run -q --bin mint-token -- --sub user_123 --org org_1)
//! curl -H "Authorization: Bearer $TOKEN" 127.0.0.1:3001/api/onboarding/status
//! ```

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use onboarding::auth::LOCAL_AUTH_JWT_SECRET;

fn main() -> anyhow::Result<()> {
    let mut sub = "user_dev".to_string();
    let mut org = None;
    let mut role = None;
    let mut ttl_seconds: u64 = 3600;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--sub" => sub = value()?,
            "--org" => org = Some(value()?),
            "--org-role" => role = Some(value()?),
            "--ttl" => ttl_seconds = value()?.parse().context("--ttl is a number of seconds")?,
            "-h" | "--help" => {
                println!(
                    "usage: mint-token [--sub ID] [--org ORG_ID] [--org-role ROLE] [--ttl SECONDS]"
                );
                return Ok(());
            }
            other => anyhow::bail!("unknown argument {other}; see --help"),
        }
    }
    let secret = std::env::var("AUTH_JWT_SECRET").unwrap_or_else(|_| LOCAL_AUTH_JWT_SECRET.into());
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let mut claims = serde_json::json!({ "sub": sub, "iat": now, "exp": now + ttl_seconds });
    if let Some(org) = org {
        claims["org_id"] = org.into();
    }
    if let Some(role) = role {
        claims["org_role"] = role.into();
    }
    println!(
        "{}",
        onboarding::auth::mint_dev_token(secret.as_bytes(), &claims)
    );
    Ok(())
}
