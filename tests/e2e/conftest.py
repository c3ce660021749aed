"""Fixtures of the console's browser tests: the console served by uvicorn against the real
stack (tests/conftest.py), and Debian's chromium driven by Playwright."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import async_playwright

from deploy.local.processes import free_port
from services.console.app import create_app
from services.console.settings import ConsoleSettings
from tests.e2e.test_docs_offline import CHROMIUM, CHROMIUM_ARGS
from tests.support.stack import Stack, serve, stop_server


@pytest.fixture
async def console(stack: Stack) -> AsyncIterator[str]:
    settings = ConsoleSettings(
        registry_url=stack.registry_url,
        projections_url=stack.projections_url,
        session_secret="t" * 40,
    )
    port = free_port()
    server, task = await serve(create_app(settings), port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await stop_server(server, task)


@pytest.fixture
async def chromium() -> AsyncIterator[Any]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium (see the README)")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()
