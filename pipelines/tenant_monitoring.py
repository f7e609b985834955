"""Each pipelines namespace's own Pushgateway, and the scrape that makes its series unforgeable.

Issue 29: one Pushgateway in `mlops` took pushes from every tenant, Prometheus kept the pushed
labels (honor_labels) and the drift step put `namespace` in its grouping key, which the caller
chooses. A pricing pod could push `mlops_drift_share 1` for namespace fraud (ModelDriftDetected
paged fraud's owner), push 0 or DELETE fraud's group to hide real drift, or push `job` and
`namespace` labels that fed or masked platform alerts.

The choice: **each tenant pushes only to its own Pushgateway, in its own namespace**, rendered
here per tenant from manifests/tenants/tenants.yaml (and one for the shared mlops-pipelines
namespace), rather than an authenticating proxy in front of one shared gateway. Why:
- no new shared component on the alert path to write, run and keep patched: the Pushgateway is
  the stock one, and nothing that all tenants share stands between a push and its scrape;
- the NetworkPolicy rendered here admits only pods of the same namespace (serving pods aside)
  and Prometheus, so one tenant's pushes, DELETEs or a full disk (its own emptyDir) cannot touch
  another tenant's groups;
- the scrape takes `namespace` from where the target runs (honorLabels false, and a relabeling
  from `__meta_kubernetes_namespace`), so no label a tenant pushes can move an alert to another
  team: a pushed `namespace`, `job` or `instance` becomes `exported_*`, which is dropped;
- only the `mlops_*` families the platform defines are kept (components/steps/drift_metrics.py and
  components/steps/notify.py, the one source), so a push of `argo_workflows_*`, `kube_*` or
  `revision_request_*` cannot feed or mask CronWorkflowMissedSchedule, FeastMaterializationStale
  or KServeHighErrorRate.

A ServiceMonitor, not a PodMonitor: the scrape goes through the same Service (name and port from
pipelines.platform_services.pushgateway) that the ConfigMap's MLOPS_PUSHGATEWAY_URL names, so the
object pushed to and the object scraped are one, and its namespaceSelector pins the namespace.
Tenants' RBAC (manifests/tenants/base/tenant.yaml) creates no ServiceMonitors, Services or
NetworkPolicies, so a tenant cannot add a scrape with honorLabels of its own.

The relabel rules are in one place, `target_relabelings` and `metric_relabelings`, rendered for
the Prometheus Operator (camelCase) and for a plain Prometheus scrape config (snake_case, what
`prometheus_scrape_config` returns for the loopback stack of `mlops dev up --monitoring --tenancy`).

Issue 32: the same namespace's scoring transformers, scraped where they run (`transformer_scrape`).
Each transformer counts its decision-log records and spilled bytes on its own `/metrics`
(components/serving/decision_log.py, the one source of the two names), and DecisionLogDropping /
DecisionLogSpilling read them; before this nothing scraped a serving pod, so neither could fire.
Per namespace, beside its Pushgateway:
- a PodMonitor, not a ServiceMonitor: every transformer pod (canary and champion revisions alike)
  is its own target, and no Service of KServe's or Knative's is the scrape's to rely on. It selects
  KServe's labels on a transformer's pods, `serving.kserve.io/inferenceservice` (KServe's
  InferenceServicePodLabelKey) and `component: transformer` (KServiceComponentLabel, kserve
  pkg/constants/constants.go), and scrapes the container port Knative names `user-port` whatever
  the container declared (knative.dev/serving pkg/apis/serving/v1 UserPortName, DefaultUserPort
  8080; KServe starts the transformer with --http_port 8080, components/steps/serving_authorization.py
  TRANSFORMER_PORT). In the Standard modes (RawDeployment), where Knative names nothing, promote
  declares the transformer's port under that same name, so the one PodMonitor finds it in both; the
  Istio AuthorizationPolicy admits GET /metrics on that port (serving_authorization.metrics_scrape_rule);
- the same rules as the Pushgateway's: honorLabels false, `namespace` from where the pod runs,
  a fixed `job` (TRANSFORMER_SCRAPE_JOB, never SCRAPE_JOB, so the rules' `job!="mlops-pushgateway"`
  keeps these series), `inference_service` from the pod's KServe label (the rules aggregate by
  it), every `exported_*` dropped, and only the decision log's two families and the request log's
  per-version figures kept (the canary analysis's error rate and p99 read them: `--prometheus`); the
  transformer's other series (Python's, KServe's request histograms, by model only) would only cost
  series nothing reads. A pod of the tenant's labelled as a transformer can at most page
  or hush its own namespace's owner, as a push to its own Pushgateway can;
- a NetworkPolicy admitting Prometheus (PROMETHEUS, the same peer the Pushgateway's policy admits)
  to the transformer's port, and nobody else: the tenants' default deny stays for every other
  namespace (promote's `<name>-callers` policy admits the service's callers,
  components/steps/serving_authorization.py).
Not here: the Istio AuthorizationPolicy promote renders beside each InferenceService (ALLOW, so
it refuses any request no rule admits) has no rule for Prometheus's GET /metrics on the
transformer's port; until it has, the sidecar answers the scrape 403 (docs/monitoring.md).
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

from components.steps import drift_metrics, notify
from components.steps.serving_authorization import ISVC_LABEL, METRICS_PATH, TRANSFORMER_PORT, TRANSFORMER_PORT_NAME
from pipelines.cluster import MONITORING_NAMESPACE
from pipelines.platform_services import PUSHGATEWAY_NAME, PUSHGATEWAY_PORT, ServiceAddress, pushgateway
from pipelines.pod_security import restricted_container, restricted_pod

__all__ = [
    "DROPPED_LABELS",
    "IMAGE",
    "INFERENCE_SERVICE",
    "LABELS",
    "PROMETHEUS",
    "PROMETHEUS_PORT",
    "PROMETHEUS_URL",
    "PUSHGATEWAY_FILE",
    "SAMPLE_LIMIT",
    "SCRAPE_JOB",
    "SERVING_POD",
    "TRANSFORMER_MONITOR",
    "TRANSFORMER_MONITOR_LABELS",
    "TRANSFORMER_PORT_NAME",
    "TRANSFORMER_SAMPLE_LIMIT",
    "TRANSFORMER_SCRAPE_JOB",
    "TRANSFORMER_SELECTOR",
    "PodEndpoint",
    "Relabel",
    "metric_relabelings",
    "namespace_pushgateway",
    "prometheus_peer",
    "prometheus_scrape_config",
    "pushed_families",
    "scraped_decision_families",
    "service_monitor",
    "target_relabelings",
    "transformer_metrics_policy",
    "transformer_pod_monitor",
    "transformer_target_relabelings",
]

PUSHGATEWAY_FILE = "pushgateway.yaml"  # beside each tenant's kustomization, and in base/platform/
IMAGE = "registry.mlops.internal/mirror/prom/pushgateway:v1.11.1"
SCRAPE_JOB = "mlops-pushgateway"
"""The `job` of every series scraped from a namespace's Pushgateway; a pushed `job` becomes
`exported_job` and is dropped."""
LABELS = {"app.kubernetes.io/name": PUSHGATEWAY_NAME, "app.kubernetes.io/part-of": "private-mlops"}


@dataclass(frozen=True)
class PodEndpoint:
    namespace: str
    labels: dict[str, str]


PROMETHEUS = PodEndpoint(MONITORING_NAMESPACE, {"app.kubernetes.io/name": "prometheus"})
"""Who scrapes: the Prometheus Operator's Prometheus pods (it labels them app.kubernetes.io/name:
prometheus) in the cluster's monitoring namespace (pipelines.cluster.MONITORING_NAMESPACE);
manifests/base/network/required-flows.yaml's `prometheus` endpoint is held to this."""
PROMETHEUS_PORT = 9090
PROMETHEUS_URL = f"http://prometheus-operated.{MONITORING_NAMESPACE}.svc:{PROMETHEUS_PORT}"
"""Prometheus's query API in the cluster: the Service the Prometheus Operator makes for its Prometheus
pods (`prometheus-operated`, its web port 9090). The canary analysis's CronWorkflow reads each
version's error rate and p99 there (pipelines/canary_cron.py)."""
SERVING_POD = "serving.kserve.io/inferenceservice"
"""Serving pods push nothing (issue 29: least privilege); every other pod of the namespace may."""
SAMPLE_LIMIT = 20000
"""Series one namespace's scrape may return after the keep-list; past it the scrape fails, and only
that namespace's figures go stale (its own DriftMetricsMissing), never another's."""
DROPPED_LABELS = "exported_.+"
"""What honorLabels false makes of a pushed `namespace`, `job` or `instance`: dropped, so no rule
or route can match a label the pusher chose in place of the scrape's own."""


