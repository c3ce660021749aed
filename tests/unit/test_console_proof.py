"""The console's proof of record page (services/console/pages/proof.py, record_proof.py) over a
log built here: real Merkle tree, real signed notes, the development log key (the registry's
default), answered in process as the registry's /v1/log routes answer (docs/CONTRACT.md B11).
Each tampering, a wrong key or a registry that does not answer shows "not verified" or "not
checked now" in Vietnamese, never a 500. The same log on the real stack, with the page in
Chromium and the shown `coordreg-audit prove` commands run: tests/e2e/test_console_proof.py."""

from __future__ import annotations

import base64
import json
import re
import shlex
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from coordreg_contracts.envelope import canonical_json, envelope_hash
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.console import sessions
from services.console.app import create_app
from services.console.backend import Backend
from services.console.settings import ConsoleSettings
from services.transparency import merkle, note
from services.transparency.log import DEV_LOG_VERIFIER_KEY, load_signer
from services.transparency.proofs import b64

SECRET = "s" * 40
AGREEMENT = "ctph-07-2025"
OFFICIAL = "demo-tran-van-binh"
IDP = "https://idp.example"  # production needs an identity provider (ADR 0019)
PERSON = sessions.Person(subject=OFFICIAL, name="Trần Văn Bình", party_ids=("snv-phu-tho",))
LOG = load_signer(environment="development", origin="", key_pem="")
WITNESS = note.Cosigner("witness.test/so-tttt", Ed25519PrivateKey.generate())
STRANGER = note.Signer("witness.test/unknown", Ed25519PrivateKey.generate())
Json = dict[str, Any]


def envelope(sequence: int, position: int, kind: str) -> Json:
    doc: Json = {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": "/registry",
        "type": f"vn.gov.coordination.agreement.{kind}.v1",
        "subject": AGREEMENT,
        "time": "2026-03-01T02:00:00Z",
        "sequence": sequence,
        "actor": OFFICIAL,
        "data": {"period": "2025"},
    }
    doc["hash"] = envelope_hash(doc)
    doc["position"] = position
    return doc


@dataclass
class Registry:
    """The registry's answers for one agreement of four events, each a leaf, the last three after
    another stream's event; `checkpoint_size` leaves in the latest checkpoint."""

    events: list[Json] = field(default_factory=list)
    records: list[str] = field(default_factory=list)
    tree: merkle.MemoryTree = field(default_factory=merkle.MemoryTree)
    checkpoint_text: str | None = None
    checkpoint_size: int = 0
    tamper: Callable[[str, Json], None] | None = None  # changes an answer (path, body) in place
    down: bool = False
    requests: list[str] = field(default_factory=list)

    def append(self, doc: Json) -> None:
        record = canonical_json(doc).decode()
        self.records.append(record)
        self.tree.append(record.encode())

    def sign(self, size: int, *cosigners: note.Signer) -> None:
        text = LOG.sign(size, self.tree.root(size))
        for signer in cosigners:
            text = note.add_signature(text, signer)
        self.checkpoint_text, self.checkpoint_size = text, size

    def answer(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request.url.path)
        if self.down:
            raise httpx.ConnectError("refused", request=request)
        path, query = request.url.path, request.url.params
        if path == f"/v1/agreements/{AGREEMENT}":
            return httpx.Response(
                200, json={"agreement_id": AGREEMENT, "document_number": "07/CTPH-MTTQ-SNV"}
            )
        if path == f"/v1/agreements/{AGREEMENT}/events":
            return httpx.Response(200, json={"events": self.events, "next_cursor": None})
        if path.startswith("/v1/agreements/"):
            return problem(404, "no agreement")
        if path == "/v1/log/checkpoint" or path == f"/v1/log/checkpoints/{self.checkpoint_size}":
            if self.checkpoint_text is None:
                return problem(404, "no checkpoint has been signed yet")
            headers = {"Last-Modified": "Sun, 01 Mar 2026 02:00:10 GMT"}
            return httpx.Response(200, text=self.checkpoint_text, headers=headers)
        if path.startswith("/v1/log/checkpoints/"):
            return problem(404, "no checkpoint of that size")
        if path == "/v1/log/proofs/inclusion":
            return self.inclusion(query["event_id"], int(query["tree_size"]))
        if path == "/v1/log/leaves":
            index = int(query["start"])
            body: Json = {"leaves": [self.leaf(index)], "next_start": None}
            if self.tamper:
                self.tamper(path, body)
            return httpx.Response(200, json=body)
        return problem(404, "no route")

    def index_of(self, event_id: str) -> int:
        return next(i for i, r in enumerate(self.records) if json.loads(r)["id"] == event_id)

    def inclusion(self, event_id: str, size: int) -> httpx.Response:
        index = self.index_of(event_id)
        if index >= size:
            return problem(
                422, f"the event is leaf {index}, not in a tree of {size} leaves", "not-in-that-tree"
            )
        body: Json = {
            "tree_size": size,
            "leaf_index": index,
            "position": index + 1,
            "event_id": event_id,
            "leaf_hash": b64(self.tree.leaf_hash(index)),
            "hashes": [b64(h) for h in self.tree.inclusion_proof(index, size)],
        }
        if self.tamper:
            self.tamper("/v1/log/proofs/inclusion", body)
        return httpx.Response(200, json=body)

    def leaf(self, index: int) -> Json:
        record = self.records[index]
        return {
            "leaf_index": index,
            "position": index + 1,
            "event_id": json.loads(record)["id"],
            "leaf_hash": b64(self.tree.leaf_hash(index)),
            "record": record,
        }


