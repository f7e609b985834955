"""The kinds whose objects carry pod specs, as Gatekeeper's workload policies match them.

One list for the policies' lib/workloads.rego locations (mlops/admission.py copies it into every
workload Constraint's `match.kinds`) and for the Constraints rendered from the tenant declaration
(pipelines/tenancy.py), kept in the pipelines layer so both can import it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["WORKLOAD_KINDS"]

WORKLOAD_KINDS: list[dict[str, Any]] = [
    {"apiGroups": [""], "kinds": ["Pod"]},
    {"apiGroups": ["apps"], "kinds": ["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"]},
    {"apiGroups": ["batch"], "kinds": ["Job", "CronJob"]},
    {
        "apiGroups": ["argoproj.io"],
        "kinds": ["Workflow", "WorkflowTemplate", "ClusterWorkflowTemplate", "CronWorkflow"],
    },
    {"apiGroups": ["serving.kserve.io"], "kinds": ["InferenceService"]},
    {"apiGroups": ["trainer.kubeflow.org"], "kinds": ["TrainJob", "TrainingRuntime", "ClusterTrainingRuntime"]},
    {"apiGroups": ["jobset.x-k8s.io"], "kinds": ["JobSet"]},
    {"apiGroups": ["kubeflow.org"], "kinds": ["Experiment", "Trial"]},
    {"apiGroups": ["ray.io"], "kinds": ["RayJob", "RayCluster"]},
]
"""Every kind lib.workloads reads pod specs out of; a workload policy's Constraint matches all of them."""