TRANSFORMER_SCRAPE_JOB = "mlops-transformer"
"""The `job` of every series scraped from a transformer pod: not SCRAPE_JOB, so the rules' selection
`job!="mlops-pushgateway"` keeps them, and a `job` the transformer exposes is dropped (exported_job)."""
TRANSFORMER_MONITOR = "transformer-decision-log"
TRANSFORMER_MONITOR_LABELS = {
    "app.kubernetes.io/name": TRANSFORMER_MONITOR,
    "app.kubernetes.io/part-of": "private-mlops",
}
TRANSFORMER_SELECTOR: dict[str, Any] = {
    "matchLabels": {"component": "transformer"},
    "matchExpressions": [{"key": ISVC_LABEL, "operator": "Exists"}],
}
"""KServe's labels on an InferenceService's transformer pods (module docstring)."""
TRANSFORMER_SAMPLE_LIMIT = 200
"""Series one transformer's scrape may return after the keep-list: the decision log's four (three
outcomes and the spill gauge), the request log's three outcomes, and per version it answered (one
for a revision's transformer; the champion's, the canary's and `unattributed` for a Standard-mode
one) three code classes and the latency histogram's 14 series (12 buckets, sum, count): 7 + 3 x 17 =
58 for three versions. Past it that pod's scrape fails, and only its own figures go stale."""
INFERENCE_SERVICE = "inference_service"
"""The label the decision-log rules aggregate by, from the pod's KServe label."""


