"""Only the right callers reach a tenant's model, directly or through the shared serving proxies.

issue 29: any pod labelled `component: transformer` reached Knative's activator and Istio's
gateways, every InferenceService admitted those proxies, and they route by Host, so pricing reached
fraud's transformer (and, with explain, fraud's stored features); nothing checked more than one
hop. Here the network (the rendered NetworkPolicies, with what promote renders beside each
InferenceService) and the authorization (the AuthorizationPolicy promote renders) are evaluated
together on every path, through the activator and the gateways as hops. No CNI and no Istio run
here: both evaluators are test code, checked first on cases whose answers Istio's and
Kubernetes' documentation give.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.config import ExplainSettings, TransformerSettings, transformer_settings
from components.steps.promote import render_inference_service
from components.steps.serving_authorization import (
    INGRESS_GATEWAY_PRINCIPAL,
    ISVC_LABEL,
    KIND,
    METRICS_PATH,
    TRANSFORMER_PORT,
    VISIBILITY_LABEL,
    metrics_scrape_rule,
    render_network_policy,
    serving_objects,
)
from mlops import lint
from pipelines.tenancy import ISTIO_INJECTION
from tests.conftest import REGISTRATION
from tests.manifests.istio_authorization_evaluator_without_istiod import (
    Authorization,
    Caller,
    Identity,
    Mesh,
    Proxy,
    Request,
    has_sidecar,
    matches,
)
from tests.manifests.network_platform import FLOWS, MANIFESTS, NAME, TENANTS
from tests.manifests.networkpolicy_evaluator_without_cni import Evaluator, Pod
from tests.rendered_manifests import render

# --- the authorization evaluator, on cases Istio's reference answers -------------------------------

WEB = Pod("a", {"app": "web"}, {NAME: "a", **ISTIO_INJECTION})  # in the mesh: its sidecar enforces
ALICE, BOB = Identity("a", "alice"), Identity("b", "bob")


def authz(namespace: str, spec: dict[str, Any], selector: dict[str, str] | None = None) -> dict[str, Any]:
    if selector is not None:
        spec = {**spec, "selector": {"matchLabels": selector}}
    return {"kind": "AuthorizationPolicy", "metadata": {"name": "p", "namespace": namespace}, "spec": spec}


def test_no_policy_allows_everything_and_one_allow_policy_denies_what_it_does_not_name() -> None:
    assert Authorization([]).allowed(WEB, Request(None, "/anything"))
    only_alice = authz("a", {"action": "ALLOW", "rules": [{"from": [{"source": {"principals": [ALICE.principal]}}]}]})
    assert Authorization([only_alice]).allowed(WEB, Request(ALICE, "/x"))
    assert not Authorization([only_alice]).allowed(WEB, Request(BOB, "/x")), "default deny once an ALLOW applies"
    assert not Authorization([authz("a", {})]).allowed(WEB, Request(ALICE, "/x")), "spec {} is allow-nothing"
    assert Authorization([authz("a", {"rules": [{}]})]).allowed(WEB, Request(None, "/x")), "an empty rule matches all"


def test_deny_wins_over_allow_and_a_policy_applies_only_where_its_selector_matches() -> None:
    allow_all = authz("a", {"action": "ALLOW", "rules": [{}]})
    deny_admin = authz("a", {"action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/admin*"]}}]}]})
    assert not Authorization([allow_all, deny_admin]).allowed(WEB, Request(ALICE, "/admin/users"))
    assert Authorization([allow_all, deny_admin]).allowed(WEB, Request(ALICE, "/public"))
    elsewhere = authz("a", {}, selector={"app": "db"})
    assert Authorization([elsewhere]).allowed(WEB, Request(ALICE, "/x")), "selects another workload"
    other_namespace = authz("b", {})
    assert Authorization([other_namespace]).allowed(WEB, Request(ALICE, "/x"))
    assert not Authorization([authz("istio-system", {})]).allowed(WEB, Request(ALICE, "/x")), (
        "root namespace: mesh-wide"
    )
    root_elsewhere = authz("istio-system", {}, selector={"app": "db"})
    assert Authorization([root_elsewhere]).allowed(WEB, Request(ALICE, "/x")), "mesh-wide, for what it selects"
    db = Pod("c", {"app": "db"}, {NAME: "c", **ISTIO_INJECTION})
    assert not Authorization([root_elsewhere]).allowed(db, Request(ALICE, "/x"))


def test_sources_namespaces_principals_and_plaintext() -> None:
    rule = {"from": [{"source": {"namespaces": ["a"]}}, {"source": {"principals": [BOB.principal]}}]}
    policy = Authorization([authz("a", {"rules": [rule]})])
    assert policy.allowed(WEB, Request(ALICE, "/x")) and policy.allowed(WEB, Request(BOB, "/x")), "from entries OR"
    assert not policy.allowed(WEB, Request(Identity("c", "bob"), "/x"))
    assert not policy.allowed(WEB, Request(None, "/x")), "no mTLS, no namespace or principal to match"
    both = Authorization(
        [authz("a", {"rules": [{"from": [{"source": {"namespaces": ["b"], "principals": ["*/sa/x"]}}]}]})]
    )
    assert not both.allowed(WEB, Request(BOB, "/x")), "fields of one source AND"
    assert both.allowed(WEB, Request(Identity("b", "x"), "/x"))
    not_b = Authorization([authz("a", {"rules": [{"from": [{"source": {"notNamespaces": ["b"]}}]}]})])
    assert not_b.allowed(WEB, Request(ALICE, "/x")) and not not_b.allowed(WEB, Request(BOB, "/x"))


def test_paths_exact_prefix_suffix_presence_and_not_paths() -> None:
    assert matches("/v1/m:predict", "/v1/m:predict") and not matches("/v1/m:predict", "/v1/m:explain")
    assert matches("/v2/*", "/v2/models/m/infer") and not matches("/v2/*", "/v1/models/m")
    assert matches("*:explain", "/v1/models/m:explain") and not matches("*:explain", "/v1/models/m%3Aexplain")
    assert matches("*", "/anything")
    rule = {"to": [{"operation": {"paths": ["/v1/*"], "notPaths": ["*:explain"]}}]}
    policy = Authorization([authz("a", {"rules": [rule]})])
    assert policy.allowed(WEB, Request(ALICE, "/v1/models/m:predict"))
    assert not policy.allowed(WEB, Request(ALICE, "/v1/models/m:explain"))
    assert not policy.allowed(WEB, Request(ALICE, "/v2/models/m/infer"))
    with pytest.raises(ValueError, match="when"):
        Authorization([authz("a", {"rules": [{"when": [{"key": "request.headers[x]"}]}]})]).allowed(
            WEB, Request(None, "/")
        )


def test_methods_and_ports_match_the_request_as_it_arrives() -> None:
    """Istio's `ports` are the destination port, as strings; a rule naming them matches no other."""
    rule = {"to": [{"operation": {"methods": ["GET"], "paths": ["/metrics"], "ports": ["8080"]}}]}
    policy = Authorization([authz("a", {"rules": [rule]})])
    assert policy.allowed(WEB, Request(None, "/metrics", "GET", port=8080)), "positive control: plaintext, no from"
    assert not policy.allowed(WEB, Request(None, "/metrics", "GET", port=8012))
    assert not policy.allowed(WEB, Request(None, "/metrics", "POST", port=8080))
    assert not policy.allowed(WEB, Request(None, "/metrics", "GET")), "a port the request did not give never matches"
    with pytest.raises(ValueError, match="not a number"):
        Authorization([authz("a", {"rules": [{"to": [{"operation": {"ports": ["80*"]}}]}]})]).allowed(
            WEB, Request(None, "/", port=8080)
        )
    not_8012 = Authorization([authz("a", {"rules": [{"to": [{"operation": {"notPorts": ["8012"]}}]}]})])
    assert not_8012.allowed(WEB, Request(ALICE, "/x", port=8080)) and not not_8012.allowed(
        WEB, Request(ALICE, "/x", port=8012)
    )


