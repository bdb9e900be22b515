//! The middleware between measuring a request ([`crate::http::observe`]) and
//! its handler: where the client is ([`rate_limit::note_client_address`]),
//! who is calling ([`extract::identify`]), whether a write is within its
//! limits ([`rate_limit::check_writes`]), and the outbox delivery after the
//! response ([`outbox::deliver_after_response`]).
//!
//! One layer instead of one per step: axum clones and boxes every layer of
//! a route on every request, which cost the status function more CPU than
//! the steps themselves (README: Benchmark).

use axum::extract::Request;
use axum::response::Response;

use crate::http::middleware::{Middleware, Next};
use crate::http::{extract, outbox, rate_limit};
use crate::state::AppState;

/// The steps of `admit` below, as the middleware next to the handler.
#[derive(Clone)]
pub struct Admit(pub AppState);

impl Middleware for Admit {
    fn serve(self, request: Request, next: impl Next) -> impl Future<Output = Response> + Send {
        admit(self.0, request, next)
    }
}

/// Middleware: the steps above, in that order; a write over its limit is
/// answered 429 without reaching the handler.
async fn admit(state: AppState, mut request: Request, next: impl Next) -> Response {
    rate_limit::note_client_address(&state, &mut request);
    let stale_cookie = extract::identify(&state, &mut request).await;
    let mut response =
        match rate_limit::check_writes(&state, request.method(), request.extensions()).await {
            Err(denied) => denied,
            Ok(allowance) => {
                let mut response = outbox::deliver_after_response(&state, request, next).await;
                allowance.report(&mut response);
                response
            }
        };
    stale_cookie.clear_in(&mut response);
    response
}
