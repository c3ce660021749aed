"""Both OpenAPI documents are valid, and each operation documents exactly the statuses it can answer.

What an operation can answer is derived from what its route is made of, not read from its
`responses=`:

- a `require(scope)` dependency: 401 (no or bad token), 403 (scope), 429 (the client's rate limit);
- the body limit (`BodySizeLimit`, on every request whatever its method): 413;
- any parameter or body: 422 (validation); a body (read by FastAPI, or by the route's
  `command_body` dependency, which answers as FastAPI did): also 400 (bytes that are not text:
  "error parsing the body");
- a path parameter: 404 (a value holding "/" matches no route);
- `If-Match`: 400 (not a version) and 412; `cursor`: 400; `Idempotency-Key`: 409 (still in flight);
- the database (the pool, or the registry built on it): 503 with Retry-After; `min_position`
  waits on it too (503 once the wait runs out);
- and what the domain refuses, per operation (DOMAIN below, from the command bus and `decide`).

The less obvious of these rules are shown to hold on the running application (in process, no
lifespan: no database is needed to reach them, and the 503 comes from a pool whose server is
not there).
"""

from __future__ import annotations

import copy
import re
import socket
from collections.abc import Callable, Iterator
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from openapi_spec_validator import validate

from deploy.tokens import mint
from services.common.auth.dependencies import BearerScope, authenticate
from services.common.limits import BodySizeLimit
from services.projections.entrypoints.app import create_app as create_projections
from services.projections.entrypoints.routes import pool_of, read_your_writes
from services.projections.settings import ProjectionSettings
from services.registry.entrypoints.app import create_app as create_registry
from services.registry.entrypoints.log_routes import log_pool
from services.registry.entrypoints.routes import registry_of
from services.registry.settings import RegistrySettings

SMALL_BODY_LIMIT = 1024
# Dependencies that hand a route the database (directly, or the registry built on its pool).
DATABASE = {pool_of, registry_of, log_pool}

# What the domain refuses, beyond what the route's parts give (services/registry/service_layer/bus.py,
# services/registry/domain/decide.py; projections: services/projections/entrypoints/routes.py).
DOMAIN: dict[tuple[str, str, str], set[int]] = {
    # 403 the client acts for no lead party; 409 the document is already signed; 422 a rule.
    ("registry", "POST", "/v1/agreements"): {403, 409, 422},
    # 403 not a current party; 404 no agreement; 409 closed, or too many concurrent changes; 422 a rule.
    ("registry", "POST", "/v1/agreements/{agreement_id}/amendments"): {403, 404, 409, 422},
    ("registry", "POST", "/v1/agreements/{agreement_id}/progress-reports"): {403, 404, 409, 422},
    ("registry", "POST", "/v1/agreements/{agreement_id}/close"): {403, 404, 409, 422},
    ("registry", "GET", "/v1/agreements/{agreement_id}"): {404},
    ("registry", "GET", "/v1/agreements/{agreement_id}/events"): {404},
    ("projections", "GET", "/v1/agreements/{agreement_id}"): {404},  # not in the read model
    # The transparency log (B11): no checkpoint yet; no such event, or not in the tree yet; a
    # cosignature of a checkpoint this log never signed.
    ("registry", "GET", "/v1/log/checkpoint"): {404},
    ("registry", "GET", "/v1/log/tiles/checkpoint"): {404},
    ("registry", "GET", "/v1/log/checkpoints/{tree_size}"): {404},
    ("registry", "GET", "/v1/log/proofs/inclusion"): {404},
    ("registry", "POST", "/v1/log/cosignatures"): {409, 422},
}


def apps() -> dict[str, FastAPI]:
    return {
        "registry": create_registry(RegistrySettings(max_body_bytes=SMALL_BODY_LIMIT)),
        "projections": create_projections(ProjectionSettings(max_body_bytes=SMALL_BODY_LIMIT)),
    }