def test_an_empty_list_is_an_unset_field_and_what_istiod_rejects_is_refused() -> None:
    """istiod's model skips a field whose lists are empty (pilot/pkg/security/authz/model/model.go,
    insertFront), so `namespaces: []` beside another field constrains nothing; its validation
    rejects a source or operation with no values, `from: []`, `to: []` and empty strings."""
    empty_beside = {"from": [{"source": {"namespaces": [], "principals": [BOB.principal]}}]}
    policy = Authorization([authz("a", {"rules": [empty_beside]})])
    assert policy.allowed(WEB, Request(BOB, "/x")), "namespaces: [] does not match nothing"
    assert not policy.allowed(WEB, Request(ALICE, "/x")), "... and the principal still decides"
    not_empty = Authorization(
        [authz("a", {"rules": [{"from": [{"source": {"notNamespaces": [], "namespaces": ["a"]}}]}]})]
    )
    assert not_empty.allowed(WEB, Request(ALICE, "/x")), "notNamespaces: [] excludes nothing"
    rejected: list[dict[str, Any]] = [
        {"from": [{"source": {"namespaces": []}}]},
        {"from": [{}]},
        {"from": []},
        {"to": []},
        {"to": [{"operation": {"paths": []}}]},
        {"to": [{"operation": {"paths": [""]}}]},
    ]
    for rule in rejected:
        with pytest.raises(ValueError, match="istiod rejects"):
            Authorization([authz("a", {"rules": [rule]})]).allowed(WEB, Request(ALICE, "/x"))
    with pytest.raises(ValueError, match="istiod rejects"):
        Authorization([authz("a", {"action": "DENY"})]).allowed(WEB, Request(ALICE, "/x"))


