//! The process-wide cache of the parsed Edge Config.
//!
//! Policy, remote source:
//! - A snapshot younger than the TTL is served as is: no request.
//! - An older one is served at once and refreshed in the background
//!   (stale-while-revalidate); concurrent reads start at most one refresh.
//! - The refresh sends the last ETag; a `304` costs no body and no parse.
//! - A failed refresh (network, timeout, 5xx, 401/403, or items whose flow or
//!   flags do not parse) keeps the last good snapshot (stale-if-error), logs a
//!   warning, and is retried after another TTL, not on every read.
//! - With nothing cached, the first read waits for the fetch (concurrent cold
//!   reads share it); if that fails, the embedded default is served, marked
//!   [`Freshness::Degraded`].
//!
//! Local file source: the file's mtime and length are checked at most once per
//! check interval, on access, and the file is re-read inline when they change
//! (a `stat` is cheap; serving a stale file for one more read would only
//! confuse someone editing it).
//!
//! On Vercel a background refresh may be frozen with the instance after the
//! response is sent; it then completes on the next invocation, which is fine.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::edge_config::{EdgeConfigClient, EdgeConfigError, Items};
use super::items::{EdgeConfig, FlowItem};

/// Default time a fetched snapshot is served without asking again.
pub const DEFAULT_TTL: Duration = Duration::from_secs(10);
/// How often, at most, the local file's mtime is checked.
pub const FILE_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// How current a snapshot is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Freshness {
    /// The last read of the source succeeded (or answered "not modified").
    Fresh,
    /// The last read failed; this is the last good snapshot.
    Stale { reason: String },
    /// Nothing good was ever read; this is the embedded default.
    Degraded { reason: String },
}

/// The Edge Config as one request sees it: cheap to clone, never changes.
#[derive(Debug)]
pub struct Snapshot<F> {
    config: Arc<EdgeConfig<F>>,
    freshness: Freshness,
}

// Not derived: a derive would ask `F: Clone`, and the flow is shared, not copied.
impl<F> Clone for Snapshot<F> {
    fn clone(&self) -> Self {
        Self {
            config: Arc::clone(&self.config),
            freshness: self.freshness.clone(),
        }
    }
}

impl<F> Snapshot<F> {
    /// Flags and flow.
    pub fn config(&self) -> &Arc<EdgeConfig<F>> {
        &self.config
    }

    pub fn flow(&self) -> &F {
        self.config.flow()
    }

    /// See [`EdgeConfig::is_enabled`].
    pub fn is_enabled(&self, key: &str, subject_id: &str) -> bool {
        self.config.is_enabled(key, subject_id)
    }

    /// The evaluator `Flow::visible_steps` and the validators take, for one subject.
    pub fn flags_for<'a>(&'a self, subject_id: &'a str) -> impl Fn(&str) -> bool + Sync + 'a
    where
        F: Sync,
    {
        self.config.flags_for(subject_id)
    }

    pub fn freshness(&self) -> &Freshness {
        &self.freshness
    }

    /// Whether this is the embedded default because the source never answered.
    pub fn is_degraded(&self) -> bool {
        matches!(self.freshness, Freshness::Degraded { .. })
    }
}

/// What proves a cached snapshot still matches its source.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Validator {
    ETag(String),
    File { modified: SystemTime, len: u64 },
}

enum Loader {
    Remote(EdgeConfigClient),
    File(PathBuf),
}

enum Loaded {
    NotModified,
    Changed {
        json: Vec<u8>,
        validator: Option<Validator>,
    },
}

