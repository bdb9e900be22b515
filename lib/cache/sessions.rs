//! Anonymous wizard sessions: PostgreSQL is the source of truth, Redis a
//! read-through cache of it.
//!
//! - [`Sessions::create`] writes `onboarding.anonymous_sessions` (in a
//!   transaction as the session itself), then caches the row.
//! - [`Sessions::find`] reads Redis; on a miss (Redis flushed, restarted,
//!   evicted, or down) it reads PostgreSQL and refills Redis. A session is
//!   never lost because Redis lost it.
//! - [`Sessions::touch`] is the per-request call: it marks the session seen
//!   and slides its expiry (`SESSION_TTL_SECONDS`, default 30 days) in Redis
//!   on every call, and in PostgreSQL at most once per
//!   `SESSION_TOUCH_INTERVAL_SECONDS` (default 600), so an active wizard does
//!   not write the database on every request. PostgreSQL's `expires_at` thus
//!   lags Redis's by at most that interval.
//!
//! The Redis entry is a hash at `{prefix}:v1:session:<sha256 hex>` with
//! `created_at`, `last_seen_at` and `db_seen_at` (Unix milliseconds).
//!
//! # Degraded mode
//! Redis down: every call goes to PostgreSQL, and the touch rule is kept by
//! comparing PostgreSQL's own `last_seen_at`. A PostgreSQL error is returned
//! (the routes answer 503); a Redis error never is.

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::auth::SessionId;
use crate::cache::Redis;
use crate::cache::status_cache::warn_degraded;
use crate::db::sessions::{self as rows, SessionRow};
use crate::db::{Database, DbError, RlsContext};
use crate::settings::{ConfigError, Lookup, parse_seconds};

/// Session settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionSettings {
    /// Sliding lifetime (`SESSION_TTL_SECONDS`, default 30 days).
    pub ttl: Duration,
    /// Least time between two `last_seen_at` writes to PostgreSQL
    /// (`SESSION_TOUCH_INTERVAL_SECONDS`, default 600).
    pub touch_interval: Duration,
}

impl SessionSettings {
    pub fn from_lookup(lookup: &dyn Lookup) -> Result<Self, ConfigError> {
        Ok(Self {
            ttl: parse_seconds(
                lookup,
                "SESSION_TTL_SECONDS",
                30 * 86_400,
                60..=400 * 86_400,
            )?,
            touch_interval: parse_seconds(
                lookup,
                "SESSION_TOUCH_INTERVAL_SECONDS",
                600,
                0..=86_400,
            )?,
        })
    }
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(30 * 24 * 3600),
            touch_interval: Duration::from_secs(600),
        }
    }
}

/// Where a session record was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionSource {
    Redis,
    Database,
}

/// An anonymous session as the routes see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub source: SessionSource,
}

/// Sets `last_seen_at` and slides the TTL only if the entry exists, and
/// returns it: one round trip per request.
const TOUCH_SCRIPT: &str = r"
-- KEYS[1]: the session hash; ARGV[1]: now (ms), ARGV[2]: TTL (ms)
if redis.call('EXISTS', KEYS[1]) == 0 then
  return false
end
redis.call('HSET', KEYS[1], 'last_seen_at', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return redis.call('HGETALL', KEYS[1])
";

static TOUCH: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(TOUCH_SCRIPT));

/// The session store of one request; cheap to build.
#[derive(Clone, Copy)]
pub struct Sessions<'a> {
    db: &'a Database,
    redis: Option<&'a Redis>,
    settings: SessionSettings,
}

struct Cached {
    record: SessionRecord,
    db_seen_at: DateTime<Utc>,
}

impl<'a> Sessions<'a> {
    pub fn new(db: &'a Database, redis: Option<&'a Redis>, settings: SessionSettings) -> Self {
        Self {
            db,
            redis,
            settings,
        }
    }

