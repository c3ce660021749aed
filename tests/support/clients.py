"""Clients generated from the OpenAPI documents with openapi-generator, and compiled (docs/CLIENTS.md).

- The documents come from the applications themselves (`app.openapi()`, no server needed).
- The generator is `org.openapitools:openapi-generator-cli` at GENERATOR_VERSION from Maven
  Central, fetched once by Maven into the project's own Maven repository (`.cache/maven`) and
  checked against clients/generator.sha256 (docs/adr/0006-pinned-downloads.md).
- The Java clients (library `native`: java.net.http and Jackson, nothing else at run time) are
  compiled by Maven with clients/java/pom.xml, together with clients/java/life (the program
  that drives an agreement's life through them); every jar on the resulting class path is
  checked against clients/java/jars.sha256.
- The TypeScript clients (`typescript-fetch`) are compiled with clients/ts/life.ts by `tsc`,
  installed with `npm ci` from clients/package-lock.json into `.cache/clients-npm/<lock hash>`.

Nothing generated is committed: the tests generate into a temporary folder and compare two
generations file by file.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from deploy.checksums import ChecksumMismatch, sums_digest, verify_files
from services.projections.entrypoints.app import create_app as create_projections
from services.projections.settings import ProjectionSettings
from services.registry.entrypoints.app import create_app as create_registry
from services.registry.settings import RegistrySettings

ROOT = Path(__file__).resolve().parents[2]
CLIENTS = ROOT / "clients"
CACHE = ROOT / ".cache"
# The project's own Maven repository: the generator, the clients' dependencies and Maven's plugins.
MAVEN_REPOSITORY = CACHE / "maven"

GENERATOR_VERSION = "7.25.0"
GENERATOR = f"org.openapitools:openapi-generator-cli:{GENERATOR_VERSION}"
GENERATOR_JAR = f"openapi-generator-cli-{GENERATOR_VERSION}.jar"
GENERATOR_SUMS = CLIENTS / "generator.sha256"
JAVA_SUMS = CLIENTS / "java" / "jars.sha256"
CONSUMER = CLIENTS / "java" / "consumer"
CONSUMER_SUMS = CONSUMER / "jars.sha256"
NPM_FILES = ("package.json", "package-lock.json")

SERVICES = ("registry", "projections")
PACKAGE = "vn.gov.coordreg"
# Generated without tests, docs or a timestamp: only what compiles, and the same bytes each time.
GLOBAL_PROPERTIES = {"apiTests": "false", "modelTests": "false", "apiDocs": "false", "modelDocs": "false"}
LANGUAGES = ("java", "ts")


def config(language: str, service: str) -> dict[str, object]:
    """openapi-generator's configuration for one client (a `batch` config; docs/CLIENTS.md gives
    the same as `generate` options)."""
    if language == "java":
        return {
            "generatorName": "java",
            "library": "native",
            "globalProperties": GLOBAL_PROPERTIES,
            "additionalProperties": {
                "hideGenerationTimestamp": "true",
                "groupId": PACKAGE,
                "artifactId": f"coordreg-{service}-client",
                "artifactVersion": "1.0.0",
                "invokerPackage": f"{PACKAGE}.{service}",
                "apiPackage": f"{PACKAGE}.{service}.api",
                "modelPackage": f"{PACKAGE}.{service}.model",
            },
        }
    return {
        "generatorName": "typescript-fetch",
        "globalProperties": GLOBAL_PROPERTIES,
        "additionalProperties": {"supportsES6": "true", "hideGenerationTimestamp": "true"},
    }


def openapi_documents(out: Path) -> dict[str, Path]:
    """Each service's OpenAPI document, as its application serves it at /openapi.json."""
    out.mkdir(parents=True, exist_ok=True)
    documents = {
        "registry": create_registry(RegistrySettings()).openapi(),
        "projections": create_projections(ProjectionSettings()).openapi(),
    }
    paths = {}
    for service, document in documents.items():
        paths[service] = out / f"{service}.json"
        paths[service].write_text(json.dumps(document, ensure_ascii=False, indent=2), encoding="utf-8")
    return paths


def _run(command: list[str], what: str, cwd: Path | None = None, timeout: float = 900) -> str:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-40:])
        raise RuntimeError(f"{what} failed (exit {result.returncode}):\n{tail}")
    return result.stdout


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} is needed on PATH to build the generated clients (docs/CLIENTS.md)")
    return found


def maven(*arguments: str) -> list[str]:
    # -C: Maven refuses an artifact whose SHA-1 differs from the repository's.
    return [_tool("mvn"), "-B", "-q", "-C", f"-Dmaven.repo.local={MAVEN_REPOSITORY}", *arguments]


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Two test runs at once: one fetches or builds, the other waits and reuses."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".lock").open("w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        yield


def ensure_generator() -> Path:
    """The pinned openapi-generator-cli jar, fetched into the project's Maven repository on the
    first call and checked against clients/generator.sha256 (once; a marker records the check)."""
    group, artifact, version = GENERATOR.split(":")
    home = MAVEN_REPOSITORY.joinpath(*group.split("."), artifact, version)
    jar = home / GENERATOR_JAR
    marker = home / "coordreg-verified"
    expected = f"{GENERATOR}\nverified against generator.sha256 {sums_digest(GENERATOR_SUMS)}\n"
    with _locked(MAVEN_REPOSITORY):
        if jar.is_file() and marker.is_file() and marker.read_text() == expected:
            return jar
        if not jar.is_file():
            _run(
                maven("dependency:get", f"-Dartifact={GENERATOR}", "-Dtransitive=false"),
                f"mvn dependency:get {GENERATOR}",
            )
        try:
            verify_files([jar], GENERATOR_SUMS)
        except ChecksumMismatch:
            jar.unlink(missing_ok=True)  # nothing unverified stays behind to be run later
            raise
        marker.write_text(expected)
    return jar


