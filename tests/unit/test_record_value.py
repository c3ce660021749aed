"""The relay's record value is the stored canonical text with the position written in, byte for
byte what decoding the envelope and encoding it again with its position gives."""

from __future__ import annotations

import json
from typing import Any

from coordreg_contracts.envelope import canonical_json
from hypothesis import given
from hypothesis import strategies as st

from services.registry.service_layer.event_store import StoredEvent

# JSON values with keys that try to look like the envelope's own (`prevhash` among them).
_keys = st.sampled_from(["prevhash", "position", "hash", "id", "a", "zz", ',"prevhash":', "Đà"]) | st.text()
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_keys, inner, max_size=3),
    max_leaves=12,
)


def _envelope(data: Any, prevhash: str, subject: str) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": "6f1c2f7e-0000-4000-8000-000000000001",
        "source": "/coordreg/registry",
        "type": "ProgressReported.v1",
        "subject": subject,
        "time": "2024-01-01T00:00:00+00:00",
        "datacontenttype": "application/json",
        "sequence": 3,
        "prevhash": prevhash,
        "hash": "ab" * 32,
        "actor": "client/x",
        "correlationid": "c",
        "causationid": "k",
        "data": data,
    }


@given(
    data=st.dictionaries(_keys, _json, max_size=4),
    prevhash=st.sampled_from(["", "0" * 64, ',"prevhash":"x"']),
    subject=st.sampled_from(["agr-1", "party/sldtbxh-hoa-binh"]),
    position=st.integers(min_value=1, max_value=2**62),
)
def test_the_spliced_value_equals_the_canonical_encoding(
    data: dict[str, Any], prevhash: str, subject: str, position: int
) -> None:
    stored = canonical_json(_envelope(data, prevhash, subject)).decode("utf-8")
    event = StoredEvent(position, subject, 3, stored)
    expected = canonical_json({**json.loads(stored), "position": position})
    assert event.message() == expected


def test_text_without_the_key_is_encoded_in_full() -> None:
    stored = json.dumps({"sequence": 1, "id": "x"})
    assert StoredEvent(7, "a", 1, stored).message() == b'{"id":"x","position":7,"sequence":1}'
