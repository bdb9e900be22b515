//! JWT verification: algorithm allow-list, key selection, claim checks, and a
//! short-lived cache of successful verifications.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, AlgorithmFamily};
use serde::Deserialize;
use serde::de::{Deserializer as _, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;
use sha2::{Digest, Sha256, Sha384, Sha512};

use crate::auth::claims_cache::ClaimsCache;
use crate::auth::error::AuthError;
use crate::auth::ids::{OrganizationId, UserId};
use crate::auth::jwks::JwksCache;
use crate::auth::settings::{AuthSettings, ClaimPath};
use crate::settings::ExposeSecret;

/// Tokens above this size are rejected before any decoding work.
pub(crate) const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// What a verified token tells us about the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    pub(crate) user_id: UserId,
    pub(crate) organization_id: Option<OrganizationId>,
    pub(crate) organization_role: Option<String>,
}

#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crit: Option<Value>,
}

/// What a token's header says, once it has been read and found acceptable
/// in itself (no `crit`, an algorithm this crate knows).
struct Header {
    alg: Algorithm,
    kid: Option<String>,
}

impl Header {
    /// Decodes and checks the header segment of a compact JWS.
    fn parse(segment: &str) -> Result<Self, AuthError> {
        let json = URL_SAFE_NO_PAD
            .decode(segment)
            .map_err(|_| AuthError::Malformed("token header is not base64url"))?;
        // RFC 7515 §4: a JSON object. serde would also read a struct from
        // an array of its fields' values (`["HS256"]`).
        if json.trim_ascii_start().first() != Some(&b'{') {
            return Err(AuthError::Malformed("token header is not a JSON object"));
        }
        let raw: RawHeader = serde_json::from_slice(&json)
            .map_err(|_| AuthError::Malformed("token header is not valid JSON"))?;
        if raw.crit.is_some() {
            // RFC 7515 §4.1.11: unknown critical extensions must be rejected.
            return Err(AuthError::Malformed("token header has unsupported crit"));
        }
        let alg = Algorithm::from_str(&raw.alg).map_err(|_| AuthError::DisallowedAlgorithm)?;
        Ok(Self { alg, kid: raw.kid })
    }
}

/// The last header segment that parsed, with what it said. Every token an
/// issuer signs with one key carries the same header, byte for byte, so a
/// new token's header is almost always the last one: compared, not decoded
/// and parsed again (about 1,800 instructions per new token). A header that
/// failed is never kept, so each bad one is read and rejected anew.
#[derive(Default)]
struct LastHeader(Mutex<Option<(Box<str>, Arc<Header>)>>);

impl LastHeader {
    fn parse(&self, segment: &str) -> Result<Arc<Header>, AuthError> {
        let mut last = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((kept, header)) = last.as_ref()
            && **kept == *segment
        {
            return Ok(header.clone());
        }
        let header = Arc::new(Header::parse(segment)?);
        *last = Some((segment.into(), header.clone()));
        Ok(header)
    }
}

/// The HMAC secret, keyed once for each HS* algorithm: a verification
/// clones the keyed state instead of hashing the key again (two blocks of
/// the hash, and a verifier built and boxed, per token). Not `Debug`, so
/// nothing prints the secret.
struct HmacKeys {
    hs256: Hmac<Sha256>,
    hs384: Hmac<Sha384>,
    hs512: Hmac<Sha512>,
}

impl HmacKeys {
    fn new(secret: &[u8]) -> Self {
        Self {
            hs256: keyed(secret),
            hs384: keyed(secret),
            hs512: keyed(secret),
        }
    }

    /// Whether `signature` (base64url) is the MAC of `signed` under `alg`,
    /// compared in constant time.
    fn verify(&self, alg: Algorithm, signed: &[u8], signature: &str) -> Result<bool, AuthError> {
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| AuthError::Malformed("token is not base64url"))?;
        Ok(match alg {
            Algorithm::HS256 => mac_matches(self.hs256.clone(), signed, &signature),
            Algorithm::HS384 => mac_matches(self.hs384.clone(), signed, &signature),
            Algorithm::HS512 => mac_matches(self.hs512.clone(), signed, &signature),
            _ => return Err(AuthError::DisallowedAlgorithm),
        })
    }
}

