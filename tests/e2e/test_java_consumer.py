"""An event consumer in Java (clients/java/consumer), run as the README's consumer's guide tells an
integrator, against a live stack.

The program uses Kafka's Java client and the CloudEvents Java SDK: it connects as the read-only
consumer principal (SCRAM-SHA-512 over TLS, the local CA), in a group under its prefix, reads the
topic from the beginning with read_committed, decodes each record as a CloudEvent, recomputes its
`hash` with the JDK's SHA-256 over its own canonical JSON, verifies the `envelope-signature`
header with the JDK's Ed25519 under the keys GET /v1/event-keys publishes, and checks the
`prevhash` chain per subject. It prints one JSON line per record.

An agreement with Vietnamese text (canonical JSON writes it unescaped) is signed, amended and
reported on; the program must verify all three records, and print the hashes the test reads
itself from the topic with Python. Then the same program, reading records from a file, must set
aside a tampered copy (a changed field, the hash left as it was; or the hash recomputed, so only
the signature can tell), and accept a synthetic envelope whose canonical JSON needs every rule
(floats, escapes, key order by code point) with the hash Python computes for it.

The first run fetches Maven's plugins and the jars into `.cache/maven` (each jar checked against
clients/java/consumer/jars.sha256) and compiles into `.cache/java-consumer/<sources' hash>`;
later runs reuse the build.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from coordreg_contracts.envelope import envelope_hash

from deploy.local.kafka_principals import CONSUMER_GROUP_PREFIX
from tests.support import clients
from tests.support.builders import report_body, sign_body
from tests.support.kafka import decode, read_topic
from tests.support.stack import Stack

pytestmark = pytest.mark.integration

AMENDMENT = {
    "document_number": "12/QĐ-MTTQ-BTT",
    # Quotes, a backslash and diacritics: escaped, escaped, and written as they are.
    "reason": 'Bổ sung nội dung "chuyển đổi số" theo Kế hoạch số 7\\KH',
    "effective_on": "2024-03-01",
    "changes": [{"op": "revise_obligation", "obligation_id": "nhan-dao", "cadence": "quarterly"}],
}


@pytest.fixture(scope="module")
def consumer() -> clients.JavaProgram:
    started = time.monotonic()
    program = clients.build_consumer()
    print(f"java consumer built in {time.monotonic() - started:.1f}s")
    return program


async def _run(command: list[str], timeout: float = 120) -> list[dict[str, Any]]:
    # The servers run on this event loop: the program must not block it.
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=timeout)
    assert process.returncode == 0, stderr.decode(errors="replace")[-4000:]
    return [json.loads(line) for line in stdout.decode().splitlines() if line.strip()]


def _by_key(lines: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    *records, summary = lines
    assert summary.get("summary") is True, lines
    return records, summary


async def test_the_java_consumer_verifies_a_live_topic_and_sets_aside_tampered_records(
    stack: Stack, consumer: clients.JavaProgram, tmp_path: Path
) -> None:
    security = stack.kafka.consumer.security
    if stack.kafka.secrets is None or security.plaintext:
        pytest.fail("this test needs the local broker's principals: unset KAFKA_BOOTSTRAP_SERVERS")
    keys = (await stack.registry.get("/v1/event-keys")).json()
    trusted = [keys["verifier_key"], *keys["retired_verifier_keys"]]

    signed = await stack.sign(sign_body())
    agreement = signed["agreement_id"]
    path = f"/v1/agreements/{agreement}"
    amended = await stack.registry.post(f"{path}/amendments", json=AMENDMENT, headers={"If-Match": '"1"'})
    assert amended.status_code in (200, 201), amended.text
    reported = await stack.registry.post(f"{path}/progress-reports", json=report_body(period="2024-Q2"))
    assert reported.status_code == 201, reported.text

    # What any consumer sees, read with Python: every event the registry recorded (the stack's
    # directory entries too, each its own stream), the agreement's three among them.
    total = await stack.pool.fetchval("SELECT count(*) FROM registry.events")
    everything = await read_topic(stack.kafka.consumer, stack.topic, expected=total)
    assert len(everything) == total
    records = [r for r in everything if r.key.decode() == agreement]
    envelopes = [decode(r) for r in records]
    assert [e["sequence"] for e in envelopes] == [1, 2, 3]
    assert "chuyển đổi số" in records[1].value.decode("utf-8")  # written unescaped

    password = tmp_path / "consumer-password"
    password.write_text(security.secret(), encoding="utf-8")
    group = f"{CONSUMER_GROUP_PREFIX}java-{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    lines = await _run(
        consumer.command(
            "kafka", stack.kafka.bootstrap_servers, security.username, str(password), security.ca_file,
            stack.topic, group, str(total), "60", *trusted,
        )
    )  # fmt: skip
    print(f"java consumer read {total} records in {time.monotonic() - started:.1f}s")
    seen, summary = _by_key(lines)
    assert summary == {"summary": True, "records": total, "applied": total, "duplicates": 0, "set_aside": 0}
    for line in seen:
        assert line["hash_ok"] and line["signature_ok"] and line["chain_ok"], line
        assert line["outcome"] == "applied" and line["recomputed"] == line["hash"], line
    # The hashes Python reads and recomputes, record by record (the order across streams is none).
    assert {(line["key"], line["sequence"]): line["hash"] for line in seen} == {
        (r.key.decode(), decode(r)["sequence"]): envelope_hash(decode(r)) for r in everything
    }
    ours = [line for line in seen if line["key"] == agreement]
    assert [(line["sequence"], line["hash"]) for line in ours] == [
        (e["sequence"], e["hash"]) for e in envelopes
    ]
    assert [line["type"] for line in ours] == [e["type"] for e in envelopes]

    # The same records from a file: as they are, then tampered.
    def saved(values: list[str]) -> str:
        file = tmp_path / f"records-{uuid.uuid4().hex[:6]}.json"
        rows = [
            {
                "key": r.key.decode(),
                "value": value,
                "signature": dict(r.headers)["envelope-signature"].decode(),
            }
            for r, value in zip(records, values, strict=True)
        ]
        file.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
        return str(file)

    original = [r.value.decode("utf-8") for r in records]
    as_read, _ = _by_key(await _run(consumer.command("file", saved(original), *trusted)))
    assert [line["outcome"] for line in as_read] == ["applied"] * 3

    # One diacritic of the amendment's reason changed, the hash left as it was.
    changed = original[1].replace("Bổ sung", "Bổ sưng")
    assert changed != original[1]
    tampered, summary = _by_key(
        await _run(consumer.command("file", saved([original[0], changed, original[2]]), *trusted))
    )
    assert tampered[0]["outcome"] == "applied"
    assert tampered[1]["hash_ok"] is False and tampered[1]["outcome"] == "set aside", tampered[1]
    assert tampered[1]["hash"] == envelopes[1]["hash"] != tampered[1]["recomputed"]
    # The real second event never applied: the third does not follow what was applied.
    assert tampered[2]["hash_ok"] and not tampered[2]["chain_ok"] and tampered[2]["outcome"] == "set aside"
    assert summary["applied"] == 1 and summary["set_aside"] == 2

    # A forger who also recomputes the hash (and the next event's prevhash): only the signature tells.
    forged = json.loads(changed)
    forged["hash"] = envelope_hash(forged)
    following = json.loads(original[2]) | {"prevhash": forged["hash"]}
    following["hash"] = envelope_hash(following)
    values = [original[0], json.dumps(forged, ensure_ascii=False), json.dumps(following, ensure_ascii=False)]
    refused, summary = _by_key(await _run(consumer.command("file", saved(values), *trusted)))
    assert [(line["hash_ok"], line["signature_ok"]) for line in refused] == [
        (True, True),
        (True, False),
        (True, False),
    ]
    assert summary["applied"] == 1 and summary["set_aside"] == 2


async def test_the_java_canonical_json_is_the_guides(consumer: clients.JavaProgram, tmp_path: Path) -> None:
    """A synthetic envelope whose data needs every rule of canonical JSON: the Java program's hash
    must be the one Python's `envelope_hash` gives (the rule the guide states), and unsigned it
    must be set aside for its signature alone."""
    data = {
        "schema_version": 1,
        "floats": [0.1, 1.5, -0.0, 1e-05, 0.0001, 1e16, 123456789012345.6, 2.5e-300, 1e22, 100.0],
        "big": 12345678901234567890,
        "text": 'Ủy ban "Mặt trận" \\ Tổ quốc\n\t\u0001\u007f\u2028 đ 😀',
        "nested": {"z": None, "a": True, "b": False, "ä": [], "\uff01": 1, "😀": 2, "": {}},
    }
    envelope: dict[str, Any] = {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": "/registry",
        "type": "vn.gov.coordination.ProgressReported.v1",
        "subject": "agreement-x",
        "time": "2024-01-10T09:00:00.000000Z",
        "datacontenttype": "application/json",
        "sequence": 1,
        "position": 7,
        "prevhash": "",
        "actor": "tester",
        "correlationid": str(uuid.uuid4()),
        "causationid": str(uuid.uuid4()),
        "data": data,
    }
    envelope["hash"] = envelope_hash(envelope)
    file = tmp_path / "synthetic.json"
    # Not in canonical form on purpose (indented, keys unsorted): the program must rebuild it.
    value = json.dumps(envelope, indent=2)
    file.write_text(json.dumps([{"key": "agreement-x", "value": value, "signature": None}]), encoding="utf-8")
    [line], summary = _by_key(await _run(consumer.command("file", str(file))))
    assert line["recomputed"] == envelope["hash"], line
    assert line["hash_ok"] and line["chain_ok"] and not line["signature_ok"]
    assert line["outcome"] == "set aside" and summary["set_aside"] == 1


def test_the_guides_java_blocks_are_the_programs_code() -> None:
    """The README's Java subsection shows the code the tests above run, not a copy that may drift."""
    readme = (clients.ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Consumer's guide", 1)[1].split("\n## ", 1)[0].split("\n### Java\n", 1)[1]
    blocks = re.findall(r"```java\n(.*?)```", section, flags=re.DOTALL)
    source = (clients.CONSUMER / "src/main/java/coordreg/consumer/Consumer.java").read_text(encoding="utf-8")
    body = "\n".join(line.removeprefix("    ") for line in source.splitlines())
    assert len(blocks) == 3
    for block in blocks:
        assert block.strip() in body, block
    assert "ssl.truststore.type" in blocks[0] and "SHA-256" in blocks[1] and "Ed25519" in blocks[2]
