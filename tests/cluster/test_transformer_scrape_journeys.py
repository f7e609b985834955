"""Prometheus scrapes each tenant's scoring transformer, and nothing else reaches that port (issue 32).

The journey "Prometheus scrapes the tenant's transformer" is required in every tenant: from the
`prometheus` endpoint of required-flows.yaml (the pods pipelines/tenant_monitoring.py PROMETHEUS
names) to the transformer pod of the InferenceService promote renders for the tenant, on the port
the tenant's rendered PodMonitor scrapes (Knative's `user-port`). The forbidden one: another
tenant's pods (its pipeline pod and its own transformer) reaching that port. Both are checked on
the assembled platform render (every overlay, every tenant) with the NetworkPolicy promote applies
beside the InferenceService (components/steps/serving_authorization.py: `<name>-callers`) added, as
on a cluster where the model is promoted. Broken on purpose, as the other journeys are: the
tenant's policies closed, the scrape's policy missing, and its peer widened to every namespace.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from tests.cluster.journeys import Journey
from tests.cluster.rbac_evaluator_without_apiserver import service_account
from tests.cluster.rendered_platform import TENANTS, Platform, closed, endpoint, refusal
from tests.manifests.networkpolicy_evaluator_without_cni import Evaluator, Pod, selects

KNATIVE_USER_PORT = {"user-port": 8080}
"""The port Knative gives every revision's user container (knative.dev/serving pkg/apis/serving/v1:
UserPortName "user-port", DefaultUserPort 8080); promote renders the transformer without one."""
SCRAPE_POLICY = "transformer-metrics-from-prometheus"
WHY = "Prometheus scrapes the tenant's transformer"


def _promoted(tenant: str) -> list[dict[str, Any]]:
    """What promote applies for a model with a transformer in `tenant`: the InferenceService and who
    may reach it (the rendered objects, as tests/cluster/test_platform_journeys.py renders them)."""
    from components.config import transformer_settings
    from components.steps.promote import render_inference_service
    from components.steps.serving_authorization import serving_objects
    from pipelines.local import declaration
    from tests.conftest import REGISTRATION

    pipeline = declaration("fraud")
    cfg = pipeline.config()
    settings = cfg.promote.model_copy(update={"namespace": tenant})
    transformer = transformer_settings(cfg, pipeline.spec.image)
    service = render_inference_service(dict(REGISTRATION), storage_uri="s3://models/x",  # type: ignore[arg-type]
                                       settings=settings, canary_percent=10, transformer=transformer)  # fmt: skip
    return serving_objects(service, settings, transformer)


def _transformer_pod(platform: Platform, service: dict[str, Any]) -> Pod:
    """The transformer pod KServe makes of `service`: its labels (InferenceServicePodLabelKey and
    KServiceComponentLabel) over the transformer spec's own."""
    namespace = service["metadata"]["namespace"]
    labels = {"serving.kserve.io/inferenceservice": service["metadata"]["name"], "component": "transformer"}
    return Pod(namespace, labels, platform.namespaces[namespace])


def _with_promoted(platform: Platform) -> tuple[Platform, dict[str, Pod]]:
    """The platform with each tenant's promoted model's NetworkPolicy added; each tenant's transformer pod."""
    policies, pods = list(platform.network.policies), {}
    for tenant in TENANTS:
        service, *applied = _promoted(tenant)
        policies += [o for o in applied if o["kind"] == "NetworkPolicy"]
        pods[tenant] = _transformer_pod(platform, service)
    return replace(platform, network=Evaluator(policies)), pods


def _scraped_port(platform: Platform, tenant: str, pod: Pod) -> int:
    """The port the tenant's rendered PodMonitor scrapes on `pod`, checked to select it."""
    (monitor,) = [o for o in platform.objects if o["kind"] == "PodMonitor" and o["metadata"].get("namespace") == tenant]
    assert selects(monitor["spec"]["selector"], pod.labels), f"{tenant}: the PodMonitor does not select {pod}"
    assert monitor["spec"]["namespaceSelector"]["matchNames"] == [tenant]
    (scraped,) = monitor["spec"]["podMetricsEndpoints"]
    return KNATIVE_USER_PORT[scraped["port"]]


