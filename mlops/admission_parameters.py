"""The parameters of the Constraints whose facts live elsewhere, rendered from where they live.

`make golden` (python -m mlops.admission) writes them into manifests/policies, and a test fails
when a committed Constraint drifts from them, so each fact has one source:

- serving-labels-from-serving-controllers-only: the labels the network trusts as a serving pod's.
  The serving pods the required flows name (manifests/base/network/required-flows.yaml: the
  endpoints labelled in KServe's domain, `component: predictor` and `component: transformer`), and
  the pod labels the tenant NetworkPolicies (manifests/tenants/network, which the shared pipelines
  namespace reuses) trust to reach or be reached by the serving proxies (a policy with a peer in a
  serving system namespace, and the same-namespace peers of the pods it selects). A label key with
  a domain reserves its whole domain (`serving.kserve.io/`), as do KServe's and Knative's own.
- trainjobs-on-platform-runtimes: the ClusterTrainingRuntimes the platform renders
  (pipelines/trainer.py, manifests/base/trainer/training-runtimes.yaml).
- tenant-network-objects-as-promote-renders: the shape components/steps/serving_authorization.py
  renders (its label, name suffix, policy types, ports, action, read off a rendered pair), the
  names of the policies the platform ships in the tenant namespaces (manifests/tenants), and the
  tenant namespaces (manifests/tenants/tenants.yaml).
- workflow-metrics-label-their-own-namespace: the metric labels the owners' routes match on
  (pipelines/alerting.py) that the platform's own run counter fills from the workflow itself
  (pipelines/argo_metrics.py: `namespace: {{workflow.namespace}}`), each with that one value.
- production-promotion-evidence: its `appliers`, the identities that apply a recorded sign-off
  (components/steps/promote_identity.py APPLIERS, which `mlops promote` checks the kubeconfig against),
  and `servedBytes`, the predictor's variable and the annotation promote renders the artifact's sha256
  into (components/serving/served_bytes.py); its thresholds are the policy's own.
- protected-service-accounts-run-only-by-the-platform: the ServiceAccounts only the platform runs as
  (promote_identity.ANALYST_SERVICE_ACCOUNT, which the promotion guard trusts as an applier) and who
  installs what runs as them: PLATFORM_DEPLOYERS, the GitOps agents of promote_identity, and Argo's
  workflow controller (ARGO_CONTROLLER), which makes each CronWorkflow run's Workflow and pods.
- decisions-writer-secret-only-in-the-transformer: the decisions writer's Secret
  (serving_decisions.DECISIONS_CREDENTIALS_SECRET) and its variables (S3_KEYS), the command and image
  repositories of the transformer promote renders (promote.render_transformer, for each reference
  pipeline), and the installers of protected-service-accounts.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml

from components.steps.promote_identity import ANALYST_SERVICE_ACCOUNT, FLUX_APPLIER, GITOPS_APPLIER
from mlops.admission import write_back
from pipelines.argo_settings import ARGO_NAMESPACE

__all__ = [
    "ARGO_CONTROLLER",
    "ARGO_CONTROLLER_SERVICE_ACCOUNT",
    "GENERATED",
    "MANIFESTS",
    "NEVER_MATCHED_NAMESPACES",
    "PLATFORM_DEPLOYERS",
    "PROTECTED_SERVICE_ACCOUNTS",
    "REQUIRED_FLOWS",
    "SERVING_LABEL_DOMAINS",
    "SERVING_SYSTEM_NAMESPACES",
    "TENANT_NETWORK_POLICIES",
    "decisions_writer_parameters",
    "protected_service_account_parameters",
    "serving_endpoints",
    "serving_labels",
    "serving_labels_parameters",
    "sync_parameters",
    "tenant_network_parameters",
    "trainjob_parameters",
    "workflow_metric_label_parameters",
]

MANIFESTS = Path(__file__).resolve().parents[1] / "manifests"
TENANT_NETWORK_POLICIES = MANIFESTS / "tenants" / "network" / "network-policies.yaml"
REQUIRED_FLOWS = MANIFESTS / "base" / "network" / "required-flows.yaml"

SERVING_SYSTEM_NAMESPACES = ("knative-serving", "istio-system", "kserve")
"""Where the serving controllers and proxies run: their own pods carry Knative's and KServe's labels
(so the serving-labels Constraint leaves these namespaces out), and a tenant NetworkPolicy with a
peer here is a serving path."""

SERVING_LABEL_DOMAINS = ("serving.kserve.io/", "serving.knative.dev/")
"""The label domains KServe and Knative set on the pods they make for an InferenceService."""

NEVER_MATCHED_NAMESPACES = ("kube-system", "gatekeeper-system")


def _peers(policy: dict[str, Any]) -> list[dict[str, Any]]:
    spec = policy.get("spec", {})
    rules = [*spec.get("ingress", []), *spec.get("egress", [])]
    return [peer for rule in rules for peer in [*rule.get("from", []), *rule.get("to", [])]]


def _in_serving_namespace(peer: dict[str, Any]) -> bool:
    names = peer.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")
    return names in SERVING_SYSTEM_NAMESPACES


def _selector_labels(selector: dict[str, Any]) -> list[tuple[str, str | None]]:
    """(key, value) the selector requires; value None for a key it requires with any value (Exists)."""
    found: list[tuple[str, str | None]] = [(k, str(v)) for k, v in selector.get("matchLabels", {}).items()]
    for expression in selector.get("matchExpressions", []):
        if expression.get("operator") == "In":
            found += [(expression["key"], str(v)) for v in expression.get("values", [])]
        elif expression.get("operator") == "Exists":
            found.append((expression["key"], None))
    return found


def serving_labels(policies: Iterable[dict[str, Any]]) -> list[tuple[str, str | None]]:
    """The labels the NetworkPolicies trust as serving pods', as (key, value or None for any)."""
    policies = [p for p in policies if p and p.get("kind") == "NetworkPolicy"]
    serving = [p for p in policies if any(_in_serving_namespace(peer) for peer in _peers(p))]
    found = {label for p in serving for label in _selector_labels(p["spec"].get("podSelector", {}))}
    while True:  # same-namespace peers of a serving pod's policy, and what their policies trust back
        more = {
            label
            for p in policies
            if set(_selector_labels(p["spec"].get("podSelector", {}))) & found
            for peer in _peers(p)
            if "podSelector" in peer and "namespaceSelector" not in peer
            for label in _selector_labels(peer["podSelector"])
        }
        if more <= found:
            return sorted(found, key=lambda label: (label[0], label[1] or ""))
        found |= more