    /// Records a new session in PostgreSQL (the source of truth), then caches it.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn create(&self, session: &SessionId) -> Result<SessionRecord, DbError> {
        let hash = session.hash_hex();
        let ttl = self.settings.ttl;
        let row = self
            .db
            .transaction(&RlsContext::anonymous(Some(&hash)), async |tx| {
                rows::create(tx, &hash, ttl).await
            })
            .await?;
        self.store(session, &row, row.last_seen_at).await;
        Ok(record(&row, SessionSource::Database))
    }

    /// The session, from Redis or else PostgreSQL (refilling Redis);
    /// `None` when it does not exist or has expired. Does not mark it seen.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn find(&self, session: &SessionId) -> Result<Option<SessionRecord>, DbError> {
        let redis_answered = match self.read_cached(session).await {
            Ok(Some(cached)) => return Ok(Some(cached.record)),
            Ok(None) => true,
            Err(()) => false,
        };
        let hash = session.hash_hex();
        let row = self
            .db
            .transaction(&RlsContext::anonymous(Some(&hash)), async |tx| {
                rows::fetch(tx, &hash).await
            })
            .await?;
        if let (Some(row), true) = (&row, redis_answered) {
            self.store(session, row, row.last_seen_at).await;
        }
        Ok(row.map(|row| record(&row, SessionSource::Database)))
    }

    /// Marks the session seen now and slides its expiry (see the module docs);
    /// `None` when it does not exist or has expired.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn touch(&self, session: &SessionId) -> Result<Option<SessionRecord>, DbError> {
        let now = Utc::now();
        let hash = session.hash_hex();
        let context = RlsContext::anonymous(Some(&hash));
        let redis_answered = match self.touch_cached(session, now).await {
            Ok(Some(cached)) => {
                if !self.due_for_database(cached.db_seen_at, now) {
                    return Ok(Some(cached.record));
                }
                let ttl = self.settings.ttl;
                let touched = self
                    .db
                    .transaction(&context, async |tx| rows::touch(tx, &hash, ttl).await)
                    .await;
                return match touched {
                    Ok(Some(row)) => {
                        self.store(session, &row, row.last_seen_at).await;
                        Ok(Some(cached.record))
                    }
                    // Gone from the source of truth (expired, or merged and deleted).
                    Ok(None) => {
                        self.forget(session).await;
                        Ok(None)
                    }
                    // The session is known; the bookkeeping write can wait for the next request.
                    Err(error) => {
                        tracing::warn!(error = %error, "could not record the session as seen");
                        Ok(Some(cached.record))
                    }
                };
            }
            Ok(None) => true,
            Err(()) => false,
        };
        let ttl = self.settings.ttl;
        let interval = self.settings.touch_interval;
        let row = self
            .db
            .transaction(&context, async |tx| match rows::fetch(tx, &hash).await? {
                Some(row) if due(row.last_seen_at, now, interval) => {
                    rows::touch(tx, &hash, ttl).await
                }
                other => Ok(other),
            })
            .await?;
        if let (Some(row), true) = (&row, redis_answered) {
            self.store(session, row, row.last_seen_at).await;
        }
        Ok(row.map(|row| record(&row, SessionSource::Database)))
    }

    /// Drops the cached session (e.g. after merging it into a user); PostgreSQL keeps it.
    pub async fn forget(&self, session: &SessionId) {
        let Some(redis) = self.redis else { return };
        let mut command = redis::cmd("DEL");
        command.arg(redis.keys().session(session));
        if let Err(error) = redis.run::<i64>(&command).await {
            warn_degraded("session forget", &error);
        }
    }

    fn due_for_database(&self, db_seen_at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        due(db_seen_at, now, self.settings.touch_interval)
    }

    /// `Ok(None)`: Redis answered, no entry. `Err(())`: Redis did not answer.
    async fn read_cached(&self, session: &SessionId) -> Result<Option<Cached>, ()> {
        let Some(redis) = self.redis else {
            return Err(());
        };
        let mut command = redis::cmd("HGETALL");
        command.arg(redis.keys().session(session));
        match redis.run::<HashMap<String, String>>(&command).await {
            Ok(fields) => Ok(parse_cached(&fields)),
            Err(error) => {
                warn_degraded("session read", &error);
                Err(())
            }
        }
    }

    async fn touch_cached(
        &self,
        session: &SessionId,
        now: DateTime<Utc>,
    ) -> Result<Option<Cached>, ()> {
        let Some(redis) = self.redis else {
            return Err(());
        };
        let mut invocation = TOUCH.prepare_invoke();
        invocation
            .key(redis.keys().session(session))
            .arg(now.timestamp_millis())
            .arg(millis(self.settings.ttl));
        match redis
            .run::<Option<HashMap<String, String>>>(&invocation)
            .await
        {
            Ok(fields) => Ok(fields.as_ref().and_then(parse_cached)),
            Err(error) => {
                warn_degraded("session touch", &error);
                Err(())
            }
        }
    }

    /// Caches `row` until its PostgreSQL expiry. Best effort.
    async fn store(&self, session: &SessionId, row: &SessionRow, db_seen_at: DateTime<Utc>) {
        let Some(redis) = self.redis else { return };
        let ttl_ms = (row.expires_at - Utc::now()).num_milliseconds();
        if ttl_ms <= 0 {
            return;
        }
        let key = redis.keys().session(session);
        let mut pipe = redis::pipe();
        pipe.atomic()
            .hset_multiple(
                &key,
                &[
                    ("created_at", row.created_at.timestamp_millis().to_string()),
                    (
                        "last_seen_at",
                        row.last_seen_at.timestamp_millis().to_string(),
                    ),
                    ("db_seen_at", db_seen_at.timestamp_millis().to_string()),
                ],
            )
            .ignore()
            .pexpire(&key, ttl_ms)
            .ignore();
        if let Err(error) = redis.run::<()>(&pipe).await {
            warn_degraded("session refill", &error);
        }
    }
}

fn due(last: DateTime<Utc>, now: DateTime<Utc>, interval: Duration) -> bool {
    (now - last)
        .to_std()
        .is_ok_and(|elapsed| elapsed >= interval)
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn record(row: &SessionRow, source: SessionSource) -> SessionRecord {
    SessionRecord {
        created_at: row.created_at,
        last_seen_at: row.last_seen_at,
        source,
    }
}

/// A cached entry, or `None` when it is absent or not in the current shape.
fn parse_cached(fields: &HashMap<String, String>) -> Option<Cached> {
    let time = |name: &str| {
        fields
            .get(name)
            .and_then(|raw| raw.parse::<i64>().ok())
            .and_then(DateTime::<Utc>::from_timestamp_millis)
    };
    Some(Cached {
        record: SessionRecord {
            created_at: time("created_at")?,
            last_seen_at: time("last_seen_at")?,
            source: SessionSource::Redis,
        },
        db_seen_at: time("db_seen_at")?,
    })
}
