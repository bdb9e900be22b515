//! The OpenAPI 3.1 document of every route, generated from the handlers'
//! `#[utoipa::path]` attributes and the request and response types, and
//! served by `GET /api/openapi.json` ([`router`]). The top of the crate: it
//! reads every route, and no route reads it.
//!
//! What the handlers declare: their parameters, bodies and every status they
//! answer. What `SharedLayers` adds: what the layers of [`crate::http::app`]
//! put on every response (request id, `Cache-Control`, `Server-Timing`, rate
//! limit headers) and what [`crate::http::error::ApiError`] adds per status
//! (`WWW-Authenticate`, `Retry-After`), so no route repeats them.

use std::sync::LazyLock;

use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::header::Header;
use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Ref, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{RefOr, Required};
use utoipa::{Modify, OpenApi};

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::auth::{SESSION_COOKIE_NAME, SESSION_HEADER_NAME};
use crate::routes;
use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Onboarding API",
        description = include_str!("openapi.md"),
    ),
    paths(
        routes::health::health,
        openapi_json,
        routes::status::status,
        routes::flow::flow,
        routes::steps::read,
        routes::steps::write,
        routes::complete::handle,
        routes::session::handle,
        routes::merge::handle,
        routes::events::handle,
        routes::analytics::handle,
        routes::ai::read_preferences,
        routes::ai::write_preferences,
        routes::ai::request_suggestion,
        routes::ai::accept,
        routes::ai::reject,
        routes::ai_policy::read,
        routes::ai_policy::write,
        routes::purge::handle,
        routes::deliver::handle,
        routes::me::erase,
        routes::me::download,
        routes::webhooks::clerk,
    ),
    components(schemas(
        crate::http::error::Problem,
        crate::wizard::validation::FieldError,
        crate::outbox::CompletedEvent,
        crate::outbox::StepCompletedEvent,
        crate::outbox::MergedEvent,
    )),
    modifiers(&SharedLayers, &OutboundWebhooks),
    tags(
        (name = "onboarding", description = "The wizard: where the caller stands, the flow, saving steps, completing"),
        (name = "session", description = "Anonymous sessions, and moving their drafts to the user after sign-in"),
        (name = "ai", description = "Optional AI suggestions; with AI off or failing every other route behaves the same"),
        (name = "analytics", description = "Funnel events and their aggregates"),
        (name = "privacy", description = "A user's data erased or exported, by them or when the identity provider deletes their account"),
        (name = "health", description = "Dependencies"),
        (name = "ops", description = "Scheduled maintenance, called by Vercel's cron jobs with the cron secret"),
        (name = "webhooks", description = "What the outbox sends to the deployment's webhook receivers"),
        (name = "meta", description = "This document"),
    )
)]
struct ApiDoc;

/// `GET /api/openapi.json`, the route of `api/openapi.rs`; every other
/// route is [`routes::all`].
pub fn router() -> Router<AppState> {
    // On Vercel the function's own path is /api/openapi (its file name);
    // vercel.json rewrites /api/openapi.json to it, and the function may see
    // either path.
    Router::new()
        .route("/api/openapi.json", get(openapi_json))
        .route("/api/openapi", get(openapi_json))
}

/// This document
///
/// Generated from the code at build time, so it changes only with a deploy;
/// nothing in it is personal, so CDNs and browsers may keep it for a while.
#[utoipa::path(get, path = "/api/openapi.json", operation_id = "getOpenApiDocument", tag = "meta",
    responses(
        (status = 200, description = "The OpenAPI 3.1 document", body = Object),
    )
)]
async fn openapi_json() -> impl IntoResponse {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            ),
        ],
        document_json(),
    )
}

/// The document, built once per process, with every free-form object made
/// explicitly open ([`open_free_form_objects`]).
pub fn document() -> &'static serde_json::Value {
    static DOCUMENT: LazyLock<serde_json::Value> = LazyLock::new(|| {
        let mut document =
            serde_json::to_value(ApiDoc::openapi()).expect("the OpenAPI document serializes");
        open_free_form_objects(&mut document);
        document
    });
    &DOCUMENT
}

/// The document as JSON, serialized once per process.
pub fn document_json() -> &'static str {
    static JSON: LazyLock<String> = LazyLock::new(|| {
        serde_json::to_string_pretty(document()).expect("the OpenAPI document serializes")
    });
    &JSON
}

