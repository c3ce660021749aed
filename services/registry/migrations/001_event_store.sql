-- The event store: the registry's source of truth. Append-only, enforced by the database.
CREATE SCHEMA IF NOT EXISTS registry;

CREATE TABLE registry.events (
    -- Store-wide order. Values are handed out before commit, so they may commit out of
    -- order and may have holes; nothing relies on reading "everything after position n".
    position      bigint GENERATED ALWAYS AS IDENTITY,
    agreement_id  text        NOT NULL,
    -- Per-agreement order; the primary key is the optimistic-concurrency check:
    -- two writers deciding on the same version both try to insert sequence n+1.
    sequence      integer     NOT NULL CHECK (sequence >= 1),
    event_id      uuid        NOT NULL,
    event_type    text        NOT NULL,
    recorded_at   timestamptz NOT NULL,
    -- Canonical JSON of the CloudEvents envelope without `position` (it includes `hash`).
    envelope      text        NOT NULL,
    PRIMARY KEY (agreement_id, sequence),
    UNIQUE (position),
    UNIQUE (event_id)
);

CREATE FUNCTION registry.refuse_rewrite() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'registry.events is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON registry.events
    FOR EACH ROW EXECUTE FUNCTION registry.refuse_rewrite();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON registry.events
    FOR EACH STATEMENT EXECUTE FUNCTION registry.refuse_rewrite();

-- Written in the same transaction as the events; the relay deletes a row only after
-- Kafka acknowledged the message.
CREATE TABLE registry.outbox (
    position      bigint      PRIMARY KEY,
    agreement_id  text        NOT NULL,
    sequence      integer     NOT NULL,
    enqueued_at   timestamptz NOT NULL DEFAULT now()
);

-- A document number is signed once per locality (the 409 rule of the contract).
CREATE TABLE registry.document_numbers (
    locality        text NOT NULL,
    document_number text NOT NULL,
    agreement_id    text NOT NULL,
    PRIMARY KEY (locality, document_number)
);
