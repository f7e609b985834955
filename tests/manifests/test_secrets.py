"""Every Secret a rendered pod references exists: rendered in manifests/, or created out of band.

A reference is a Secret name, and a key where one is read: env `secretKeyRef`, envFrom
`secretRef`, a secret volume (its items' keys), Argo's artifact repository (`accessKeySecret`,
`secretKeySecret`) and archive (`userNameSecret`, `passwordSecret`), a KServe ServiceAccount's
`secrets` (the keys the storage initializer reads), CloudNativePG's `passwordSecret` and initdb
`secret` (basic-auth: username, password), and the Secrets kfp-kubernetes puts in a KFP
pipeline's platform spec. They are collected from every overlay and tenant as `kubectl
kustomize` renders them, from the Katib patch, from each reference pipeline's goldens (the
Workflows and KFP IR `make golden` writes, in the namespace they run in) and from the
InferenceService promote renders for it (predictor and transformer). Each resolves to a rendered
Secret holding the key, or to a row of manifests/out-of-band-secrets.yaml, the table
docs/install.md shows the platform engineer; a row nothing references is stale.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines.cluster import MODEL_PULLER_SECRET_KEYS, SHARED_PIPELINES_NAMESPACE
from tests.conftest import REGISTRATION, REPO
from tests.rendered_manifests import render

MANIFESTS = REPO / "manifests"
OUT_OF_BAND = MANIFESTS / "out-of-band-secrets.yaml"
TENANTS = sorted(p.parent.name for p in (MANIFESTS / "tenants").glob("*/namespace.yaml"))
BASIC_AUTH = ("username", "password")  # CloudNativePG's passwordSecret and initdb secret


@dataclass(frozen=True)
class Reference:
    namespace: str
    name: str
    key: str | None  # None: the whole Secret (envFrom, a volume without items)
    where: str


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


KFP_KEY_FIELDS = ("accessKeyKey", "secretKeyKey")
"""The keys of its Secret the KFP launcher reads (a tenant's kfp-launcher ConfigMap, `providers`)."""


def references(obj: dict[str, Any], namespace: str, where: str) -> Iterator[Reference]:
    """Every Secret reference in one object (or one document of a KFP IR), in `namespace`."""
    basic_auth: set[int] = set()  # CloudNativePG's initdb secret: a basic-auth Secret, not a volume
    for node in _walk(obj):
        if isinstance(initdb := node.get("initdb"), dict) and isinstance(ref := initdb.get("secret"), dict):
            basic_auth.add(id(ref))
            yield from (Reference(namespace, ref["name"], key, where) for key in BASIC_AUTH)
        if isinstance(ref := node.get("secretKeyRef"), dict):
            yield Reference(namespace, ref["name"], ref["key"], where)
        if isinstance(ref := node.get("secretRef"), dict) and "secretName" in ref:  # the KFP launcher's providers
            keys = [ref[field] for field in KFP_KEY_FIELDS if field in ref] or [None]
            yield from (Reference(namespace, ref["secretName"], key, where) for key in keys)
        elif isinstance(ref, dict):
            yield Reference(namespace, ref["name"], None, where)
        for field in ("accessKeySecret", "secretKeySecret", "sessionTokenSecret", "userNameSecret", "passwordSecret"):
            if isinstance(ref := node.get(field), dict) and "key" in ref:  # Argo's (artifacts, persistence)
                yield Reference(namespace, ref["name"], ref["key"], where)
        for field in ("accessKeyId", "secretAccessKey", "sessionToken", "region"):  # CloudNativePG's s3Credentials
            if isinstance(ref := node.get(field), dict) and "key" in ref:
                yield Reference(namespace, ref["name"], ref["key"], where)
        secret = node.get("secret")  # a volume (secretName) or a projected volume's source (name)
        if isinstance(secret, dict) and id(secret) not in basic_auth:
            keys = [item["key"] for item in secret.get("items", [])] or [None]
            yield from (Reference(namespace, secret.get("secretName") or secret["name"], key, where) for key in keys)
        if isinstance(ref := node.get("passwordSecret"), dict) and "key" not in ref:  # CloudNativePG's roles
            yield from (Reference(namespace, ref["name"], key, where) for key in BASIC_AUTH)
        for entry in node.get("secretAsEnv") or []:
            yield from (Reference(namespace, entry["secretName"], m["secretKey"], where) for m in entry["keyToEnv"])
        for entry in node.get("secretAsVolume") or []:
            yield Reference(namespace, entry["secretName"], None, where)
    if obj.get("kind") == "ServiceAccount":
        for secret in obj.get("secrets", []):  # KServe's storage initializer reads these keys
            yield from (Reference(namespace, secret["name"], key, where) for key in MODEL_PULLER_SECRET_KEYS)
    if obj.get("kind") == "ConfigMap":  # Argo's artifact repositories, KFP's providers: YAML inside the data
        for key, value in (obj.get("data") or {}).items():
            if "secret" in value.lower() and isinstance(inner := yaml.safe_load(value), dict):
                yield from references(inner, namespace, f"{where} data.{key}")


def collect(objects: list[dict[str, Any]], source: str) -> list[Reference]:
    found = []
    for obj in objects:
        if str(obj.get("apiVersion", "")).startswith("constraints.gatekeeper.sh/"):
            continue  # a Constraint's parameters say what a pod may reference (the promotion guard's
            # transformer variables), in whichever namespace it runs: policy data, not a reference
        where = f"{source}: {obj['kind']} {obj['metadata'].get('name') or obj['metadata'].get('generateName')}"
        found += references(obj, obj["metadata"].get("namespace", ""), where)
    return found


def rendered_objects() -> dict[str, list[dict[str, Any]]]:
    sources = {overlay: render(MANIFESTS / "overlays" / overlay) for overlay in ("dev", "prod")}
    sources |= {f"tenant {tenant}": render(MANIFESTS / "tenants" / tenant) for tenant in TENANTS}
    sources["manifests/katib"] = list(yaml.safe_load_all((MANIFESTS / "katib" / "db-manager-patch.yaml").read_text()))
    return sources


def golden_references() -> list[Reference]:
    """The reference pipelines' Workflows and KFP IR, in the namespace their WorkflowTemplate names."""
    found = []
    for golden in sorted(REPO.glob("pipelines/*/golden")):
        template = yaml.safe_load((golden / "workflow-template.yaml").read_text())
        namespace = template["metadata"]["namespace"]
        for path in sorted(golden.glob("*.yaml")):
            where = str(path.relative_to(REPO))
            for document in yaml.safe_load_all(path.read_text()):
                found += references(document or {}, namespace, where)
    return found


def serving_references() -> list[Reference]:
    """Each reference pipeline's InferenceService as promote renders it, with its scoring transformer."""
    from components.config import transformer_settings
    from components.steps.promote import render_inference_service
    from pipelines.golden import reference_pipelines
    from pipelines.local import declaration

    found = []
    for name in reference_pipelines():
        pipeline = declaration(name)
        cfg = pipeline.config()
        service = render_inference_service(
            dict(REGISTRATION),
            settings=cfg.promote,
            storage_uri="s3://models/x",
            canary_percent=None,
            transformer=transformer_settings(cfg, pipeline.spec.image),
        )
        found += references(service, service["metadata"]["namespace"], f"promote {name}: InferenceService")
    return found


def rendered_secrets(sources: dict[str, list[dict[str, Any]]]) -> dict[tuple[str, str], set[str]]:
    secrets: dict[tuple[str, str], set[str]] = {}
    for objects in sources.values():
        for obj in objects:
            if obj["kind"] == "Secret":
                keys = {*(obj.get("data") or {}), *(obj.get("stringData") or {})}
                secrets.setdefault((obj["metadata"].get("namespace", ""), obj["metadata"]["name"]), set()).update(keys)
    return secrets


def expand(rows: list[dict[str, Any]]) -> dict[tuple[str, str], tuple[int, set[str]]]:
    """Each row's (namespace, name) pairs: `each tenant`, `each pipelines namespace`, `{tenant}`."""
    expanded: dict[tuple[str, str], tuple[int, set[str]]] = {}
    for index, row in enumerate(rows):
        namespaces = {
            "each tenant": TENANTS,
            "each pipelines namespace": [*TENANTS, SHARED_PIPELINES_NAMESPACE],
        }.get(row["namespace"], [row["namespace"]])
        names = (
            [row["name"].format(tenant=tenant) for tenant in TENANTS] if "{tenant}" in row["name"] else [row["name"]]
        )
        for namespace in namespaces:
            for name in names:
                expanded[(namespace, name)] = (index, set(row["keys"]))
    return expanded


def problems(refs: list[Reference], secrets: dict[tuple[str, str], set[str]], rows: list[dict[str, Any]]) -> list[str]:
    """Each reference that resolves to nothing, and each row nothing references (or keys nobody reads)."""
    out_of_band = expand(rows)
    found = []
    for ref in sorted(set(refs), key=lambda r: (r.namespace, r.name, r.key or "", r.where)):
        address = (ref.namespace, ref.name)
        keys = secrets.get(address, set()) | out_of_band.get(address, (0, set()))[1]
        known = address in secrets or address in out_of_band
        if not known or (ref.key is not None and ref.key not in keys):
            what = f"key {ref.key} of " if known else ""
            found.append(f"{ref.where}: {what}Secret {ref.namespace}/{ref.name} is neither rendered nor out of band")
    used: dict[int, set[str | None]] = {}
    for ref in refs:
        if (ref.namespace, ref.name) in out_of_band:
            used.setdefault(out_of_band[(ref.namespace, ref.name)][0], set()).add(ref.key)
    for index, row in enumerate(rows):
        if index not in used:
            found.append(f"out-of-band row {row['namespace']}/{row['name']}: nothing references it")
        elif None not in used[index] and (unread := set(row["keys"]) - used[index]):
            found.append(f"out-of-band row {row['namespace']}/{row['name']}: keys nobody reads: {sorted(unread)}")
    return found


@pytest.fixture(scope="module")
def platform(schemas_dir: Path) -> tuple[list[Reference], dict[tuple[str, str], set[str]], list[dict[str, Any]]]:
    sources = rendered_objects()
    refs = [ref for source, objects in sources.items() for ref in collect(objects, source)]
    refs += golden_references() + serving_references()
    rows: list[dict[str, Any]] = yaml.safe_load(OUT_OF_BAND.read_text())["secrets"]
    return refs, rendered_secrets(sources), rows


def test_every_secret_a_pod_references_is_rendered_or_created_out_of_band(
    platform: tuple[list[Reference], dict[tuple[str, str], set[str]], list[dict[str, Any]]],
) -> None:
    """issue 28: Secrets as data. No test crossed from a pod's Secret reference to who creates the
    Secret; each now resolves to a rendered Secret or a row of manifests/out-of-band-secrets.yaml."""
    refs, secrets, rows = platform
    kinds = {(ref.name, ref.key) for ref in refs}
    assert {("tenant-s3-credentials", "access-key"), ("model-puller-s3", "AWS_ACCESS_KEY_ID"),
            ("feast-db-credentials", "username"), ("pgbouncer-userlist", None),
            ("tenant-mlflow-credentials", "password")} <= kinds, "the collection finds each kind at all"  # fmt: skip
    assert {ref.namespace for ref in refs} >= {"mlops", "storage", "kubeflow", SHARED_PIPELINES_NAMESPACE, *TENANTS[:1]}
    for row in rows:
        assert set(row) == {"namespace", "name", "keys", "created_by", "why"}, row
    assert problems(refs, secrets, rows) == []


def test_the_secrets_check_names_a_missing_row_key_and_a_stale_row(
    platform: tuple[list[Reference], dict[tuple[str, str], set[str]], list[dict[str, Any]]],
) -> None:
    """issue 28: the check above, broken on purpose on a copy of the table."""
    refs, secrets, rows = platform
    without = [row for row in rows if row["name"] != "tenant-redis-credentials"]
    missing = problems(refs, secrets, without)
    assert missing and all("Secret " in line and "/tenant-redis-credentials is neither" in line for line in missing)
    assert any(line.startswith(f"tenant {TENANTS[0]}: StatefulSet redis: ") for line in missing)
    fewer = [{**row, "keys": ["username"]} if row["name"] == "mlflow-admin-credentials" else row for row in rows]
    secret = "Secret mlops/mlflow-admin-credentials is neither rendered nor out of band"
    assert problems(refs, secrets, fewer) == [
        f"{overlay}: Deployment mlflow: key {key} of {secret}"
        for key in ("flask-secret-key", "password")
        for overlay in ("dev", "prod")
    ]
    stale = [*rows, {"namespace": "mlops", "name": "left-over", "keys": ["token"], "created_by": "x", "why": "y"}]
    assert problems(refs, secrets, stale) == ["out-of-band row mlops/left-over: nothing references it"]
    unread = [{**row, "keys": [*row["keys"], "token"]} if row["name"] == "redis-credentials" else row for row in rows]
    assert problems(refs, secrets, unread) == ["out-of-band row mlops/redis-credentials: keys nobody reads: ['token']"]


def test_references_are_read_from_every_place_a_pod_names_a_secret() -> None:
    """The collector itself, on objects whose references are known."""
    pod = {"kind": "Pod", "metadata": {"name": "p"}, "spec": {
        "containers": [{"env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "env", "key": "a"}}}],
                        "envFrom": [{"secretRef": {"name": "whole"}}]}],
        "volumes": [{"name": "v", "secret": {"secretName": "vol", "items": [{"key": "k", "path": "k"}]}},
                    {"name": "w", "projected": {"sources": [{"secret": {"name": "proj"}}]}}]}}  # fmt: skip
    cluster = {"kind": "Cluster", "metadata": {"name": "c"}, "spec": {
        "bootstrap": {"initdb": {"secret": {"name": "owner"}}},
        "managed": {"roles": [{"name": "r", "passwordSecret": {"name": "role"}}]}}}  # fmt: skip
    repository = "s3:\n  accessKeySecret: {name: s3, key: id}\n  secretKeySecret: {name: s3, key: secret}\n"
    configmap = {"kind": "ConfigMap", "metadata": {"name": "artifact-repositories"}, "data": {"default-v1": repository}}
    persistence = "postgresql:\n  userNameSecret: {name: db, key: user}\n  passwordSecret: {name: db, key: pass}\n"
    controller = {"kind": "ConfigMap", "metadata": {"name": "workflow-controller-configmap"},
                  "data": {"persistence": persistence}}  # fmt: skip
    account = {"kind": "ServiceAccount", "metadata": {"name": "puller"}, "secrets": [{"name": "pull"}]}
    providers = (
        "s3:\n  default:\n    credentials:\n      secretRef: {secretName: launch, accessKeyKey: ak, secretKeyKey: k}"
    )
    launcher = {"kind": "ConfigMap", "metadata": {"name": "kfp"}, "data": {"providers": providers}}
    keyless = {"kind": "ConfigMap", "metadata": {"name": "k"}, "data": {"p": "secretRef: {secretName: named}"}}
    ir = {"platforms": {"kubernetes": {"deploymentSpec": {"executors": {"e": {
        "secretAsEnv": [{"secretName": "kfp", "keyToEnv": [{"secretKey": "x", "envVar": "X"}]}],
        "secretAsVolume": [{"secretName": "kfp-volume", "mountPath": "/s"}]}}}}}}  # fmt: skip
    found = {
        (r.name, r.key)
        for obj in (pod, cluster, configmap, controller, account, launcher, keyless, ir)
        for r in references(obj, "ns", "t")
    }
    assert found == {
        ("env", "a"), ("whole", None), ("vol", "k"), ("proj", None), ("owner", "username"), ("owner", "password"),
        ("role", "username"), ("role", "password"), ("s3", "id"), ("s3", "secret"), ("db", "user"), ("db", "pass"),
        ("kfp", "x"), ("launch", "ak"), ("launch", "k"), ("named", None),
        ("kfp-volume", None), *(("pull", key) for key in MODEL_PULLER_SECRET_KEYS),
    }  # fmt: skip
