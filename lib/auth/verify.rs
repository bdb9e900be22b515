//! JWT verification: algorithm allow-list, key selection, claim checks, and a
//! short-lived cache of successful verifications.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
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
use tokio::time::Instant;

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
    cache: ClaimsCache,
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

/// Successful verifications keyed by SHA-256 of the token (PostgREST-style),
/// so repeated requests with the same token skip signature checks.
/// Failures are never stored: a rejected token is re-checked every time.
/// A full cache makes room for each new entry by dropping the expired ones
/// first (swept at most once per [`SWEEP_INTERVAL`]), else a small share of
/// the others ([`EVICTED_SHARE`]): an instance that sees more distinct
/// tokens than it holds keeps most of them, where emptying the whole cache
/// at once would send them all back to verification together. And a full
/// cache with nothing expired stores a token only on its second
/// verification ([`SeenOnce`]): a token used once would displace one that
/// comes back, at the cost of an eviction, a copy and a store into memory
/// the processor seldom has at hand.
struct ClaimsCache {
    ttl: Duration,
    capacity: usize,
    entries: Mutex<Entries>,
}

struct Entries {
    by_digest: ByDigest,
    /// A full cache looks for expired entries again only from then on: a
    /// sweep reads every entry, and a busy instance is full on every miss.
    next_sweep: Instant,
    /// The tokens a full cache turned away once.
    seen_once: SeenOnce,
}

/// The tokens verified once while the cache was full, as one bit each of a
/// fixed set (8 KiB), picked by their digest: a token whose bit is set is
/// stored on its next verification. Two tokens may share a bit, so now and
/// then a token is stored on its first; that costs the cache one entry, never
/// a verification. When half the bits are set the set starts again, so it
/// remembers the last 32,768 or so tokens turned away.
struct SeenOnce {
    bits: Box<[u64; SEEN_ONCE_BITS / 64]>,
    set: usize,
}

const SEEN_ONCE_BITS: usize = 1 << 16;

impl SeenOnce {
    fn new() -> Self {
        Self {
            bits: Box::new([0; SEEN_ONCE_BITS / 64]),
            set: 0,
        }
    }

    /// Whether `digest`'s bit was set already; sets it if not.
    fn check_and_set(&mut self, digest: &[u8; 32]) -> bool {
        // Bytes the table's hash does not use (its first eight), though
        // any of a digest's bytes would do.
        let bit = usize::from(u16::from_le_bytes([digest[8], digest[9]]));
        let (word, mask) = (bit / 64, 1u64 << (bit % 64));
        if self.bits[word] & mask != 0 {
            return true;
        }
        if self.set >= SEEN_ONCE_BITS / 2 {
            self.bits.fill(0);
            self.set = 0;
        }
        self.bits[word] |= mask;
        self.set += 1;
        false
    }
}

/// How often at most a full cache sweeps its expired entries: often enough
/// that live entries are seldom dropped while expired ones wait (entries live
/// 30 s by default), rarely enough that reading 10,000 entries costs nothing
/// measurable.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// A new entry in a full cache with nothing expired drops 1/`EVICTED_SHARE`
/// of its entries (at least one): the first in the table's order, as good
/// as any and found without an order of insertion kept beside the entries
/// (about a third more memory for the cache when full). Dropped one at a
/// time, each first entry was found further along than the last, as the
/// table's start emptied: an instance serving more distinct tokens than it
/// holds read more of the table on every request (`scripts/count-instructions`
/// with the cache full, README: Benchmark). A 32nd at once reads that far
/// once per 312 new entries of a 10,000-entry cache.
const EVICTED_SHARE: usize = 32;

/// Each token's identity and when it leaves the cache, by the token's digest.
type ByDigest = HashMap<[u8; 32], (Identity, Instant), BuildHasherDefault<DigestPrefix>>;

/// The cache's hash of a key: its first eight bytes. The keys are SHA-256
/// digests of the tokens already, so hashing them again (the default
/// SipHash, twice per request) buys nothing; and only verified tokens are
/// stored, so nobody can fill one bucket with keys of their choosing.
#[derive(Default)]
struct DigestPrefix(u64);

impl Hasher for DigestPrefix {
    fn write(&mut self, bytes: &[u8]) {
        // A `[u8; 32]` hashes as its length, then its bytes: the length
        // is the same for every key, and the bytes are the hash.
        if let Some(prefix) = bytes.first_chunk::<8>() {
            self.0 = u64::from_le_bytes(*prefix);
        }
    }

    fn write_usize(&mut self, _length: usize) {}

    fn finish(&self) -> u64 {
        self.0
    }
}

