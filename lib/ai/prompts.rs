//! Prompt templates: versioned rows in `onboarding.prompts`, immutable once
//! published, resolved through a label (`production`, `staging`).
//!
//! A template names its inputs as `{{variable}}` placeholders, and a published
//! version declares exactly the variables it uses ([`publish_check`], enforced
//! again by the database's `prompts_guard` trigger). Rendering fills only
//! declared variables, so an answer the template does not declare (an e-mail
//! address, a name, other free text) can never reach the provider.

use std::collections::BTreeMap;

use serde_json::Value;
use tokio_postgres::Row;
use tokio_postgres::types::Type;

use crate::db::{DbError, Statement, Tx};

/// A published prompt version.
#[derive(Debug, Clone, PartialEq)]
pub struct Prompt {
    /// `step.field`, e.g. `goals.primaryGoal`.
    pub key: String,
    pub version: i32,
    pub system: String,
    pub template: String,
    pub variables: Vec<String>,
    pub output_schema: Value,
    pub max_tokens: u32,
}

/// The labels a prompt version can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Label {
    Production,
    Staging,
}

impl Label {
    pub fn as_str(self) -> &'static str {
        match self {
            Label::Production => "production",
            Label::Staging => "staging",
        }
    }
}

/// One reason a template cannot be published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromptProblem {
    /// `{{name}}` used but not declared.
    UndeclaredVariable(String),
    /// Declared but never used.
    UnusedVariable(String),
    /// A `{{` that does not open a well-formed `{{name}}` placeholder (byte offset).
    MalformedPlaceholder(usize),
}

impl std::fmt::Display for PromptProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PromptProblem::UndeclaredVariable(name) => write!(f, "undeclared variable {name}"),
            PromptProblem::UnusedVariable(name) => {
                write!(f, "declared variable {name} is not used")
            }
            PromptProblem::MalformedPlaceholder(at) => write!(f, "malformed placeholder at {at}"),
        }
    }
}

/// A piece of a template.
#[derive(Debug, PartialEq, Eq)]
enum Piece<'a> {
    Text(&'a str),
    Variable(&'a str),
    Malformed { at: usize, text: &'a str },
}

fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Splits a template into text and `{{ name }}` placeholders (whitespace
/// inside the braces allowed, as in the database's check).
fn pieces(template: &str) -> Vec<Piece<'_>> {
    let mut pieces = Vec::new();
    let mut rest = template;
    let mut offset = 0;
    while let Some(open) = rest.find("{{") {
        if open > 0 {
            pieces.push(Piece::Text(&rest[..open]));
        }
        let after = &rest[open + 2..];
        let placeholder = after
            .find("}}")
            .map(|close| (close, after[..close].trim()))
            .filter(|(close, name)| is_variable_name(name) && !after[..*close].contains('{'));
        match placeholder {
            Some((close, name)) => {
                pieces.push(Piece::Variable(name));
                offset += open + 2 + close + 2;
                rest = &after[close + 2..];
            }
            None => {
                pieces.push(Piece::Malformed {
                    at: offset + open,
                    text: &rest[open..open + 2],
                });
                offset += open + 2;
                rest = after;
            }
        }
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest));
    }
    pieces
}

/// Checks that a template's placeholders are exactly its declared variables.
pub fn publish_check(template: &str, variables: &[String]) -> Result<(), Vec<PromptProblem>> {
    let mut problems = Vec::new();
    let mut used = Vec::new();
    for piece in pieces(template) {
        match piece {
            Piece::Variable(name) => {
                if !variables.iter().any(|v| v == name) {
                    problems.push(PromptProblem::UndeclaredVariable(name.to_string()));
                }
                used.push(name);
            }
            Piece::Malformed { at, .. } => problems.push(PromptProblem::MalformedPlaceholder(at)),
            Piece::Text(_) => {}
        }
    }
    problems.extend(
        variables
            .iter()
            .filter(|v| !used.contains(&v.as_str()))
            .map(|v| PromptProblem::UnusedVariable(v.clone())),
    );
    problems.dedup();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// Fills the declared variables' placeholders in one pass (a value containing
/// `{{x}}` stays literal text). Values for undeclared names are ignored;
/// declared variables without a value render as an empty string.
pub fn render(template: &str, variables: &[String], values: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(template.len());
    for piece in pieces(template) {
        match piece {
            Piece::Text(text) | Piece::Malformed { text, .. } => out.push_str(text),
            Piece::Variable(name) => {
                if variables.iter().any(|v| v == name) {
                    out.push_str(values.get(name).map(String::as_str).unwrap_or(""));
                }
            }
        }
    }
    out
}

impl Prompt {
    /// The user message for these values (see [`render`]).
    pub fn render(&self, values: &BTreeMap<String, String>) -> String {
        render(&self.template, &self.variables, values)
    }
}

const RESOLVE: Statement = Statement::new(
    "select p.key, p.version, p.system, p.template, p.variables, p.output_schema, p.max_tokens
     from onboarding.prompt_labels l
     join onboarding.prompts p on p.key = l.key and p.version = l.version
     where l.key = $1 and l.label = $2 and p.status = 'published'",
    &[Type::TEXT, Type::TEXT],
);

fn from_row(row: &Row) -> Prompt {
    Prompt {
        key: row.get("key"),
        version: row.get("version"),
        system: row.get("system"),
        template: row.get("template"),
        variables: row.get("variables"),
        output_schema: row.get("output_schema"),
        max_tokens: u32::try_from(row.get::<_, i32>("max_tokens")).unwrap_or(512),
    }
}

/// The published version `label` points at, if any.
pub async fn resolve(tx: &Tx<'_>, key: &str, label: Label) -> Result<Option<Prompt>, DbError> {
    Ok(tx
        .query_opt(&RESOLVE, &[&key, &label.as_str()])
        .await?
        .as_ref()
        .map(from_row))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn a_template_using_exactly_its_declared_variables_passes() {
        assert_eq!(
            publish_check(
                "Goal: {{primaryGoal}} ({{ useCases }})",
                &vars(&["primaryGoal", "useCases"])
            ),
            Ok(())
        );
    }

    #[test]
    fn undeclared_unused_and_malformed_placeholders_are_all_reported() {
        let problems = publish_check(
            "{{email}} and {{goal}} and {{ broken and {{}}",
            &vars(&["goal", "industry"]),
        )
        .unwrap_err();
        assert_eq!(
            problems,
            vec![
                PromptProblem::UndeclaredVariable("email".into()),
                PromptProblem::MalformedPlaceholder(27),
                PromptProblem::MalformedPlaceholder(41),
                PromptProblem::UnusedVariable("industry".into()),
            ]
        );
    }

    #[test]
    fn rendering_fills_only_declared_variables_and_never_recurses() {
        let values: BTreeMap<String, String> = [
            ("goal", "ship {{email}} faster"),
            ("email", "ada@example.com"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let rendered = render(
            "G={{goal}} E={{email}} M={{missing}}",
            &vars(&["goal", "missing"]),
            &values,
        );
        assert_eq!(rendered, "G=ship {{email}} faster E= M=");
        assert!(!rendered.contains("ada@example.com"));
    }
}
