//! The diesel schema: what `migrations/` creates, column for column.

diesel::table! {
    organizations (id) {
        id -> Uuid,
        parent_id -> Nullable<Uuid>,
        name -> Text,
        status -> Text,
        suspended_at -> Nullable<Timestamptz>,
        archived_at -> Nullable<Timestamptz>,
        metadata -> Jsonb,
        billing_email -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        revision -> Int8,
    }
}

diesel::table! {
    api_keys (id) {
        id -> Uuid,
        organization_id -> Uuid,
        name -> Text,
        env -> Text,
        handle -> Text,
        secret_hash -> Bytea,
        scopes -> Array<Text>,
        rate_limit_tier -> Text,
        revoked_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        last_used_at -> Nullable<Timestamptz>,
        killed_at -> Nullable<Timestamptz>,
        rotated_at -> Nullable<Timestamptz>,
        superseded_by -> Nullable<Uuid>,
        grace_until -> Nullable<Timestamptz>,
    }
}

// diesel's own bookkeeping table, read by the readiness check.
diesel::table! {
    __diesel_schema_migrations (version) {
        version -> VarChar,
    }
}

diesel::joinable!(api_keys -> organizations (organization_id));
diesel::allow_tables_to_appear_in_same_query!(
    organizations,
    api_keys,
    wallets,
    ledger_events,
    reservations,
    jobs,
    audit_events,
    kill_switch_refusals,
    webhook_endpoints,
    webhook_events,
    webhook_deliveries,
    parked_organizations
);

diesel::table! {
    wallets (organization_id) {
        organization_id -> Uuid,
        balance -> Int8,
        reserved -> Int8,
        monthly_credit_cap -> Nullable<Int8>,
        refill_threshold -> Nullable<Int8>,
        refill_amount -> Nullable<Int8>,
        auto_refill_enabled -> Bool,
    }
}

diesel::table! {
    ledger_events (id) {
        id -> Uuid,
        organization_id -> Uuid,
        event_type -> Text,
        credits -> Int8,
        balance_after -> Int8,
        transfer_id -> Nullable<Uuid>,
        description -> Nullable<Text>,
        metadata -> Jsonb,
        created_at -> Timestamptz,
        reservation_id -> Nullable<Uuid>,
    }
}

diesel::table! {
    reservations (id) {
        id -> Uuid,
        organization_id -> Uuid,
        credits -> Int8,
        status -> Text,
        settled_credits -> Nullable<Int8>,
        finished_at -> Nullable<Timestamptz>,
        description -> Nullable<Text>,
        expires_at -> Timestamptz,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    jobs (id) {
        id -> Uuid,
        organization_id -> Nullable<Uuid>,
        kind -> Text,
        payload -> Text,
        run_at -> Timestamptz,
        attempts -> Int4,
        token -> Nullable<Uuid>,
        lease_until -> Nullable<Timestamptz>,
        queue -> Nullable<Text>,
        seq -> Int8,
        parked -> Bool,
        was_held -> Bool,
    }
}

diesel::table! {
    parked_organizations (organization_id) {
        organization_id -> Uuid,
    }
}

diesel::table! {
    audit_events (id) {
        id -> Uuid,
        event_type -> Text,
        occurred_at -> Timestamptz,
        request_id -> Nullable<Text>,
        organization_id -> Uuid,
        actor_type -> Text,
        actor_api_key_id -> Nullable<Uuid>,
        actor_organization_id -> Nullable<Uuid>,
        data -> Text,
    }
}

diesel::table! {
    kill_switch_refusals (api_key_id) {
        api_key_id -> Uuid,
        last_at -> Timestamptz,
    }
}

diesel::table! {
    webhook_endpoints (id) {
        id -> Uuid,
        organization_id -> Uuid,
        url -> Text,
        events -> Array<Text>,
        scope -> Text,
        status -> Text,
        description -> Nullable<Text>,
        signing_secret -> Text,
        consecutive_failures -> Int4,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        deleted_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    webhook_events (id) {
        id -> Uuid,
        event_type -> Text,
        organization_id -> Uuid,
        created_at -> Timestamptz,
        body -> Text,
        replay_of -> Nullable<Uuid>,
    }
}

diesel::table! {
    webhook_deliveries (id) {
        id -> Uuid,
        endpoint_id -> Uuid,
        event_id -> Uuid,
        event_type -> Text,
        status -> Text,
        attempts -> Int4,
        last_error -> Nullable<Text>,
        last_response_status -> Nullable<Int2>,
        last_attempt_at -> Nullable<Timestamptz>,
        next_attempt_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
    }
}

diesel::joinable!(webhook_deliveries -> webhook_endpoints (endpoint_id));
