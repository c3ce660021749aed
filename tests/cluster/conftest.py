"""A fresh local cluster (deploy/local/cluster.py) for each scenario, on free loopback ports,
and the figures table printed at the end of `make test-cluster`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from deploy.local.cluster import ClusterPorts, LocalCluster
from services.common.db import create_pool
from tests.support.figures import Figures

ROOT = Path(__file__).resolve().parents[2]
FIGURES = Figures("cluster")
record = FIGURES.record


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    local = LocalCluster(tmp_path / "cluster", ROOT / ".cache", ClusterPorts.free())
    try:
        local.start()
        local.wait_ready()
        yield local
    finally:
        local.stop()


@pytest.fixture
async def pool(cluster: LocalCluster) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(cluster.database_url, min_size=1, max_size=4)
    yield pool
    await pool.close()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    FIGURES.write(terminalreporter)