def serving_endpoints(required_flows: dict[str, Any]) -> list[tuple[str, str | None]]:
    """The labels of the serving pods the required flows name (an endpoint labelled in KServe's or
    Knative's domain: the predictor, the transformer), as (key, value or None for `any`)."""
    found = set()
    for endpoint in required_flows.get("endpoints", {}).values():
        labels = endpoint.get("labels", {})
        if any(str(key).startswith(SERVING_LABEL_DOMAINS) for key in labels):
            found |= {(str(k), None if v == "any" else str(v)) for k, v in labels.items()}
    return sorted(found, key=lambda label: (label[0], label[1] or ""))


def serving_labels_parameters(
    network_policies: Path = TENANT_NETWORK_POLICIES, required_flows: Path = REQUIRED_FLOWS
) -> dict[str, Any]:
    """The K8sServingLabels Constraint's parameters: exact labels, whole keys and label domains."""
    labels = serving_labels(d for d in yaml.safe_load_all(network_policies.read_text()) if d)
    labels += serving_endpoints(yaml.safe_load(required_flows.read_text()))
    keys = sorted({key for key, value in labels if value is None})
    domains = {key.split("/", 1)[0] + "/" for key, _ in labels if "/" in key}
    values: dict[str, list[str]] = {}
    for key, value in labels:
        if value is not None and key not in keys and not any(key.startswith(d) for d in domains):
            values.setdefault(key, []).append(value)
    return {
        "labels": [{"key": key, "values": sorted(set(v))} for key, v in sorted(values.items())],
        "keys": [key for key in keys if not any(key.startswith(d) for d in domains)],
        "domains": sorted(domains | set(SERVING_LABEL_DOMAINS)),
    }


def trainjob_parameters() -> dict[str, Any]:
    """The K8sTrainJobRuntime Constraint's parameters: the platform's runtimes, as rendered."""
    from pipelines.standard import IMAGE
    from pipelines.trainer import RUNTIMES, cluster_training_runtime

    rendered = [cluster_training_runtime(runtime, IMAGE) for runtime in RUNTIMES]
    return {
        "runtimes": [
            {"apiGroup": r["apiVersion"].split("/", 1)[0], "kind": r["kind"], "name": r["metadata"]["name"]}
            for r in rendered
        ],
        # what a TrainJob's runtimePatches may set on the runtime's pods: its containers' env
        "patchablePodFields": ["containers", "initContainers"],
        "patchableContainerFields": ["env", "name"],
    }


