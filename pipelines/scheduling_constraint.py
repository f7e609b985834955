"""The restricted-scheduling Constraint: who may use the production PriorityClass and the GPU nodes.

Rendered by `make golden` from the tenant declaration (pipelines/tenancy.py's `tenant_manifests`)
into manifests/policies/restricted-scheduling-constraint.yaml; its ConstraintTemplate is
manifests/policies/restricted-scheduling.yaml. The namespaces its rows name outright are reserved:
no tenant may take them (pipelines/tenancy.py's `platform_namespaces`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from pipelines.workload_kinds import WORKLOAD_KINDS

if TYPE_CHECKING:
    from pipelines.tenancy import Tenant

__all__ = [
    "CONSTRAINT_FILE",
    "SCHEDULING_PRIORITY_CLASSES",
    "SCHEDULING_TOLERATIONS",
    "restricted_scheduling_constraint",
]

CONSTRAINT_FILE = "restricted-scheduling-constraint.yaml"  # manifests/policies/, rendered from the declaration

# The Constraint's rows: who may use the production PriorityClass and the GPU taints, and on which
# kinds. "{tenants}" stands for every declared tenant, "{gpu-tenants}" for those with gpu: true.
SCHEDULING_PRIORITY_CLASSES: tuple[dict[str, Any], ...] = (
    {"name": "production-inference", "namespaces": ["{tenants}", "mlops-serving"], "kinds": ["InferenceService"]},
)
SCHEDULING_TOLERATIONS: tuple[dict[str, Any], ...] = (
    {
        "key": "nvidia.com/gpu",
        "namespaces": ["{gpu-tenants}", "mlops-pipelines"],
        "kinds": ["Workflow", "WorkflowTemplate", "CronWorkflow", "Job", "CronJob", "Pod"],
    },
    {"key": "kserve-gpu", "namespaces": ["{gpu-tenants}", "mlops-serving"], "kinds": ["InferenceService"]},
)


def restricted_scheduling_constraint(tenants: Iterable[Tenant]) -> dict[str, Any]:
    """The K8sRestrictedScheduling Constraint (its template: manifests/policies/restricted-scheduling.yaml)."""

    declared = list(tenants)
    groups = {"{tenants}": [t.name for t in declared], "{gpu-tenants}": [t.name for t in declared if t.gpu]}

    def rows(template: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            {**row, "namespaces": [n for name in row["namespaces"] for n in groups.get(name, [name])]}
            for row in template
        ]

    return {
        "apiVersion": "constraints.gatekeeper.sh/v1beta1",
        "kind": "K8sRestrictedScheduling",
        "metadata": {"name": "restricted-priority-and-gpu-nodes"},
        "spec": {
            "enforcementAction": "deny",
            "parameters": {
                "priorityClasses": rows(SCHEDULING_PRIORITY_CLASSES),
                "tolerations": rows(SCHEDULING_TOLERATIONS),
            },
            # every kind lib.workloads reads pod specs out of (mlops/admission.py keeps the match in step)
            "match": {"kinds": WORKLOAD_KINDS},
        },
    }