fn keyed<M: KeyInit>(secret: &[u8]) -> M {
    <M as KeyInit>::new_from_slice(secret).expect("HMAC takes a key of any length")
}

fn mac_matches<M: Mac>(mut mac: M, signed: &[u8], signature: &[u8]) -> bool {
    mac.update(signed);
    mac.verify_slice(signature).is_ok()
}

pub(crate) struct Verifier {
    hmac_keys: Option<HmacKeys>,
    jwks: Option<JwksCache>,
    algorithms: Vec<Algorithm>,
    issuer: Option<String>,
    audiences: Vec<String>,
    skew_secs: f64,
    user_id_claim: ClaimPath,
    org_id_claims: Vec<ClaimPath>,
    org_role_claims: Vec<ClaimPath>,
    /// The top-level claims the checks and the identity read; the payload's
    /// others are skipped unparsed.
    claims_read: Vec<String>,
    last_header: LastHeader,
    cache: ClaimsCache<Identity>,
}

impl Verifier {
    pub(crate) fn new(settings: &AuthSettings, http: reqwest::Client) -> Self {
        Self {
            hmac_keys: settings
                .hs_secret
                .as_ref()
                .map(|s| HmacKeys::new(s.expose_secret().as_bytes())),
            jwks: settings.jwks_url.as_ref().map(|url| {
                JwksCache::new(
                    url.clone(),
                    http,
                    settings.jwks_timeout,
                    settings.jwks_cache_ttl,
                    settings.jwks_min_refresh_interval,
                )
            }),
            algorithms: settings.algorithms.clone(),
            issuer: settings.issuer.clone(),
            audiences: settings.audiences.clone(),
            skew_secs: settings.clock_skew.as_secs_f64(),
            user_id_claim: settings.user_id_claim.clone(),
            org_id_claims: settings.org_id_claims.clone(),
            org_role_claims: settings.org_role_claims.clone(),
            claims_read: claims_read(settings),
            last_header: LastHeader::default(),
            cache: ClaimsCache::new(settings.claims_cache_ttl, settings.claims_cache_capacity),
        }
    }

