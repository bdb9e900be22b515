//! The two middlewares around every route, [`crate::http::observe`] outside
//! and [`crate::http::admit`] inside, as tower services.
//!
//! axum's `from_fn` wraps the rest of the stack in a boxed `Next` for every
//! request, boxes that stack's answer again when it is called, and boxes
//! the middleware's own future: three allocations per request and
//! middleware, two of them copies of a future (README: Benchmark). Here a
//! middleware is an `async fn` of what it holds, the request and the rest
//! of the stack, which it calls directly: one box per middleware, the one
//! its future takes.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::response::Response;
use tower::{Layer, Service};

/// The rest of the stack, as a middleware calls it.
pub trait Next:
    Service<Request, Response = Response, Error = Infallible, Future: Send> + Send + 'static
{
}

impl<S> Next for S where
    S: Service<Request, Response = Response, Error = Infallible, Future: Send> + Send + 'static
{
}

/// A middleware: what it holds, and how it serves one request with `next`
/// (calling it through [`run`]).
pub trait Middleware: Clone + Send + Sync + 'static {
    fn serve(self, request: Request, next: impl Next) -> impl Future<Output = Response> + Send;
}

/// Serves `request` with the rest of the stack, which the middleware's
/// service polled ready. An `async fn`, so the call happens when the future
/// is first polled: a panic in it is one the middleware's future can catch.
pub async fn run(mut next: impl Next, request: Request) -> Response {
    match next.call(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

/// The layer of a [`Middleware`].
#[derive(Clone)]
pub struct MiddlewareLayer<M>(pub M);

impl<M: Clone, S> Layer<S> for MiddlewareLayer<M> {
    type Service = Around<M, S>;

    fn layer(&self, inner: S) -> Around<M, S> {
        Around {
            middleware: self.0.clone(),
            inner,
        }
    }
}

/// The rest of the stack with a [`Middleware`] around it.
#[derive(Clone)]
pub struct Around<M, S> {
    middleware: M,
    inner: S,
}

impl<M: Middleware, S: Next + Clone> Service<Request> for Around<M, S> {
    type Response = Response;
    type Error = Infallible;
    type Future = Answer;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // The instance polled ready serves this request; a clone of it waits
        // for the next one, as tower asks of a service that is cloned.
        let waiting = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, waiting);
        Answer(Box::pin(self.middleware.clone().serve(request, ready)))
    }
}

/// The answer of an [`Around`]: the middleware's future, boxed where it is
/// made (an `async` block around it would be a second copy of it).
pub struct Answer(Pin<Box<dyn Future<Output = Response> + Send>>);

impl Future for Answer {
    type Output = Result<Response, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.0.as_mut().poll(cx).map(Ok)
    }
}
