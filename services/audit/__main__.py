"""`python -m services.audit <command>`: verify, rebuild, diff, swap, party, and the
transparency log's witness, witness-key, prove, check-consistency.

A human summary goes to stdout, progress and logs to stderr, and `--json PATH` writes
the full report. Exit codes: 0 all good; 1 the audit found something (a broken chain,
Kafka not matching the store, read models that differ); 2 refused or bad usage;
3 the database or Kafka could not be used. For the log's commands: 1 a refusal (witness) or a
proof that fails (prove, check-consistency); 3 the registry could not be used.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import asyncpg
import httpx
import structlog
from aiokafka.errors import KafkaError

from services.audit.common import AuditError, check_schema_name, parse_instant, read_meta
from services.audit.diff import diff
from services.audit.kafkalog import TopicUnavailable
from services.audit.logapi import (
    TOKEN_ENV,
    URL_ENV,
    LogApi,
    LogApiError,
    read_log_key,
    read_note_file,
    read_policy,
)
from services.audit.party import party
from services.audit.prove import check_consistency, prove
from services.audit.rebuild import rebuild
from services.audit.settings import AuditSettings
from services.audit.swap import swap
from services.audit.verify import verify
from services.audit.witness import new_witness_key, read_witness_key, witness

OK, FOUND, REFUSED, UNAVAILABLE = 0, 1, 2, 3


class Report(Protocol):
    def to_json(self) -> dict[str, Any]: ...


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group(
        "connections and output (override AUDIT_* / DATABASE_URL / KAFKA_BOOTSTRAP_SERVERS)"
    )
    group.add_argument("--database-url", help="PostgreSQL DSN of the registry's database")
    group.add_argument(
        "--kafka", dest="kafka_bootstrap_servers", metavar="HOST:PORT", help="Kafka bootstrap servers"
    )
    group.add_argument("--topic", help="events topic (default agreements.events.v1)")
    group.add_argument(
        "--group", dest="consumer_group", help="the live projection's consumer group (default projections.v1)"
    )
    group.add_argument("--live-schema", help="schema of the live read models (default projections)")
    group.add_argument(
        "--batch-size", type=int, help="events per transaction / rows per fetch (default 1000)"
    )
    group.add_argument(
        "--json", dest="json_path", type=Path, metavar="PATH", help="write the full report as JSON"
    )
    group.add_argument("--no-progress", action="store_true", help="no progress lines on stderr")
    return common


def parser() -> argparse.ArgumentParser:
    common = _common()
    main = argparse.ArgumentParser(
        prog="python -m services.audit",
        description="Audit replay tool: prove the event record complete and untampered, rebuild read models.",
        epilog="exit codes: 0 ok, 1 problems found, 2 refused or bad usage, 3 database/Kafka unavailable",
    )
    commands = main.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser(
        "verify", parents=[common], help="check every hash chain, and that Kafka holds exactly the store"
    )
    p.add_argument("--skip-kafka", action="store_true", help="check only the event store")

    p = commands.add_parser("rebuild", parents=[common], help="replay the log into a fresh shadow schema")
    p.add_argument("--from", dest="source", choices=["store", "kafka"], required=True)
    p.add_argument(
        "--as-of",
        help="keep only events recorded by this RFC 3339 instant (a date: its end, UTC), and a"
        " succession's events effective by its date",
    )
    p.add_argument("--schema", help="shadow schema name (default shadow_<yyyymmddhhmmss>)")
    p.add_argument(
        "--replace", action="store_true", help="drop the schema first if it exists and is not empty"
    )
    p.add_argument("--workers", type=int, default=4, help="parallel database connections (default 4)")

    p = commands.add_parser("diff", parents=[common], help="compare a shadow with the live read models")
    p.add_argument("--schema", help="the shadow (default: the newest complete shadow_* schema)")
    p.add_argument("--against", help="the schema to compare with (default: the live read models)")
    p.add_argument("--limit", type=int, default=20, help="differences printed per table (all go to --json)")

    p = commands.add_parser("swap", parents=[common], help="make a rebuilt shadow the live read models")
    p.add_argument("--schema", required=True)
    p.add_argument(
        "--force", action="store_true", help="swap even if the shadow differs from the live read models"
    )
    p.add_argument("--workers", type=int, default=4, help="parallel database connections for the catch-up")

    p = commands.add_parser("party", parents=[common], help="a party's obligations and history as of a date")
    p.add_argument("party_id")
    p.add_argument(
        "--as-of",
        required=True,
        help="a date YYYY-MM-DD (its end, UTC) or an RFC 3339 instant: events recorded by then,"
        " and a succession's events effective by its date",
    )
    p.add_argument("--status", choices=["all", "active"], default="all")

    log = _log_common()
    p = commands.add_parser(
        "witness",
        parents=[log],
        help="check the log's latest checkpoint against the last one cosigned, and cosign it",
    )
    p.add_argument(
        "--key",
        dest="witness_key",
        type=Path,
        required=True,
        help="the witness's signer key file (witness-key)",
    )
    p.add_argument(
        "--state",
        dest="state_dir",
        type=Path,
        required=True,
        help="the witness's state directory (one per log)",
    )
    p.add_argument(
        "--note",
        dest="note_file",
        type=Path,
        help="read the checkpoint from this file, not from the registry",
    )
    p.add_argument("--origin", default="", help="the checkpoint origin expected (default: the state's)")
    p.add_argument("--no-submit", action="store_true", help="do not POST the cosigned note to the registry")

    p = commands.add_parser("witness-key", help="write a new witness signer key file; print its verifier key")
    p.add_argument("name", help="the witness's key name, e.g. witness.so-tttt.example.gov.vn")
    p.add_argument("--out", type=Path, help="the key file to create (default ./<name>.key, mode 0600)")

    p = commands.add_parser(
        "prove", parents=[log], help="prove one event is in a signed checkpoint, from the record itself"
    )
    p.add_argument("event_id")
    p.add_argument("--checkpoint", type=Path, required=True, help="a signed checkpoint note (file)")

    p = commands.add_parser(
        "check-consistency", parents=[log], help="prove a signed checkpoint extends an older one"
    )
    p.add_argument("--old", type=Path, required=True, help="the older signed checkpoint (file)")
    p.add_argument("--new", type=Path, required=True, help="the newer signed checkpoint (file)")
    return main


def _log_common() -> argparse.ArgumentParser:
    settings = AuditSettings()
    log = argparse.ArgumentParser(add_help=False)
    group = log.add_argument_group("the registry and the log's key")
    group.add_argument(
        "--registry", default=settings.registry_url, help=f"the registry's base URL (or {URL_ENV})"
    )
    group.add_argument(
        "--token",
        default=settings.registry_token,
        help=f"bearer token (agreements:read; log:witness to hand in cosignatures); better: {TOKEN_ENV}",
    )
    group.add_argument(
        "--log-key",
        required=True,
        help="the log's verifier key, Go note format <name>+<key ID>+<key> (or a file holding it);"
        " never the key the registry serves",
    )
    group.add_argument(
        "--policy",
        type=Path,
        help="a witnessing policy file (C2SP tlog-policy): refuse a checkpoint below its quorum",
    )
    group.add_argument("--timeout", type=float, default=30.0, help="seconds per HTTP request (default 30)")
    group.add_argument(
        "--json", dest="json_path", type=Path, metavar="PATH", help="write the full report as JSON"
    )
    return log


LOG_COMMANDS = ("witness", "witness-key", "prove", "check-consistency")


class _Printed:
    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body

    def to_json(self) -> dict[str, Any]:
        return self.body


async def run_log(args: argparse.Namespace) -> tuple[Report, str, int]:
    """The transparency log's commands: no database, only the registry's HTTP API."""
    command = args.command
    if command == "witness-key":
        path = args.out or Path(f"{args.name.replace('/', '_')}.key")
        key = new_witness_key(args.name, path)
        return _Printed({"key_file": str(path), "verifier_key": key}), key, OK
    log_key = read_log_key(args.log_key)
    if command == "witness":
        signer = read_witness_key(args.witness_key)
        done = await witness(
            log_key=log_key,
            signer=signer,
            state_dir=args.state_dir,
            registry=args.registry,
            token=args.token,
            note_file=args.note_file,
            origin=args.origin,
            submit=not args.no_submit,
            timeout=args.timeout,
        )
        code = FOUND if done.refused else (OK if done.delivered else UNAVAILABLE)
        return done, done.summary(), code
    policy = read_policy(args.policy) if getattr(args, "policy", None) else None
    if command == "prove":
        text = read_note_file(args.checkpoint, "--checkpoint")
        async with LogApi(args.registry, args.token, timeout=args.timeout) as api:
            proven = await prove(args.event_id, checkpoint_text=text, log_key=log_key, api=api, policy=policy)
        return proven, proven.summary(), OK if proven.ok else FOUND
    assert command == "check-consistency"
    old, new = read_note_file(args.old, "--old"), read_note_file(args.new, "--new")
    if args.registry:
        async with LogApi(args.registry, args.token, timeout=args.timeout) as api:
            checked = await check_consistency(
                old_text=old, new_text=new, log_key=log_key, api=api, policy=policy
            )
    else:
        checked = await check_consistency(
            old_text=old, new_text=new, log_key=log_key, api=None, policy=policy
        )
    return checked, checked.summary(), OK if checked.ok else FOUND


def settings_from(args: argparse.Namespace) -> AuditSettings:
    names = (
        "database_url",
        "kafka_bootstrap_servers",
        "topic",
        "consumer_group",
        "live_schema",
        "batch_size",
    )
    overrides: dict[str, Any] = {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}
    if getattr(args, "no_progress", False):
        overrides["progress_seconds"] = 0
    return AuditSettings(**overrides)


async def newest_shadow(settings: AuditSettings) -> str:
    conn = await asyncpg.connect(settings.database_url)
    try:
        names = [
            r["nspname"]
            for r in await conn.fetch(
                r"SELECT nspname FROM pg_namespace WHERE nspname LIKE 'shadow\_%' ORDER BY nspname DESC"
            )
        ]
        for name in names:
            meta = await read_meta(conn, name)
            if meta is not None and meta.get("status") == "complete":
                return str(name)
    finally:
        await conn.close()
    raise AuditError("no complete shadow_* schema found: run `rebuild` first, or pass --schema")


async def run(args: argparse.Namespace, settings: AuditSettings) -> tuple[Report, str, int]:
    command = args.command
    if command == "verify":
        verified = await verify(settings, skip_kafka=args.skip_kafka)
        return verified, verified.summary(), OK if verified.ok else FOUND
    if command == "rebuild":
        as_of = parse_instant(args.as_of) if args.as_of else None
        if args.schema:
            check_schema_name(args.schema, settings.live_schema)
        rebuilt = await rebuild(
            settings,
            source=args.source,
            schema=args.schema,
            as_of=as_of,
            replace=args.replace,
            workers=args.workers,
        )
        return rebuilt, rebuilt.summary(), OK
    if command == "diff":
        schema = args.schema or await newest_shadow(settings)
        compared = await diff(settings, schema, args.against)
        return compared, compared.summary(args.limit), OK if compared.consistent else FOUND
    if command == "swap":
        swapped = await swap(settings, args.schema, force=args.force, workers=args.workers)
        return swapped, swapped.summary(), OK
    assert command == "party"
    found = await party(settings, args.party_id, parse_instant(args.as_of), status=args.status)
    return found, found.summary(), OK


def _quiet_logs() -> None:
    # stdout carries the summary: the services' structured logs go to stderr, warnings only.
    structlog.configure(
        processors=[structlog.processors.add_log_level, structlog.dev.ConsoleRenderer(colors=False)],
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    _quiet_logs()
    try:
        if args.command in LOG_COMMANDS:
            report, text, code = asyncio.run(run_log(args))
        else:
            settings = settings_from(args)
            report, text, code = asyncio.run(run(args, settings))
    except AuditError as exc:
        print(f"audit {args.command}: refused: {exc}", file=sys.stderr)
        return REFUSED
    except (httpx.HTTPError, LogApiError) as exc:
        print(
            f"audit {args.command}: the registry could not be used: {type(exc).__name__}: {exc}",
            file=sys.stderr,
        )
        return UNAVAILABLE
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, KafkaError, TopicUnavailable) as exc:
        print(f"audit {args.command}: cannot proceed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return UNAVAILABLE
    except ValueError as exc:  # settings validation
        print(f"audit {args.command}: {exc}", file=sys.stderr)
        return REFUSED
    print(text)
    if getattr(args, "json_path", None) is not None:
        args.json_path.write_text(
            json.dumps(report.to_json(), ensure_ascii=False, indent=2, default=str) + "\n", encoding="utf-8"
        )
    return code


if __name__ == "__main__":
    sys.exit(main())
