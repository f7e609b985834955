"""The tenant workloads' restricted security contexts come from one place (pipelines/pod_security.py).

Issue 30 (repeated logic): the tenant's pooler, Redis and Pushgateway each wrote out the pod's and
the containers' restricted fields in their own copy. They now call restricted_pod and
restricted_container; the committed renders did not change (make golden), and these tests hold the
rendered manifests to the profile and the helpers to handing out new objects.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from pipelines.pod_security import restricted_container, restricted_pod

REPO = Path(__file__).resolve().parents[2]
RENDERED = [
    *sorted((REPO / "manifests" / "tenants").glob("*/redis.yaml")),
    *sorted((REPO / "manifests" / "tenants").glob("*/pushgateway.yaml")),
    REPO / "manifests" / "base" / "postgres" / "tenant-poolers.yaml",
]


def _pod_specs(path: Path) -> list[dict[str, Any]]:
    return [
        document["spec"]["template"]["spec"]
        for document in yaml.safe_load_all(path.read_text())
        if document and document.get("kind") in ("Deployment", "StatefulSet")
    ]


def test_every_rendered_tenant_workload_runs_restricted() -> None:
    """issue 30: the pooler's, Redis's and the Pushgateway's pods carry the shared restricted fields."""
    specs = [spec for path in RENDERED for spec in _pod_specs(path)]
    assert len(specs) >= 3 * 2 + 1, RENDERED  # a Redis and a Pushgateway per tenant, and the poolers
    for spec in specs:
        assert spec["securityContext"] == restricted_pod(spec["securityContext"]["runAsUser"])
        for container in spec.get("initContainers", []) + spec["containers"]:
            context = container["securityContext"]
            extra = {key: value for key, value in context.items() if key == "readOnlyRootFilesystem"}
            assert context == restricted_container(**extra), container["name"]
            assert context["allowPrivilegeEscalation"] is False and context["capabilities"] == {"drop": ["ALL"]}


def test_each_call_hands_out_new_objects_so_the_manifests_carry_no_yaml_aliases() -> None:
    """issue 30: one shared object in two places would render as a YAML anchor; the helpers return new ones."""
    assert restricted_container() is not restricted_container() and restricted_pod(1) is not restricted_pod(1)
    two = {"a": restricted_container(), "b": restricted_container()}
    assert "&id" not in yaml.safe_dump(two)
    shared = restricted_container()
    assert "&id" in yaml.safe_dump({"a": shared, "b": shared})  # control: the test sees an alias
    assert not any("&id" in path.read_text() for path in RENDERED)
