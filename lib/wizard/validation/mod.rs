//! Raw JSON → typed, normalized answers, or every field error at once.
//!
//! Rules shared by all fields (the contract with the frontend and the JSON
//! Schema export):
//! - Strings are trimmed with JavaScript's whitespace set and NFC-normalized
//!   before any check ([`normalize_text`]); lengths count Unicode scalar values.
//! - Control characters (Unicode Cc) are rejected with `control_character`.
//!   Text fields whose `maxLength` is above 200 may contain `\n` (multi-line
//!   goals); `\r` and tabs are always rejected.
//! - `null` is the same as leaving the key out. For string-typed fields an empty
//!   string (after trimming) is too: a required field reports `required`, an
//!   optional one is simply not answered. Inside lists there is no such rule.
//! - Keys that are not fields of the step: `unknown_field`. Fields hidden by
//!   their condition must be absent (or `null`): `hidden_field`.
//! - Before any work the input is checked against [`MAX_DEPTH`] and
//!   [`MAX_NODES`] without recursion (`too_deep`, `too_large`).
//! - The step itself must exist (`unknown_step`) and be visible (`hidden_step`);
//!   those errors have the pointer `""`.
//!
//! - `step`: the entry points and the walk over a step's answers object.
//! - `field`: one field's value, per kind.
//! - `errors`: the codes and errors reported; `answers`: what passes.
//! - `limits`: size limits checked before anything else.
//! - `rules`: the shared text rules (normalization, e-mail, URL, time zone),
//!   also used by the JSON Schema export; `normalize`: the frontend's
//!   normalization of a whole value.

mod answers;
mod errors;
mod field;
mod limits;
mod normalize;
pub mod rules;
mod step;
#[cfg(test)]
mod tests;

pub use answers::{AnswerValue, StepAnswers};
pub use errors::{ErrorCode, FieldError, ValidationErrors};
pub use limits::{MAX_DEPTH, MAX_NODES};
pub use normalize::normalize_strings;
pub use rules::{
    EMAIL_PATTERN, MULTI_LINE_PATTERN, MULTI_LINE_THRESHOLD, SINGLE_LINE_PATTERN, SLUG_PATTERN,
    URL_PATTERN, has_control_character, is_iana_time_zone, is_js_trim_char, is_valid_email,
    is_valid_url, normalize_text,
};
pub(crate) use step::{Options, validate_with};
pub use step::{Submission, validate_step};
