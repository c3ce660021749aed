"""The domain is pure: read from its source, it imports nothing that does I/O, reads a clock or draws chance.

Every module of the registry's domain and of the shared agreement model, and every
first-party module they import (followed through the source, not by importing it), may
import only the modules named here; and none of them calls a clock (`now()`, `today()`,
`time()`, ...). A new import is a decision: add it here with its reason, or move the code
that needs it to an adapter.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

PURE_ROOTS = ("services.registry.domain", "services.agreement")
FIRST_PARTY = ("services", "coordreg_contracts")
# Standard modules that compute only: no files, sockets, processes, clocks or randomness.
PURE_STANDARD = frozenset(
    {
        "__future__",
        "abc",
        "calendar",  # month lengths; calendar's clock-free functions only (checked below)
        "collections",
        "collections.abc",
        "copy",
        "dataclasses",
        "datetime",  # date arithmetic; reading the clock is refused below
        "decimal",
        "enum",
        "functools",
        "hashlib",  # the envelope's hash chain
        "itertools",
        "json",  # canonical JSON of the envelope, from and to strings
        "math",
        "operator",
        "re",
        "string",
        "types",
        "typing",
        "unicodedata",  # NFC normalisation of text fields
    }
)
PURE_THIRD_PARTY = frozenset({"pydantic", "pydantic_core", "annotated_types"})
CLOCK_CALLS = frozenset({"now", "today", "utcnow", "time", "monotonic", "perf_counter", "time_ns"})


def _source(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin is not None, f"cannot find {module}"
    return Path(spec.origin)


def _package_modules(package: str) -> list[str]:
    folder = _source(package).parent
    return [package] + [f"{package}.{p.stem}" for p in sorted(folder.glob("*.py")) if p.stem != "__init__"]


def _imports(module: str, tree: ast.Module) -> set[str]:
    found: set[str] = set()
    is_package = _source(module).name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.add(target)
            # `from package import module` names a module, not only an attribute.
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                if target.split(".")[0] in FIRST_PARTY and importlib.util.find_spec(target) is not None:
                    try:
                        if importlib.util.find_spec(candidate) is not None:
                            found.add(candidate)
                    except ModuleNotFoundError:
                        pass
    return found


def _clock_calls(tree: ast.Module) -> list[str]:
    calls = []
    for node in ast.walk(tree):
        func = node.func if isinstance(node, ast.Call) else None
        if isinstance(func, ast.Attribute) and func.attr in CLOCK_CALLS:
            calls.append(f"line {func.lineno}: .{func.attr}()")
    return calls


def _allowed(name: str) -> bool:
    top = name.split(".")[0]
    return name in PURE_STANDARD or top in PURE_THIRD_PARTY or top in FIRST_PARTY


def test_the_domain_and_what_it_imports_do_no_io() -> None:
    queue = [m for root in PURE_ROOTS for m in _package_modules(root)]
    assert "services.registry.domain.decide" in queue and "services.agreement.state" in queue
    seen: set[str] = set()
    breaches: list[str] = []
    while queue:
        module = queue.pop()
        if module in seen:
            continue
        seen.add(module)
        tree = ast.parse(_source(module).read_text(encoding="utf-8"))
        for name in sorted(_imports(module, tree)):
            if not _allowed(name):
                breaches.append(f"{module} imports {name}")
            elif name.split(".")[0] in FIRST_PARTY and importlib.util.find_spec(name) is not None:
                queue.append(name)
        breaches += [f"{module} reads a clock, {call}" for call in _clock_calls(tree)]
    assert "coordreg_contracts.events" in seen, "the contracts the domain uses are checked too"
    assert breaches == [], "\n".join(breaches)


def test_the_check_sees_a_forbidden_import() -> None:
    """The check is not vacuous: the retry policy (not domain) imports asyncio, and sealing reads
    a clock."""
    module = "services.registry.service_layer.retry"
    tree = ast.parse(_source(module).read_text(encoding="utf-8"))
    assert not all(_allowed(name) for name in _imports(module, tree))
    assert _clock_calls(
        ast.parse(_source("services.registry.service_layer.sealing").read_text(encoding="utf-8"))
    )
