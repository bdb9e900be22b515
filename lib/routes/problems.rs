//! The problem answers many routes share, documented once: each set is
//! listed in a route's `responses(...)` beside the answers of its own. The
//! enums are never built; they only document.
#![allow(dead_code)]

use utoipa::IntoResponses;

use crate::http::error::Problem;

/// `IntoResponses` enums whose every answer is a problem+json body: one
/// variant a status, written as `Variant = status: "description"`.
macro_rules! problem_answers {
    ($($(#[$doc:meta])* $name:ident { $($variant:ident = $status:literal : $description:literal),+ $(,)? })+) => {
        $(
            $(#[$doc])*
            #[derive(IntoResponses)]
            pub enum $name {
                $(
                    #[response(status = $status, description = $description, content_type = "application/problem+json")]
                    $variant(Problem),
                )+
            }
        )+
    };
}

problem_answers! {
    /// 500 and 503: what every route that reads the database can answer.
    DatabaseProblems {
        Internal = 500: "An unexpected database error",
        Unavailable = 503: "The database or the identity provider's keys are unavailable",
    }

    /// 401 of a route anyone may call: only a credential that fails is refused.
    CredentialRejected { Unauthorized = 401: "A credential was presented and failed verification" }

    /// 401 of a route that needs a caller who can own wizard data.
    OwnerRequired {
        Unauthorized = 401: "No session and not signed in, or a credential that failed verification",
    }

    /// 401 of a route that needs a signed-in user.
    SignedInRequired { Unauthorized = 401: "Not signed in, or a credential that failed verification" }

    /// 401 of a route Vercel Cron calls with the project's `CRON_SECRET`.
    CronSecretRequired {
        Unauthorized = 401: "No `Authorization: Bearer <CRON_SECRET>`, or another secret",
    }

    /// 413 and 429: the limits every write is under.
    WriteLimits {
        PayloadTooLarge = 413: "The body is larger than `BODY_LIMIT_BYTES`",
        RateLimited = 429: "Too many writes; retry after `Retry-After` seconds",
    }

    /// 415 of a route that takes a JSON body.
    JsonOnly { UnsupportedMediaType = 415: "The body is not `application/json`" }

    /// 400 of a route whose only malformed input is its JSON body.
    MalformedJson { BadRequest = 400: "Malformed JSON" }

    /// 400 of a bodiless write whose only malformed input is its `Idempotency-Key`.
    MalformedIdempotencyKey { BadRequest = 400: "A malformed `Idempotency-Key`" }

    /// 403 of a route for the admins of the caller's active organization.
    OrganizationAdminRequired {
        Forbidden = 403: "Not an admin of the active organization, or no organization selected",
    }

    /// 404 of a route under `steps/{step}`.
    UnknownStep { NotFound = 404: "The flow has no such step" }

    /// 404 of a route under `suggestions/{id}`.
    UnknownSuggestion { NotFound = 404: "No such suggestion for this caller" }
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
