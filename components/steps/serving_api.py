"""The Kubernetes API coordinates of what promote applies: group, version and plural of each kind.

One source for the client that applies them (mlops/kube.py) and for the Role that lets the tenant's
canary analysis apply them (pipelines/canary_cron.py): the InferenceService, and the Istio
AuthorizationPolicy and NetworkPolicy that say who may call it (components/steps/serving_authorization.py).
Also the one object the analysis reads outside its namespace: Gatekeeper's ValidatingWebhookConfiguration,
whose failure policy says whether a dry run the cluster admits proves anything (mlops/admission_control.py);
its ClusterRole names it, and nothing else, from here.
"""

from __future__ import annotations

__all__ = ["API", "AUTHORIZATION_KINDS", "GATEKEEPER_CONFIGURATION", "PLURALS", "WEBHOOK_CONFIGURATIONS"]

API: dict[str, tuple[str, str, str]] = {
    "InferenceService": ("serving.kserve.io", "v1beta1", "inferenceservices"),
    "AuthorizationPolicy": ("security.istio.io", "v1", "authorizationpolicies"),
    "NetworkPolicy": ("networking.k8s.io", "v1", "networkpolicies"),
}
"""kind: (API group, version, plural), for every kind promote applies."""
AUTHORIZATION_KINDS = ("AuthorizationPolicy", "NetworkPolicy")
"""What promote applies beside the InferenceService (serving_authorization.serving_objects)."""
PLURALS = {kind: plural for kind, (_, _, plural) in API.items()}

WEBHOOK_CONFIGURATIONS = ("admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations")
"""(API group, version, plural) of a ValidatingWebhookConfiguration (cluster-scoped)."""
GATEKEEPER_CONFIGURATION = "gatekeeper-validating-webhook-configuration"
"""The ValidatingWebhookConfiguration Gatekeeper's chart installs (gatekeeper-validating-webhook-configuration)."""
