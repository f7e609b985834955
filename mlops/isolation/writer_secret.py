"""The writer-secret surface of `mlops isolation-check`: can a member's Workflow load the decisions writer's key?

Security review (HIGH): the tenant's own key writes only `decisions/<A>/_outcomes/`, but the decisions
writer's key (the Secret `tenant-decisions-credentials` in each tenant namespace,
components/steps/serving_decisions.py) may put anything under `decisions/<A>/*`, and the bucket keeps
no versions. A member may create Workflows, and a pod may load any Secret of its namespace: a member's
Workflow running the component image with that Secret as AWS_* would overwrite A's decision files.
On the cluster Gatekeeper stands between them (manifests/policies/decisions-writer-secret.yaml). The
loopback stack has no API server, so these rows ask the platform's admission policies themselves
(every Constraint under manifests/policies, which both overlays install, on the real OPA engine,
mlops/admission.py) about the attacker's Workflow, applied by one of its members in its namespace.

The positive control: the same Workflow with the tenant's own S3 key (a pipeline's
`cluster.s3_credentials_secret`) is admitted, and that key lists the tenant's own decision log (OK);
an admission that refused every Workflow would prove nothing, and with broken credentials the
control is ERROR, as every surface's is. The probes: the writer's Secret as AWS_* and as a mounted
volume, DENIED when some installed Constraint refuses the Workflow, LEAK when it is admitted.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from mlops.isolation.outcomes import Denied

if TYPE_CHECKING:
    from devstack.stack import Stack
    from devstack.tenants import Tenant
    from mlops.admission import PolicySet
    from mlops.isolation.scene import Scene

__all__ = ["OWN", "PROBES", "available", "member", "member_workflow", "own_key_lists_its_log"]


@functools.cache
def _installed() -> PolicySet:
    from mlops.admission import PolicySet

    return PolicySet()


def available(stack: Stack) -> str:
    """Empty when the OPA engine the admission rows run on is installed."""
    try:
        import opa_bindings  # noqa: F401  # opa-golib-python-bindings: mlops.admission's engine
    except ImportError:
        return "make install (the admission rows run the policies on opa-golib-python-bindings)"
    return ""


def member(tenant: Tenant) -> tuple[str, list[str]]:
    """A member of the tenant, as the API server names them to Gatekeeper: a user and its groups
    (`<tenant>-members` holds the pipeline-submitter Role, manifests/tenants/base/tenant.yaml)."""
    return f"alice@{tenant.name}.bank.internal", [f"{tenant.name}-members", "system:authenticated"]


def member_workflow(tenant: Tenant, secret: str, *, mounted: bool = False) -> dict[str, Any]:
    """A member's Workflow in the tenant's namespace running the component image with `secret`'s S3
    keys as AWS_* (as every step takes its key, pipelines/cluster.py), or mounted as a volume."""
    from components.steps.serving_decisions import S3_KEYS
    from pipelines.standard import IMAGE

    container: dict[str, Any] = {"image": IMAGE, "command": ["python", "-c", "import boto3"]}
    template: dict[str, Any] = {"name": "main", "container": container}
    if mounted:
        container["volumeMounts"] = [{"name": "key", "mountPath": "/var/run/key", "readOnly": True}]
        template["volumes"] = [{"name": "key", "secret": {"secretName": secret}}]
    else:
        container["env"] = [
            {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}} for name, key in S3_KEYS.items()
        ]
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "overwrite-decisions-", "namespace": tenant.name},
        "spec": {"entrypoint": "main", "serviceAccountName": "pipeline-runner", "templates": [template]},
    }


def _submit(tenant: Tenant, workflow: dict[str, Any]) -> list[str]:
    user, groups = member(tenant)
    return _installed().violations(workflow, user=user, groups=groups)


def own_key_lists_its_log(stack: Stack, tenant: Tenant) -> str:
    """The tenant's own key lists its own decision log (the key the admitted Workflow takes works):
    with broken credentials the control is ERROR, as every surface's is, never a pass."""
    from components.platform.buckets import DECISIONS
    from mlops.isolation.scene import s3_client

    listed = s3_client(stack, tenant).list_objects_v2(Bucket=DECISIONS, Prefix=f"{tenant.name}/", MaxKeys=1)
    return f"its own key listed s3://{DECISIONS}/{tenant.name}/ ({listed.get('KeyCount', 0)} key(s) on the first page)"


def submits_with_its_own_key(stack: Stack, tenant: Tenant) -> str:
    """Positive control: the Workflow with the tenant's own S3 key is admitted, and that key works."""
    from components.config import ClusterSettings

    own = str(ClusterSettings.model_fields["s3_credentials_secret"].default)
    refused = _submit(tenant, member_workflow(tenant, own))
    if refused:
        raise RuntimeError(f"admission refused the member's Workflow with its own key: {refused}")
    return f"a member's Workflow with the tenant's own S3 key is admitted; {own_key_lists_its_log(stack, tenant)}"


def _with_writer(scene: Scene, *, mounted: bool) -> str:
    from components.steps.serving_decisions import DECISIONS_CREDENTIALS_SECRET

    refused = _submit(scene.attacker, member_workflow(scene.attacker, DECISIONS_CREDENTIALS_SECRET, mounted=mounted))
    if refused:
        raise Denied(refused[0])
    how = "mounted" if mounted else "as AWS_*"
    return f"admission let a member's Workflow load {DECISIONS_CREDENTIALS_SECRET} ({how}): it may overwrite decisions"


def takes_the_writer_secret(scene: Scene) -> str:
    return _with_writer(scene, mounted=False)


def mounts_the_writer_secret(scene: Scene) -> str:
    return _with_writer(scene, mounted=True)


OWN = (("own: member Workflow with its own S3 key admitted", submits_with_its_own_key),)
PROBES = (
    ("member Workflow takes the writer Secret as AWS_*", takes_the_writer_secret),
    ("member Workflow mounts the writer Secret", mounts_the_writer_secret),
)