def scrape_journeys(platform: Platform, pods: dict[str, Pod]) -> list[tuple[str, Journey]]:
    """(tenant, journey): Prometheus to each tenant's transformer (required), and each other
    tenant's pipeline pod and transformer to it (forbidden)."""
    rows = []
    prometheus = endpoint(platform, "prometheus", TENANTS[0])
    for tenant in TENANTS:
        target = pods[tenant]
        port = _scraped_port(platform, tenant, target)
        rows.append((tenant, Journey("prometheus", None, f"{WHY} ({tenant})", flow=(prometheus, target, port))))
        for other in (t for t in TENANTS if t != tenant):
            pipeline_pod = endpoint(platform, "pipeline-pod", other)
            assert isinstance(pipeline_pod, Pod)
            for source in (pipeline_pod, pods[other]):
                why = f"{other}'s {source.labels} reaches {tenant}'s transformer metrics port"
                journey = Journey(f"{other}:default", None, why, allowed=False, flow=(source, target, port))
                rows.append((tenant, journey))
    return rows


def _who(journey: Journey) -> Any:
    if journey.who == "prometheus":
        return service_account("monitoring", "prometheus")
    namespace, name = journey.who.split(":")
    return service_account(namespace, name)


def test_prometheus_scrapes_each_tenants_transformer_and_no_other_tenant_reaches_it(platform: Platform) -> None:
    """Every required journey passes every check; every forbidden one is refused by the network."""
    promoted, pods = _with_promoted(platform)
    rows = scrape_journeys(promoted, pods)
    required = [journey for _, journey in rows if journey.allowed]
    assert len(required) == len(TENANTS) and len(rows) == len(TENANTS) * (1 + 2 * (len(TENANTS) - 1))
    failures = []
    for tenant, journey in rows:
        refused = refusal(promoted, _who(journey), journey, tenant)
        if journey.allowed and refused:
            failures.append(f"{journey}\n    refused by {refused}")
        elif not journey.allowed and not (refused or "").startswith("network:"):
            failures.append(f"{journey}\n    must be refused by the network, and is not")
    assert not failures, f"{platform.overlay}:\n" + "\n".join(failures)


@pytest.mark.parametrize("tenant", TENANTS)
def test_the_scrape_journeys_fail_when_broken_on_purpose(platform: Platform, tenant: str) -> None:
    """Broken on purpose: (1) the tenant's NetworkPolicies closed: the scrape is refused, named as the
    network; (2) without the scrape's own policy (as before issue 32): refused, so no other policy
    admits Prometheus; (3) with the other tenants' egress opened, the transformer's ingress alone
    still refuses their pods, and once the scrape's policy admits every namespace they reach the
    port, which the forbidden journeys would catch."""
    promoted, pods = _with_promoted(platform)
    rows = [journey for owner, journey in scrape_journeys(promoted, pods) if owner == tenant]
    scrape = next(journey for journey in rows if journey.allowed)
    forbidden = [journey for journey in rows if not journey.allowed]
    assert refusal(promoted, _who(scrape), scrape, tenant) is None, "positive control"
    assert (refusal(closed(promoted, tenant), _who(scrape), scrape, tenant) or "").startswith("network:")
    policies = promoted.network.policies
    own = [p for p in policies if p["metadata"]["name"] == SCRAPE_POLICY and p["metadata"]["namespace"] == tenant]
    assert len(own) == 1, f"{tenant}: no {SCRAPE_POLICY} rendered"
    without = replace(promoted, network=Evaluator([p for p in policies if p not in own]))
    assert (refusal(without, _who(scrape), scrape, tenant) or "").startswith("network:")
    # the other tenants' pods are held by their own egress policies too: open those, so the
    # transformer's ingress alone must refuse them, then widen the scrape's peer
    opened = [*policies, *(_any_egress(other) for other in TENANTS if other != tenant)]
    egress_open = replace(promoted, network=Evaluator(opened))
    assert all((refusal(egress_open, _who(j), j, tenant) or "").startswith("network:") for j in forbidden)
    (rule,) = own[0]["spec"]["ingress"]
    widened_policy = {**own[0], "spec": {**own[0]["spec"], "ingress": [{**rule, "from": [{"namespaceSelector": {}}]}]}}
    widened = replace(promoted, network=Evaluator([widened_policy if p in own else p for p in opened]))
    assert not [j for j in forbidden if refusal(widened, _who(j), j, tenant)], "the widened policy admits them all"


def _any_egress(namespace: str) -> dict[str, Any]:
    """Broken on purpose: every pod of `namespace` may open any connection."""
    return {
        "kind": "NetworkPolicy",
        "metadata": {"name": "any-egress", "namespace": namespace},
        "spec": {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{}]},
    }
