//! The runtime's floor: `vercel_runtime::run`, the loop every function
//! binary is served by, answering a constant status body with none of the
//! library's code behind it. Under the same load as the status miss, its CPU
//! per request is what hyper's HTTP/1 and the kernel's loopback TCP cost any
//! function on Vercel's Rust runtime on this machine; the status function's
//! CPU above it is the library's own (routing, the token, the database
//! client, the JSON, the log line).
//!
//! The benchmark serves it from its own executable, started like a function
//! binary with [`SERVE`] set, on one thread as the functions run.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::functions::Environment;

/// Set in the environment of the benchmark's own executable to make it serve
/// the floor instead of running the benchmark.
pub const SERVE: &str = "BENCH_SERVE_RUNTIME_FLOOR";

/// The body the status route answered a seeded user (`profile` completed,
/// at `organization`) when the floor was added, byte for byte: a reply of
/// the same size, not a check of the route's.
const STATUS_BODY: &[u8] = br#"{"authenticated":true,"state":"in_progress","currentStep":"organization","completedSteps":["profile"],"nextStep":"organization","progress":{"completed":1,"total":6,"percent":16},"flowId":"default","flowVersion":1,"redirectTo":"/onboarding/organization"}"#;

/// Serves the constant answer on `VERCEL_DEV_PORT` until terminated.
pub fn serve() -> Result<(), vercel_runtime::Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(vercel_runtime::run(ConstantStatus))
}

#[derive(Clone)]
struct ConstantStatus;

type Incoming = hyper::Request<hyper::body::Incoming>;

impl tower::Service<(vercel_runtime::AppState, Incoming)> for ConstantStatus {
    type Response = hyper::Response<vercel_runtime::ResponseBody>;
    type Error = vercel_runtime::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: (vercel_runtime::AppState, Incoming)) -> Self::Future {
        Box::pin(async {
            Ok(hyper::Response::builder()
                .header(hyper::header::CONTENT_TYPE, "application/json")
                .body(bytes::Bytes::from_static(STATUS_BODY).into())?)
        })
    }
}

/// The environment the floor is started with: only [`SERVE`].
pub struct FloorEnv<'a> {
    pub logs: &'a Path,
}

impl Environment for FloorEnv<'_> {
    fn vars(&self) -> Vec<(String, String)> {
        vec![(SERVE.into(), "1".into())]
    }
    fn logs(&self) -> &Path {
        self.logs
    }
}
