//! Why a wizard operation did not happen, in the domain's words; `http`
//! decides the status each becomes.

use crate::db::DbError;
use crate::wizard::validation::{FieldError, ValidationErrors};

/// A refused or failed wizard operation. Nothing of it was written.
#[derive(Debug, thiserror::Error)]
pub enum WizardError {
    /// The answers, or what the operation needs of them, are invalid; every
    /// field error at once.
    #[error("{detail}")]
    Invalid {
        detail: String,
        errors: Vec<FieldError>,
    },
    /// The caller expected another version than the stored one; `current`
    /// is what is stored now, so the caller can recover without a read.
    #[error("{detail}")]
    VersionMismatch {
        detail: String,
        current: Option<CurrentAnswer>,
    },
    /// An answer is stored and the caller did not say which version it replaces.
    #[error("{0}")]
    VersionRequired(String),
    /// The operation no longer applies (a completed flow, a decided suggestion).
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// The answer a write was refused against: what a read of the step would
/// give now (`version` 0 and no answers before the first save).
#[derive(Debug, Clone, PartialEq)]
pub struct CurrentAnswer {
    pub version: i64,
    pub answers: Option<serde_json::Value>,
    pub completed: bool,
}

impl WizardError {
    /// A version mismatch whose current answer is attached later.
    pub fn version_mismatch(detail: impl Into<String>) -> Self {
        WizardError::VersionMismatch {
            detail: detail.into(),
            current: None,
        }
    }

    /// The same error, carrying the current answer when it is a version mismatch.
    pub fn with_current(self, answer: CurrentAnswer) -> Self {
        match self {
            WizardError::VersionMismatch { detail, .. } => WizardError::VersionMismatch {
                detail,
                current: Some(answer),
            },
            other => other,
        }
    }

    /// A refusal with no field to point at.
    pub fn invalid(detail: impl Into<String>) -> Self {
        WizardError::Invalid {
            detail: detail.into(),
            errors: Vec::new(),
        }
    }
}

impl From<ValidationErrors> for WizardError {
    fn from(errors: ValidationErrors) -> Self {
        let errors = errors.into_errors();
        WizardError::Invalid {
            detail: format!(
                "{} field{} invalid",
                errors.len(),
                if errors.len() == 1 { " is" } else { "s are" }
            ),
            errors,
        }
    }
}

impl From<tokio_postgres::Error> for WizardError {
    fn from(error: tokio_postgres::Error) -> Self {
        WizardError::Db(DbError::from(error))
    }
}
