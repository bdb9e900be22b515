//! The document, and the check of one real answer against it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::Value;

/// `(METHOD, path template, status)`.
pub type Exchange = (String, String, u16);

/// Every `(method, path, status)` the document lists.
pub fn documented(document: &Value) -> BTreeSet<Exchange> {
    let mut exchanges = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let Some(responses) = operation["responses"].as_object() else {
                continue;
            };
            for status in responses.keys() {
                exchanges.insert((
                    method.to_uppercase(),
                    path.clone(),
                    status.parse().expect("statuses are numbers, not ranges"),
                ));
            }
        }
    }
    exchanges
}

/// The document, and what real requests answered.
pub struct Contract {
    pub document: Value,
    validators: Mutex<BTreeMap<String, Arc<jsonschema::Validator>>>,
    pub seen: Mutex<BTreeSet<Exchange>>,
}

/// One checked answer.
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Contract {
    pub fn new(document: Value) -> Self {
        Self {
            document,
            validators: Mutex::default(),
            seen: Mutex::default(),
        }
    }

    /// The target of a `$ref` into the document, or `value` itself.
    fn resolve<'v>(&'v self, value: &'v Value) -> &'v Value {
        match value["$ref"].as_str() {
            Some(reference) => self
                .document
                .pointer(reference.trim_start_matches('#'))
                .unwrap_or_else(|| panic!("{reference} points nowhere")),
            None => value,
        }
    }

    /// A validator for `schema`, whose `$ref`s point into the document's
    /// `components`: they are carried along in the validated root.
    fn validator(&self, schema: &Value) -> Arc<jsonschema::Validator> {
        let key = schema.to_string();
        let mut validators = self.validators.lock().unwrap();
        validators
            .entry(key)
            .or_insert_with(|| {
                let mut root = schema.as_object().expect("a schema object").clone();
                root.insert("components".into(), self.document["components"].clone());
                let validator = jsonschema::draft202012::options()
                    .should_validate_formats(true)
                    .build(&Value::Object(root))
                    .unwrap_or_else(|error| panic!("{schema} does not compile: {error}"));
                Arc::new(validator)
            })
            .clone()
    }

    /// Checks an answer against what the document says about `method
    /// template` and its status, and records the exchange.
    pub async fn check(
        &self,
        method: &Method,
        template: &str,
        response: reqwest::Response,
    ) -> Answer {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let context = format!("{method} {template} answered {status} {text}");
        let documented = &self.document["paths"][template][method.as_str().to_lowercase()]["responses"]
            [status.to_string()];
        assert!(documented.is_object(), "undocumented: {context}");
        for (name, header) in documented["headers"].as_object().into_iter().flatten() {
            if self.resolve(header)["required"] == true {
                assert!(headers.contains_key(name.as_str()), "no {name}: {context}");
            }
        }
        let content_type = headers
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(';').next())
            .unwrap_or_default()
            .trim()
            .to_string();
        let schema = &documented["content"][&content_type]["schema"];
        assert!(
            schema.is_object(),
            "content type `{content_type}` is not documented: {context}"
        );
        let body: Value = serde_json::from_str(&text).expect("a JSON body");
        let validator = self.validator(schema);
        let errors: Vec<String> = validator
            .iter_errors(&body)
            .map(|error| format!("{} at `{}`", error, error.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{errors:#?}\n{context}");
        self.seen.lock().unwrap().insert((
            method.as_str().to_string(),
            template.to_string(),
            status,
        ));
        Answer {
            status,
            headers,
            body,
        }
    }
}