def _dependants(dependant: Dependant) -> Iterator[Dependant]:
    yield dependant
    for sub in dependant.dependencies:
        yield from _dependants(sub)


def possible_statuses(app: FastAPI, route: RouteContext) -> set[int]:
    """The error statuses the route's parts (and the app's middleware) can answer with."""
    parts = list(_dependants(route.dependant))
    calls: list[Callable[..., Any]] = [d.call for d in parts if d.call is not None]
    headers = {p.alias.lower() for d in parts for p in d.header_params}
    queries = {p.alias for d in parts for p in d.query_params}
    has_path = any(d.path_params for d in parts)
    # A body FastAPI reads, or one a route reads itself (services/registry/entrypoints/bodies.py).
    has_body = any(d.body_params for d in parts) or any(hasattr(call, "reads_json_body") for call in calls)
    statuses: set[int] = set()
    scoped = any(isinstance(call, BearerScope) for call in calls)  # what `require(scope)` gives
    if authenticate in calls or scoped:
        statuses |= {401, 429}
    if scoped:
        statuses.add(403)
    if any(getattr(middleware, "cls", None) is BodySizeLimit for middleware in app.user_middleware):
        statuses.add(413)
    if has_path or has_body or headers or queries:
        statuses.add(422)
    if has_body:
        statuses.add(400)
    if has_path:
        statuses.add(404)
    if "if-match" in headers:
        statuses |= {400, 412}
    if "cursor" in queries:
        statuses.add(400)
    if "idempotency-key" in headers:
        statuses.add(409)
    # A command route (it reads its command's body) hands the command to the registry's bus.
    commands = any(hasattr(call, "reads_json_body") for call in calls)
    if any(call in DATABASE for call in calls) or read_your_writes in calls or commands:
        statuses.add(503)
    return statuses


def operations(app: FastAPI) -> Iterator[tuple[str, str, RouteContext]]:
    """Every documented operation, as FastAPI builds it (router prefix and dependencies included)."""
    for route in iter_route_contexts(app.routes):
        if isinstance(route.original_route, APIRoute) and route.include_in_schema:
            for method in sorted(route.methods or ()):
                yield method, str(route.path_format), route


@pytest.mark.parametrize("service", ["registry", "projections"])
def test_the_document_is_valid_openapi(service: str) -> None:
    document = apps()[service].openapi()
    assert document["openapi"].startswith("3.1.")
    validate(document)  # raises on the first error


def mismatches(service: str, app: FastAPI, document: dict[str, Any]) -> list[str]:
    """Every way the document's error responses differ from what the operations can answer."""
    found = []
    seen = set()
    for method, path, route in operations(app):
        seen.add((method, path))
        responses = document["paths"][path][method.lower()]["responses"]
        documented = {int(status) for status in responses if int(status) >= 400}
        expected = possible_statuses(app, route) | DOMAIN.get((service, method, path), set())
        if documented != expected:
            found.append(
                f"{method} {path}: undocumented {sorted(expected - documented)}, "
                f"documented but impossible {sorted(documented - expected)}"
            )
        if str(route.status_code or 200) not in responses:
            found.append(f"{method} {path}: its success status is not documented")
        for status in sorted(documented):
            response = responses[str(status)]
            if response.get("content") != {
                "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
            }:
                found.append(f"{method} {path} {status}: not a Problem (application/problem+json)")
            headers = response.get("headers", {})
            always = {429: "Retry-After", 503: "Retry-After", 401: "WWW-Authenticate"}.get(status)
            if always and headers.get(always, {}).get("required") is not True:
                found.append(f"{method} {path} {status}: {always} is not documented as always sent")
    documented_operations = {
        (method.upper(), path) for path, item in document["paths"].items() for method in item
    }
    found += [
        f"{method} {path}: not an operation of the app" for method, path in documented_operations - seen
    ]
    found += [
        f"DOMAIN names {method} {path}, which does not exist"
        for (name, method, path) in DOMAIN
        if name == service and (method, path) not in seen
    ]
    return found


