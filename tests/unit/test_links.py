"""Every relative link in the repository's Markdown and YAML files resolves inside the repository.

A clone has nothing but its own files: a link to a sibling folder (or anywhere above the root)
works on one machine and is broken everywhere else, so it fails here even when the target
happens to exist. Checked, in every tracked `.md`, `.yaml` and `.yml` file (and new ones not
yet committed, so the check holds before a commit):

- Markdown links, images, reference definitions and HTML `href`/`src`, outside code spans
  and fenced code; in YAML, the Markdown links inside any string (descriptions) and `$ref`s;
- the target exists and lies inside the repository root;
- `#anchor` into a Markdown file names one of its headings (GitHub's slugs) or an HTML
  `id`/`name`; a `$ref` fragment is a JSON pointer that resolves in its document.

Absolute URLs (`https:`, `mailto:` ...) are not followed.
"""

from __future__ import annotations

import re
import subprocess
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHECKED_SUFFIXES = (".md", ".yaml", ".yml")

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")
# [text](destination "title"): one level of nested brackets in the text (images in links).
_INLINE = re.compile(
    r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*(<[^>\n]*>|[^()\s]+)(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)"
)
_REFERENCE = re.compile(r"^ {0,3}\[(?!\^)[^\]]+\]:\s*(<[^>\n]*>|\S+)")  # not footnotes ([^1]: ...)
_HTML_LINK = re.compile(r"""\b(?:href|src)\s*=\s*["']([^"']*)["']""", re.IGNORECASE)
_HTML_ANCHOR = re.compile(r"""\b(?:id|name)\s*=\s*["']([^"']+)["']""", re.IGNORECASE)
_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


@dataclass(frozen=True)
class Link:
    source: Path
    line: int
    target: str
    pointer: bool = False  # a `$ref`: its fragment is a JSON pointer, not a heading


@dataclass
class Checker:
    root: Path
    _anchors: dict[Path, set[str]] = field(default_factory=dict)
    _documents: dict[Path, Any] = field(default_factory=dict)

    def problems(self, files: list[Path]) -> list[str]:
        found = []
        for path in files:
            for link in links_in(path):
                problem = self.check(link)
                if problem:
                    where = link.source.relative_to(self.root)
                    found.append(f"{where}:{link.line}: {link.target}: {problem}")
        return found

    def check(self, link: Link) -> str | None:
        target = link.target.strip()
        if target.startswith("<") and target.endswith(">"):
            target = target[1:-1]
        if target.startswith("//") or (_SCHEME.match(target) and not target.lower().startswith("file:")):
            return None  # an absolute URL
        if target.lower().startswith("file:"):
            return "a file: URL points outside the repository"
        path_part, _, fragment = target.partition("#")
        path_part = unquote(path_part.split("?", 1)[0])
        if path_part.startswith("/"):
            return "an absolute path: write it relative to the file"
        resolved = (link.source.parent / path_part).resolve() if path_part else link.source
        if not resolved.is_relative_to(self.root):
            return "goes outside the repository (a clone does not have it)"
        if not resolved.exists():
            return "no such file or directory"
        if not fragment:
            return None
        if link.pointer:
            return self._pointer_problem(resolved, unquote(fragment))
        if resolved.suffix == ".md" and unquote(fragment) not in self.anchors(resolved):
            return f"no heading or anchor #{fragment} in {resolved.relative_to(self.root)}"
        return None

    def anchors(self, path: Path) -> set[str]:
        if path not in self._anchors:
            self._anchors[path] = markdown_anchors(path.read_text(encoding="utf-8"))
        return self._anchors[path]

    def _pointer_problem(self, path: Path, pointer: str) -> str | None:
        if path.suffix not in (".yaml", ".yml", ".json"):
            return None
        if path not in self._documents:
            self._documents[path] = yaml.safe_load(path.read_text(encoding="utf-8"))
        node = self._documents[path]
        for token in pointer.split("/")[1:] if pointer else []:
            key = token.replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and key in node:
                node = node[key]
            elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
                node = node[int(key)]
            else:
                return f"the JSON pointer #{pointer} does not resolve in {path.relative_to(self.root)}"
        return None


def checked_files(root: Path) -> list[Path]:
    """Tracked files, and new ones not ignored (so the check works before a commit)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        capture_output=True,
        check=True,
    ).stdout.decode("utf-8")
    names = sorted({name for name in listed.split("\0") if name.endswith(CHECKED_SUFFIXES)})
    # A tracked file deleted in the working tree has no links any more.
    return [root / name for name in names if (root / name).is_file()]


def links_in(path: Path) -> Iterator[Link]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".md":
        for line, target in markdown_links(text):
            yield Link(path, line, target)
    else:
        yield from yaml_links(path, text)


def _lines_outside_fences(text: str) -> Iterator[tuple[int, str]]:
    """Line number and text of each line that is not fenced code."""
    fence: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        opening = _FENCE.match(line)
        if fence is None and opening:
            fence = opening.group(1)[0] * len(opening.group(1))
            continue
        if fence is not None:
            if line.strip().startswith(fence) and set(line.strip()) == {fence[0]}:
                fence = None
            continue
        yield number, line


def _without_code_spans(line: str) -> str:
    return _CODE_SPAN.sub(lambda m: " " * len(m.group(0)), line)


def markdown_links(text: str) -> Iterator[tuple[int, str]]:
    for number, raw in _lines_outside_fences(text):
        line = _without_code_spans(raw)
        for pattern in (_INLINE, _REFERENCE, _HTML_LINK):
            for match in pattern.finditer(line):
                yield number, match.group(1)


def yaml_links(path: Path, text: str) -> Iterator[Link]:
    """Markdown links inside the document's strings, and its `$ref`s."""

    def line_of(target: str) -> int:
        return text[: max(text.find(target), 0)].count("\n") + 1

    def walk(node: Any) -> Iterator[Link]:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "$ref" and isinstance(value, str):
                    yield Link(path, line_of(value), value, pointer=True)
                else:
                    yield from walk(value)
        elif isinstance(node, list):
            for item in node:
                yield from walk(item)
        elif isinstance(node, str):
            for _, target in markdown_links(node):
                yield Link(path, line_of(target), target)

    for document in yaml.safe_load_all(text):
        yield from walk(document)


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: its text, lower case, punctuation dropped, spaces as `-`."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text stays
    text = re.sub(r"<[^>]+>", "", text).replace("`", "").replace("*", "")
    kept = (
        ch
        for ch in text.strip().lower()
        if ch in " -" or unicodedata.category(ch)[0] in "LMN" or unicodedata.category(ch) == "Pc"
    )
    return "".join(kept).replace(" ", "-")


