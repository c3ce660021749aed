"""The log's side of C2SP tlog-witness (https://c2sp.org/tlog-witness): the `add-checkpoint`
request a log sends a witness, and what the witness's answer means. Pure: no I/O (the registry's
feeder, services/registry/adapters/witness_feeder.py, sends and stores).

A request body is the old size line `old <size>`, the consistency proof from that size to the
checkpoint's (one base64 hash a line; none when the old size is 0), an empty line, then the
checkpoint as the log signed it. The answer:

* 200: signature lines (timestamped cosignature/v1, c2sp.org/tlog-cosignature) by the witness's
  key(s). Lines by keys the log does not know are ignored, as the spec says; those by the
  witness's key must verify on the checkpoint, with a timestamp that is neither zero nor
  ahead of the log's clock (by more than the skew it allows), and one at least must be there:
  else the answer is bad.
* 409 with `Content-Type: text/x.tlog.size`: the witness holds another size; the body is that
  size and a newline. The log starts again from it.
* 403 (the log's signature refused), 404 (origin unknown), 400 (old size above the checkpoint's)
  and 422 (the proof does not verify, or a same-size checkpoint with another root: a split view)
  are alarms: the witness refuses what the log presented.
* Anything else (5xx, 429, a timeout) is a failure to try again later.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from dataclasses import dataclass

from services.transparency import note

ADD_CHECKPOINT = "add-checkpoint"
SIZE_CONTENT_TYPE = "text/x.tlog.size"
MAX_PROOF_LINES = 63
"""The most consistency proof lines a request may carry (the spec's limit)."""
ALARM_STATUSES = frozenset({400, 403, 404, 422})
"""The answers by which a witness refuses what the log presented (see the module's text)."""
EXCERPT_BYTES = 200
"""How much of an answer an alarm quotes."""

_HASH_SIZE = 32
_DECIMAL = re.compile(r"(0|[1-9][0-9]{0,18})\n")


class WitnessProtocolError(ValueError):
    """A request that cannot be built as the spec says (the message says why)."""


def add_checkpoint_url(prefix: str) -> str:
    """`<submission prefix>/add-checkpoint`, whether or not the prefix ends in a slash."""
    return f"{prefix.rstrip('/')}/{ADD_CHECKPOINT}"


def add_checkpoint_body(old_size: int, proof: Sequence[bytes], signed_checkpoint: str) -> bytes:
    """The request body: `old <size>`, the proof's lines, an empty line, the signed checkpoint."""
    if isinstance(old_size, bool) or not isinstance(old_size, int) or old_size < 0:
        raise WitnessProtocolError(f"the old size is a non-negative integer, not {old_size!r}")
    if old_size == 0 and proof:
        raise WitnessProtocolError("from size 0 the consistency proof is empty")
    if len(proof) > MAX_PROOF_LINES:
        raise WitnessProtocolError(f"a consistency proof has at most {MAX_PROOF_LINES} lines")
    if any(len(h) != _HASH_SIZE for h in proof):
        raise WitnessProtocolError(f"each consistency proof hash is {_HASH_SIZE} bytes")
    note.parse_note(signed_checkpoint)  # a signed note, or NoteError
    lines = [f"old {old_size}", *(base64.b64encode(h).decode("ascii") for h in proof)]
    return ("".join(line + "\n" for line in lines) + "\n" + signed_checkpoint).encode("utf-8")


@dataclass(frozen=True)
class Cosigned:
    """200: the witness's verified signature lines on the checkpoint."""

    signatures: tuple[note.Signature, ...]


@dataclass(frozen=True)
class Conflict:
    """409: the witness's latest cosigned size, from which to start again."""

    size: int


@dataclass(frozen=True)
class Alarm:
    """The witness refused what the log presented, or answered against the protocol.
    `reason`: the HTTP status ("422"), or "bad-cosignature" / "bad-size" for a 200 or 409
    whose body does not hold what the spec says; `excerpt`: the answer's first bytes."""

    reason: str
    excerpt: str


@dataclass(frozen=True)
class Failed:
    """Any other answer (5xx, 429, …): the witness could not answer now; try again later."""

    status: int
    excerpt: str


Answer = Cosigned | Conflict | Alarm | Failed


def excerpt(body: bytes) -> str:
    """An answer's first bytes as printable text, for a log line."""
    return body[:EXCERPT_BYTES].decode("utf-8", errors="replace")


def read_answer(
    status: int,
    content_type: str,
    body: bytes,
    signed_checkpoint: str,
    key: note.Verifier,
    not_after: int | None = None,
) -> Answer:
    """What a witness answered to `add-checkpoint` with `signed_checkpoint` (the note as sent):
    its cosignatures verified with its `key` (never trusted unverified), its size, an alarm or a
    failure. `not_after`: the latest timestamp a cosignature may carry (POSIX seconds; the
    registry's clock and the skew it allows), None for any."""
    if status == 200:
        return _cosigned(body, signed_checkpoint, key, not_after)
    if status == 409:
        media_type = content_type.split(";", 1)[0].strip().lower()
        text = body.decode("ascii", errors="replace")
        if media_type != SIZE_CONTENT_TYPE or not _DECIMAL.fullmatch(text) or int(text) >= 1 << 63:
            return Alarm("bad-size", excerpt(body))
        return Conflict(int(text))
    if status in ALARM_STATUSES:
        return Alarm(str(status), excerpt(body))
    return Failed(status, excerpt(body))


def _cosigned(body: bytes, signed_checkpoint: str, key: note.Verifier, not_after: int | None) -> Answer:
    # As the spec suggests: the lines appended to the checkpoint make a note to parse.
    try:
        text = body.decode("utf-8")
        parsed = note.parse_note(signed_checkpoint + text) if text else None
    except (UnicodeDecodeError, note.NoteError):
        return Alarm("bad-cosignature", excerpt(body))
    sent_note = note.parse_note(signed_checkpoint)
    if parsed is None or parsed.body != sent_note.body:
        return Alarm("bad-cosignature", excerpt(body))
    sent = len(sent_note.signatures)
    message = parsed.body.encode("utf-8")
    mine = [s for s in parsed.signatures[sent:] if (s.name, s.key_id) == (key.name, key.key_id)]
    if not mine or not all(key.verify(message, s.signature) for s in mine):
        return Alarm("bad-cosignature", excerpt(body))
    # cosignature/v1: "the timestamp MUST NOT be zero" (tlog-witness), nor in the future.
    if isinstance(key, note.CosignatureVerifier):
        times = [note.cosignature_time(s) for s in mine]
        if 0 in times or (not_after is not None and max(times) > not_after):
            return Alarm("bad-cosignature", excerpt(body))
    return Cosigned(tuple(dict.fromkeys(mine)))