@pytest.mark.parametrize("service", ["registry", "projections"])
def test_every_operation_documents_exactly_the_statuses_it_can_answer(service: str) -> None:
    app = apps()[service]
    document = app.openapi()
    assert mismatches(service, app, document) == []
    assert "Problem" in document["components"]["schemas"]


def test_an_undocumented_or_impossible_status_is_caught() -> None:
    app = apps()["projections"]
    document = copy.deepcopy(app.openapi())
    responses = document["paths"]["/v1/agreements"]["get"]["responses"]
    del responses["503"]  # the database and the min_position wait can give it
    responses["404"] = responses["400"]  # no path parameter: no 404
    del document["paths"]["/v1/reports/overdue"]["get"]["responses"]["429"]["headers"]
    assert mismatches("projections", app, document) == [
        "GET /v1/agreements: undocumented [503], documented but impossible [404]",
        "GET /v1/reports/overdue 429: Retry-After is not documented as always sent",
    ]


# --- the rules hold on the running applications ---------------------------------------------------


def _client(app: FastAPI) -> httpx.AsyncClient:
    # The 503 handler re-raises after answering (Starlette's ServerErrorMiddleware): keep the answer.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://coordreg.test")


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_the_less_obvious_statuses_are_real() -> None:
    registry, projections = apps()["registry"], apps()["projections"]
    token = {"Authorization": f"Bearer {mint('openapi-test', party_ids=['mttq-hoa-binh'])}"}
    async with _client(registry) as reg, _client(projections) as proj:
        # 413 on a GET too: the limit reads Content-Length before any route is chosen.
        for client in (reg, proj):
            big = await client.request("GET", "/v1/agreements/x", content=b"x" * (SMALL_BODY_LIMIT + 1))
            assert big.status_code == 413, big.text
        # 400 for a body that is not text, before the token is even looked at.
        for path in ("/v1/agreements", "/v1/agreements/x/amendments"):
            undecodable = await reg.post(
                path, content=b'{"title": "\xff"}', headers={"Content-Type": "application/json"}
            )
            assert undecodable.status_code == 400, undecodable.text
            assert undecodable.headers["content-type"] == "application/problem+json"
        # 404 for a path parameter holding "/": no route matches.
        for client, path in ((reg, "/v1/agreements/a%2Fb/events"), (proj, "/v1/parties/a%2Fb/obligations")):
            unrouted = await client.get(path, headers=token)
            assert unrouted.status_code == 404, unrouted.text
        # 503 + Retry-After when the database cannot be reached (a pool whose server is gone).
        pool = await asyncpg.create_pool(f"postgresql://nobody@127.0.0.1:{_closed_port()}/none", min_size=0)
        try:
            projections.state.pool = pool
            unavailable = await proj.get("/v1/agreements", headers=token)
        finally:
            await pool.close()
        assert unavailable.status_code == 503, unavailable.text
        assert unavailable.headers["retry-after"] == "1"
        assert unavailable.json()["type"].endswith("/unavailable")


async def test_both_services_are_ready_only_while_their_database_answers() -> None:
    for name, app in apps().items():
        async with _client(app) as client:
            assert (await client.get("/readyz")).status_code == 503, f"{name}: ready without a pool"
            pool = await asyncpg.create_pool(
                f"postgresql://nobody@127.0.0.1:{_closed_port()}/none", min_size=0
            )
            try:
                app.state.pool = pool
                answer = await client.get("/readyz")
            finally:
                await pool.close()
                del app.state.pool
            assert answer.status_code == 503, f"{name}: ready while its database is unreachable"


# --- a typed contract (issue 21): named answers, stable operation ids, tags -----------------------

CAMEL_CASE = re.compile(r"[a-z][a-z0-9]*(?:[A-Z][a-z0-9]*)+")


