"""Read-model queries (SQL only; the routes shape nothing but the HTTP response)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from typing import Any

import asyncpg
from coordreg_contracts import periods
from coordreg_contracts.common import Cadence

from services.common.search_text import search_key
from services.projections.readmodel.locality import locality_keys, locality_now


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


# A page of obligations resumes after the last one's key, in the order the lists are sorted by
# (docs/CONTRACT.md B7): (document_number, agreement_id, obligation_id), and the lead party too
# in the overdue report, where two successors may lead one obligation.
ObligationKey = tuple[str, str, str]
OverdueKey = tuple[str, str, str, str]


async def party_obligations(
    pool: asyncpg.Pool, party_id: str, status: str, after: ObligationKey | None = None, limit: int = 500
) -> list[dict[str, Any]]:
    """What the party holds now (`active`, `all`), or what it ceded when it ceased (`transferred`)."""
    if status == "transferred":
        return await party_transfers(pool, party_id, after, limit)
    rows = await pool.fetch(
        """SELECT agreement_id, document_number, agreement_title, obligation_id, title, role, cadence,
                  status, latest_report::text AS latest_report, inherited_from, inherited_on
           FROM party_obligations
           WHERE party_id = $1 AND ($2 = 'all' OR status = 'active')
             AND ($3::text IS NULL OR (document_number, agreement_id, obligation_id) > ($3, $4, $5))
           ORDER BY document_number, agreement_id, obligation_id
           LIMIT $6""",
        party_id,
        status,
        *(after or (None, None, None)),
        limit,
    )
    return [
        {
            **dict(r),
            "latest_report": json.loads(r["latest_report"]) if r["latest_report"] else None,
            "inherited_on": _iso(r["inherited_on"]),
        }
        for r in rows
    ]


async def party_transfers(
    pool: asyncpg.Pool, party_id: str, after: ObligationKey | None = None, limit: int = 500
) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        """SELECT agreement_id, document_number, agreement_title, obligation_id, title, cadence, status,
                  latest_report::text AS latest_report, inherited_from, inherited_on,
                  transferred_to, transferred_on
           FROM party_transfers
           WHERE party_id = $1
             AND ($2::text IS NULL OR (document_number, agreement_id, obligation_id) > ($2, $3, $4))
           ORDER BY document_number, agreement_id, obligation_id
           LIMIT $5""",
        party_id,
        *(after or (None, None, None)),
        limit,
    )
    return [
        {
            **dict(r),
            "latest_report": json.loads(r["latest_report"]) if r["latest_report"] else None,
            "inherited_on": _iso(r["inherited_on"]),
            "transferred_on": _iso(r["transferred_on"]),
        }
        for r in rows
    ]


def obligation_key(item: dict[str, Any]) -> ObligationKey:
    return (item["document_number"], item["agreement_id"], item["obligation_id"])


def overdue_key(item: dict[str, Any]) -> OverdueKey:
    return (item["document_number"], item["agreement_id"], item["obligation_id"], item["lead_party_id"])


async def succeeded_by(pool: asyncpg.Pool, party_id: str) -> dict[str, Any] | None:
    row = await pool.fetchrow(
        "SELECT successor_party_id, ceased_on, legal_basis FROM parties WHERE party_id = $1", party_id
    )
    if row is None or row["ceased_on"] is None:
        return None
    return {
        "successor_party_id": row["successor_party_id"],
        "effective_on": row["ceased_on"].isoformat(),
        "legal_basis": row["legal_basis"],
    }


async def party(pool: asyncpg.Pool, party_id: str) -> dict[str, Any] | None:
    """The directory entry, with the parties it succeeded and that succeeded it."""
    row = await pool.fetchrow("SELECT * FROM parties WHERE party_id = $1", party_id)
    if row is None:
        return None
    links = await pool.fetch(
        """SELECT s.predecessor_party_id = $1 AS outgoing,
                  CASE WHEN s.predecessor_party_id = $1 THEN s.successor_party_id
                       ELSE s.predecessor_party_id END AS party_id,
                  p.name, s.effective_on, s.legal_basis
           FROM party_successions s
           LEFT JOIN parties p
             ON p.party_id = CASE WHEN s.predecessor_party_id = $1 THEN s.successor_party_id
                                  ELSE s.predecessor_party_id END
           WHERE s.predecessor_party_id = $1 OR s.successor_party_id = $1
           ORDER BY s.effective_on, party_id""",
        party_id,
    )

    def linked(outgoing: bool) -> list[dict[str, Any]]:
        return [
            {
                "party_id": r["party_id"],
                "name": r["name"],
                "effective_on": r["effective_on"].isoformat(),
                "legal_basis": r["legal_basis"],
            }
            for r in links
            if r["outgoing"] is outgoing
        ]

    ceased = row["ceased_on"] is not None
    return {
        "party_id": row["party_id"],
        "name": row["name"],
        "kind": row["kind"],
        "province": row["province"],
        "province_now": locality_now(row["province"]) if row["province"] else None,
        "electronic_id": row["electronic_id"],
        "unit_code": row["unit_code"],
        "names": row["names"],
        "registered_from_agreement_id": row["registered_from_agreement_id"],
        "status": "ceased" if ceased else "active",
        "succession": {
            "effective_on": row["ceased_on"].isoformat(),
            "legal_basis": row["legal_basis"],
            "successor_party_id": row["successor_party_id"],
            "obligation_successors": row["obligation_successors"],
        }
        if ceased
        else None,
        "predecessors": linked(False),
        "successors": linked(True),
        "version": row["version"],
        "position": row["last_position"],
    }


async def party_history(pool: asyncpg.Pool, party_id: str, after: int, limit: int) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        """SELECT event_id, type, agreement_id, sequence, position, recorded_at, summary
           FROM party_history
           WHERE party_id = $1 AND position > $2
           ORDER BY position LIMIT $3""",
        party_id,
        after,
        limit,
    )
    return [{**dict(r), "recorded_at": r["recorded_at"].isoformat().replace("+00:00", "Z")} for r in rows]


def agreement_summary(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "agreement_id": row["agreement_id"],
        "document_number": row["document_number"],
        "kind": row["kind"],
        "title": row["title"],
        "locality": row["locality"],
        "locality_now": row["locality_now"],
        "document_type": row["document_type"],
        "status": row["status"],
        "signed_on": row["signed_on"].isoformat(),
        "term": {"start": row["term_start"].isoformat(), "end": row["term_end"].isoformat()},
        "party_ids": list(row["party_ids"]),
        "version": row["version"],
    }


async def agreements(
    pool: asyncpg.Pool,
    *,
    party_id: str | None,
    locality: str | None,
    status: str | None,
    after: int,
    limit: int,
    document_type: str | None = None,
) -> list[tuple[int, dict[str, Any]]]:
    """The listing without `q`: in the order of the agreements' signing, after position `after`."""
    rows = await pool.fetch(
        """SELECT * FROM agreements
           WHERE first_position > $1
             AND ($2::text IS NULL OR $2 = ANY(party_ids))
             AND ($3::text[] IS NULL OR locality_key = ANY($3) OR locality_now_key = ANY($3))
             AND ($4::text IS NULL OR status = $4)
             AND ($6::text IS NULL OR document_type = $6)
           ORDER BY first_position LIMIT $5""",
        after,
        party_id,
        locality_keys(locality) if locality else None,
        status,
        limit,
        document_type,
    )
    return [(r["first_position"], agreement_summary(r)) for r in rows]