    pub(crate) async fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::TooLarge);
        }
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(identity) = self.cache.get(&digest) {
            return Ok(identity);
        }

        let mut segments = token.split('.');
        let (header_b64, claims_b64, signature) = match (
            segments.next(),
            segments.next(),
            segments.next(),
            segments.count(),
        ) {
            (Some(header), Some(claims), Some(signature), 0) => (header, claims, signature),
            (Some(_), Some(_), Some(_), 2) => {
                return Err(AuthError::Malformed(
                    "encrypted tokens (JWE) are not supported",
                ));
            }
            _ => return Err(AuthError::Malformed("token is not a compact JWS")),
        };
        let header = self.last_header.parse(header_b64)?;

        // Decide the algorithm from our allow-list before touching any key.
        let alg = header.alg;
        if !self.algorithms.contains(&alg) {
            return Err(AuthError::DisallowedAlgorithm);
        }

        // The key source follows the algorithm family, so an HS* token can
        // never be checked against a public key and vice versa. Then the
        // signature over `header.claims`, and the claims parsed once:
        // `jsonwebtoken::decode` would parse the header again and the claims
        // twice more (into the caller's type and into its own validation
        // struct), for rules this verifier applies itself.
        let signed = &token[..header_b64.len() + 1 + claims_b64.len()];
        let verified = if alg.family() == AlgorithmFamily::Hmac {
            self.hmac_keys
                .as_ref()
                .ok_or(AuthError::DisallowedAlgorithm)?
                .verify(alg, signed.as_bytes(), signature)?
        } else {
            let jwks = self.jwks.as_ref().ok_or(AuthError::DisallowedAlgorithm)?;
            let kid = header
                .kid
                .as_deref()
                .filter(|k| !k.is_empty())
                .ok_or(AuthError::Malformed("token header has no kid"))?;
            let key = jwks.key(kid).await?;
            if key.family != alg.family() || key.alg.is_some_and(|a| a != alg) {
                return Err(AuthError::DisallowedAlgorithm);
            }
            jsonwebtoken::crypto::verify(signature, signed.as_bytes(), &key.key, alg)
                .map_err(|e| map_jwt_error(e.kind()))?
        };
        if !verified {
            return Err(AuthError::BadSignature);
        }
        let claims_json = URL_SAFE_NO_PAD
            .decode(claims_b64)
            .map_err(|_| AuthError::Malformed("token is not base64url"))?;
        let claims = Claims::parse(&claims_json, &self.claims_read)
            .map_err(|_| AuthError::Malformed("token payload is not a JSON object"))?;

        let now = now_secs();
        let exp = self.check_times(&claims, now)?;
        self.check_issuer(&claims)?;
        self.check_audience(&claims)?;
        let identity = self.identity(&claims)?;

        // `exp` is bounded by `numeric_date`, so this converts; a failed
        // conversion only skips the cache.
        if let Ok(remaining) = Duration::try_from_secs_f64(exp - now) {
            self.cache.insert(digest, &identity, remaining);
        }
        Ok(identity)
    }

    /// Checks exp (required), nbf and iat at `now` (seconds since the
    /// epoch); returns exp.
    fn check_times(&self, claims: &Claims<'_>, now: f64) -> Result<f64, AuthError> {
        let exp = match claims.get("exp") {
            None | Some(Value::Null) => return Err(AuthError::MissingExpiry),
            Some(v) => numeric_date(v).ok_or(AuthError::Malformed("exp is not a number"))?,
        };
        if now - self.skew_secs >= exp {
            return Err(AuthError::Expired);
        }
        if let Some(v) = claims.get("nbf").filter(|v| !v.is_null()) {
            let nbf = numeric_date(v).ok_or(AuthError::Malformed("nbf is not a number"))?;
            if nbf > now + self.skew_secs {
                return Err(AuthError::NotYetValid);
            }
        }
        if let Some(v) = claims.get("iat").filter(|v| !v.is_null()) {
            let iat = numeric_date(v).ok_or(AuthError::Malformed("iat is not a number"))?;
            if iat > now + self.skew_secs {
                return Err(AuthError::NotYetValid);
            }
        }
        Ok(exp)
    }

    fn check_issuer(&self, claims: &Claims<'_>) -> Result<(), AuthError> {
        let Some(expected) = &self.issuer else {
            return Ok(());
        };
        match claims.get("iss") {
            Some(Value::String(iss)) if iss == expected => Ok(()),
            _ => Err(AuthError::WrongIssuer),
        }
    }

    fn check_audience(&self, claims: &Claims<'_>) -> Result<(), AuthError> {
        if self.audiences.is_empty() {
            return Ok(());
        }
        let accepted = |aud: &str| self.audiences.iter().any(|a| a == aud);
        let ok = match claims.get("aud") {
            Some(Value::String(aud)) => accepted(aud),
            Some(Value::Array(auds)) => auds.iter().filter_map(Value::as_str).any(accepted),
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(AuthError::WrongAudience)
        }
    }

    fn identity(&self, claims: &Claims<'_>) -> Result<Identity, AuthError> {
        let user_id = match claims.resolve(&self.user_id_claim) {
            Some(Value::String(s)) if !s.is_empty() => UserId::parse(s)
                .map_err(|_| AuthError::Malformed("subject is not a valid user id"))?,
            Some(Value::String(_)) | Some(Value::Null) | None => {
                return Err(AuthError::MissingSubject);
            }
            Some(_) => return Err(AuthError::Malformed("subject is not a string")),
        };
        let organization_id = first_string(
            claims,
            &self.org_id_claims,
            "organization id is not a string",
        )?
        .map(|s| {
            OrganizationId::parse(s)
                .map_err(|_| AuthError::Malformed("organization id is not valid"))
        })
        .transpose()?;
        let organization_role = first_string(
            claims,
            &self.org_role_claims,
            "organization role is not a string",
        )?
        .map(|s| {
            // Same bounds as ids: it is stored and logged.
            UserId::parse(s)
                .map(|_| s.to_owned())
                .map_err(|_| AuthError::Malformed("organization role is not valid"))
        })
        .transpose()?;
        Ok(Identity {
            user_id,
            organization_id,
            organization_role,
        })
    }
}

/// The first non-empty string found at any of `paths`; null, missing and ""
/// count as absent (templates often render a missing org as "" or null).
fn first_string<'a>(
    claims: &'a Claims<'_>,
    paths: &[ClaimPath],
    wrong_type: &'static str,
) -> Result<Option<&'a str>, AuthError> {
    for path in paths {
        match claims.resolve(path) {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if s.is_empty() => {}
            Some(Value::String(s)) => return Ok(Some(s)),
            Some(_) => return Err(AuthError::Malformed(wrong_type)),
        }
    }
    Ok(None)
}

