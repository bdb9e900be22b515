//! Sliding-window rate limits in Redis, compatible with `@upstash/ratelimit`'s
//! `Ratelimit.slidingWindow(limit, window)`.
//!
//! # Keys and algorithm (the same as `@upstash/ratelimit`)
//! Two fixed-window counters per identifier, plain integer strings:
//! `{prefix}:{identifier}:{floor(now_ms / window_ms)}`. A request is counted
//! against the current window plus the previous window's count weighted by
//! how much of the previous window still overlaps the sliding one:
//! `floor((1 - (now_ms % window_ms) / window_ms) * previous)`. When that sum
//! has reached the limit the request is denied and nothing is written;
//! otherwise the current counter is `INCRBY`'d and, when it was just created,
//! given `PEXPIRE window_ms * 2 + 1000` so it outlives the next window. The
//! reset time reported is the end of the current window,
//! `(index + 1) * window_ms`. All of it runs in one Lua script, atomically.
//!
//! The prefix defaults to `@upstash/ratelimit` (`RATE_LIMIT_PREFIX`), and the
//! identifier is `{policy name}:{caller identifier}`, so a Next.js route
//! sharing a counter with these functions uses
//! `new Ratelimit({ prefix: "@upstash/ratelimit", limiter: Ratelimit.slidingWindow(60, "60 s") })`
//! with `limit("writes:session:<sha256 hex>")`. Timestamps come from each
//! client's clock, as in `@upstash/ratelimit`.
//!
//! # Fail open
//! When Redis is down, slow or not configured, [`RateLimiter::check`] allows
//! the request (with a logged warning and `degraded: true`): limits protect
//! capacity and cost, and refusing every write because the limiter's store is
//! unavailable would turn a Redis outage into a full outage of the wizard.
//! The AI routes have their own upstream timeouts and budgets as a second line.

use std::net::IpAddr;
use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::auth::Caller;
use crate::cache::Redis;
use crate::cache::status_cache::warn_degraded;
use crate::settings::{ConfigError, Lookup, parse_number};

/// New sessions per IP per minute: a visitor needs one; a school or office
/// behind one address needs a few.
const DEFAULT_SESSIONS_PER_IP: u32 = 20;
/// Events per session or user per minute: a whole onboarding is a few dozen.
const DEFAULT_EVENTS: u32 = 120;
const DEFAULT_EVENTS_PER_IP: u32 = 600;

/// `@upstash/ratelimit`'s default prefix.
pub const DEFAULT_PREFIX: &str = "@upstash/ratelimit";

/// The limit of one kind of request, per identifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Part of the key, e.g. `writes:ip`.
    pub name: String,
    /// Requests allowed per window.
    pub limit: u32,
    pub window: Duration,
}

impl Policy {
    pub fn new(name: impl Into<String>, limit: u32, window: Duration) -> Self {
        Self {
            name: name.into(),
            limit,
            window,
        }
    }

    fn window_ms(&self) -> i64 {
        i64::try_from(self.window.as_millis())
            .unwrap_or(i64::MAX)
            .max(1)
    }
}

/// Rate-limit settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitSettings {
    /// Key prefix (`RATE_LIMIT_PREFIX`, default `@upstash/ratelimit`).
    pub prefix: String,
    /// Writes per client IP (`RATE_LIMIT_WRITES_PER_MINUTE_PER_IP`, default 300).
    pub writes_per_ip: Policy,
    /// Writes per anonymous session (`RATE_LIMIT_WRITES_PER_MINUTE`, default 60).
    pub writes_per_session: Policy,
    /// Writes per user (`RATE_LIMIT_WRITES_PER_MINUTE`, default 60).
    pub writes_per_user: Policy,
    /// AI calls per client IP (`RATE_LIMIT_AI_PER_MINUTE_PER_IP`, default 30).
    pub ai_per_ip: Policy,
    /// AI calls per anonymous session (`RATE_LIMIT_AI_PER_MINUTE`, default 10).
    pub ai_per_session: Policy,
    /// AI calls per user (`RATE_LIMIT_AI_PER_MINUTE`, default 10).
    pub ai_per_user: Policy,
    /// New anonymous sessions per client IP
    /// (`RATE_LIMIT_SESSIONS_PER_MINUTE_PER_IP`, default 20).
    pub sessions_per_ip: Policy,
    /// Events (not batches) per client IP (`RATE_LIMIT_EVENTS_PER_MINUTE_PER_IP`, default 600).
    pub events_per_ip: Policy,
    /// Events per anonymous session (`RATE_LIMIT_EVENTS_PER_MINUTE`, default 120).
    pub events_per_session: Policy,
    /// Events per user (`RATE_LIMIT_EVENTS_PER_MINUTE`, default 120).
    pub events_per_user: Policy,
}

