"""The Python client's answer models match the services' OpenAPI documents field for field, and it
has a method for every operation (docs/CLIENTS.md, "Python"): so neither can drift from the services."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from coordreg_contracts.client import answers
from coordreg_contracts.client.http import ProjectionsClient, RegistryClient

from tests.unit.test_openapi_documents import apps

MODELS = [
    m
    for _, m in inspect.getmembers(answers, inspect.isclass)
    if issubclass(m, answers.Answer) and m is not answers.Answer
]
# The operations the client has no method for yet: the transparency log's and the event keys'
# (docs/CLIENTS.md says how to call them with httpx).
NOT_IN_THE_CLIENT = {
    "getCheckpoint",
    "getCheckpointOfSize",
    "signCheckpoint",
    "getInclusionProof",
    "getConsistencyProof",
    "listLeaves",
    "getLogKeys",
    "addCosignature",
    "getEventKeys",
    "getTiledCheckpoint",
    "getTile",
    "getEntryBundle",
}
METHODS = {
    "registry": {
        "signAgreement": RegistryClient.sign,
        "amendAgreement": RegistryClient.amend,
        "reportProgress": RegistryClient.report_progress,
        "closeTerm": RegistryClient.close,
        "getAgreement": RegistryClient.get_agreement,
        "listAgreementEvents": RegistryClient.list_agreement_events,
        "registerParty": RegistryClient.register_party,
        "renameParty": RegistryClient.rename_party,
        "recordSuccession": RegistryClient.record_succession,
        "getParty": RegistryClient.get_party,
        "listPartyEvents": RegistryClient.list_party_events,
    },
    "projections": {
        "getParty": ProjectionsClient.get_party,
        "listPartyObligations": ProjectionsClient.list_party_obligations,
        "listPartyHistory": ProjectionsClient.list_party_history,
        "listAgreements": ProjectionsClient.list_agreements,
        "getAgreement": ProjectionsClient.get_agreement,
        "listOverdueObligations": ProjectionsClient.list_overdue_obligations,
        "getProjectionStatus": ProjectionsClient.get_projection_status,
    },
}


@pytest.fixture(scope="module")
def documents() -> dict[str, dict[str, Any]]:
    return {name: app.openapi() for name, app in apps().items()}


def schema_of(documents: dict[str, dict[str, Any]], name: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [
        d["components"]["schemas"][name] for d in documents.values() if name in d["components"]["schemas"]
    ]
    assert found, f"{name}: no schema of that name in either document"
    return found[0]


def differences(model: type[answers.Answer], schema: dict[str, Any]) -> list[str]:
    mine = model.model_json_schema(mode="validation", ref_template="#/components/schemas/{model}")
    problems = []
    if list(mine["properties"]) != list(schema.get("properties", {})):
        problems.append(f"fields {list(mine['properties'])} != {list(schema.get('properties', {}))}")
    if set(mine.get("required", [])) != set(schema.get("required", [])):
        problems.append(
            f"required {sorted(mine.get('required', []))} != {sorted(schema.get('required', []))}"
        )
    return problems


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_every_answer_model_matches_its_schema(
    model: type[answers.Answer], documents: dict[str, Any]
) -> None:
    assert differences(model, schema_of(documents, model.__name__)) == []


def test_a_drifted_model_is_caught(documents: dict[str, Any]) -> None:
    class AgreementCommandResult(answers.Answer):
        agreement_id: str
        version: int
        status: str

    assert differences(AgreementCommandResult, schema_of(documents, "AgreementCommandResult")) != []


def test_every_answer_schema_has_a_model(documents: dict[str, Any]) -> None:
    """Every schema an operation answers with (and what it holds) has a client model."""
    names = {m.__name__ for m in MODELS}
    wanted: set[str] = set()
    for document in documents.values():
        for path in document["paths"].values():
            for operation in path.values():
                if operation["operationId"] in NOT_IN_THE_CLIENT:
                    continue
                for status, response in operation["responses"].items():
                    if status.startswith("2"):
                        for media in response.get("content", {}).values():
                            wanted |= referenced(document, media["schema"])
    # Enumerations are read as text (a value added later must not break a client); the envelope is
    # the contracts' own model.
    enums = {n for d in documents.values() for n, s in d["components"]["schemas"].items() if "enum" in s}
    assert wanted - enums - {"Envelope"} <= names, sorted(wanted - names)


def referenced(document: dict[str, Any], schema: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str):
            name = ref.rsplit("/", 1)[1]
            found.add(name)
            if name != "Envelope":
                found |= referenced(document, document["components"]["schemas"][name])
        for value in schema.values():
            if value is not ref:
                found |= referenced(document, value)
    elif isinstance(schema, list):
        for value in schema:
            found |= referenced(document, value)
    return found


def test_every_operation_has_a_method(documents: dict[str, Any]) -> None:
    for service, document in documents.items():
        ids = {op["operationId"] for path in document["paths"].values() for op in path.values()}
        assert ids - NOT_IN_THE_CLIENT == set(METHODS[service]), service
