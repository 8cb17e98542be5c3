//! [`CreditStore`] on PostgreSQL: wallets and the append-only ledger, always written together in
//! one transaction. Wallet rows are locked (`FOR UPDATE`) in id order, so concurrent moves
//! between the same wallets queue instead of deadlocking, and never overdraw.

use std::collections::BTreeMap;

use async_trait::async_trait;
use diesel::prelude::{
    BoolExpressionMethods, ExpressionMethods, Insertable, OptionalExtension, QueryDsl, Queryable,
    Selectable, SelectableHelper,
};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use domain::credits::{
    CreditConfig, Finish, LedgerEntry, LedgerEvent, LedgerEventId, LedgerEventType, LedgerFilter,
    Reservation, ReservationId, ReservationStatus, TransferId, Wallet,
};
use domain::idempotency::{Completion, PendingCompletion};
use domain::jobs::{Job, JobId, EXPIRE_RESERVATION};
use domain::organization::Metadata;
use domain::pagination::PageRequest;
use domain::ports::{Allocation, CreditStore, Reclaim, Reserve, StoreError};
use domain::trail::Trail;
use domain::{OrganizationId, Timestamp};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::{corrupt, from_diesel};
use crate::idempotency::{complete_with_effect, from_effect_transaction};
use crate::schema::{ledger_events, reservations, wallets};
use crate::{sql_limit, PgStore};

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = ledger_events, check_for_backend(diesel::pg::Pg))]
struct LedgerRow {
    id: Uuid,
    organization_id: Uuid,
    event_type: String,
    credits: i64,
    balance_after: i64,
    transfer_id: Option<Uuid>,
    description: Option<String>,
    metadata: serde_json::Value,
    created_at: OffsetDateTime,
    reservation_id: Option<Uuid>,
}

impl LedgerRow {
    fn into_domain(self) -> Result<LedgerEvent, StoreError> {
        let pairs: BTreeMap<String, String> =
            serde_json::from_value(self.metadata).map_err(|e| corrupt("ledger metadata", e))?;
        Ok(LedgerEvent {
            entry: LedgerEntry {
                id: LedgerEventId::from_uuid(self.id),
                organization_id: OrganizationId::from_uuid(self.organization_id),
                event_type: self
                    .event_type
                    .parse::<LedgerEventType>()
                    .map_err(|()| corrupt("ledger event type", &self.event_type))?,
                credits: self.credits,
                transfer_id: self.transfer_id.map(TransferId::from_uuid),
                reservation_id: self.reservation_id.map(ReservationId::from_uuid),
                description: self.description,
                metadata: Metadata::from_stored(pairs),
                created_at: Timestamp::from_offset_datetime(self.created_at),
            },
            balance_after: u64::try_from(self.balance_after)
                .map_err(|_| corrupt("balance", self.balance_after))?,
        })
    }
}

fn wallet_of(id: Uuid, balance: i64, reserved: i64) -> Result<Wallet, StoreError> {
    Ok(Wallet {
        organization_id: OrganizationId::from_uuid(id),
        balance: u64::try_from(balance).map_err(|_| corrupt("wallet balance", balance))?,
        reserved: u64::try_from(reserved).map_err(|_| corrupt("wallet reservation", reserved))?,
    })
}

/// Locks the wallets of `ids` (creating empty ones), in id order; returns (balance, reserved).
async fn lock_wallets(
    conn: &mut AsyncPgConnection,
    ids: &[Uuid],
) -> Result<BTreeMap<Uuid, (i64, i64)>, diesel::result::Error> {
    let mut sorted = ids.to_vec();
    sorted.sort();
    sorted.dedup();
    let mut locked = BTreeMap::new();
    for id in sorted {
        diesel::insert_into(wallets::table)
            .values(wallets::organization_id.eq(id))
            .on_conflict_do_nothing()
            .execute(conn)
            .await?;
        let row: (i64, i64) = wallets::table
            .find(id)
            .select((wallets::balance, wallets::reserved))
            .for_update()
            .first(conn)
            .await?;
        locked.insert(id, row);
    }
    Ok(locked)
}