/// What a limited request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Writes,
    Ai,
    /// Funnel events, each counted.
    Events,
}

impl RateLimitSettings {
    pub fn from_lookup(lookup: &dyn Lookup) -> Result<Self, ConfigError> {
        let limit = |variable, default| parse_number(lookup, variable, default, 1..=1_000_000);
        let minute = Duration::from_secs(60);
        let events = limit("RATE_LIMIT_EVENTS_PER_MINUTE", DEFAULT_EVENTS)?;
        Ok(Self {
            sessions_per_ip: Policy::new(
                "sessions:ip",
                limit(
                    "RATE_LIMIT_SESSIONS_PER_MINUTE_PER_IP",
                    DEFAULT_SESSIONS_PER_IP,
                )?,
                minute,
            ),
            events_per_ip: Policy::new(
                "events:ip",
                limit("RATE_LIMIT_EVENTS_PER_MINUTE_PER_IP", DEFAULT_EVENTS_PER_IP)?,
                minute,
            ),
            events_per_session: Policy::new("events:session", events, minute),
            events_per_user: Policy::new("events:user", events, minute),
            ..Self::per_minute(
                &lookup
                    .get("RATE_LIMIT_PREFIX")
                    .unwrap_or_else(|| DEFAULT_PREFIX.to_string()),
                limit("RATE_LIMIT_WRITES_PER_MINUTE", 60)?,
                limit("RATE_LIMIT_WRITES_PER_MINUTE_PER_IP", 300)?,
                limit("RATE_LIMIT_AI_PER_MINUTE", 10)?,
                limit("RATE_LIMIT_AI_PER_MINUTE_PER_IP", 30)?,
            )
        })
    }

    /// Per-minute policies with these limits.
    pub fn per_minute(
        prefix: &str,
        writes: u32,
        writes_per_ip: u32,
        ai: u32,
        ai_per_ip: u32,
    ) -> Self {
        let minute = Duration::from_secs(60);
        Self {
            prefix: prefix.to_string(),
            writes_per_ip: Policy::new("writes:ip", writes_per_ip, minute),
            writes_per_session: Policy::new("writes:session", writes, minute),
            writes_per_user: Policy::new("writes:user", writes, minute),
            ai_per_ip: Policy::new("ai:ip", ai_per_ip, minute),
            ai_per_session: Policy::new("ai:session", ai, minute),
            ai_per_user: Policy::new("ai:user", ai, minute),
            sessions_per_ip: Policy::new("sessions:ip", DEFAULT_SESSIONS_PER_IP, minute),
            events_per_ip: Policy::new("events:ip", DEFAULT_EVENTS_PER_IP, minute),
            events_per_session: Policy::new("events:session", DEFAULT_EVENTS, minute),
            events_per_user: Policy::new("events:user", DEFAULT_EVENTS, minute),
        }
    }

    /// The checks for one request: per IP when known, and per user when
    /// signed in, else per session when it has one. Sessions are identified
    /// by their SHA-256 hex, never the id itself.
    pub fn checks(
        &self,
        kind: Kind,
        caller: Option<&Caller>,
        ip: Option<IpAddr>,
    ) -> Vec<(&Policy, String)> {
        let (per_ip, per_session, per_user) = match kind {
            Kind::Writes => (
                &self.writes_per_ip,
                &self.writes_per_session,
                &self.writes_per_user,
            ),
            Kind::Ai => (&self.ai_per_ip, &self.ai_per_session, &self.ai_per_user),
            Kind::Events => (
                &self.events_per_ip,
                &self.events_per_session,
                &self.events_per_user,
            ),
        };
        let mut checks = Vec::with_capacity(2);
        if let Some(ip) = ip {
            checks.push((per_ip, ip_identifier(ip)));
        }
        match caller {
            Some(Caller::User(user)) => {
                checks.push((per_user, user.user_id().as_str().to_string()));
            }
            Some(caller) => {
                if let Some(session) = caller.session() {
                    checks.push((per_session, session.hash_hex()));
                }
            }
            None => {}
        }
        checks
    }
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self::per_minute(DEFAULT_PREFIX, 60, 300, 10, 30)
    }
}

