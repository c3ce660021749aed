"""Mints bearer tokens with the DEVELOPMENT key (deploy/dev-keys/), for `make run`, demos and tests.

    python -m deploy.tokens mint --sub demo-client \\
        --scope "agreements:sign agreements:amend progress:report agreements:close agreements:read" \\
        --party mttq-hoa-binh --party hctd-hoa-binh [--ttl 3600]
    python -m deploy.tokens demo        # a token for every demo party, with every scope
    coordreg-token demo --key PATH      # the same, with the key file at PATH

The private key is a file of the source tree only: no installed copy of the package (a wheel,
the Docker image) carries it. In a checkout (editable install) it is found next to this
module; elsewhere give its path with `--key` or COORDREG_DEV_KEY (the Docker demo loader
gets ./deploy/dev-keys as a read-only bind mount).

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
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.auth import ALL_SCOPES, DEFAULT_AUDIENCE, DEFAULT_ISSUER, DEV_JWK

# An hour: the services' default maximum lifetime (*_AUTH_MAX_TOKEN_LIFETIME_SECONDS), which
# they enforce, so a longer default would mint tokens they refuse.
DEV_TOKEN_TTL = 3600
HERE = Path(__file__).parent
DEV_PRIVATE_KEY = HERE / "dev-keys" / "dev-signing-key.pem"
DEMO_DATA = HERE / "demo" / "agreements.json"
# The successors the demo registers (deploy/demo/successions.json): they report after 1 July 2025.
DEMO_SUCCESSORS = HERE / "demo" / "successions.json"


class KeySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="COORDREG_", env_ignore_empty=True)

    # COORDREG_DEV_KEY: where the development private key is, outside a checkout.
    dev_key: Path | None = None


class MissingKey(Exception):
    """The development private key is not where it was looked for (its message is one line)."""


def key_path(explicit: Path | None = None) -> Path:
    """`explicit` (--key), else COORDREG_DEV_KEY, else the checkout's deploy/dev-keys/ file."""
    if explicit is not None:
        return explicit
    return KeySettings().dev_key or DEV_PRIVATE_KEY


def load_private_key(path: Path | None = None) -> PrivateKeyTypes:
    resolved = key_path(path)
    try:
        pem = resolved.read_bytes()
    except OSError as error:
        raise MissingKey(
            f"development signing key not readable at {resolved} ({error.strerror or error}); it is not "
            "installed with the package: pass --key PATH or set COORDREG_DEV_KEY to a checkout's "
            "deploy/dev-keys/dev-signing-key.pem"
        ) from None
    return serialization.load_pem_private_key(pem, password=None)


def mint(
    sub: str,
    scopes: Iterable[str] = ALL_SCOPES,
    party_ids: Iterable[str] = (),
    *,
    ttl: float = DEV_TOKEN_TTL,
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


def demo_party_ids(path: Path = DEMO_DATA, successors: Path = DEMO_SUCCESSORS) -> list[str]:
    """Every party of the demo agreements, then every successor the demo registers, in first-seen order."""
    seen: dict[str, None] = {}
    for item in json.loads(path.read_text(encoding="utf-8")):
        for party in item["body"]["parties"]:
            seen.setdefault(party["party_id"], None)
    for party in json.loads(successors.read_text(encoding="utf-8"))["parties"]:
        seen.setdefault(party["party_id"], None)
    return list(seen)


def demo_token(
    ttl: float = DEV_TOKEN_TTL, sub: str = "demo-client", *, key: PrivateKeyTypes | None = None
) -> str:
    """The token `make run` prints and the demo loader uses: every demo party, every scope."""
    return mint(sub, ALL_SCOPES, demo_party_ids(), ttl=ttl, key=key)


def key_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--key",
        type=Path,
        default=None,
        metavar="PATH",
        help="the development private key (PEM); default: COORDREG_DEV_KEY, else the checkout's "
        "deploy/dev-keys/dev-signing-key.pem",
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.tokens", description="Mints development tokens (development key only)."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    # --key after the command (`demo --key PATH`), where a reader looks for it.
    common = argparse.ArgumentParser(add_help=False)
    key_option(common)
    minting = commands.add_parser("mint", help="a token for one client", parents=[common])
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
    minting.add_argument(
        "--ttl",
        type=int,
        default=DEV_TOKEN_TTL,
        help=f"seconds until it expires (default {DEV_TOKEN_TTL}, the services' default maximum)",
    )
    minting.add_argument("--audience", default=DEFAULT_AUDIENCE)
    minting.add_argument("--issuer", default=DEFAULT_ISSUER)
    demo = commands.add_parser("demo", help="a token for every demo party with every scope", parents=[common])
    demo.add_argument(
        "--ttl", type=int, default=DEV_TOKEN_TTL, help=f"seconds until it expires (default {DEV_TOKEN_TTL})"
    )
    args = parser.parse_args(argv)
    try:
        key = load_private_key(args.key)
    except MissingKey as missing:
        parser.exit(2, f"{parser.prog}: {missing}\n")
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
                key=key,
            )
        )
    else:
        print(demo_token(ttl=args.ttl, key=key))


if __name__ == "__main__":
    main()
