//! The Standard Webhooks signature (<https://www.standardwebhooks.com>), as
//! the `standardwebhooks` and `svix` libraries verify it: the signed content
//! is `{webhook-id}.{webhook-timestamp}.{body}`, the signature
//! `v1,<base64 of its HMAC-SHA256>` under the secret's bytes, and the secret
//! is written `whsec_<base64 of its bytes>`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::settings::{ConfigError, ExposeSecret, SecretString};

/// A decoded signing secret.
#[derive(Clone)]
pub struct SigningKey(Vec<u8>);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(..)")
    }
}

impl SigningKey {
    /// Reads `whsec_<base64>` (the prefix is optional, as the libraries
    /// accept); the key must be 24 to 64 bytes, as Standard Webhooks asks.
    pub fn parse(variable: &'static str, secret: &SecretString) -> Result<Self, ConfigError> {
        let text = secret.expose_secret().trim();
        let encoded = text.strip_prefix("whsec_").unwrap_or(text);
        let bytes = STANDARD.decode(encoded).map_err(|_| {
            ConfigError::new(
                variable,
                "must be `whsec_` followed by base64 (never logged)",
            )
        })?;
        if !(24..=64).contains(&bytes.len()) {
            return Err(ConfigError::new(
                variable,
                format!("the key is {} bytes; it must be 24 to 64", bytes.len()),
            ));
        }
        Ok(Self(bytes))
    }

    /// `v1,<signature>` of one delivery.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification's reference
    /// implementations (their test suites sign this and expect this).
    #[test]
    fn signs_as_the_reference_implementations() {
        let key = SigningKey::parse(
            "TEST",
            &SecretString::from("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        )
        .unwrap();
        let signature = key.sign(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn a_secret_that_is_not_base64_or_too_short_is_refused() {
        assert!(SigningKey::parse("T", &SecretString::from("whsec_not base64!")).is_err());
        assert!(SigningKey::parse("T", &SecretString::from("whsec_c2hvcnQ=")).is_err());
    }
}