def problem(status: int, detail: str, kind: str = "") -> httpx.Response:
    return httpx.Response(
        status, json={"type": f"https://coordreg.invalid/problems/{kind}", "detail": detail}
    )


def new_registry(cosigners: tuple[note.Signer, ...] = (WITNESS, STRANGER)) -> Registry:
    registry = Registry()
    registry.append({"id": str(uuid.uuid4()), "subject": "party/other", "hash": "x"})  # another stream's leaf
    for sequence, kind in enumerate(
        ("AgreementSigned", "ProgressReported", "ProgressReported", "ProgressReported"), 1
    ):
        doc = envelope(sequence, sequence + 1, kind)
        registry.events.append(
            {k: v for k, v in doc.items() if k != "position"} | {"position": doc["position"]}
        )
        registry.append(doc)
    registry.sign(4, *cosigners)  # the fourth event of the agreement (leaf 4) came after it
    return registry


def settings(**options: Any) -> ConsoleSettings:
    return ConsoleSettings(session_secret=SECRET, log_witness_keys=WITNESS.verifier().key(), **options)


async def page(
    registry: Registry, path: str = f"/thoa-thuan/{AGREEMENT}/chung-minh", **options: Any
) -> httpx.Response:
    app = create_app(settings(**options))
    backend = Backend(app.state.settings)
    transport = httpx.MockTransport(registry.answer)
    backend.registry = httpx.AsyncClient(base_url="http://registry", transport=transport)
    backend.projections = httpx.AsyncClient(base_url="http://projections", transport=transport)
    app.state.console.backend = backend
    cookie = sessions.encode(sessions.new_session(600).signed_in_as(PERSON, 600), SECRET)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://console", cookies={sessions.COOKIE: cookie}
    ) as console:
        response = await console.get(path)
    await backend.aclose()
    return response


def states(html: str) -> list[str]:
    return re.findall(r'class="event-proof" data-state="([a-z]+)"', html)


def summary(html: str) -> str:
    found = re.search(r'proof-summary" data-state="([a-z]+)"', html)
    assert found is not None, html
    return found.group(1)


async def test_an_honest_log_verifies_every_event_in_the_checkpoint() -> None:
    registry = new_registry()
    response = await page(registry)
    assert response.status_code == 200, response.text
    html = response.text
    assert states(html) == ["verified", "verified", "verified", "pending"]
    assert summary(html) == "partial"
    assert "sẽ có trong điểm kiểm tra tiếp theo" in html and "khoảng mỗi 10 giây" in html
    assert '<span class="tree-size">4</span>' in html
    assert b64(registry.tree.root(4)) in html
    assert LOG.origin in html
    assert "01/03/2026 09:00" in html  # Last-Modified, in Vietnam's time
    # The configured witness's cosignature is checked; the other is present, not checked.
    assert re.search(r'data-verified="yes">\s*<td class="code">witness.test/so-tttt', html)
    assert re.search(r'data-verified="unchecked">\s*<td class="code">witness.test/unknown', html)
    # One `coordreg-audit prove` command per event in the checkpoint, with the pinned key.
    commands = re.search(r'<pre class="commands"><code>(.*?)</code></pre>', html, re.S)
    assert commands is not None
    lines = [shlex.split(line.replace("&#39;", "'")) for line in commands.group(1).strip().splitlines()]
    assert [line[2] for line in lines] == [e["id"] for e in registry.events[:3]]
    assert all(line[3:] == ["--checkpoint", "checkpoint-4.note", "--log-key", DEV_LOG_VERIFIER_KEY, "--registry", "http://127.0.0.1:8000"] for line in lines)  # fmt: skip
    assert 'href="/diem-kiem-tra/4"' in html
    # The agreement, its events, the checkpoint, then two per event but the pending one.
    assert len(registry.requests) == 3 + 2 * 3 + 1
    assert "/v1/log/keys" not in registry.requests  # the pinned key, never the served one


