-- Read models, built only from the Kafka topic. Unqualified names: the migration runs with
-- search_path set to the target schema (the live `projections`, or an audit shadow).
-- Each consumer batch updates them and the
-- consumer's partition offsets in one transaction.

-- Where each partition resumes: the offset of the next record to read.
CREATE TABLE offsets (
    consumer_group text    NOT NULL,
    topic          text    NOT NULL,
    partition      integer NOT NULL,
    next_offset    bigint  NOT NULL,
    PRIMARY KEY (consumer_group, topic, partition)
);

-- The last sequence applied per agreement: the next event must carry last_sequence + 1.
CREATE TABLE streams (
    agreement_id  text    PRIMARY KEY,
    last_sequence integer NOT NULL,
    last_position bigint  NOT NULL,
    last_hash     text    NOT NULL
);

-- Every event applied, by its store position (read-your-writes waits on this).
CREATE TABLE applied (
    position     bigint      PRIMARY KEY,
    agreement_id text        NOT NULL,
    sequence     integer     NOT NULL,
    applied_at   timestamptz NOT NULL DEFAULT now()
);

-- Events that arrived ahead of a missing predecessor; applied when the gap fills.
CREATE TABLE parked (
    agreement_id text        NOT NULL,
    sequence     integer     NOT NULL,
    position     bigint      NOT NULL,
    message      text        NOT NULL,
    parked_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (agreement_id, sequence)
);

CREATE TABLE agreements (
    agreement_id     text        PRIMARY KEY,
    version          integer     NOT NULL,
    first_position   bigint      NOT NULL,
    last_position    bigint      NOT NULL,
    document_number  text        NOT NULL,
    kind             text        NOT NULL,
    title            text        NOT NULL,
    locality         text        NOT NULL,
    locality_key     text        NOT NULL,
    status           text        NOT NULL,
    signed_on        date        NOT NULL,
    term_start       date        NOT NULL,
    term_end         date        NOT NULL,
    party_ids        text[]      NOT NULL,
    search_text      text        NOT NULL,
    state            jsonb       NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX agreements_first_position ON agreements (first_position);
CREATE INDEX agreements_party_ids ON agreements USING gin (party_ids);

CREATE TABLE party_obligations (
    party_id        text    NOT NULL,
    agreement_id    text    NOT NULL,
    obligation_id   text    NOT NULL,
    document_number text    NOT NULL,
    agreement_title text    NOT NULL,
    title           text    NOT NULL,
    role            text    NOT NULL,   -- lead | supporter
    cadence         text    NOT NULL,
    status          text    NOT NULL,   -- active | withdrawn | closed
    term_start      date    NOT NULL,
    term_end        date    NOT NULL,
    latest_report   jsonb,
    PRIMARY KEY (party_id, agreement_id, obligation_id)
);
CREATE INDEX party_obligations_agreement ON party_obligations (agreement_id);

CREATE TABLE reports (
    agreement_id       text    NOT NULL,
    obligation_id      text    NOT NULL,
    party_id           text    NOT NULL,
    period             text    NOT NULL,
    status             text    NOT NULL,
    completion_percent integer,
    reported_on        date    NOT NULL,
    sequence           integer NOT NULL,
    PRIMARY KEY (agreement_id, obligation_id, party_id, period)
);

CREATE TABLE party_history (
    party_id     text        NOT NULL,
    position     bigint      NOT NULL,
    event_id     text        NOT NULL,
    type         text        NOT NULL,
    agreement_id text        NOT NULL,
    sequence     integer     NOT NULL,
    recorded_at  timestamptz NOT NULL,
    summary      text        NOT NULL,
    PRIMARY KEY (party_id, position)
);
