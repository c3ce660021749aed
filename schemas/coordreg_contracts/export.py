"""The event contracts exported for consumers: one JSON Schema per event type and an AsyncAPI document.

`python -m coordreg_contracts.export` writes `schemas/jsonschema/<EventName>.v<N>.json` and
`schemas/asyncapi.yaml` from the pydantic models; `python -m coordreg_contracts.export --check`
exits 1 and lists the files that differ from what the models produce (0 when all match).
Both are pure functions of the models: the same code always gives the same bytes.

Each JSON Schema describes the whole CloudEvents envelope exactly as it is published on
Kafka (and served by `GET /v1/agreements/{id}/events`), with `type` fixed to the event's
CloudEvents type and `data` the event model's own schema. The AsyncAPI document is
self-contained: every schema is inlined under `components.schemas`.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from coordreg_contracts import patterns
from coordreg_contracts.envelope import CONTENT_TYPE, DATA_CONTENT_TYPE, SOURCE, SPEC_VERSION, Envelope
from coordreg_contracts.events import ALL_EVENT_CLASSES, EVENT_TYPE_PREFIX, Event
from coordreg_contracts.parties import PartyEvent

JsonSchema = dict[str, Any]

# The repository folder that publishes the documents (this package lives inside it).
SCHEMAS_DIR = Path(__file__).resolve().parents[1]
JSONSCHEMA_DIRNAME = "jsonschema"
ASYNCAPI_FILENAME = "asyncapi.yaml"

TOPIC = "agreements.events.v1"
DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"
# Placeholders (RFC 2606 reserved names): the schemas' public home and the broker are
# deployment facts; consumers get them from the operator, not from this repository.
SCHEMA_BASE_URI = "https://coordination.example/schemas/jsonschema/"
KAFKA_HOST = "kafka.coordination.example:9092"
KAFKA_BINDING_VERSION = "0.5.0"

_HEX_SHA256 = patterns.HEX_SHA256


def schema_version(cls: type[Event | PartyEvent]) -> int:
    """The schema version a model writes (the default of its `schema_version` literal)."""
    version = cls.model_fields["schema_version"].default
    if not isinstance(version, int):
        raise TypeError(f"{cls.__name__}.schema_version has no integer default")
    return version


def cloud_type(name: str) -> str:
    """`AgreementSigned` -> `vn.gov.coordination.AgreementSigned.v1`."""
    return f"{EVENT_TYPE_PREFIX}{name}.v{schema_version(ALL_EVENT_CLASSES[name])}"


def schema_filename(name: str) -> str:
    return f"{name}.v{schema_version(ALL_EVENT_CLASSES[name])}.json"


def _data_schema(name: str, ref_template: str) -> tuple[JsonSchema, dict[str, JsonSchema]]:
    """The event model's schema and, apart, the definitions it refers to.

    Mode "validation", not "serialization": the schema states what a v1 reader accepts, i.e.
    what `Envelope.event()` validates after upcasting (less the checks JSON Schema cannot
    express: NFC text, non-blank, term order). Every payload the
    registry writes (`model_dump`, all fields present) satisfies it, and a field with a
    default may be left out, as the model allows. Serialization mode describes the writer's
    output instead and may mark defaulted fields required (pydantic's
    `json_schema_serialization_defaults_required`), which would make the published schema
    stricter than the models' own readers. For these models both modes give the same schema today.
    """
    schema = ALL_EVENT_CLASSES[name].model_json_schema(mode="validation", ref_template=ref_template)
    definitions = schema.pop("$defs", {})
    return schema, definitions


def _envelope_schema(name: str, data_ref: str) -> JsonSchema:
    """The CloudEvents envelope of one event type; `data` refers to the event's schema."""
    properties: dict[str, JsonSchema] = {
        "specversion": {
            "type": "string",
            "const": SPEC_VERSION,
            "description": "CloudEvents specification version.",
        },
        "id": {
            "type": "string",
            "format": "uuid",
            "minLength": 1,
            "description": "The event's id (a UUID), unique across the registry.",
        },
        "source": {
            "type": "string",
            "format": "uri-reference",
            "minLength": 1,
            "examples": [SOURCE],
            "description": "The producer: the registry.",
        },
        "type": {
            "type": "string",
            "const": cloud_type(name),
            "description": "The event type and its schema version.",
        },
        "subject": {
            "type": "string",
            "minLength": 1,
            "description": "The agreement id, or `party/<party_id>` for a party directory stream;"
            " also the Kafka record key.",
        },
        "time": {
            "type": "string",
            "format": "date-time",
            "description": "When the registry recorded the event (RFC 3339, UTC).",
        },
        "datacontenttype": {
            "type": "string",
            "const": DATA_CONTENT_TYPE,
            "description": "Content type of `data`.",
        },
        "sequence": {
            "type": "integer",
            "minimum": 1,
            "description": "1, 2, 3, ... within one agreement, without gaps: the agreement's version "
            "after this event. At-least-once delivery: skip a sequence already applied.",
        },
        "position": {
            "type": "integer",
            "minimum": 1,
            "description": "The event store's global order, assigned as the event is written; "
            "not covered by `hash`.",
        },
        "prevhash": {
            "type": "string",
            "pattern": "^([0-9a-f]{64})?$",
            "description": "`hash` of the previous event of the same agreement; empty for sequence 1.",
        },
        "hash": {
            "type": "string",
            "pattern": _HEX_SHA256,
            "description": "Hex SHA-256 of the canonical JSON (sorted keys, separators `,` and `:`, "
            "UTF-8 not escaped) of this envelope without `hash` and `position`.",
        },
        "actor": {
            "type": "string",
            "description": "The client id (the token's `sub`) that issued the command.",
        },
        "correlationid": {
            "type": "string",
            "description": "Correlates every event caused by one request.",
        },
        "causationid": {
            "type": "string",
            "description": "The command that caused this event.",
        },
        "data": {"$ref": data_ref},
    }
    # The schema follows the Envelope model: a field added there must be described here.
    if list(properties) != list(Envelope.model_fields):
        raise RuntimeError(
            f"the exported envelope attributes {list(properties)} do not match "
            f"coordreg_contracts.envelope.Envelope {list(Envelope.model_fields)}"
        )
    return {
        "type": "object",
        "description": (
            f"CloudEvents 1.0 structured-mode envelope of `{cloud_type(name)}` as published on the "
            f"Kafka topic `{TOPIC}` (key = agreement id, content type `{CONTENT_TYPE}`) and served "
            "by `GET /v1/agreements/{agreement_id}/events`."
        ),
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
        # The first event of an agreement chains to nothing; every later one to a hash.
        "if": {"properties": {"sequence": {"const": 1}}, "required": ["sequence"]},
        "then": {"properties": {"prevhash": {"const": ""}}},
        "else": {"properties": {"prevhash": {"pattern": _HEX_SHA256}}},
    }


