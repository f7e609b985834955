"""The restricted Pod Security profile's fields, for the workloads the platform renders per tenant.

The platform's namespaces enforce Kubernetes' `restricted` Pod Security Standard, so each pod it
renders runs as a non-root user with the runtime's seccomp profile, and each container drops all
capabilities and cannot escalate. The tenant's pooler, Redis and Pushgateway wrote these fields
out each in their own copy; they take them from here. Each call returns new dictionaries: one
object shared by two places in a manifest would be dumped as a YAML anchor and alias.
"""

from __future__ import annotations

from typing import Any

__all__ = ["restricted_container", "restricted_pod"]


def restricted_pod(uid: int) -> dict[str, Any]:
    """A pod's securityContext: run as `uid` (its group owns the volumes), non-root, RuntimeDefault seccomp."""
    return {"runAsNonRoot": True, "runAsUser": uid, "fsGroup": uid, "seccompProfile": {"type": "RuntimeDefault"}}


def restricted_container(**extra: Any) -> dict[str, Any]:
    """A container's securityContext: no privilege escalation, no capabilities, non-root; `extra`
    adds fields after those (readOnlyRootFilesystem=True)."""
    return {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, **extra, "runAsNonRoot": True}
