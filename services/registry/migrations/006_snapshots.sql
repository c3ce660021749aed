-- Snapshots of folded agreement states, so that loading an agreement reads its latest snapshot
-- and the events after it instead of its whole stream. A cache, not a source of truth: rows are
-- upserted (unlike registry.events, which stays append-only), and one is used only if the event
-- at its version is stored with its hash and it was folded by the same model version as the
-- reader's; otherwise the reader folds the events.
--
-- One row per stream and model version: instances of two releases running side by side (a
-- rolling deploy) each keep their own instead of overwriting each other's.
CREATE TABLE registry.snapshots (
    stream_id     text        NOT NULL,
    -- Changes whenever the fold or the state's shape does (services/registry/service_layer/snapshots.py).
    model_version text        NOT NULL,
    -- The sequence of the last event folded, and its hash: the next event's prevhash.
    version       integer     NOT NULL CHECK (version >= 1),
    last_hash     text        NOT NULL,
    -- The folded state as JSON text, opaque to the database.
    state         text        NOT NULL,
    taken_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (stream_id, model_version)
);
