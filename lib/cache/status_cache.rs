//! Typed JSON cache entries per subject (the `status` and `flow` answers).
//!
//! # The invalidation rule: write, commit, then invalidate
//! A route that changes what a subject's cached answers say calls
//! [`Cache::invalidate`] **after its database transaction has committed**,
//! never before and never inside it: deleting first would let a concurrent
//! reader refill the entry with the pre-write data before the commit.
//!
//! # Stale fills cannot resurrect old data (the generation guard)
//! Delete-after-write alone still loses one race: a reader misses, reads the
//! *old* row, the writer commits and deletes, and then the reader stores the
//! old row it read, which would be served until the TTL ends. So each subject
//! has a generation counter (`{prefix}:v1:gen:{subject}`):
//! - a miss ([`Lookup::Miss`]) carries a [`FillTicket`] with the generation
//!   seen *before* the database read (read in the same `MGET` as the entry);
//! - [`Cache::invalidate`] bumps the generation and deletes the entries, in
//!   one Lua script;
//! - [`Cache::set_json`] stores only if the generation still equals the
//!   ticket's (a Lua script compares and sets atomically); otherwise the fill
//!   raced a write and is dropped.
//!
//! Entries also expire after `CACHE_TTL_SECONDS` (default 60), the backstop
//! for an invalidation that could not reach Redis (see degraded mode below).
//!
//! # Degraded mode
//! Redis down, slow or not configured: [`Cache::get_json`] is a miss without a
//! ticket, [`Cache::set_json`] (which then has no ticket) and
//! [`Cache::invalidate`] do nothing but log a warning. Nothing here returns an
//! error: the database answers instead.

use std::sync::LazyLock;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::cache::keys::Subject;
use crate::cache::{Redis, RedisError};
use crate::settings::{self, ConfigError, parse_seconds};

/// Cache settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSettings {
    /// How long an entry lives (`CACHE_TTL_SECONDS`, default 60).
    pub ttl: Duration,
}

impl CacheSettings {
    pub fn from_lookup(lookup: &dyn settings::Lookup) -> Result<Self, ConfigError> {
        Ok(Self {
            ttl: parse_seconds(lookup, "CACHE_TTL_SECONDS", 60, 1..=86_400)?,
        })
    }
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(60),
        }
    }
}

/// Which cached answer of a subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheEntry {
    /// `GET /api/onboarding/status`.
    Status,
    /// `GET /api/onboarding/flow`.
    Flow,
}

impl CacheEntry {
    const ALL: [CacheEntry; 2] = [CacheEntry::Status, CacheEntry::Flow];

    fn key(self, redis: &Redis, subject: &Subject) -> String {
        match self {
            CacheEntry::Status => redis.keys().status(subject),
            CacheEntry::Flow => redis.keys().flow(subject),
        }
    }
}

/// Proof of the generation seen before a database read, required to fill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FillTicket {
    generation: String,
}

/// What [`Cache::get_json`] found.
#[derive(Debug)]
pub enum Lookup<T> {
    Hit(T),
    /// Read the database, then hand the ticket to [`Cache::set_json`].
    /// `None` when Redis could not be asked: do not fill.
    Miss(Option<FillTicket>),
}

/// Whether [`Cache::set_json`] stored the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FillOutcome {
    Stored,
    /// A write invalidated the subject since the ticket was taken.
    Stale,
    /// No ticket, or Redis unavailable.
    Skipped,
}

/// Compare-and-set on the generation: fill only if no write intervened.
const FILL_SCRIPT: &str = r"
-- KEYS[1]: entry, KEYS[2]: the subject's generation
-- ARGV[1]: generation seen before the read, ARGV[2]: JSON, ARGV[3]: TTL in ms
local generation = redis.call('GET', KEYS[2]) or '0'
if generation ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
";

/// Bumps the generation (so in-flight fills are refused) and drops the entries.
const INVALIDATE_SCRIPT: &str = r"
-- KEYS[1]: the subject's generation, KEYS[2..]: entries
-- ARGV[1]: how long to keep the generation, in ms
redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
for i = 2, #KEYS do
  redis.call('DEL', KEYS[i])