async def test_once_in_a_checkpoint_every_event_verifies() -> None:
    registry = new_registry()
    registry.sign(5)
    html = (await page(registry)).text
    assert states(html) == ["verified"] * 4
    assert summary(html) == "verified"
    assert "Chưa có nhân chứng nào đồng ký" in html


@pytest.mark.parametrize(
    "what",
    ["a proof hash", "another leaf index", "a leaf record", "an envelope", "the leaf's index", "no hashes"],
)
async def test_a_tampered_proof_or_record_is_not_verified(what: str) -> None:
    registry = new_registry()
    registry.sign(5)

    def tamper(path: str, body: Json) -> None:
        if what == "a proof hash" and path.endswith("inclusion") and body["leaf_index"] == 2:
            raw = bytearray(base64.b64decode(body["hashes"][0]))
            raw[0] ^= 1
            body["hashes"][0] = b64(bytes(raw))
        elif what == "another leaf index" and path.endswith("inclusion") and body["leaf_index"] == 2:
            body["leaf_index"] = 3
        elif what == "no hashes" and path.endswith("inclusion") and body["leaf_index"] == 2:
            body["hashes"] = "not a list"
        elif path.endswith("leaves") and body["leaves"][0]["leaf_index"] == 2:
            leaf = body["leaves"][0]
            doc = json.loads(leaf["record"])
            if what == "a leaf record":
                doc["data"]["period"] = "2024"
                doc["hash"] = envelope_hash({k: v for k, v in doc.items() if k != "position"})
            elif what == "an envelope":
                doc["data"]["period"] = "2024"  # its hash left as it was
            else:
                leaf["leaf_index"] = 1
            leaf["record"] = canonical_json(doc).decode()

    registry.tamper = tamper
    response = await page(registry)
    assert response.status_code == 200
    html = response.text
    assert states(html) == ["verified", "refused", "verified", "verified"]
    assert summary(html) == "partial"
    row = re.search(r'data-state="refused".*?</tr>', html, re.S)
    assert row is not None and "Không xác minh được" in row.group(0) and "Chi tiết kỹ thuật" in row.group(0)
    assert registry.events[1]["id"] not in re.search(r"<pre.*?</pre>", html, re.S).group(0)  # type: ignore[union-attr]


async def test_another_log_key_verifies_nothing() -> None:
    registry = new_registry()
    other = note.Signer(LOG.name, Ed25519PrivateKey.generate()).verifier().key()
    response = await page(registry, log_key=other)
    assert response.status_code == 200
    html = response.text
    assert summary(html) == "refused"
    assert states(html) == ["unavailable"] * 4
    assert html.count("điểm kiểm tra không hợp lệ") == 4
    assert "<pre" not in html
    assert registry.requests.count("/v1/log/proofs/inclusion") == 0


async def test_a_forged_checkpoint_and_a_bad_cosignature() -> None:
    registry = new_registry()
    impostor = note.Signer(LOG.name, Ed25519PrivateKey.generate())
    registry.checkpoint_text = note.sign_note(
        note.Checkpoint(LOG.origin, 4, registry.tree.root(4)).body(), [impostor]
    )
    assert summary((await page(registry)).text) == "refused"
    # A witness line that does not verify with the witness's configured key: that line says so,
    # the log's own signature still holds.
    registry = new_registry(cosigners=())
    forged = note.Cosigner(WITNESS.name, Ed25519PrivateKey.generate())
    text = note.add_signature(registry.checkpoint_text or "", forged)
    line = text.splitlines()[-1]
    _, encoded = line[2:].split(" ")
    raw = base64.b64decode(encoded)
    registry.checkpoint_text = text.replace(encoded, b64(WITNESS.key_id.to_bytes(4, "big") + raw[4:]))
    html = (await page(registry)).text
    assert re.search(r'data-verified="no">\s*<td class="code">witness.test/so-tttt', html)
    assert states(html)[:3] == ["verified"] * 3


