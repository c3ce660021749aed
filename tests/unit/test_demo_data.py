"""The demo data (the five articles' agreements and their lives) obeys every rule of the domain."""

from __future__ import annotations

from deploy.demo.load import PATHS, demo_agreements
from tests.support.demo import COMMANDS, demo_states


def test_demo_agreements_and_lifecycle_replay_through_decide() -> None:
    """The loader's own data, references resolved by the loader's own resolver."""
    assert set(COMMANDS) == set(PATHS), "every action the loader posts is replayed"
    states = demo_states()
    assert len(states) == len(demo_agreements()) >= 10
    assert sum(1 for s in states.values() if s.status == "closed") >= 1
    localities = {s.locality for s in states.values()}
    assert {"Hòa Bình", "Bình Định", "Thái Nguyên", "Bắc Kạn", "Lào Cai"} <= localities
