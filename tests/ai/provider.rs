//! Both wire formats, and the resilience rules, against the fake server.

use std::time::{Duration, Instant};

use onboarding::ai::{AiError, CompletionRequest, ProviderKind};
use serde_json::json;

use super::server::{self, FakeProvider, Reply};

fn request() -> CompletionRequest {
    CompletionRequest {
        system: "You rewrite goals.".to_string(),
        user: "Rewrite: we want numbers faster".to_string(),
        schema_name: "goals.primaryGoal".to_string(),
        schema: json!({
            "type": "object",
            "properties": { "primaryGoal": { "type": "string", "maxLength": 500 } },
            "required": ["primaryGoal"],
            "additionalProperties": false
        }),
        max_tokens: 300,
    }
}

async fn valid_output(kind: ProviderKind) {
    let server = FakeProvider::start(
        kind,
        vec![server::structured(
            kind,
            json!({ "primaryGoal": "Get reports faster." }),
        )],
    )
    .await;
    let completion = server.client().complete(&request()).await.unwrap();
    assert_eq!(
        completion.value,
        json!({ "primaryGoal": "Get reports faster." })
    );
    assert_eq!(completion.model, server::SERVED_MODEL);
    assert_eq!(completion.usage.input_tokens, Some(120));
    assert_eq!(completion.usage.output_tokens, Some(30));
    assert_eq!(completion.attempts, 1);
    assert!(completion.finish_reason.is_some());

    let sent = &server.requests()[0];
    let schema = request().schema;
    match kind {
        ProviderKind::OpenAi => {
            assert_eq!(sent.path, "/v1/chat/completions");
            assert_eq!(
                sent.headers["authorization"],
                format!("Bearer {}", server::API_KEY).as_str()
            );
            assert_eq!(sent.body["model"], server::MODEL);
            assert_eq!(sent.body["messages"][0]["role"], "system");
            assert_eq!(sent.body["messages"][0]["content"], "You rewrite goals.");
            assert_eq!(sent.body["messages"][1]["role"], "user");
            assert_eq!(sent.body["max_tokens"], 300);
            assert_eq!(sent.body["response_format"]["type"], "json_schema");
            assert_eq!(
                sent.body["response_format"]["json_schema"]["name"],
                "goals_primaryGoal"
            );
            assert_eq!(sent.body["response_format"]["json_schema"]["strict"], true);
            assert_eq!(
                sent.body["response_format"]["json_schema"]["schema"],
                schema
            );
        }
        ProviderKind::Anthropic => {
            assert_eq!(sent.path, "/v1/messages");
            assert_eq!(sent.headers["x-api-key"], server::API_KEY);
            assert_eq!(sent.headers["anthropic-version"], "2023-06-01");
            assert!(sent.headers.get("authorization").is_none());
            assert_eq!(sent.body["system"], "You rewrite goals.");
            assert_eq!(sent.body["messages"][0]["role"], "user");
            assert_eq!(sent.body["max_tokens"], 300);
            assert_eq!(sent.body["tools"][0]["name"], "goals_primaryGoal");
            assert_eq!(sent.body["tools"][0]["input_schema"], schema);
            assert_eq!(
                sent.body["tool_choice"],
                json!({ "type": "tool", "name": "goals_primaryGoal" })
            );
        }
    }
}
for_both_providers!(
    valid_structured_output_comes_back_parsed_with_model_and_usage,
    super::valid_output
);

async fn invalid_json(kind: ProviderKind) {
    let server = FakeProvider::start(
        kind,
        vec![server::prose(
            kind,
            "Sure! Here is a clearer goal: get reports faster.",
        )],
    )
    .await;
    let error = server.client().complete(&request()).await.unwrap_err();
    assert!(matches!(error, AiError::InvalidOutput(_)), "{error:?}");
    assert_eq!(server.count(), 1, "invalid output is not retried");
}
for_both_providers!(
    output_that_is_not_the_json_asked_for_is_invalid_output,
    super::invalid_json
);

async fn malformed_body(kind: ProviderKind) {
    let server = FakeProvider::start(
        kind,
        vec![Reply::Status {
            status: 200,
            headers: Vec::new(),
            body: json!("{\"choices\": [trunc"),
        }],
    )
    .await;
    let error = server.client().complete(&request()).await.unwrap_err();
    assert!(matches!(error, AiError::InvalidOutput(_)), "{error:?}");
}
for_both_providers!(
    a_response_body_that_is_not_the_wire_format_is_invalid_output,
    super::malformed_body
);

async fn rate_limited(kind: ProviderKind) {
    let server = FakeProvider::start(
        kind,
        vec![
            server::error(kind, 429, &[("retry-after", "1")]),
            server::structured(kind, json!({ "primaryGoal": "Faster reports." })),
        ],
    )
    .await;
    let started = Instant::now();
    let completion = server.client().complete(&request()).await.unwrap();
    assert_eq!(server.count(), 2);
    assert_eq!(completion.attempts, 2);
    assert!(
        started.elapsed() >= Duration::from_millis(1000),
        "waited {:?}, less than Retry-After",
        started.elapsed()
    );
}
for_both_providers!(
    a_429_with_retry_after_is_retried_once_the_wait_is_over,
    super::rate_limited
);

