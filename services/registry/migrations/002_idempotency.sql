-- Idempotency-Key records, per client. A successful command's response is written in the
-- same transaction as its events, so "events stored" and "response remembered" cannot
-- disagree after a crash.
CREATE TABLE registry.idempotency_keys (
    client_id     text        NOT NULL,
    key           text        NOT NULL,
    fingerprint   text        NOT NULL,   -- SHA-256 of method, path, If-Match and the JSON body
    token         uuid        NOT NULL,   -- which attempt owns the in-flight record
    started_at    timestamptz NOT NULL DEFAULT now(),
    status_code   integer,                -- NULL while the first request is still running
    response      jsonb,
    completed_at  timestamptz,
    PRIMARY KEY (client_id, key)
);