PLATFORM_DEPLOYERS: dict[str, list[str]] = {
    "users": [],
    "groups": ["system:masters", "kubeadm:cluster-admins"],
}
"""Who applies manifests/ (docs/install.md: `kubectl apply --server-side -k` with cluster-admin
credentials, kubeadm's groups): the requesters the tenant-network-objects Constraint leaves alone.
Change it to your cluster's. Never a GitOps controller that also syncs a tenant's `mlops promote
--out` folder (it would carry the tenant's objects past the Constraint): give each tenant's
Argo CD Application its own identity (Argo CD's sync impersonation) or name a controller that
applies only the platform."""


def tenant_network_parameters(manifests: Path = MANIFESTS) -> dict[str, Any]:
    """The K8sTenantNetworkObjects Constraint's parameters, read off the pair promote renders."""
    from components.config import PromoteSettings
    from components.steps.serving_authorization import (
        NAMESPACE_NAME,
        metrics_scrape_rule,
        render_authorization_policy,
        render_network_policy,
    )

    service = {"metadata": {"name": "model", "namespace": "tenant"}}
    settings = PromoteSettings(namespace="tenant")
    network = render_network_policy(service, settings)
    authorization = render_authorization_policy(service, settings)
    (label,) = network["spec"]["podSelector"]["matchLabels"]
    shipped = {
        str(d["metadata"]["name"])
        for path in sorted((manifests / "tenants").rglob("*.yaml"))
        for d in yaml.safe_load_all(path.read_text())
        if isinstance(d, dict) and d.get("kind") in ("NetworkPolicy", "AuthorizationPolicy")
    }
    return {
        "deployers": PLATFORM_DEPLOYERS,
        "inferenceServiceLabel": label,
        "nameSuffix": network["metadata"]["name"].removeprefix("model"),
        "namespaceLabel": NAMESPACE_NAME,
        "policyTypes": network["spec"]["policyTypes"],
        "ports": sorted({p["port"] for rule in network["spec"]["ingress"] for p in rule["ports"]}),
        "action": authorization["spec"]["action"],
        # the one rule promote renders naming no namespace or principal: Prometheus's GET /metrics, exactly
        "openRules": [metrics_scrape_rule()],
        "shippedNames": sorted(shipped),
    }


ARGO_CONTROLLER_SERVICE_ACCOUNT = "argo"
ARGO_CONTROLLER = f"system:serviceaccount:{ARGO_NAMESPACE}:{ARGO_CONTROLLER_SERVICE_ACCOUNT}"
"""Who Argo's workflow controller is to the API server: the ServiceAccount its Deployment runs as in
Argo's release manifests (install.yaml: `argo`), in the namespace whose workflow-controller-configmap
the platform sets (pipelines/argo_settings.py). It creates each CronWorkflow run's Workflow and every
workflow pod. Installed with Argo's Helm chart it is `<release>-argo-workflows-workflow-controller`:
name that here."""

PROTECTED_SERVICE_ACCOUNTS = (ANALYST_SERVICE_ACCOUNT,)
"""The ServiceAccounts of a tenant namespace that only the platform's own workloads run as: the canary
analysis applies production services with a sign-off it did not make (promote_identity.APPLIERS)."""


def protected_service_account_parameters() -> dict[str, Any]:
    """The K8sProtectedServiceAccounts Constraint's parameters: the protected names, the pod names
    (`app.kubernetes.io/name`) a platform NetworkPolicy selects (the canary analysis's way to Prometheus,
    pipelines/canary_cron.py), and who may install a workload that runs as or carries one (the
    deployers, the GitOps agents, Argo's controller)."""
    from pipelines.canary_cron import ANALYSIS_NAME

    return {
        "serviceAccounts": list(PROTECTED_SERVICE_ACCOUNTS),
        "podNames": [ANALYSIS_NAME],
        "installers": {
            "users": [*PLATFORM_DEPLOYERS["users"], GITOPS_APPLIER, FLUX_APPLIER, ARGO_CONTROLLER],
            "groups": list(PLATFORM_DEPLOYERS["groups"]),
        },
    }


def _repository(image: str) -> str:
    """An image reference without its tag or digest."""
    name = image.split("@", 1)[0]
    head, _, last = name.rpartition("/")
    return f"{head}/{last.split(':', 1)[0]}" if head else last.split(":", 1)[0]