@dataclass(frozen=True)
class Ranked:
    """Where a result stands in a search: its rank (a PostgreSQL `real`, exactly), then its signing."""

    rank: float
    first_position: int


def search_words(q: str) -> list[str]:
    """The words every match must hold, folded as `search_text` is (each once, in order)."""
    return list(dict.fromkeys(search_key(q).split()))


def like_pattern(word: str) -> str:
    """`%word%`, the word's own `%`, `_` and `\\` taken literally (LIKE's default escape is `\\`)."""
    escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def search_agreements(
    pool: asyncpg.Pool,
    *,
    party_id: str | None,
    locality: str | None,
    status: str | None,
    words: list[str],
    after: Ranked | None,
    limit: int,
    document_type: str | None = None,
) -> list[tuple[Ranked, dict[str, Any]]]:
    """Agreements whose search text holds every one of `words`, best match first (decision 14).

    A match holds each word as a substring, in any order: one `LIKE` per word, each served by
    the trigram index (migration 003). The rank is pg_trgm's `strict_word_similarity` of the
    query against the search text: how closely a run of whole words of the text matches the
    query's trigrams, so the query's words side by side (in any order) score 1, and words
    with others between them, or inside longer words, less. Ties go by signing:
    (rank, first_position) orders every match once, and `after` is a keyset on it.
    """
    sql, args = search_query(
        party_id=party_id,
        locality=locality,
        status=status,
        words=words,
        after=after,
        document_type=document_type,
    )
    rows = await pool.fetch(f"{sql} LIMIT ${len(args) + 1}", *args, limit)
    return [(Ranked(r["rank"], r["first_position"]), agreement_summary(r)) for r in rows]


