"""A stand-in for the Kubernetes API server while KubeRay runs a RayJob (no cluster runs here).

The RayJob is admitted as the API server admits a custom object (tests/kubernetes_api_stand_in.py:
`admit`, held to KubeRay's CRD through `mlops lint`'s strict checker: an undeclared field is a 400
under strict field validation, a bad value a 422). Then, read by read, its status moves as KubeRay's
operator moves it: none (not reconciled yet), Initializing (the RayCluster coming up), Running (here
`run_driver(job)` runs the job's driver to the end and says whether it succeeded), then Complete
with jobStatus SUCCEEDED or FAILED, as KubeRay reports a job whose driver exited. Each status is
held to the CRD's status schema too.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from mlops import lint
from tests.kubernetes_api_stand_in import Refused, admit

__all__ = ["KubeRayStandIn"]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class KubeRayStandIn:
    """create/get of rayjobs.ray.io/v1 as the API server answers them while KubeRay runs the job."""

    def __init__(self, run_driver: Callable[[dict[str, Any]], bool]) -> None:
        self.run_driver = run_driver
        self.jobs: dict[str, dict[str, Any]] = {}
        self.seen: dict[str, list[str]] = {}
        """Per job, the jobDeploymentStatus each read returned (none before the first reconcile)."""

    def create_namespaced_custom_object(
        self, group: str, version: str, namespace: str, plural: str, body: dict[str, Any], **options: Any
    ) -> dict[str, Any]:
        from kubernetes.client.exceptions import ApiException

        assert (group, version, plural) == ("ray.io", "v1", "rayjobs")
        try:
            job, _ = admit(body, options.get("field_validation"))
        except Refused as refused:
            error = ApiException(status=refused.code, reason=refused.reason)
            error.body = json.dumps(refused.status())
            raise error from refused
        meta = job["metadata"]
        meta["name"] = meta.get("name") or meta.pop("generateName") + "q7m4d"
        meta.pop("generateName", None)
        meta["namespace"] = namespace
        self.jobs[meta["name"]], self.seen[meta["name"]] = job, []
        return json.loads(json.dumps(job))

    def get_namespaced_custom_object(
        self, group: str, version: str, namespace: str, plural: str, name: str, **options: Any
    ) -> dict[str, Any]:
        job, seen = self.jobs[name], self.seen[name]
        cluster = f"{name}-c8r2q"
        if not seen:
            seen.append("none")
        elif seen[-1] == "none":
            job["status"] = {"jobDeploymentStatus": "Initializing", "rayClusterName": cluster, "startTime": _now()}
            seen.append("Initializing")
        elif seen[-1] == "Initializing":
            job["status"] = {**job["status"], "jobDeploymentStatus": "Running", "jobStatus": "RUNNING",
                             "jobId": f"{name}-x9z2k"}  # fmt: skip
            succeeded = self.run_driver(job)
            job["status"]["outcome"] = succeeded  # kept aside below, never returned
            seen.append("Running")
        elif seen[-1] == "Running":
            succeeded = job["status"].pop("outcome")
            ended = {"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED" if succeeded else "FAILED"}
            failed = {} if succeeded else {"message": "Job entrypoint command failed with exit code 1"}
            job["status"] = {**job["status"], **ended, "endTime": _now(), **failed}
            seen.append("Complete")
        else:
            seen.append(seen[-1])
        shown = json.loads(json.dumps(job))
        shown.get("status", {}).pop("outcome", None)
        problem = lint.schema_problem(shown, lint.crd_schema(shown["apiVersion"], shown["kind"]))
        assert problem is None, f"the stand-in's own status breaks the CRD: {problem}"
        return shown
