//! [`IdempotencyStore`] on PostgreSQL, and the completion the other write methods make in their
//! own transactions.

use async_trait::async_trait;
use diesel::sql_types::{BigInt, Bytea, Nullable, SmallInt, Text, Timestamptz, Uuid as SqlUuid};
use diesel::QueryableByName;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use domain::idempotency::{
    Claim, ClaimOutcome, Completion, Fingerprint, IdempotencyScope, StoredResponse,
};
use domain::ports::{IdempotencyStore, StoreError};
use domain::Timestamp;
use uuid::Uuid;

use crate::error::{corrupt, from_diesel};
use crate::PgStore;

#[derive(QueryableByName)]
struct Found {
    #[diesel(sql_type = Bytea)]
    fingerprint: Vec<u8>,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    token: Option<Uuid>,
    #[diesel(sql_type = Nullable<SmallInt>)]
    response_status: Option<i16>,
    #[diesel(sql_type = Nullable<Bytea>)]
    response_body: Option<Vec<u8>>,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    count: i64,
}

const WHERE_SCOPE: &str = "api_key_id = $1 AND method = $2 AND route = $3 AND idempotency_key = $4";

/// Writes `done` as the record's final response if the claim is still in flight under its token.
/// Returns whether it did.
pub(crate) async fn write_completion(
    conn: &mut AsyncPgConnection,
    done: &Completion,
) -> Result<bool, diesel::result::Error> {
    let scope = &done.claim.scope;
    let status = i16::try_from(done.response.status).unwrap_or(500);
    let written = diesel::sql_query(format!(
        "UPDATE idempotency_records SET token = NULL, response_status = $6, response_body = $7, \
         expires_at = $8 WHERE {WHERE_SCOPE} AND token = $5"
    ))
    .bind::<SqlUuid, _>(scope.api_key.as_uuid())
    .bind::<Text, _>(&scope.method)
    .bind::<Text, _>(&scope.route)
    .bind::<SqlUuid, _>(scope.key.as_uuid())
    .bind::<SqlUuid, _>(done.claim.token)
    .bind::<SmallInt, _>(status)
    .bind::<Bytea, _>(&done.response.body)
    .bind::<Timestamptz, _>(done.expires_at.as_offset_datetime())
    .execute(conn)
    .await?;
    Ok(written == 1)
}

/// In an effect's transaction: completes `done` or rolls the whole transaction back.
pub(crate) async fn complete_with_effect(
    conn: &mut AsyncPgConnection,
    done: Option<&Completion>,
) -> Result<(), diesel::result::Error> {
    match done {
        None => Ok(()),
        Some(done) if write_completion(conn, done).await? => Ok(()),
        // The claim's lease ran out and another request took the key: undo the effect.
        Some(_) => Err(diesel::result::Error::RollbackTransaction),
    }
}

/// Maps the errors of a transaction that may complete an idempotency claim.
pub(crate) fn from_effect_transaction(error: diesel::result::Error) -> StoreError {
    match error {
        diesel::result::Error::RollbackTransaction => StoreError::Unavailable(
            "the idempotency claim of this request was lost; retry".to_owned(),
        ),
        other => from_diesel(other),
    }
}

#[async_trait]
impl IdempotencyStore for PgStore {
    async fn claim(
        &self,
        scope: &IdempotencyScope,
        fingerprint: Fingerprint,
        token: Uuid,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<ClaimOutcome, StoreError> {
        let mut conn = self.conn().await?;
        // One statement: insert the claim, or take over a record past its expiry (a claim in
        // flight expires at the end of its lease). Concurrent claims queue on the row.
        let claimed: Vec<Found> = diesel::sql_query(
            "INSERT INTO idempotency_records AS r \
               (api_key_id, method, route, idempotency_key, fingerprint, token, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (api_key_id, method, route, idempotency_key) DO UPDATE \
               SET fingerprint = EXCLUDED.fingerprint, token = EXCLUDED.token, \
                   response_status = NULL, response_body = NULL, expires_at = EXCLUDED.expires_at \
               WHERE r.expires_at <= $8 \
             RETURNING r.fingerprint, r.token, r.response_status, r.response_body",
        )
        .bind::<SqlUuid, _>(scope.api_key.as_uuid())
        .bind::<Text, _>(&scope.method)
        .bind::<Text, _>(&scope.route)
        .bind::<SqlUuid, _>(scope.key.as_uuid())
        .bind::<Bytea, _>(fingerprint.as_bytes().as_slice())
        .bind::<SqlUuid, _>(token)
        .bind::<Timestamptz, _>(lease_until.as_offset_datetime())
        .bind::<Timestamptz, _>(now.as_offset_datetime())
        .load(&mut conn)
        .await
        .map_err(from_diesel)?;
        if !claimed.is_empty() {
            return Ok(ClaimOutcome::Claimed(Claim {
                scope: scope.clone(),
                token,
            }));
        }
        let found: Vec<Found> = diesel::sql_query(format!(
            "SELECT fingerprint, token, response_status, response_body FROM idempotency_records \
             WHERE {WHERE_SCOPE}"
        ))
        .bind::<SqlUuid, _>(scope.api_key.as_uuid())
        .bind::<Text, _>(&scope.method)
        .bind::<Text, _>(&scope.route)
        .bind::<SqlUuid, _>(scope.key.as_uuid())
        .load(&mut conn)
        .await
        .map_err(from_diesel)?;
        let Some(record) = found.into_iter().next() else {
            // Released between the two statements: the other request is about to retry.
            return Ok(ClaimOutcome::InFlight);
        };
        if record.fingerprint.as_slice() != fingerprint.as_bytes() {
            return Ok(ClaimOutcome::Mismatch);
        }
        match (record.token, record.response_status, record.response_body) {
            (Some(_), _, _) => Ok(ClaimOutcome::InFlight),
            (None, Some(status), Some(body)) => Ok(ClaimOutcome::Replay(StoredResponse {
                status: u16::try_from(status).map_err(|_| corrupt("response status", status))?,
                body,
            })),
            _ => Err(corrupt("idempotency record", "neither in flight nor done")),
        }
    }

    async fn complete(&self, completion: &Completion) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        write_completion(&mut conn, completion)
            .await
            .map(drop)
            .map_err(from_diesel)
    }

    async fn release(&self, claim: &Claim) -> Result<(), StoreError> {
        let scope = &claim.scope;
        let mut conn = self.conn().await?;
        diesel::sql_query(format!(
            "DELETE FROM idempotency_records WHERE {WHERE_SCOPE} AND token = $5"
        ))
        .bind::<SqlUuid, _>(scope.api_key.as_uuid())
        .bind::<Text, _>(&scope.method)
        .bind::<Text, _>(&scope.route)
        .bind::<SqlUuid, _>(scope.key.as_uuid())
        .bind::<SqlUuid, _>(claim.token)
        .execute(&mut conn)
        .await
        .map(drop)
        .map_err(from_diesel)
    }

    async fn purge_expired(&self, now: Timestamp) -> Result<u64, StoreError> {
        let mut conn = self.conn().await?;
        let purged: Vec<Count> = diesel::sql_query(
            "WITH purged AS (DELETE FROM idempotency_records WHERE expires_at <= $1 RETURNING 1) \
             SELECT count(*) AS count FROM purged",
        )
        .bind::<Timestamptz, _>(now.as_offset_datetime())
        .load(&mut conn)
        .await
        .map_err(from_diesel)?;
        let count = purged.first().map_or(0, |c| c.count);
        u64::try_from(count).map_err(|_| corrupt("purged count", count))
    }
}
