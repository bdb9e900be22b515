//! Idempotency records (Stripe semantics): the first response to a key is
//! stored in the same transaction as the write it answers, and replayed for
//! retries; the same key with another request is refused.

use tokio_postgres::types::Type;

use crate::db::{DbError, Statement, Tx};

/// A response stored under a key.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredResponse {
    pub fingerprint: String,
    pub status: u16,
    pub headers: serde_json::Value,
    pub body: Vec<u8>,
}

/// Serializes requests that share a subject and key until the first commits,
/// so a concurrent retry finds the stored answer instead of racing the write.
const LOCK_KEY: Statement = Statement::new(
    "select pg_advisory_xact_lock(hashtextextended(onboarding.current_subject() || ':' || $1, 0))",
    &[Type::TEXT],
);

const FIND: Statement = Statement::new(
    "select request_fingerprint, response_status, response_headers, response_body
     from onboarding.idempotency_keys
     where subject = onboarding.current_subject() and key = $1 and expires_at > now()",
    &[Type::TEXT],
);

/// Inserts the record, or takes over an expired one; returns no row when a
/// live record with the key exists (a concurrent request stored it first).
const STORE: Statement = Statement::new(
    "insert into onboarding.idempotency_keys
       (subject, key, request_method, request_path, request_fingerprint,
        response_status, response_headers, response_body)
     values (onboarding.current_subject(), $1, $2, $3, $4, $5, $6, $7)
     on conflict (subject, key) do update
       set request_method = excluded.request_method, request_path = excluded.request_path,
           request_fingerprint = excluded.request_fingerprint, response_status = excluded.response_status,
           response_headers = excluded.response_headers, response_body = excluded.response_body,
           expires_at = now() + interval '24 hours', created_at = now()
       where onboarding.idempotency_keys.expires_at <= now()
     returning key",
    &[Type::TEXT, Type::TEXT, Type::TEXT, Type::TEXT, Type::INT2, Type::JSONB, Type::BYTEA],
);

/// Holds the key until the transaction ends.
pub async fn lock(tx: &Tx<'_>, key: &str) -> Result<(), DbError> {
    tx.query(&LOCK_KEY, &[&key]).await?;
    Ok(())
}

pub async fn find(tx: &Tx<'_>, key: &str) -> Result<Option<StoredResponse>, DbError> {
    Ok(tx
        .query_opt(&FIND, &[&key])
        .await?
        .map(|row| StoredResponse {
            fingerprint: row.get(0),
            status: row.get::<_, i16>(1) as u16,
            headers: row.get(2),
            body: row.get(3),
        }))
}

/// Stores the response; `false` when another request stored one first.
pub async fn store(
    tx: &Tx<'_>,
    key: &str,
    method: &str,
    path: &str,
    response: &StoredResponse,
) -> Result<bool, DbError> {
    let status = response.status as i16;
    Ok(!tx
        .query(
            &STORE,
            &[
                &key,
                &method,
                &path,
                &response.fingerprint,
                &status,
                &response.headers,
                &response.body,
            ],
        )
        .await?
        .is_empty())
}
