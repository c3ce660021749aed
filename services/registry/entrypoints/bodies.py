"""A command's body: read once, parsed once, validated once.

The bytes are parsed by pydantic-core's JSON parser into the JSON value the client sent, and the
command model is validated from that value. The Idempotency-Key's fingerprint is taken of the
same value (it must stay the hash of what the client sent, whatever the model normalises, so a
retry across an upgrade still matches), and the check for text the database cannot store
(`services.common.text_input`) looks at the raw bytes first: NUL and lone surrogates can only be
written in JSON as `\\u` escapes, so a body without `\\u0000` or `\\uD8..`-`\\uDF..` has none.

The answers to bad bodies are FastAPI's own, as when FastAPI parsed them, and in the same order:
bytes that are not text (400) and JSON that does not parse (422, `json_invalid`) before the
token is looked at, since the parse is the first dependency of the route; a body that does not
validate (422) after it, when the route asks for the command.
"""

from __future__ import annotations

import email.message
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import pydantic_core
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException  # what FastAPI caught and raised reading a body

from services.common.text_input import refuse_unstorable_body

M = TypeVar("M", bound=BaseModel)
# Where a NUL or a lone surrogate could be (a surrogate pair is a false alarm, checked in full).
_MAYBE_UNSTORABLE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")
_MISSING = [{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}]


@dataclass(frozen=True)
class CommandBody(Generic[M]):
    """A request's body: its bytes, the JSON value parsed from them (None when there is none, or
    it is not JSON), and the command validated from it, or why not."""

    raw: bytes
    value: Any
    command: M | None
    errors: list[dict[str, Any]] | None

    def valid(self) -> M:
        """The command, or the 422 of a body that does not validate (or holds text the database
        cannot store)."""
        if self.command is None:
            raise RequestValidationError(self.errors or _MISSING)
        if _MAYBE_UNSTORABLE.search(self.raw) is not None:
            refuse_unstorable_body(self.command.model_dump())
        return self.command


def _json_content(request: Request) -> bool:
    """Whether FastAPI would read the body as JSON: a content type of application/json or
    application/*+json (none at all is not JSON: FastAPI's strict content type)."""
    content_type = request.headers.get("content-type")
    if not content_type:
        return False
    if content_type == "application/json":  # what nearly every client sends: no parse needed
        return True
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


def _parse(raw: bytes) -> Any:
    try:
        return pydantic_core.from_json(raw)
    except ValueError:
        pass
    # What pydantic-core refuses, json.loads may take (a lone surrogate's escape, NaN, depth): the
    # parse FastAPI made, with its answers (422 json_invalid, 400 for bytes that are not text).
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise RequestValidationError(
            [
                {
                    "type": "json_invalid",
                    "loc": ("body", exc.pos),
                    "msg": "JSON decode error",
                    "input": {},
                    "ctx": {"error": exc.msg},
                }
            ],
            body=exc.doc,
        ) from exc
    except Exception as exc:
        raise HTTPException(status_code=400, detail="There was an error parsing the body") from exc


def _validated(model: type[M], value: Any) -> tuple[M | None, list[dict[str, Any]] | None]:
    try:
        return model.model_validate(value, from_attributes=True), None
    except ValidationError as exc:
        errors = [{**error, "loc": ("body", *error["loc"])} for error in exc.errors(include_url=False)]
        return None, errors


def command_body(model: type[M]) -> Callable[[Request], Awaitable[CommandBody[M]]]:
    """The dependency that reads `model` from the request's body (list it first among the route's
    parameters, so a body that does not parse is answered before the token, as before)."""

    async def read(request: Request) -> CommandBody[M]:
        try:
            raw = await request.body()
        except HTTPException:  # the body limit's 413 (services/common/limits.py)
            raise
        except Exception as exc:  # a client that went away, as FastAPI answers it
            raise HTTPException(status_code=400, detail="There was an error parsing the body") from exc
        if not raw:
            return CommandBody(raw, None, None, None)
        if not _json_content(request):
            command, errors = _validated(model, raw)
            return CommandBody(raw, None, command, errors)
        value = _parse(raw)
        command, errors = _validated(model, value)
        return CommandBody(raw, value, command, errors)

    read.__name__ = f"read_{model.__name__}"
    read.reads_json_body = model  # type: ignore[attr-defined]  # tests/unit/test_openapi_documents.py
    return read
