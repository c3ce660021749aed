"""The demo data (the five articles' agreements, their lives and the 2025 successions of their
parties) obeys every rule of the domain, and the in-memory registry shows the demo as of today."""

from __future__ import annotations

from datetime import date

import pytest
from coordreg_contracts.commands import ReportProgress
from coordreg_contracts.events import ObligationsTransferred

from deploy.demo.load import PATHS, demo_agreements, demo_parties, demo_successions
from services.agreement.state import AgreementState
from services.directory.provinces import current_province
from services.registry.domain.errors import Rejected
from tests.support.demo import COMMANDS, DEMO_CONTEXT, LoadedDemo, demo_states, load_in_memory

SWITCH = date(2025, 7, 1)
BASES = {"202/2025/QH15", "45/2025/NĐ-CP", "97/2025/QH15"}
# Decree 45/2025/NĐ-CP merged these departments, in every province (the demo's Thái Nguyên too).
MERGED_DEPARTMENTS = ("sldtbxh-", "snnptnt-", "stttt-")


def test_demo_agreements_and_lifecycle_replay_through_decide() -> None:
    """The loader's own data, references resolved by the loader's own resolver."""
    assert set(COMMANDS) == set(PATHS), "every action the loader posts is replayed"
    states = demo_states()
    assert len(states) == len(demo_agreements()) >= 10
    assert sum(1 for s in states.values() if s.status == "closed") >= 1
    localities = {s.locality for s in states.values()}
    assert {"Hòa Bình", "Bình Định", "Thái Nguyên", "Bắc Kạn", "Lào Cai"} <= localities


def signed_parties() -> dict[str, str]:
    """Every party of a demo signing, with the locality it signed in."""
    return {p["party_id"]: a["body"]["locality"] for a in demo_agreements() for p in a["body"]["parties"]}


def test_every_body_that_ceased_in_2025_has_its_succession_and_no_other_does() -> None:
    signed = signed_parties()
    merged_away = {pid for pid, locality in signed.items() if current_province(locality, SWITCH) != locality}
    departments = {pid for pid in signed if pid.startswith(MERGED_DEPARTMENTS)}
    predecessors = [item["party_id"] for item in demo_successions()]
    assert len(predecessors) == len(set(predecessors)), "a body ceases once"
    assert set(predecessors) == merged_away | departments
    # The bodies of a unit that kept its name (Thái Nguyên, Lào Cai) carry on as themselves.
    assert {"mttq-thai-nguyen", "hctd-thai-nguyen", "ubnd-lao-cai", "mttq-lao-cai", "snv-lao-cai"}.isdisjoint(
        predecessors
    )
    registered = {p["party_id"]: p for p in demo_parties()}
    assert registered.keys().isdisjoint(signed), "a successor registered by the loader is a new body"
    for item in demo_successions():
        body = item["body"]
        assert (body["effective_on"], body["legal_basis"] in BASES) == ("2025-07-01", True), item
        successor = body["successor_party_id"]
        # The successor sits in the unit that governs the predecessor's province from the switch.
        province = registered[successor]["province"] if successor in registered else signed[successor]
        assert province == current_province(signed[item["party_id"]], SWITCH), item
        if item["party_id"].startswith(MERGED_DEPARTMENTS):
            assert body["legal_basis"] == "45/2025/NĐ-CP" and registered[successor]["kind"] == "department"


@pytest.fixture
async def demo() -> LoadedDemo:
    return await load_in_memory()


def holders(state: AgreementState) -> dict[str, tuple[str, list[str]]]:
    return {
        oid: (o.obligation.lead_party_id, list(o.obligation.supporting_party_ids))
        for oid, o in state.obligations.items()
    }


def report(party_id: str, period: str, obligation_id: str = "giam-ngheo-ben-vung") -> ReportProgress:
    return ReportProgress.model_validate(
        {
            "obligation_id": obligation_id,
            "party_id": party_id,
            "period": period,
            "status": "in_progress",
            "completion_percent": 40,
            "summary": "Thực hiện Chương trình mục tiêu quốc gia giảm nghèo bền vững",
            "reported_on": "2026-12-20",
        }
    )