def pushed_families() -> tuple[str, ...]:
    """Every metric family the platform pushes: the drift figures, the owner's notices and the
    realized metrics of late outcomes (components/platform/outcomes.py, ModelPerformanceDegraded)."""
    from components.platform import outcomes

    return tuple(sorted({*drift_metrics.METRICS, *notify.HELP, *outcomes.FAMILIES}))


def scraped_decision_families() -> tuple[str, ...]:
    """The series names the transformer scrape keeps: the decision log's counter (exposed with
    `_total`) and its spill gauge, named by components/serving/decision_log.py, and the per-version
    request counter and latency histogram, every series of components/serving/request_log.py's FAMILIES
    (imported here: they load pyarrow and register their collectors, which rendering needs neither of)."""
    from components.serving import decision_log, request_log

    return (f"{decision_log.RECORDS}_total", decision_log.SPILL_BYTES, *request_log.FAMILIES)


@dataclass(frozen=True, kw_only=True)
class Relabel:
    """One relabel rule, renderable for the Prometheus Operator and for a plain Prometheus."""

    action: str
    source_labels: tuple[str, ...] = ()
    target_label: str = ""
    regex: str = ""
    replacement: str = ""

    def _fields(self) -> list[tuple[str, str, Any]]:
        return [
            ("sourceLabels", "source_labels", list(self.source_labels) if self.source_labels else None),
            ("targetLabel", "target_label", self.target_label or None),
            ("regex", "regex", self.regex or None),
            ("replacement", "replacement", self.replacement or None),
            ("action", "action", self.action),
        ]

    def operator(self) -> dict[str, Any]:
        """As a ServiceMonitor's RelabelConfig."""
        return {camel: value for camel, _, value in self._fields() if value is not None}

    def prometheus(self) -> dict[str, Any]:
        """As a prometheus.yml relabel_configs / metric_relabel_configs entry."""
        return {snake: value for _, snake, value in self._fields() if value is not None}


