//! An HTTP client for the onboarding API that knows where each route lives:
//! one address for the dev-server router, or one per function binary.

use reqwest::{Method, RequestBuilder, Response};
use serde_json::Value;

/// The credentials a request carries.
#[derive(Clone, Default)]
pub struct Auth {
    pub token: Option<String>,
    pub session: Option<String>,
}

impl Auth {
    pub fn none() -> Self {
        Self::default()
    }

    pub fn session(value: &str) -> Self {
        Self {
            token: None,
            session: Some(value.to_string()),
        }
    }

    pub fn token(value: &str) -> Self {
        Self {
            token: Some(value.to_string()),
            session: None,
        }
    }

    pub fn with_session(mut self, value: &str) -> Self {
        self.session = Some(value.to_string());
        self
    }
}

pub struct Api {
    pub http: reqwest::Client,
    base_for: Box<dyn Fn(&str) -> String + Send + Sync>,
}

impl Api {
    /// Every route at one address.
    pub fn at(address: &str) -> Self {
        let address = address.to_string();
        Self::routed(move |_| address.clone())
    }

    /// Routes at the address `base_for(path)` picks.
    pub fn routed(base_for: impl Fn(&str) -> String + Send + Sync + 'static) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                .build()
                .unwrap(),
            base_for: Box::new(base_for),
        }
    }

    pub fn request(&self, method: Method, path: &str, auth: &Auth) -> RequestBuilder {
        let mut request = self
            .http
            .request(method, format!("{}{path}", (self.base_for)(path)));
        if let Some(token) = &auth.token {
            request = request.bearer_auth(token);
        }
        if let Some(session) = &auth.session {
            request = request.header("x-onboarding-session", session);
        }
        request
    }

    pub async fn start_session(&self) -> String {
        let response = self
            .request(Method::POST, "/api/onboarding/session", &Auth::none())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let body: Value = response.json().await.unwrap();
        body["session"].as_str().unwrap().to_string()
    }

    pub async fn status(&self, auth: &Auth) -> Value {
        let response = self
            .request(Method::GET, "/api/onboarding/status", auth)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    /// `GET /api/onboarding/steps/{step}`'s body (a step view).
    pub async fn get_step(&self, step: &str, auth: &Auth) -> Value {
        self.request(Method::GET, &format!("/api/onboarding/steps/{step}"), auth)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn put_step(
        &self,
        step: &str,
        auth: &Auth,
        answers: Value,
        complete: bool,
        if_match: Option<i64>,
    ) -> Response {
        let mut request = self
            .request(Method::PUT, &format!("/api/onboarding/steps/{step}"), auth)
            .json(&serde_json::json!({ "answers": answers, "complete": complete }));
        if let Some(version) = if_match {
            request = request.header("if-match", format!("\"{version}\""));
        }
        request.send().await.unwrap()
    }

    pub async fn post(&self, path: &str, auth: &Auth, body: Value) -> Response {
        self.request(Method::POST, path, auth)
            .json(&body)
            .send()
            .await
            .unwrap()
    }
}

pub fn valid_answer(step: &str) -> Value {
    crate::library::corpus_valid_answer(step)
}