/// Why a refresh kept the previous snapshot.
#[derive(Debug, thiserror::Error)]
enum RefreshError {
    #[error(transparent)]
    Remote(#[from] EdgeConfigError),
    #[error("cannot read {path}: {error}")]
    File { path: String, error: String },
    #[error("the new config is invalid: {0}")]
    Invalid(String),
}

struct Cached<F> {
    snapshot: Snapshot<F>,
    /// When the source was last asked, successfully or not.
    checked_at: Instant,
    /// `None` for the embedded default: the next read must fetch in full.
    validator: Option<Validator>,
}

struct Inner<F> {
    loader: Loader,
    ttl: Duration,
    /// Remote sources refresh in the background; the local file inline.
    background: bool,
    cached: Mutex<Option<Cached<F>>>,
    /// The shipped items, parsed on first need.
    embedded: OnceLock<Arc<EdgeConfig<F>>>,
    /// Held for the duration of a fetch, so fetches never overlap.
    fetching: tokio::sync::Mutex<()>,
    /// Bumped after every fetch, so a caller that queued behind one can tell
    /// it happened and reuse its outcome instead of fetching again.
    generation: AtomicU64,
    /// A background refresh is scheduled or running.
    refreshing: AtomicBool,
}

/// The cached Edge Config of this process. Clone it freely; clones share the cache.
pub struct EdgeConfigStore<F> {
    inner: Arc<Inner<F>>,
}

impl<F> Clone for EdgeConfigStore<F> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<F: FlowItem> EdgeConfigStore<F> {
    /// A store over Vercel Edge Config; `ttl` is how long a snapshot is served
    /// before a background refresh.
    pub fn remote(client: EdgeConfigClient, ttl: Duration) -> Self {
        Self::new(Loader::Remote(client), ttl, true)
    }

    /// A store over a local JSON file, whose mtime is checked at most every `check_interval`.
    pub fn local_file(path: impl Into<PathBuf>, check_interval: Duration) -> Self {
        Self::new(Loader::File(path.into()), check_interval, false)
    }

    fn new(loader: Loader, ttl: Duration, background: bool) -> Self {
        Self {
            inner: Arc::new(Inner {
                loader,
                ttl,
                background,
                cached: Mutex::new(None),
                embedded: OnceLock::new(),
                fetching: tokio::sync::Mutex::new(()),
                generation: AtomicU64::new(0),
                refreshing: AtomicBool::new(false),
            }),
        }
    }

    /// The current snapshot. Waits for the source only when nothing is cached
    /// (or, for the local file, when its check is due); never fails.
    pub async fn snapshot(&self) -> Snapshot<F> {
        let (snapshot, expired) = match self.inner.current() {
            Some(current) => current,
            None => return self.inner.clone().refresh_now().await,
        };
        if !expired {
            return snapshot;
        }
        if !self.inner.background {
            return self.inner.clone().refresh_now().await;
        }
        if !self.inner.refreshing.swap(true, Ordering::AcqRel) {
            let inner = Arc::clone(&self.inner);
            tokio::spawn(async move {
                let _reset = ResetOnDrop(&inner.refreshing);
                inner.clone().refresh_now().await;
            });
        }
        snapshot
    }

    /// Waits until no background refresh is scheduled or running.
    #[cfg(test)]
    pub(crate) async fn settled(&self) {
        let wait = async {
            while self.inner.refreshing.load(Ordering::Acquire) {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        };
        // A safety net only: a refresh is bounded by the client timeout.
        tokio::time::timeout(Duration::from_secs(30), wait)
            .await
            .expect("the background refresh ended");
    }
}

/// Clears the "refresh scheduled" flag however the refresh task ends.
struct ResetOnDrop<'a>(&'a AtomicBool);

impl Drop for ResetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl<F: FlowItem> Inner<F> {
    /// The shipped items; a unit test of the flow keeps them valid.
    fn embedded(&self) -> Arc<EdgeConfig<F>> {
        Arc::clone(self.embedded.get_or_init(|| {
            Arc::new(
                EdgeConfig::parse(F::EMBEDDED_ITEMS).expect("the embedded Edge Config items parse"),
            )
        }))
    }

    /// The cached snapshot and whether its TTL has run out.
    fn current(&self) -> Option<(Snapshot<F>, bool)> {
        let cached = self.cached.lock().expect("cache lock");
        cached
            .as_ref()
            .map(|c| (c.snapshot.clone(), c.checked_at.elapsed() >= self.ttl))
    }

