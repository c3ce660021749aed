"""One way to write a full-match pattern (coordreg_contracts.patterns, ADR 0004), read off the
source and the published documents: no `re.match` (whose `$` lets a trailing newline through)
and no Unicode-wide class (`\\d` takes `٢`), anywhere."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from coordreg_contracts import patterns

from services.common import patterns as service_patterns
from services.common.patterns import MAX_POSITION
from services.projections.entrypoints.app import create_app as create_projections
from services.projections.settings import ProjectionSettings
from services.registry.entrypoints.app import create_app as create_registry
from services.registry.settings import RegistrySettings

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [ROOT / "services", ROOT / "schemas" / "coordreg_contracts", ROOT / "deploy", ROOT / "bench"]
# Unicode-wide classes, as a regex literal spells them (r"\d" or "\\d").
WIDE_CLASS = re.compile(r"\\[dDwWsS]")
# Prefix readers, where `.match` is the point (the rest of the text is read on); each says so.
PREFIX_READERS = {ROOT / "services" / "agreement" / "document_numbers.py"}
# Blanks of any script are blanks to these readers (a word processor's no-break space).
WIDE_BLANKS = {ROOT / "services" / "agreement" / "document_numbers.py"}


def _python_files() -> Iterator[Path]:
    for folder in SOURCES:
        yield from (p for p in folder.rglob("*.py") if ".venv" not in p.parts)


def _regex_literals(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """String literals handed to `re.*` or used as a `pattern=`, and module constants in upper case
    (where patterns are kept)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "re":
                for arg in node.args[:1]:
                    yield from _strings(arg)
            for keyword in node.keywords:
                if keyword.arg == "pattern":
                    yield from _strings(keyword.value)
        elif isinstance(node, ast.Assign) and all(
            isinstance(t, ast.Name) and t.id.isupper() for t in node.targets
        ):
            yield from _strings(node.value)


def _strings(node: ast.AST) -> Iterator[tuple[int, str]]:
    for inner in ast.walk(node):
        if isinstance(inner, ast.Constant) and isinstance(inner.value, str):
            yield inner.lineno, inner.value


def test_no_match_call_outside_the_prefix_readers() -> None:
    found = []
    for path in _python_files():
        if path in PREFIX_READERS:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "match"
            ):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert found == [], "use full_match (coordreg_contracts.patterns), not .match: " + ", ".join(found)


def test_no_unicode_wide_class_in_a_pattern() -> None:
    found = []
    for path in _python_files():
        for line, text in _regex_literals(ast.parse(path.read_text(encoding="utf-8"))):
            wide = set(WIDE_CLASS.findall(text))
            if path in WIDE_BLANKS:
                wide -= {"\\s", "\\S"}
            if wide:
                found.append(f"{path.relative_to(ROOT)}:{line} {sorted(wide)}")
    assert found == [], "write ASCII classes ([0-9], [a-z]), not: " + ", ".join(found)


def _published_patterns() -> Iterator[tuple[str, str]]:
    documents: dict[str, Any] = {
        "registry OpenAPI": create_registry(RegistrySettings()).openapi(),
        "projections OpenAPI": create_projections(ProjectionSettings()).openapi(),
        "asyncapi.yaml": yaml.safe_load((ROOT / "schemas" / "asyncapi.yaml").read_text(encoding="utf-8")),
    }
    for path in sorted((ROOT / "schemas" / "jsonschema").glob("*.json")):
        documents[path.name] = yaml.safe_load(path.read_text(encoding="utf-8"))
    for name, document in documents.items():
        for found in _walk(document, "pattern"):
            yield name, found


def _walk(value: Any, key: str) -> Iterator[Any]:
    if isinstance(value, dict):
        for k, v in value.items():
            if k == key and isinstance(v, str):
                yield v
            else:
                yield from _walk(v, key)
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item, key)


def test_every_published_pattern_is_anchored_and_ascii() -> None:
    published = list(_published_patterns())
    assert len(published) > 10
    for where, pattern in published:
        # ECMA-262 and Rust's regex read `^...$` as the whole text; a pattern left open would not be.
        assert pattern.startswith("^") and pattern.endswith("$"), (where, pattern)
        assert not WIDE_CLASS.search(pattern), (where, pattern)


def _integers(schema: Any, document: dict[str, Any], seen: set[str]) -> Iterator[dict[str, Any]]:
    """The integer schemas within `schema`, following `$ref`s into the document's components."""
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref not in seen:
            seen.add(ref)
            target: Any = document
            for part in ref.removeprefix("#/").split("/"):
                target = target[part]
            yield from _integers(target, document, seen)
        if schema.get("type") == "integer":
            yield schema
        for value in schema.values():
            yield from _integers(value, document, seen)
    elif isinstance(schema, list):
        for item in schema:
            yield from _integers(item, document, seen)


@pytest.mark.parametrize("service", ["registry", "projections"])
def test_every_integer_a_client_sends_is_bounded(service: str) -> None:
    app = (
        create_registry(RegistrySettings())
        if service == "registry"
        else create_projections(ProjectionSettings())
    )
    document = app.openapi()
    operations = [op for item in document["paths"].values() for op in item.values()]
    inputs = [p["schema"] for op in operations for p in op.get("parameters", [])]
    inputs += [op["requestBody"] for op in operations if "requestBody" in op]
    integers = [i for schema in inputs for i in _integers(schema, document, set())]
    assert integers, "no integer input found: the walk is broken"
    for integer in integers:
        # A bigint holds it, so no number a client sends reaches PostgreSQL out of range.
        assert "minimum" in integer and "maximum" in integer, integer
        assert -MAX_POSITION - 1 <= integer["minimum"] <= integer["maximum"] <= MAX_POSITION, integer


@pytest.mark.parametrize(
    ("pattern", "good", "bad"),
    [
        (patterns.SLUG, "mttq-hoa-binh", ["mttq-hoa-binh\n", "Mttq", ""]),
        (patterns.PERIOD, "2024-Q3", ["2024\n", "2٠٢٤", "٢٠٢٤-Q3", "0999"]),
        (patterns.ISO_DATE, "2024-12-31", ["2024-12-31\n", "٢٠٢٤-12-31"]),
        (patterns.UNIT_CODE, "22", ["22\n", "٢٢"]),
        (patterns.ELECTRONIC_ID, "000.00.00.H22", ["H22\n", "H٢٢"]),
        (service_patterns.CLIENT_ID, "demo-client", ["demo-client\n", "demo client"]),
        (service_patterns.CURSOR, "42", ["42\n", "٤٢"]),
        (service_patterns.RANKED_CURSOR, "1065353216.42", ["1065353216.42\n", "1065353216.٤٢"]),
        (service_patterns.VERSION, "3", ["3\n", "٣"]),
    ],
)
def test_full_match_takes_the_whole_text_in_ascii(pattern: str, good: str, bad: list[str]) -> None:
    assert patterns.full_match(pattern, good)
    for text in bad:
        assert not patterns.full_match(pattern, text), text
        # Python's own `re.match` shows why it is banned: `$` lets the newline through.
        if text == good + "\n":
            assert re.match(pattern, text)
