"""`verify`: the record is complete and untampered, proven from the store and Kafka themselves.

Store (one REPEATABLE READ snapshot, every stream in sequence order: the agreements' and the
party directory's, `party/<party_id>`, which share the table, the topic and every check):
- the envelope parses, is canonical JSON, and its `hash` is the SHA-256 recomputed here;
- `prevhash` is the hash of the agreement's previous event ("" for sequence 1);
- its stored signature, if it has one, is the registry event key's signature of its stored `hash`
  (AUDIT_EVENT_VERIFIER_KEYS; docs/adr/0003-signed-envelopes.md); events without one are counted;
- sequences run 1..n without a gap, and positions grow with sequences;
- the row's columns agree with the envelope (subject, sequence, id, type, time);
- the payload is a valid event of its type and folds onto its predecessors (`evolve` for an
  agreement, `ObligationsTransferred` included; `evolve_party` for a party's stream).

Kafka (every partition from the beginning up to the end offsets taken BEFORE the store
snapshot, so anything on Kafka was committed to the store first):
- every stored event is on Kafka at least once, byte for byte `StoredEvent.message()`;
- every record on Kafka is a stored event (nothing forged, nothing deleted from the store);
- an agreement's events are in one partition, first occurrences in sequence order;
- the key is the stream id (the subject); duplicates (a relay retry) are counted, not faults.

A stored event not found is looked for again after the first pass (the relay may have
published it meanwhile); one still queued in the outbox is reported as pending.

The transparency log (services/audit/logtree.py, in the same snapshot): every event is a leaf
of the Merkle tree or queued for it, each leaf's hash is its event's record's, and the signed
checkpoints (AUDIT_LOG_VERIFIER_KEY) have the roots of the stored and of the recomputed tree.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
from coordreg_contracts.envelope import Envelope, canonical_json, envelope_hash
from coordreg_contracts.parties import is_party_subject
from pydantic import ValidationError

from services.agreement.state import AgreementState, evolve
from services.audit.kafkalog import Record, TopicReader
from services.audit.logtree import (
    TREE,
    LeafRecord,
    TreeReport,
    check_tree,
    tree_present,
)
from services.audit.progress import Progress
from services.audit.settings import AuditSettings, parse_verifier_keys, parse_witness_keys
from services.common.envelope_signatures import EnvelopeVerifier, RecordRefused
from services.directory.state import PartyState, evolve_party
from services.registry.service_layer.event_store import StoredEvent
from services.transparency import merkle

STORE = "store"
KAFKA = "kafka"


@dataclass(frozen=True)
class Problem:
    stream_id: str
    sequence: int | None
    position: int | None
    source: str  # store | kafka | tree
    check: str
    detail: str
    # The event's leaf in the transparency log's tree, for a `tree` problem that has one.
    leaf_index: int | None = None

    def sort_key(self) -> tuple[int, int, int]:
        # The first bad event: lowest sequence; a located one before an unlocated one.
        return (
            self.sequence if self.sequence is not None else 2**62,
            0 if self.position is not None else 1,
            0 if self.source == STORE else 1,
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "agreement_id": self.stream_id,
            "sequence": self.sequence,
            "position": self.position,
            "source": self.source,
            "check": self.check,
            "detail": self.detail,
        }
        if self.leaf_index is not None:
            out["leaf_index"] = self.leaf_index
        return out

    def line(self) -> str:
        seq = self.sequence if self.sequence is not None else "?"
        pos = self.position if self.position is not None else "?"
        return f"{self.stream_id} sequence {seq} position {pos}: [{self.source}/{self.check}] {self.detail}"


@dataclass
class VerifyReport:
    store_events: int = 0
    agreements: int = 0
    # The party directory's streams (`party/<party_id>`, decision 15), counted apart.
    party_streams: int = 0
    kafka_checked: bool = False
    kafka_records: int = 0
    kafka_duplicates: int = 0
    kafka_partitions: int = 0
    pending_in_outbox: int = 0
    # Stored events without a signature (appended before migration 009, or by a store without a key).
    unsigned: int = 0
    store_seconds: float = 0.0
    kafka_seconds: float = 0.0
    problems: list[Problem] = field(default_factory=list)
    # The transparency log's tree against the store (services/audit/logtree.py).
    tree: TreeReport = field(default_factory=TreeReport)

    @property
    def ok(self) -> bool:
        return not self.problems and not self.tree.problems

    def broken(self) -> dict[str, list[Problem]]:
        by_stream: dict[str, list[Problem]] = defaultdict(list)
        for problem in self.problems:
            by_stream[problem.stream_id].append(problem)
        return {a: sorted(ps, key=Problem.sort_key) for a, ps in sorted(by_stream.items())}

    def first_bad(self) -> list[Problem]:
        return [problems[0] for problems in self.broken().values()]

    def to_json(self) -> dict[str, Any]:
        broken = self.broken()
        return {
            "command": "verify",
            "ok": self.ok,
            "store_events": self.store_events,
            "agreements": self.agreements,
            "party_streams": self.party_streams,
            "kafka_checked": self.kafka_checked,
            "kafka_records": self.kafka_records,
            "kafka_duplicates": self.kafka_duplicates,
            "kafka_partitions": self.kafka_partitions,
            "pending_in_outbox": self.pending_in_outbox,
            "unsigned": self.unsigned,
            "store_seconds": round(self.store_seconds, 3),
            "kafka_seconds": round(self.kafka_seconds, 3),
            "broken_agreements": sum(1 for a in broken if not is_party_subject(a)),
            "broken_party_streams": sum(1 for a in broken if is_party_subject(a)),
            "first_bad": [p.to_json() for p in self.first_bad()],
            "problems": {a: [p.to_json() for p in ps] for a, ps in broken.items()},
            "tree": self.tree.to_json(),
        }

    def summary(self) -> str:
        lines = [
            f"event store: {self.store_events:,} events in {self.agreements:,} agreements"
            f" and {self.party_streams:,} party streams checked in {self.store_seconds:.1f}s",
        ]
        if self.kafka_checked:
            lines.append(
                f"kafka: {self.kafka_records:,} records in {self.kafka_partitions} partitions"
                f" ({self.kafka_duplicates:,} duplicates) checked in {self.kafka_seconds:.1f}s"
            )
            if self.pending_in_outbox:
                lines.append(f"pending: {self.pending_in_outbox:,} stored events still queued for Kafka")
        else:
            lines.append("kafka: not checked (--skip-kafka)")
        if self.unsigned:
            lines.append(f"unsigned: {self.unsigned:,} stored events carry no registry signature")
        lines.append(self.tree.summary_line())
        broken = self.broken()
        if not broken and not self.tree.problems:
            lines.append(
                "OK: every hash chain is intact"
                + (" and Kafka holds exactly the store" if self.kafka_checked else "")
                + (" and the tree matches the store" if self.tree.checked else "")
            )
            return "\n".join(lines)
        if broken:
            lines.append(f"BROKEN: {len(broken)} stream(s); the first bad event of each:")
            for problems in broken.values():
                more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
                lines.append(f"  {problems[0].line()}{more}")
        if self.tree.problems:
            lines.append(f"BROKEN TREE: {len(self.tree.problems)} problem(s) of the log as a whole:")
            lines.extend(f"  {problem.line()}" for problem in self.tree.problems)
        return "\n".join(lines)


@dataclass
class _Stored:
    position: int
    digest: bytes
    seen: bool = False


@dataclass
class _Chain:
    """Walks one stream's rows in sequence order."""

    stream_id: str
    expected: int = 1
    last_hash: str | None = ""
    last_position: int = 0
    state: AgreementState | None = None
    party: PartyState | None = None
    foldable: bool = True


