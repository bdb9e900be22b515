//! Flag values in the shape the Flags SDK's Edge Config adapter reads: the item
//! `flags` is `{ flagKey: bool | number | string | null }`.
//!
//! Evaluation, for a subject (the user id, or the anonymous session id):
//! - `true` / `false`: as is.
//! - a number `p` in `0..=100`: a percentage rollout. The subject is on when
//!   [`rollout_bucket`]`(flagKey, subjectId) < round(p * 100)`, so `12.5` means
//!   12.5 % of subjects and the same subject always gets the same answer.
//! - `"on"` / `"off"`: on / off. Any other string is a variant (e.g. `"blue"`),
//!   read with [`FlagValue::variant`]; as a boolean it is off.
//! - `null` or a missing key: off.

use std::fmt;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};

/// Buckets a percentage rollout is cut into: 10,000 allows two decimals.
pub const ROLLOUT_BUCKETS: u32 = 10_000;

/// A flag as stored in Edge Config. Built only through deserialization, which
/// rejects arrays, objects and numbers outside `0..=100`.
#[derive(Debug, Clone, PartialEq)]
pub enum FlagValue {
    Bool(bool),
    /// A rollout percentage, checked to be in `0..=100`.
    Percent(Percent),
    Text(String),
    Null,
}

/// A rollout percentage in `0..=100`, kept in basis points so evaluation is
/// integer arithmetic the Next.js app can reproduce exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Percent {
    basis_points: u32,
}

impl Percent {
    /// `None` unless `0 <= value <= 100`; finer steps than 0.01 are rounded.
    pub fn new(value: f64) -> Option<Self> {
        (0.0..=100.0).contains(&value).then(|| Percent {
            basis_points: (value * 100.0).round() as u32,
        })
    }

    pub fn as_f64(self) -> f64 {
        f64::from(self.basis_points) / 100.0
    }

    /// Whether `subject_id` falls inside this rollout of `flag_key`.
    pub fn includes(self, flag_key: &str, subject_id: &str) -> bool {
        rollout_bucket(flag_key, subject_id) < self.basis_points
    }
}

impl FlagValue {
    /// Whether the flag is on for `subject_id` (see the module docs).
    pub fn is_enabled(&self, flag_key: &str, subject_id: &str) -> bool {
        match self {
            FlagValue::Bool(on) => *on,
            FlagValue::Percent(percent) => percent.includes(flag_key, subject_id),
            FlagValue::Text(text) => text == "on",
            FlagValue::Null => false,
        }
    }

    /// The variant string of a string flag other than `"on"`/`"off"`.
    pub fn variant(&self) -> Option<&str> {
        match self {
            FlagValue::Text(text) if text != "on" && text != "off" => Some(text),
            _ => None,
        }
    }
}

/// The rollout bucket of a subject for a flag, in `0..ROLLOUT_BUCKETS`:
/// 32-bit FNV-1a over the UTF-8 bytes of `"{flagKey}:{subjectId}"`, modulo 10,000.
///
/// The flag key is part of the input so that different flags roll out to
/// different subjects. The same bucket in TypeScript:
///
/// ```text
/// function rolloutBucket(flagKey: string, subjectId: string): number {
///   let h = 0x811c9dc5;
///   for (const b of new TextEncoder().encode(`${flagKey}:${subjectId}`)) {
///     h = Math.imul(h ^ b, 0x01000193) >>> 0;
///   }
///   return h % 10000;
/// }
/// // on when rolloutBucket(key, id) < Math.round(percent * 100)
/// ```
pub fn rollout_bucket(flag_key: &str, subject_id: &str) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    let bytes = flag_key
        .as_bytes()
        .iter()
        .chain(b":")
        .chain(subject_id.as_bytes());
    for byte in bytes {
        hash ^= u32::from(*byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash % ROLLOUT_BUCKETS
}

impl<'de> Deserialize<'de> for FlagValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(deserializer)? {
            serde_json::Value::Bool(on) => Ok(FlagValue::Bool(on)),
            serde_json::Value::Null => Ok(FlagValue::Null),
            serde_json::Value::String(text) => Ok(FlagValue::Text(text)),
            serde_json::Value::Number(number) => number
                .as_f64()
                .and_then(Percent::new)
                .map(FlagValue::Percent)
                .ok_or_else(|| {
                    de::Error::custom(format!(
                        "a rollout percentage must be in 0..=100, not {number}"
                    ))
                }),
            other => Err(de::Error::custom(format!(
                "a flag is a boolean, a number, a string or null, not {}",
                json_kind(&other)
            ))),
        }
    }
}

impl Serialize for FlagValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            FlagValue::Bool(on) => serializer.serialize_bool(*on),
            FlagValue::Percent(percent) => serializer.serialize_f64(percent.as_f64()),
            FlagValue::Text(text) => serializer.serialize_str(text),
            FlagValue::Null => serializer.serialize_unit(),
        }
    }
}

impl fmt::Display for FlagValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlagValue::Bool(on) => write!(f, "{on}"),
            FlagValue::Percent(percent) => write!(f, "{}%", percent.as_f64()),
            FlagValue::Text(text) => write!(f, "{text:?}"),
            FlagValue::Null => f.write_str("null"),
        }
    }
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
        _ => "that",
    }
}
