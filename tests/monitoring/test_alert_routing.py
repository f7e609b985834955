"""Each tenant's AlertmanagerConfig: its pipelines' owners for model-owner alerts, on-call for the rest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines.alerting import ONCALL, alertmanager_config, alertmanager_yaml
from pipelines.local import available_pipelines, declaration
from tests.conftest import REPO
from tests.monitoring.alertmanager_merge_without_operator import ROOT, merge, receivers


def _configs() -> list:  # type: ignore[type-arg]
    return [declaration(name).config() for name in available_pipelines()]


def test_the_fraud_tenant_mails_its_owner_and_pages_oncall_for_the_rest(schemas_dir: Path) -> None:
    from mlops import lint

    fraud = declaration("fraud").config()
    document = alertmanager_config("fraud", _configs())
    assert lint.check(document) is None
    broken = {**document, "spec": {**document["spec"], "route": {**document["spec"]["route"], "groupWait": 30}}}
    assert "groupWait" in str(lint.check(broken))  # the schema does refuse a wrong field
    route = document["spec"]["route"]
    assert route["receiver"] == ONCALL
    assert [r["receiver"] for r in route["routes"]] == ["fraud-owner"]  # only fraud's pipelines
    assert route["routes"][0]["matchers"] == [
        {"name": "owner", "value": "model-owner"},
        {"name": "pipeline", "value": "fraud"},
        {"name": "namespace", "value": "fraud"},
    ]
    receivers = {r["name"]: r for r in document["spec"]["receivers"]}
    assert receivers["fraud-owner"]["emailConfigs"][0]["to"] == fraud.owner
    assert "urlSecret" in receivers[ONCALL]["webhookConfigs"][0]  # the pager's URL is a Secret, not YAML


def test_the_committed_routing_is_the_rendered_one() -> None:
    from pipelines.tenancy import alert_routing, load

    for tenant in load(REPO / "manifests").tenants:
        folder = REPO / "manifests" / "tenants" / tenant.name
        committed = yaml.safe_load((folder / "alertmanager-config.yaml").read_text())
        assert committed == alert_routing(tenant, _configs())
        assert "alertmanager-config.yaml" in (folder / "kustomization.yaml").read_text()


def test_the_loopback_alertmanager_gets_the_same_routes() -> None:
    native = alertmanager_yaml(_configs(), "http://127.0.0.1:1/hook")
    routes = {r["receiver"]: r["matchers"] for r in native["route"]["routes"]}
    assert routes["fraud-owner"] == ['owner="model-owner"', 'pipeline="fraud"', 'namespace="fraud"']
    hooks = {r["name"]: r["webhook_configs"][0]["url"] for r in native["receivers"]}
    assert hooks["fraud-owner"] == "http://127.0.0.1:1/hook?owner=fraud-ml-oncall%40bank.internal"
    assert hooks[ONCALL] == "http://127.0.0.1:1/hook"


def _rendered_routing() -> list[dict]:  # type: ignore[type-arg]
    from pipelines.tenancy import alert_routing, load

    return [alert_routing(tenant, _configs()) for tenant in load(REPO / "manifests").tenants]


def _drift_alert(group: str) -> dict[str, str]:
    """ModelDriftDetected as a promtool case of tests/monitoring/prometheus-rules.test.yaml raises it."""
    tests = yaml.safe_load((REPO / "tests" / "monitoring" / "prometheus-rules.test.yaml").read_text())
    case = next(
        case
        for test in tests["tests"]
        if test["name"] == group
        for case in test["alert_rule_test"]
        if case["alertname"] == "ModelDriftDetected"
    )
    return {"alertname": "ModelDriftDetected", **case["exp_alerts"][0]["exp_labels"]}


@pytest.mark.integration  # Debian's amtool (prometheus-alertmanager), installed by `make test`
def test_the_operator_merge_stand_in_scopes_each_tenant_to_its_namespace(tmp_path: Path) -> None:
    """The stand-in for the operator's merge, on cases whose answers are known: the namespace
    matcher and `continue` on each config's top route, nested child routes with their own
    receivers, match types and `continue`, and fields it does not model refused."""
    config = {
        "metadata": {"name": "r", "namespace": "a"},
        "spec": {"route": {"receiver": "x", "routes": []}, "receivers": [{"name": "x"}]},
    }
    assert receivers(merge([config]), {"namespace": "a"}, tmp_path) == ["a/r/x"]
    assert receivers(merge([config]), {"namespace": "b"}, tmp_path) == [ROOT]
    assert receivers(merge([config], scoped=False), {"namespace": "b"}, tmp_path) == ["a/r/x"]
    team = {"name": "team", "value": "ml|data", "matchType": "=~"}
    nested: dict[str, Any] = {
        "metadata": {"name": "n", "namespace": "a"},
        "spec": {
            "route": {
                "receiver": "x",
                "groupBy": ["alertname"],
                "routes": [
                    {
                        "receiver": "y",
                        "matchers": [team],
                        "continue": True,
                        "routes": [
                            {"receiver": "z", "matchers": [{"name": "severity", "value": "page", "matchType": "!="}]},
                        ],
                    },
                    {"receiver": "w", "matchers": [{"name": "owner", "value": "model-owner"}]},
                ],
            },
            "receivers": [{"name": name} for name in "xyzw"],
        },
    }
    merged = merge([nested])
    (top,) = merged["route"]["routes"]
    assert top["matchers"] == ['namespace="a"'] and top["continue"] is True and top["group_by"] == ["alertname"]
    assert top["routes"][0]["matchers"] == ['team=~"ml|data"'] and top["routes"][0]["continue"] is True
    routed = {
        "a team=ml warning, y's child": ({"namespace": "a", "team": "ml", "severity": "warning"}, ["a/n/z"]),
        "a team=ml page: y": ({"namespace": "a", "team": "ml", "severity": "page"}, ["a/n/y"]),
        "a team=mlx (anchored): x": ({"namespace": "a", "team": "mlx"}, ["a/n/x"]),
        "a team=data model-owner: y, continue, w": (
            {"namespace": "a", "team": "data", "severity": "page", "owner": "model-owner"},
            ["a/n/y", "a/n/w"],
        ),
        "b team=ml: root": ({"namespace": "b", "team": "ml"}, [ROOT]),
    }
    for case, (labels, expected) in routed.items():
        assert receivers(merged, labels, tmp_path) == expected, case
    regex = {**nested, "spec": {**nested["spec"], "route": {"receiver": "x", "routes": [
        {"receiver": "y", "matchers": [{"name": "team", "value": "ml.*", "regex": True}]},
    ]}}}  # fmt: skip
    assert merge([regex])["route"]["routes"][0]["routes"][0]["matchers"] == ['team=~"ml.*"']
    for broken in ({"muteTimeIntervals": ["night"]}, {"matchers": [{**team, "matchType": "=="}]}):
        refused = {
            **nested,
            "spec": {**nested["spec"], "route": {"receiver": "x", "routes": [{"receiver": "y", **broken}]}},
        }
        with pytest.raises(ValueError):
            merge([refused])


@pytest.mark.integration
def test_drift_scraped_from_pricing_pages_pricings_owner_never_frauds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """issue 29 (forged alerts): a pricing pod pushed fraud's drift labels, and ModelDriftDetected
    paged fraud's owner. Scraped from pricing's own Pushgateway the alert carries
    namespace="pricing" (the promtool case "a drift push forged in pricing's namespace"), and every
    tenant's rendered AlertmanagerConfig, merged as the operator merges them and routed by
    Alertmanager's own router, sends it to pricing's owner only. Positive control first: fraud's
    own drift pages fraud's owner. Then the routes broken on purpose (pipeline matchers without
    the namespace, an operator that does not scope by namespace): the forged alert reaches fraud."""
    from pipelines.alerting import OwnerRoute
    from pipelines.tenancy import load

    merged = merge(_rendered_routing())
    fraud = receivers(merged, _drift_alert("drift, as the drift step pushes it"), tmp_path)
    assert fraud == ["fraud/mlops-alert-routing/fraud-owner"]
    forged = _drift_alert("a drift push forged in pricing's namespace")
    assert forged["namespace"] == "pricing" and forged["pipeline"] == "fraud"
    routed = receivers(merged, forged, tmp_path)
    assert routed and all(receiver.startswith("pricing/") for receiver in routed), routed
    owners = {
        f"pricing/{config['metadata']['name']}/{receiver['name']}": receiver["emailConfigs"][0]["to"]
        for config in _rendered_routing()
        if config["metadata"]["namespace"] == "pricing"
        for receiver in config["spec"]["receivers"]
        if "emailConfigs" in receiver
    }
    (pricing_owner,) = [t.owner for t in load(REPO / "manifests").tenants if t.name == "pricing"]
    assert [owners.get(receiver) for receiver in routed] == [pricing_owner]
    monkeypatch.setattr(OwnerRoute, "matchers", property(lambda r: {"owner": "model-owner", "pipeline": r.pipeline}))
    broken = receivers(merge(_rendered_routing(), scoped=False), forged, tmp_path)
    assert "fraud/mlops-alert-routing/fraud-owner" in broken


@pytest.mark.integration
def test_a_dropping_decision_log_pages_its_tenants_owner(tmp_path: Path) -> None:
    """issue 32: DecisionLogDropping, as its promtool case raises it (the serving pod's namespace, no
    pipeline), reaches the owner declared with the tenant through the tenant's catch-all route, in
    every tenant's rendered AlertmanagerConfig merged as the operator merges them; the same alert
    from another namespace never reaches fraud's. The control broken on purpose: without the
    namespace label it goes to the root route, no owner."""
    from pipelines.tenancy import load

    tests = yaml.safe_load((REPO / "tests" / "monitoring" / "prometheus-rules.test.yaml").read_text())
    case = next(
        case
        for test in tests["tests"]
        if test["name"] == "decision log"
        for case in test["alert_rule_test"]
        if case["alertname"] == "DecisionLogDropping" and case["exp_alerts"]
    )
    alert = {"alertname": "DecisionLogDropping", **case["exp_alerts"][0]["exp_labels"]}
    assert alert["namespace"] == "fraud" and "pipeline" not in alert
    merged = merge(_rendered_routing())
    routed = receivers(merged, alert, tmp_path)
    (fraud,) = [t for t in load(REPO / "manifests").tenants if t.name == "fraud"]
    assert fraud.owner and routed == ["fraud/mlops-alert-routing/fraud-tenant-owner"], routed
    elsewhere = receivers(merged, {**alert, "namespace": "pricing"}, tmp_path)
    assert elsewhere and not any(receiver.startswith("fraud/") for receiver in elsewhere), elsewhere
    unscoped = {key: value for key, value in alert.items() if key != "namespace"}
    assert receivers(merged, unscoped, tmp_path) == [ROOT]
