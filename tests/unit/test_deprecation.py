"""docs/CONTRACT.md B14: a deprecated operation says so on every answer, and in the document."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI, HTTPException

from services.common.deprecation import DEPRECATIONS, Deprecation, install_deprecations
from services.projections.entrypoints.app import create_app as create_projections
from services.projections.settings import ProjectionSettings
from services.registry.entrypoints.app import create_app as create_registry
from services.registry.settings import RegistrySettings

OLD = Deprecation(
    since=datetime(2027, 1, 1, tzinfo=UTC),
    sunset=datetime(2028, 1, 1, tzinfo=UTC),
    link="https://coordination-registry.gov.vn/docs/v2-migration",
)


def toy() -> FastAPI:
    app = FastAPI()

    @app.get("/v1/old/{item}")
    async def old(item: str) -> dict[str, str]:
        if item == "missing":
            raise HTTPException(404)
        return {"item": item}

    @app.get("/v1/new/{item}")
    async def new(item: str) -> dict[str, str]:
        return {"item": item}

    install_deprecations(app, {("GET", "/v1/old/{item}"): OLD})
    return app


async def test_every_answer_of_a_deprecated_operation_carries_its_notice() -> None:
    app = toy()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        for path in ("/v1/old/a", "/v1/old/missing"):
            answer = await client.get(path)
            assert answer.headers["deprecation"] == "@1798761600"  # RFC 9745: 2027-01-01T00:00:00Z
            assert answer.headers["sunset"] == "Sat, 01 Jan 2028 00:00:00 GMT"  # RFC 8594: an HTTP-date
            assert answer.headers["link"] == f'<{OLD.link}>; rel="deprecation"; type="text/html"'
        fresh = await client.get("/v1/new/a")
        assert "deprecation" not in fresh.headers and "sunset" not in fresh.headers
    operations = app.openapi()["paths"]
    assert operations["/v1/old/{item}"]["get"]["deprecated"] is True
    assert "deprecated" not in operations["/v1/new/{item}"]["get"]


def test_a_sunset_needs_a_years_notice_and_a_known_operation() -> None:
    with pytest.raises(ValueError, match="365 days"):
        Deprecation(datetime(2027, 1, 1, tzinfo=UTC), datetime(2027, 6, 1, tzinfo=UTC), OLD.link)
    with pytest.raises(ValueError, match="does not have"):
        install_deprecations(FastAPI(), {("GET", "/v1/nowhere"): OLD})


def test_the_services_deprecate_exactly_what_their_documents_say() -> None:
    for service, app in (
        ("registry", create_registry(RegistrySettings())),
        ("projections", create_projections(ProjectionSettings())),
    ):
        marked = {
            (method.upper(), path)
            for path, item in app.openapi()["paths"].items()
            for method, operation in item.items()
            if operation.get("deprecated")
        }
        assert marked == set(DEPRECATIONS[service])
