//! JSON body parsing (`parse_json`) into the shapes the routes take: any bytes
//! are a value, a 400 (syntax) or a 422 (shape), never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use onboarding::http::extract::parse_json;
use onboarding::routes::events::Batch;
use onboarding::routes::steps::SaveBody;

fn check<T: serde::de::DeserializeOwned>(data: &[u8]) {
    if let Err(error) = parse_json::<T>(data) {
        let status = error.status().as_u16();
        assert!(status == 400 || status == 422, "status {status}: {error:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    check::<serde_json::Value>(data);
    check::<SaveBody>(data);
    check::<Batch>(data);
    check::<serde_json::Map<String, serde_json::Value>>(data);
});
