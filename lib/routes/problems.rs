//! The problem answers many routes share, documented once: each set is
//! listed in a route's `responses(...)` beside the answers of its own. The
//! enums are never built; they only document.
#![allow(dead_code)]

use utoipa::IntoResponses;

use crate::http::error::Problem;

/// 500 and 503: what every route that reads the database can answer.
#[derive(IntoResponses)]
pub enum DatabaseProblems {
    #[response(
        status = 500,
        description = "An unexpected database error",
        content_type = "application/problem+json"
    )]
    Internal(Problem),
    #[response(
        status = 503,
        description = "The database or the identity provider's keys are unavailable",
        content_type = "application/problem+json"
    )]
    Unavailable(Problem),
}

/// 401 of a route anyone may call: only a credential that fails is refused.
#[derive(IntoResponses)]
pub enum CredentialRejected {
    #[response(
        status = 401,
        description = "A credential was presented and failed verification",
        content_type = "application/problem+json"
    )]
    Unauthorized(Problem),
}

/// 401 of a route that needs a caller who can own wizard data.
#[derive(IntoResponses)]
pub enum OwnerRequired {
    #[response(
        status = 401,
        description = "No session and not signed in, or a credential that failed verification",
        content_type = "application/problem+json"
    )]
    Unauthorized(Problem),
}

/// 401 of a route that needs a signed-in user.
#[derive(IntoResponses)]
pub enum SignedInRequired {
    #[response(
        status = 401,
        description = "Not signed in, or a credential that failed verification",
        content_type = "application/problem+json"
    )]
    Unauthorized(Problem),
}

/// 401 of a route Vercel Cron calls with the project's `CRON_SECRET`.
#[derive(IntoResponses)]
pub enum CronSecretRequired {
    #[response(
        status = 401,
        description = "No `Authorization: Bearer <CRON_SECRET>`, or another secret",
        content_type = "application/problem+json"
    )]
    Unauthorized(Problem),
}

/// 412 of a write to a step's answer at a version that is not the stored one.
#[derive(IntoResponses)]
pub enum StaleVersion {
    #[response(
        status = 412,
        description = "`If-Match` names a version other than the stored one (another tab saved first), or `*` on a step with no answer: `currentVersion`, `currentAnswers` and `currentCompleted` are what is stored now",
        content_type = "application/problem+json",
        headers(("ETag" = String, description = "The version stored now, quoted (`\"0\"` when none): send it in `If-Match` to overwrite"))
    )]
    PreconditionFailed(Problem),
}

/// 413 and 429: the limits every write is under.
#[derive(IntoResponses)]
pub enum WriteLimits {
    #[response(
        status = 413,
        description = "The body is larger than `BODY_LIMIT_BYTES`",
        content_type = "application/problem+json"
    )]
    PayloadTooLarge(Problem),
    #[response(
        status = 429,
        description = "Too many writes; retry after `Retry-After` seconds",
        content_type = "application/problem+json"
    )]
    RateLimited(Problem),
}

/// 415 of a route that takes a JSON body.
#[derive(IntoResponses)]
pub enum JsonOnly {
    #[response(
        status = 415,
        description = "The body is not `application/json`",
        content_type = "application/problem+json"
    )]
    UnsupportedMediaType(Problem),
}

/// 400 of a route whose only malformed input is its JSON body.
#[derive(IntoResponses)]
pub enum MalformedJson {
    #[response(
        status = 400,
        description = "Malformed JSON",
        content_type = "application/problem+json"
    )]
    BadRequest(Problem),
}

/// 400 of a bodiless write whose only malformed input is its `Idempotency-Key`.
#[derive(IntoResponses)]
pub enum MalformedIdempotencyKey {
    #[response(
        status = 400,
        description = "A malformed `Idempotency-Key`",
        content_type = "application/problem+json"
    )]
    BadRequest(Problem),
}

/// 403 of a route for the admins of the caller's active organization.
#[derive(IntoResponses)]
pub enum OrganizationAdminRequired {
    #[response(
        status = 403,
        description = "Not an admin of the active organization, or no organization selected",
        content_type = "application/problem+json"
    )]
    Forbidden(Problem),
}

/// 404 of a route under `steps/{step}`.
#[derive(IntoResponses)]
pub enum UnknownStep {
    #[response(
        status = 404,
        description = "The flow has no such step",
        content_type = "application/problem+json"
    )]
    NotFound(Problem),
}

/// 404 of a route under `suggestions/{id}`.
#[derive(IntoResponses)]
pub enum UnknownSuggestion {
    #[response(
        status = 404,
        description = "No such suggestion for this caller",
        content_type = "application/problem+json"
    )]
    NotFound(Problem),
}