/// The registered claims the checks read.
const REGISTERED_CLAIMS_READ: [&str; 5] = ["exp", "nbf", "iat", "iss", "aud"];

/// The top-level names of the claims a verifier under `settings` reads.
fn claims_read(settings: &AuthSettings) -> Vec<String> {
    let mut names: Vec<String> = REGISTERED_CLAIMS_READ.map(String::from).into();
    let paths = std::iter::once(&settings.user_id_claim)
        .chain(&settings.org_id_claims)
        .chain(&settings.org_role_claims);
    for path in paths {
        let [first, ..] = path.segments() else {
            continue;
        };
        if !names.contains(first) {
            names.push(first.clone());
        }
    }
    names
}

/// The claims a verifier reads, parsed from a token's payload. The others
/// are only checked to be well-formed JSON: a provider's token carries
/// claims nobody here reads (a Clerk session token a dozen, some of them
/// objects), and parsing each into a `Value` cost allocations for nothing.
struct Claims<'a>(Vec<(Cow<'a, str>, Value)>);

impl<'a> Claims<'a> {
    /// The claims named in `read` of `json`, which must be one JSON object.
    fn parse(json: &'a [u8], read: &[String]) -> Result<Self, serde_json::Error> {
        let mut deserializer = serde_json::Deserializer::from_slice(json);
        let claims = deserializer.deserialize_map(ClaimsRead(read))?;
        deserializer.end()?;
        Ok(claims)
    }

    /// The claim `name`: of a name given twice, the last, as a JSON object
    /// parsed into a map keeps it.
    fn get(&self, name: &str) -> Option<&Value> {
        self.0
            .iter()
            .rev()
            .find(|(claim, _)| claim == name)
            .map(|(_, value)| value)
    }

    /// The value at `path`, if every segment resolves through objects.
    fn resolve(&self, path: &ClaimPath) -> Option<&Value> {
        let (first, rest) = path.segments().split_first()?;
        let mut current = self.get(first)?;
        for segment in rest {
            current = current.as_object()?.get(segment)?;
        }
        Some(current)
    }
}

/// A claim's name, borrowed from the payload unless it has escapes.
#[derive(Deserialize)]
#[serde(transparent)]
struct ClaimName<'a>(#[serde(borrow)] Cow<'a, str>);

/// Reads an object of claims, keeping those it names.
struct ClaimsRead<'r>(&'r [String]);

impl<'de> Visitor<'de> for ClaimsRead<'_> {
    type Value = Claims<'de>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a JSON object of claims")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Claims<'de>, A::Error> {
        let mut kept = Vec::with_capacity(self.0.len());
        while let Some(ClaimName(name)) = map.next_key()? {
            if self.0.iter().any(|read| *read == name) {
                kept.push((name, map.next_value()?));
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(Claims(kept))
    }
}

/// The latest NumericDate accepted: 9999-12-31T23:59:59Z. A later one is no
/// date any issuer means, and past about 1.8e19 it no longer fits a `Duration`.
const LATEST_NUMERIC_DATE: f64 = 253_402_300_799.0;

/// A NumericDate (seconds since the epoch) within 0 ..= 9999-12-31.
fn numeric_date(value: &Value) -> Option<f64> {
    value
        .as_f64()
        .filter(|v| v.is_finite() && (0.0..=LATEST_NUMERIC_DATE).contains(v))
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// `jsonwebtoken::crypto::verify`'s errors: the signature segment's
/// encoding, or a key or algorithm its provider cannot use (a signature that
/// does not match is `Ok(false)`, not an error).
fn map_jwt_error(kind: &ErrorKind) -> AuthError {
    match kind {
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            AuthError::DisallowedAlgorithm
        }
        // A key that cannot be used for this algorithm (wrong curve, bad modulus).
        ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::InvalidKeyFormat => AuthError::BadSignature,
        ErrorKind::Base64(_) => AuthError::Malformed("token is not base64url"),
        _ => AuthError::Malformed("token could not be decoded"),
    }
}

#[cfg(test)]
impl Verifier {
    pub(crate) fn cached_entries(&self) -> usize {
        self.cache.len()
    }
}
