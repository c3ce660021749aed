"""What the benchmark asks for: valid agreement lives, as HTTP requests and as in-process commands.

One agreement's life (`LIFE`) is ten commands: it is signed, reported on three times,
amended once, reported on four more times and closed. Across many agreements that is a
mix of 10 % signings, 10 % amendments, 70 % progress reports and 10 % closings. The
append comparison with the peer (`APPEND_LIFE`) is a signing followed by nine reports,
which both systems can express the same way.

Every body is valid under the contract, so every command should succeed: an error in a
run is a real error, not a generator mistake. The signing is the tests' sample programme
(deploy/demo/samples.py, one home for both), signed in one of eight provinces.
"""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass, field
from typing import Any

from deploy.demo.samples import PROVINCES, programme

LIFE = ["sign", "report", "report", "report", "amend", "report", "report", "report", "report", "close"]
APPEND_LIFE = ["sign"] + ["report"] * 9
STATUSES = ["not_started", "in_progress", "in_progress", "at_risk", "completed"]
QUARTERS = [f"{year}-Q{q}" for year in (2024, 2025) for q in (1, 2, 3, 4)]


def party_ids() -> list[str]:
    """Every party id the generated agreements use (the bench token holds them all)."""
    ids: list[str] = []
    for _, slug in PROVINCES:
        ids += [f"mttq-{slug}", f"hctd-{slug}", f"hlhpn-{slug}"]
    return ids


def sign_body(index: int, tag: str) -> dict[str, Any]:
    """The sample programme (deploy/demo/samples.py) in the `index`-th province, three parties."""
    province, slug = PROVINCES[index % len(PROVINCES)]
    return programme(
        province,
        slug,
        f"{index}/CTPH-{tag}",
        title=f"Chương trình phối hợp số {index} về công tác vì người nghèo, an sinh xã hội và cứu trợ",
        womens_union=True,
    )


def report_body(index: int, nth: int, rng: random.Random) -> dict[str, Any]:
    """The `nth` report of agreement `index`: annual reports by the lead and the supporters,
    quarterly ones by the lead of the propaganda obligation."""
    _, slug = PROVINCES[index % len(PROVINCES)]
    choice = nth % 3
    if choice == 0:
        obligation, party, period = "nhan-dao", f"mttq-{slug}", str(2023 + nth % 4)
    elif choice == 1:
        obligation, party, period = "nhan-dao", f"hlhpn-{slug}", str(2023 + nth % 4)
    else:
        obligation, party, period = "tuyen-truyen", f"hctd-{slug}", QUARTERS[nth % len(QUARTERS)]
    return {
        "obligation_id": obligation,
        "party_id": party,
        "period": period,
        "status": rng.choice(STATUSES),
        "completion_percent": rng.randrange(0, 101, 5),
        "summary": "Vận động 1,2 tỷ đồng quỹ Vì người nghèo; hỗ trợ 35 hộ xây nhà đại đoàn kết",
        "reported_on": "2025-12-20",
        "evidence": [{"document_number": f"{nth + 40}/BC-MTTQ", "title": "Báo cáo kết quả thực hiện"}],
    }


def amend_body(index: int) -> dict[str, Any]:
    return {
        "document_number": f"{index}/QĐ-MTTQ-BTT",
        "reason": "Bổ sung nội dung chuyển đổi số trong công tác tuyên truyền",
        "effective_on": "2024-03-01",
        "changes": [
            {
                "op": "revise_obligation",
                "obligation_id": "tuyen-truyen",
                "description": "Tuyên truyền trên báo, đài và các nền tảng số của tỉnh",
            }
        ],
    }