async fn rate_limit_beyond_deadline(kind: ProviderKind) {
    let server = FakeProvider::start(
        kind,
        vec![server::error(kind, 429, &[("retry-after", "30")])],
    )
    .await;
    let started = Instant::now();
    let error = server.client().complete(&request()).await.unwrap_err();
    assert_eq!(
        error,
        AiError::RateLimited {
            retry_after: Some(Duration::from_secs(30))
        }
    );
    assert_eq!(
        server.count(),
        1,
        "a wait past the deadline is not attempted"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}
for_both_providers!(
    a_retry_after_beyond_the_deadline_gives_up_at_once_reporting_the_wait,
    super::rate_limit_beyond_deadline
);

async fn server_error(kind: ProviderKind) {
    let server = FakeProvider::start(kind, vec![server::error(kind, 500, &[])]).await;
    let error = server.client().complete(&request()).await.unwrap_err();
    assert_eq!(error, AiError::Provider { status: 500 });
    assert_eq!(server.count(), 3, "the first call and two retries");
}
for_both_providers!(
    a_500_is_retried_and_then_reported_as_a_provider_error,
    super::server_error
);

async fn client_error(kind: ProviderKind) {
    let server = FakeProvider::start(kind, vec![server::error(kind, 400, &[])]).await;
    let error = server.client().complete(&request()).await.unwrap_err();
    assert_eq!(error, AiError::Provider { status: 400 });
    assert_eq!(server.count(), 1, "other 4xx are not retried");
}
for_both_providers!(a_400_is_not_retried, super::client_error);

#[tokio::test]
async fn anthropic_overloaded_529_is_retried() {
    let kind = ProviderKind::Anthropic;
    let server = FakeProvider::start(
        kind,
        vec![
            server::error(kind, 529, &[]),
            server::structured(kind, json!({ "primaryGoal": "Faster reports." })),
        ],
    )
    .await;
    server.client().complete(&request()).await.unwrap();
    assert_eq!(server.count(), 2);
}

async fn hang(kind: ProviderKind) {
    let server = FakeProvider::start(kind, vec![Reply::Hang(Duration::from_secs(30))]).await;
    let client = server.client_with(|settings| {
        settings.timeout = Duration::from_millis(300);
        settings.deadline = Duration::from_millis(900);
        settings.max_retries = 10;
    });
    let started = Instant::now();
    let error = client.complete(&request()).await.unwrap_err();
    let elapsed = started.elapsed();
    assert_eq!(error, AiError::Timeout);
    assert!(elapsed < Duration::from_millis(1500), "took {elapsed:?}");
    let calls = server.count();
    assert!(
        (2..=3).contains(&calls),
        "the deadline allows two or three 300 ms calls, not eleven: {calls}"
    );
}
for_both_providers!(
    a_hang_past_the_timeout_times_out_and_the_deadline_bounds_the_retries,
    super::hang
);

async fn refused(kind: ProviderKind) {
    let server = FakeProvider::start(kind, vec![server::refusal(kind)]).await;
    let error = server.client().complete(&request()).await.unwrap_err();
    assert_eq!(error, AiError::Refused);
    assert_eq!(server.count(), 1);
}
for_both_providers!(
    a_refusal_is_reported_as_refused_and_not_retried,
    super::refused
);

async fn circuit(kind: ProviderKind) {
    let server = FakeProvider::start(kind, vec![server::error(kind, 503, &[])]).await;
    let client = server.client_with(|settings| {
        settings.max_retries = 0;
        settings.breaker_threshold = 3;
        settings.breaker_cooldown = Duration::from_millis(400);
    });
    for _ in 0..3 {
        assert_eq!(
            client.complete(&request()).await.unwrap_err(),
            AiError::Provider { status: 503 }
        );
    }
    for _ in 0..5 {
        assert_eq!(
            client.complete(&request()).await.unwrap_err(),
            AiError::CircuitOpen
        );
    }
    assert_eq!(
        server.count(),
        3,
        "no request reaches the server while the circuit is open"
    );

    // After the cool-down one probe goes through; its success closes the circuit.
    tokio::time::sleep(Duration::from_millis(450)).await;
    server.set_replies(vec![server::structured(
        kind,
        json!({ "primaryGoal": "Back." }),
    )]);
    client.complete(&request()).await.unwrap();
    client.complete(&request()).await.unwrap();
    assert_eq!(server.count(), 5);
}
for_both_providers!(
    the_circuit_opens_after_consecutive_failures_and_then_lets_one_probe_through,
    super::circuit
);

async fn cancelled(kind: ProviderKind) {
    let server = FakeProvider::start(kind, vec![Reply::Hang(Duration::from_secs(30))]).await;
    let client = server.client();
    let request = request();
    let call = client.complete(&request);
    // The caller gives up (its request was dropped): the call ends with it.
    assert!(
        tokio::time::timeout(Duration::from_millis(200), call)
            .await
            .is_err()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        server.count(),
        1,
        "nothing keeps retrying in the background"
    );
}
for_both_providers!(
    dropping_the_callers_future_cancels_the_call,
    super::cancelled
);