/// Appends `entry`, moving its wallet's balance (already locked) by its credits.
async fn record(
    conn: &mut AsyncPgConnection,
    entry: &LedgerEntry,
) -> Result<i64, diesel::result::Error> {
    let organization = entry.organization_id.as_uuid();
    let balance: i64 = diesel::update(wallets::table.find(organization))
        .set(wallets::balance.eq(wallets::balance + entry.credits))
        .returning(wallets::balance)
        .get_result(conn)
        .await?;
    let metadata = serde_json::to_value(entry.metadata.pairs()).unwrap_or_default();
    diesel::insert_into(ledger_events::table)
        .values(LedgerRow {
            id: entry.id.as_uuid(),
            organization_id: organization,
            event_type: entry.event_type.as_str().to_owned(),
            credits: entry.credits,
            balance_after: balance,
            transfer_id: entry.transfer_id.map(|t| t.as_uuid()),
            description: entry.description.clone(),
            metadata,
            created_at: entry.created_at.as_offset_datetime(),
            reservation_id: entry.reservation_id.map(|r| r.as_uuid()),
        })
        .execute(conn)
        .await?;
    Ok(balance)
}

/// In an archive's transaction: moves the child's unreserved credits to its parent.
pub(crate) async fn sweep(
    conn: &mut AsyncPgConnection,
    child: Uuid,
    parent: Uuid,
    reclaim: Reclaim,
    at: OffsetDateTime,
) -> Result<u64, diesel::result::Error> {
    let locked = lock_wallets(conn, &[child, parent]).await?;
    let (balance, reserved) = locked.get(&child).copied().unwrap_or((0, 0));
    let amount = balance - reserved;
    if amount <= 0 {
        return Ok(0);
    }
    let entry = |id: LedgerEventId, organization: Uuid, credits: i64| LedgerEntry {
        id,
        organization_id: OrganizationId::from_uuid(organization),
        event_type: LedgerEventType::Reclaim,
        credits,
        transfer_id: Some(reclaim.transfer_id),
        reservation_id: None,
        description: None,
        metadata: Metadata::default(),
        created_at: Timestamp::from_offset_datetime(at),
    };
    record(conn, &entry(reclaim.child_event, child, -amount)).await?;
    record(conn, &entry(reclaim.parent_event, parent, amount)).await?;
    Ok(u64::try_from(amount).unwrap_or(0))
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = reservations, check_for_backend(diesel::pg::Pg))]
struct ReservationRow {
    id: Uuid,
    organization_id: Uuid,
    credits: i64,
    status: String,
    settled_credits: Option<i64>,
    finished_at: Option<OffsetDateTime>,
    description: Option<String>,
    expires_at: OffsetDateTime,
    created_at: OffsetDateTime,
}

impl ReservationRow {
    fn from_domain(r: &Reservation) -> Self {
        let (settled_credits, finished_at) = match r.status {
            ReservationStatus::Held => (None, None),
            ReservationStatus::Settled { at, credits } => {
                (Some(i64::try_from(credits).unwrap_or(i64::MAX)), Some(at))
            }
            ReservationStatus::Released { at } | ReservationStatus::Expired { at } => {
                (None, Some(at))
            }
        };
        Self {
            id: r.id.as_uuid(),
            organization_id: r.organization_id.as_uuid(),
            credits: i64::try_from(r.credits).unwrap_or(i64::MAX),
            status: r.status.as_str().to_owned(),
            settled_credits,
            finished_at: finished_at.map(|t| t.as_offset_datetime()),
            description: r.description.clone(),
            expires_at: r.expires_at.as_offset_datetime(),
            created_at: r.created_at.as_offset_datetime(),
        }
    }

    fn into_domain(self) -> Result<Reservation, StoreError> {
        let at = self.finished_at.map(Timestamp::from_offset_datetime);
        let status = match (self.status.as_str(), at, self.settled_credits) {
            ("held", None, None) => ReservationStatus::Held,
            ("settled", Some(at), Some(credits)) => ReservationStatus::Settled {
                at,
                credits: u64::try_from(credits).map_err(|_| corrupt("settled credits", credits))?,
            },
            ("released", Some(at), None) => ReservationStatus::Released { at },
            ("expired", Some(at), None) => ReservationStatus::Expired { at },
            _ => return Err(corrupt("reservation status", &self.status)),
        };
        Ok(Reservation {
            id: ReservationId::from_uuid(self.id),
            organization_id: OrganizationId::from_uuid(self.organization_id),
            credits: u64::try_from(self.credits)
                .map_err(|_| corrupt("reserved credits", self.credits))?,
            status,
            description: self.description,
            expires_at: Timestamp::from_offset_datetime(self.expires_at),
            created_at: Timestamp::from_offset_datetime(self.created_at),
        })
    }
}