def event_json_schema(name: str) -> JsonSchema:
    """The standalone JSON Schema (draft 2020-12) of one event type's envelope."""
    data, definitions = _data_schema(name, "#/$defs/{model}")
    if name in definitions:
        raise RuntimeError(f"{name} is both the event and one of its definitions")
    return {
        "$schema": DRAFT_2020_12,
        "$id": SCHEMA_BASE_URI + schema_filename(name),
        "title": f"{cloud_type(name)} (CloudEvent)",
        **_envelope_schema(name, f"#/$defs/{name}"),
        "$defs": {**definitions, name: data},
    }


def _sorted(value: Any) -> Any:
    """Sort mapping keys, recursively (list order is meaningful and kept)."""
    if isinstance(value, dict):
        return {key: _sorted(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_sorted(item) for item in value]
    return value


_NAMED_SUBSCHEMAS = frozenset({"properties", "patternProperties", "$defs", "dependentSchemas"})
_INSTANCE_VALUES = frozenset({"const", "enum", "default", "examples"})  # data, not schemas


def _asyncapi_schema(value: Any) -> Any:
    """A JSON Schema as an AsyncAPI 3.0 Schema Object: without OpenAPI's `discriminator` objects.

    pydantic writes a tagged union as `oneOf` plus an OpenAPI-style `discriminator`
    (`propertyName` and `mapping`). AsyncAPI's `discriminator` is something else: a string
    naming a property that this very schema declares and requires and whose values are
    schema names, which `changes[].op` (`add_obligation`, ...) is not; the official parser
    rejects the object. Dropping it changes no validation (JSON Schema treats it as an
    annotation): every `oneOf` alternative fixes `op` with a `const`, so exactly one matches.
    The standalone JSON Schemas keep it for OpenAPI-style tools.
    """
    if isinstance(value, list):
        return [_asyncapi_schema(item) for item in value]
    if not isinstance(value, dict):
        return value
    schema: JsonSchema = {}
    for key, item in value.items():
        if key == "discriminator" and isinstance(item, dict):
            continue
        if key in _INSTANCE_VALUES:
            schema[key] = item
        elif key in _NAMED_SUBSCHEMAS and isinstance(item, dict):
            # Keys here are property (or definition) names, not keywords: a property may
            # well be called "discriminator".
            schema[key] = {name: _asyncapi_schema(sub) for name, sub in item.items()}
        else:
            schema[key] = _asyncapi_schema(item)
    return schema


def asyncapi_document() -> dict[str, Any]:
    """AsyncAPI 3.0 description of the events topic, every schema inlined."""
    names = sorted(ALL_EVENT_CLASSES)
    schemas: dict[str, JsonSchema] = {}

    def define(key: str, schema: JsonSchema) -> None:
        if key in schemas and schemas[key] != schema:
            raise RuntimeError(f"two different schemas are both called {key}")
        schemas[key] = schema

    messages: dict[str, Any] = {}
    for name in names:
        data, definitions = _data_schema(name, "#/components/schemas/{model}")
        for key, definition in definitions.items():
            define(key, definition)
        define(name, data)
        envelope = _envelope_schema(name, f"#/components/schemas/{name}")
        define(f"{name}Envelope", {"title": f"{cloud_type(name)} (CloudEvent)", **envelope})
        messages[name] = {
            "name": name,
            "title": cloud_type(name),
            "summary": f"{name}: CloudEvent with the event's fields in `data`.",
            "contentType": CONTENT_TYPE,
            "headers": {
                "type": "object",
                "properties": {
                    "content-type": {"type": "string", "const": CONTENT_TYPE},
                    # docs/CONTRACT.md B10: optional, the W3C trace context of the command's trace.
                    "traceparent": {
                        "type": "string",
                        "description": "W3C Trace Context: the span that published the record.",
                        "pattern": "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$",
                    },
                    "tracestate": {
                        "type": "string",
                        "description": "W3C Trace Context: vendor trace state, when the trace has one.",
                    },
                    # docs/CONTRACT.md B12: the registry's signature of the envelope's `hash`.
                    "envelope-signature": {
                        "type": "string",
                        "description": "The registry's Ed25519 signature of the envelope's `hash`: "
                        '"<key name> <base64(4-byte key ID || 64-byte signature)>" over the text '
                        '"coordreg envelope\\n<hash>\\n" (a C2SP signed-note line without its em dash). '
                        "Verify it with a key of GET /v1/event-keys before applying the record.",
                        "pattern": "^[^ \\t\\n\\r\\f\\v+]+ [A-Za-z0-9+/]{91}=$",
                    },
                },
                "required": ["content-type"],
            },
            "payload": {"$ref": f"#/components/schemas/{name}Envelope"},
            "correlationId": {
                "description": "The request that caused the event.",
                "location": "$message.payload#/correlationid",
            },
            "bindings": {
                "kafka": {
                    "key": {
                        "type": "string",
                        "minLength": 1,
                        "description": "The envelope's `subject` (UTF-8): the agreement id, or "
                        "`party/<party_id>` for a party directory stream; one stream's events share a "
                        "partition and arrive in sequence order.",
                    },
                    "bindingVersion": KAFKA_BINDING_VERSION,
                }
            },
        }

    channel_id = "agreementEvents"
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Coordination Agreement Registry events",
            "version": "1.0.0",
            "description": (
                "Every event of every agreement, as CloudEvents 1.0 in structured mode.\n\n"
                "- Key: the agreement id (or `party/<party_id>` for the party directory's streams); one "
                "stream's events share a partition, in `sequence` order.\n"
                "- Consumers skip event types they do not know: new types are added, never changed.\n"
                "- Delivery is at least once: skip an event whose `sequence` was already applied "
                "for its `subject`.\n"
                "- `hash`/`prevhash` chain each agreement's events (see [docs/CONTRACT.md](../docs/CONTRACT.md)).\n"
                "- The `envelope-signature` header is the registry's signature of `hash`: apply a record only "
                "if it verifies and its `prevhash` is the last applied event's `hash` (CONTRACT B12).\n"
                "- `data.schema_version` is the event's schema version (also the `.vN` suffix of `type`); "
                "a payload without it is version 0 and is read through the registry's upcasters."
            ),
        },
        "defaultContentType": CONTENT_TYPE,
        "servers": {
            "kafka": {
                "host": KAFKA_HOST,
                "protocol": "kafka",
                "description": "Placeholder: the operator gives each consumer its bootstrap servers.",
            }
        },
        "channels": {
            channel_id: {
                "address": TOPIC,
                "title": TOPIC,
                "description": "All registry events. Record key = agreement id; "
                f"header `content-type: {CONTENT_TYPE}`, `envelope-signature` (the registry's signature), "
                "and `traceparent`/`tracestate` when traced.",
                "messages": {name: {"$ref": f"#/components/messages/{name}"} for name in names},
                "bindings": {"kafka": {"topic": TOPIC, "bindingVersion": KAFKA_BINDING_VERSION}},
            }
        },
        "operations": {
            "receiveAgreementEvents": {
                "action": "receive",
                "title": "Receive agreement events",
                "summary": "Consume the registry's events, one agreement's in sequence order.",
                "channel": {"$ref": f"#/channels/{channel_id}"},
                "messages": [{"$ref": f"#/channels/{channel_id}/messages/{name}"} for name in names],
            }
        },
        "components": {
            "messages": messages,
            "schemas": {key: _sorted(_asyncapi_schema(schemas[key])) for key in sorted(schemas)},
        },
    }