def test_spec_fields_the_evaluator_does_not_model_are_refused_not_read_as_no_selector() -> None:
    """A policy bound by targetRef(s) applies to a Gateway or Service, not to every workload of
    its namespace: read as selector-less it would deny (or admit) the wrong pods."""
    for extra in (
        {"targetRef": {"kind": "Gateway", "name": "g"}},
        {"targetRefs": [{"kind": "Service", "name": "s"}]},
        {"provider": {"name": "ext-authz"}},
        {"selector": {"matchExpressions": [{"key": "app", "operator": "Exists"}]}},
    ):
        with pytest.raises(ValueError, match=r"does not model|matchLabels only"):
            Authorization([authz("a", {"rules": [{}], **extra})]).allowed(WEB, Request(ALICE, "/x"))
    with pytest.raises(ValueError, match="does not model"):
        Authorization([authz("a", {"rules": [{"from": [{"source": {"ipBlocks": ["10.0.0.0/8"]}}]}]})]).allowed(
            WEB, Request(ALICE, "/x")
        )


def test_only_a_sidecar_enforces_and_only_a_sidecar_has_an_identity() -> None:
    """Istio's injection logic (either label disabled: no sidecar; either enabled: one; neither:
    none). A caller without a sidecar sends plaintext: no namespace, no principal. A workload
    without one enforces nothing."""
    ns = {NAME: "a", **ISTIO_INJECTION}
    assert has_sidecar(Pod("a", {}, ns)) and not has_sidecar(Pod("a", {}, {NAME: "a"}))
    assert not has_sidecar(Pod("a", {"sidecar.istio.io/inject": "false"}, ns)), "the pod opts out"
    assert has_sidecar(Pod("a", {"sidecar.istio.io/inject": "true"}, {NAME: "a"})), "the pod opts in"
    assert not has_sidecar(Pod("a", {"sidecar.istio.io/inject": "true"}, {NAME: "a", "istio-injection": "disabled"}))
    with pytest.raises(ValueError, match="revision"):
        has_sidecar(Pod("a", {}, {NAME: "a", "istio.io/rev": "canary"}))
    only_a = Authorization([authz("a", {"rules": [{"from": [{"source": {"namespaces": ["a"]}}]}]})])
    mesh = Mesh(Evaluator([]), only_a)
    assert mesh.reaches(Caller(Pod("a", {}, ns), "alice"), WEB, 8012, "/x"), "positive control: over mTLS"
    plaintext = Caller(Pod("a", {}, {NAME: "a"}), "alice")
    assert plaintext.identity is None
    assert not mesh.reaches(plaintext, WEB, 8012, "/x"), "same namespace, no sidecar: the namespace rule does not match"
    unenforced = Pod("a", {"app": "web"}, {NAME: "a"})
    assert not only_a.allowed(WEB, Request(BOB, "/x")) and only_a.allowed(unenforced, Request(BOB, "/x"))
    assert mesh.reaches(Caller(Pod("b", {}, {NAME: "b"}), "bob"), unenforced, 8012, "/x"), "no sidecar, no policy"


