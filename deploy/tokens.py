"""Mints bearer tokens with the DEVELOPMENT key (deploy/dev-keys/), for `make run`, demos and tests.

    python -m deploy.tokens mint --sub demo-client \\
        --scope "agreements:sign agreements:amend progress:report agreements:close agreements:read" \\
        --party mttq-hoa-binh --party hctd-hoa-binh [--ttl 3600]
    python -m deploy.tokens demo        # a token for every demo party, with every scope

The services trust this key only in development mode; in production mode they refuse to
start when it is configured. Real clients get their tokens from the identity provider.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from services.common.auth import ALL_SCOPES, DEFAULT_AUDIENCE, DEFAULT_ISSUER, DEV_JWK

HERE = Path(__file__).parent
DEV_PRIVATE_KEY = HERE / "dev-keys" / "dev-signing-key.pem"
DEMO_DATA = HERE / "demo" / "agreements.json"


def load_private_key(path: Path = DEV_PRIVATE_KEY) -> PrivateKeyTypes:
    return serialization.load_pem_private_key(path.read_bytes(), password=None)


def mint(
    sub: str,
    scopes: Iterable[str] = ALL_SCOPES,
    party_ids: Iterable[str] = (),
    *,
    ttl: float = 3600,
    audience: str = DEFAULT_AUDIENCE,
    issuer: str = DEFAULT_ISSUER,
    key: PrivateKeyTypes | None = None,
    kid: str = DEV_JWK["kid"],
    algorithm: str = DEV_JWK["alg"],
    not_before: float | None = None,
    now: float | None = None,
    extra: dict[str, Any] | None = None,
) -> str:
    """A signed JWT; by default with the development key, valid from now for `ttl` seconds."""
    issued = int(now if now is not None else time.time())
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": audience,
        "sub": sub,
        "iat": issued,
        "exp": issued + int(ttl),
        "jti": str(uuid.uuid4()),
        "scope": " ".join(scopes),
        "party_ids": list(party_ids),
    }
    if not_before is not None:
        claims["nbf"] = int(not_before)
    claims.update(extra or {})
    signing_key = key if key is not None else load_private_key()
    return jwt.encode(claims, signing_key, algorithm=algorithm, headers={"kid": kid})  # type: ignore[arg-type]


def demo_party_ids(path: Path = DEMO_DATA) -> list[str]:
    """Every party of the demo agreements, in first-seen order."""
    seen: dict[str, None] = {}
    for item in json.loads(path.read_text(encoding="utf-8")):
        for party in item["body"]["parties"]:
            seen.setdefault(party["party_id"], None)
    return list(seen)


def demo_token(ttl: float = 12 * 3600, sub: str = "demo-client") -> str:
    """The token `make run` prints and the demo loader uses: every demo party, every scope."""
    return mint(sub, ALL_SCOPES, demo_party_ids(), ttl=ttl)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.tokens", description="Mints development tokens (development key only)."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    minting = commands.add_parser("mint", help="a token for one client")
    minting.add_argument("--sub", required=True, help="the client id (recorded as each event's actor)")
    minting.add_argument(
        "--scope",
        default=" ".join(ALL_SCOPES),
        help=f'space-separated scopes (default: all of "{" ".join(ALL_SCOPES)}")',
    )
    minting.add_argument(
        "--party",
        action="extend",
        nargs="+",
        default=[],
        help="party ids the client acts for (repeatable: --party a b --party c)",
    )
    minting.add_argument("--ttl", type=int, default=3600, help="seconds until it expires (default 3600)")
    minting.add_argument("--audience", default=DEFAULT_AUDIENCE)
    minting.add_argument("--issuer", default=DEFAULT_ISSUER)
    demo = commands.add_parser("demo", help="a token for every demo party with every scope")
    demo.add_argument("--ttl", type=int, default=12 * 3600)
    args = parser.parse_args(argv)
    if args.command == "mint":
        unknown = set(args.scope.split()) - set(ALL_SCOPES)
        if unknown:
            print(f"warning: unknown scopes {sorted(unknown)}", file=sys.stderr)
        print(
            mint(
                args.sub,
                args.scope.split(),
                args.party,
                ttl=args.ttl,
                audience=args.audience,
                issuer=args.issuer,
            )
        )
    else:
        print(demo_token(ttl=args.ttl))


if __name__ == "__main__":
    main()
