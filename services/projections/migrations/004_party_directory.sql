-- The party directory (docs/CONTRACT.md, decisions 15-18) in the read models. Party streams
-- (subject `party/<party_id>`) come on the same topic as the agreements and share `streams`,
-- `parked` and `applied` with them, keyed by subject. Unqualified names: see 001.

-- A party's directory entry, folded from its stream (services/directory/state.py).
CREATE TABLE parties (
    party_id                     text    PRIMARY KEY,
    version                      integer NOT NULL,
    first_position               bigint  NOT NULL,
    last_position                bigint  NOT NULL,
    name                         text    NOT NULL,
    kind                         text    NOT NULL,
    province                     text,
    electronic_id                text,
    unit_code                    text,
    registered_from_agreement_id text,
    -- Every name it has had, oldest first: [{"name", "effective_on", "legal_basis"}].
    names                        jsonb   NOT NULL,
    -- Its succession, once recorded (all four null before).
    ceased_on                    date,
    legal_basis                  text,
    successor_party_id           text,
    -- [{"agreement_id", "obligation_id", "successor_party_id"}]: obligations that go elsewhere.
    obligation_successors        jsonb   NOT NULL DEFAULT '[]'
);

-- Who took over from whom: one row per (party that ceased, successor), the default successor
-- and every one named for an obligation, so that a party's predecessors are a lookup.
CREATE TABLE party_successions (
    predecessor_party_id text NOT NULL,
    successor_party_id   text NOT NULL,
    effective_on         date NOT NULL,
    legal_basis          text NOT NULL,
    PRIMARY KEY (predecessor_party_id, successor_party_id)
);
CREATE INDEX party_successions_successor ON party_successions (successor_party_id);

-- A directory event is in the history of every party it names, and belongs to no agreement.
ALTER TABLE party_history ALTER COLUMN agreement_id DROP NOT NULL;

-- An obligation a party holds because a party that ceased passed it on (the latest such
-- transfer to it); null for one it holds as signed or amended.
ALTER TABLE party_obligations
    ADD COLUMN inherited_from        text,
    ADD COLUMN inherited_on          date,
    ADD COLUMN inherited_legal_basis text;

-- What a party that ceased passed on: one row per obligation it ceded, as the obligation
-- stands now, with where it went. Rewritten with its agreement's obligation rows.
CREATE TABLE party_transfers (
    party_id        text    NOT NULL,
    agreement_id    text    NOT NULL,
    obligation_id   text    NOT NULL,
    document_number text    NOT NULL,
    agreement_title text    NOT NULL,
    title           text    NOT NULL,
    cadence         text    NOT NULL,
    status          text    NOT NULL,   -- active | withdrawn | closed
    term_start      date    NOT NULL,
    term_end        date    NOT NULL,
    latest_report   jsonb,
    -- How the party itself had come to hold it, if by a transfer.
    inherited_from  text,
    inherited_on    date,
    transferred_to  text    NOT NULL,
    transferred_on  date    NOT NULL,
    legal_basis     text    NOT NULL,
    PRIMARY KEY (party_id, agreement_id, obligation_id)
);
CREATE INDEX party_transfers_agreement ON party_transfers (agreement_id);

-- The province that governs the signing locality now (Resolution 202/2025/QH15), its search
-- key, and the Appendix III type of the document number. Both are computed in Python
-- (services/directory/provinces.py, services/agreement/document_numbers.py), which SQL cannot
-- do: existing rows get the locality as signed and no type, and are right from their
-- agreement's next event, or at once after `coordreg-audit rebuild` + `swap`.
ALTER TABLE agreements
    ADD COLUMN locality_now     text,
    ADD COLUMN locality_now_key text,
    ADD COLUMN document_type    text;
UPDATE agreements SET locality_now = locality, locality_now_key = locality_key;
ALTER TABLE agreements
    ALTER COLUMN locality_now SET NOT NULL,
    ALTER COLUMN locality_now_key SET NOT NULL;
CREATE INDEX agreements_locality_key ON agreements (locality_key);
CREATE INDEX agreements_locality_now_key ON agreements (locality_now_key);