def test_a_relayed_request_carries_the_proxys_identity() -> None:
    """Through a proxy the workload sees the proxy, not the caller: admitting the proxy admits all."""
    knative = {NAME: "knative-serving", **ISTIO_INJECTION}
    proxy = Proxy("activator", Pod("knative-serving", {"app": "activator"}, knative), 8012,
                  Identity("knative-serving", "controller"))  # fmt: skip
    only_a = Authorization([authz("a", {"rules": [{"from": [{"source": {"namespaces": ["a"]}}]}]})])
    caller = Caller(Pod("a", {}, {NAME: "a", **ISTIO_INJECTION}), "alice")
    mesh = Mesh(Evaluator([]), only_a)
    assert mesh.reaches(caller, WEB, 8012, "/x") and not mesh.reaches(caller, WEB, 8012, "/x", via=proxy)
    deputy = Authorization([authz("a", {"rules": [{"from": [{"source": {"namespaces": ["a", "knative-serving"]}}]}]})])
    stranger = Caller(Pod("z", {}, {NAME: "z"}), "eve")
    assert Mesh(Evaluator([]), deputy).reaches(stranger, WEB, 8012, "/x", via=proxy), "the confused deputy"
    bare = Proxy("activator", Pod("knative-serving", {"app": "activator"}, {NAME: "knative-serving"}), 8012,
                 proxy.identity)  # fmt: skip
    assert not Mesh(Evaluator([]), deputy).reaches(stranger, WEB, 8012, "/x", via=bare), (
        "no sidecar: it relays plaintext"
    )
    gateway = Proxy("gateway", Pod("istio-system", {"app": "gw"}, {NAME: "istio-system"}), 8080,
                    Identity("istio-system", "gw"), gateway=True)  # fmt: skip
    only_gw = Authorization([authz("a", {"rules": [{"from": [{"source": {"namespaces": ["istio-system"]}}]}]})])
    assert Mesh(Evaluator([]), only_gw).reaches(stranger, WEB, 8012, "/x", via=gateway), "a gateway is Envoy: mTLS"
    gateway_closed = Authorization([authz("istio-system", {"rules": [{"from": [{"source": {"namespaces": ["a"]}}]}]},
                                          selector={"app": "gw"})])  # fmt: skip
    assert not Mesh(Evaluator([]), gateway_closed).reaches(stranger, WEB, 8012, "/x", via=gateway), (
        "a gateway enforces its own policies, whatever its namespace's labels"
    )
    assert Mesh(Evaluator([]), gateway_closed).reaches(caller, WEB, 8012, "/x", via=gateway)


# --- what promote renders for fraud, on the rendered platform ---------------------------------------

MODEL = str(REGISTRATION["model_name"])


def _fraud(
    callers: list[str] | None = None, explain: ExplainSettings | None = None, expose: bool = False
) -> list[dict[str, Any]]:
    from pipelines.fraud import pipeline as fraud

    cfg = fraud.DECLARATION.config()
    settings = cfg.promote.model_copy(update={"callers": callers or [], "expose": expose})
    described: TransformerSettings = transformer_settings(cfg, fraud.DECLARATION.spec.image)
    if explain is not None:
        described = described.model_copy(update={"scoring": described.scoring.model_copy(update={"explain": explain})})
    service = render_inference_service(
        dict(REGISTRATION),  # type: ignore[arg-type]
        storage_uri="s3://models/fraud/x/1",
        settings=settings,
        canary_percent=10,
        transformer=described,
    )
    return serving_objects(service, settings, described)


@functools.cache
def _tenants() -> tuple[list[dict[str, Any]], dict[str, dict[str, str]]]:
    """Every tenant's rendered NetworkPolicies and each tenant namespace's labels (the serving paths
    run between tenant namespaces and the operators' namespaces, which the platform leaves open)."""
    objects = [o for tenant in TENANTS for o in render(MANIFESTS / "tenants" / tenant)]
    namespaces = {o["metadata"]["name"]: {**o["metadata"].get("labels", {}), NAME: o["metadata"]["name"]}
                  for o in objects if o["kind"] == "Namespace"}  # fmt: skip
    return [o for o in objects if o["kind"] == "NetworkPolicy"], namespaces


