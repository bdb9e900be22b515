//! The flow, validation and transform library, checked from outside: the
//! exported JSON Schema against the validator, and properties over generated input.

mod agreement;
mod corpus;
mod properties;