async def test_no_checkpoint_yet_and_a_registry_that_does_not_answer() -> None:
    registry = new_registry()
    registry.checkpoint_text = None
    html = (await page(registry)).text
    assert summary(html) == "none"
    assert states(html) == ["pending"] * 4
    registry.down = True
    response = await page(registry)
    assert response.status_code == 503
    assert "Sổ đăng ký chưa trả lời" in response.text


async def test_bad_input_gets_a_vietnamese_refusal() -> None:
    registry = new_registry()
    for cursor in ("abc", "1" * 11, "１２"):
        response = await page(registry, f"/thoa-thuan/{AGREEMENT}/chung-minh?sau={cursor}")
        assert response.status_code == 400
        assert "tham số “sau”" in response.text
    response = await page(registry, "/thoa-thuan/khong-co/chung-minh")
    assert response.status_code == 404 and "Không tìm thấy thỏa thuận này." in response.text
    for size in ("abc", "9" * 20, str(2**62 + 1), "3"):
        response = await page(registry, f"/diem-kiem-tra/{size}")
        assert response.status_code == 404 and "Không có điểm kiểm tra này." in response.text


async def test_the_checkpoint_downloads_as_the_commands_file() -> None:
    registry = new_registry()
    response = await page(registry, "/diem-kiem-tra/4")
    assert response.status_code == 200
    assert response.headers["content-disposition"] == 'attachment; filename="checkpoint-4.note"'
    assert response.text == registry.checkpoint_text
    assert note.open_note(response.text, [note.parse_verifier_key(DEV_LOG_VERIFIER_KEY)])


def test_the_log_keys_are_pinned_and_checked() -> None:
    assert settings().log_verifier.key() == DEV_LOG_VERIFIER_KEY
    with pytest.raises(ValueError, match="CONSOLE_LOG_KEY"):
        settings(log_key="not a key")
    with pytest.raises(ValueError, match="CONSOLE_LOG_WITNESS_KEYS"):
        ConsoleSettings(session_secret=SECRET, log_witness_keys="witness+00000000+AAAA")
    with pytest.raises(ValueError, match=r"CONSOLE_LOG_KEY .* required in production"):
        ConsoleSettings(environment="production", session_secret=SECRET, oidc_issuer=IDP, public_url=IDP)
    with pytest.raises(ValueError, match="refuses the development log key"):
        ConsoleSettings(
            environment="production",
            session_secret=SECRET,
            oidc_issuer=IDP,
            public_url=IDP,
            log_key=DEV_LOG_VERIFIER_KEY,
        )
    own = note.Signer("registry.example.gov.vn/agreements", Ed25519PrivateKey.generate()).verifier()
    assert (
        ConsoleSettings(
            environment="production",
            session_secret=SECRET,
            oidc_issuer=IDP,
            public_url=IDP,
            log_key=own.key(),
        ).log_verifier
        == own
    )


async def test_the_policy_s_quorum_is_shown_met_or_not() -> None:
    other = note.Cosigner("witness.test/bo-tu-phap", Ed25519PrivateKey.generate())
    policy = (
        f"log {LOG.verifier_key}\nwitness stttt {WITNESS.verifier().key()}\n"
        f"witness btp {other.verifier().key()}\ngroup both all stttt btp\nquorum both\n"
    )

    def quorum(html: str) -> str:
        found = re.search(r'class="quorum" data-quorum="([a-z-]+)"', html)
        assert found is not None, html
        return found.group(1)

    below = (await page(new_registry(), log_policy=policy)).text
    assert quorum(below) == "not-met" and "Chưa đủ" in below and "2 trong số (stttt, btp)" in below
    # The policy's witnesses are checked even when not in CONSOLE_LOG_WITNESS_KEYS.
    met = (await page(new_registry((WITNESS, other)), log_policy=policy)).text
    assert quorum(met) == "met" and "Đã đủ" in met
    assert re.search(r'data-verified="yes">\s*<td class="code">witness.test/bo-tu-phap', met)
    assert 'class="quorum"' not in (await page(new_registry())).text
    with pytest.raises(ValueError, match="CONSOLE_LOG_POLICY"):
        settings(log_policy="quorum nobody\n")
