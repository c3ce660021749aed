"""Downloaded files checked against SHA-256 sums committed in the repository (docs/adr/0006).

A sums file is what `sha256sum` writes (`<hex>  <file name>` a line; `#` starts a comment), so
`sha256sum -c` checks the same files by hand. A download is trusted only if it is exactly the
listed set: a file changed, missing or not listed is refused, each named in the message.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

_LINE = re.compile(r"([0-9a-f]{64}) [ *]([^/ \t\r\n\f\v][^/]*)")


class ChecksumMismatch(RuntimeError):
    """Downloaded files differ from the committed sums; the message names each one."""


def read_sums(path: Path) -> dict[str, str]:
    """File name -> SHA-256 (lowercase hex), from a committed sums file."""
    sums: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        match = _LINE.fullmatch(line)
        if match is None:
            raise ValueError(f"{path}:{number}: not a sha256sum line: {line!r}")
        sums[match.group(2)] = match.group(1)
    return sums


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sums_digest(path: Path) -> str:
    """The SHA-256 of a sums file itself: a cache marker holding it says "checked against this list"."""
    return sha256_file(path)


def verify_files(files: list[Path], sums_path: Path, *, exact: bool = True) -> None:
    """Raises ChecksumMismatch unless every file is listed with its SHA-256 and, if `exact`, every
    listed file is among them."""
    expected = read_sums(sums_path)
    found = {path.name: path for path in files}
    problems = [f"{name}: not in the committed list" for name in sorted(found.keys() - expected.keys())]
    if exact:
        problems += [f"{name}: listed but not downloaded" for name in sorted(expected.keys() - found.keys())]
    for name in sorted(found.keys() & expected.keys()):
        actual = sha256_file(found[name])
        if actual != expected[name]:
            problems.append(f"{name}: SHA-256 {actual}, the committed list says {expected[name]}")
    if problems:
        raise ChecksumMismatch(
            f"refusing downloaded files that do not match {sums_path}:\n  " + "\n  ".join(problems)
        )


def verify_directory(directory: Path, sums_path: Path, pattern: str = "*.jar") -> None:
    """The files of `directory` matching `pattern` are exactly those of the sums file, unchanged."""
    verify_files(sorted(directory.glob(pattern)), sums_path)