def target_relabelings(job: str = SCRAPE_JOB) -> list[Relabel]:
    """Before the scrape: `namespace` is the target's own, `job` a fixed one (SCRAPE_JOB)."""
    return [
        Relabel(action="replace", source_labels=("__meta_kubernetes_namespace",), target_label="namespace"),
        Relabel(action="replace", target_label="job", replacement=job),
    ]


def transformer_target_relabelings() -> list[Relabel]:
    """The Pushgateway's target rules with the transformer's job, and `inference_service` from the
    pod's KServe label (Prometheus's `__meta_kubernetes_pod_label_<name>`, `.` and `/` made `_`)."""
    label = "__meta_kubernetes_pod_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", ISVC_LABEL)
    return [
        *target_relabelings(TRANSFORMER_SCRAPE_JOB),
        Relabel(action="replace", source_labels=(label,), target_label=INFERENCE_SERVICE),
    ]


def metric_relabelings(kept: tuple[str, ...] | None = None) -> list[Relabel]:
    """After the scrape: keep only the platform's families (`kept`, else every pushed one); drop
    every label honorLabels false renamed (exported_namespace, exported_job, exported_instance)."""
    families = "|".join(re.escape(name) for name in (pushed_families() if kept is None else kept))
    return [
        Relabel(action="keep", source_labels=("__name__",), regex=f"({families})"),
        Relabel(action="labeldrop", regex=DROPPED_LABELS),
    ]


def prometheus_scrape_config(namespace: str, target: str, **extra: Any) -> dict[str, Any]:
    """One namespace's Pushgateway as a plain Prometheus scrape job (the loopback stack): the same
    rules, with `namespace` set on the static target (no Kubernetes discovery there); `extra`
    (basic_auth, ...) is added as given."""
    return {
        "job_name": f"{SCRAPE_JOB}-{namespace}",
        "honor_labels": False,
        "follow_redirects": False,
        "static_configs": [{"targets": [target], "labels": {"namespace": namespace}}],
        "relabel_configs": [rule.prometheus() for rule in target_relabelings() if rule.target_label != "namespace"],
        "metric_relabel_configs": [rule.prometheus() for rule in metric_relabelings()],
        "sample_limit": SAMPLE_LIMIT,
        **extra,
    }


def _deployment(address: ServiceAddress) -> dict[str, Any]:
    probe = {"path": "/-/ready", "port": address.port}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": address.name, "namespace": address.namespace, "labels": dict(LABELS)},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app.kubernetes.io/name": address.name}},
            "template": {
                "metadata": {"labels": dict(LABELS)},
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": restricted_pod(65534),  # nobody
                    "containers": [
                        {
                            "name": "pushgateway",
                            "image": IMAGE,
                            # the groups survive a restart (else DriftMetricsMissing fires for every pipeline)
                            "args": ["--persistence.file=/data/pushgateway.db", "--persistence.interval=1m"],
                            "ports": [{"name": "http", "containerPort": address.port}],
                            "readinessProbe": {"httpGet": probe},
                            "livenessProbe": {"httpGet": {**probe, "path": "/-/healthy"}},
                            "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
                            "securityContext": restricted_container(readOnlyRootFilesystem=True),
                            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                        }
                    ],
                    "volumes": [{"name": "data", "emptyDir": {"sizeLimit": "256Mi"}}],
                },
            },
        },
    }


def prometheus_peer() -> dict[str, Any]:
    """Who scrapes, as a NetworkPolicy peer: PROMETHEUS's pods in its namespace."""
    return {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": PROMETHEUS.namespace}},
        "podSelector": {"matchLabels": dict(PROMETHEUS.labels)},
    }