def _mesh(rendered: list[dict[str, Any]]) -> Mesh:
    network = [*_tenants()[0], *(o for o in rendered if o["kind"] == "NetworkPolicy")]
    return Mesh(Evaluator(network), Authorization([o for o in rendered if o["kind"] == KIND]))


OUTSIDE_TENANTS = {
    "payments": ISTIO_INJECTION,  # the callers promote.callers names run in the mesh (docs/serving.md)
    "audit": ISTIO_INJECTION,
    "knative-serving": ISTIO_INJECTION,  # docs/install.md: Knative's page on authorization policies asks it
}
"""The labels of the namespaces outside the rendered tenants: istio-system (the gateways, Envoys
themselves) and apps (a namespace outside the mesh) carry none."""


def _pod(namespace: str, labels: dict[str, str]) -> Pod:
    return Pod(namespace, labels, _tenants()[1].get(namespace, {**OUTSIDE_TENANTS.get(namespace, {}), NAME: namespace}))


def _without_sidecars(pod: Pod) -> Pod:
    """The pod as it runs once its namespace lost Istio's injection label."""
    return Pod(pod.namespace, pod.labels, {k: v for k, v in pod.namespace_labels.items() if k not in ISTIO_INJECTION})


PREDICT, INFER, EXPLAIN = f"/v1/models/{MODEL}:predict", f"/v2/models/{MODEL}/infer", f"/v1/models/{MODEL}:explain"
FORGED = {ISVC_LABEL: MODEL, "component": "transformer"}  # what a pricing Workflow could set on its pods


@dataclass(frozen=True)
class Parties:
    """fraud's serving pods, its callers, and pricing's pods (one plain, one with the forged label)."""

    transformer: Pod
    predictor: Pod
    fraud_app: Caller
    checkout: Caller
    payments_other: Caller
    pricing: tuple[Caller, ...]


@functools.cache
def _parties() -> Parties:
    return Parties(
        transformer=_pod("fraud", {ISVC_LABEL: MODEL, "component": "transformer"}),
        predictor=_pod("fraud", {ISVC_LABEL: MODEL, "component": "predictor"}),
        fraud_app=Caller(_pod("fraud", {"app": "fraud-scorer"}), "default"),
        checkout=Caller(_pod("payments", {"app": "checkout"}), "checkout"),
        payments_other=Caller(_pod("payments", {"app": "batch"}), "batch"),
        pricing=tuple(Caller(_pod("pricing", labels), "pipeline-runner") for labels in ({"app": "x"}, FORGED)),
    )


def _proxies() -> list[Proxy]:
    """The shared proxies as hops: the activator as required-flows.yaml names it; the ingress and the
    cluster-local gateway (net-istio's knative-local-gateway runs on the gateway pods, port 8081)
    as promote's rendered NetworkPolicy admits the gateway for an exposed model."""
    activator = FLOWS["endpoints"]["knative-activator"]
    (exposed,) = [p for p in render_network_policy(_fraud(expose=True)[0], _settings(expose=True))["spec"]["ingress"]]
    (gateway_peer,) = [p for p in exposed["from"] if "podSelector" in p]
    gateway = _pod(gateway_peer["namespaceSelector"]["matchLabels"][NAME], gateway_peer["podSelector"]["matchLabels"])
    gateway_identity = Identity(gateway.namespace, INGRESS_GATEWAY_PRINCIPAL.rsplit("/", 1)[1])
    return [
        Proxy("activator", _pod(activator["namespace"], activator["labels"]), 8012,
              Identity(activator["namespace"], "controller")),
        Proxy("ingress-gateway", gateway, 8080, gateway_identity, gateway=True),
        Proxy("cluster-local-gateway", gateway, 8081, gateway_identity, gateway=True),
    ]  # fmt: skip


def _settings(**update: Any) -> Any:
    from pipelines.fraud import pipeline as fraud

    return fraud.DECLARATION.config().promote.model_copy(update=update)


