"""One handler per command: load, bind the caller, decide (pure), seal, append.

Each runs inside what the bus wraps around every handler (the Idempotency-Key claim, the span,
the retry on a lost race, the stream's lock: `bus.py`), on the stream `call.stream_id`: an
agreement's id, or a party's directory stream `party/<id>`. `COMMAND_HANDLERS`, at the end,
maps each command type to its handler; `bootstrap` builds the bus on it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from coordreg_contracts.commands import AmendAgreement, CloseTerm, ReportProgress, SignAgreement
from coordreg_contracts.common import Party
from coordreg_contracts.events import Event
from coordreg_contracts.parties import (
    PartyEvent,
    PartyRegistered,
    RecordSuccession,
    RegisterParty,
    RenameParty,
    party_id_of,
    party_subject,
)

from services.agreement.state import AgreementState, fold
from services.directory.state import PartyState, fold_party
from services.registry.domain.decide import StoreFacts, decide
from services.registry.domain.directory import (
    Directory,
    decide_register,
    decide_rename,
    decide_succession,
    joining_parties,
    joining_violations,
    registrations,
    signing_violations,
)
from services.registry.domain.errors import Conflict, NotFound, PreconditionFailed, Rejected, Violation
from services.registry.service_layer import binding
from services.registry.service_layer.binding import PartyNotHeld
from services.registry.service_layer.bus import CommandCall, Handler
from services.registry.service_layer.event_store import (
    DirectoryRead,
    DocumentClaim,
    DuplicateDocument,
    StreamAppend,
)
from services.registry.service_layer.messages import CommandResult, PartyResult, UnrecordedRefusal
from services.registry.service_layer.repository import Loaded, LoadedParty

DIRECTORY_BUSY = "the directory is being changed by other requests right now; retry"


# --- agreements ---------------------------------------------------------------------------------


async def sign(command: SignAgreement, call: CommandCall) -> CommandResult:
    """A new agreement on the new stream `call.stream_id`."""
    try:
        binding.check_signing(call.context.caller, command)
    except PartyNotHeld as exc:
        raise UnrecordedRefusal(exc) from None
    agreement_id = call.stream_id
    refs = [command.parent_agreement_id] if command.parent_agreement_id else []
    events = decide(command, None, await _known(call, refs))
    # Parties the directory does not know yet are registered by the signing (decision 16), in
    # its transaction; one that ceased after the signing date is carried to its successor by the
    # process manager, queued in the same transaction.
    joined = await _join_directory(
        call, command.parties, command.locality, lambda directory: signing_violations(command, directory)
    )
    envelopes = call.seal(events, agreement_id, 0, "")
    ceased = [
        p.party_id for p in command.parties if (entry := joined.directory.get(p.party_id)) and entry.ceased
    ]
    document = DocumentClaim(command.locality, command.document_number, command.signed_on.year)
    result = _result_after(agreement_id, fold(events))
    try:
        positions = await call.services.store.append(
            agreement_id,
            0,
            envelopes,
            document,
            call.completion(result),
            with_streams=joined.registering(call),
            versions_read=joined.read,
            queue_successions=ceased,
        )
    except DuplicateDocument as exc:
        raise Conflict(
            f"document {command.document_number!r} is already signed in {command.locality!r}"
            f" (agreement {exc.agreement_id})",
            existing_agreement_id=exc.agreement_id,
        ) from None
    return result(positions[-1])


async def amend(command: AmendAgreement, call: CommandCall) -> CommandResult:
    loaded = await _held_by_caller(call)
    state = _at_expected_version(call, loaded)
    events = decide(command, state, await _known(call, []))
    # A party joining by amendment is held to the directory as a signatory is: refused once
    # ceased, registered when unknown, and the entries read must still hold at commit.
    joining = joining_parties(command)
    if not joining:
        return await _append_to_agreement(call, loaded, events)
    joined = await _join_directory(
        call, joining, state.locality, lambda directory: joining_violations(command, directory)
    )
    return await _append_to_agreement(call, loaded, events, joined)


async def report_progress(command: ReportProgress, call: CommandCall) -> CommandResult:
    loaded = await call.services.agreements.get(call.stream_id)
    try:
        binding.check_reporter(call.context.caller, command)
    except PartyNotHeld as exc:
        raise UnrecordedRefusal(exc) from None
    if loaded.state is None:
        # Decided on the reporter's binding alone, and remembered for the key.
        raise NotFound(f"no agreement {call.stream_id!r}")
    state = _at_expected_version(call, loaded)
    events = decide(command, state, await _known(call, []))
    return await _append_to_agreement(call, loaded, events)


async def close_term(command: CloseTerm, call: CommandCall) -> CommandResult:
    loaded = await _held_by_caller(call)
    state = _at_expected_version(call, loaded)
    refs = [command.successor_agreement_id] if command.successor_agreement_id else []
    events = decide(command, state, await _known(call, refs))
    return await _append_to_agreement(call, loaded, events)


async def _held_by_caller(call: CommandCall) -> Loaded:
    """The agreement, once the caller is bound to it (it holds one of its current parties)."""
    loaded = await call.services.agreements.get(call.stream_id)
    try:
        if loaded.state is None:
            raise NotFound(f"no agreement {call.stream_id!r}")
        binding.check_current_party(call.context.caller, loaded.state)
    except (PartyNotHeld, NotFound) as exc:
        raise UnrecordedRefusal(exc) from None
    return loaded


def _at_expected_version(call: CommandCall, loaded: Loaded) -> AgreementState:
    """The state to decide on, if it is the version If-Match names (a race lost with If-Match is
    412: the retry's load finds the agreement moved on)."""
    state = loaded.state
    if state is None:
        raise NotFound(f"no agreement {call.stream_id!r}")
    expected = call.context.expected_version
    if expected is not None and expected != state.version:
        raise PreconditionFailed(
            f"If-Match names version {expected}; the agreement is at version {state.version}"
        )
    return state


async def _known(call: CommandCall, refs: list[str]) -> StoreFacts:
    return StoreFacts(call.stream_id, frozenset(await call.services.store.existing(refs)))


async def _append_to_agreement(
    call: CommandCall, loaded: Loaded, events: Sequence[Event], joined: Joined | None = None
) -> CommandResult:
    state = loaded.state
    if state is None:
        raise NotFound(f"no agreement {call.stream_id!r}")
    envelopes = call.seal(events, call.stream_id, state.version, loaded.last_hash)
    result = _result_after(call.stream_id, fold(events, state))
    positions = await call.services.store.append(
        call.stream_id,
        state.version,
        envelopes,
        None,
        call.completion(result),
        with_streams=joined.registering(call) if joined else [],
        versions_read=joined.read if joined else None,
    )
    return result(positions[-1])


def _result_after(agreement_id: str, state: AgreementState | None) -> Callable[[int], CommandResult]:
    """The command's result once its events are stored at a position."""
    if state is None:
        raise ValueError("no events decided")
    return lambda position: CommandResult(agreement_id, state.version, position, state.status)


# --- the directory step of a signing or an amendment ------------------------------------------


@dataclass(frozen=True)
class Joined:
    """What the directory says of the parties a signing or an amendment names: their entries, the
    versions read (which must still hold at commit), and the unknown ones' registrations."""

    directory: Directory
    read: DirectoryRead
    registered: list[PartyRegistered]

    def registering(self, call: CommandCall) -> list[StreamAppend]:
        """The new party streams, one registration each, written in the command's transaction."""
        return [
            StreamAppend(party_subject(r.party_id), 0, call.seal([r], party_subject(r.party_id), 0, ""))
            for r in self.registered
        ]


async def _join_directory(
    call: CommandCall,
    parties: Sequence[Party],
    locality: str,
    violations_of: Callable[[Directory], list[Violation]],
) -> Joined:
    directory, versions = await call.services.parties.directory([p.party_id for p in parties])
    violations = violations_of(directory)
    if violations:
        raise Rejected(violations)
    registered = registrations(parties, locality, call.stream_id, directory, call.services.province_of)
    return Joined(directory, DirectoryRead(versions), registered)


# --- the party directory ------------------------------------------------------------------------


async def register_party(command: RegisterParty, call: CommandCall) -> PartyResult:
    party_id = party_id_of(call.stream_id)
    loaded = await call.services.parties.get(party_id)
    events = decide_register(command, loaded.state, party_id, call.services.province_of)
    return await _append_to_party(call, party_id, loaded, events)


async def rename_party(command: RenameParty, call: CommandCall) -> PartyResult:
    party_id = party_id_of(call.stream_id)
    loaded = await call.services.parties.get(party_id)
    events = decide_rename(command, loaded.state, party_id)
    return await _append_to_party(call, party_id, loaded, events)


async def record_succession(command: RecordSuccession, call: CommandCall) -> PartyResult:
    party_id = party_id_of(call.stream_id)
    services = call.services
    loaded = await services.parties.get(party_id)
    if loaded.state is None:
        raise UnrecordedRefusal(NotFound(f"no party {party_id!r} in the directory"))
    successors = [command.successor_party_id, *(s.successor_party_id for s in command.obligation_successors)]
    directory, directory_read = await services.parties.chain(successors)
    directory_read.pop(party_id, None)  # its own stream is checked by the append itself
    named = {}
    for agreement_id in await services.store.streams_naming(party_id):
        agreement = (await services.agreements.get(agreement_id)).state
        if agreement is not None:
            named[agreement_id] = agreement
    events = decide_succession(command, loaded.state, party_id, directory, named)
    return await _append_to_party(call, party_id, loaded, events, directory_read, queue=[party_id])


async def _append_to_party(
    call: CommandCall,
    party_id: str,
    loaded: LoadedParty,
    events: Sequence[PartyEvent],
    directory_read: dict[str, int] | None = None,
    queue: Sequence[str] = (),
) -> PartyResult:
    state = loaded.state
    version = state.version if state is not None else 0
    envelopes = call.seal(events, call.stream_id, version, loaded.last_hash)
    result = _party_result_after(party_id, fold_party(events, state))
    positions = await call.services.store.append(
        call.stream_id,
        version,
        envelopes,
        None,
        call.completion(result),
        versions_read=DirectoryRead(directory_read) if directory_read else None,
        queue_successions=list(queue),
    )
    return result(positions[-1])


def _party_result_after(party_id: str, state: PartyState | None) -> Callable[[int], PartyResult]:
    if state is None:
        raise ValueError("no events decided")
    status = "ceased" if state.ceased else "active"
    return lambda position: PartyResult(party_id, state.version, position, status)


# --- the table ----------------------------------------------------------------------------------

# One handler per command. A signing opens a new stream and a party command acts on a directory
# entry: what they can lose a race on is the directory.
COMMAND_HANDLERS: Mapping[type[Any], Handler[Any]] = {
    SignAgreement: Handler(sign, busy=DIRECTORY_BUSY),
    AmendAgreement: Handler(amend),
    ReportProgress: Handler(report_progress),
    CloseTerm: Handler(close_term),
    RegisterParty: Handler(register_party, busy=DIRECTORY_BUSY),
    RenameParty: Handler(rename_party, busy=DIRECTORY_BUSY),
    RecordSuccession: Handler(record_succession, busy=DIRECTORY_BUSY),
}