def markdown_anchors(text: str) -> set[str]:
    anchors: set[str] = set()
    seen: dict[str, int] = {}

    def add(heading: str) -> None:
        slug = github_slug(heading)
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")

    previous = ""
    for _, line in _lines_outside_fences(text):
        atx = _ATX.match(line)
        setext = _SETEXT.match(line)
        if atx:
            add(atx.group(2) or "")
            previous = ""
            continue
        if setext and previous.strip() and not re.match(r"^\s*([-*+>|]|\d+[.)])", previous):
            add(previous)
            previous = ""
            continue
        anchors.update(_HTML_ANCHOR.findall(_without_code_spans(line)))
        previous = line
    return anchors


# ------------------------------------------------------------------------------------------ tests


def test_every_relative_link_resolves_inside_the_repository() -> None:
    files = checked_files(ROOT)
    assert ROOT / "README.md" in files and ROOT / "docs" / "CONTRACT.md" in files
    found = Checker(ROOT).problems(files)
    assert found == [], "broken links:\n" + "\n".join(found)


@pytest.mark.parametrize(
    ("heading", "slug"),
    [
        ("Consumer's guide", "consumers-guide"),
        ("B. Behaviour beyond v1's text", "b-behaviour-beyond-v1s-text"),
        (
            "Decision 12: periods are limited to years 1000–9999",
            "decision-12-periods-are-limited-to-years-10009999",
        ),
        ("`GET /healthz` and [links](x.md)", "get-healthz-and-links"),
        ("Guarantees, and the tests that prove them", "guarantees-and-the-tests-that-prove-them"),
        ("Quy chế phối hợp", "quy-chế-phối-hợp"),
        ("snake_case  twice", "snake_case--twice"),
    ],
)
def test_headings_get_githubs_slugs(heading: str, slug: str) -> None:
    assert github_slug(heading) == slug


def test_the_checker_finds_every_kind_of_broken_link(tmp_path: Path) -> None:
    """The checker itself can fail: one of each breakage in a small repository of its own."""
    root = tmp_path / "repo"
    (root / "docs").mkdir(parents=True)
    (tmp_path / "shared.md").write_text("# Outside\n", encoding="utf-8")
    (root / "docs" / "guide.md").write_text(
        '# Guide\n\n## Same title\n\n## Same title\n\nSetext\n------\n\n<a id="custom"></a>\n\n'
        "## `min_position` waits\n",
        encoding="utf-8",
    )
    readme = root / "README.md"
    readme.write_text(
        "\n".join(
            [
                "# Top",
                "[fine](docs/guide.md) [fine](docs/guide.md#same-title-1) [fine](docs/guide.md#setext)"
                " [fine](docs/guide.md#min_position-waits)",
                "[fine](<docs/guide.md#custom>) [fine](#top) [web](https://example.org/x) `[code](nowhere.md)`",
                "[missing](docs/nowhere.md)",
                "[outside](../sibling.md)",
                "[anchor](docs/guide.md#not-there) [self](#nor-here)",
                "[absolute](/docs/guide.md)",
                "[ref]: docs/gone.md",
                '<img src="docs/missing.png">',
                "```",
                "[in a fence](nowhere.md)",
                "```",
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    (root / "api.yaml").write_text(
        "info:\n  description: 'See [the guide](docs/guide.md#guide) and [gone](docs/gone.md).'\n"
        "a:\n  b: {$ref: '#/a'}\n  c: {$ref: '#/a/missing'}\n",
        encoding="utf-8",
    )
    found = Checker(root).problems([readme, root / "api.yaml"])
    assert found == [
        "README.md:4: docs/nowhere.md: no such file or directory",
        "README.md:5: ../sibling.md: goes outside the repository (a clone does not have it)",
        "README.md:6: docs/guide.md#not-there: no heading or anchor #not-there in docs/guide.md",
        "README.md:6: #nor-here: no heading or anchor #nor-here in README.md",
        "README.md:7: /docs/guide.md: an absolute path: write it relative to the file",
        "README.md:8: docs/gone.md: no such file or directory",
        "README.md:9: docs/missing.png: no such file or directory",
        "api.yaml:2: docs/gone.md: no such file or directory",
        "api.yaml:5: #/a/missing: the JSON pointer #/a/missing does not resolve in api.yaml",
    ]
