-- Each component's database privileges, in one place (docs/adr/0002-database-roles.md).
--
-- Applied by services.common.db_roles.apply_privileges after every migration run of the
-- registry or of the live read models, by the migrator (the role that owns the schemas): it is
-- idempotent, and a table a later migration adds gets its grants at the run that adds it.
-- Grants go to the NOLOGIN group roles; each component logs in as a role that is a member of
-- its group (the local stacks and Kubernetes create those). Nothing here is granted WITH GRANT
-- OPTION, and no role but the migrator owns anything in `registry` or the read models: only an
-- owner may drop or disable a trigger, or ALTER or DROP a table.
--
-- @read_schema@ is the live read models' schema (PROJECTIONS_READ_SCHEMA, `projections`).

-- ---------------------------------------------------------------------------------------
-- Nothing for PUBLIC: a role of this cluster that is none of ours may not connect, create a
-- schema or a temporary table here, or call a function of ours. (Warnings, not errors, when
-- the migrator does not own the database: then its owner must do the same by hand.)
DO $$
BEGIN
    EXECUTE format('REVOKE ALL ON DATABASE %I FROM PUBLIC', current_database());
    EXECUTE format(
        'GRANT CONNECT ON DATABASE %I TO coordreg_registry, coordreg_relay, coordreg_worker,'
        ' coordreg_query, coordreg_audit', current_database());
    -- Temporary tables: the audit tool's fast rebuild stages rows in none (COPY into the shadow).
    -- CREATE on the database: the audit tool creates its shadow schemas, which it then owns.
    EXECUTE format('GRANT CREATE ON DATABASE %I TO coordreg_audit', current_database());
END $$;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

-- The migrations' ledger: every component checks that its migrations are applied; the audit
-- tool records (and forgets) those of its own shadow schemas only (row-level security below).
GRANT SELECT ON public.schema_migrations
    TO coordreg_registry, coordreg_relay, coordreg_worker, coordreg_query, coordreg_audit;
GRANT INSERT, DELETE ON public.schema_migrations TO coordreg_audit;
ALTER TABLE public.schema_migrations ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS everyone_reads ON public.schema_migrations;
CREATE POLICY everyone_reads ON public.schema_migrations FOR SELECT USING (true);
DROP POLICY IF EXISTS audit_shadows ON public.schema_migrations;
CREATE POLICY audit_shadows ON public.schema_migrations FOR ALL TO coordreg_audit
    USING (component LIKE 'projections@%' AND component <> 'projections@@read_schema@')
    WITH CHECK (component LIKE 'projections@%' AND component <> 'projections@@read_schema@');

-- ---------------------------------------------------------------------------------------
-- The event store and the transparency log (schema registry), once it exists.
DO $$
DECLARE
    item record;