def decisions_writer_parameters() -> dict[str, Any]:
    """The K8sDecisionsWriterSecret Constraint's parameters: the writer's Secret and the variables that
    take its keys, the tenant's own key (a pipeline's default `cluster.s3_credentials_secret`, named in the
    refusal), the transformer container promote renders for each reference pipeline (its
    command, its image's repository), and who installs the platform (protected_service_account_parameters)."""
    from components.config import ClusterSettings, transformer_settings
    from components.steps.promote import render_transformer
    from components.steps.serving_decisions import DECISIONS_CREDENTIALS_SECRET, S3_KEYS
    from pipelines.golden import reference_pipelines
    from pipelines.local import declaration

    containers = []
    for name in reference_pipelines():
        pipeline = declaration(name)
        cfg = pipeline.config()
        rendered = render_transformer(name, transformer_settings(cfg, pipeline.spec.image), cfg.promote)
        containers.extend(rendered["containers"])
    commands: list[list[str]] = []
    for container in containers:
        if container["command"] not in commands:
            commands.append(list(container["command"]))
    return {
        "writerSecret": DECISIONS_CREDENTIALS_SECRET,
        "tenantKey": str(ClusterSettings.model_fields["s3_credentials_secret"].default),  # the hint: what to use
        "variables": dict(S3_KEYS),
        "transformer": {
            "commands": commands,
            "repositories": sorted({_repository(str(container["image"])) for container in containers}),
        },
        "installers": protected_service_account_parameters()["installers"],
    }


def workflow_metric_label_parameters() -> dict[str, Any]:
    """The K8sWorkflowMetricLabels Constraint's parameters: each label of the rendered run counter
    that the owners' routes match on and whose value Argo fills from the workflow (`{{workflow.`),
    with that value; any other value would let an author route an alert to another namespace."""
    from hera.workflows import Label

    from pipelines.alerting import OwnerRoute
    from pipelines.argo_metrics import run_failed_metric

    routed = OwnerRoute(pipeline="p", owner="o", namespace="n").matchers
    labels = [label for label in run_failed_metric("p").labels or [] if isinstance(label, Label)]
    return {
        "reservedLabels": [
            {"key": label.key, "value": label.value}
            for label in labels
            if label.key in routed and label.value.startswith("{{workflow.")
        ]
    }


def _never_matched_namespaces() -> list[str]:
    return list(NEVER_MATCHED_NAMESPACES)


def _tenant_namespaces() -> list[str]:
    from pipelines.tenancy import load

    return load(MANIFESTS).names


def _promotion_appliers() -> list[str]:
    from components.steps.promote_identity import promotion_appliers

    return promotion_appliers()


def _served_bytes() -> dict[str, Any]:
    """The predictor's variable and the annotation promote renders the artifact's sha256 into, the
    runtimes whose command checks the bytes, and the model fields promote renders."""
    from components.serving.served_bytes import ARTIFACT_SHA256_ANNOTATION, EXPECTED_SHA256_ENV, PREDICTOR_MODEL_FIELDS
    from components.steps.promote import SERVING_RUNTIMES

    return {
        "env": EXPECTED_SHA256_ENV,
        "annotation": ARTIFACT_SHA256_ANNOTATION,
        "runtimes": sorted(SERVING_RUNTIMES),
        "modelFields": list(PREDICTOR_MODEL_FIELDS),
        "transformer": {**decisions_writer_parameters()["transformer"], **_transformer_pins()},
    }


def _one(values: set[str], what: str) -> str:
    """The one value every rendering agrees on; a second one is a rendering the pins cannot describe."""
    if len(values) != 1:
        raise ValueError(f"promote renders more than one {what}: {sorted(values)}")
    return next(iter(values))