#[async_trait]
impl CreditStore for PgStore {
    async fn wallet(&self, organization: OrganizationId) -> Result<Wallet, StoreError> {
        let mut conn = self.conn().await?;
        let row: Option<(i64, i64)> = wallets::table
            .find(organization.as_uuid())
            .select((wallets::balance, wallets::reserved))
            .first(&mut conn)
            .await
            .optional()
            .map_err(from_diesel)?;
        match row {
            Some((balance, reserved)) => wallet_of(organization.as_uuid(), balance, reserved),
            None => Ok(Wallet::empty(organization)),
        }
    }

    async fn grant(&self, entry: LedgerEntry, trail: &Trail) -> Result<LedgerEvent, StoreError> {
        let mut conn = self.conn().await?;
        let balance = conn
            .transaction(async |conn| {
                lock_wallets(conn, &[entry.organization_id.as_uuid()]).await?;
                let balance = record(conn, &entry).await?;
                crate::trail::write(conn, trail).await?;
                Ok(balance)
            })
            .await
            .map_err(from_diesel)?;
        Ok(LedgerEvent {
            entry,
            balance_after: u64::try_from(balance).map_err(|_| corrupt("balance", balance))?,
        })
    }

    async fn allocate(
        &self,
        debit: LedgerEntry,
        credit: LedgerEntry,
        trail: &Trail,
        done: Option<PendingCompletion<Wallet>>,
    ) -> Result<Allocation, StoreError> {
        let (parent, child) = (
            debit.organization_id.as_uuid(),
            credit.organization_id.as_uuid(),
        );
        let mut conn = self.conn().await?;
        conn.transaction(async |conn| {
            // Under the child's status latch: an archive waits for us, or we see it.
            let child_status = crate::status_latch::share(conn, child)
                .await?
                .map(|s| s.status);
            if matches!(child_status.as_deref(), None | Some("archived")) {
                return Ok(Allocation::ChildClosed);
            }
            let locked = lock_wallets(conn, &[parent, child]).await?;
            let (balance, reserved) = locked.get(&parent).copied().unwrap_or((0, 0));
            let available = u64::try_from(balance - reserved).unwrap_or(0);
            if available < debit.credits.unsigned_abs() {
                return Ok(Allocation::InsufficientFunds { available });
            }
            record(conn, &debit).await?;
            let child_after = record(conn, &credit).await?;
            let (_, child_reserved) = locked.get(&child).copied().unwrap_or((0, 0));
            // Both balances are kept non-negative by the table's constraints.
            let child_wallet = Wallet {
                organization_id: credit.organization_id,
                balance: u64::try_from(child_after).unwrap_or(0),
                reserved: u64::try_from(child_reserved).unwrap_or(0),
            };
            crate::trail::write(conn, trail).await?;
            let completion = done.as_ref().map(|d| d.resolve(&child_wallet));
            complete_with_effect(conn, completion.as_ref()).await?;
            Ok(Allocation::Applied { child_wallet })
        })
        .await
        .map_err(from_effect_transaction)
    }

    async fn ledger(
        &self,
        organization: OrganizationId,
        filter: LedgerFilter,
        page: PageRequest,
    ) -> Result<Vec<LedgerEvent>, StoreError> {
        use ledger_events::dsl;
        let mut query = ledger_events::table
            .filter(dsl::organization_id.eq(organization.as_uuid()))
            .select(LedgerRow::as_select())
            .into_boxed();
        if let Some(event_type) = filter.event_type {
            query = query.filter(dsl::event_type.eq(event_type.as_str()));
        }
        if let Some(since) = filter.since {
            query = query.filter(dsl::created_at.ge(since.as_offset_datetime()));
        }
        if let Some(until) = filter.until {
            query = query.filter(dsl::created_at.le(until.as_offset_datetime()));
        }
        query = strictly_after!(query, page.after, dsl::created_at, dsl::id);
        let mut conn = self.conn().await?;
        query
            .order((dsl::created_at.desc(), dsl::id.desc()))
            .limit(sql_limit(page.limit))
            .load(&mut conn)
            .await
            .map_err(from_diesel)?
            .into_iter()
            .map(LedgerRow::into_domain)
            .collect()
    }

