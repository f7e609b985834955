"""The scoring transformer's decision-log wiring on the cluster: which role it serves in, and the
environment that says where it writes (issue 32, item 1).

The transformer (components/serving/transformer.py, its sink components/serving/decision_log.py)
reads `MLOPS_DECISION_LOG_URI`, `MLOPS_NAMESPACE`, `MLOPS_SERVING_ROLE` and `K_REVISION` (Knative
sets it), and S3 access from `AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`.
Each value is derived here from what already says it: the namespace from the downward API, the
bucket from the log's record (components/serving/decision_record.py), the role from the rollout's
traffic share, the endpoint from the namespace's `mlops-platform` ConfigMap the container already takes.

The key is the tenant's decisions writer (DECISIONS_CREDENTIALS_SECRET), not the tenant's own S3 key:
that one may write `<bucket>/<namespace>/*` in every bucket of components/platform/buckets.py, models
included, and the transformer answers requests, so whoever subverts it holds what it holds. The
writer may only put objects under `decisions/<namespace>/*` (manifests/out-of-band-secrets.yaml; on
the loopback stack devstack/tenants.py makes it, and `mlops isolation-check`'s `decisions-writer`
rows try it). One fixed name, like the reader Secrets: a pipeline's `cluster.s3_credentials_secret`
names its steps' key and never reaches the transformer.
"""

from __future__ import annotations

from typing import Any

from components.errors import ComponentError
from components.platform.buckets import S3_SECRET_KEYS
from components.serving.decision_record import BUCKET, NAMESPACE_VARIABLE, ROLE_VARIABLE, ROLES, URI_VARIABLE

__all__ = [
    "DECISIONS_CREDENTIALS_SECRET",
    "S3_KEYS",
    "STEP",
    "decision_log_environment",
    "decision_log_uri",
    "serving_role",
]

STEP = "promote"
S3_KEYS = S3_SECRET_KEYS
"""An S3 Secret's keys, as every step reads them (components/platform/buckets.py)."""
DECISIONS_CREDENTIALS_SECRET = "tenant-decisions-credentials"
"""The tenant namespace's Secret of the transformer's decisions writer (S3_KEYS): put on
`decisions/<namespace>/*` only, created by the platform team (manifests/out-of-band-secrets.yaml)."""


def serving_role(canary_percent: int | None) -> str:
    """The role the rendered revision serves in (decision_record.ROLES): the canary while it takes a
    share below 100% (a canary's rollback keeps its spec at 0%, so Knative makes no new revision),
    else the champion."""
    champion, canary = ROLES
    return canary if canary_percent is not None and canary_percent < 100 else champion


def decision_log_uri(namespace: str) -> str:
    """The namespace's prefix of the decisions bucket (decision_record's layout)."""
    return f"s3://{BUCKET}/{namespace}/"


def decision_log_environment(role: str) -> list[dict[str, Any]]:
    """The transformer container's variables for its decision log: its namespace from the downward
    API, the log's URI under that namespace (Kubernetes expands `$(MLOPS_NAMESPACE)`, defined just
    before), its serving role, and the tenant's decisions writer's key (DECISIONS_CREDENTIALS_SECRET)."""
    if role not in ROLES:
        raise ComponentError(STEP, f"unknown serving role {role!r}", f"use one of {', '.join(ROLES)}")
    secret = DECISIONS_CREDENTIALS_SECRET
    return [
        {"name": NAMESPACE_VARIABLE, "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": URI_VARIABLE, "value": decision_log_uri(f"$({NAMESPACE_VARIABLE})")},
        {"name": ROLE_VARIABLE, "value": role},
        *({"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}} for name, key in S3_KEYS.items()),
    ]
