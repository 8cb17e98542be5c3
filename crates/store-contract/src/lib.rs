//! The port-contract suite: every promise of `domain::ports::{OrganizationStore, ApiKeyStore}`,
//! written once as async cases and run against every store adapter.
//!
//! An adapter's test file supplies a factory — an expression evaluating to a future of
//! [`Stores`], evaluated afresh for every case — and invokes the macro:
//!
//! ```text
//! async fn stores() -> store_contract::Stores {
//!     store_contract::Stores::new(std::sync::Arc::new(MyStore::new()))
//! }
//! store_contract::store_contract_tests!(stores());
//! ```
//!
//! That expands into a module `port_contract` with one `#[tokio::test]` per case (the racing
//! cases on a multi-thread runtime), so the calling crate needs `tokio` (with `macros` and
//! `rt-multi-thread`) among its dev-dependencies. The cases are also public in [`cases`], for an
//! adapter that wants to call one directly.

// This crate is test code: a failed expectation should panic with the value that failed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod cases;
pub mod credits;
pub mod fixtures;
pub mod idempotency;
pub mod jobs;
pub mod key_lifecycle;
pub mod reservations;
pub mod trails;

use std::any::Any;
use std::sync::Arc;

use domain::ports::{
    ApiKeyStore, AuditLog, CreditStore, IdempotencyStore, JobQueue, OrganizationStore, WebhookStore,
};

/// Both ports of ONE store, plus whatever must live as long as the test (a test database).
pub struct Stores {
    pub organizations: Arc<dyn OrganizationStore>,
    pub api_keys: Arc<dyn ApiKeyStore>,
    pub idempotency: Arc<dyn IdempotencyStore>,
    pub credits: Arc<dyn CreditStore>,
    pub jobs: Arc<dyn JobQueue>,
    pub audit: Arc<dyn AuditLog>,
    pub webhooks: Arc<dyn WebhookStore>,
    // Declared last: dropped after the ports.
    _guard: Option<Box<dyn Any + Send + Sync>>,
}

impl Stores {
    /// Both ports of `store`.
    pub fn new<S>(store: Arc<S>) -> Self
    where
        S: AllPorts,
    {
        Self {
            organizations: store.clone(),
            api_keys: store.clone(),
            idempotency: store.clone(),
            credits: store.clone(),
            jobs: store.clone(),
            audit: store.clone(),
            webhooks: store,
            _guard: None,
        }
    }

    /// Two instances of one store — e.g. two connection pools on one database, standing for two
    /// server processes: organizations through `first`, every other port through `second`,
    /// keeping `guard` alive.
    pub fn across<S, G>(first: Arc<S>, second: Arc<S>, guard: G) -> Self
    where
        S: AllPorts,
        G: Send + Sync + 'static,
    {
        Self {
            organizations: first,
            _guard: Some(Box::new(guard)),
            ..Self::new(second)
        }
    }

    /// Both ports of `store`, keeping `guard` alive until the test ends (e.g. the test database
    /// the store runs on, which is dropped with it).
    pub fn with_guard<S, G>(store: Arc<S>, guard: G) -> Self
    where
        S: AllPorts,
        G: Send + Sync + 'static,
    {
        Self {
            _guard: Some(Box::new(guard)),
            ..Self::new(store)
        }
    }
}

/// Every store port: what a store adapter implements.
pub trait AllPorts:
    OrganizationStore
    + ApiKeyStore
    + IdempotencyStore
    + CreditStore
    + JobQueue
    + AuditLog
    + WebhookStore
    + 'static
{
}

impl<S> AllPorts for S where
    S: OrganizationStore
        + ApiKeyStore
        + IdempotencyStore
        + CreditStore
        + JobQueue
        + AuditLog
        + WebhookStore
        + 'static
{
}