def test_the_rendered_policy_is_valid_against_istios_crd_and_the_service_is_cluster_local(schemas_dir: Path) -> None:
    service, policy, network = _fraud(callers=["payments/checkout", "audit/*"])
    schema = lint.crd_schema(policy["apiVersion"], policy["kind"])
    assert lint.schema_problem(policy, schema) is None and lint.unknown_fields(policy, schema) == []
    assert policy["spec"]["selector"]["matchLabels"] == {ISVC_LABEL: MODEL}
    assert service["metadata"]["labels"][VISIBILITY_LABEL] == "cluster-local"
    assert service["metadata"]["annotations"]["autoscaling.knative.dev/target-burst-capacity"] == "0"
    (rule,) = network["spec"]["ingress"]
    assert rule["from"][0]["namespaceSelector"]["matchExpressions"][0]["values"] == ["audit", "fraud", "payments"]
    exposed, exposed_policy, _ = _fraud(expose=True)
    assert VISIBILITY_LABEL not in exposed["metadata"]["labels"]
    assert INGRESS_GATEWAY_PRINCIPAL in yaml.safe_dump(exposed_policy)


def test_fraud_and_its_named_callers_score_and_nobody_else_does_even_through_the_proxies() -> None:
    """issue 29: pricing reached fraud's transformer through the activator or a gateway (Host routing).
    Positive control first: fraud's own pods and the caller promote.callers names score fraud's model."""
    p = _parties()
    assert all(has_sidecar(pod) for pod in (p.transformer, p.predictor, p.fraud_app.pod, p.checkout.pod))
    mesh = _mesh(_fraud(callers=["payments/checkout"]))
    for caller in (p.fraud_app, p.checkout):
        assert mesh.reaches(caller, p.transformer, 8012, PREDICT), caller
        assert mesh.reaches(caller, p.transformer, 8012, INFER), caller
    assert mesh.reaches(p.fraud_app, p.predictor, 8012, INFER)
    assert mesh.reaches(
        Caller(p.transformer, "default"), p.predictor, 8012, "/inference.GRPCInferenceService/ModelInfer"
    )
    # forbidden: another account in the named caller's namespace, and pricing, forged label or not,
    # directly or through any shared proxy, to the transformer or the predictor
    assert not mesh.reaches(p.payments_other, p.transformer, 8012, PREDICT)
    for caller in p.pricing:
        for workload in (p.transformer, p.predictor):
            for path in (PREDICT, INFER):
                assert not mesh.reaches(caller, workload, 8012, path), (caller, workload)
                for proxy in _proxies():
                    assert not mesh.reaches(caller, workload, 8012, path, via=proxy), (caller, proxy.name)
                    assert not mesh.network.allowed(caller.pod, proxy.pod, proxy.port), (caller, proxy.name)
    # the activator still probes and is scraped, on those paths only
    activator = _proxies()[0]
    assert mesh.authorization.allowed(p.transformer, Request(activator.identity, "/healthz"))
    assert not mesh.authorization.allowed(p.transformer, Request(activator.identity, PREDICT))


