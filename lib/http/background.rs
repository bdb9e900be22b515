//! Work a handler starts that may finish after its response, such as storing
//! analytics events. Where it runs depends on how the process is hosted, and
//! the host adapter (Vercel, Lambda) puts the right kind into the request's
//! extensions; the dev server and tests get the default.

use std::convert::Infallible;
use std::future::Future;
use std::sync::{Arc, Mutex};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use tokio::task::JoinSet;

/// Work to finish after the response.
#[derive(Clone, Default)]
pub struct Background(Host);

#[derive(Clone, Default)]
enum Host {
    /// Vercel keeps the function alive until work handed to `wait_until`
    /// settles, so the response leaves first.
    Vercel(vercel_runtime::AppState),
    /// Lambda freezes the process as soon as the invocation returns, so work
    /// left running could be lost; the adapter settles it before returning.
    Awaited(Arc<Mutex<JoinSet<()>>>),
    /// A long-running process (the dev server, tests): the Tokio runtime
    /// outlives the request.
    #[default]
    Detached,
}

impl Background {
    /// Work handed to Vercel's `wait_until`.
    pub(crate) fn vercel(state: vercel_runtime::AppState) -> Self {
        Self(Host::Vercel(state))
    }

    /// Work the caller settles itself, with [`Background::settle`], before
    /// the process may be frozen.
    pub fn awaited() -> Self {
        Self(Host::Awaited(Arc::default()))
    }

    pub fn spawn<F>(&self, future: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        match &self.0 {
            Host::Vercel(state) => state.wait_until(future),
            Host::Awaited(tasks) => {
                tasks
                    .lock()
                    .expect("no task panics holding it")
                    .spawn(future);
            }
            Host::Detached => {
                tokio::spawn(future);
            }
        }
    }

    /// Waits for every task spawned so far (only awaited work is tracked).
    pub async fn settle(&self) {
        let Host::Awaited(tasks) = &self.0 else {
            return;
        };
        // Taken out of the mutex so no guard is held across an await; a task
        // spawned while these run lands in the fresh set and is settled next.
        loop {
            let mut running =
                std::mem::take(&mut *tasks.lock().expect("no task panics holding it"));
            if running.is_empty() {
                return;
            }
            while let Some(finished) = running.join_next().await {
                if let Err(error) = finished {
                    tracing::error!(%error, "background task failed");
                }
            }
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Background {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(parts
            .extensions
            .get::<Background>()
            .cloned()
            .unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn settling_awaited_work_waits_for_every_task_including_ones_spawned_meanwhile() {
        let background = Background::awaited();
        let done = Arc::new(AtomicUsize::new(0));
        let (nested, counter) = (background.clone(), done.clone());
        background.spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            counter.fetch_add(1, Ordering::SeqCst);
            let counter = counter.clone();
            nested.spawn(async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                counter.fetch_add(1, Ordering::SeqCst);
            });
        });
        background.settle().await;
        assert_eq!(done.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn settling_detached_work_returns_at_once() {
        let background = Background::default();
        let (sender, receiver) = tokio::sync::oneshot::channel::<()>();
        background.spawn(async move {
            let _ = receiver.await;
        });
        tokio::time::timeout(Duration::from_millis(100), background.settle())
            .await
            .expect("detached work is not waited for");
        drop(sender);
    }
}