/// Marks every schema that is an object of no declared properties (answers,
/// a step's JSON Schema, the document itself) `additionalProperties: true`.
/// JSON Schema allows any member there either way, but generators read a
/// bare `{"type": "object"}` as an object with no members (openapi-typescript:
/// `Record<string, never>`), so a client could neither build nor read answers.
pub fn open_free_form_objects(node: &mut serde_json::Value) {
    match node {
        serde_json::Value::Object(map) => {
            let is_object = match map.get("type") {
                Some(serde_json::Value::String(kind)) => kind == "object",
                Some(serde_json::Value::Array(kinds)) => kinds.iter().any(|kind| kind == "object"),
                _ => false,
            };
            let shaped = [
                "properties",
                "additionalProperties",
                "$ref",
                "allOf",
                "oneOf",
                "anyOf",
            ]
            .iter()
            .any(|key| map.contains_key(*key));
            if is_object && !shaped {
                map.insert("additionalProperties".into(), serde_json::Value::Bool(true));
            }
            map.values_mut().for_each(open_free_form_objects);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(open_free_form_objects),
        _ => {}
    }
}

/// The `webhooks` section: what the outbox POSTs to `OUTBOUND_WEBHOOK_URLS`.
struct OutboundWebhooks;

impl Modify for OutboundWebhooks {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::{
            HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem,
        };
        use utoipa::openapi::request_body::RequestBodyBuilder;
        use utoipa::openapi::{
            ContentBuilder, ObjectBuilder, PathsBuilder, Ref, Required, ResponseBuilder, Type,
        };
        let header = |name: &str, description: &str| {
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Header)
                .required(Required::True)
                .description(Some(description))
                .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                .build()
        };
        let mut paths = PathsBuilder::new();
        for (event, schema, summary) in [
            (
                crate::outbox::COMPLETED,
                "CompletedEvent",
                "A user completed onboarding",
            ),
            (
                crate::outbox::STEP_COMPLETED,
                "StepCompletedEvent",
                "A signed-in user completed a step",
            ),
            (
                crate::outbox::MERGED,
                "MergedEvent",
                "An anonymous session's drafts moved to the user after sign-in",
            ),
        ] {
            let operation = OperationBuilder::new()
                .operation_id(Some(event))
                .tag("webhooks")
                .summary(Some(summary))
                .description(Some(
                    "Sent by the transactional outbox to every `OUTBOUND_WEBHOOK_URLS` receiver, \
                     at least once and in order per user, signed with the Standard Webhooks \
                     scheme under `OUTBOUND_WEBHOOK_SECRET` (verify with the `standardwebhooks` \
                     or `svix` libraries). A retry repeats `webhook-id`: receivers deduplicate on it.",
                ))
                .parameter(header(
                    "webhook-id",
                    "The event's id, the same in every delivery of it",
                ))
                .parameter(header(
                    "webhook-timestamp",
                    "Unix seconds when this attempt was signed",
                ))
                .parameter(header(
                    "webhook-signature",
                    "`v1,<base64 HMAC-SHA256 of {webhook-id}.{webhook-timestamp}.{body}>`",
                ))
                .request_body(Some(
                    RequestBodyBuilder::new()
                        .required(Some(Required::True))
                        .content(
                            "application/json",
                            ContentBuilder::new()
                                .schema(Some(Ref::from_schema_name(schema)))
                                .build(),
                        )
                        .build(),
                ))
                .response(
                    "2XX",
                    ResponseBuilder::new().description(
                        "Acknowledged. Any other status, or no answer within \
                         `OUTBOUND_TIMEOUT_MS`, is retried with exponential backoff \
                         (`Retry-After` on 429 and 503 is honoured) until \
                         `OUTBOX_MAX_ATTEMPTS`.",
                    ),
                )
                .build();
            paths = paths.path(event, PathItem::new(HttpMethod::Post, operation));
        }
        openapi.webhooks = Some(paths.build());
    }
}

/// Documents what the shared layers and the error type add to every route.
struct SharedLayers;

