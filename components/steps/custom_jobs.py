"""Creating a job custom resource from a step's pod: the TrainJob train launches and the RayJob
materialize launches under `engine: ray`.

Both steps create their job the same way, so the rules live here once: the namespace is the
manifest's or the pod's own (the service account's namespace file); the object is created with
strict field validation, so a field the CRD does not declare is refused instead of pruned without
a word (a misspelt setting would silently run with the controller's default); a 4xx other than
429 is a permanent error carrying the step's fix, anything else transient.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components.errors import ComponentError, TransientError

if TYPE_CHECKING:
    from kubernetes.client import CustomObjectsApi

__all__ = ["NAMESPACE_FILE", "Resource", "api", "create", "namespace"]

NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


@dataclass(frozen=True)
class Resource:
    """A custom resource's coordinates, and the words an error uses for it."""

    group: str
    version: str
    plural: str
    kind: str
    step: str
    """The step that launches it (the errors' step)."""
    fix: str
    """What to check when the API server refuses the object outright."""


def namespace(job: dict[str, Any], resource: Resource) -> str:
    """The manifest's namespace, else the pod's own."""
    given = job.get("metadata", {}).get("namespace")
    if given:
        return str(given)
    if NAMESPACE_FILE.exists():
        return NAMESPACE_FILE.read_text().strip()
    raise ComponentError(
        resource.step, f"no namespace for the {resource.kind}", "run the step in a pod, or set the manifest's namespace"
    )


def api() -> CustomObjectsApi:
    """The in-cluster client, as the pod's service account."""
    from kubernetes import client, config

    config.load_incluster_config()
    return client.CustomObjectsApi()


def create(client: Any, resource: Resource, namespace: str, job: dict[str, Any]) -> dict[str, Any]:
    """Create it with strict field validation; the API server's refusal is classed and explained."""
    from kubernetes.client.exceptions import ApiException

    try:
        created: dict[str, Any] = client.create_namespaced_custom_object(
            resource.group, resource.version, namespace, resource.plural, job, field_validation="Strict"
        )
    except ApiException as error:
        try:
            message = json.loads(error.body).get("message") or error.body
        except (TypeError, ValueError, AttributeError):
            message = error.body
        problem = f"the API server refused the {resource.kind} ({error.status} {error.reason}): {message}"
        if error.status is not None and 400 <= error.status < 500 and error.status != 429:
            raise ComponentError(resource.step, problem, resource.fix) from error
        raise TransientError(resource.step, problem, "retry: the API server was unavailable or throttled") from error
    return created
