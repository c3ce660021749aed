"""Who may do what (docs/CONTRACT.md, "Clients"): every endpoint of both services against every
kind of caller, on the real stack. The matrix is printed; no unauthorised request succeeds.

Also: the token's `sub` is the event's actor, party binding in detail, key rotation, and the
services' refusal to start in production mode with no keys or with the development key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from services.common import auth
from services.common.auth import ALL_SCOPES, DEV_JWK, AuthConfigError
from services.common.envelope_signatures import DEV_SIGNER, DEV_VERIFIER_KEY, EnvelopeSigner, EventKeyError
from services.projections.entrypoints.app import create_app as create_projections
from services.projections.settings import ProjectionSettings
from services.registry.entrypoints.app import create_app as create_registry
from services.registry.settings import RegistrySettings
from services.transparency.log import DEV_LOG_KEY_SEED, DEV_LOG_ORIGIN, LogKeyError
from tests.support.builders import report_body, sign_body
from tests.support.kafka import Brokers
from tests.support.stack import Stack, running_stack

LEAD, MEMBER, OUTSIDER = "mttq-hoa-binh", "hctd-hoa-binh", "so-noi-vu"
RIGHT_PARTIES = (LEAD, MEMBER)


# ---------------------------------------------------------------- tokens of every kind


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": auth.DEFAULT_ISSUER,
        "aud": auth.DEFAULT_AUDIENCE,
        "sub": "forger",
        "iat": now,
        "exp": now + 600,
        "scope": " ".join(ALL_SCOPES),
        "party_ids": list(RIGHT_PARTIES),
    }
    claims.update(overrides)
    return claims


def alg_none_token() -> str:
    header = {"alg": "none", "typ": "JWT", "kid": DEV_JWK["kid"]}
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(_claims()).encode())}."


def hs256_with_public_key_token() -> str:
    """The classic confusion: HMAC keyed with the (published) public key, as PEM."""
    public = jwt.PyJWK(DEV_JWK).key
    secret = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    header = {"alg": "HS256", "typ": "JWT", "kid": DEV_JWK["kid"]}
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(_claims()).encode())}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def forged_signature_token(stack: Stack) -> str:
    """Right kid, right claims, signed by a key the services do not trust."""
    return stack.token(party_ids=RIGHT_PARTIES, key=ec.generate_private_key(ec.SECP256R1()))


@dataclass(frozen=True)
class Identity:
    name: str
    expected: str  # "ok": may succeed; "party": 403 on commands, reads ok; "scope": 403; "401"
    token: Callable[[str], str | None]  # endpoint scope -> token (None: no Authorization header)


def identities(stack: Stack) -> list[Identity]:
    now = time.time()
    other_key = ec.generate_private_key(ec.SECP256R1())
    return [
        Identity("right party", "ok", lambda scope: stack.token("right-client", party_ids=RIGHT_PARTIES)),
        Identity("other party", "party", lambda scope: stack.token("other-client", party_ids=[OUTSIDER])),
        Identity(
            "missing scope",
            "scope",
            lambda scope: stack.token(
                "scopeless-client", [s for s in ALL_SCOPES if s != scope], party_ids=RIGHT_PARTIES
            ),
        ),
        Identity(
            "expired",
            "401",
            lambda scope: stack.token(party_ids=RIGHT_PARTIES, ttl=600, now=now - 3600),
        ),
        Identity(
            "not yet valid",
            "401",
            lambda scope: stack.token(party_ids=RIGHT_PARTIES, ttl=7200, not_before=now + 3600),
        ),
        Identity(
            "wrong audience",
            "401",
            lambda scope: stack.token(party_ids=RIGHT_PARTIES, audience="some-other-service"),
        ),
        Identity(
            "wrong issuer", "401", lambda scope: stack.token(party_ids=RIGHT_PARTIES, issuer="evil-issuer")
        ),
        Identity("bad signature", "401", lambda scope: forged_signature_token(stack)),
        Identity("alg none", "401", lambda scope: alg_none_token()),
        Identity("HS256 with public key", "401", lambda scope: hs256_with_public_key_token()),
        Identity(
            "unknown kid",
            "401",
            lambda scope: stack.token(party_ids=RIGHT_PARTIES, key=other_key, kid="unknown-kid"),
        ),
        Identity("no token", "401", lambda scope: None),
        Identity("garbage token", "401", lambda scope: "garbage." + uuid.uuid4().hex),
    ]


# ---------------------------------------------------------------- every endpoint


@dataclass(frozen=True)
class Endpoint:
    service: str  # "registry" | "projections"
    method: str
    label: str
    scope: str
    success: int
    command: bool
    # Prepares one request: (path, json body or None); may sign a fresh agreement.
    prepare: Callable[[Stack, dict[str, str]], Awaitable[tuple[str, dict[str, Any] | None]]]


def endpoints() -> list[Endpoint]:
    async def sign(stack: Stack, ctx: dict[str, str]) -> tuple[str, dict[str, Any] | None]:
        return "/v1/agreements", sign_body()

    async def amend(stack: Stack, ctx: dict[str, str]) -> tuple[str, dict[str, Any] | None]:
        tag = uuid.uuid4().hex[:8]
        body = {
            "document_number": f"{tag}/QĐ-MTTQ",
            "reason": "Điều chỉnh nội dung",
            "effective_on": "2024-03-01",
            "changes": [{"op": "revise_obligation", "obligation_id": "nhan-dao", "title": f"Nhân đạo {tag}"}],
        }
        return f"/v1/agreements/{ctx['agreement']}/amendments", body

    async def report(stack: Stack, ctx: dict[str, str]) -> tuple[str, dict[str, Any] | None]:
        return f"/v1/agreements/{ctx['agreement']}/progress-reports", report_body(party_id=LEAD)

    async def close(stack: Stack, ctx: dict[str, str]) -> tuple[str, dict[str, Any] | None]:
        fresh = (await stack.sign(sign_body()))["agreement_id"]  # closing is once per agreement
        body = {"closed_on": "2027-12-31", "outcome": "completed", "summary": "Tổng kết"}
        return f"/v1/agreements/{fresh}/close", body

    async def register(stack: Stack, ctx: dict[str, str]) -> tuple[str, dict[str, Any] | None]:
        body = {"party_id": f"p-{uuid.uuid4().hex[:12]}", "name": "Sở Nội vụ", "kind": "department"}
        return "/v1/parties", body

    async def rename(stack: Stack, ctx: dict[str, str]) -> tuple[str, dict[str, Any] | None]:
        party = (await stack.register_party(f"p-{uuid.uuid4().hex[:12]}"))["party_id"]
        return f"/v1/parties/{party}/rename", {"name": "Sở Nội vụ (mới)", "effective_on": "2025-07-01"}

    async def succession(stack: Stack, ctx: dict[str, str]) -> tuple[str, dict[str, Any] | None]:
        # A succession is once per body: a fresh predecessor and successor each time.
        predecessor = (await stack.register_party(f"p-{uuid.uuid4().hex[:12]}"))["party_id"]
        successor = (await stack.register_party(f"p-{uuid.uuid4().hex[:12]}"))["party_id"]
        body = {"effective_on": "2025-07-01", "legal_basis": "202/2025/QH15", "successor_party_id": successor}
        return f"/v1/parties/{predecessor}/succession", body

    def get(path: str) -> Callable[[Stack, dict[str, str]], Awaitable[tuple[str, dict[str, Any] | None]]]:
        async def prepare(stack: Stack, ctx: dict[str, str]) -> tuple[str, dict[str, Any] | None]:
            return path.format(**ctx), None

        return prepare

    return [
        Endpoint("registry", "POST", "/v1/agreements", auth.SIGN, 201, True, sign),
        Endpoint("registry", "POST", "/v1/agreements/{id}/amendments", auth.AMEND, 200, True, amend),
        Endpoint("registry", "POST", "/v1/agreements/{id}/progress-reports", auth.REPORT, 201, True, report),
        Endpoint("registry", "POST", "/v1/agreements/{id}/close", auth.CLOSE, 200, True, close),
        Endpoint(
            "registry", "GET", "/v1/agreements/{id}", auth.READ, 200, False, get("/v1/agreements/{agreement}")
        ),
        Endpoint(
            "registry",
            "GET",
            "/v1/agreements/{id}/events",
            auth.READ,
            200,
            False,
            get("/v1/agreements/{agreement}/events"),
        ),
        # The directory's administrators act for the directory, not for a party: no party binding.
        Endpoint("registry", "POST", "/v1/parties", auth.ADMINISTER, 201, False, register),
        Endpoint("registry", "POST", "/v1/parties/{party}/rename", auth.ADMINISTER, 200, False, rename),
        Endpoint(
            "registry", "POST", "/v1/parties/{party}/succession", auth.ADMINISTER, 200, False, succession
        ),
        Endpoint("registry", "GET", "/v1/parties/{party}", auth.READ, 200, False, get(f"/v1/parties/{LEAD}")),
        # The transparency log (B11): a checkpoint signed on demand first, so that it is served.
        Endpoint(
            "registry", "POST", "/v1/log/checkpoints", auth.WITNESS, 201, False, get("/v1/log/checkpoints")
        ),
        Endpoint("registry", "GET", "/v1/log/checkpoint", auth.READ, 200, False, get("/v1/log/checkpoint")),
        Endpoint("registry", "GET", "/v1/log/keys", auth.READ, 200, False, get("/v1/log/keys")),
        Endpoint(
            "registry",
            "GET",
            "/v1/log/tiles/checkpoint",
            auth.READ,
            200,
            False,
            get("/v1/log/tiles/checkpoint"),
        ),
        Endpoint(
            "registry",
            "GET",
            "/v1/parties/{party}/events",
            auth.READ,
            200,
            False,
            get(f"/v1/parties/{LEAD}/events"),
        ),
        Endpoint(
            "projections",
            "GET",
            "/v1/parties/{party}/obligations",
            auth.READ,
            200,
            False,
            get(f"/v1/parties/{LEAD}/obligations"),
        ),
        Endpoint(
            "projections",
            "GET",
            "/v1/parties/{party}/history",
            auth.READ,
            200,
            False,
            get(f"/v1/parties/{LEAD}/history"),
        ),
        Endpoint(
            "projections", "GET", "/v1/agreements", auth.READ, 200, False, get("/v1/agreements?q=ngheo")
        ),
        Endpoint(
            "projections",
            "GET",
            "/v1/agreements/{id}",
            auth.READ,
            200,
            False,
            get("/v1/agreements/{agreement}"),
        ),
        Endpoint(
            "projections",
            "GET",
            "/v1/reports/overdue",
            auth.READ,
            200,
            False,
            get("/v1/reports/overdue?period=2024"),
        ),
        Endpoint(
            "projections",
            "GET",
            "/v1/projections/status",
            auth.READ,
            200,
            False,
            get("/v1/projections/status"),
        ),
    ]


def expected_status(identity: Identity, endpoint: Endpoint) -> int:
    if identity.expected == "ok":
        return endpoint.success
    if identity.expected == "party":
        return 403 if endpoint.command else endpoint.success
    if identity.expected == "scope":
        return 403
    return 401


async def send(stack: Stack, endpoint: Endpoint, token: str | None, ctx: dict[str, str]) -> httpx.Response:
    path, body = await endpoint.prepare(stack, ctx)
    base = stack.registry_url if endpoint.service == "registry" else stack.projections_url
    headers = Stack.bearer(token) if token is not None else {}
    # A fresh client: no default Authorization header sneaks in.
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        return await client.request(endpoint.method, path, json=body, headers=headers)


async def test_every_endpoint_against_every_kind_of_caller(stack: Stack) -> None:
    agreement = await stack.sign(sign_body())
    await stack.wait_for_position(agreement["position"])
    ctx = {"agreement": agreement["agreement_id"]}
    people = identities(stack)
    table: dict[tuple[str, str], tuple[int, int]] = {}
    for endpoint in endpoints():
        for identity in people:
            response = await send(stack, endpoint, identity.token(endpoint.scope), ctx)
            want = expected_status(identity, endpoint)
            table[(f"{endpoint.service[:4]} {endpoint.method} {endpoint.label}", identity.name)] = (
                response.status_code,
                want,
            )
            if response.status_code in (401, 403):
                assert response.headers["content-type"] == "application/problem+json", response.text
                assert response.json()["status"] == response.status_code
            if response.status_code == 401:
                assert response.headers["www-authenticate"].startswith("Bearer"), response.headers
            assert response.status_code == want, (endpoint.label, identity.name, response.text)

    rows = list(dict.fromkeys(row for row, _ in table))
    columns = [i.name for i in people]
    width = max(len(r) for r in rows)
    print("\nauthorization matrix: actual status per endpoint and caller (* = not the expected status)")
    print(" " * width + " | " + " | ".join(columns))
    for row in rows:
        cells = []
        for column in columns:
            got, want = table[(row, column)]
            cells.append(f"{got}{'*' if got != want else ''}".center(len(column)))
        print(f"{row:<{width}} | " + " | ".join(cells))
    unauthorised = [(cell, got) for cell, (got, want) in table.items() if want >= 400 and got < 400]
    print(f"cells: {len(table)}, unauthorised successes: {len(unauthorised)}")
    assert unauthorised == []


async def test_the_events_actor_is_the_tokens_sub(stack: Stack) -> None:
    token = stack.token("hoa-binh-front-system", party_ids=[LEAD])
    signed = await stack.registry.post("/v1/agreements", json=sign_body(), headers=stack.bearer(token))
    assert signed.status_code == 201, signed.text
    agreement = signed.json()["agreement_id"]
    supporter = stack.token("red-cross-system", party_ids=[MEMBER])
    reported = await stack.registry.post(
        f"/v1/agreements/{agreement}/progress-reports", json=report_body(), headers=stack.bearer(supporter)
    )
    assert reported.status_code == 201, reported.text
    events = (await stack.registry.get(f"/v1/agreements/{agreement}/events")).json()["events"]
    assert [e["actor"] for e in events] == ["hoa-binh-front-system", "red-cross-system"]


async def test_parties_bind_what_a_client_may_do(stack: Stack) -> None:
    async def post(path: str, body: dict[str, Any], *parties: str) -> httpx.Response:
        token = stack.token(f"client-{'-'.join(parties)}", party_ids=parties)
        return await stack.registry.post(path, json=body, headers=stack.bearer(token))

    # Signing needs the lead party: a member alone may not sign for the lead.
    assert (await post("/v1/agreements", sign_body(), MEMBER)).status_code == 403
    signed = await post("/v1/agreements", sign_body(), LEAD)
    assert signed.status_code == 201
    agreement = signed.json()["agreement_id"]
    # Without exactly one lead the domain names the rule (422), to a client holding a party.
    no_lead = sign_body()
    no_lead["parties"][0]["role"] = "member"
    assert (await post("/v1/agreements", no_lead, LEAD)).status_code == 422
    assert (await post("/v1/agreements", no_lead, OUTSIDER)).status_code == 403

    # Reporting: only as a party the client holds (403); the domain still checks that the
    # party leads or supports the obligation (422).
    reports = f"/v1/agreements/{agreement}/progress-reports"
    assert (await post(reports, report_body(party_id=LEAD), MEMBER)).status_code == 403
    assert (await post(reports, report_body(party_id=MEMBER), MEMBER)).status_code == 201
    assert (await post(reports, report_body(party_id=OUTSIDER), OUTSIDER)).status_code == 422

    # Amending and closing: a current party of the agreement. A party added by an
    # amendment may amend; a removed one no longer may.
    amendments = f"/v1/agreements/{agreement}/amendments"

    def amendment(*changes: dict[str, Any]) -> dict[str, Any]:
        return {
            "document_number": f"{uuid.uuid4().hex[:6]}/QĐ",
            "reason": "Điều chỉnh",
            "effective_on": "2024-03-01",
            "changes": list(changes),
        }

    add_outsider = {"op": "add_party", "party": {"party_id": OUTSIDER, "name": "Sở Nội vụ", "role": "member"}}
    assert (await post(amendments, amendment(add_outsider), OUTSIDER)).status_code == 403
    assert (await post(amendments, amendment(add_outsider), MEMBER)).status_code == 200
    revise = {"op": "revise_obligation", "obligation_id": "nhan-dao", "title": "Nhân đạo"}
    assert (await post(amendments, amendment(revise), OUTSIDER)).status_code == 200
    remove = {"op": "remove_party", "party_id": OUTSIDER}
    assert (await post(amendments, amendment(remove), LEAD)).status_code == 200
    assert (await post(amendments, amendment(revise), OUTSIDER)).status_code == 403
    closing = {"closed_on": "2027-12-31", "outcome": "completed"}
    assert (await post(f"/v1/agreements/{agreement}/close", closing, OUTSIDER)).status_code == 403
    assert (await post(f"/v1/agreements/{agreement}/close", closing, MEMBER)).status_code == 200
    # An unknown agreement is 404 for a client with the scope, whatever it holds.
    assert (await post(f"/v1/agreements/{uuid.uuid4()}/close", closing, OUTSIDER)).status_code == 404


# ---------------------------------------------------------------- keys


def _public_jwk(private: Any, kid: str) -> dict[str, Any]:
    algorithm: Any
    if isinstance(private, rsa.RSAPrivateKey):
        algorithm, alg = jwt.algorithms.RSAAlgorithm, "RS256"
    elif isinstance(private, ed25519.Ed25519PrivateKey):
        algorithm, alg = jwt.algorithms.OKPAlgorithm, "EdDSA"
    else:
        algorithm, alg = jwt.algorithms.ECAlgorithm, "ES256"
    jwk: dict[str, Any] = json.loads(algorithm.to_jwk(private.public_key()))
    return {**jwk, "kid": kid, "alg": alg, "use": "sig"}


def _write_jwks(path: Path, *keys: dict[str, Any], bump: float = 0) -> None:
    path.write_text(json.dumps({"keys": list(keys)}), encoding="utf-8")
    stamp = time.time() + bump
    os.utime(path, (stamp, stamp))


async def test_keys_rotate_by_kid_and_a_removed_key_is_refused(
    database_url: str, kafka: Brokers, topic: str, tmp_path: Path
) -> None:
    old = ec.generate_private_key(ec.SECP256R1())
    new = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    newest = ed25519.Ed25519PrivateKey.generate()
    jwks = tmp_path / "jwks.json"
    _write_jwks(jwks, _public_jwk(old, "2025-old"), _public_jwk(new, "2026-new"))
    options = {
        "auth_jwks": str(jwks),
        "auth_jwks_reload_seconds": 0,
        "auth_issuer": "https://idp.example.gov.vn",
        "auth_audience": "coordreg-test",
    }
    async with running_stack(
        database_url,
        kafka,
        topic,
        relay=False,
        registry_options=options,
        projection_options=options,
    ) as stack:

        def token(key: Any, kid: str, alg: str) -> dict[str, str]:
            minted = stack.token(
                "rotating-client",
                party_ids=[LEAD],
                key=key,
                kid=kid,
                algorithm=alg,
                issuer="https://idp.example.gov.vn",
                audience="coordreg-test",
            )
            return stack.bearer(minted)

        async def statuses(headers: dict[str, str]) -> tuple[int, int]:
            registry = await stack.registry.get(f"/v1/agreements/{uuid.uuid4()}", headers=headers)
            projections = await stack.projections.get("/v1/projections/status", headers=headers)
            return registry.status_code, projections.status_code

        # The stack's default token is signed with the development key, which this JWKS does not list.
        assert (await stack.registry.get(f"/v1/agreements/{uuid.uuid4()}")).status_code == 401
        assert await statuses(token(old, "2025-old", "ES256")) == (404, 200)
        assert await statuses(token(new, "2026-new", "RS256")) == (404, 200)
        # A key signing for another kid's entry is refused.
        assert await statuses(token(old, "2026-new", "ES256")) == (401, 401)

        # Rotation: the old key leaves the JWKS, a newer one joins; no restart.
        _write_jwks(jwks, _public_jwk(new, "2026-new"), _public_jwk(newest, "2027-newest"), bump=5)
        assert await statuses(token(old, "2025-old", "ES256")) == (401, 401)
        assert await statuses(token(new, "2026-new", "RS256")) == (404, 200)
        assert await statuses(token(newest, "2027-newest", "EdDSA")) == (404, 200)

        # A broken JWKS is not taken: the service keeps the keys it had (and logs an error).
        jwks.write_text("{not json", encoding="utf-8")
        os.utime(jwks, (time.time() + 10, time.time() + 10))
        assert await statuses(token(new, "2026-new", "RS256")) == (404, 200)


def _pem(key: ed25519.Ed25519PrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _settings_pairs(**fields: Any) -> list[RegistrySettings | ProjectionSettings]:
    return [RegistrySettings(**fields), ProjectionSettings(**fields)]


PRODUCTION_ISSUER = "https://idp.example.gov.vn"


def test_production_mode_refuses_to_start_without_keys_or_with_the_development_key() -> None:
    # The development issuer is refused before the keys are looked at: anyone can mint in its name.
    for settings in _settings_pairs(environment="production", auth_jwks="{}"):
        with pytest.raises(AuthConfigError, match="development issuer 'coordreg-dev'"):
            create_registry(settings) if isinstance(settings, RegistrySettings) else create_projections(
                settings
            )
    for settings in _settings_pairs(environment="production", auth_issuer=PRODUCTION_ISSUER):
        with pytest.raises(AuthConfigError, match="production mode needs"):
            create_registry(settings) if isinstance(settings, RegistrySettings) else create_projections(
                settings
            )
    renamed_dev_key = {**DEV_JWK, "kid": "looks-innocent"}
    production_key = _public_jwk(ec.generate_private_key(ec.SECP256R1()), "prod-2026")
    for keys in ([DEV_JWK], [production_key, renamed_dev_key]):
        jwks = json.dumps({"keys": keys})
        for settings in _settings_pairs(
            environment="production", auth_jwks=jwks, auth_issuer=PRODUCTION_ISSUER
        ):
            with pytest.raises(AuthConfigError, match="development key"):
                auth.verifier_from_settings(settings)
    # With real keys only, both start (create_app builds; the lifespan is not run here). The
    # registry also needs a transparency-log key of its own and the log's name (B11).
    jwks = json.dumps({"keys": [production_key]})
    log_key = (
        ed25519.Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        .decode()
    )
    dev_log_key = (
        ed25519.Ed25519PrivateKey.from_private_bytes(DEV_LOG_KEY_SEED)
        .private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        .decode()
    )
    origin = "registry.example.gov.vn/agreements"
    for signing_key, log_origin, message in (
        ("", "", "needs REGISTRY_LOG_SIGNING_KEY"),
        (dev_log_key, origin, "refuses the development log key"),
        (log_key, "", "REGISTRY_LOG_ORIGIN"),
        # The development log's name, and the Kubernetes base's placeholder (RFC 2606 .invalid).
        (log_key, DEV_LOG_ORIGIN, "placeholder log origin"),
        (log_key, "coordreg.invalid/set-per-deployment", "placeholder log origin"),
    ):
        with pytest.raises(LogKeyError, match=message):
            create_registry(
                RegistrySettings(
                    environment="production",
                    auth_jwks=jwks,
                    auth_issuer=PRODUCTION_ISSUER,
                    log_signing_key=signing_key,
                    log_origin=log_origin,
                )
            )
    # And an event key of its own, with its name (B12); a projection worker, the event verifier
    # key(s), not the development one.
    event_key = ed25519.Ed25519PrivateKey.generate()
    event_pem = event_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    events_name = "registry.example.gov.vn/events"
    logged: dict[str, Any] = {
        "environment": "production",
        "auth_jwks": jwks,
        "auth_issuer": PRODUCTION_ISSUER,
        "log_signing_key": log_key,
        "log_origin": origin,
    }
    refusals: list[tuple[dict[str, Any], str]] = [
        ({}, "needs REGISTRY_EVENT_SIGNING_KEY"),
        ({"event_signing_key": event_pem}, "REGISTRY_EVENT_KEY_NAME"),
        ({"event_signing_key": _pem(DEV_SIGNER.key), "event_key_name": events_name}, "development event key"),
    ]
    for event_fields, message in refusals:
        with pytest.raises(EventKeyError, match=message):
            create_registry(RegistrySettings(**logged, **event_fields))
    assert (
        create_registry(RegistrySettings(**logged, event_signing_key=event_pem, event_key_name=events_name))
        is not None
    )
    for verifier_keys, message in (
        ("", "needs PROJECTIONS_EVENT_VERIFIER_KEYS"),
        (DEV_VERIFIER_KEY, "development"),
    ):
        with pytest.raises(EventKeyError, match=message):
            create_projections(
                ProjectionSettings(
                    environment="production",
                    auth_jwks=jwks,
                    auth_issuer=PRODUCTION_ISSUER,
                    event_verifier_keys=verifier_keys,
                )
            )
    own = EnvelopeSigner(events_name, event_key).verifier_key
    assert (
        create_projections(
            ProjectionSettings(
                environment="production",
                auth_jwks=jwks,
                auth_issuer=PRODUCTION_ISSUER,
                event_verifier_keys=own,
            )
        )
        is not None
    )
    # The query API alone (its worker elsewhere) applies nothing, so it needs no event key.
    assert (
        create_projections(
            ProjectionSettings(
                environment="production", auth_jwks=jwks, auth_issuer=PRODUCTION_ISSUER, run_consumer=False
            )
        )
        is not None
    )
    # Development mode trusts the development key when nothing else is configured.
    verifier = auth.verifier_from_settings(RegistrySettings())
    assert list(verifier.source.keys()) == [DEV_JWK["kid"]]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"auth_algorithms": "ES256 HS256"}, "only asymmetric"),
        ({"auth_algorithms": "none"}, "only asymmetric"),
        (
            {"auth_jwks": json.dumps({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "s"}]})},
            "not an asymmetric",
        ),
        ({"auth_jwks": json.dumps({"keys": [{**DEV_JWK, "d": "x"}]})}, "private key material"),
        ({"auth_jwks": json.dumps({"keys": [{k: v for k, v in DEV_JWK.items() if k != "kid"}]})}, "no kid"),
        ({"auth_jwks": json.dumps({"keys": []})}, "no keys"),
        ({"auth_jwks": "/nonexistent/jwks.json"}, "cannot read"),
        ({"auth_jwks": "{broken"}, "not JSON"),
        ({"auth_jwks": json.dumps({"keys": [DEV_JWK]}), "auth_algorithms": "RS256"}, "not in the accepted"),
    ],
)
def test_unsafe_key_configurations_are_refused(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(AuthConfigError, match=message):
        auth.verifier_from_settings(RegistrySettings(**fields))


def test_the_development_private_key_matches_the_trusted_development_key() -> None:
    from deploy.tokens import load_private_key, mint

    verifier = auth.verifier_from_settings(RegistrySettings())
    client = verifier.verify(mint("dev", ["agreements:read"], ["mttq-hoa-binh"]))
    assert client == auth.Client("dev", frozenset({"agreements:read"}), frozenset({"mttq-hoa-binh"}))
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(load_private_key().public_key()))  # type: ignore[arg-type]
    assert (public["x"], public["y"]) == (DEV_JWK["x"], DEV_JWK["y"])
    committed = json.loads((Path(__file__).parents[2] / "deploy" / "dev-keys" / "jwks.json").read_text())
    assert committed == {"keys": [DEV_JWK]}


async def test_health_metrics_and_docs_stay_open_on_both_services(stack: Stack) -> None:
    for base in (stack.registry_url, stack.projections_url):
        async with httpx.AsyncClient(base_url=base, timeout=30) as anonymous:
            for path in ("/healthz", "/readyz", "/metrics", "/docs", "/openapi.json"):
                assert (await anonymous.get(path)).status_code == 200, (base, path)
            spec = (await anonymous.get("/openapi.json")).json()
            assert spec["components"]["securitySchemes"]["bearer"] == {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "JWT",
                "description": spec["components"]["securitySchemes"]["bearer"]["description"],
            }
            secured = [
                (path, method)
                for path, item in spec["paths"].items()
                for method, operation in item.items()
                if operation.get("security") != [{"bearer": []}]
            ]
            assert secured == [], "an operation is documented without the bearer requirement"
