"""Each tenant's KFP pipeline root (pipelines/kfp_launcher.py), as make golden renders it."""

from __future__ import annotations

import fnmatch
from pathlib import Path

import yaml

from devstack.tenants import s3_actions
from pipelines.kfp_launcher import KFP_LAUNCHER_FILE, kfp_launcher, pipeline_root
from pipelines.tenancy import load
from tests.conftest import REPO

MANIFESTS = REPO / "manifests"


def _granted(actions: list[str], key: str) -> bool:
    """Whether an identity's S3 actions let it write `key`: `Write:<bucket>/<prefix>/*` under the
    prefix, `Write:<bucket>` (no prefix, as SeaweedFS reads an action) the whole bucket."""
    patterns = [action if "/" in action else f"{action}/*" for action in actions]
    return any(fnmatch.fnmatchcase(f"Write:{key}", pattern) for pattern in patterns)


def _root_key(root: str) -> str:
    return root.removeprefix("s3://") + "/run/task/artifact"


def test_every_tenant_namespace_has_its_own_pipeline_root_inside_its_s3_grant() -> None:
    """issue 29: on Kubeflow no per-namespace pipeline root was rendered, so every tenant's runs
    wrote under the installation's one default root. Now each tenant's namespace carries a
    kfp-launcher ConfigMap whose root is in the prefix its own S3 identity is granted, and in no
    other tenant's."""
    tenants = sorted(load(MANIFESTS).names)
    assert {"fraud", "pricing"} <= set(tenants)
    for tenant in tenants:
        folder = MANIFESTS / "tenants" / tenant
        assert KFP_LAUNCHER_FILE in yaml.safe_load((folder / "kustomization.yaml").read_text())["resources"]
        rendered = yaml.safe_load(Path(folder / KFP_LAUNCHER_FILE).read_text())
        assert rendered == kfp_launcher(tenant)  # generated, in step with the renderer
        assert rendered["metadata"] == rendered["metadata"] | {"name": "kfp-launcher", "namespace": tenant}
        root = rendered["data"]["defaultPipelineRoot"]
        assert root == pipeline_root(tenant)
        provider = yaml.safe_load(rendered["data"]["providers"])["s3"]["default"]
        assert provider["credentials"]["secretRef"]["secretName"] == "tenant-s3-credentials"
        # positive control: the tenant's own identity may write under its root
        assert _granted(s3_actions(tenant), _root_key(root))
        for other in tenants:
            if other != tenant:  # the forbidden path: no other tenant's identity reaches it
                assert not _granted(s3_actions(other), _root_key(root)), (other, root)
    # the control broken on purpose: a broadened identity (whole buckets) does reach fraud's root
    assert _granted(s3_actions("pricing", broadened=True), _root_key(pipeline_root("fraud")))
