"""serving_authorization: who may call an InferenceService, as the Istio AuthorizationPolicy beside it.

issue 29: the shared serving proxies (Knative's activator, Istio's ingress and cluster-local
gateways) route by Host and admitted every tenant, and every InferenceService admitted the proxies,
so tenant pricing could score fraud's model and, through `explain`, read fraud's stored features.
promote now renders, for each InferenceService, one `security.istio.io/v1` AuthorizationPolicy
(action ALLOW: once one exists, Istio denies the workload's every request that no ALLOW rule
matches, https://istio.io/latest/docs/reference/config/security/authorization-policy/) selecting
the service's pods (KServe labels the predictor's and the transformer's with
`serving.kserve.io/inferenceservice`):

- scoring: the exact predict/infer, metadata and health paths of the model (V1 `:predict`, V2
  `/infer`, and Triton's gRPC service for the transformer's calls), from the tenant's own namespace
  and the principals of `promote.callers` (`<namespace>/<serviceaccount>` is the mTLS principal
  `cluster.local/ns/<namespace>/sa/<serviceaccount>`; `<namespace>/*` is the namespace). Exact paths,
  not "everything but `*:explain`": a percent-encoded `%3Aexplain` matches no exact path, where it
  would slip past a notPaths suffix;
- explain (KServe's V1 `/v1/models/<name>:explain`): rendered only with `scoring.explain.enabled`,
  for `scoring.explain.callers` (empty: the tenant's own namespace); off, no rule admits it;
- Knative's system pods (namespace knative-serving): only `/healthz` (probes) and `/metrics` (the
  autoscaler's scrape), the two paths Knative documents for this case
  (https://knative.dev/docs/serving/istio-authorization/, "Allowing access from system pods by paths");
- Prometheus's scrape of the transformer's decision-log metrics: GET `/metrics` on the transformer's
  port (8080) only, from plaintext callers only, since Prometheus outside the mesh has no identity
  to name (metrics_scrape_rule; the NetworkPolicies say who reaches that port).

Why the activator cannot be a confused deputy. A request the activator relays reaches the pod with
the activator's identity (namespace knative-serving), not the caller's: the same Knative page says
so, and its "easiest way around" (admit knative-serving on every path) would let anyone who reaches
the activator score any model by Host. Instead no rule admits knative-serving beyond probes and
metrics, and promote takes the activator out of the request path: with a warm replica
(`minScale` >= 1, promote.min_replicas is at least 1) and `autoscaling.knative.dev/target-burst-capacity:
"0"`, "Knative only puts the Activator into the request path if the Revision is scaled to zero"
(https://knative.dev/docs/serving/load-balancing/activator-capacity/), which it never is. Callers
in the mesh reach the revision directly with their own identity: net-istio programs a `mesh`
VirtualService for every cluster-local host (MakeMeshVirtualService), so a sidecar routes
`<name>-transformer.<ns>.svc.cluster.local` to the pods, not through the gateway. The gateways
likewise relay with their own identity (istio-system): the cluster-local gateway is admitted by no
rule, and the ingress gateway only when `promote.expose` puts the model outside the cluster on
purpose (then authenticating external callers is the gateway's job, not this policy's). Should the
activator or a gateway ever relay anyway, the request is refused (fails closed), never served for
the proxy's sake. Unless `promote.expose`, the InferenceService is also cluster-local
(`networking.knative.dev/visibility`), so the ingress gateway has no route to it at all.

Beside the policy, a NetworkPolicy per InferenceService opens its pods to the namespaces the
policy names (and to the ingress gateway only when exposed): the tenants' shared NetworkPolicies
(manifests/tenants/network) admit only the activator's probes, never a proxy by a label.
tests/manifests/test_serving_authorization.py evaluates both on every path, proxies as hops.
"""

from __future__ import annotations

from typing import Any

from components.config import ExplainSettings, PromoteSettings, TransformerSettings

