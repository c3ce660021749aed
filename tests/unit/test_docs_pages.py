"""The docs pages of both services name only the service's own assets, which are served without a
token, and the versions docs/CONTRACT.md states are the ones vendored (the browser test is
tests/e2e/test_docs_offline.py)."""

from __future__ import annotations

import re

import httpx
import pytest
from fastapi import FastAPI

from services.common import docs_pages
from services.common.docs_pages import ASSETS, ASSETS_DIRECTORY, ASSETS_PATH, CONTENT_SECURITY_POLICY
from services.projections.entrypoints.app import create_app as create_projections
from services.projections.settings import ProjectionSettings
from services.registry.entrypoints.app import create_app as create_registry
from services.registry.settings import RegistrySettings

URL = re.compile(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""")


def app_of(service: str) -> FastAPI:
    if service == "registry":
        return create_registry(RegistrySettings())
    return create_projections(ProjectionSettings())


def test_the_vendored_files_are_the_ones_served_in_the_versions_stated() -> None:
    assert sorted(path.name for path in ASSETS_DIRECTORY.iterdir()) == sorted(ASSETS)
    swagger = (ASSETS_DIRECTORY / docs_pages.SWAGGER_JS).read_text()
    assert f'PACKAGE_VERSION:"{docs_pages.SWAGGER_UI_VERSION}"' in swagger
    redoc = (ASSETS_DIRECTORY / docs_pages.REDOC_JS).read_text()
    assert f'" ReDoc Version: ","{docs_pages.REDOC_VERSION}"' in redoc


def test_an_app_with_fastapis_own_pages_is_refused() -> None:
    with pytest.raises(ValueError, match="docs_url=None"):
        docs_pages.install(FastAPI())


@pytest.mark.parametrize("service", ["registry", "projections"])
@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_a_page_loads_only_from_the_service(service: str, page: str) -> None:
    app = app_of(service)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as anonymous:
        answer = await anonymous.get(page)
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/html")
        assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        loaded = URL.findall(answer.text)
        assert loaded, answer.text
        assert all(url.startswith(f"{ASSETS_PATH}/") or url == "/openapi.json" for url in loaded), loaded
        assert "/openapi.json" in loaded
        assert "http:" not in answer.text and "https:" not in answer.text  # no other host named
        for url in loaded:
            asset = await anonymous.get(url)  # no token: the assets are as open as the pages
            assert asset.status_code == 200, url
        assert (await anonymous.get(f"{ASSETS_PATH}/")).status_code == 404
        assert (await anonymous.get(f"{ASSETS_PATH}/../core.py")).status_code == 404
        assert page not in app.openapi()["paths"]
