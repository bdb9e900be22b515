//! The request id: the caller's `x-request-id` when it is well formed, else a
//! new one. It is kept in a task-local so that any error response, wherever it
//! is built, can carry it.

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};

pub static HEADER: HeaderName = HeaderName::from_static("x-request-id");

tokio::task_local! {
    static REQUEST_ID: Arc<str>;
}

/// The id of the request being served, if any.
pub fn current() -> Option<String> {
    REQUEST_ID.try_with(|id| id.to_string()).ok()
}

/// Accepts ids a log search can handle: 1 to 128 of `[A-Za-z0-9._-]`.
pub fn is_well_formed(candidate: &str) -> bool {
    (1..=128).contains(&candidate.len())
        && candidate
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The caller's id when it is well formed, else a new one; written into the
/// request's header so that handlers and logs see the same value. Shared:
/// the request's scope and its log line hold the same one.
pub fn assign(request: &mut Request) -> (Arc<str>, HeaderValue) {
    let id: Arc<str> = match request
        .headers()
        .get(&HEADER)
        .and_then(|value| value.to_str().ok())
        .filter(|value| is_well_formed(value))
    {
        Some(id) => id.into(),
        None => {
            let mut hex = uuid::Uuid::encode_buffer();
            (*uuid::Uuid::new_v4().simple().encode_lower(&mut hex)).into()
        }
    };
    let header = HeaderValue::from_str(&id).expect("a well-formed id is a valid header value");
    request.headers_mut().insert(HEADER.clone(), header.clone());
    (id, header)
}

/// Runs `serve` with `id` as the [`current`] request id.
///
/// Not an `async fn`: one that awaits a future it was given holds that
/// future twice over in its own state, and this one wraps every request.
pub fn scope<F: Future>(id: Arc<str>, serve: F) -> impl Future<Output = F::Output> {
    REQUEST_ID.scope(id, serve)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_with_spaces_newlines_or_excess_length_are_not_honoured() {
        assert!(is_well_formed("req_01HZX.abc-9"));
        assert!(!is_well_formed(""));
        assert!(!is_well_formed("a b"));
        assert!(!is_well_formed("a\nb"));
        assert!(!is_well_formed(&"a".repeat(129)));
    }
}
