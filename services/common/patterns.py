"""The services' own full-match patterns, written the contract's one way (coordreg_contracts.patterns,
ADR 0004): `^...$`, ASCII classes spelled out, and matched in Python only through `full_match`.
"""

from __future__ import annotations

from coordreg_contracts.patterns import SLUG, full_match

__all__ = [
    "CLIENT_ID",
    "CURSOR",
    "MAX_POSITION",
    "RANKED_CURSOR",
    "SCHEMA_NAME",
    "SLUG",
    "VERSION",
    "full_match",
]

# A token's `sub`: printable ASCII, no spaces.
CLIENT_ID = r"^[\x21-\x7e]{1,200}$"
# A listing's cursor: a position, as digits.
CURSOR = r"^[0-9]{1,19}$"
# A search's cursor (decision 14): its last result's rank (the bits of a float4) and signing
# position. Never digits alone, so a cursor of one kind of listing is refused by the other.
RANKED_CURSOR = r"^([0-9]{1,10})\.([0-9]{1,19})$"
# An If-Match version.
VERSION = r"^[0-9]{1,18}$"
# A PostgreSQL schema the settings or the audit tool name.
SCHEMA_NAME = r"^[a-z_][a-z0-9_]{0,62}$"
# Positions, sequences and versions are PostgreSQL bigints: a larger number is no position at
# all, and must be refused where it enters (422), not reach a query (a 500).
MAX_POSITION = 2**63 - 1
