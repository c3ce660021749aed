-- Signed envelopes (docs/adr/0003-signed-envelopes.md, docs/CONTRACT.md B12): the registry signs
-- each event's `hash` with its event key (Ed25519) when it appends it, and the signature is stored
-- beside the envelope, written by the same INSERT, so in the command's transaction.
--
-- A column, not an attribute inside `envelope`: the stored envelope text, its `hash`, the Kafka
-- record value and the transparency log's leaves stay byte for byte what they were. The column is
-- nullable with no default, so adding it rewrites nothing (a catalog change); events appended
-- before this migration keep NULL. The append-only triggers of 001 still refuse any UPDATE, so a
-- signature is written once, with its event, and never added or changed later.
ALTER TABLE registry.events ADD COLUMN signature text;

-- registry.append_command of 007, unchanged but for one optional field of each event of its
-- argument, stored in the new column:
--
-- cmd: {...the fields of 007..., "events": [{...the fields of 005..., "g": "<signature>" | absent}]}
CREATE OR REPLACE FUNCTION registry.append_command(cmd jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    stream text := cmd->>'stream';
    -- An object or nothing: a command without tracing (or from an older registry) leaves NULL.
    trace jsonb := CASE WHEN jsonb_typeof(cmd->'trace') = 'object' THEN cmd->'trace' END;
    positions bigint[];
    owner text;
    party jsonb;
    changed int;
    violated text;
BEGIN
    BEGIN
        IF jsonb_typeof(cmd->'directory') = 'object' THEN
            -- Locked in id order, like every other taker of these rows (no deadlock among them);
            -- a succession's UPDATE waits until this transaction ends.
            PERFORM 1 FROM registry.parties
                WHERE party_id IN (SELECT jsonb_object_keys(cmd->'directory'))
                ORDER BY party_id FOR SHARE;
            IF EXISTS (
                SELECT 1 FROM jsonb_each_text(cmd->'directory') AS d(party_id, version)
                LEFT JOIN registry.parties AS p USING (party_id)
                WHERE coalesce(p.version, 0) <> d.version::int
            ) THEN
                RETURN jsonb_build_object('error', 'concurrency');
            END IF;
        END IF;

        IF jsonb_typeof(cmd->'claim') = 'object' THEN
            INSERT INTO registry.document_numbers (locality, year, document_number, agreement_id)
            VALUES (cmd->'claim'->>'locality', (cmd->'claim'->>'year')::int,
                    cmd->'claim'->>'document_number', stream)
            ON CONFLICT DO NOTHING
            RETURNING agreement_id INTO owner;
            IF owner IS NULL THEN
                SELECT agreement_id INTO owner FROM registry.document_numbers
                WHERE locality = cmd->'claim'->>'locality' AND year = (cmd->'claim'->>'year')::int
                  AND document_number = cmd->'claim'->>'document_number';
                RETURN jsonb_build_object('error', 'duplicate_document', 'agreement_id', owner);
            END IF;
        END IF;

        WITH appended AS (
            -- 009: each event's signature beside it, in the same INSERT (NULL: none sent).
            INSERT INTO registry.events
                (agreement_id, sequence, event_id, event_type, recorded_at, envelope, signature)
            SELECT e->>'a', (e->>'s')::int, (e->>'e')::uuid, e->>'t', (e->>'r')::timestamptz, e->>'v',
                   e->>'g'
            FROM jsonb_array_elements(cmd->'events') WITH ORDINALITY AS x(e, n)
            ORDER BY n
            RETURNING position, agreement_id, sequence
        ), queued AS (
            -- 007: each outbox row keeps its own command's trace context (one batch of the
            -- group commit holds several commands, each call writes its own rows).
            INSERT INTO registry.outbox (position, agreement_id, sequence, trace_context)
            SELECT position, agreement_id, sequence, trace FROM appended
            RETURNING position, agreement_id
        )
        SELECT array_agg(position ORDER BY position) FILTER (WHERE agreement_id = stream)
        INTO positions FROM queued;

        -- Party streams move their directory row along; a new party inserts it, so a concurrent
        -- registration of the same party fails on its primary key.
        FOR party IN SELECT * FROM jsonb_array_elements(coalesce(cmd->'parties', '[]'::jsonb)) LOOP
            IF (party->>'expected')::int = 0 THEN
                INSERT INTO registry.parties (party_id, version)
                VALUES (party->>'party_id', (party->>'version')::int);
            ELSE
                UPDATE registry.parties SET version = (party->>'version')::int
                WHERE party_id = party->>'party_id' AND version = (party->>'expected')::int;
                GET DIAGNOSTICS changed = ROW_COUNT;
                IF changed <> 1 THEN
                    RAISE EXCEPTION 'party moved on' USING ERRCODE = 'CR001';
                END IF;
            END IF;
        END LOOP;

        IF jsonb_typeof(cmd->'completion') = 'object' THEN
            -- The response names the position of the command's last event, known only now.
            UPDATE registry.idempotency_keys
            SET status_code = (cmd->'completion'->>'status_code')::int,
                response = jsonb_set(cmd->'completion'->'response', '{position}',
                                     to_jsonb(positions[array_upper(positions, 1)])),
                completed_at = now()
            WHERE client_id = cmd->'completion'->>'client_id' AND key = cmd->'completion'->>'key'
              AND token = (cmd->'completion'->>'token')::uuid AND status_code IS NULL;
            GET DIAGNOSTICS changed = ROW_COUNT;
            IF changed <> 1 THEN
                RAISE EXCEPTION 'claim lost' USING ERRCODE = 'CR002';
            END IF;
        END IF;

        IF jsonb_array_length(coalesce(cmd->'queue', '[]'::jsonb)) > 0 THEN
            INSERT INTO registry.succession_queue (party_id)
            SELECT DISTINCT q FROM jsonb_array_elements_text(cmd->'queue') AS q ORDER BY q
            ON CONFLICT (party_id) DO UPDATE
            SET request = nextval('registry.succession_requests'), queued_at = now();
            PERFORM pg_notify('registry_successions', '');
        END IF;
    EXCEPTION
        WHEN unique_violation THEN
            GET STACKED DIAGNOSTICS violated = CONSTRAINT_NAME;
            IF violated IN ('events_pkey', 'parties_pkey') THEN
                RETURN jsonb_build_object('error', 'concurrency');
            END IF;
            RETURN jsonb_build_object('error', 'failed', 'sqlstate', SQLSTATE, 'message', SQLERRM);
        WHEN deadlock_detected THEN
            -- Two successions naming each other, say: one of them is decided again.
            RETURN jsonb_build_object('error', 'concurrency');
        WHEN SQLSTATE 'CR001' THEN
            RETURN jsonb_build_object('error', 'concurrency');
        WHEN SQLSTATE 'CR002' THEN
            RETURN jsonb_build_object('error', 'claim_lost');
        WHEN OTHERS THEN
            -- Anything else fails this command alone, with what PostgreSQL said.
            RETURN jsonb_build_object('error', 'failed', 'sqlstate', SQLSTATE, 'message', SQLERRM);
    END;
    -- Delivered at commit (once per transaction, however many commands share it): wakes the relay.
    PERFORM pg_notify('registry_outbox', '');
    RETURN jsonb_build_object('positions', to_jsonb(positions));
END
$$;
