-- Records that could not be applied (malformed, unknown type, or refused by evolve): kept
-- with the reason, also published to the dead-letter topic; the worker moves on.
CREATE TABLE dead_letters (
    topic        text        NOT NULL,
    partition    integer     NOT NULL,
    record_offset bigint     NOT NULL,
    key          text,
    reason       text        NOT NULL,
    message      bytea       NOT NULL,
    failed_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, partition, record_offset)
);