    async fn reserve(
        &self,
        reservation: Reservation,
        expiry: JobId,
        month: (Timestamp, Timestamp),
        trail: &Trail,
        done: Option<Completion>,
    ) -> Result<Reserve, StoreError> {
        let row = ReservationRow::from_domain(&reservation);
        let organization = reservation.organization_id.as_uuid();
        let mut conn = self.conn().await?;
        conn.transaction(async |conn| {
            // Under the status latch of the organization and its parent: a suspend of either has
            // committed (and refuses this) or waits for this reservation — never both, and never
            // starved by a stream of reservations.
            let Some(statuses) = crate::status_latch::share(conn, organization).await? else {
                return Ok(Reserve::Closed);
            };
            if statuses.status == "archived" {
                return Ok(Reserve::Closed);
            }
            if statuses.suspended() {
                return Ok(Reserve::Suspended);
            }
            let locked = lock_wallets(conn, &[organization]).await?;
            let (balance, reserved) = locked.get(&organization).copied().unwrap_or((0, 0));
            let available = u64::try_from(balance - reserved).unwrap_or(0);
            if available < reservation.credits {
                return Ok(Reserve::InsufficientFunds { available });
            }
            let cap: Option<i64> = wallets::table
                .find(organization)
                .select(wallets::monthly_credit_cap)
                .first(conn)
                .await?;
            if let Some(cap) = cap {
                let spent = spent_between(conn, organization, month.0, month.1).await?;
                let committed = spent + reserved;
                if committed + row.credits > cap {
                    return Ok(Reserve::MonthlyCap {
                        cap: u64::try_from(cap).unwrap_or(0),
                        committed: u64::try_from(committed).unwrap_or(0),
                    });
                }
            }
            diesel::update(wallets::table.find(organization))
                .set(wallets::reserved.eq(wallets::reserved + row.credits))
                .execute(conn)
                .await?;
            diesel::insert_into(reservations::table)
                .values(&row)
                .execute(conn)
                .await?;
            let job = Job {
                id: expiry,
                organization_id: Some(reservation.organization_id),
                kind: EXPIRE_RESERVATION.to_owned(),
                payload: reservation.id.to_string(),
                run_at: reservation.expires_at,
                attempts: 0,
                queue: None,
            };
            crate::jobs::enqueue_with(conn, &job).await?;
            crate::trail::write(conn, trail).await?;
            complete_with_effect(conn, done.as_ref()).await?;
            Ok(Reserve::Held)
        })
        .await
        .map_err(from_effect_transaction)
    }

    async fn credit_config(
        &self,
        organization: OrganizationId,
    ) -> Result<CreditConfig, StoreError> {
        let mut conn = self.conn().await?;
        let row: Option<(Option<i64>, Option<i64>, Option<i64>, bool)> = wallets::table
            .find(organization.as_uuid())
            .select((
                wallets::monthly_credit_cap,
                wallets::refill_threshold,
                wallets::refill_amount,
                wallets::auto_refill_enabled,
            ))
            .first(&mut conn)
            .await
            .optional()
            .map_err(from_diesel)?;
        let Some((cap, threshold, amount, enabled)) = row else {
            return Ok(CreditConfig::default());
        };
        let credits = |n: Option<i64>| {
            n.map(|n| u64::try_from(n).map_err(|_| corrupt("credit config", n)))
                .transpose()
        };
        Ok(CreditConfig {
            monthly_credit_cap: credits(cap)?,
            refill_threshold: credits(threshold)?,
            refill_amount: credits(amount)?,
            auto_refill_enabled: enabled,
        })
    }

    async fn set_credit_config(
        &self,
        organization: OrganizationId,
        config: CreditConfig,
        trail: &Trail,
    ) -> Result<(), StoreError> {
        let id = organization.as_uuid();
        let signed = |n: Option<u64>| n.map(|n| i64::try_from(n).unwrap_or(i64::MAX));
        let mut conn = self.conn().await?;
        conn.transaction(async |conn| {
            lock_wallets(conn, &[id]).await?;
            diesel::update(wallets::table.find(id))
                .set((
                    wallets::monthly_credit_cap.eq(signed(config.monthly_credit_cap)),
                    wallets::refill_threshold.eq(signed(config.refill_threshold)),
                    wallets::refill_amount.eq(signed(config.refill_amount)),
                    wallets::auto_refill_enabled.eq(config.auto_refill_enabled),
                ))
                .execute(conn)
                .await?;
            crate::trail::write(conn, trail).await
        })
        .await
        .map_err(from_diesel)
    }

    async fn find_reservation(&self, id: ReservationId) -> Result<Option<Reservation>, StoreError> {
        let mut conn = self.conn().await?;
        reservations::table
            .find(id.as_uuid())
            .select(ReservationRow::as_select())
            .first(&mut conn)
            .await
            .optional()
            .map_err(from_diesel)?
            .map(ReservationRow::into_domain)
            .transpose()
    }

