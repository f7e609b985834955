"""Each tenant's Kubeflow Pipelines root: the `kfp-launcher` ConfigMap in its own namespace.

Issue 29, "on Kubeflow no per-namespace pipeline root is rendered": without this ConfigMap every
run's artifacts go under the installation's one default root, which no tenant's key pair may
reach, or which all of them share. KFP's launcher reads `kfp-launcher` from the run's namespace:
`defaultPipelineRoot` is where each task's output artifacts are written, and `providers` gives the
credentials it writes them with. Here both come from what the tenant already owns:

- the root is the tenant's own prefix in the pipeline-artifacts bucket,
  `s3://pipeline-artifacts/<tenant>/kfp`, under the `<bucket>/<tenant>/` rule the tenant's S3
  identity is granted (devstack/tenants.py: s3_actions; Argo's keyFormat puts its artifacts under
  the same `<namespace>/`), so a tenant's run can neither write into nor be handed another's;
- the credentials are the tenant's own Secret (cluster.s3_credentials_secret, the one every step
  reads), at the endpoint its steps use (pipelines/cluster.py: cluster_settings).

`make golden` renders it beside each tenant's kustomization (pipelines/golden.py), from
manifests/tenants/tenants.yaml through pipelines/tenancy.py.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import yaml

from components.config import ClusterSettings
from components.platform.buckets import PIPELINE_ARTIFACTS, S3_SECRET_KEYS

__all__ = ["KFP_LAUNCHER", "KFP_LAUNCHER_FILE", "ROOT_FOLDER", "kfp_launcher", "pipeline_root"]

KFP_LAUNCHER = "kfp-launcher"
KFP_LAUNCHER_FILE = "kfp-launcher.yaml"
ROOT_FOLDER = "kfp"
"""Under the tenant's prefix: KFP's artifacts apart from Argo's `<namespace>/<workflow>/` keys."""


def pipeline_root(tenant: str) -> str:
    """The tenant's KFP pipeline root, inside the prefix its S3 identity is granted."""
    return f"s3://{PIPELINE_ARTIFACTS}/{tenant}/{ROOT_FOLDER}"


def kfp_launcher(tenant: str) -> dict[str, Any]:
    """The `kfp-launcher` ConfigMap of the tenant's namespace."""
    from pipelines.cluster import cluster_settings

    settings = cluster_settings(tenant)
    endpoint = urlsplit(settings.s3_endpoint)
    secret = ClusterSettings.model_fields["s3_credentials_secret"].default
    providers = {
        "s3": {
            "default": {
                "endpoint": endpoint.netloc,
                "disableSSL": endpoint.scheme != "https",
                "region": settings.s3_region,
                "credentials": {
                    "fromEnv": False,
                    "secretRef": {
                        "secretName": secret,
                        "accessKeyKey": S3_SECRET_KEYS["AWS_ACCESS_KEY_ID"],
                        "secretKeyKey": S3_SECRET_KEYS["AWS_SECRET_ACCESS_KEY"],
                    },
                },
            }
        }
    }
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": KFP_LAUNCHER,
            "namespace": tenant,
            "labels": {"app.kubernetes.io/part-of": "private-mlops"},
            "annotations": {"mlops.private-platform.io/generated-by": "make golden (pipelines/kfp_launcher.py)"},
        },
        "data": {
            "defaultPipelineRoot": pipeline_root(tenant),
            "providers": yaml.safe_dump(providers, sort_keys=True),
        },
    }
