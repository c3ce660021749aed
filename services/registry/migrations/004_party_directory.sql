-- The party directory (docs/CONTRACT.md, decisions 15-17). Party streams are ordinary streams of
-- registry.events (`agreement_id` holds `party/<party_id>`); this table only mirrors each one's
-- current version, written in the transaction that appends to it. A decision that read a party's
-- entry locks its row FOR SHARE and requires the version unchanged at commit, and every append
-- to a party stream moves the version on under a row lock: so a signing and a succession of one
-- of its parties can never both miss each other.
CREATE TABLE registry.parties (
    party_id text    PRIMARY KEY,
    version  integer NOT NULL CHECK (version >= 1)
);

-- Parties whose succession must still be carried into their agreements by the process manager.
-- Queued in the transaction that records the succession (and by any later append that names a
-- party already ceased); a row leaves only once every agreement has been dealt with, so a crash
-- mid-way resumes where it stopped. `request` changes when a party is queued again.
CREATE SEQUENCE registry.succession_requests;
CREATE TABLE registry.succession_queue (
    party_id  text        PRIMARY KEY,
    request   bigint      NOT NULL DEFAULT nextval('registry.succession_requests'),
    queued_at timestamptz NOT NULL DEFAULT now()
);
