"""The exported event contracts (schemas/jsonschema/*.json, schemas/asyncapi.yaml) match the models,
and real envelopes validate against them.

`jsonschema` is not a dependency of the project, so a small validator below checks the
keywords the exported schemas use; it refuses any keyword it does not know, so a schema
that grows a new assertion cannot pass here unchecked.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from coordreg_contracts import export
from coordreg_contracts.envelope import CONTENT_TYPE, Envelope, seal
from coordreg_contracts.events import (
    ALL_EVENT_CLASSES,
    AgreementAmended,
    AgreementSigned,
    Event,
    ObligationsTransferred,
    ProgressReported,
    TermClosed,
)
from coordreg_contracts.parties import PartyEvent, PartyRegistered, PartyRenamed, SuccessionRecorded

from tests.support.builders import HOA_BINH, report_body

ROOT = Path(__file__).resolve().parents[2]
AGREEMENT_ID = "0b6f3c2e-5d4a-4e8b-9a71-2f0c1d9e8a10"

# --- a validator for the subset of JSON Schema 2020-12 the exports use ----------------------------

_ANNOTATIONS = {"title", "description", "default", "examples", "discriminator", "$schema", "$id", "$defs"}
_TYPES: dict[str, Any] = {
    "object": dict,
    "array": list,
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
    "null": type(None),
}


def _is_format(fmt: str, value: str) -> bool:
    try:
        if fmt == "date":
            date.fromisoformat(value)
            return re.fullmatch(r"\d{4}-\d{2}-\d{2}", value) is not None
        if fmt == "date-time":
            return datetime.fromisoformat(value).tzinfo is not None
        if fmt == "uuid":
            uuid.UUID(value)
            return True
        if fmt == "uri-reference":
            return " " not in value
    except ValueError:
        return False
    raise AssertionError(f"the test validator does not know format {fmt!r}")


def _resolve(root: dict[str, Any], ref: str) -> dict[str, Any]:
    assert ref.startswith("#/"), f"non-local $ref {ref!r}: the exports must be self-contained"
    node: Any = root
    for part in ref[2:].split("/"):
        node = node[part]
    assert isinstance(node, dict)
    return node


def schema_errors(schema: dict[str, Any], value: Any, root: dict[str, Any], at: str = "$") -> list[str]:
    """Every way `value` breaks `schema` (empty when it is valid)."""
    errors: list[str] = []
    for keyword, arg in schema.items():
        if keyword in _ANNOTATIONS or keyword in {"then", "else"}:
            continue
        if keyword == "$ref":
            errors += schema_errors(_resolve(root, arg), value, root, at)
        elif keyword == "type":
            expected = _TYPES[arg]
            if not isinstance(value, expected) or (isinstance(value, bool) and arg in {"integer", "number"}):
                errors.append(f"{at}: {value!r} is not of type {arg}")
        elif keyword == "const":
            if value != arg or type(value) is not type(arg):
                errors.append(f"{at}: {value!r} is not {arg!r}")
        elif keyword == "enum":
            if value not in arg:
                errors.append(f"{at}: {value!r} is not one of {arg}")
        elif keyword == "properties":
            if isinstance(value, dict):
                for name, sub in arg.items():
                    if name in value:
                        errors += schema_errors(sub, value[name], root, f"{at}.{name}")
        elif keyword == "required":
            if isinstance(value, dict):
                errors += [f"{at}: {name!r} is required" for name in arg if name not in value]
        elif keyword == "additionalProperties":
            if isinstance(value, dict):
                extra = [name for name in value if name not in schema.get("properties", {})]
                if arg is False:
                    errors += [f"{at}: {name!r} is not allowed" for name in extra]
                elif isinstance(arg, dict):
                    for name in extra:
                        errors += schema_errors(arg, value[name], root, f"{at}.{name}")
        elif keyword == "items":
            if isinstance(value, list):
                for index, item in enumerate(value):
                    errors += schema_errors(arg, item, root, f"{at}[{index}]")
        elif keyword in {"minItems", "minLength"}:
            if isinstance(value, list | str) and len(value) < arg:
                errors.append(f"{at}: shorter than {arg}")
        elif keyword in {"maxItems", "maxLength"}:
            if isinstance(value, list | str) and len(value) > arg:
                errors.append(f"{at}: longer than {arg}")
        elif keyword == "pattern":
            if isinstance(value, str) and not re.search(arg, value):
                errors.append(f"{at}: {value!r} does not match {arg}")
        elif keyword == "format":
            if isinstance(value, str) and not _is_format(arg, value):
                errors.append(f"{at}: {value!r} is not a {arg}")
        elif keyword == "minimum":
            if isinstance(value, int | float) and value < arg:
                errors.append(f"{at}: {value} < {arg}")
        elif keyword == "maximum":
            if isinstance(value, int | float) and value > arg:
                errors.append(f"{at}: {value} > {arg}")
        elif keyword == "anyOf":
            if all(schema_errors(sub, value, root, at) for sub in arg):
                errors.append(f"{at}: matches none of anyOf")
        elif keyword == "oneOf":
            matching = sum(not schema_errors(sub, value, root, at) for sub in arg)
            if matching != 1:
                errors.append(f"{at}: matches {matching} of oneOf, not exactly one")
        elif keyword == "if":
            branch = "then" if not schema_errors(arg, value, root, at) else "else"
            if branch in schema:
                errors += schema_errors(schema[branch], value, root, at)
        else:
            raise AssertionError(f"the test validator does not know keyword {keyword!r} (at {at})")
    return errors


def test_validator_rejects_what_it_should() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 1}}, "required": ["n"]}
    assert schema_errors(schema, {"n": 1}, schema) == []
    assert schema_errors(schema, {"n": 0}, schema)
    assert schema_errors(schema, {"n": True}, schema)
    assert schema_errors(schema, {}, schema)
    with pytest.raises(AssertionError, match="does not know keyword"):
        schema_errors({"multipleOf": 2}, 3, {})


# --- real envelopes, one per event type, with Vietnamese text -------------------------------------


def sample_events() -> list[Event | PartyEvent]:
    signed = AgreementSigned.model_validate({**HOA_BINH, "agreement_id": AGREEMENT_ID})
    amended = AgreementAmended.model_validate(
        {
            "document_number": "12/QĐ-MTTQ-BTT",
            "reason": "Bổ sung nội dung chuyển đổi số",
            "effective_on": "2024-03-01",
            "changes": [
                {
                    "op": "add_obligation",
                    "obligation": {
                        "obligation_id": "chuyen-doi-so",
                        "title": "Phối hợp chuyển đổi số trong công tác nhân đạo",
                        "lead_party_id": "hctd-hoa-binh",
                        "supporting_party_ids": ["mttq-hoa-binh"],
                        "cadence": "semiannual",
                    },
                },
                {"op": "revise_obligation", "obligation_id": "nhan-dao", "cadence": "quarterly"},
                {"op": "withdraw_obligation", "obligation_id": "tuyen-truyen", "reason": "Đã hoàn thành"},
                {
                    "op": "add_party",
                    "party": {
                        "party_id": "hlhpn-hoa-binh",
                        "name": "Hội LHPN tỉnh Hòa Bình",
                        "role": "member",
                    },
                },
                {"op": "remove_party", "party_id": "hlhpn-hoa-binh"},
                {"op": "change_term", "term": {"start": "2023-01-01", "end": "2028-12-31"}},
            ],
        }
    )
    reported = ProgressReported.model_validate(report_body())
    closed = TermClosed.model_validate(
        {"closed_on": "2028-12-31", "outcome": "completed", "summary": "Tổng kết giai đoạn 2023–2028"}
    )
    transferred = ObligationsTransferred.model_validate(
        {
            "predecessor_party_id": "hctd-hoa-binh",
            "effective_on": "2025-07-01",
            "legal_basis": "202/2025/QH15",
            "succession_event_id": str(uuid.UUID(int=99, version=4)),
            "successors": [
                {"party_id": "hctd-phu-tho", "name": "Hội Chữ thập đỏ tỉnh Phú Thọ", "role": "member"}
            ],
            "obligations": [{"obligation_id": "chuyen-doi-so", "successor_party_id": "hctd-phu-tho"}],
        }
    )
    # The directory's events go on their own stream in practice; one chain here is enough for schemas.
    registered = PartyRegistered.model_validate(
        {
            "party_id": "hctd-phu-tho",
            "name": "Hội Chữ thập đỏ tỉnh Phú Thọ",
            "kind": "mass_organisation",
            "province": "Phú Thọ",
            "electronic_id": "000.00.00.H45",
            "unit_code": "25",
        }
    )
    renamed = PartyRenamed.model_validate(
        {
            "name": "Hội Chữ thập đỏ tỉnh Phú Thọ (mới)",
            "effective_on": "2025-07-01",
            "legal_basis": "202/2025/QH15",
        }
    )
    succeeded = SuccessionRecorded.model_validate(
        {"effective_on": "2025-07-01", "legal_basis": "202/2025/QH15", "successor_party_id": "mttq-phu-tho"}
    )
    return [signed, amended, reported, transferred, closed, registered, renamed, succeeded]


def published(events: list[Event | PartyEvent]) -> list[dict[str, Any]]:
    """The Kafka record values of one agreement's events: sealed, chained, with their positions."""
    values = []
    prevhash = ""
    for sequence, event in enumerate(events, start=1):
        envelope = seal(
            event=event,
            event_id=str(uuid.UUID(int=sequence, version=4)),
            agreement_id=AGREEMENT_ID,
            sequence=sequence,
            recorded_at=f"2024-0{sequence}-15T08:30:00.000000Z",
            prevhash=prevhash,
            actor="mttq-hoa-binh-system",
            correlation_id=f"req-{sequence}",
            causation_id=f"cmd-{sequence}",
        )
        prevhash = envelope.hash
        values.append(envelope.model_copy(update={"position": 1040 + sequence}).to_json())
    return values