def _digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


class StoreWalk:
    def __init__(
        self, report: VerifyReport, *, leaves: bool = False, signatures: EnvelopeVerifier | None = None
    ) -> None:
        self.report = report
        self.signatures = signatures
        self.index: dict[tuple[str, int], _Stored] = {}
        self.chain: _Chain | None = None
        # position → the leaf hash of the event's record, when the tree is checked.
        self.leaves: dict[int, LeafRecord] | None = {} if leaves else None

    def problem(self, row: asyncpg.Record, check: str, detail: str, sequence: int | None = None) -> None:
        self.report.problems.append(
            Problem(
                row["agreement_id"],
                row["sequence"] if sequence is None else sequence,
                row["position"] if sequence is None else None,
                STORE,
                check,
                detail,
            )
        )

    def row(self, row: asyncpg.Record) -> None:
        stream_id: str = row["agreement_id"]
        sequence: int = row["sequence"]
        position: int = row["position"]
        text: str = row["envelope"]
        if self.chain is None or self.chain.stream_id != stream_id:
            self.chain = _Chain(stream_id)
            if is_party_subject(stream_id):
                self.report.party_streams += 1
            else:
                self.report.agreements += 1
        chain = self.chain
        self.report.store_events += 1
        if self.leaves is not None:
            record = StoredEvent(position, stream_id, sequence, text).message()
            self.leaves[position] = LeafRecord(stream_id, sequence, merkle.leaf_hash(record))

        gap = sequence != chain.expected
        if gap:
            missing = (
                f"sequence {chain.expected} is missing"
                if sequence == chain.expected + 1
                else f"sequences {chain.expected}..{sequence - 1} are missing"
            )
            self.problem(
                row, "gap", f"{missing} from the store (next stored: sequence {sequence})", chain.expected
            )
            chain.foldable = False
        if position <= chain.last_position:
            self.problem(
                row,
                "order",
                f"position {position} is not after position {chain.last_position} of the previous sequence",
            )

        try:
            doc = json.loads(text)
            if not isinstance(doc, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            self.problem(row, "envelope", f"the stored envelope is not a JSON object: {exc}")
            self._advance(chain, sequence, position, None)
            return
        self.index[(stream_id, sequence)] = _Stored(
            position, _digest(canonical_json({**doc, "position": position}))
        )
        self._columns(row, doc)
        if "position" in doc:
            self.problem(row, "envelope", "the stored envelope carries a position (it must not)")
        if canonical_json(doc).decode("utf-8") != text:
            self.problem(row, "envelope", "the stored envelope is not canonical JSON")
        recomputed = envelope_hash(doc)
        if doc.get("hash") != recomputed:
            self.problem(row, "hash", f"hash {str(doc.get('hash'))[:16]}… != recomputed {recomputed[:16]}…")
        # Over the stored `hash`, so that each check names one fault: a changed body is `hash`,
        # a hash (and body) the registry did not sign is `signature`.
        self._signature(row, doc.get("hash"))
        if not gap and chain.last_hash is not None and doc.get("prevhash") != chain.last_hash:
            expected = chain.last_hash[:16] + "…" if chain.last_hash else '""'
            self.problem(
                row,
                "prevhash",
                f"prevhash {str(doc.get('prevhash'))[:16]}… does not link to sequence {sequence - 1} ({expected})",
            )
        envelope = self._envelope(row, doc)
        if envelope is not None and chain.foldable:
            try:
                if is_party_subject(stream_id):
                    # A party directory stream (decision 15) folds into its own model.
                    chain.party = evolve_party(chain.party, envelope.party_event())
                else:
                    chain.state = evolve(chain.state, envelope.event())
            except (ValidationError, ValueError, TypeError, KeyError) as exc:
                self.problem(row, "event", f"the {doc.get('type')} payload does not apply: {_short(exc)}")
                chain.foldable = False
        self._advance(
            chain, sequence, position, doc.get("hash") if isinstance(doc.get("hash"), str) else None
        )

    def _signature(self, row: asyncpg.Record, stored_hash: object) -> None:
        signature = row.get("signature")
        if signature is None:
            self.report.unsigned += 1
        elif self.signatures is not None:
            try:
                self.signatures.check(str(stored_hash), signature)
            except RecordRefused as exc:
                self.problem(row, "signature", str(exc))

    @staticmethod
    def _advance(chain: _Chain, sequence: int, position: int, last_hash: str | None) -> None:
        chain.expected = sequence + 1
        chain.last_hash = last_hash
        chain.last_position = max(chain.last_position, position)

    def _columns(self, row: asyncpg.Record, doc: dict[str, Any]) -> None:
        mismatches = []
        if doc.get("subject") != row["agreement_id"]:
            mismatches.append(f"subject {doc.get('subject')!r} != agreement_id {row['agreement_id']!r}")
        if doc.get("sequence") != row["sequence"]:
            mismatches.append(f"sequence {doc.get('sequence')!r} != row sequence {row['sequence']}")
        if doc.get("id") != str(row["event_id"]):
            mismatches.append(f"id {doc.get('id')!r} != event_id {row['event_id']}")
        if doc.get("type") != row["event_type"]:
            mismatches.append(f"type {doc.get('type')!r} != event_type {row['event_type']!r}")
        try:
            same_time = datetime.fromisoformat(str(doc.get("time"))) == row["recorded_at"]
        except ValueError:
            same_time = False
        if not same_time:
            mismatches.append(f"time {doc.get('time')!r} != recorded_at {row['recorded_at'].isoformat()}")
        if mismatches:
            self.problem(row, "row", "row columns disagree with the envelope: " + "; ".join(mismatches))

    def _envelope(self, row: asyncpg.Record, doc: dict[str, Any]) -> Envelope | None:
        try:
            return Envelope.model_validate(doc)
        except ValidationError as exc:
            self.problem(row, "envelope", f"not a valid envelope: {_short(exc)}")
            return None


def _short(exc: Exception) -> str:
    return " ".join(str(exc).split())[:300]


class KafkaCheck:
    def __init__(self, report: VerifyReport, index: dict[tuple[str, int], _Stored]) -> None:
        self.report = report
        self.index = index
        self.partition_of: dict[str, int] = {}
        self.highest: dict[str, int] = {}
        self.on_kafka: set[tuple[str, int]] = set()

    def problem(
        self, stream_id: str, sequence: int | None, position: int | None, check: str, detail: str
    ) -> None:
        self.report.problems.append(Problem(stream_id, sequence, position, KAFKA, check, detail))

    def record(self, record: Record, *, late: bool = False) -> None:
        """Checks one record; a `late` one (after the first end offsets) may be newer than the snapshot."""
        where = f"partition {record.partition} offset {record.offset}"
        key = record.key.decode("utf-8", "replace") if record.key is not None else None
        try:
            doc = json.loads(record.value)
            stream_id, sequence = doc["subject"], doc["sequence"]
            position = doc.get("position")
            if not isinstance(stream_id, str) or not isinstance(sequence, int):
                raise TypeError("subject or sequence of the wrong type")
        except (ValueError, KeyError, TypeError) as exc:
            if not late:
                self.report.kafka_records += 1
                self.problem(
                    key or "(no key)",
                    None,
                    None,
                    "forged",
                    f"record at {where} is not an event envelope: {exc}",
                )
            return
        stored = self.index.get((stream_id, sequence))
        if late and (stored is None or stored.seen):
            return
        self.report.kafka_records += 1
        if key != stream_id:
            self.problem(
                stream_id,
                sequence,
                position,
                "key",
                f"record at {where} has key {key!r}, not its stream id",
            )
        first = self.partition_of.setdefault(stream_id, record.partition)
        if first != record.partition:
            self.problem(
                stream_id,
                sequence,
                position,
                "partition",
                f"record at {where}: the agreement's events are split across partitions {first} and {record.partition}",
            )
        if stored is None:
            self.problem(
                stream_id,
                sequence,
                position,
                "not-in-store",
                f"on Kafka at {where} but not in the event store (deleted from the store, or forged on Kafka)",
            )
        elif _digest(record.value) != stored.digest:
            self.problem(
                stream_id,
                sequence,
                position if position is not None else stored.position,
                "differs",
                f"the record at {where} differs from the stored event (store position {stored.position})",
            )
        elif stored.seen:
            self.report.kafka_duplicates += 1
        else:
            stored.seen = True
        if (stream_id, sequence) in self.on_kafka:
            return
        self.on_kafka.add((stream_id, sequence))
        highest = self.highest.get(stream_id, 0)
        if sequence < highest:
            self.problem(
                stream_id,
                sequence,
                position,
                "kafka-order",
                f"first appears at {where}, after sequence {highest} of the same agreement",
            )
        self.highest[stream_id] = max(highest, sequence)

    def unseen(self) -> list[tuple[str, int]]:
        """Stored events not on Kafka at all (one found with other bytes is reported as `differs`)."""
        return [key for key, stored in self.index.items() if not stored.seen and key not in self.on_kafka]


async def verify(settings: AuditSettings, *, skip_kafka: bool = False) -> VerifyReport:
    report = VerifyReport()
    async with contextlib.AsyncExitStack() as stack:
        reader: TopicReader | None = None
        ends: dict[int, int] = {}
        begins: dict[int, int] = {}
        if not skip_kafka:
            reader = await stack.enter_async_context(TopicReader(settings.kafka_connection(), settings.topic))
            # Before the store snapshot: every record below these offsets was committed first.
            ends = await reader.end_offsets()
            begins = await reader.beginning_offsets()
        walk, outbox = await _walk_store(settings, report)
        if reader is not None:
            await _check_kafka(settings, report, reader, walk, outbox, begins, ends)
    return report


async def _walk_store(
    settings: AuditSettings, report: VerifyReport
) -> tuple[StoreWalk, set[tuple[str, int]]]:
    verifiers = parse_verifier_keys(settings.log_verifier_key)
    conn = await asyncpg.connect(settings.database_url)
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            walk = StoreWalk(report, leaves=await tree_present(conn), signatures=settings.envelope_verifier())
            total = int(await conn.fetchval("SELECT count(*) FROM registry.events"))
            progress = Progress("verify store", total, every=settings.progress_seconds)
            cursor = await conn.cursor(
                """SELECT position, agreement_id, sequence, event_id, event_type, recorded_at, envelope,
                          signature
                   FROM registry.events ORDER BY agreement_id, sequence"""
            )
            while rows := await cursor.fetch(settings.batch_size):
                for row in rows:
                    walk.row(row)
                progress.advance(len(rows))
            outbox = {
                (r["agreement_id"], r["sequence"])
                for r in await conn.fetch("SELECT agreement_id, sequence FROM registry.outbox")
            }
            report.store_seconds = progress.finish()
            if walk.leaves is not None:
                await check_tree(
                    conn,
                    walk.leaves,
                    verifiers,
                    report.tree,
                    _tree_problem(report),
                    settings.batch_size,
                    parse_witness_keys(settings.log_witness_keys),
                )
    finally:
        await conn.close()
    return walk, outbox


def _tree_problem(report: VerifyReport) -> Callable[..., None]:
    def add(
        stream_id: str, sequence: int, position: int, check: str, detail: str, leaf_index: int | None
    ) -> None:
        report.problems.append(Problem(stream_id, sequence, position, TREE, check, detail, leaf_index))

    return add


async def _check_kafka(
    settings: AuditSettings,
    report: VerifyReport,
    reader: TopicReader,
    walk: StoreWalk,
    outbox: set[tuple[str, int]],
    begins: dict[int, int],
    ends: dict[int, int],
) -> None:
    report.kafka_checked = True
    report.kafka_partitions = len(reader.partitions)
    check = KafkaCheck(report, walk.index)
    total = sum(max(0, ends[p] - begins.get(p, 0)) for p in ends)
    progress = Progress("verify kafka", total, unit="records", every=settings.progress_seconds)
    async for records in reader.read(begins, ends, max_records=settings.batch_size):
        for record in records:
            check.record(record)
        progress.advance(len(records))
    if check.unseen():
        # Published after the first end offsets were taken? Read on to the current end.
        later = await reader.end_offsets()
        async for records in reader.read(ends, later, max_records=settings.batch_size):
            for record in records:
                check.record(record, late=True)
    for stream_id, sequence in sorted(check.unseen()):
        stored = walk.index[(stream_id, sequence)]
        if (stream_id, sequence) in outbox:
            report.pending_in_outbox += 1
            continue
        report.problems.append(
            Problem(
                stream_id,
                sequence,
                stored.position,
                KAFKA,
                "not-on-kafka",
                "in the event store but never published to Kafka, and not queued in the outbox"
                " (inserted into the store behind the registry's back?)",
            )
        )
    report.kafka_seconds = progress.finish()