def search_query(
    *,
    party_id: str | None,
    locality: str | None,
    status: str | None,
    words: list[str],
    after: Ranked | None,
    document_type: str | None = None,
) -> tuple[str, list[Any]]:
    """The search's SQL without its LIMIT, and its arguments (tests EXPLAIN it)."""
    if not words:
        raise ValueError("a search needs at least one word")
    args: list[Any] = [
        party_id,
        locality_keys(locality) if locality else None,
        status,
        " ".join(words),
        after.rank if after else None,
        after.first_position if after else None,
        document_type,
    ]
    # One parameter per word: a LIKE on an array (`LIKE ALL`) cannot use a GIN index.
    likes = "".join(
        f"\n                 AND a.search_text LIKE ${len(args) + n}" for n in range(1, len(words) + 1)
    )
    args += [like_pattern(word) for word in words]
    # pg_trgm is in `public` whatever the search_path (migration 003).
    sql = f"""SELECT * FROM (
               SELECT a.*, public.strict_word_similarity($4, a.search_text) AS rank
               FROM agreements a
               WHERE ($1::text IS NULL OR $1 = ANY(a.party_ids))
                 AND ($2::text[] IS NULL OR a.locality_key = ANY($2) OR a.locality_now_key = ANY($2))
                 AND ($3::text IS NULL OR a.status = $3)
                 AND ($7::text IS NULL OR a.document_type = $7){likes}
           ) m
           WHERE $5::real IS NULL OR m.rank < $5 OR (m.rank = $5 AND m.first_position > $6::bigint)
           ORDER BY m.rank DESC, m.first_position"""
    return sql, args


async def agreement_json(pool: asyncpg.Pool, agreement_id: str) -> str | None:
    """The agreement's document as the JSON text of its jsonb (members in jsonb's order)."""
    state: str | None = await pool.fetchval(
        "SELECT state::text FROM agreements WHERE agreement_id = $1", agreement_id
    )
    return state


async def applied_position(pool: asyncpg.Pool) -> int:
    """The last position the read models have applied (0 before the first)."""
    return int(await pool.fetchval("SELECT coalesce(max(position), 0) FROM applied"))


async def overdue(
    pool: asyncpg.Pool,
    period: str,
    after: OverdueKey | None = None,
    limit: int = 500,
    party_id: str | None = None,
) -> list[dict[str, Any]]:
    """Active obligations whose cadence asks for a report in `period` and with none from their lead;
    with `party_id`, only those of the agreements it is a current party of, whoever leads them."""
    cadences = [c.value for c in Cadence if periods.matches_cadence(period, c)]
    first, last = periods.bounds(period)
    rows = await pool.fetch(
        """SELECT o.party_id AS lead_party_id, o.agreement_id, o.document_number, o.agreement_title,
                  o.obligation_id, o.title, o.cadence
           FROM party_obligations o
           WHERE o.role = 'lead' AND o.status = 'active' AND o.cadence = ANY($1::text[])
             AND o.term_start <= $3 AND o.term_end >= $2
             AND NOT EXISTS (
                 SELECT 1 FROM reports r
                 WHERE r.agreement_id = o.agreement_id AND r.obligation_id = o.obligation_id
                   AND r.party_id = o.party_id AND r.period = $4)
             AND ($5::text IS NULL
                  OR (o.document_number, o.agreement_id, o.obligation_id, o.party_id) > ($5, $6, $7, $8))
             AND ($10::text IS NULL OR EXISTS (
                 SELECT 1 FROM agreements a
                 WHERE a.agreement_id = o.agreement_id AND $10 = ANY(a.party_ids)))
           ORDER BY o.document_number, o.agreement_id, o.obligation_id, o.party_id
           LIMIT $9""",
        cadences,
        first,
        last,
        period,
        *(after or (None, None, None, None)),
        limit,
        party_id,
    )
    return [dict(r) for r in rows]


async def has_applied(pool: asyncpg.Pool, position: int) -> bool:
    return bool(await pool.fetchval("SELECT EXISTS (SELECT 1 FROM applied WHERE position = $1)", position))


async def status(pool: asyncpg.Pool, group: str) -> dict[str, Any]:
    row = await pool.fetchrow(
        """SELECT (SELECT max(position) FROM applied) AS last_position,
                  (SELECT count(*) FROM applied) AS applied,
                  (SELECT count(*) FROM parked) AS parked,
                  (SELECT count(*) FROM dead_letters) AS dead_letters,
                  (SELECT max(applied_at) FROM applied) AS last_applied_at"""
    )
    offsets = await pool.fetch(
        "SELECT partition, next_offset FROM offsets WHERE consumer_group = $1 ORDER BY partition",
        group,
    )
    assert row is not None
    return {
        "last_position": row["last_position"] or 0,
        "applied_events": row["applied"],
        "parked_events": row["parked"],
        "dead_letters": row["dead_letters"],
        "last_applied_at": row["last_applied_at"].isoformat() if row["last_applied_at"] else None,
        "offsets": {str(r["partition"]): r["next_offset"] for r in offsets},
    }