__all__ = [
    "API_VERSION",
    "CLUSTER_LOCAL",
    "INGRESS_GATEWAY_PRINCIPAL",
    "ISVC_LABEL",
    "KIND",
    "KNATIVE_NAMESPACE",
    "KNATIVE_SYSTEM_PATHS",
    "METRICS_PATH",
    "NAMESPACE_NAME",
    "SERVING_PORTS",
    "TARGET_BURST_CAPACITY",
    "TRANSFORMER_PORT",
    "TRANSFORMER_PORT_NAME",
    "TRITON_GRPC_SERVICE",
    "TRUST_DOMAIN",
    "VISIBILITY_LABEL",
    "explain_paths",
    "metrics_scrape_rule",
    "principal",
    "render_authorization_policy",
    "render_network_policy",
    "scoring_paths",
    "serving_objects",
    "sources",
    "visibility_labels",
]

API_VERSION = "security.istio.io/v1"
KIND = "AuthorizationPolicy"
TRUST_DOMAIN = "cluster.local"
ISVC_LABEL = "serving.kserve.io/inferenceservice"
VISIBILITY_LABEL = "networking.knative.dev/visibility"
CLUSTER_LOCAL = "cluster-local"
TARGET_BURST_CAPACITY = "autoscaling.knative.dev/target-burst-capacity"
KNATIVE_NAMESPACE = "knative-serving"
KNATIVE_SYSTEM_PATHS = ("/healthz", "/metrics")
INGRESS_GATEWAY_PRINCIPAL = f"{TRUST_DOMAIN}/ns/istio-system/sa/istio-ingressgateway-service-account"
TRITON_GRPC_SERVICE = "/inference.GRPCInferenceService/*"
NAMESPACE_NAME = "kubernetes.io/metadata.name"
TRANSFORMER_PORT = 8080  # KServe passes --http_port=8080 to a transformer container
TRANSFORMER_PORT_NAME = "user-port"
"""The name Knative gives the user container's port on every revision's pods (UserPortName); promote
names the transformer's port so in the Standard modes too, so one PodMonitor finds it in both."""
METRICS_PATH = "/metrics"
SERVING_PORTS = (8012, TRANSFORMER_PORT)  # Knative's queue-proxy (Serverless), the model server (RawDeployment)


def principal(caller: str) -> str:
    """A `<namespace>/<serviceaccount>` caller as Istio's mTLS principal."""
    namespace, account = caller.split("/", 1)
    return f"{TRUST_DOMAIN}/ns/{namespace}/sa/{account}"


def sources(namespace: str, callers: list[str], *, own_namespace: bool = True) -> list[dict[str, Any]]:
    """The `from` of a rule: the tenant's own namespace (unless told not to), each `<ns>/*` caller's
    namespace, each `<ns>/<sa>` caller's principal (one source each: Istio ORs the `from` list)."""
    namespaces = [namespace] if own_namespace else []
    namespaces += [c.split("/", 1)[0] for c in callers if c.endswith("/*")]
    principals = [principal(c) for c in callers if not c.endswith("/*")]
    found: list[dict[str, Any]] = []
    if namespaces:
        found.append({"source": {"namespaces": sorted(set(namespaces))}})
    if principals:
        found.append({"source": {"principals": sorted(set(principals))}})
    return found


def scoring_paths(model: str) -> list[str]:
    """What a scoring caller may ask: V1 predict, V2 infer, the model's metadata and readiness, the
    server's health, and Triton's gRPC service (the transformer's calls to its predictor)."""
    return [
        f"/v1/models/{model}:predict",
        f"/v1/models/{model}",
        f"/v2/models/{model}/infer",
        f"/v2/models/{model}",
        f"/v2/models/{model}/ready",
        "/v2/health/live",
        "/v2/health/ready",
        TRITON_GRPC_SERVICE,
    ]


def explain_paths(model: str) -> list[str]:
    """KServe's V1 explain verb, the one the transformer serves explanations on."""
    return [f"/v1/models/{model}:explain"]


def metrics_scrape_rule() -> dict[str, Any]:
    """Prometheus's scrape of the transformer's own metrics (pipelines/tenant_monitoring.py's
    PodMonitor): GET of exactly /metrics on the transformer's port, from plaintext callers only
    (`notPrincipals: ["*"]`: any request with an mTLS identity fails it). Prometheus runs outside the
    mesh, so its requests carry no identity a `from` could name; a caller in the mesh (another
    account of a caller namespace, the ingress gateway of an exposed model) always has one, so it
    gets no more than its scoring rule gives it. Who may open that port at all is the
    NetworkPolicies' to say. Scoring is POST on other paths and never matches; GET /metrics on
    queue-proxy's port is not admitted by this rule (that one is Knative's, above)."""
    return {
        "from": [{"source": {"notPrincipals": ["*"]}}],
        "to": [{"operation": {"methods": ["GET"], "paths": [METRICS_PATH], "ports": [str(TRANSFORMER_PORT)]}}],
    }


