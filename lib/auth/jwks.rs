//! JWKS fetching and caching.
//!
//! Policy: keys are cached for `cache_ttl`; an unknown `kid` or an expired
//! cache triggers a refresh, but at most one fetch attempt per
//! `min_refresh_interval` once a key set is cached (so a flood of tokens with
//! random `kid`s cannot turn us into a traffic amplifier). If a refresh fails
//! the previous set keeps being served (stale-if-error). Concurrent refreshes
//! coalesce: callers queue on one async mutex and reuse the result of a fetch
//! that completed while they waited.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use serde::Deserialize;
use tokio::sync::{Mutex, RwLock};
use tokio::time::Instant;

use crate::auth::error::AuthError;

/// Largest JWKS document we read; real ones are a few KiB.
const MAX_JWKS_BYTES: usize = 256 * 1024;

/// One verification key from the set.
pub(crate) struct JwksKey {
    pub(crate) key: DecodingKey,
    pub(crate) family: AlgorithmFamily,
    /// The JWK's `alg`, when it pins one; the token must then use exactly it.
    pub(crate) alg: Option<Algorithm>,
}

struct CachedSet {
    keys: HashMap<String, Arc<JwksKey>>,
    fetched_at: Instant,
}

#[derive(Default)]
struct FetchState {
    /// Bumped after every fetch attempt, successful or not, so that callers
    /// that queued behind a fetch can tell it happened and not repeat it.
    generation: u64,
    last_attempt: Option<Instant>,
    last_attempt_failed: bool,
}

/// A cached, rate-limited view of one JWKS endpoint.
pub(crate) struct JwksCache {
    url: String,
    http: reqwest::Client,
    timeout: Duration,
    cache_ttl: Duration,
    min_refresh_interval: Duration,
    set: RwLock<Option<CachedSet>>,
    fetch: Mutex<FetchState>,
    /// Mirrors `FetchState::generation` for lock-free reads before queueing.
    generation: std::sync::atomic::AtomicU64,
}

impl JwksCache {
    pub(crate) fn new(
        url: String,
        http: reqwest::Client,
        timeout: Duration,
        cache_ttl: Duration,
        min_refresh_interval: Duration,
    ) -> Self {
        Self {
            url,
            http,
            timeout,
            cache_ttl,
            min_refresh_interval,
            set: RwLock::new(None),
            fetch: Mutex::new(FetchState::default()),
            generation: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The key for `kid`, fetching or refreshing the set as the policy allows.
    pub(crate) async fn key(&self, kid: &str) -> Result<Arc<JwksKey>, AuthError> {
        use std::sync::atomic::Ordering;

        let seen_generation = self.generation.load(Ordering::Acquire);
        if let Some(found) = self.lookup_fresh(kid).await {
            return Ok(found);
        }

        let mut state = self.fetch.lock().await;
        let fetched_while_waiting = state.generation != seen_generation;
        let has_set = self.set.read().await.is_some();
        let rate_limited = has_set
            && state
                .last_attempt
                .is_some_and(|at| at.elapsed() < self.min_refresh_interval);

        let attempt_failed = if fetched_while_waiting || rate_limited {
            state.last_attempt_failed
        } else {
            let result = self.fetch_set().await;
            state.generation += 1;
            state.last_attempt = Some(Instant::now());
            state.last_attempt_failed = result.is_err();
            self.generation.store(state.generation, Ordering::Release);
            match result {
                Ok(keys) => {
                    *self.set.write().await = Some(CachedSet {
                        keys,
                        fetched_at: Instant::now(),
                    });
                    false
                }
                Err(reason) => {
                    tracing::warn!(url = %self.url, reason, "JWKS fetch failed; serving cached keys if any");
                    true
                }
            }
        };
        drop(state);

        let set = self.set.read().await;
        match set.as_ref() {
            None => Err(AuthError::JwksUnavailable),
            Some(set) => match set.keys.get(kid) {
                Some(key) => Ok(Arc::clone(key)),
                // We could not ask the provider, so we cannot call the kid unknown.
                None if attempt_failed && !rate_limited => Err(AuthError::JwksUnavailable),
                None => Err(AuthError::UnknownKey),
            },
        }
    }

    async fn lookup_fresh(&self, kid: &str) -> Option<Arc<JwksKey>> {
        let set = self.set.read().await;
        let set = set.as_ref()?;
        if set.fetched_at.elapsed() >= self.cache_ttl {
            return None;
        }
        set.keys.get(kid).cloned()
    }

    /// One GET of the JWKS; the error is a static reason for the log.
    async fn fetch_set(&self) -> Result<HashMap<String, Arc<JwksKey>>, &'static str> {
        let request = async {
            let response = self
                .http
                .get(&self.url)
                .timeout(self.timeout)
                .send()
                .await
                .map_err(|_| "request failed")?;
            if !response.status().is_success() {
                return Err("non-success status");
            }
            if response
                .content_length()
                .is_some_and(|len| len > MAX_JWKS_BYTES as u64)
            {
                return Err("document too large");
            }
            let body = response.bytes().await.map_err(|_| "body read failed")?;
            if body.len() > MAX_JWKS_BYTES {
                return Err("document too large");
            }
            Ok(body)
        };
        // reqwest's timeout should already fire; this also bounds DNS and body reads.
        let body = tokio::time::timeout(self.timeout, request)
            .await
            .map_err(|_| "timed out")??;
        parse_jwks(&body)
    }
}

#[derive(Deserialize)]
struct RawSet {
    keys: Vec<serde_json::Value>,
}

/// Keeps only usable signature keys: asymmetric (RSA, EC, OKP), with a `kid`,
/// not marked for encryption. Symmetric (`oct`) keys are dropped on purpose:
/// HMAC keys only ever come from `AUTH_JWT_SECRET`, which rules out key
/// confusion through the key set.
pub(crate) fn parse_jwks(body: &[u8]) -> Result<HashMap<String, Arc<JwksKey>>, &'static str> {
    let raw: RawSet = serde_json::from_slice(body).map_err(|_| "not a JWK set")?;
    let mut keys = HashMap::new();
    for value in raw.keys {
        // One odd key (an unsupported kty, say) must not poison the whole set.
        let Ok(jwk) = serde_json::from_value::<Jwk>(value) else {
            continue;
        };
        let Some(kid) = jwk.common.key_id.clone() else {
            continue;
        };
        if matches!(jwk.common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature) {
            continue;
        }
        if !matches!(
            jwk.algorithm,
            AlgorithmParameters::RSA(_)
                | AlgorithmParameters::EllipticCurve(_)
                | AlgorithmParameters::OctetKeyPair(_)
        ) {
            continue;
        }
        let alg = match jwk.common.key_algorithm {
            None => None,
            Some(ka) => match Algorithm::from_str(&ka.to_string()) {
                Ok(alg) => Some(alg),
                // e.g. RSA-OAEP: an encryption key.
                Err(_) => continue,
            },
        };
        let Ok(key) = DecodingKey::from_jwk(&jwk) else {
            continue;
        };
        let family = key.family();
        if family == AlgorithmFamily::Hmac || alg.is_some_and(|a| a.family() != family) {
            continue;
        }
        keys.insert(kid, Arc::new(JwksKey { key, family, alg }));
    }
    if keys.is_empty() {
        return Err("no usable signing keys");
    }
    Ok(keys)
}