/// IPv4 addresses as they are; IPv6 by their /64, which one client usually owns whole.
pub fn ip_identifier(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// End of the current window, in Unix milliseconds.
    pub reset_at_ms: i64,
    /// Redis could not be asked; the request was allowed without counting it.
    pub degraded: bool,
}

/// The `RateLimit-*` and `Retry-After` values of a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitHeaders {
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the window resets.
    pub reset_seconds: u64,
    /// Set when the request was denied.
    pub retry_after_seconds: Option<u64>,
}

impl Decision {
    /// The headers to answer with, relative to now.
    pub fn headers(&self) -> RateLimitHeaders {
        self.headers_at(now_ms())
    }

    /// The headers to answer with, relative to `now_ms`.
    pub fn headers_at(&self, now_ms: i64) -> RateLimitHeaders {
        let until_reset = (self.reset_at_ms - now_ms).max(0);
        // Rounded up, and never 0 for a denial: "retry now" would be wrong.
        let reset_seconds = u64::try_from(until_reset).unwrap_or(0).div_ceil(1000);
        RateLimitHeaders {
            limit: self.limit,
            remaining: self.remaining,
            reset_seconds,
            retry_after_seconds: (!self.allowed).then_some(reset_seconds.max(1)),
        }
    }
}

/// One `@upstash/ratelimit` sliding-window step; see the module docs.
/// Returns the tokens left after this request, or -1 when it is denied.
const SLIDING_WINDOW_SCRIPT: &str = r"
-- KEYS[1]: this window's counter, KEYS[2]: the previous window's counter
-- ARGV[1]: limit, ARGV[2]: now (ms), ARGV[3]: window (ms), ARGV[4]: increment
local limit = tonumber(ARGV[1])
local now = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local increment = tonumber(ARGV[4])

local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local previous = tonumber(redis.call('GET', KEYS[2]) or '0')
local overlap = 1 - (now % window) / window
local weighted = math.floor(overlap * previous)

if increment > 0 and weighted + current >= limit then
  return -1
end

local counted = redis.call('INCRBY', KEYS[1], increment)
if counted == increment then
  redis.call('PEXPIRE', KEYS[1], window * 2 + 1000)
end
return limit - (counted + weighted)
";

static SLIDING_WINDOW: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(SLIDING_WINDOW_SCRIPT));

/// Checks limits against Redis; allows everything without it.
#[derive(Clone, Copy)]
pub struct RateLimiter<'a> {
    redis: Option<&'a Redis>,
    prefix: &'a str,
}

impl<'a> RateLimiter<'a> {
    pub fn new(redis: Option<&'a Redis>, prefix: &'a str) -> Self {
        Self { redis, prefix }
    }

    /// The two keys a check at `now_ms` reads: this window's and the previous one's.
    pub fn keys_at(&self, policy: &Policy, identifier: &str, now_ms: i64) -> (String, String) {
        let index = now_ms.div_euclid(policy.window_ms());
        let base = format!("{}:{}:{identifier}", self.prefix, policy.name);
        (format!("{base}:{index}"), format!("{base}:{}", index - 1))
    }

    /// Counts one request of `identifier` against `policy`, now.
    pub async fn check(&self, policy: &Policy, identifier: &str) -> Decision {
        self.check_at(policy, identifier, now_ms()).await
    }

    /// Counts one request at `now_ms` (Unix milliseconds).
    pub async fn check_at(&self, policy: &Policy, identifier: &str, now_ms: i64) -> Decision {
        self.count_at(policy, identifier, now_ms, 1).await
    }

