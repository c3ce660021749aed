"""Which checkpoints count: a C2SP tlog-policy file (https://c2sp.org/tlog-policy), read and
applied. Pure: no I/O.

A policy names the logs (their verifier keys; the key name is the log's origin), the witnesses
(a local name, a cosignature verifier key, and optionally the URL the log submits checkpoints
to: the C2SP tlog-witness "submission prefix"), groups of them with a threshold, and the quorum:
the witness or group whose "witnessing" makes a checkpoint count. A checkpoint counts when one
of the logs signed it and the quorum witnessed it.

    log example.gov.vn/agreements+0a1b2c3d+AQ...
    witness bo-tu-phap witness.moj.example.gov.vn+12345678+BA... https://witness.moj.example.gov.vn
    witness so-tttt   ...
    witness so-noi-vu ...
    group doc-lap 2 bo-tu-phap so-tttt so-noi-vu
    quorum doc-lap
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from services.transparency import note

__all__ = ["Group", "Policy", "PolicyError", "PolicyWitness", "parse_policy"]

MAX_ITEMS = 64
"""Logs, witnesses and groups a policy may define, each (the spec asks for at least 32)."""

_NONE = "none"
_WHITESPACE = " \t"
_KEYWORDS = ("log", "witness", "group", "quorum")


class PolicyError(ValueError):
    """A policy file that does not follow C2SP tlog-policy (the message names the line)."""


@dataclass(frozen=True)
class PolicyWitness:
    name: str
    verifier: note.Verifier
    url: str | None = None


@dataclass(frozen=True)
class Group:
    name: str
    threshold: int
    members: tuple[str, ...]


@dataclass(frozen=True)
class Policy:
    logs: tuple[note.Verifier, ...]
    witnesses: tuple[PolicyWitness, ...]
    groups: tuple[Group, ...]
    quorum: str
    # The file as read: what the registry publishes (GET /v1/log/keys).
    source: str = field(default="", compare=False)

    def witness(self, name: str) -> PolicyWitness | None:
        return next((w for w in self.witnesses if w.name == name), None)

    def quorum_met(self, cosigners: Iterable[str]) -> bool:
        """Whether the witnesses named (by their names in this policy) make the quorum."""
        return self._witnessed(self.quorum, frozenset(cosigners))

    def _witnessed(self, name: str, cosigners: frozenset[str]) -> bool:
        if name == _NONE:
            return True
        group = next((g for g in self.groups if g.name == name), None)
        if group is None:
            return name in cosigners
        return sum(self._witnessed(member, cosigners) for member in group.members) >= group.threshold

    def cosigners(self, note_text: str | bytes) -> list[str]:
        """The names of this policy's witnesses whose cosignatures on the note verify, in the
        policy's order. NoteError if the note is malformed, if no log of the policy signed it,
        or if a signature by a known key does not verify (the signed-note rule: a bad signature
        by a known key rejects the note)."""
        verifiers = [*self.logs, *(w.verifier for w in self.witnesses)]
        _, verified = note.open_note(note_text, verifiers)
        slots = {(s.name, s.key_id) for s in verified}
        if not any((log.name, log.key_id) in slots for log in self.logs):
            raise note.NoteError("the note carries no signature of a log this policy names")
        return [w.name for w in self.witnesses if (w.verifier.name, w.verifier.key_id) in slots]

    def required(self, of: str = "of", no_witness: str = "no witness") -> str:
        """The quorum in words, for messages: "2 of (bo-tu-phap, so-tttt, so-noi-vu)"; `of` and
        `no_witness` in another language for a page."""
        return self._describe(self.quorum, of, no_witness)

    def _describe(self, name: str, of: str, no_witness: str) -> str:
        if name == _NONE:
            return no_witness
        group = next((g for g in self.groups if g.name == name), None)
        if group is None:
            return name
        members = ", ".join(self._describe(m, of, no_witness) for m in group.members)
        return f"{group.threshold} {of} ({members})" if len(group.members) > 1 else members


def _fields(line: str) -> list[str]:
    for ch in _WHITESPACE:
        line = line.replace(ch, " ")
    return [part for part in line.split(" ") if part]


def _check_characters(text: str) -> None:
    for number, line in enumerate(text.split("\n"), 1):
        for ch in line:
            if (ord(ch) < 0x20 and ch != "\t") or ord(ch) == 0x7F:
                raise PolicyError(f"line {number}: control character U+{ord(ch):04X}")


def _key(vkey: str, number: int, parse: type[note.Verifier]) -> note.Verifier:
    try:
        verifier = note.parse_witness_key(vkey)
    except note.NoteError as exc:
        raise PolicyError(f"line {number}: {exc}") from None
    if type(verifier) is not parse:
        wanted = (
            "a cosignature key (type 0x04)" if parse is note.CosignatureVerifier else "a log key (type 0x01)"
        )
        raise PolicyError(f"line {number}: {vkey.split('+', 1)[0]} is not {wanted}")
    return verifier


def _threshold(text: str, members: Sequence[str], number: int) -> int:
    if text == "all":
        return len(members)
    if text == "any":
        return 1
    if not text.isascii() or not text.isdigit() or (len(text) > 1 and text[0] == "0"):
        raise PolicyError(f"line {number}: a group's threshold is all, any or a decimal number, not {text!r}")
    threshold = int(text)
    if not 1 <= threshold <= len(members):
        raise PolicyError(f"line {number}: a threshold of {threshold} needs 1 … {len(members)}")
    return threshold


def parse_policy(text: str | bytes) -> Policy:
    """Read a policy file; PolicyError (naming the line) unless it follows C2SP tlog-policy."""
    if isinstance(text, bytes | bytearray):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError:
            raise PolicyError("a policy file is UTF-8 text") from None
    _check_characters(text)
    logs: list[note.Verifier] = []
    witnesses: list[PolicyWitness] = []
    groups: list[Group] = []
    quorum: str | None = None
    names: set[str] = set()

    def define(name: str, number: int) -> None:
        if name == _NONE or name in names:
            raise PolicyError(
                f"line {number}: the name {name!r} is {'reserved' if name == _NONE else 'taken'}"
            )
        if len(names) >= 2 * MAX_ITEMS:
            raise PolicyError(f"line {number}: too many names (at most {MAX_ITEMS} witnesses and groups)")
        names.add(name)

    for number, line in enumerate(text.split("\n"), 1):
        parts = _fields(line)
        if not parts or parts[0].startswith("#"):
            continue
        keyword, arguments = parts[0], parts[1:]
        if keyword == "log":
            if len(arguments) not in (1, 2):
                raise PolicyError(f"line {number}: log <vkey> [<url>]")
            log = _key(arguments[0], number, note.Verifier)
            if any(other.public_key_bytes == log.public_key_bytes for other in logs):
                raise PolicyError(f"line {number}: the log key is listed twice")
            if len(logs) >= MAX_ITEMS:
                raise PolicyError(f"line {number}: too many logs (at most {MAX_ITEMS})")
            logs.append(log)
        elif keyword == "witness":
            if len(arguments) not in (2, 3):
                raise PolicyError(f"line {number}: witness <name> <vkey> [<url>]")
            define(arguments[0], number)
            verifier = _key(arguments[1], number, note.CosignatureVerifier)
            if any(w.verifier.public_key_bytes == verifier.public_key_bytes for w in witnesses):
                raise PolicyError(f"line {number}: the witness key is listed twice")
            url = arguments[2] if len(arguments) == 3 else None
            if url is not None and not url.startswith(("https://", "http://")):
                raise PolicyError(f"line {number}: a witness's URL is an http(s) address, not {url!r}")
            witnesses.append(PolicyWitness(arguments[0], verifier, url))
        elif keyword == "group":
            if len(arguments) < 3:
                raise PolicyError(f"line {number}: group <name> <all|any|k> <member>...")
            name, threshold_text, members = arguments[0], arguments[1], tuple(arguments[2:])
            for member in members:
                if member == _NONE or member not in names:
                    raise PolicyError(f"line {number}: {member!r} is not a witness or group defined above")
            if len(set(members)) != len(members):
                raise PolicyError(f"line {number}: a member is listed twice")
            threshold = _threshold(threshold_text, members, number)
            define(name, number)
            groups.append(Group(name, threshold, members))
        elif keyword == "quorum":
            if len(arguments) != 1:
                raise PolicyError(f"line {number}: quorum <name>")
            if quorum is not None:
                raise PolicyError(f"line {number}: a policy has exactly one quorum line")
            if arguments[0] != _NONE and arguments[0] not in names:
                raise PolicyError(f"line {number}: {arguments[0]!r} is not a witness or group defined above")
            quorum = arguments[0]
        else:
            raise PolicyError(f"line {number}: unknown keyword {keyword!r} (one of {', '.join(_KEYWORDS)})")
    if quorum is None:
        raise PolicyError("a policy needs a quorum line (quorum none: no witness required)")
    return Policy(tuple(logs), tuple(witnesses), tuple(groups), quorum, text)