def close_body() -> dict[str, Any]:
    return {
        "closed_on": "2027-12-31",
        "outcome": "completed",
        "summary": "Tổng kết giai đoạn 2023-2027",
        "successor_agreement_id": None,
    }


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def command_body(kind: str, index: int, reports: int, tag: str, rng: random.Random) -> dict[str, Any]:
    """The body of agreement `index`'s next `kind` command, after `reports` reports so far."""
    if kind == "sign":
        return sign_body(index, tag)
    if kind == "report":
        return report_body(index, reports, rng)
    if kind == "amend":
        return amend_body(index)
    return close_body()


# Where each command goes; the agreement id is known once the signing has answered.
AGREEMENT_ID = "{agreement_id}"
PATHS = {
    "sign": "/v1/agreements",
    "report": f"/v1/agreements/{AGREEMENT_ID}/progress-reports",
    "amend": f"/v1/agreements/{AGREEMENT_ID}/amendments",
    "close": f"/v1/agreements/{AGREEMENT_ID}/close",
}


@dataclass
class Agreement:
    """One agreement's life, walked one command at a time by one client."""

    index: int
    life: list[str]
    step: int = 0
    agreement_id: str | None = None
    reports: int = 0

    @property
    def done(self) -> bool:
        return self.step >= len(self.life)

    @property
    def next_kind(self) -> str:
        return self.life[self.step]


@dataclass
class Request:
    kind: str
    path: str
    body: bytes


@dataclass
class Lives:
    """A client's rotation over `active` agreements, each at its own step of its life.

    Agreement numbers are unique across clients (`client`-th of `clients`), and the run tag
    makes document numbers unique across runs on the same database.
    """

    client: int
    clients: int
    tag: str
    life: list[str] = field(default_factory=lambda: list(LIFE))
    active: int = 4
    seed: int = 0
    agreements: list[Agreement] = field(default_factory=list)
    _turn: int = 0
    _made: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed * 100_003 + self.client)

    def _new(self) -> Agreement:
        index = self._made * self.clients + self.client
        self._made += 1
        return Agreement(index, self.life)

    def next(self) -> Agreement:
        """The agreement whose command goes next (a finished life is replaced by a new one)."""
        while len(self.agreements) < self.active:
            self.agreements.append(self._new())
        self._turn = (self._turn + 1) % len(self.agreements)
        agreement = self.agreements[self._turn]
        if agreement.done:
            agreement = self.agreements[self._turn] = self._new()
        return agreement

    def body(self, agreement: Agreement) -> dict[str, Any]:
        return command_body(agreement.next_kind, agreement.index, agreement.reports, self.tag, self.rng)

    def request(self, agreement: Agreement) -> Request:
        kind = agreement.next_kind
        path = PATHS[kind].replace(AGREEMENT_ID, str(agreement.agreement_id))
        return Request(kind, path, encode(self.body(agreement)))

    def advance(self, agreement: Agreement, agreement_id: str | None) -> None:
        """After a successful command: the next step of the agreement's life."""
        if agreement.next_kind == "sign":
            agreement.agreement_id = agreement_id
        elif agreement.next_kind == "report":
            agreement.reports += 1
        agreement.step += 1


@dataclass
class Step:
    """One planned command: its path still holds `AGREEMENT_ID` until the signing answers."""

    kind: str
    path: str
    body: bytes


@dataclass
class Planner:
    """Whole agreement lives planned ahead, for the compiled load generator (bench/loadgen):
    the numbering, bodies and random reports of `Lives`, one complete life at a time."""

    client: int
    clients: int
    tag: str
    life: list[str] = field(default_factory=lambda: list(LIFE))
    seed: int = 0
    _made: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed * 100_003 + self.client)

    def next_life(self) -> list[Step]:
        index = self._made * self.clients + self.client
        self._made += 1
        steps = []
        reports = 0
        for kind in self.life:
            body = command_body(kind, index, reports, self.tag, self.rng)
            steps.append(Step(kind, PATHS[kind], encode(body)))
            reports += kind == "report"
        return steps


def run_tag() -> str:
    return f"BENCH-{uuid.uuid4().hex[:8].upper()}"