impl Modify for SharedLayers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        // utoipa fills the license from Cargo.toml, which has none.
        openapi.info.license = None;
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "The identity provider's JWT (`AUTH_PROVIDER`), in `Authorization: Bearer` \
                         or the provider's cookie (`AUTH_COOKIE_NAME`, e.g. Clerk's `__session`). \
                         A token that fails any check is 401, never a silent downgrade to anonymous.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "sessionCookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                SESSION_COOKIE_NAME,
                "The signed anonymous session `POST /api/onboarding/session` sets.",
            ))),
        );
        components.add_security_scheme(
            "sessionHeader",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                SESSION_HEADER_NAME,
                "The same session, for clients without cookies: the `session` value of \
                 `POST /api/onboarding/session`.",
            ))),
        );

        components.add_security_scheme(
            "cronSecret",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The project's `CRON_SECRET`, which Vercel sends as `Authorization: Bearer` \
                         with every cron job; never a user's token.",
                    ))
                    .build(),
            ),
        );

        components.parameters.insert(
            "RequestId".into(),
            RefOr::T(
                ParameterBuilder::new()
                    .name("x-request-id")
                    .parameter_in(ParameterIn::Header)
                    .required(Required::False)
                    .description(Some(
                        "Your id for this request, echoed back and logged; honoured when it is \
                         1 to 128 of `[A-Za-z0-9._-]`, else replaced.",
                    ))
                    .schema(Some(
                        ObjectBuilder::new()
                            .schema_type(Type::String)
                            .min_length(Some(1))
                            .max_length(Some(128))
                            .pattern(Some("^[A-Za-z0-9._-]+$")),
                    ))
                    .build(),
            ),
        );
        for (name, description, required) in SHARED_HEADERS {
            components
                .headers
                .insert(name.to_string(), header(description, required));
        }

        for item in openapi.paths.paths.values_mut() {
            let operations = [
                (&mut item.get, false),
                (&mut item.put, true),
                (&mut item.post, true),
                (&mut item.patch, true),
                (&mut item.delete, true),
            ];
            for (operation, is_write) in operations {
                if let Some(operation) = operation {
                    document_shared_layers(operation, is_write);
                }
            }
        }
    }
}

/// Response headers in `#/components/headers`: name, description, required.
const SHARED_HEADERS: [(&str, &str, bool); 10] = [
    (
        "x-request-id",
        "The request's id (yours when well formed); problem bodies repeat it as `requestId`",
        true,
    ),
    (
        "Cache-Control",
        "`no-store` unless the route says otherwise: answers carry personal data",
        true,
    ),
    (
        "Server-Timing",
        "`db;dur=<ms>, cache;dur=<ms>, total;dur=<ms>`: time in PostgreSQL, in Redis, and in the whole request",
        true,
    ),
    (
        "WWW-Authenticate",
        "`Bearer realm=\"onboarding\"`, with the reason when a token failed",
        true,
    ),
    ("Retry-After", "Seconds to wait before retrying", true),
    (
        "Set-Cookie",
        "`onboarding_session=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax` (`; Secure` off localhost) \
         when a signed-in caller's request also carries an `onboarding_session` cookie holding a session \
         the server no longer accepts (bad signature, rotated `SESSION_SECRET`, expired, merged into a user), \
         since the page cannot drop an HttpOnly cookie. A visitor's such cookie is not cleared: its `401` \
         is answered by `POST /api/onboarding/session`, whose new cookie replaces it",
        false,
    ),
    (
        "Idempotent-Replayed",
        "`true` when this is the stored answer to an earlier request with the same `Idempotency-Key`",
        false,
    ),
    (
        "RateLimit-Limit",
        "Requests allowed per window, of the tightest limit that counted this request \
         (sent while the limits' store, Redis, answers)",
        false,
    ),
    ("RateLimit-Remaining", "Requests left in the window", false),
    ("RateLimit-Reset", "Seconds until the window resets", false),
];

const RATE_LIMIT_HEADERS: [&str; 3] = ["RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"];

fn document_shared_layers(operation: &mut Operation, is_write: bool) {
    let replays = operation
        .parameters
        .iter()
        .flatten()
        .any(|parameter| matches!(parameter, RefOr::T(p) if p.name == "Idempotency-Key"));
    operation
        .parameters
        .get_or_insert_with(Vec::new)
        .push(RefOr::Ref(Ref::new("#/components/parameters/RequestId")));
    for (status, response) in operation.responses.responses.iter_mut() {
        let RefOr::T(response) = response else {
            continue;
        };
        let mut shared = vec!["x-request-id", "Cache-Control", "Server-Timing"];
        match status.as_str() {
            "401" => shared.extend(["WWW-Authenticate", "Set-Cookie"]),
            "429" => shared.push("Retry-After"),
            "503" => shared.push("Retry-After"),
            _ => {}
        }
        let success = status.starts_with('2');
        if success && is_write {
            shared.extend(RATE_LIMIT_HEADERS);
        }
        if success && replays {
            shared.push("Idempotent-Replayed");
        }
        for name in shared {
            response.headers.insert(
                name.into(),
                RefOr::Ref(Ref::new(format!("#/components/headers/{name}"))),
            );
        }
        if status == "429" {
            // A denial always carries them, unlike a success: required here.
            for (name, description, _) in SHARED_HEADERS {
                if RATE_LIMIT_HEADERS.contains(&name) {
                    response
                        .headers
                        .insert(name.into(), header(description, true));
                }
            }
        }
    }
}

