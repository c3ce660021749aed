"""`python -m deploy.demo [REGISTRY_URL]`: loads the demo data into a running registry."""

from __future__ import annotations

import json
import sys

from deploy.demo.load import load


def main() -> None:
    base = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8000"
    summary = load(base)
    print(json.dumps({k: v for k, v in summary.items() if k != "agreements"}))


if __name__ == "__main__":
    main()
