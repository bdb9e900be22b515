//! Property test: arbitrary header values never make `detect` panic.

use http::{HeaderMap, HeaderName, HeaderValue};
use proptest::prelude::*;

use super::*;

fn header_name() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just("authorization"),
        Just("cookie"),
        Just("x-onboarding-session"),
        Just("x-other"),
    ]
}

fn header_bytes() -> impl Strategy<Value = Vec<u8>> {
    let prefix = prop_oneof![
        Just(b"".to_vec()),
        Just(b"Bearer ".to_vec()),
        Just(b"Bearer eyJhbGciOiJIUzI1NiJ9.".to_vec()),
        Just(b"sb-x-auth-token=base64-".to_vec()),
        Just(b"sb-x-auth-token.0=".to_vec()),
        Just(b"onboarding_session=".to_vec()),
        Just(b"__session=".to_vec()),
    ];
    (prefix, proptest::collection::vec(any::<u8>(), 0..300)).prop_map(|(mut p, rest)| {
        p.extend(rest);
        p
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_header_values_never_panic_detect(
        pairs in proptest::collection::vec((header_name(), header_bytes()), 0..6)
    ) {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            // Only values http can represent reach a real handler.
            if let Ok(value) = HeaderValue::from_bytes(&value) {
                map.append(HeaderName::from_static(name), value);
            }
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        for auth in [supabase(), clerk_cookie_hs()] {
            // Any Result is fine; only a panic fails.
            let _ = runtime.block_on(auth.detect(&map));
        }
    }
}

fn supabase() -> Authenticator {
    authenticator(
        settings(&[
            ("AUTH_PROVIDER", "supabase"),
            ("AUTH_JWT_SECRET", HS_SECRET),
        ])
        .expect("settings"),
    )
}

/// HS256 with a plain JWT cookie, to exercise that path without a JWKS.
fn clerk_cookie_hs() -> Authenticator {
    authenticator(
        settings(&[
            ("AUTH_JWT_SECRET", HS_SECRET),
            ("AUTH_COOKIE_NAME", "__session"),
        ])
        .expect("settings"),
    )
}
