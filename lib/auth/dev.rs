//! Development and test helper to mint HS256 tokens (`cargo run --bin
//! mint-token`). It signs with a secret the caller already holds, so it
//! grants nothing that secret does not; no route uses it.

use jsonwebtoken::{Algorithm, EncodingKey, Header};

/// Signs `claims` as an HS256 JWT with `secret`. **Dev and tests only.**
///
/// # Panics
/// If `claims` cannot be serialized, which cannot happen for a `serde_json::Value`.
pub fn mint_dev_token(secret: &[u8], claims: &serde_json::Value) -> String {
    match jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    ) {
        Ok(token) => token,
        Err(err) => panic!("minting a dev token failed: {err}"),
    }
}
