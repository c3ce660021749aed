-- registry.append_command: one command's whole append, as one server-side call. THIS FILE IS ITS
-- DEFINITION (docs/adr/0008-append-function-in-one-file.md): `services.common.db.migrate` runs it
-- after every migration run of the registry, as the schema's owner, before the privileges of
-- services/common/privileges.sql are re-applied. Migrations 005, 007 and 009 created and
-- replaced it; they stay as history, and a change to the function is made here (a migration
-- that changes a table the function writes changes this file in the same commit).
--
-- It writes the directory versions the command relied on, the document-number claim of a
-- signing, its events and their outbox rows, the party rows it moves, its Idempotency-Key
-- response and the successions it queues. Called alone it is one round trip and one commit; the
-- group commit (services/registry/adapters/group_commit.py) calls it for several commands in one
-- statement and one transaction (one WAL flush for all of them).
--
-- Each call runs in its own subtransaction (the EXCEPTION block): a command that loses a race is
-- rolled back alone and answered with its refusal, never the batch it shares. The events'
-- primary key (stream, sequence) decides concurrent appends (optimistic concurrency), the
-- triggers of 001 refuse any rewrite, and every write of the command commits or none does.
--
-- SECURITY DEFINER with a fixed search_path (docs/adr/0002-database-roles.md): it runs as its
-- owner, the migrator, so the registry needs EXECUTE on it and no INSERT on the tables it writes;
-- every name below is schema-qualified. privileges.sql grants EXECUTE and states the same
-- attributes again; they are part of the definition here so that no call, between this file and
-- the grants, finds the function without them.
--
-- The argument: services/registry/adapters/append_payload.py (`AppendPayload`, a TypedDict)
-- builds it; the in-memory store (memory_store.py) applies the same shape in Python.
--
--   {"stream_id": "<the command's stream>",
--    "events": [{"stream_id": "<its stream: the command's, or a party stream it registers>",
--                "sequence": 1, "event_id": "<uuid>", "type": "AgreementSigned",
--                "recorded_at": "<RFC 3339>", "envelope": "<canonical JSON, without position>",
--                "signature": "<the registry's signature of the envelope's hash>" | absent}],
--    "directory": {"<party_id>": <the version the decision read, 0: none>, ...} | null,
--    "claim": {"locality": "<normalised>", "year": 2024, "document_number": "..."} | null,
--    "parties": [{"party_id": "...", "expected": <version before, 0: new>, "version": <after>}],
--    "completion": {"client_id": "...", "key": "...", "token": "<uuid>", "status_code": 201,
--                   "response": {...the response body; "position" is written here...}} | null,
--    "queue_successions": ["<party_id>", ...  (queued once each, in id order)],
--    "trace": {"traceparent": "00-...", "tracestate": "..."} | absent}
--
-- It returns {"positions": [the positions of the command stream's events]}, or
--   {"error": "concurrency"}                              a stream or a directory version moved on;
--   {"error": "duplicate_document", "agreement_id": ...}  the claim is another agreement's;
--   {"error": "claim_lost"}                               the Idempotency-Key claim was taken over;
--   {"error": "failed", "sqlstate": ..., "message": ...}  anything else, this command alone.
CREATE OR REPLACE FUNCTION registry.append_command(cmd jsonb) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    stream text := cmd->>'stream_id';
    -- An object or nothing: a command without tracing leaves its outbox rows' context NULL.
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

        -- The column `agreement_id` holds any stream's id (party streams too).
        WITH appended AS (
            -- Each event's signature beside it, in the same INSERT (NULL: none sent).
            INSERT INTO registry.events
                (agreement_id, sequence, event_id, event_type, recorded_at, envelope, signature)
            SELECT e->>'stream_id', (e->>'sequence')::int, (e->>'event_id')::uuid, e->>'type',
                   (e->>'recorded_at')::timestamptz, e->>'envelope', e->>'signature'
            FROM jsonb_array_elements(cmd->'events') WITH ORDINALITY AS x(e, n)
            ORDER BY n
            RETURNING position, agreement_id, sequence
        ), queued AS (
            -- Each outbox row keeps its own command's trace context (one batch of the group
            -- commit holds several commands, each call writes its own rows).
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

        IF jsonb_array_length(coalesce(cmd->'queue_successions', '[]'::jsonb)) > 0 THEN
            INSERT INTO registry.succession_queue (party_id)
            SELECT DISTINCT q FROM jsonb_array_elements_text(cmd->'queue_successions') AS q ORDER BY q
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
