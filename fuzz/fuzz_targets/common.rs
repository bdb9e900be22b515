//! What the auth targets share: one runtime, and an authenticator from a
//! fixed set of variables.

use std::sync::LazyLock;

use onboarding::auth::{AuthSettings, Authenticator};
use onboarding::settings::Profile;

pub static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime")
});

/// The authenticator configured by `variables` (deployed profile: nothing
/// falls back to the local defaults).
pub fn authenticator(variables: &[(&str, &str)]) -> Authenticator {
    let lookup = |name: &str| {
        variables
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.to_string())
    };
    let settings =
        AuthSettings::from_lookup(&lookup, Profile::Deployed).expect("valid fuzz auth settings");
    Authenticator::new(settings, reqwest::Client::new())
}
