"""Kafka's jars are the ones whose SHA-256 is committed (deploy/kafka/jars.sha256): the list
covers every jar the pom resolves, and a cache holding a changed, extra or missing jar is refused
by `ensure_jars` with the file named, before any broker runs it (docs/adr/0006)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from deploy.checksums import ChecksumMismatch, read_sums, sha256_file
from deploy.local.kafka import JAR_SUMS, KAFKA_VERSION, ensure_jars

pytestmark = pytest.mark.integration

CACHE = Path(__file__).resolve().parents[2] / ".cache"
UNCHECKED = KAFKA_VERSION + "\n"  # the marker of a cache fetched before the jars were checked


@pytest.fixture(scope="module")
def libs() -> Path:
    return ensure_jars(CACHE)


def copy_of_cache(libs: Path, root: Path) -> Path:
    """A copy of the cached jars under `root`, as a download made before the check left it."""
    home = root / f"kafka-{KAFKA_VERSION}"
    # Hard links: 43 MB not copied; a jar to change is replaced, never written through.
    shutil.copytree(libs, home / "libs", copy_function=os.link)
    (home / "download-complete").write_text(UNCHECKED)
    return home


def replace(path: Path, data: bytes) -> None:
    path.unlink()
    path.write_bytes(data)


def test_the_list_holds_every_jar_the_pom_resolves_with_its_hash(libs: Path) -> None:
    sums = read_sums(JAR_SUMS)
    jars = {path.name: path for path in libs.glob("*.jar")}
    assert set(jars) == set(sums)
    assert f"kafka_2.13-{KAFKA_VERSION}.jar" in sums and len(sums) > 40
    assert {name: sha256_file(path) for name, path in jars.items()} == sums


def test_an_unchecked_cache_is_checked_once_then_marked(libs: Path, tmp_path: Path) -> None:
    home = copy_of_cache(libs, tmp_path)
    assert ensure_jars(tmp_path) == home / "libs"
    marker = (home / "download-complete").read_text()
    assert marker.startswith(UNCHECKED) and "verified against jars.sha256" in marker


def test_a_tampered_jar_is_refused_by_name(libs: Path, tmp_path: Path) -> None:
    home = copy_of_cache(libs, tmp_path)
    victim = home / "libs" / f"kafka-clients-{KAFKA_VERSION}.jar"
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit, inside the archive
    replace(victim, bytes(data))
    with pytest.raises(
        ChecksumMismatch, match=rf"kafka-clients-{KAFKA_VERSION}\.jar: SHA-256 [0-9a-f]{{64}}"
    ):
        ensure_jars(tmp_path)
    # Refused, and not marked as checked: the next start refuses it again.
    assert (home / "download-complete").read_text() == UNCHECKED
    with pytest.raises(ChecksumMismatch, match=f"delete {home}"):
        ensure_jars(tmp_path)


def test_an_added_jar_is_refused_by_name(libs: Path, tmp_path: Path) -> None:
    home = copy_of_cache(libs, tmp_path)
    shutil.copyfile(home / "libs" / f"kafka-clients-{KAFKA_VERSION}.jar", home / "libs" / "aaa-agent.jar")
    with pytest.raises(ChecksumMismatch, match=r"aaa-agent\.jar: not in the committed list"):
        ensure_jars(tmp_path)


def test_a_missing_jar_is_refused_by_name(libs: Path, tmp_path: Path) -> None:
    home = copy_of_cache(libs, tmp_path)
    (home / "libs" / f"kafka-server-{KAFKA_VERSION}.jar").unlink()
    with pytest.raises(
        ChecksumMismatch, match=rf"kafka-server-{KAFKA_VERSION}\.jar: listed but not downloaded"
    ):
        ensure_jars(tmp_path)
