"""Each class of bad input of issue 20, tried by Hypothesis across every route and token claim
where it can occur, on the in-process apps: an out-of-range number, a trailing newline, a
non-ASCII digit and a party's stream named as an agreement are a 4xx problem+json that writes
nothing; never a 500, never accepted.

The registry runs on the in-memory store (what it holds is compared before and after every
request). Both apps' database pool points at a port where no server listens: a request that
got past validation to PostgreSQL would answer 503, which fails these tests as surely as a 500.
The routes and their parameters are read from the OpenAPI documents, so a new route or
parameter is tried without being listed here; the bodies' fields are checked against the
documents in the same way (`test_the_body_fields_tried_cover_every_patterned_field`).
Derandomised, so CI sees the same examples every run.
"""

from __future__ import annotations

import asyncio
import copy
import json
import math
import socket
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deploy.tokens import mint
from services.common.auth.verifier import MAX_NUMERIC_DATE
from services.common.patterns import CLIENT_ID
from services.projections.entrypoints.app import create_app as create_projections
from services.projections.settings import ProjectionSettings
from services.registry import bootstrap
from services.registry.adapters.memory_store import InMemoryEventStore
from services.registry.entrypoints.app import create_app as create_registry
from services.registry.settings import RegistrySettings
from tests.support.builders import report_body, sign_body