class _Dumper(yaml.SafeDumper):
    """Writes repeated objects out in full: no YAML anchors and aliases for consumers to resolve."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    """Multi-line text as a literal block, readable as written."""
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_Dumper.add_representer(str, _text)


def render_json(schema: JsonSchema) -> str:
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def render_yaml(document: dict[str, Any]) -> str:
    return yaml.dump(
        copy.deepcopy(document),
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=100,
    )


def expected_files() -> dict[str, str]:
    """Every exported file (path relative to `schemas/`) and its exact text."""
    files = {
        f"{JSONSCHEMA_DIRNAME}/{schema_filename(name)}": render_json(event_json_schema(name))
        for name in sorted(ALL_EVENT_CLASSES)
    }
    files[ASYNCAPI_FILENAME] = render_yaml(asyncapi_document())
    return files


def _stale_files(root: Path, expected: dict[str, str]) -> list[str]:
    """Files in the generated directory that the models no longer produce."""
    directory = root / JSONSCHEMA_DIRNAME
    present = sorted(path.name for path in directory.glob("*.json")) if directory.is_dir() else []
    return [f"{JSONSCHEMA_DIRNAME}/{n}" for n in present if f"{JSONSCHEMA_DIRNAME}/{n}" not in expected]


def check(root: Path = SCHEMAS_DIR) -> list[str]:
    """The exported files (relative to `root`) that are missing, differ or are stale."""
    expected = expected_files()
    differing = []
    for relative, text in expected.items():
        path = root / relative
        if not path.is_file() or path.read_bytes() != text.encode("utf-8"):
            differing.append(relative)
    return sorted(differing + _stale_files(root, expected))


def write(root: Path = SCHEMAS_DIR) -> list[str]:
    """Writes the exported files under `root`, removes stale ones; returns what changed."""
    expected = expected_files()
    changed = check(root)
    for relative in _stale_files(root, expected):
        (root / relative).unlink()
    for relative in changed:
        if relative in expected:
            path = root / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(expected[relative].encode("utf-8"))
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m coordreg_contracts.export",
        description="Export the event JSON Schemas and AsyncAPI document.",
    )
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if a file differs from the models"
    )
    args = parser.parse_args(argv)
    if args.check:
        differing = check()
        for relative in differing:
            print(f"schemas/{relative} differs from the models", file=sys.stderr)
        if differing:
            print(
                "run `python -m coordreg_contracts.export` (or `make schemas`) to regenerate", file=sys.stderr
            )
            return 1
        return 0
    for relative in write():
        print(f"{'wrote' if (SCHEMAS_DIR / relative).exists() else 'removed'} schemas/{relative}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