BEGIN
    IF to_regnamespace('registry') IS NULL THEN
        RETURN;
    END IF;
    REVOKE ALL ON ALL TABLES IN SCHEMA registry FROM PUBLIC;
    REVOKE ALL ON ALL FUNCTIONS IN SCHEMA registry FROM PUBLIC;
    REVOKE ALL ON ALL SEQUENCES IN SCHEMA registry FROM PUBLIC;
    -- Re-applied from nothing each time, so that a privilege taken out of this file is gone.
    REVOKE ALL ON ALL TABLES IN SCHEMA registry
        FROM coordreg_registry, coordreg_relay, coordreg_worker, coordreg_query, coordreg_audit;
    REVOKE ALL ON ALL FUNCTIONS IN SCHEMA registry
        FROM coordreg_registry, coordreg_relay, coordreg_worker, coordreg_query, coordreg_audit;
    REVOKE ALL ON ALL SEQUENCES IN SCHEMA registry
        FROM coordreg_registry, coordreg_relay, coordreg_worker, coordreg_query, coordreg_audit;
    REVOKE ALL ON SCHEMA registry FROM PUBLIC, coordreg_worker, coordreg_query;
    GRANT USAGE ON SCHEMA registry TO coordreg_registry, coordreg_relay, coordreg_audit;

    -- The registry appends only through registry.append_command, which runs as its owner (the
    -- migrator): events, their outbox rows, document numbers, directory versions, completed
    -- idempotency keys and the succession queue are written together or not at all, and the
    -- registry cannot insert an event without its outbox row. search_path is pinned so that
    -- no object of the caller's can stand in for one the function names.
    IF to_regprocedure('registry.append_command(jsonb)') IS NOT NULL THEN
        ALTER FUNCTION registry.append_command(jsonb)
            SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
        GRANT EXECUTE ON FUNCTION registry.append_command(jsonb) TO coordreg_registry;
    END IF;
    -- One line per table and role. A table not there yet (a database migrated part way, as a
    -- migration test does) is skipped; it gets its grants at the run that creates it.
    FOR item IN
        SELECT * FROM (VALUES
            -- The registry reads what it decides on (streams, directory versions, snapshots, the
            -- log it serves); claims and releases Idempotency-Keys; upserts snapshots; drops
            -- handled rows of the process manager's queue; signs a checkpoint on demand (POST
            -- /v1/log/checkpoints, of the tree the relay built); accepts witnesses' cosignatures.
            ('registry.events',           'SELECT',                         'coordreg_registry'),
            ('registry.parties',          'SELECT',                         'coordreg_registry'),
            ('registry.succession_queue', 'SELECT, DELETE',                 'coordreg_registry'),
            ('registry.snapshots',        'SELECT, INSERT, UPDATE',         'coordreg_registry'),
            ('registry.idempotency_keys', 'SELECT, INSERT, UPDATE, DELETE', 'coordreg_registry'),
            ('registry.tree_leaves',      'SELECT',                         'coordreg_registry'),
            ('registry.tree_hashes',      'SELECT',                         'coordreg_registry'),
            ('registry.checkpoints',      'SELECT, INSERT',                 'coordreg_registry'),
            ('registry.cosignatures',     'SELECT, INSERT',                 'coordreg_registry'),
            -- The relay publishes what the outbox holds and deletes what Kafka acknowledged; the
            -- integrator (in the relay process) takes queued events into the tree and signs
            -- checkpoints; the witness feeder (there too) stores the cosignatures it verified.
            -- UPDATE and DELETE of the tree are refused here, before the triggers.
            ('registry.events',           'SELECT',                         'coordreg_relay'),
            ('registry.outbox',           'SELECT, DELETE',                 'coordreg_relay'),
            ('registry.tree_pending',     'SELECT, DELETE',                 'coordreg_relay'),
            ('registry.tree_leaves',      'SELECT, INSERT',                 'coordreg_relay'),
            ('registry.tree_hashes',      'SELECT, INSERT',                 'coordreg_relay'),
            ('registry.checkpoints',      'SELECT, INSERT',                 'coordreg_relay'),
            ('registry.cosignatures',     'SELECT, INSERT',                 'coordreg_relay')
        ) AS grants(object, privileges, grantee)
        WHERE to_regclass(object) IS NOT NULL
    LOOP
        EXECUTE format('GRANT %s ON %s TO %I', item.privileges, item.object, item.grantee);
    END LOOP;

    -- The audit tool reads everything the registry stores, and writes none of it.
    GRANT SELECT ON ALL TABLES IN SCHEMA registry TO coordreg_audit;
END $$;

-- ---------------------------------------------------------------------------------------
-- The live read models (schema @read_schema@), once they exist.
DO $$
BEGIN
    IF to_regnamespace('@read_schema@') IS NULL THEN
        RETURN;
    END IF;
    REVOKE ALL ON ALL TABLES IN SCHEMA "@read_schema@" FROM PUBLIC;
    REVOKE ALL ON ALL SEQUENCES IN SCHEMA "@read_schema@" FROM PUBLIC;
    REVOKE ALL ON ALL TABLES IN SCHEMA "@read_schema@"
        FROM coordreg_registry, coordreg_relay, coordreg_worker, coordreg_query, coordreg_audit;
    REVOKE ALL ON ALL SEQUENCES IN SCHEMA "@read_schema@"
        FROM coordreg_registry, coordreg_relay, coordreg_worker, coordreg_query, coordreg_audit;
    REVOKE ALL ON SCHEMA "@read_schema@" FROM PUBLIC, coordreg_registry, coordreg_relay;
    GRANT USAGE ON SCHEMA "@read_schema@" TO coordreg_worker, coordreg_query, coordreg_audit;
    -- The worker writes the read models, its offsets and its dead letters, in one transaction.
    GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "@read_schema@" TO coordreg_worker;
    GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA "@read_schema@" TO coordreg_worker;
    -- The query API and the audit tool (diff, swap's checks) only read them.
    GRANT SELECT ON ALL TABLES IN SCHEMA "@read_schema@" TO coordreg_query, coordreg_audit;
END $$;