impl ClaimsCache {
    fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl,
            capacity,
            entries: Mutex::new(Entries {
                by_digest: HashMap::default(),
                next_sweep: Instant::now(),
                seen_once: SeenOnce::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, digest: &[u8; 32]) -> Option<Identity> {
        if self.capacity == 0 {
            return None;
        }
        let entries = &mut self.lock().by_digest;
        match entries.get(digest) {
            Some((identity, expires)) if Instant::now() < *expires => Some(identity.clone()),
            Some(_) => {
                entries.remove(digest);
                None
            }
            None => None,
        }
    }

    /// Stores for min(ttl, time left until `exp`); in a full cache, in place
    /// of the expired entries or else, for a token verified once before,
    /// of a share of the others. The identity is copied only if stored.
    fn insert(&self, digest: [u8; 32], identity: &Identity, until_exp: Duration) {
        let ttl = self.ttl.min(until_exp);
        if self.capacity == 0 || ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut guard = self.lock();
        let Entries {
            by_digest: entries,
            next_sweep,
            seen_once,
        } = &mut *guard;
        if entries.len() >= self.capacity && !entries.contains_key(&digest) {
            if now >= *next_sweep {
                entries.retain(|_, (_, expires)| now < *expires);
                *next_sweep = now + SWEEP_INTERVAL;
            }
            if entries.len() >= self.capacity {
                if !seen_once.check_and_set(&digest) {
                    return;
                }
                // Taken out as the table is walked, not looked up again by key.
                entries
                    .extract_if(|_, _| true)
                    .take((self.capacity / EVICTED_SHARE).max(1))
                    .for_each(drop);
            }
        }
        entries.insert(digest, (identity.clone(), now + ttl));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().by_digest.len()
    }
}

#[cfg(test)]
impl Verifier {
    pub(crate) fn cached_entries(&self) -> usize {
        self.cache.len()
    }
}

#[cfg(test)]
mod claims_cache_tests {
    use std::hash::BuildHasher;

    use super::*;

    fn identity(user: &str) -> Identity {
        Identity {
            user_id: UserId::parse(user).unwrap(),
            organization_id: None,
            organization_role: None,
        }
    }

    #[test]
    fn a_digest_hashes_as_its_first_eight_bytes() {
        let digest: [u8; 32] = Sha256::digest(b"a token").into();
        let hash = BuildHasherDefault::<DigestPrefix>::default().hash_one(digest);
        assert_eq!(hash, u64::from_le_bytes(digest[..8].try_into().unwrap()));
    }

    #[tokio::test]
    async fn keys_that_share_their_first_eight_bytes_stay_apart() {
        let cache = ClaimsCache::new(Duration::from_secs(60), 10);
        let first = [7u8; 32];
        let mut second = first;
        second[31] = 8;
        let minute = Duration::from_secs(60);
        cache.insert(first, &identity("user_first"), minute);
        cache.insert(second, &identity("user_second"), minute);
        assert_eq!(cache.get(&first), Some(identity("user_first")));
        assert_eq!(cache.get(&second), Some(identity("user_second")));
        assert_eq!(cache.get(&[9u8; 32]), None);
    }

    #[tokio::test]
    async fn a_full_cache_makes_room_for_a_token_verified_twice_and_keeps_the_others() {
        let cache = ClaimsCache::new(Duration::from_secs(60), 3);
        let minute = Duration::from_secs(60);
        for n in 0..10u8 {
            let user = format!("user_{n}");
            cache.insert([n; 32], &identity(&user), minute);
            if n >= 3 {
                assert_eq!(
                    cache.get(&[n; 32]),
                    None,
                    "a full cache turns token {n} away once"
                );
                cache.insert([n; 32], &identity(&user), minute);
            }
            assert_eq!(cache.len(), usize::from(n + 1).min(3));
            assert_eq!(cache.get(&[n; 32]), Some(identity(&user)));
        }
        let kept = (0..10u8).filter(|n| cache.get(&[*n; 32]).is_some()).count();
        assert_eq!(kept, 3);
    }

    /// A digest whose bit in [`SeenOnce`] is `bit`, unlike any other's.
    fn digest_with_bit(bit: u16) -> [u8; 32] {
        let mut digest = [0xee; 32];
        digest[..2].copy_from_slice(&bit.to_le_bytes());
        digest[8..10].copy_from_slice(&bit.to_le_bytes());
        digest
    }