def render_authorization_policy(
    service: dict[str, Any], settings: PromoteSettings, transformer: TransformerSettings | None = None
) -> dict[str, Any]:
    """The AuthorizationPolicy for one rendered InferenceService (module docstring: who and why)."""
    name, namespace = service["metadata"]["name"], service["metadata"]["namespace"]
    scorers = sources(namespace, list(settings.callers))
    if settings.expose:
        scorers.append({"source": {"principals": [INGRESS_GATEWAY_PRINCIPAL]}})
    rules: list[dict[str, Any]] = [
        {"from": scorers, "to": [{"operation": {"paths": scoring_paths(name)}}]},
        {
            "from": [{"source": {"namespaces": [KNATIVE_NAMESPACE]}}],
            "to": [{"operation": {"paths": list(KNATIVE_SYSTEM_PATHS)}}],
        },
    ]
    if settings.transformer and transformer is not None:
        rules.append(metrics_scrape_rule())
    explain = transformer.scoring.explain if transformer is not None else ExplainSettings()
    if explain.enabled and settings.transformer and transformer is not None:
        explainers = sources(namespace, list(explain.callers), own_namespace=not explain.callers)
        rules.append({"from": explainers, "to": [{"operation": {"paths": explain_paths(name)}}]})
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": f"{name}-callers", "namespace": namespace, "labels": {ISVC_LABEL: name}},
        "spec": {"selector": {"matchLabels": {ISVC_LABEL: name}}, "action": "ALLOW", "rules": rules},
    }


def visibility_labels(settings: PromoteSettings) -> dict[str, str]:
    """Cluster-local unless promote.expose: Knative then gives the ingress gateway no route to it."""
    return {} if settings.expose else {VISIBILITY_LABEL: CLUSTER_LOCAL}


def render_network_policy(
    service: dict[str, Any], settings: PromoteSettings, transformer: TransformerSettings | None = None
) -> dict[str, Any]:
    """Who may open a connection to the service's pods at all: the namespaces the AuthorizationPolicy
    names (callers come straight over the mesh, the activator being out of the path), and the
    ingress gateway only when exposed. Queue-proxy's 8012 in Serverless mode, the server's 8080 in
    RawDeployment. The shared manifests (manifests/tenants/network) no longer open the gateway to
    every InferenceService: this does, for the one that asks."""
    name, namespace = service["metadata"]["name"], service["metadata"]["namespace"]
    callers = list(settings.callers)
    if settings.transformer and transformer is not None and transformer.scoring.explain.enabled:
        callers += transformer.scoring.explain.callers
    names = sorted({namespace, *(c.split("/", 1)[0] for c in callers)})
    peers: list[dict[str, Any]] = [
        {"namespaceSelector": {"matchExpressions": [{"key": NAMESPACE_NAME, "operator": "In", "values": names}]}}
    ]
    if settings.expose:
        peers.append(
            {
                "namespaceSelector": {"matchLabels": {NAMESPACE_NAME: "istio-system"}},
                "podSelector": {"matchLabels": {"app": "istio-ingressgateway"}},
            }
        )
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": f"{name}-callers", "namespace": namespace, "labels": {ISVC_LABEL: name}},
        "spec": {
            "podSelector": {"matchLabels": {ISVC_LABEL: name}},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": peers, "ports": [{"protocol": "TCP", "port": p} for p in SERVING_PORTS]}],
        },
    }


def serving_objects(
    service: dict[str, Any], settings: PromoteSettings, transformer: TransformerSettings | None = None
) -> list[dict[str, Any]]:
    """Everything promote applies for one model, in order: the InferenceService, then who may reach it."""
    return [
        service,
        render_authorization_policy(service, settings, transformer),
        render_network_policy(service, settings, transformer),
    ]