EXAMPLES = settings(
    max_examples=50,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
PARTIES = ["mttq-hoa-binh", "hctd-hoa-binh"]
PROBLEM_JSON = "application/problem+json"
# A valid value for each parameter the documents name, to send beside the one under attack.
VALID_PARAMETERS: dict[str, str] = {
    "party_id": "mttq-hoa-binh",
    "period": "2024-Q3",
    "tree_size": "1",
    "from": "1",
    "to": "1",
    "start": "0",
    "end": "1",
    "position": "1",
    "limit": "10",
    "min_position": "1",
    "cursor": "5",
}
# Beside the documented patterns: query values the routes parse themselves.
PARSED_PARAMETERS = {"cursor": ["5", "1065353216.5"]}


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@dataclass
class Harness:
    """Both apps in process, each request run on one event loop the test owns."""

    loop: asyncio.AbstractEventLoop
    apps: dict[str, FastAPI]
    store: InMemoryEventStore
    pool: asyncpg.Pool
    agreement_id: str

    def request(self, service: str, method: str, url: str, **options: Any) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.apps[service], raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://coordreg.test") as client:
                return await client.request(method, url, **options)

        return self.loop.run_until_complete(send())

    def held(self) -> dict[str, int]:
        return {stream: len(events) for stream, events in self.store.streams.items()}


@pytest.fixture
def harness() -> Iterator[Harness]:
    loop = asyncio.new_event_loop()
    registry_app = create_registry(RegistrySettings())
    projections_app = create_projections(ProjectionSettings())
    registry, store = bootstrap.in_memory()
    registry_app.state.registry = registry
    pool = loop.run_until_complete(
        asyncpg.create_pool(f"postgresql://nobody@127.0.0.1:{_closed_port()}/none", min_size=0)
    )
    registry_app.state.pool = projections_app.state.pool = pool
    made = Harness(loop, {"registry": registry_app, "projections": projections_app}, store, pool, "")
    signed = made.request("registry", "POST", "/v1/agreements", json=sign_body(), headers=TOKEN)
    assert signed.status_code == 201, signed.text
    made.agreement_id = signed.json()["agreement_id"]
    # The successor SUCCESSION_BODY names, so that its only fault is the one under attack.
    registered = made.request("registry", "POST", "/v1/parties", json=SUCCESSOR, headers=TOKEN)
    assert registered.status_code == 201, registered.text
    try:
        yield made
    finally:
        loop.run_until_complete(pool.close())
        loop.close()


TOKEN = {"Authorization": f"Bearer {mint('bad-input-test', party_ids=PARTIES)}"}


def assert_names(response: httpx.Response, field: str) -> None:
    """The refusal is for the field under attack, not for something else about the request."""
    locations = [error["loc"] for error in response.json().get("errors", [])]
    assert any(field in loc for loc in locations), (field, response.text)


def assert_refused(harness: Harness, before: dict[str, int], response: httpx.Response) -> None:
    assert 400 <= response.status_code < 500 and response.status_code not in (401, 403, 404), (
        response.status_code,
        response.text,
    )
    assert response.headers["content-type"] == PROBLEM_JSON, response.text
    assert harness.held() == before, "a refused request wrote to the event store"


# --- the bad values -----------------------------------------------------------------------------

# A non-ASCII decimal digit block's zero: its digits follow it, so `2٠٢٤` keeps 2024's value.
_ZEROS = st.characters(categories=["Nd"]).filter(lambda c: not c.isascii() and unicodedata.digit(c) == 0)


@st.composite
def with_non_ascii_digit(draw: st.DrawFn, valid: str) -> str:
    positions = [i for i, c in enumerate(valid) if c.isascii() and c.isdigit()]
    zero = draw(_ZEROS)
    chosen = draw(st.lists(st.sampled_from(positions), min_size=1, unique=True))
    return "".join(chr(ord(zero) + int(c)) if i in chosen else c for i, c in enumerate(valid))


def with_trailing_newline(valid: str) -> st.SearchStrategy[str]:
    # Python's `$` matches before one final "\n"; CR LF and friends are tried too.
    return st.sampled_from(["\n", "\r\n", "\n\n", "\r"]).map(lambda end: valid + end)


def out_of_range(minimum: int, maximum: int) -> st.SearchStrategy[int]:
    return st.one_of(
        st.sampled_from([maximum + 1, 2**63, 2**64, 10**400, minimum - 1, -(2**63) - 1]),
        st.integers(min_value=maximum + 1, max_value=10**400),
        st.integers(min_value=-(10**400), max_value=minimum - 1),
    )


# --- parameters, from the OpenAPI documents -----------------------------------------------------


@dataclass(frozen=True)
class Parameter:
    service: str
    path: str
    name: str
    location: str
    schema: dict[str, Any]

    def url(self, harness: Harness, value: str | None = None) -> tuple[str, dict[str, str]]:
        values = {"agreement_id": harness.agreement_id, **VALID_PARAMETERS}
        path = self.path
        for name in ("agreement_id", "party_id", "tree_size"):
            replaced = value if (self.location == "path" and name == self.name) else values[name]
            # Percent-encoded, as a client must send a newline in a path; the server decodes it.
            path = path.replace("{" + name + "}", quote(str(replaced), safe=""))
        query = {}
        for name in QUERIES[(self.service, self.path)]:
            if name == self.name and self.location == "query":
                assert value is not None
                query[name] = value
            elif name in REQUIRED[(self.service, self.path)]:
                query[name] = values[name]
        return path, query


def _schema(parameter: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = parameter["schema"]
    for option in schema.get("anyOf", []):
        if option.get("type") != "null":
            return {**option, **{k: v for k, v in schema.items() if k != "anyOf"}}
    return schema


def _parameters() -> tuple[
    list[Parameter], dict[tuple[str, str], list[str]], dict[tuple[str, str], set[str]]
]:
    found, queries, required = [], {}, {}
    for service, app in (
        ("registry", create_registry(RegistrySettings())),
        ("projections", create_projections(ProjectionSettings())),
    ):
        for path, item in app.openapi()["paths"].items():
            for method, operation in item.items():
                if method != "get":
                    continue  # the commands' parameters are the path ids, tried through GET too
                params = [p for p in operation.get("parameters", []) if p["in"] in ("path", "query")]
                queries[(service, path)] = [p["name"] for p in params if p["in"] == "query"]
                required[(service, path)] = {p["name"] for p in params if p.get("required")}
                found += [Parameter(service, path, p["name"], p["in"], _schema(p)) for p in params]
    return found, queries, required


PARAMETERS, QUERIES, REQUIRED = _parameters()
INTEGERS = [p for p in PARAMETERS if p.schema.get("type") == "integer"]
# Strings with a pattern or parsed by the route, with a valid example holding a digit.
TEXTS = [p for p in PARAMETERS if "pattern" in p.schema or p.name in PARSED_PARAMETERS]


def _examples(parameter: Parameter) -> list[str]:
    return PARSED_PARAMETERS.get(parameter.name, [VALID_PARAMETERS[parameter.name]])


def test_the_documents_give_every_class_something_to_try() -> None:
    names = {(p.service, p.name) for p in INTEGERS}
    assert {("registry", "position"), ("registry", "tree_size"), ("projections", "min_position")} <= names
    assert {("projections", "limit"), ("registry", "start"), ("registry", "from")} <= names
    assert {("projections", "period"), ("projections", "party_id"), ("projections", "cursor")} <= {
        (p.service, p.name) for p in TEXTS
    }


@EXAMPLES
@given(data=st.data())
def test_an_out_of_range_number_is_refused_on_every_route(harness: Harness, data: st.DataObject) -> None:
    parameter = data.draw(st.sampled_from(INTEGERS))
    assert "minimum" in parameter.schema and "maximum" in parameter.schema, parameter
    value = data.draw(out_of_range(parameter.schema["minimum"], parameter.schema["maximum"]))
    before = harness.held()
    path, query = parameter.url(harness, str(value))
    response = harness.request(parameter.service, "GET", path, params=query, headers=TOKEN)
    assert_refused(harness, before, response)


@EXAMPLES
@given(data=st.data())
def test_a_trailing_newline_is_refused_on_every_route(harness: Harness, data: st.DataObject) -> None:
    # Not the integers: a number is read as a number (`5\n` is 5, as pydantic strips blanks),
    # so no newline survives into what the service uses; texts are used as sent.
    parameter = data.draw(st.sampled_from(TEXTS))
    valid = data.draw(st.sampled_from(_examples(parameter)))
    before = harness.held()
    path, query = parameter.url(harness, data.draw(with_trailing_newline(valid)))
    response = harness.request(parameter.service, "GET", path, params=query, headers=TOKEN)
    assert_refused(harness, before, response)


@EXAMPLES
@given(data=st.data())
def test_a_non_ascii_digit_is_refused_on_every_route(harness: Harness, data: st.DataObject) -> None:
    parameter = data.draw(
        st.sampled_from([p for p in TEXTS + INTEGERS if any(map(str.isdigit, _examples(p)[0]))])
    )
    valid = data.draw(st.sampled_from([v for v in _examples(parameter) if any(map(str.isdigit, v))]))
    before = harness.held()
    path, query = parameter.url(harness, data.draw(with_non_ascii_digit(valid)))
    response = harness.request(parameter.service, "GET", path, params=query, headers=TOKEN)
    assert_refused(harness, before, response)


# --- command bodies ---------------------------------------------------------------------------

AMEND_BODY: dict[str, Any] = {
    "document_number": "26/QĐ-MTTQ",
    "reason": "Bổ sung nhiệm vụ",
    "effective_on": "2024-01-01",
    "changes": [
        {
            "op": "revise_obligation",
            "obligation_id": "nhan-dao",
            "lead_party_id": "mttq-hoa-binh",
            "supporting_party_ids": ["hctd-hoa-binh"],
        },
        {"op": "remove_party", "party_id": "hctd-hoa-binh"},
        {"op": "change_term", "term": {"start": "2023-01-01", "end": "2028-12-31"}},
    ],
}
SUCCESSOR = {"party_id": "mttq-phu-tho", "name": "Ủy ban MTTQ tỉnh Phú Thọ", "kind": "front_committee"}
REGISTER_BODY = {
    "party_id": "stp-hoa-binh",
    "name": "Sở Tư pháp tỉnh Hòa Bình",
    "kind": "department",
    "electronic_id": "000.00.00.H22",
    "unit_code": "17",
}
SUCCESSION_BODY = {
    "effective_on": "2025-07-01",
    "legal_basis": "202/2025/QH15",
    "successor_party_id": "mttq-phu-tho",
    "obligation_successors": [
        {"agreement_id": "{agreement_id}", "obligation_id": "nhan-dao", "successor_party_id": "mttq-phu-tho"}
    ],
}
# Each command route with a body valid by the contract; the attack changes one field of it.
BODIES: list[tuple[str, dict[str, Any]]] = [
    ("/v1/agreements", sign_body()),
    ("/v1/agreements/{agreement_id}/amendments", AMEND_BODY),
    ("/v1/agreements/{agreement_id}/progress-reports", report_body()),
    ("/v1/agreements/{agreement_id}/close", {"closed_on": "2025-01-01", "outcome": "completed"}),
    ("/v1/parties", REGISTER_BODY),
    ("/v1/parties/mttq-hoa-binh/rename", {"name": "Ủy ban MTTQ tỉnh Hòa Bình", "effective_on": "2025-01-01"}),
    ("/v1/parties/mttq-hoa-binh/succession", SUCCESSION_BODY),
]
# The fields whose values are ids, periods, codes or dates (patterned, ASCII) or numbers.
PATTERNED_FIELDS = {
    "party_id",
    "obligation_id",
    "lead_party_id",
    "supporting_party_ids",
    "successor_party_id",
    "period",
    "electronic_id",
    "unit_code",
    "signed_on",
    "start",
    "end",
    "issued_on",
    "reported_on",
    "effective_on",
    "closed_on",
}
NUMBER_FIELDS = {"completion_percent"}


def _leaves(value: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[tuple[str | int, ...], Any]]:
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _leaves(inner, (*path, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            yield from _leaves(inner, (*path, index))
    else:
        yield path, value


def _field(path: tuple[str | int, ...]) -> str:
    return next(str(p) for p in reversed(path) if isinstance(p, str))


def _targets(fields: set[str]) -> list[tuple[str, dict[str, Any], tuple[str | int, ...]]]:
    return [
        (route, body, path)
        for route, body in BODIES
        for path, value in _leaves(body)
        if _field(path) in fields and value is not None
    ]


def _replaced(body: dict[str, Any], path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(body)
    inner: Any = changed
    for step in path[:-1]:
        inner = inner[step]
    inner[path[-1]] = value
    return changed


def _send(harness: Harness, route: str, body: dict[str, Any]) -> httpx.Response:
    text = json.dumps(body).replace("{agreement_id}", harness.agreement_id)
    url = route.replace("{agreement_id}", harness.agreement_id)
    headers = {**TOKEN, "Content-Type": "application/json"}
    return harness.request("registry", "POST", url, content=text.encode(), headers=headers)


def _properties(
    schema: Any, document: dict[str, Any], seen: set[str]
) -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref not in seen:
            seen.add(ref)
            yield from _properties(document["components"]["schemas"][ref.rsplit("/", 1)[-1]], document, seen)
        yield from schema.get("properties", {}).items()
        for value in schema.values():
            yield from _properties(value, document, seen)
    elif isinstance(schema, list):
        for item in schema:
            yield from _properties(item, document, seen)


def test_the_body_fields_tried_cover_every_patterned_field() -> None:
    document = create_registry(RegistrySettings()).openapi()
    tried = {route for route, _ in BODIES}
    sent = {_field(path) for _, body in BODIES for path, _ in _leaves(body)}
    for path, item in document["paths"].items():
        if "post" not in item or "requestBody" not in item["post"]:
            continue
        if path.startswith("/v1/log/"):
            continue  # a cosignature is a signed note: parsed whole by note.py (tests/unit/test_note.py)
        assert path.replace("{party_id}", "mttq-hoa-binh") in tried, path
        for name, schema in _properties(item["post"]["requestBody"], document, set()):
            text = json.dumps(schema)
            if '"pattern"' in text or '"format": "date"' in text or '"integer"' in text:
                assert name in PATTERNED_FIELDS | NUMBER_FIELDS, (path, name)
                assert name in sent, f"no body of {path} holds {name}"


@EXAMPLES
@given(data=st.data())
def test_a_trailing_newline_in_a_body_is_refused(harness: Harness, data: st.DataObject) -> None:
    route, body, path = data.draw(st.sampled_from(_targets(PATTERNED_FIELDS)))
    valid = dict(_leaves(body))[path]
    before = harness.held()
    response = _send(harness, route, _replaced(body, path, data.draw(with_trailing_newline(valid))))
    assert_refused(harness, before, response)
    assert response.status_code == 422
    assert_names(response, _field(path))


@EXAMPLES
@given(data=st.data())
def test_a_non_ascii_digit_in_a_body_is_refused(harness: Harness, data: st.DataObject) -> None:
    targets = [t for t in _targets(PATTERNED_FIELDS) if any(c.isdigit() for c in dict(_leaves(t[1]))[t[2]])]
    route, body, path = data.draw(st.sampled_from(targets))
    valid = dict(_leaves(body))[path]
    before = harness.held()
    response = _send(harness, route, _replaced(body, path, data.draw(with_non_ascii_digit(valid))))
    assert_refused(harness, before, response)
    assert response.status_code == 422
    assert_names(response, _field(path))


@EXAMPLES
@given(data=st.data())
def test_an_out_of_range_number_in_a_body_is_refused(harness: Harness, data: st.DataObject) -> None:
    route, body, path = data.draw(st.sampled_from(_targets(NUMBER_FIELDS)))
    value = data.draw(
        st.one_of(out_of_range(0, 100), st.sampled_from([math.inf, -math.inf, math.nan, 1e308]))
    )
    before = harness.held()
    # Python's json writes inf and nan as Infinity and NaN, which no JSON parser must take.
    response = _send(harness, route, _replaced(body, path, value))
    assert_refused(harness, before, response)
    assert_names(response, _field(path))


# --- a party's stream where an agreement is meant ----------------------------------------------

REFERENCES = [
    ("/v1/agreements", "parent_agreement_id", None),
    ("/v1/agreements/{agreement_id}/close", "successor_agreement_id", "superseded"),
    ("/v1/parties/mttq-hoa-binh/succession", "agreement_id", None),
]


@EXAMPLES
@given(data=st.data())
def test_a_party_stream_is_refused_where_an_agreement_is_meant(harness: Harness, data: st.DataObject) -> None:
    route, field, outcome = data.draw(st.sampled_from(REFERENCES))
    # The signing registered both parties (decision 16): their streams exist in the store.
    stream = "party/" + data.draw(st.sampled_from(PARTIES))
    body = dict(BODIES)[route]
    if field == "agreement_id":
        body = _replaced(body, ("obligation_successors", 0, "agreement_id"), stream)
    else:
        body = {**body, field: stream, **({"outcome": outcome} if outcome else {})}
    before = harness.held()
    response = _send(harness, route, body)
    assert_refused(harness, before, response)
    assert response.status_code == 422, response.text
    assert_names(response, field)
    assert "a party's directory stream, not an agreement" in response.text


# --- token claims ------------------------------------------------------------------------------

TIME_CLAIMS = ("exp", "nbf", "iat")


@st.composite
def bad_claims(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["time", "sub", "party_ids"]))
    if kind == "time":
        value = draw(
            st.one_of(
                out_of_range(0, MAX_NUMERIC_DATE),
                st.sampled_from([math.inf, -math.inf, math.nan, 1e400, True, "1700000000", None]),
            )
        )
        return {draw(st.sampled_from(TIME_CLAIMS)): value}
    if kind == "sub":
        sub = draw(st.from_regex(CLIENT_ID, fullmatch=True).filter(lambda s: len(s) < 200))
        return {"sub": draw(with_trailing_newline(sub))}
    party = draw(st.sampled_from(PARTIES))
    bad = draw(st.one_of(with_trailing_newline(party), with_non_ascii_digit(party + "2")))
    return {"party_ids": [*PARTIES, bad]}


@EXAMPLES
@given(claims=bad_claims(), service=st.sampled_from(["registry", "projections"]))
def test_a_bad_token_claim_is_refused(harness: Harness, claims: dict[str, Any], service: str) -> None:
    token = mint("bad-input-test", party_ids=PARTIES, extra=claims)
    headers = {"Authorization": f"Bearer {token}"}
    before = harness.held()
    if service == "registry":
        response = harness.request("registry", "POST", "/v1/agreements", json=sign_body(), headers=headers)
    else:
        response = harness.request("projections", "GET", "/v1/projections/status", headers=headers)
    assert response.status_code == 401, (claims, response.text)
    assert response.headers["content-type"] == PROBLEM_JSON
    assert harness.held() == before
