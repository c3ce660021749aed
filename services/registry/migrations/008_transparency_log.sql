-- The transparency log (docs/CONTRACT.md B11): an RFC 6962 Merkle tree with one leaf per event,
-- signed checkpoints of it, and the cosignatures of the witnesses who checked them.
--
-- Every event enters the tree through registry.tree_pending, filled by a trigger in the
-- transaction that inserts the event (as the outbox is): no event, whatever wrote it, can
-- commit outside the queue. The integrator (services/registry/adapters/tree_integrator.py, one
-- leader by advisory lock) takes queued events in position order, gives each the next leaf
-- index, and in one transaction writes the leaves, the tree's stored hashes and the deletion of
-- their queue rows. Leaves, stored hashes, checkpoints and cosignatures are append-only, as the
-- events are.

CREATE TABLE registry.tree_pending (
    position bigint PRIMARY KEY
);

CREATE FUNCTION registry.queue_tree_leaves() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO registry.tree_pending (position) SELECT position FROM new_events;
    RETURN NULL;
END $$;

-- Per statement, with the statement's rows: one INSERT however many events a command appends.
CREATE TRIGGER events_into_tree AFTER INSERT ON registry.events
    REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION registry.queue_tree_leaves();

-- The events stored before this migration: the tree covers them too, oldest first.
INSERT INTO registry.tree_pending (position) SELECT position FROM registry.events;

CREATE TABLE registry.tree_leaves (
    -- The leaf's place in the tree: 0, 1, 2, ... without holes (the integrator's order).
    leaf_index    bigint      PRIMARY KEY CHECK (leaf_index >= 0),
    position      bigint      NOT NULL UNIQUE,
    -- SHA-256(0x00 || the event's Kafka record value): its canonical envelope with position.
    leaf_hash     bytea       NOT NULL CHECK (length(leaf_hash) = 32),
    integrated_at timestamptz NOT NULL DEFAULT now()
);

-- The tree's hashes in the layout of Go's golang.org/x/mod/sumdb/tlog ("stored hashes"): each
-- leaf hash and each complete subtree's hash, at the index StoredHashIndex(level, n). Enough
-- for any tree hash and any proof in O(log n) reads.
CREATE TABLE registry.tree_hashes (
    hash_index bigint PRIMARY KEY CHECK (hash_index >= 0),
    hash       bytea  NOT NULL CHECK (length(hash) = 32)
);

-- Signed checkpoints (C2SP tlog-checkpoint): at most one per tree size, since the tree of one
-- size has one root; a second note of a size would be a split view.
CREATE TABLE registry.checkpoints (
    tree_size bigint      PRIMARY KEY CHECK (tree_size >= 0),
    root_hash bytea       NOT NULL CHECK (length(root_hash) = 32),
    -- The whole signed note, as served.
    note      text        NOT NULL,
    key_name  text        NOT NULL,
    issued_at timestamptz NOT NULL DEFAULT now()
);

-- A witness's signature line on a checkpoint (added to the note when it is served).
CREATE TABLE registry.cosignatures (
    tree_size   bigint      NOT NULL REFERENCES registry.checkpoints (tree_size),
    witness     text        NOT NULL,
    signature   text        NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tree_size, witness)
);

CREATE FUNCTION registry.refuse_log_rewrite() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%.% is append-only: % refused', TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE TRIGGER tree_leaves_append_only BEFORE UPDATE OR DELETE ON registry.tree_leaves
    FOR EACH ROW EXECUTE FUNCTION registry.refuse_log_rewrite();
CREATE TRIGGER tree_leaves_no_truncate BEFORE TRUNCATE ON registry.tree_leaves
    FOR EACH STATEMENT EXECUTE FUNCTION registry.refuse_log_rewrite();
CREATE TRIGGER tree_hashes_append_only BEFORE UPDATE OR DELETE ON registry.tree_hashes
    FOR EACH ROW EXECUTE FUNCTION registry.refuse_log_rewrite();
CREATE TRIGGER tree_hashes_no_truncate BEFORE TRUNCATE ON registry.tree_hashes
    FOR EACH STATEMENT EXECUTE FUNCTION registry.refuse_log_rewrite();
CREATE TRIGGER checkpoints_append_only BEFORE UPDATE OR DELETE ON registry.checkpoints
    FOR EACH ROW EXECUTE FUNCTION registry.refuse_log_rewrite();
CREATE TRIGGER checkpoints_no_truncate BEFORE TRUNCATE ON registry.checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION registry.refuse_log_rewrite();
CREATE TRIGGER cosignatures_append_only BEFORE UPDATE OR DELETE ON registry.cosignatures
    FOR EACH ROW EXECUTE FUNCTION registry.refuse_log_rewrite();
CREATE TRIGGER cosignatures_no_truncate BEFORE TRUNCATE ON registry.cosignatures
    FOR EACH STATEMENT EXECUTE FUNCTION registry.refuse_log_rewrite();