ENVELOPES = {value["type"].split(".")[-2]: value for value in published(sample_events())}
NAMES = sorted(ALL_EVENT_CLASSES)


def test_every_event_type_has_a_sample() -> None:
    assert sorted(ENVELOPES) == NAMES


# --- the files are what the models produce --------------------------------------------------------


def test_exported_files_match_the_models() -> None:
    differing = export.check()
    assert differing == [], f"{differing} differ from the models: run `make schemas` and commit the result"


def test_check_command_passes_and_generation_does_not_depend_on_hash_seeds() -> None:
    for seed in ("0", "4242"):
        result = subprocess.run(
            [sys.executable, "-m", "coordreg_contracts.export", "--check"],
            cwd=ROOT,
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr


def test_check_lists_changed_missing_and_stale_files(tmp_path: Path) -> None:
    written = export.write(tmp_path)
    assert sorted(written) == sorted(export.expected_files())
    assert export.check(tmp_path) == []
    assert export.write(tmp_path) == []

    signed = tmp_path / "jsonschema" / "AgreementSigned.v1.json"
    signed.write_text(signed.read_text(encoding="utf-8").replace('"1.0"', '"0.3"'), encoding="utf-8")
    (tmp_path / "asyncapi.yaml").unlink()
    (tmp_path / "jsonschema" / "AgreementVoided.v1.json").write_text("{}\n", encoding="utf-8")
    assert export.check(tmp_path) == [
        "asyncapi.yaml",
        "jsonschema/AgreementSigned.v1.json",
        "jsonschema/AgreementVoided.v1.json",
    ]

    export.write(tmp_path)
    assert export.check(tmp_path) == []
    assert not (tmp_path / "jsonschema" / "AgreementVoided.v1.json").exists()


def test_files_are_utf8_pretty_sorted_with_a_trailing_newline() -> None:
    for name in NAMES:
        text = (ROOT / "schemas" / "jsonschema" / f"{name}.v1.json").read_text(encoding="utf-8")
        assert text.endswith("}\n") and '\n  "$defs": {' in text
        assert text == export.render_json(export.event_json_schema(name))


# --- the JSON Schemas ----------------------------------------------------------------------------


def exported_schema(name: str) -> dict[str, Any]:
    text = (ROOT / "schemas" / "jsonschema" / f"{name}.v1.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@pytest.mark.parametrize("name", NAMES)
def test_schema_header_and_envelope_attributes(name: str) -> None:
    schema = exported_schema(name)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].endswith(f"/{name}.v1.json")
    assert name in schema["title"]
    assert schema["required"] == list(Envelope.model_fields)
    assert set(schema["properties"]) == set(Envelope.model_fields)
    assert schema["additionalProperties"] is False
    assert schema["properties"]["type"]["const"] == f"vn.gov.coordination.{name}.v1"
    assert schema["properties"]["specversion"]["const"] == "1.0"
    assert schema["properties"]["datacontenttype"]["const"] == "application/json"


@pytest.mark.parametrize("name", NAMES)
def test_data_schema_is_the_event_model(name: str) -> None:
    schema = exported_schema(name)
    data = _resolve(schema, schema["properties"]["data"]["$ref"])
    model = ALL_EVENT_CLASSES[name]
    assert set(data["properties"]) == set(model.model_fields)
    assert set(data.get("required", [])) == {n for n, f in model.model_fields.items() if f.is_required()}
    assert data["additionalProperties"] is False
    assert data["properties"]["schema_version"]["const"] == 1


@pytest.mark.parametrize("name", NAMES)
def test_a_real_envelope_validates_against_its_schema(name: str) -> None:
    envelope = ENVELOPES[name]
    assert schema_errors(exported_schema(name), envelope, exported_schema(name)) == []


def test_vietnamese_text_reaches_the_validated_data() -> None:
    assert ENVELOPES["AgreementSigned"]["data"]["locality"] == "Hòa Bình"
    assert ENVELOPES["AgreementAmended"]["data"]["reason"] == "Bổ sung nội dung chuyển đổi số"


@pytest.mark.parametrize(
    ("name", "change", "complaint"),
    [
        ("AgreementSigned", {"type": "vn.gov.coordination.TermClosed.v1"}, "$.type"),
        ("TermClosed", {"specversion": "0.3"}, "$.specversion"),
        ("TermClosed", {"extension": "x"}, "'extension' is not allowed"),
        ("TermClosed", {"position": None}, "$.position"),
        ("TermClosed", {"hash": "ABC"}, "$.hash"),
        ("TermClosed", {"prevhash": ""}, "$.prevhash"),
        ("AgreementSigned", {"prevhash": "ab" * 32}, "$.prevhash"),
        ("TermClosed", {"time": "yesterday"}, "$.time"),
        ("ProgressReported", {"data": {"completion_percent": 101}}, "$.data.completion_percent"),
        ("TermClosed", {"data": {"outcome": "abandoned"}}, "$.data.outcome"),
        ("TermClosed", {"data": {"closed_on": "31/12/2028"}}, "$.data.closed_on"),
        (
            "AgreementSigned",
            {"data": {"parties": [{"party_id": "Bad Id", "name": "x", "role": "lead"}]}},
            "party_id",
        ),
        ("AgreementAmended", {"data": {"changes": [{"op": "rename_agreement"}]}}, "oneOf"),
        ("AgreementAmended", {"data": {"schema_version": 2}}, "$.data.schema_version"),
    ],
)
def test_schema_rejects_a_broken_envelope(name: str, change: dict[str, Any], complaint: str) -> None:
    envelope = dict(ENVELOPES[name])
    if "data" in change:
        envelope["data"] = {**envelope["data"], **change.pop("data")}
    envelope.update(change)
    errors = schema_errors(exported_schema(name), envelope, exported_schema(name))
    assert any(complaint in error for error in errors), errors


def test_missing_attribute_is_rejected() -> None:
    envelope = {k: v for k, v in ENVELOPES["TermClosed"].items() if k != "position"}
    assert schema_errors(exported_schema("TermClosed"), envelope, exported_schema("TermClosed")) == [
        "$: 'position' is required"
    ]


# --- the AsyncAPI document -----------------------------------------------------------------------


def asyncapi() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(
        (ROOT / "schemas" / "asyncapi.yaml").read_text(encoding="utf-8")
    )
    return document


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [ref for key, value in node.items() for ref in ([value] if key == "$ref" else _refs(value))]
    if isinstance(node, list):
        return [ref for item in node for ref in _refs(item)]
    return []


def test_asyncapi_describes_the_topic() -> None:
    document = asyncapi()
    assert document["asyncapi"] == "3.0.0"
    assert document["defaultContentType"] == CONTENT_TYPE
    assert {server["protocol"] for server in document["servers"].values()} == {"kafka"}
    [channel] = document["channels"].values()
    assert channel["address"] == "agreements.events.v1"
    assert sorted(channel["messages"]) == NAMES
    [operation] = document["operations"].values()
    assert operation["action"] == "receive"
    assert _resolve(document, operation["channel"]["$ref"]) is channel
    assert sorted(_resolve(document, ref["$ref"])["$ref"] for ref in operation["messages"]) == [
        f"#/components/messages/{name}" for name in NAMES
    ]


def test_asyncapi_is_self_contained() -> None:
    document = asyncapi()
    for ref in _refs(document):
        _resolve(document, ref)  # a local pointer that resolves


@pytest.mark.parametrize("name", NAMES)
def test_asyncapi_message_per_event_type(name: str) -> None:
    document = asyncapi()
    message = document["components"]["messages"][name]
    assert message["contentType"] == "application/cloudevents+json"
    assert message["bindings"]["kafka"]["key"]["type"] == "string"
    assert message["headers"]["properties"]["content-type"]["const"] == CONTENT_TYPE
    payload = _resolve(document, message["payload"]["$ref"])
    assert payload["properties"]["type"]["const"] == f"vn.gov.coordination.{name}.v1"
    assert schema_errors(payload, ENVELOPES[name], document) == []
    other = next(n for n in NAMES if n != name)
    assert schema_errors(payload, ENVELOPES[other], document)