    async fn finish_reservation(
        &self,
        id: ReservationId,
        finish: Finish,
        at: Timestamp,
        usage: LedgerEventId,
        reclaim: Reclaim,
        trail: &Trail,
    ) -> Result<Option<Reservation>, StoreError> {
        let mut conn = self.conn().await?;
        let row: Option<ReservationRow> = conn
            .transaction(async |conn| {
                let Some(row) = reservations::table
                    .find(id.as_uuid())
                    .select(ReservationRow::as_select())
                    .for_update()
                    .first(conn)
                    .await
                    .optional()?
                else {
                    return Ok(None);
                };
                if row.status != "held" {
                    return Ok(Some(row));
                }
                let organization = row.organization_id;
                let sweep_to = crate::status_latch::share(conn, organization)
                    .await?
                    .filter(|s| s.status == "archived")
                    .and_then(|s| s.parent);
                let mut owners = vec![organization];
                owners.extend(sweep_to);
                lock_wallets(conn, &owners).await?;
                diesel::update(wallets::table.find(organization))
                    .set(wallets::reserved.eq(wallets::reserved - row.credits))
                    .execute(conn)
                    .await?;
                let (status, spent) = match finish {
                    Finish::Settle { credits } => ("settled", i64::try_from(credits).unwrap_or(0)),
                    Finish::Release => ("released", 0),
                    Finish::Expire => ("expired", 0),
                };
                // Every event a reservation's end writes names it (API.md §6.3).
                let entry =
                    |event, organization: Uuid, event_type, credits, transfer_id| LedgerEntry {
                        id: event,
                        organization_id: OrganizationId::from_uuid(organization),
                        event_type,
                        credits,
                        transfer_id,
                        reservation_id: Some(id),
                        description: row.description.clone(),
                        metadata: Metadata::default(),
                        created_at: at,
                    };
                if spent > 0 {
                    record(
                        conn,
                        &entry(usage, organization, LedgerEventType::Usage, -spent, None),
                    )
                    .await?;
                }
                // Reserved at archive time, released now: the rest goes to the parent (§4.9).
                let rest = row.credits - spent;
                let mut swept = 0;
                if let (Some(parent), true) = (sweep_to, rest > 0) {
                    swept = u64::try_from(rest).unwrap_or(0);
                    let transfer = Some(reclaim.transfer_id);
                    record(
                        conn,
                        &entry(
                            reclaim.child_event,
                            organization,
                            LedgerEventType::Reclaim,
                            -rest,
                            transfer,
                        ),
                    )
                    .await?;
                    record(
                        conn,
                        &entry(
                            reclaim.parent_event,
                            parent,
                            LedgerEventType::Reclaim,
                            rest,
                            transfer,
                        ),
                    )
                    .await?;
                }
                let finished: ReservationRow = diesel::update(reservations::table.find(row.id))
                    .set((
                        reservations::status.eq(status),
                        reservations::settled_credits.eq((status == "settled").then_some(spent)),
                        reservations::finished_at.eq(Some(at.as_offset_datetime())),
                    ))
                    .returning(ReservationRow::as_returning())
                    .get_result(conn)
                    .await?;
                crate::trail::write(conn, &trail.resolved(swept)).await?;
                Ok(Some(finished))
            })
            .await
            .map_err(from_diesel)?;
        row.map(ReservationRow::into_domain).transpose()
    }

    async fn usage_between(
        &self,
        organization: OrganizationId,
        start: Timestamp,
        end: Timestamp,
    ) -> Result<u64, StoreError> {
        let mut conn = self.conn().await?;
        let spent = spent_between(&mut conn, organization.as_uuid(), start, end)
            .await
            .map_err(from_diesel)?;
        u64::try_from(spent).map_err(|_| corrupt("credits spent", spent))
    }
}

/// Credits the organization spent (`usage` events) in `[start, end)`.
async fn spent_between(
    conn: &mut AsyncPgConnection,
    organization: Uuid,
    start: Timestamp,
    end: Timestamp,
) -> Result<i64, diesel::result::Error> {
    let spent: Vec<Spent> = diesel::sql_query(
        "SELECT COALESCE(SUM(-credits), 0)::bigint AS spent FROM ledger_events \
         WHERE organization_id = $1 AND event_type = 'usage' AND created_at >= $2 AND created_at < $3",
    )
    .bind::<diesel::sql_types::Uuid, _>(organization)
    .bind::<diesel::sql_types::Timestamptz, _>(start.as_offset_datetime())
    .bind::<diesel::sql_types::Timestamptz, _>(end.as_offset_datetime())
    .load(conn)
    .await?;
    Ok(spent.first().map_or(0, |s| s.spent))
}

#[derive(diesel::QueryableByName)]
struct Spent {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    spent: i64,
}