/// Expands into `mod port_contract { … }`: one `#[tokio::test]` per contract case, each on a
/// fresh store from `$factory` (an expression evaluating to a `Future<Output = Stores>`, written
/// as it would be at the call site; the module imports `super::*`).
#[macro_export]
macro_rules! store_contract_tests {
    ($factory:expr) => {
        $crate::__store_contract_cases! {
            $factory;
            serial:
                organization_insert_then_find_round_trips_exactly,
                organization_find_unknown_is_none,
                organization_insert_same_id_is_duplicate,
                list_children_newest_first_ties_by_id_descending,
                list_children_pages_strictly_after_the_cursor,
                list_children_only_direct_children,
                list_children_filters_by_status,
                list_children_respects_the_limit,
                update_applies_when_the_revision_matches,
                update_is_stale_and_writes_nothing_when_the_revision_differs,
                update_of_an_unknown_organization_is_stale,
                archive_revokes_every_active_key_at_the_archive_instant,
                archive_of_a_suspended_organization_without_keys,
                archive_is_stale_and_writes_nothing_when_the_revision_differs,
                key_insert_then_find_round_trips_exactly,
                key_find_unknown_is_none,
                key_insert_same_id_is_duplicate,
                key_insert_same_handle_is_duplicate,
                key_insert_into_an_archived_organization_is_refused,
                key_insert_into_a_missing_organization_is_refused,
                key_insert_into_a_suspended_organization_is_accepted,
                key_list_newest_first_paged_and_only_that_organization,
                revoke_revokes_an_active_key_at_the_instant,
                revoke_is_idempotent,
                revoke_of_an_unknown_key_is_none,
                count_active_counts_only_active_keys_of_the_organization,
                find_credentials_of_a_child_key_has_organization_and_parent,
                find_credentials_of_a_top_level_key_has_no_parent,
                find_credentials_of_an_unknown_handle_is_none,
                find_credentials_reads_the_current_state,
            ;
            lifecycle:
                kill_kills_a_usable_key_once,
                rotate_supersedes_the_old_key_and_inserts_the_new,
                rotate_refuses_a_superseded_revoked_or_expired_key,
                rotate_in_an_archived_organization_is_refused,
                replace_secret_swaps_the_handle_in_place,
                replace_secret_of_an_unusable_key_changes_nothing,
                replace_secret_with_a_taken_handle_is_duplicate,
                set_rate_limit_tier_round_trips,
                record_last_used_only_raises,
                archive_and_revoke_leave_expired_and_killed_keys_as_they_ended,
                idempotency_claim_replay_mismatch_and_in_flight,
                idempotency_expired_abandoned_and_released_claims_are_claimable,
                idempotency_completion_is_written_with_the_effect,
                idempotency_a_lost_claim_writes_no_effect,
                idempotency_an_archive_records_its_figures_with_the_effect,
                idempotency_an_in_place_rotation_records_its_answer_with_the_effect,
                idempotency_a_revoke_and_a_kill_record_their_answers_with_the_effect,
                idempotency_an_endpoint_deletion_records_its_answer_with_the_effect,
                idempotency_complete_with_another_token_changes_nothing,
                idempotency_purge_deletes_only_expired_records,
                credits_an_unknown_wallet_is_empty,
                credits_grant_adds_and_records_the_balance_left,
                credits_allocation_moves_credits_between_both_ledgers,
                credits_allocation_beyond_the_available_balance_moves_nothing,
                credits_allocation_to_an_archived_child_is_refused,
                credits_ledger_filters_and_pages,
                credits_archive_sweeps_the_unreserved_balance_to_the_parent,
                credits_an_allocation_writes_its_idempotent_answer_with_the_effect,
                reservations_hold_credits_and_never_more_than_available,
                reservations_are_refused_while_suspended_or_archived,
                settling_spends_and_releasing_gives_back_once,
                what_an_archived_child_releases_goes_to_its_parent,
                ledger_events_name_the_reservation_they_came_from,
                a_reservation_schedules_its_expiry,
                jobs_are_claimed_when_due_and_done_once,
                an_abandoned_claim_is_claimed_again,
                jobs_are_held_while_suspended_and_cancelled_by_archive,
                a_job_held_past_its_time_is_claimed_as_held,
                a_delivery_retry_scheduled_again_is_no_longer_held,
                the_monthly_cap_counts_what_was_spent_and_what_is_held,
                reservations_resume_after_resume,
                a_queue_runs_its_jobs_one_at_a_time_in_order,
                a_trail_is_written_with_its_effect_and_only_then,
                the_audit_log_lists_newest_first_with_filters_and_pages,
                kill_switch_refusals_are_recorded_once_per_window,
                events_fan_out_to_exactly_the_endpoints_that_want_them,
                a_targeted_event_reaches_its_one_endpoint,
                deliveries_are_held_while_the_owner_is_suspended,
                archive_cancels_the_owners_deliveries_and_tells_the_parent,
                an_attempt_is_recorded_with_its_job_and_the_failure_count,
                failures_in_a_row_pause_the_endpoint,
                endpoints_round_trip_update_and_delete,
            ;
            racing:
                concurrent_updates_from_one_revision_apply_exactly_once,
                concurrent_archives_from_one_revision_apply_exactly_once,
                archive_racing_key_inserts_leaves_no_live_key,
            ;
            lifecycle_racing:
                rotate_racing_revoke_and_rotate_is_atomic,
                idempotency_concurrent_claims_of_one_key_claim_once,
                credits_concurrent_allocations_never_overdraw,
                credits_archive_racing_allocations_conserves_credits,
                concurrent_reservations_never_overdraw,
                a_suspend_racing_reservations_stops_them,
                an_archive_racing_reservations_and_allocations_conserves_credits,
                concurrent_workers_never_claim_one_job_twice,
                concurrent_refusals_of_one_key_are_recorded_once,
            ;
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __store_contract_cases {
    ($factory:expr; serial: $($serial:ident),* $(,)?; lifecycle: $($lifecycle:ident),* $(,)?;
     racing: $($racing:ident),* $(,)?; lifecycle_racing: $($lifecycle_racing:ident),* $(,)?;) => {
        mod port_contract {
            #[allow(unused_imports)]
            use super::*;

            $(
                #[::tokio::test]
                async fn $serial() {
                    let stores: $crate::Stores = $factory.await;
                    $crate::cases::$serial(&stores).await;
                }
            )*

            $(
                #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $racing() {
                    let stores: $crate::Stores = $factory.await;
                    $crate::cases::$racing(&stores).await;
                }
            )*

            $(
                #[::tokio::test]
                async fn $lifecycle() {
                    let stores: $crate::Stores = $factory.await;
                    #[allow(unused_imports)]
                    use $crate::{credits::*, idempotency::*, jobs::*, key_lifecycle::*, reservations::*, trails::*};
                    $lifecycle(&stores).await;
                }
            )*

            $(
                #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $lifecycle_racing() {
                    let stores: $crate::Stores = $factory.await;
                    #[allow(unused_imports)]
                    use $crate::{credits::*, idempotency::*, jobs::*, key_lifecycle::*, reservations::*, trails::*};
                    $lifecycle_racing(&stores).await;
                }
            )*
        }
    };
}