def _transformer_pins() -> dict[str, Any]:
    """What promote's scoring transformer may carry, from what it renders for every reference
    pipeline, serving role and deployment mode: the component's and the container's fields, the
    flags of its args (KServe gives --model_name, --predictor_host and --http_port only where the
    args do not), its envFrom, each variable as rendered (the decision log's URI and role, the
    keys it reads with) and the lists in promote's order (a `$(VAR)` expands only a variable
    defined before it), the serving roles (champion, canary) and the container's name."""
    from typing import get_args

    from components.config import PromoteSettings, transformer_settings
    from components.serving.decision_record import ROLE_VARIABLE, ROLES
    from components.steps.promote import SCORING_FLAG, render_transformer
    from pipelines.golden import reference_pipelines
    from pipelines.local import declaration

    modes = get_args(PromoteSettings.model_fields["deployment_mode"].annotation)
    rendered = []
    for name in reference_pipelines():
        pipeline = declaration(name)
        cfg = pipeline.config()
        settings = transformer_settings(cfg, pipeline.spec.image)
        for mode in modes:
            promote = cfg.promote.model_copy(update={"deployment_mode": mode})
            rendered += [render_transformer(name, settings, promote, role) for role in ROLES]
    if any(len(component["containers"]) != 1 for component in rendered):
        raise ValueError("promote's transformer is one container; the pins say exactly one")
    containers = [container for component in rendered for container in component["containers"]]
    env: dict[str, list[dict[str, Any]]] = {}
    for container in containers:
        for entry in container["env"]:
            if entry not in env.setdefault(entry["name"], []):
                env[entry["name"]].append(entry)
    env_lists: list[list[dict[str, Any]]] = []
    for container in containers:
        if container["env"] not in env_lists:
            env_lists.append(container["env"])
    env_from: list[list[dict[str, Any]]] = []
    for container in containers:
        if container["envFrom"] not in env_from:
            env_from.append(container["envFrom"])
    return {
        "fields": sorted({field for component in rendered for field in component}),
        "containerFields": sorted({field for container in containers for field in container}),
        "flags": sorted({arg.split("=", 1)[0] for container in containers for arg in container["args"]}),
        "envFrom": env_from,
        "env": env,
        "envLists": env_lists,
        "roles": list(ROLES),
        "roleVariable": _one({e["name"] for e in env.get(ROLE_VARIABLE, [])}, "serving role variable"),
        "containerName": _one({container["name"] for container in containers}, "transformer container name"),
        **_decision_log_switch(containers, SCORING_FLAG),
    }


def _decision_log_switch(containers: list[dict[str, Any]], flag: str) -> dict[str, Any]:
    """Where a production transformer's decision log is switched on: the flag that carries the scoring
    section and the switch's path in it (ScoringSettings' decision_log, DecisionLogSettings' enabled).
    The guard wants the switch said, true: each rendering carries the flag once, with the switch."""
    from components.config import ScoringSettings

    switch = ["decision_log", "enabled"]
    section = ScoringSettings.model_fields[switch[0]].default  # a KeyError is a rename: fix `switch`
    getattr(section, switch[1])  # an AttributeError is a rename: fix `switch`
    for container in containers:
        values = [arg.partition("=")[2] for arg in container["args"] if arg.partition("=")[0] == flag]
        if len(values) != 1 or not isinstance(json.loads(values[0]).get(switch[0], {}).get(switch[1]), bool):
            raise ValueError(f"promote renders {flag} without the decision log's switch {'.'.join(switch)}")
    return {"scoringFlag": flag, "decisionLogSwitch": switch}


def _excluded_serving_namespaces() -> list[str]:
    return [*NEVER_MATCHED_NAMESPACES, *SERVING_SYSTEM_NAMESPACES]


GENERATED: dict[str, dict[str, Callable[[], Any]]] = {
    "serving-labels-from-serving-controllers-only": {
        "parameters": serving_labels_parameters,
        "excludedNamespaces": _excluded_serving_namespaces,
    },
    "trainjobs-on-platform-runtimes": {"parameters": trainjob_parameters},
    "tenant-network-objects-as-promote-renders": {
        "parameters": tenant_network_parameters,
        "namespaces": _tenant_namespaces,
    },
    "workflow-metrics-label-their-own-namespace": {
        "parameters": workflow_metric_label_parameters,
        "excludedNamespaces": _never_matched_namespaces,
    },
    "production-promotion-evidence": {
        "parameters.appliers": _promotion_appliers,
        "parameters.servedBytes": _served_bytes,
    },
    "protected-service-accounts-run-only-by-the-platform": {
        "parameters": protected_service_account_parameters,
        "excludedNamespaces": _never_matched_namespaces,
    },
    "decisions-writer-secret-only-in-the-transformer": {
        "parameters": decisions_writer_parameters,
        "excludedNamespaces": _never_matched_namespaces,
    },
}
"""Each generated Constraint (by name): its spec fields (`parameters`, one parameter as
`parameters.<name>`, or a `match` field) and what renders them."""


def sync_parameters(directory: Path, *, write: bool = True) -> list[Path]:
    """Bring each generated Constraint's fields in step with their sources; the files that were out
    of date (with write=False only reported: the golden test)."""
    import json

    def update(document: Any) -> bool:
        if not str(document.get("apiVersion", "")).startswith("constraints.gatekeeper.sh/"):
            return False
        changed = False
        for name, render in GENERATED.get(str(document.get("metadata", {}).get("name", "")), {}).items():
            section, _, field = name.rpartition(".")
            parent = document["spec"] if name == "parameters" else document["spec"].setdefault(section or "match", {})
            wanted = render()
            if json.loads(json.dumps(parent.get(field))) != wanted:
                parent[field] = wanted
                changed = True
        return changed

    return write_back(directory, update, write=write)