    /// Asks the source now, unless a fetch that finished while this one waited
    /// for its turn already did, and stores the outcome.
    async fn refresh_now(self: Arc<Self>) -> Snapshot<F> {
        let seen = self.generation.load(Ordering::Acquire);
        let _turn = self.fetching.lock().await;
        if self.generation.load(Ordering::Acquire) != seen
            && let Some((snapshot, _)) = self.current()
        {
            return snapshot;
        }
        let previous = self
            .cached
            .lock()
            .expect("cache lock")
            .as_ref()
            .and_then(|c| c.validator.clone());
        let outcome = self.load(previous.as_ref()).await;

        let mut cached = self.cached.lock().expect("cache lock");
        self.generation.fetch_add(1, Ordering::AcqRel);
        let now = Instant::now();
        match outcome {
            Ok(Some((config, validator))) => {
                *cached = Some(Cached {
                    snapshot: Snapshot {
                        config,
                        freshness: Freshness::Fresh,
                    },
                    checked_at: now,
                    validator,
                });
            }
            Ok(None) => {
                // Not modified; `previous` was only sent with a snapshot cached.
                if let Some(c) = cached.as_mut() {
                    c.snapshot.freshness = Freshness::Fresh;
                    c.checked_at = now;
                }
            }
            Err(error) => {
                let reason = error.to_string();
                if matches!(&error, RefreshError::Remote(e) if e.is_configuration_error()) {
                    tracing::error!(%reason, "Edge Config is misconfigured; serving the last good config");
                } else {
                    tracing::warn!(%reason, "Edge Config refresh failed; serving the last good config");
                }
                match cached.as_mut() {
                    Some(c) => {
                        c.snapshot.freshness = match c.snapshot.freshness {
                            Freshness::Degraded { .. } => Freshness::Degraded { reason },
                            _ => Freshness::Stale { reason },
                        };
                        // Wait a TTL before asking again, rather than on every read.
                        c.checked_at = now;
                    }
                    None => {
                        tracing::warn!(
                            "no Edge Config was ever read; serving the embedded default"
                        );
                        *cached = Some(Cached {
                            snapshot: Snapshot {
                                config: self.embedded(),
                                freshness: Freshness::Degraded { reason },
                            },
                            checked_at: now,
                            validator: None,
                        });
                    }
                }
            }
        }
        cached
            .as_ref()
            .map(|c| c.snapshot.clone())
            .expect("a snapshot was just stored")
    }

    /// Reads and parses the source: `Ok(None)` when unchanged.
    #[allow(clippy::type_complexity)]
    async fn load(
        &self,
        previous: Option<&Validator>,
    ) -> Result<Option<(Arc<EdgeConfig<F>>, Option<Validator>)>, RefreshError> {
        let (json, validator) = match self.fetch(previous).await? {
            Loaded::NotModified => return Ok(None),
            Loaded::Changed { json, validator } => (json, validator),
        };
        let text =
            std::str::from_utf8(&json).map_err(|error| RefreshError::Invalid(error.to_string()))?;
        // An invalid config is an error like any other: the old one stays, and
        // so does the old validator, so a 304 can never bless the bad version.
        let config = EdgeConfig::<F>::parse(text).map_err(|error| {
            let problems: Vec<String> = error
                .problems
                .iter()
                .map(|p| format!("{}: {}", p.path, p.message))
                .collect();
            RefreshError::Invalid(problems.join("; "))
        })?;
        Ok(Some((Arc::new(config), validator)))
    }

    async fn fetch(&self, previous: Option<&Validator>) -> Result<Loaded, RefreshError> {
        match &self.loader {
            Loader::Remote(client) => {
                let etag = match previous {
                    Some(Validator::ETag(etag)) => Some(etag.as_str()),
                    _ => None,
                };
                Ok(match client.items(etag).await? {
                    Items::NotModified => Loaded::NotModified,
                    Items::Changed { body, etag } => Loaded::Changed {
                        json: body.to_vec(),
                        validator: etag.map(Validator::ETag),
                    },
                })
            }
            Loader::File(path) => {
                let file_error = |error: std::io::Error| RefreshError::File {
                    path: path.display().to_string(),
                    error: error.to_string(),
                };
                let metadata = tokio::fs::metadata(path).await.map_err(file_error)?;
                let validator = Validator::File {
                    modified: metadata.modified().map_err(file_error)?,
                    len: metadata.len(),
                };
                if previous == Some(&validator) {
                    return Ok(Loaded::NotModified);
                }
                let json = tokio::fs::read(path).await.map_err(file_error)?;
                Ok(Loaded::Changed {
                    json,
                    validator: Some(validator),
                })
            }
        }
    }
}