def test_prometheus_scrapes_the_transformers_metrics_and_nothing_else() -> None:
    """issue 32: the tenant's PodMonitor (pipelines/tenant_monitoring.py) scrapes GET /metrics on the
    transformer's port; Prometheus runs outside the mesh, so it arrives in plaintext. Positive
    control first; then what the same scrape may not reach; then the rule removed on purpose."""
    from pipelines.tenant_monitoring import TRANSFORMER_PORT_NAME, transformer_pod_monitor

    p = _parties()
    prometheus_end = FLOWS["endpoints"]["prometheus"]
    prometheus = Caller(_pod(prometheus_end["namespace"], prometheus_end["labels"]), "prometheus")
    assert prometheus.identity is None, "Prometheus runs outside the mesh: plaintext"
    scraped = transformer_pod_monitor("fraud")["spec"]["podMetricsEndpoints"][0]
    assert (scraped["port"], scraped["path"]) == (TRANSFORMER_PORT_NAME, METRICS_PATH)
    rendered = _fraud(callers=["payments/checkout"])
    mesh = _mesh(rendered)  # every tenant's rendered NetworkPolicies (the scrape's among them) and promote's
    assert mesh.reaches(prometheus, p.transformer, TRANSFORMER_PORT, METRICS_PATH, method="GET")
    # forbidden: scoring or explaining from Prometheus, another verb, queue-proxy's port, and pricing's pods
    assert not mesh.reaches(prometheus, p.transformer, TRANSFORMER_PORT, PREDICT)
    assert not mesh.reaches(prometheus, p.transformer, TRANSFORMER_PORT, PREDICT, method="GET")
    assert not mesh.reaches(prometheus, p.transformer, TRANSFORMER_PORT, METRICS_PATH, method="POST")
    assert not mesh.authorization.allowed(p.transformer, Request(None, METRICS_PATH, "GET", port=8012))
    for caller in p.pricing:
        assert not mesh.reaches(caller, p.transformer, TRANSFORMER_PORT, METRICS_PATH, method="GET"), caller
    # callers in the mesh get no more than scoring: another account of a caller namespace (the
    # network admits its namespace), and an exposed model's ingress gateway (relaying with its identity)
    assert mesh.network.allowed(p.payments_other.pod, p.transformer, TRANSFORMER_PORT), "positive control: network"
    assert not mesh.reaches(p.payments_other, p.transformer, TRANSFORMER_PORT, METRICS_PATH, method="GET")
    assert not mesh.reaches(p.checkout, p.transformer, TRANSFORMER_PORT, METRICS_PATH, method="GET")
    exposed = _mesh(_fraud(callers=["payments/checkout"], expose=True))
    stranger = Caller(_pod("apps", {"app": "anything"}), "default")
    for gateway in _proxies()[1:]:
        assert exposed.reaches(stranger, p.transformer, 8012, PREDICT, via=gateway), "positive control: exposed"
        assert not exposed.reaches(stranger, p.transformer, TRANSFORMER_PORT, METRICS_PATH, via=gateway, method="GET")
    # no transformer, no rule: the predictor's policy admits no scrape
    without_transformer = serving_objects(rendered[0], _settings(transformer=False), None)
    assert metrics_scrape_rule() not in next(o for o in without_transformer if o["kind"] == KIND)["spec"]["rules"]
    # broken on purpose: the rule taken out, the scrape is refused (what the PodMonitor met before)
    policy = next(o for o in rendered if o["kind"] == KIND)
    cut = {
        **policy,
        "spec": {**policy["spec"], "rules": [r for r in policy["spec"]["rules"] if r != metrics_scrape_rule()]},
    }
    assert cut["spec"]["rules"] != policy["spec"]["rules"]
    broken = Mesh(mesh.network, Authorization([cut]))
    assert not broken.reaches(prometheus, p.transformer, TRANSFORMER_PORT, METRICS_PATH, method="GET")


def test_explain_is_off_unless_enabled_and_then_only_for_the_callers_it_names() -> None:
    """issue 29: explain needed no permission, even inside one tenant; pricing could read fraud's features."""
    p = _parties()
    enabled = _mesh(_fraud(explain=ExplainSettings(enabled=True)))
    assert enabled.reaches(p.fraud_app, p.transformer, 8012, EXPLAIN), "positive control: the tenant's own namespace"
    for caller in p.pricing:
        assert not enabled.reaches(caller, p.transformer, 8012, EXPLAIN)
    named = _mesh(
        _fraud(callers=["payments/checkout"], explain=ExplainSettings(enabled=True, callers=["audit/analyst"]))
    )
    analyst = Caller(_pod("audit", {"app": "notebook"}), "analyst")
    assert named.reaches(analyst, p.transformer, 8012, EXPLAIN)
    assert not named.reaches(analyst, p.transformer, 8012, PREDICT), "explain callers do not score"
    assert not named.reaches(p.checkout, p.transformer, 8012, EXPLAIN) and not named.reaches(
        p.fraud_app, p.transformer, 8012, EXPLAIN
    )
    off = _mesh(_fraud(callers=["payments/checkout"]))
    for caller in (p.fraud_app, p.checkout):
        assert off.reaches(caller, p.transformer, 8012, PREDICT)
        assert not off.reaches(caller, p.transformer, 8012, EXPLAIN)
        assert not off.reaches(caller, p.transformer, 8012, f"/v1/models/{MODEL}%3Aexplain"), "no encoded bypass"