    #[tokio::test]
    async fn tokens_verified_once_leave_a_full_cache_as_it_was() {
        let cache = ClaimsCache::new(Duration::from_secs(60), 4);
        let minute = Duration::from_secs(60);
        let kept: Vec<[u8; 32]> = (0..4).map(|n| [n; 32]).collect();
        for digest in &kept {
            cache.insert(*digest, &identity("user_kept"), minute);
        }
        for bit in 0..1_000 {
            cache.insert(digest_with_bit(bit), &identity("user_once"), minute);
        }
        assert_eq!(cache.len(), 4);
        for digest in &kept {
            assert_eq!(cache.get(digest), Some(identity("user_kept")));
        }
    }

    #[tokio::test]
    async fn a_full_cache_forgets_the_tokens_it_turned_away_once_half_its_bits_are_set() {
        let cache = ClaimsCache::new(Duration::from_secs(60), 1);
        let minute = Duration::from_secs(60);
        cache.insert([0; 32], &identity("user_kept"), minute);
        let early = digest_with_bit(60_000);
        cache.insert(early, &identity("user_early"), minute);
        // The early token's bit and others, half of the bits in all.
        let half = u16::try_from(SEEN_ONCE_BITS / 2).unwrap();
        for bit in 0..half - 1 {
            cache.insert(digest_with_bit(bit), &identity("user_once"), minute);
        }
        assert_eq!(cache.get(&[0; 32]), Some(identity("user_kept")));
        // The next new token starts the set again and is its first bit.
        let recent = digest_with_bit(half - 1);
        cache.insert(recent, &identity("user_recent"), minute);
        assert_eq!(cache.get(&recent), None);
        cache.insert(recent, &identity("user_recent"), minute);
        assert_eq!(cache.get(&recent), Some(identity("user_recent")));
        // The early token's bit went with the rest: it counts as new.
        cache.insert(early, &identity("user_early"), minute);
        assert_eq!(cache.get(&early), None);
        cache.insert(early, &identity("user_early"), minute);
        assert_eq!(cache.get(&early), Some(identity("user_early")));
    }

    #[tokio::test]
    async fn a_large_full_cache_drops_a_share_of_its_entries_at_once() {
        let capacity = 4 * EVICTED_SHARE;
        let cache = ClaimsCache::new(Duration::from_secs(60), capacity);
        let minute = Duration::from_secs(60);
        let digest = |n: usize| {
            let digest: [u8; 32] = Sha256::digest(n.to_le_bytes()).into();
            digest
        };
        for n in 0..capacity {
            cache.insert(digest(n), &identity(&format!("user_{n}")), minute);
        }
        assert_eq!(cache.len(), capacity);
        // Each new token verified twice: a full cache stores it the second time.
        let twice = |digest: [u8; 32], user: &str| {
            cache.insert(digest, &identity(user), minute);
            cache.insert(digest, &identity(user), minute);
        };
        twice(digest(capacity), "user_new");
        // Four dropped, the new one stored; the next three need no room.
        assert_eq!(cache.len(), capacity - 4 + 1);
        assert_eq!(cache.get(&digest(capacity)), Some(identity("user_new")));
        for n in 1..=3 {
            twice(digest(capacity + n), "user_more");
        }
        assert_eq!(cache.len(), capacity);
        let kept = (0..capacity).filter(|n| cache.get(&digest(*n)).is_some());
        assert_eq!(kept.count(), capacity - 4);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_cache_drops_its_expired_entries_before_a_live_one() {
        let cache = ClaimsCache::new(Duration::from_secs(60), 3);
        let (second, minute) = (Duration::from_secs(1), Duration::from_secs(60));
        cache.insert([1; 32], &identity("user_short_1"), second);
        cache.insert([2; 32], &identity("user_long"), minute);
        cache.insert([3; 32], &identity("user_short_3"), second);
        tokio::time::advance(Duration::from_secs(2)).await;

        cache.insert([4; 32], &identity("user_new"), minute);
        assert_eq!(
            cache.len(),
            2,
            "both expired entries are gone, nothing else"
        );
        assert_eq!(cache.get(&[2; 32]), Some(identity("user_long")));
        assert_eq!(cache.get(&[4; 32]), Some(identity("user_new")));
    }

    #[tokio::test]
    async fn storing_a_cached_token_again_in_a_full_cache_drops_nothing() {
        // Two requests with the same new token, verified at once, both store it.
        let cache = ClaimsCache::new(Duration::from_secs(60), 2);
        let minute = Duration::from_secs(60);
        let (twice, other) = ([1u8; 32], [2u8; 32]);
        cache.insert(twice, &identity("user_twice"), minute);
        cache.insert(other, &identity("user_other"), minute);
        cache.insert(twice, &identity("user_twice"), minute);
        assert_eq!(cache.get(&twice), Some(identity("user_twice")));
        assert_eq!(cache.get(&other), Some(identity("user_other")));
        assert_eq!(cache.len(), 2);
    }
}
