-- Idempotency records (API.md §1.6): a claim in flight (token, lease) or the final response,
-- replayed until expires_at. The response is written by the same transaction as the effect.
CREATE TABLE idempotency_records (
    api_key_id      uuid        NOT NULL REFERENCES api_keys (id),
    method          text        NOT NULL,
    route           text        NOT NULL,
    idempotency_key uuid        NOT NULL,
    fingerprint     bytea       NOT NULL,
    token           uuid        NULL,
    response_status smallint    NULL,
    response_body   bytea       NULL,
    expires_at      timestamptz NOT NULL,

    PRIMARY KEY (api_key_id, method, route, idempotency_key),
    CONSTRAINT idempotency_records_fingerprint_sha256
        CHECK (octet_length(fingerprint) = 32),
    -- In flight (a token) or done (a response), never both, never neither.
    CONSTRAINT idempotency_records_in_flight_xor_done
        CHECK ((token IS NULL) = (response_status IS NOT NULL AND response_body IS NOT NULL)),
    CONSTRAINT idempotency_records_status_is_http
        CHECK (response_status IS NULL OR response_status BETWEEN 100 AND 599)
);

-- The scheduled cleanup deletes by expiry.
CREATE INDEX idempotency_records_expiry ON idempotency_records (expires_at);