def test_broken_control_without_the_authorization_policy_the_evaluator_sees_the_leak() -> None:
    """Broken on purpose: drop the AuthorizationPolicy from what promote renders. The network alone
    cannot tell callers apart by account or by path, nor the activator's relay from its probe."""
    p = _parties()
    rendered = _fraud(callers=["payments/checkout"])
    assert not _mesh(rendered).reaches(p.payments_other, p.transformer, 8012, PREDICT)
    without = _mesh([o for o in rendered if o["kind"] != KIND])
    assert without.reaches(p.payments_other, p.transformer, 8012, PREDICT), "LEAK: any account of a caller namespace"
    assert without.reaches(p.fraud_app, p.transformer, 8012, EXPLAIN), "LEAK: explain with it off"
    stranger = Caller(_pod("apps", {"app": "anything"}), "default")  # a namespace with no NetworkPolicy
    activator = _proxies()[0]
    assert not _mesh(rendered).reaches(stranger, p.transformer, 8012, PREDICT, via=activator)
    assert without.reaches(stranger, p.transformer, 8012, PREDICT, via=activator), "LEAK: the activator as deputy"
    # the gateways' hops: an exposed model's NetworkPolicy admits the gateway pods, so past them
    # only the AuthorizationPolicy stands between a stranger and explain (scoring is the exposure)
    exposed = _fraud(
        callers=["payments/checkout"], explain=ExplainSettings(enabled=True, callers=["audit/analyst"]), expose=True
    )
    exposed_without = _mesh([o for o in exposed if o["kind"] != KIND])
    for gateway in _proxies()[1:]:
        assert _mesh(exposed).network.allowed_via(stranger.pod, gateway.pod, gateway.port, p.transformer, 8012)
        assert _mesh(exposed).reaches(stranger, p.transformer, 8012, PREDICT, via=gateway), "positive control: exposed"
        assert not _mesh(exposed).reaches(stranger, p.transformer, 8012, EXPLAIN, via=gateway), gateway.name
        assert exposed_without.reaches(stranger, p.transformer, 8012, EXPLAIN, via=gateway), f"LEAK: {gateway.name}"


def test_broken_control_a_namespace_without_istio_injection_enforces_nothing_and_its_callers_fail_closed() -> None:
    """Broken on purpose: a namespace loses `istio-injection: enabled` (pipelines.tenancy). Its pods
    run without a sidecar: fraud's then enforce nothing, so whoever the network lets through scores
    and explains; a named caller without one sends plaintext, which no rule admits. (pricing is
    stopped by the network before any of this: the forbidden paths above hold without the policy.)"""
    p = _parties()
    mesh = _mesh(_fraud(callers=["payments/checkout"]))
    stranger = Caller(_pod("apps", {"app": "anything"}), "default")
    activator = _proxies()[0]
    bare = _without_sidecars(p.transformer)
    assert not has_sidecar(bare) and not has_sidecar(stranger.pod)
    for caller, via in ((p.payments_other, None), (stranger, activator)):
        assert not mesh.reaches(caller, p.transformer, 8012, PREDICT, via=via), "positive control: enforced"
        assert mesh.reaches(caller, bare, 8012, PREDICT, via=via), "LEAK: fraud without its sidecars"
        assert mesh.reaches(caller, bare, 8012, EXPLAIN, via=via), "LEAK: explain, off, unenforced"
    plaintext = Caller(_without_sidecars(p.checkout.pod), p.checkout.service_account)
    assert mesh.network.allowed(plaintext.pod, p.transformer, 8012) and plaintext.identity is None
    assert mesh.reaches(p.checkout, p.transformer, 8012, PREDICT), "positive control: the named caller, in the mesh"
    assert not mesh.reaches(plaintext, p.transformer, 8012, PREDICT), "the named caller without a sidecar"
    assert not mesh.reaches(Caller(_without_sidecars(p.fraud_app.pod), "default"), p.transformer, 8012, PREDICT), (
        "fraud's own namespace rule matches no plaintext caller"
    )