    /// Counts `count` units (requests, events) at `now_ms`, as
    /// `@upstash/ratelimit`'s `rate` does: denied when they would take the
    /// window past its limit, and counted even then. Never fails on a Redis
    /// error: that is a degraded allow (see "Fail open").
    #[tracing::instrument(level = "debug", skip_all, fields(policy = %policy.name))]
    pub async fn count_at(
        &self,
        policy: &Policy,
        identifier: &str,
        now_ms: i64,
        count: u32,
    ) -> Decision {
        let window = policy.window_ms();
        let reset_at_ms = (now_ms.div_euclid(window) + 1) * window;
        let degraded = Decision {
            allowed: true,
            limit: policy.limit,
            remaining: policy.limit,
            reset_at_ms,
            degraded: true,
        };
        let Some(redis) = self.redis else {
            return degraded;
        };
        let (current, previous) = self.keys_at(policy, identifier, now_ms);
        let mut invocation = SLIDING_WINDOW.prepare_invoke();
        invocation
            .key(current)
            .key(previous)
            .arg(policy.limit)
            .arg(now_ms)
            .arg(window)
            .arg(count);
        match redis.run::<i64>(&invocation).await {
            Ok(left) => Decision {
                allowed: left >= 0,
                limit: policy.limit,
                remaining: u32::try_from(left.max(0)).unwrap_or(u32::MAX),
                reset_at_ms,
                degraded: false,
            },
            Err(error) => {
                warn_degraded("rate limit (failing open)", &error);
                degraded
            }
        }
    }

    /// Runs every check; the tightest decision when all allow (for the
    /// headers), the denial's headers when one denies.
    pub async fn enforce(
        &self,
        checks: &[(&Policy, String)],
    ) -> Result<Option<Decision>, RateLimitHeaders> {
        self.enforce_counting(checks, 1).await
    }

    /// [`RateLimiter::enforce`], counting `count` units against each policy.
    pub async fn enforce_counting(
        &self,
        checks: &[(&Policy, String)],
        count: u32,
    ) -> Result<Option<Decision>, RateLimitHeaders> {
        let mut tightest: Option<Decision> = None;
        for (policy, identifier) in checks {
            let decision = self.count_at(policy, identifier, now_ms(), count).await;
            if !decision.allowed {
                return Err(decision.headers());
            }
            if decision.degraded {
                continue;
            }
            if tightest.is_none_or(|t| decision.remaining < t.remaining) {
                tightest = Some(decision);
            }
        }
        Ok(tightest)
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
impl Decision {
    /// A decision of a 5-per-window policy whose window ends at 60 s.
    pub(crate) fn of_five(allowed: bool, remaining: u32) -> Self {
        Decision {
            allowed,
            limit: 5,
            remaining,
            reset_at_ms: 60_000,
            degraded: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_denial_says_when_to_retry_rounded_up_and_never_zero() {
        let decision = Decision::of_five(false, 0);
        let headers = decision.headers_at(58_500);
        assert_eq!(headers.reset_seconds, 2);
        assert_eq!(headers.retry_after_seconds, Some(2));
        assert_eq!(decision.headers_at(60_000).retry_after_seconds, Some(1));
    }

    #[test]
    fn keys_follow_upstash_ratelimits_format() {
        let limiter = RateLimiter::new(None, DEFAULT_PREFIX);
        let policy = Policy::new("writes:ip", 10, Duration::from_secs(60));
        let (current, previous) = limiter.keys_at(&policy, "203.0.113.9", 1_700_000_030_000);
        assert_eq!(current, "@upstash/ratelimit:writes:ip:203.0.113.9:28333333");
        assert_eq!(
            previous,
            "@upstash/ratelimit:writes:ip:203.0.113.9:28333332"
        );
    }

    #[test]
    fn ipv6_clients_are_limited_by_their_64() {
        let ip = "2001:db8:1:2:3:4:5:6".parse().unwrap();
        assert_eq!(ip_identifier(ip), "2001:db8:1:2::/64");
        let mapped = "::ffff:198.51.100.7".parse().unwrap();
        assert_eq!(ip_identifier(mapped), "198.51.100.7");
    }
}
