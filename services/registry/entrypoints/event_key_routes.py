"""The registry's event keys (docs/CONTRACT.md B12): the verifier keys a consumer configures to
check the `envelope-signature` of each record before it applies it. Reads need `agreements:read`,
like the log's keys (B11)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict

from services.common import auth
from services.common.auth import Client
from services.common.auth.dependencies import require
from services.common.envelope_signatures import SIGNATURE_HEADER, EnvelopeSigner
from services.common.problems import documented_errors
from services.registry.entrypoints.routes import json_answer

router = APIRouter(prefix="/v1", tags=["events"])
Reader = Annotated[Client, Depends(require(auth.READ))]


class EventKeys(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    verifier_key: str
    retired_verifier_keys: list[str]
    header: str


@router.get(
    "/event-keys",
    summary="The keys that sign every event (the envelope-signature record header)",
    operation_id="getEventKeys",
    response_model=EventKeys,
    responses=documented_errors(401, 403, 413, 429),
)
async def event_keys(request: Request, client: Reader) -> Response:
    signer: EnvelopeSigner = request.app.state.event_signer
    body = EventKeys(
        verifier_key=signer.verifier_key,
        retired_verifier_keys=list(request.app.state.event_retired_keys),
        header=SIGNATURE_HEADER,
    )
    return json_answer(body)