async def test_phu_tho_home_affairs_holds_what_hoa_binh_labour_signed(demo: LoadedDemo) -> None:
    assert await demo.store.pending_successions() == []
    state = await demo.state("hb-2023-sldtbxh")
    assert set(state.parties) == {"mttq-phu-tho", "snv-phu-tho"}
    assert holders(state) == {
        "giam-ngheo-ben-vung": ("snv-phu-tho", ["mttq-phu-tho"]),
        "tuyen-truyen": ("mttq-phu-tho", ["snv-phu-tho"]),
        "so-ket-hang-nam": ("mttq-phu-tho", ["snv-phu-tho"]),
    }
    inherited = state.obligations["giam-ngheo-ben-vung"].inherited
    # Both signatories ceased: each transfer is listed, in the order the successions were carried.
    assert [(i.from_party_id, i.to_party_id, i.effective_on, i.legal_basis) for i in inherited] == [
        ("mttq-hoa-binh", "mttq-phu-tho", SWITCH, "202/2025/QH15"),
        ("sldtbxh-hoa-binh", "snv-phu-tho", SWITCH, "45/2025/NĐ-CP"),
    ]
    former = state.former_parties["sldtbxh-hoa-binh"]
    assert former.party.name == "Sở Lao động – Thương binh và Xã hội tỉnh Hòa Bình"
    assert former.successor_party_ids == ("snv-phu-tho",)
    assert state.former_parties["mttq-hoa-binh"].successor_party_ids == ("mttq-phu-tho",)

    agreement_id = demo.ids["hb-2023-sldtbxh"]
    with pytest.raises(Rejected) as refused:
        await demo.registry.bus.run(report("sldtbxh-hoa-binh", "2026"), DEMO_CONTEXT, agreement_id)
    [violation] = refused.value.violations
    assert violation.loc == ("party_id",)
    assert "ceased on 2025-07-01" in violation.msg and "'snv-phu-tho'" in violation.msg
    # Decision 18: the old department may still report a period that began before it ceased,
    # and its successor reports from then on.
    await demo.registry.bus.run(report("sldtbxh-hoa-binh", "2025"), DEMO_CONTEXT, agreement_id)
    done = await demo.registry.bus.run(report("snv-phu-tho", "2026"), DEMO_CONTEXT, agreement_id)
    assert done.version == state.version + 2


async def test_the_successions_touch_every_open_agreement_once_and_nothing_else(demo: LoadedDemo) -> None:
    predecessors = {item["party_id"]: item["body"] for item in demo_successions()}
    expected_transfers = 0
    for key, agreement_id in demo.ids.items():
        transfers = [
            e
            for e in (s.envelope().event() for s in await demo.store.load(agreement_id))
            if isinstance(e, ObligationsTransferred)
        ]
        state = await demo.state(key)
        signed = {p["party_id"] for a in demo_agreements() if a["key"] == key for p in a["body"]["parties"]}
        ceased = signed & predecessors.keys()
        if state.status == "closed":
            # Closed before 2025 (Bắc Kạn 2020, Hòa Bình 2018, Lào Cai 2023): kept as they ended.
            assert transfers == [] and set(state.parties) == signed, key
            continue
        expected_transfers += len(ceased)
        assert sorted(t.predecessor_party_id for t in transfers) == sorted(ceased), key
        assert set(state.former_parties) == ceased, key
        assert set(state.parties).isdisjoint(ceased), key
        for transfer in transfers:
            body = predecessors[transfer.predecessor_party_id]
            assert (transfer.legal_basis, transfer.effective_on.isoformat()) == (
                body["legal_basis"],
                body["effective_on"],
            )
    assert expected_transfers > 0
    assert sum(c.transferred for c in demo.carried) == expected_transfers
    # The Lào Cai regulation's parties all carry on: it is as signed.
    assert (await demo.state("lc-2021-quy-che")).former_parties == {}
    # Báo Hòa Bình and the provincial radio-TV both went into one press body: one party, no
    # supporter twice.
    press = await demo.state("hb-2023-tuyen-truyen")
    assert set(press.parties) == {"mttq-phu-tho", "skhcn-phu-tho", "bao-ptth-phu-tho"}
    assert holders(press)["so-ket-hang-nam"] == ("mttq-phu-tho", ["skhcn-phu-tho", "bao-ptth-phu-tho"])
    assert holders(press)["chuyen-trang-bao"][0] == holders(press)["chuyen-muc-phat-thanh-truyen-hinh"][0]


async def test_the_directory_lists_the_successors_as_registered(demo: LoadedDemo) -> None:
    for body in demo_parties():
        entry = (await demo.registry.parties.get(body["party_id"])).state
        assert entry is not None and not entry.ceased
        assert (entry.name, entry.kind, entry.province) == (body["name"], body["kind"], body["province"])
    for item in demo_successions():
        entry = (await demo.registry.parties.get(item["party_id"])).state
        assert entry is not None and entry.succession is not None
        assert entry.succession.successor_party_id == item["body"]["successor_party_id"]