def untyped(document: dict[str, Any]) -> list[str]:
    """Every way an operation falls short of a typed contract: a 2xx answer without a `$ref` to a
    named component (in each of its media types), an operationId that is not camelCase or not
    unique, no tag, an error that is not a Problem."""
    found = []
    schemas = document["components"]["schemas"]
    seen: dict[str, str] = {}
    for path, item in document["paths"].items():
        for method, operation in item.items():
            name = f"{method.upper()} {path}"
            operation_id = operation.get("operationId", "")
            if CAMEL_CASE.fullmatch(operation_id) is None:
                found.append(f"{name}: operationId {operation_id!r} is not camelCase")
            if operation_id in seen:
                found.append(f"{name}: operationId {operation_id!r} is also {seen[operation_id]}'s")
            seen[operation_id] = name
            if not operation.get("tags"):
                found.append(f"{name}: no tag")
            successes = {s: r for s, r in operation["responses"].items() if s.startswith("2")}
            if not successes:
                found.append(f"{name}: no 2xx answer")
            for status, response in successes.items():
                content = response.get("content", {})
                if not content:
                    found.append(f"{name} {status}: no content")
                for media_type, body in content.items():
                    target = body.get("schema", {}).get("$ref", "")
                    if target.removeprefix("#/components/schemas/") not in schemas:
                        found.append(f"{name} {status} {media_type}: not a named schema ({target!r})")
            for status, response in operation["responses"].items():
                if int(status) >= 400 and response.get("content", {}).get("application/problem+json", {}).get(
                    "schema"
                ) != {"$ref": "#/components/schemas/Problem"}:
                    found.append(f"{name} {status}: not a Problem")
    return found


@pytest.mark.parametrize("service", ["registry", "projections"])
def test_every_operation_is_typed_named_and_tagged(service: str) -> None:
    assert untyped(apps()[service].openapi()) == []


def test_an_untyped_operation_is_caught() -> None:
    document = copy.deepcopy(apps()["registry"].openapi())
    operation = document["paths"]["/v1/agreements"]["post"]
    operation["operationId"] = "sign_v1_agreements_post"
    operation["responses"]["201"]["content"]["application/json"]["schema"] = {}
    del operation["tags"]
    document["paths"]["/v1/agreements/{agreement_id}"]["get"]["operationId"] = "amendAgreement"
    assert untyped(document) == [
        "POST /v1/agreements: operationId 'sign_v1_agreements_post' is not camelCase",
        "POST /v1/agreements: no tag",
        "POST /v1/agreements 201 application/json: not a named schema ('')",
        "GET /v1/agreements/{agreement_id}: operationId 'amendAgreement' is also "
        "POST /v1/agreements/{agreement_id}/amendments's",
    ]


# The operationIds clients generate their method names from: stable (docs/CONTRACT.md).
OPERATION_IDS = {
    "registry": {
        "signAgreement", "amendAgreement", "reportProgress", "closeTerm", "getAgreement",
        "listAgreementEvents", "registerParty", "renameParty", "recordSuccession", "getParty",
        "listPartyEvents", "getCheckpoint", "getCheckpointOfSize", "signCheckpoint",
        "getInclusionProof", "getConsistencyProof", "listLeaves", "getLogKeys", "addCosignature",
        "getEventKeys", "getTiledCheckpoint", "getTile", "getEntryBundle",
    },
    "projections": {
        "getParty", "listPartyObligations", "listPartyHistory", "listAgreements", "getAgreement",
        "listOverdueObligations", "getProjectionStatus",
    },
}  # fmt: skip


@pytest.mark.parametrize("service", ["registry", "projections"])
def test_the_operation_ids_are_the_published_ones(service: str) -> None:
    document = apps()[service].openapi()
    ids = {operation["operationId"] for item in document["paths"].values() for operation in item.values()}
    assert ids == OPERATION_IDS[service]
