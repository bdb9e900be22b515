//! The domain: the wizard's flow definition, answers and their validation,
//! the stored shape, and the operations on them. Nothing here knows HTTP:
//! operations take typed inputs and the caller's transaction, and return
//! domain values or a [`WizardError`].
//!
//! - [`flow`]: the flow definition (steps, fields, conditions, upgrades) and
//!   its JSON Schema export.
//! - [`validation`]: answers checked against a step, with field errors.
//! - [`transform`]: answers to and from the stored shape; the completion
//!   plan; upgrades between flow versions.
//! - [`status`]: where a caller stands, read through the status cache.
//! - [`save`], [`complete`], [`merge`]: the writes, each inside the caller's
//!   transaction.
//! - [`suggest`], [`suggestions`]: AI suggestions, produced, validated and decided.
//! - [`erasure`]: a user's data erased (by them, or when their account is
//!   deleted) or exported.

pub mod complete;
pub mod erasure;
pub mod error;
pub mod flow;
pub mod merge;
pub mod reads;
pub mod save;
pub mod status;
pub mod suggest;
pub mod suggestions;
pub mod transform;
pub mod validation;

pub use error::WizardError;