end
return 1
";

static FILL: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(FILL_SCRIPT));
static INVALIDATE: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(INVALIDATE_SCRIPT));

/// The generation outlives entries by far, so a fill racing a write always
/// sees the bumped value (a missing generation reads as `0`).
const GENERATION_TTL: Duration = Duration::from_secs(24 * 3600);

/// Typed JSON entries per subject; a no-op without Redis.
#[derive(Clone, Copy)]
pub struct Cache<'a> {
    redis: Option<&'a Redis>,
    ttl: Duration,
}

impl<'a> Cache<'a> {
    pub fn new(redis: Option<&'a Redis>, settings: CacheSettings) -> Self {
        Self {
            redis,
            ttl: settings.ttl,
        }
    }

    /// The cached value, or a miss with the ticket to fill it with.
    /// An entry that no longer deserializes as `T` is a miss.
    #[tracing::instrument(level = "debug", skip_all, fields(entry = ?entry))]
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        entry: CacheEntry,
        subject: &Subject,
    ) -> Lookup<T> {
        let Some(redis) = self.redis else {
            return Lookup::Miss(None);
        };
        let mut command = redis::cmd("MGET");
        command
            .arg(entry.key(redis, subject))
            .arg(redis.keys().generation(subject));
        let found = redis
            .run::<(Option<String>, Option<String>)>(&command)
            .await;
        let (value, generation) = match found {
            Ok(found) => found,
            Err(error) => {
                warn_degraded("cache read", &error);
                return Lookup::Miss(None);
            }
        };
        let ticket = FillTicket {
            generation: generation.unwrap_or_else(|| "0".to_string()),
        };
        match value.map(|json| serde_json::from_str(&json)) {
            Some(Ok(value)) => Lookup::Hit(value),
            Some(Err(error)) => {
                tracing::warn!(error = %error, "cached entry does not deserialize; treated as a miss");
                Lookup::Miss(Some(ticket))
            }
            None => Lookup::Miss(Some(ticket)),
        }
    }

    /// Stores `value` if no invalidation happened since `ticket` was taken.
    #[tracing::instrument(level = "debug", skip_all, fields(entry = ?entry))]
    pub async fn set_json<T: Serialize>(
        &self,
        entry: CacheEntry,
        subject: &Subject,
        ticket: Option<&FillTicket>,
        value: &T,
    ) -> FillOutcome {
        let (Some(redis), Some(ticket)) = (self.redis, ticket) else {
            return FillOutcome::Skipped;
        };
        let json = match serde_json::to_string(value) {
            Ok(json) => json,
            Err(error) => {
                tracing::warn!(error = %error, "value does not serialize; not cached");
                return FillOutcome::Skipped;
            }
        };
        let mut invocation = FILL.prepare_invoke();
        invocation
            .key(entry.key(redis, subject))
            .key(redis.keys().generation(subject))
            .arg(&ticket.generation)
            .arg(json)
            .arg(millis(self.ttl));
        match redis.run::<i64>(&invocation).await {
            Ok(1) => FillOutcome::Stored,
            Ok(_) => FillOutcome::Stale,
            Err(error) => {
                warn_degraded("cache fill", &error);
                FillOutcome::Skipped
            }
        }
    }

    /// Drops every cached answer of `subject` and refuses fills that started
    /// before now. Call it **after** the write's transaction has committed.
    /// Best effort: returns whether Redis confirmed it.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn invalidate(&self, subject: &Subject) -> bool {
        let Some(redis) = self.redis else {
            return false;
        };
        let mut invocation = INVALIDATE.prepare_invoke();
        invocation.key(redis.keys().generation(subject));
        for entry in CacheEntry::ALL {
            invocation.key(entry.key(redis, subject));
        }
        invocation.arg(millis(GENERATION_TTL));
        match redis.run::<i64>(&invocation).await {
            Ok(_) => true,
            Err(error) => {
                warn_degraded("cache invalidation", &error);
                false
            }
        }
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

pub(crate) fn warn_degraded(operation: &'static str, error: &RedisError) {
    tracing::warn!(operation, error = %error, "redis unavailable; continuing without it");
}
