//! Integration tests against the real PostgreSQL and Redis on this machine.
//! One binary, so the crate is linked once; each test gets its own database.

mod support;

mod ai;
mod batched_reads;
mod cache;
mod catalog;
mod connections;
mod contract;
mod erasure;
mod events;
mod functions;
mod health;
mod hostile;
mod isolation;
#[cfg(feature = "lambda")]
mod lambda;
mod library;
mod migrations;
mod monitoring;
mod openapi;
mod outbox;
mod pooler;
mod retention;
mod round_trips;
mod tls;
mod wizard;