def generate_all(jar: Path, documents: dict[str, Path], out: Path) -> Path:
    """`out/java/<service>` and `out/ts/<service>` for both services, written afresh by one
    `batch` run of the generator (one JVM for the four clients)."""
    shutil.rmtree(out, ignore_errors=True)
    configs = out / "configs"
    configs.mkdir(parents=True)
    files = []
    for language in LANGUAGES:
        for service in SERVICES:
            settings = config(language, service) | {
                "inputSpec": str(documents[service]),
                "outputDir": str(out / language / service),
            }
            files.append(configs / f"{language}-{service}.json")
            files[-1].write_text(json.dumps(settings, indent=2), encoding="utf-8")
    command = [_tool("java"), "-jar", str(jar), "batch", "--fail-fast", "--threads", "2", *map(str, files)]
    _run(command, "openapi-generator batch (Java and TypeScript clients of both services)")
    shutil.rmtree(configs)
    return out


def tree_digest(root: Path) -> dict[str, str]:
    """Every file under `root` (relative path) with its SHA-256."""
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


@dataclass(frozen=True)
class JavaProgram:
    classpath: str
    main: str = "coordreg.life.Life"

    def command(self, *arguments: str) -> list[str]:
        return [_tool("java"), "-cp", self.classpath, self.main, *arguments]


def build_java(generated: Path) -> JavaProgram:
    """Compiles `generated/java/{registry,projections}` and clients/java/life with Maven."""
    work = generated / "java"
    shutil.copyfile(CLIENTS / "java" / "pom.xml", work / "pom.xml")
    shutil.rmtree(work / "life", ignore_errors=True)
    shutil.copytree(CLIENTS / "java" / "life", work / "life")
    with _locked(MAVEN_REPOSITORY):
        _run(
            maven(
                "-f", str(work / "pom.xml"), "compile", "dependency:build-classpath",
                "-Dmdep.outputFile=classpath.txt", "-Dmdep.includeScope=runtime",
            ),
            "mvn compile (the generated Java clients and clients/java/life)",
        )  # fmt: skip
    entries = (work / "life" / "classpath.txt").read_text().strip().split(":")
    jars = [Path(entry) for entry in entries if entry.endswith(".jar")]
    verify_files(jars, JAVA_SUMS)
    return JavaProgram(":".join([str(work / "life" / "target" / "classes"), *entries]))


def build_consumer(cache: Path = CACHE) -> JavaProgram:
    """clients/java/consumer (the consumer's guide's Java example), compiled by Maven into
    `.cache/java-consumer/<sources' hash>` once per change of its sources; every jar of its class
    path is checked against clients/java/consumer/jars.sha256 on each call."""
    sources = sorted(path for path in CONSUMER.rglob("*") if path.is_file() and path.name != "jars.sha256")
    digest = hashlib.sha256()
    for path in sources:
        digest.update(f"{path.relative_to(CONSUMER)}\0".encode() + path.read_bytes() + b"\0")
    work = cache / "java-consumer" / digest.hexdigest()[:16]
    with _locked(work):
        if not (work / ".built").exists():
            for path in sources:
                target = work / path.relative_to(CONSUMER)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)
            _run(
                maven(
                    "-f", str(work / "pom.xml"), "compile", "dependency:build-classpath",
                    "-Dmdep.outputFile=classpath.txt", "-Dmdep.includeScope=runtime",
                ),
                "mvn compile (clients/java/consumer)",
            )  # fmt: skip
            (work / ".built").touch()
    entries = (work / "classpath.txt").read_text().strip().split(":")
    jars = [Path(entry) for entry in entries if entry.endswith(".jar")]
    verify_files(jars, CONSUMER_SUMS)
    return JavaProgram(":".join([str(work / "target" / "classes"), *entries]), "coordreg.consumer.Consumer")


def ensure_typescript(cache: Path = CACHE) -> Path:
    """`tsc`, installed by `npm ci` from clients/package-lock.json (integrity hashes) once per lock."""
    lock = b"".join((CLIENTS / name).read_bytes() for name in NPM_FILES)
    target = cache / "clients-npm" / hashlib.sha256(lock).hexdigest()[:16]
    tsc = target / "node_modules" / "typescript" / "bin" / "tsc"
    with _locked(target):
        if not (target / ".installed").exists():
            for name in NPM_FILES:
                shutil.copyfile(CLIENTS / name, target / name)
            # --ignore-scripts: no package's install script runs here.
            npm = _tool("npm")
            _run(
                [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
                "npm ci",
                cwd=target,
            )
            (target / ".installed").touch()
    return tsc


def build_typescript(generated: Path, tsc: Path) -> Path:
    """Compiles `generated/ts/{registry,projections}` with clients/ts/life.ts; returns life.js."""
    work = generated / "ts"
    shutil.copyfile(CLIENTS / "ts" / "tsconfig.json", work / "tsconfig.json")
    shutil.copyfile(CLIENTS / "ts" / "life.ts", work / "life.ts")
    _run(
        [_tool("node"), str(tsc), "-p", str(work / "tsconfig.json")], "tsc (the generated TypeScript clients)"
    )
    return work / "out" / "life.js"