fn header(description: &str, required: bool) -> RefOr<Header> {
    let mut header = Header::new(ObjectBuilder::new().schema_type(Type::String));
    header.description = Some(description.into());
    if required {
        // utoipa's Header lacks the Header Object's fixed field `required`;
        // its flattened extensions map is where a field can be added.
        header.extensions = Some(Extensions::from_iter([("required", true)]));
    }
    RefOr::T(header)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_openapi_3_1() {
        let json: serde_json::Value = serde_json::from_str(document_json()).unwrap();
        assert!(json["openapi"].as_str().unwrap().starts_with("3.1."));
    }

    #[test]
    fn no_schema_is_an_object_without_members() {
        fn check(node: &serde_json::Value, at: &str) {
            match node {
                serde_json::Value::Object(map) => {
                    let is_object = match map.get("type") {
                        Some(serde_json::Value::String(kind)) => kind == "object",
                        Some(serde_json::Value::Array(kinds)) => {
                            kinds.iter().any(|kind| kind == "object")
                        }
                        _ => false,
                    };
                    if is_object {
                        assert!(
                            map.contains_key("properties")
                                || map.contains_key("additionalProperties")
                                || map.contains_key("allOf")
                                || map.contains_key("oneOf"),
                            "a closed empty object at {at}: {node}"
                        );
                    }
                    for (key, value) in map {
                        check(value, &format!("{at}/{key}"));
                    }
                }
                serde_json::Value::Array(items) => {
                    for (index, item) in items.iter().enumerate() {
                        check(item, &format!("{at}/{index}"));
                    }
                }
                _ => {}
            }
        }
        let json: serde_json::Value = serde_json::from_str(document_json()).unwrap();
        check(&json, "");
        let schemas = &json["components"]["schemas"];
        for (schema, property) in [("SaveBody", "answers"), ("StepAnswer", "answers")] {
            assert_eq!(
                schemas[schema]["properties"][property]["additionalProperties"], true,
                "{schema}.{property}"
            );
        }
    }

    #[test]
    fn string_sets_are_enums() {
        let json: serde_json::Value = serde_json::from_str(document_json()).unwrap();
        let schemas = &json["components"]["schemas"];
        // A property's schema, through a `$ref` or an `Option`'s `oneOf`.
        let resolve = |schema: &serde_json::Value| -> serde_json::Value {
            let schema = schema["oneOf"]
                .as_array()
                .and_then(|variants| variants.iter().find(|v| v["type"] != "null"))
                .unwrap_or(schema)
                .clone();
            match schema["$ref"].as_str() {
                Some(reference) => json
                    .pointer(reference.trim_start_matches('#'))
                    .unwrap()
                    .clone(),
                None => schema,
            }
        };
        for (schema, property, values) in [
            (
                "Status",
                "state",
                &["not_started", "in_progress", "completed"][..],
            ),
            ("PreferencesView", "mode", &["off", "suggest"]),
            ("PreferencesBody", "mode", &["off", "suggest"]),
            ("SuggestionView", "status", &["pending"]),
            (
                "SuggestReply",
                "reason",
                &["invalid_output", "refused", "unavailable"],
            ),
            ("Decided", "status", &["accepted", "rejected"]),
            ("ExportedProgress", "state", &["in_progress", "completed"]),
        ] {
            let property = resolve(&schemas[schema]["properties"][property]);
            assert_eq!(
                property["enum"],
                serde_json::json!(values),
                "{schema}: {property}"
            );
        }
        let overrides = &schemas["PreferencesView"]["properties"]["fieldOverrides"];
        assert_eq!(
            resolve(&overrides["additionalProperties"])["enum"],
            serde_json::json!(["off", "suggest"])
        );
        let code = resolve(&schemas["FieldError"]["properties"]["code"]);
        assert!(
            code["enum"]
                .as_array()
                .unwrap()
                .contains(&serde_json::json!("duplicate_item")),
            "{code}"
        );
    }

    #[test]
    fn operation_ids_are_unique() {
        let json: serde_json::Value = serde_json::from_str(document_json()).unwrap();
        let mut seen = std::collections::BTreeSet::new();
        for item in json["paths"].as_object().unwrap().values() {
            for operation in item.as_object().unwrap().values() {
                let id = operation["operationId"].as_str().unwrap();
                assert!(seen.insert(id.to_string()), "{id} is used twice");
            }
        }
    }

    #[test]
    fn every_error_response_is_a_problem() {
        let json: serde_json::Value = serde_json::from_str(document_json()).unwrap();
        for (path, item) in json["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let Some(responses) = operation["responses"].as_object() else {
                    continue;
                };
                for (status, response) in responses {
                    if status.starts_with('4') || (status.starts_with('5') && path != "/api/health")
                    {
                        assert_eq!(
                            response["content"]["application/problem+json"]["schema"]["$ref"],
                            "#/components/schemas/Problem",
                            "{method} {path} {status}"
                        );
                    }
                }
            }
        }
    }
}
