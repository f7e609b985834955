"""Each tenant's AlertmanagerConfig: its pipelines' owners for model-owner alerts, on-call for the rest."""

from __future__ import annotations

from pathlib import Path

import yaml

from pipelines.alerting import ONCALL, alertmanager_config, alertmanager_yaml
from pipelines.local import available_pipelines, declaration

REPO = Path(__file__).resolve().parents[2]


def _configs() -> list:  # type: ignore[type-arg]
    return [declaration(name).config() for name in available_pipelines()]


def test_the_fraud_tenant_mails_its_owner_and_pages_oncall_for_the_rest(schemas_dir: Path) -> None:
    from mlops.lint import _check, _crd_schema

    fraud = declaration("fraud").config()
    document = alertmanager_config("fraud", _configs())
    schema = _crd_schema("monitoring.coreos.com", "AlertmanagerConfig", "v1alpha1")
    assert schema is not None
    assert _check(document, schema) is None
    broken = {**document, "spec": {**document["spec"], "route": {**document["spec"]["route"], "groupWait": 30}}}
    assert "groupWait" in str(_check(broken, schema))  # the schema does refuse a wrong field
    route = document["spec"]["route"]
    assert route["receiver"] == ONCALL
    assert [r["receiver"] for r in route["routes"]] == ["fraud-owner"]  # only fraud's pipelines
    assert route["routes"][0]["matchers"] == [
        {"name": "owner", "value": "model-owner"},
        {"name": "pipeline", "value": "fraud"},
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
    assert routes["fraud-owner"] == ['owner="model-owner"', 'pipeline="fraud"']
    hooks = {r["name"]: r["webhook_configs"][0]["url"] for r in native["receivers"]}
    assert hooks["fraud-owner"] == "http://127.0.0.1:1/hook?owner=fraud-ml-oncall%40bank.internal"
    assert hooks[ONCALL] == "http://127.0.0.1:1/hook"
