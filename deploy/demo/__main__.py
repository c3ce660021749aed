"""`coordreg-demo [--key PATH] [REGISTRY_URL]` (or `python -m deploy.demo`): loads the demo data
into a running registry, with a demo token minted by the development key (see deploy/tokens.py)."""

from __future__ import annotations

import argparse
import json

import httpx

from deploy.demo.load import load
from deploy.tokens import MissingKey, demo_token, key_option, load_private_key


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Loads the demo agreements and their lives through the registry's public API "
        "(safe to run again), then prints a summary."
    )
    parser.add_argument(
        "registry_url",
        nargs="?",
        default="http://127.0.0.1:8000",
        metavar="REGISTRY_URL",
        help="the registry's base URL (default http://127.0.0.1:8000)",
    )
    key_option(parser)
    args = parser.parse_args(argv)
    try:
        token = demo_token(key=load_private_key(args.key))
    except MissingKey as missing:
        parser.exit(2, f"{parser.prog}: {missing}\n")
    try:
        summary = load(args.registry_url, headers={"Authorization": f"Bearer {token}"})
    except httpx.TransportError as exc:
        parser.exit(3, f"{parser.prog}: the registry at {args.registry_url} cannot be reached ({exc})\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "agreements"}))


if __name__ == "__main__":
    main()