def _network_policies(address: ServiceAddress) -> list[dict[str, Any]]:
    """In: the namespace's own non-serving pods and Prometheus; out: those pods to it."""
    pushers = {"podSelector": {"matchExpressions": [{"key": SERVING_POD, "operator": "DoesNotExist"}]}}
    port = [{"protocol": "TCP", "port": address.port}]
    prometheus = prometheus_peer()
    selector = {"matchLabels": {"app.kubernetes.io/name": address.name}}
    return [
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "pushgateway-from-own-namespace", "namespace": address.namespace},
            "spec": {
                "podSelector": selector,
                "policyTypes": ["Ingress", "Egress"],
                "ingress": [{"from": [pushers, prometheus], "ports": port}],
                "egress": [],
            },
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "allow-egress-to-own-pushgateway", "namespace": address.namespace},
            "spec": {
                "podSelector": pushers["podSelector"],
                "policyTypes": ["Egress"],
                "egress": [{"to": [{"podSelector": selector}], "ports": port}],
            },
        },
    ]


def service_monitor(address: ServiceAddress) -> dict[str, Any]:
    """The scrape of one namespace's Pushgateway, with the relabelings above."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": address.name, "namespace": address.namespace, "labels": dict(LABELS)},
        "spec": {
            "selector": {"matchLabels": {"app.kubernetes.io/name": address.name}},
            "namespaceSelector": {"matchNames": [address.namespace]},
            "sampleLimit": SAMPLE_LIMIT,
            "endpoints": [
                {
                    "port": "http",
                    "interval": "30s",
                    "honorLabels": False,
                    "followRedirects": False,  # a target's 3xx never turns the scrape onto another address
                    "relabelings": [rule.operator() for rule in target_relabelings()],
                    "metricRelabelings": [rule.operator() for rule in metric_relabelings()],
                }
            ],
        },
    }


def transformer_pod_monitor(namespace: str) -> dict[str, Any]:
    """The scrape of the namespace's transformer pods (module docstring: what, and why only that)."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PodMonitor",
        "metadata": {"name": TRANSFORMER_MONITOR, "namespace": namespace, "labels": dict(TRANSFORMER_MONITOR_LABELS)},
        "spec": {
            "selector": copy.deepcopy(TRANSFORMER_SELECTOR),
            "namespaceSelector": {"matchNames": [namespace]},
            "sampleLimit": TRANSFORMER_SAMPLE_LIMIT,
            "podMetricsEndpoints": [
                {
                    "port": TRANSFORMER_PORT_NAME,
                    "path": METRICS_PATH,
                    "interval": "30s",
                    "honorLabels": False,
                    # a tenant's pod answering 302 -> another tenant's transformer would get that
                    # transformer's series stored under its own namespace: no redirect is followed
                    "followRedirects": False,
                    "relabelings": [rule.operator() for rule in transformer_target_relabelings()],
                    "metricRelabelings": [rule.operator() for rule in metric_relabelings(scraped_decision_families())],
                }
            ],
        },
    }


def transformer_metrics_policy(namespace: str) -> dict[str, Any]:
    """Prometheus in to the transformer pods' port (TRANSFORMER_PORT, the one `user-port` names)."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "transformer-metrics-from-prometheus", "namespace": namespace},
        "spec": {
            "podSelector": copy.deepcopy(TRANSFORMER_SELECTOR),
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [prometheus_peer()], "ports": [{"protocol": "TCP", "port": TRANSFORMER_PORT}]}],
        },
    }


def namespace_pushgateway(namespace: str) -> list[dict[str, Any]]:
    """What `make golden` writes to a pipelines namespace's pushgateway.yaml: its Pushgateway and
    that scrape, then the scrape of its transformers (issue 32)."""
    address = pushgateway(namespace)
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": address.name, "namespace": namespace, "labels": dict(LABELS)},
        "spec": {
            "selector": {"app.kubernetes.io/name": address.name},
            "ports": [{"name": "http", "port": address.port, "targetPort": PUSHGATEWAY_PORT}],
        },
    }
    return [
        _deployment(address),
        service,
        *_network_policies(address),
        service_monitor(address),
        transformer_metrics_policy(namespace),
        transformer_pod_monitor(namespace),
    ]
