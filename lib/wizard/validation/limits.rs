//! The size limits every submission is held to before any field is looked at,
//! so hostile input (deep nesting, huge arrays) costs neither stack nor time.

use serde_json::{Value, json};

use super::errors::{ErrorCode, ValidationErrors};

/// Deepest accepted nesting (the answer object is depth 1; valid answers need 3).
pub const MAX_DEPTH: usize = 8;
/// Most JSON values (objects, arrays, scalars) accepted in one step's answers.
pub const MAX_NODES: usize = 10_000;

/// `too_deep` past [`MAX_DEPTH`], `too_large` past [`MAX_NODES`].
pub(super) fn check_limits(raw: &Value) -> Result<(), ValidationErrors> {
    // Iterative on purpose: hostile input must not be able to overflow the stack.
    let mut stack: Vec<(&Value, usize)> = vec![(raw, 1)];
    let mut nodes = 1usize;
    while let Some((value, depth)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match value {
            Value::Array(items) => Box::new(items.iter()),
            Value::Object(map) => Box::new(map.values()),
            _ => continue,
        };
        let (count, _) = children.size_hint();
        if count == 0 {
            continue;
        }
        if depth + 1 > MAX_DEPTH {
            return Err(ValidationErrors::single(
                String::new(),
                ErrorCode::TooDeep,
                format!("nested deeper than {MAX_DEPTH} levels"),
                Some(json!(MAX_DEPTH)),
            ));
        }
        nodes = nodes.saturating_add(count);
        if nodes > MAX_NODES {
            return Err(ValidationErrors::single(
                String::new(),
                ErrorCode::TooLarge,
                format!("more than {MAX_NODES} values"),
                Some(json!(MAX_NODES)),
            ));
        }
        stack.extend(children.map(|child| (child, depth + 1)));
    }
    Ok(())
}
