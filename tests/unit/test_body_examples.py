"""Every request body of both OpenAPI documents has an example, each example is valid (against
the project's model and against the schema the document publishes), and each comes from the
demo data (deploy/demo/), in Vietnamese.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from coordreg_contracts import examples
from fastapi import FastAPI
from jsonschema import Draft202012Validator

from services.projections.entrypoints.app import create_app as create_projections
from services.projections.settings import ProjectionSettings
from services.registry.entrypoints.app import create_app as create_registry
from services.registry.entrypoints.log_routes import COSIGNED_CHECKPOINT_EXAMPLE
from services.registry.entrypoints.routes import COMMAND_ROUTES
from services.registry.settings import RegistrySettings
from services.transparency import log, note

DEMO = Path(__file__).parents[2] / "deploy" / "demo"
COMMANDS = {route.command.__name__: route.command for route in COMMAND_ROUTES}


def documents() -> dict[str, dict[str, Any]]:
    apps: dict[str, FastAPI] = {
        "registry": create_registry(RegistrySettings()),
        "projections": create_projections(ProjectionSettings()),
    }
    return {name: app.openapi() for name, app in apps.items()}


def resolved(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    found: dict[str, Any] = document
    for part in ref.removeprefix("#/").split("/"):
        found = found[part]
    return found


def body_examples(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any], list[Any]]]:
    """(operation, media type, schema, its examples) for every request body of the document:
    the media type's `example`/`examples`, and the `examples` of its schema."""
    for path, item in document["paths"].items():
        for method, operation in item.items():
            body = operation.get("requestBody")
            if body is None:
                continue
            for media_type, media in body["content"].items():
                found = [example["value"] for example in media.get("examples", {}).values()]
                found += [media["example"]] if "example" in media else []
                found += resolved(document, media["schema"]).get("examples", [])
                yield f"{method.upper()} {path}", media_type, media["schema"], found


def without_examples(document: dict[str, Any]) -> list[str]:
    return [
        f"{operation} ({media_type})"
        for operation, media_type, _, found in body_examples(document)
        if not found
    ]


def without_nulls(value: Any) -> Any:
    """A body without its `null` members (the examples leave them out, as the documents would)."""
    if isinstance(value, dict):
        return {key: without_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [without_nulls(item) for item in value]
    return value


def demo_bodies() -> list[Any]:
    agreements = json.loads((DEMO / "agreements.json").read_text())
    lifecycle = json.loads((DEMO / "lifecycle.json").read_text())
    successions = json.loads((DEMO / "successions.json").read_text())
    return [
        without_nulls(body)
        for body in (
            *(entry["body"] for entry in agreements),
            *(entry["body"] for entry in lifecycle),
            *successions["parties"],
            *(entry["body"] for entry in successions["successions"]),
        )
    ]


def demo_party_names() -> set[str]:
    agreements = json.loads((DEMO / "agreements.json").read_text())
    successions = json.loads((DEMO / "successions.json").read_text())
    return {party["name"] for entry in agreements for party in entry["body"]["parties"]} | {
        party["name"] for party in successions["parties"]
    }


@pytest.mark.parametrize("service", ["registry", "projections"])
def test_every_request_body_has_an_example(service: str) -> None:
    assert without_examples(documents()[service]) == []


def test_a_body_without_an_example_is_caught() -> None:
    document = copy.deepcopy(documents()["registry"])
    del document["components"]["schemas"]["CloseTerm"]["examples"]
    assert without_examples(document) == ["POST /v1/agreements/{agreement_id}/close (application/json)"]


@pytest.mark.parametrize("service", ["registry", "projections"])
def test_each_example_validates_against_the_published_schema(service: str) -> None:
    document = documents()[service]
    checked = 0
    for operation, _, schema, found in body_examples(document):
        # The schema as the document publishes it, its references resolved in the document.
        validator = Draft202012Validator(
            {**schema, "components": document["components"]},
            format_checker=Draft202012Validator.FORMAT_CHECKER,
        )
        for example in found:
            errors = [error.message for error in validator.iter_errors(example)]
            assert errors == [], (operation, errors)
            checked += 1
    assert checked >= (8 if service == "registry" else 0)


def test_each_command_example_validates_against_its_model_and_is_in_the_demo() -> None:
    document = documents()["registry"]
    demo = demo_bodies()
    names = demo_party_names()
    for name, model in COMMANDS.items():
        found = document["components"]["schemas"][name]["examples"]
        assert found == model.model_json_schema()["examples"], name  # the model's, as it has them
        assert found, name
        for example in found:
            model.model_validate(example)
            if name == "RenameParty":  # the demo renames nobody: a demo party's name spelled out
                assert example["name"].replace("Mặt trận Tổ quốc", "MTTQ") in names, example
                assert example["name"] not in names
            else:
                assert example in demo, (name, example)
    assert examples.SIGN_AGREEMENT["title"].startswith("Chương trình phối hợp")  # Vietnamese


def test_a_bad_example_is_refused_by_both() -> None:
    document = documents()["registry"]
    bad = {**examples.REPORT_PROGRESS, "completion_percent": 101}
    schema = {"$ref": "#/components/schemas/ReportProgress", "components": document["components"]}
    assert not Draft202012Validator(schema).is_valid(bad)
    with pytest.raises(ValueError):
        COMMANDS["ReportProgress"].model_validate(bad)


def test_the_cosignature_example_is_a_checkpoint_signed_by_the_development_log() -> None:
    signer = log.load_signer(environment="development", origin="", key_pem="")
    opened, verified = note.open_note(
        COSIGNED_CHECKPOINT_EXAMPLE, [note.parse_verifier_key(signer.verifier_key)]
    )
    assert [signature.name for signature in verified] == [log.DEV_LOG_ORIGIN]
    assert note.Checkpoint.parse(opened.body).origin == log.DEV_LOG_ORIGIN
    assert len(opened.signatures) == 2  # and a witness's line
