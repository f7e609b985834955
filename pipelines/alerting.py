"""Who an alert pages: the model's owner for what the model's data and pipeline do, on-call for the platform.

One routing model, rendered twice: as each tenant's `AlertmanagerConfig` (the Prometheus
Operator scopes it to the tenant's namespace) and as a plain alertmanager.yml for the loopback
Alertmanager that `mlops dev up --monitoring` and the tests start. The rules
(manifests/monitoring/prometheus-rules.yaml) label each alert `owner: model-owner` or
`owner: platform`; a model-owner alert that names a pipeline goes to that pipeline's `owner`
(its config.yaml, or manifests/tenants/tenants.yaml for a pipeline a team keeps in its own
repository), a model-owner alert of a tenant's namespace that no pipeline route catches (a
pipeline the platform has not seen) to the tenant's declared owner, everything else to the
platform's on-call receiver.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from components.config import PipelineConfig

__all__ = [
    "GROUP_BY",
    "ONCALL",
    "ONCALL_SECRET",
    "OwnerRoute",
    "TenantOwnerRoute",
    "alertmanager_config",
    "alertmanager_yaml",
    "owner_routes",
]

ONCALL = "platform-oncall"
ONCALL_SECRET = {"name": "platform-oncall-webhook", "key": "url"}
"""The on-call pager's webhook URL, a Secret in each tenant namespace (the platform team sets it)."""
GROUP_BY = ["alertname", "pipeline", "model"]


@dataclass(frozen=True, kw_only=True)
class OwnerRoute:
    pipeline: str
    owner: str
    namespace: str

    @property
    def receiver(self) -> str:
        return f"{self.pipeline}-owner"

    @property
    def matchers(self) -> dict[str, str]:
        """The pipeline's name and its namespace (issue 29): a pipeline label is the pusher's
        choice, the namespace the scrape's (pipelines/tenant_monitoring.py), so a series pushed
        in pricing's namespace with `pipeline="fraud"` never matches fraud's owner's route."""
        return {"owner": "model-owner", "pipeline": self.pipeline, "namespace": self.namespace}


@dataclass(frozen=True, kw_only=True)
class TenantOwnerRoute:
    """The catch-all after the pipelines' routes: a model-owner alert of the tenant's namespace
    whose pipeline has no route of its own goes to the owner declared with the tenant."""

    tenant: str
    owner: str

    @property
    def receiver(self) -> str:
        return f"{self.tenant}-tenant-owner"

    @property
    def matchers(self) -> dict[str, str]:
        return {"owner": "model-owner", "namespace": self.tenant}


def owner_routes(configs: Iterable[PipelineConfig], declared: Iterable[OwnerRoute] = ()) -> list[OwnerRoute]:
    """One route per pipeline: the installed ones' from their configs, then the declared ones (a
    team's own repository) whose name no installed pipeline takes."""
    found = {c.pipeline: OwnerRoute(pipeline=c.pipeline, owner=c.owner, namespace=c.cluster.namespace) for c in configs}
    for route in declared:
        found.setdefault(route.pipeline, route)
    return [found[name] for name in sorted(found)]


def alertmanager_config(
    tenant: str,
    configs: Iterable[PipelineConfig],
    *,
    owner: str = "",
    declared: Iterable[OwnerRoute] = (),
) -> dict[str, Any]:
    """The tenant's AlertmanagerConfig: its pipelines' owners by email, then (with `owner`) the
    tenant's owner for its namespace's other model-owner alerts, the rest to on-call."""
    routes = [route for route in owner_routes(configs, declared) if route.namespace == tenant]
    catch_all = [TenantOwnerRoute(tenant=tenant, owner=owner)] if owner else []
    every: list[OwnerRoute | TenantOwnerRoute] = [*routes, *catch_all]
    return {
        "apiVersion": "monitoring.coreos.com/v1alpha1",
        "kind": "AlertmanagerConfig",
        "metadata": {
            "name": "mlops-alert-routing",
            "namespace": tenant,
            "labels": {"alertmanagerConfig": "mlops"},
            "annotations": {"mlops.private-platform.io/generated-by": "make golden (pipelines/alerting.py)"},
        },
        "spec": {
            "route": {
                "receiver": ONCALL,
                "groupBy": GROUP_BY,
                "groupWait": "30s",
                "groupInterval": "5m",
                "repeatInterval": "12h",
                "routes": [
                    {
                        "receiver": route.receiver,
                        "matchers": [{"name": k, "value": v} for k, v in route.matchers.items()],  # equality
                        "repeatInterval": "24h",  # drift is a daily fact: once a day is enough
                    }
                    for route in every
                ],
            },
            "receivers": [
                {"name": ONCALL, "webhookConfigs": [{"urlSecret": dict(ONCALL_SECRET), "sendResolved": True}]},
                *(
                    {"name": route.receiver, "emailConfigs": [{"to": route.owner, "sendResolved": True}]}
                    for route in every
                ),
            ],
        },
    }


def alertmanager_yaml(
    configs: Iterable[PipelineConfig],
    webhook_url: str,
    *,
    group_wait: str = "1s",
    tenants: Iterable[TenantOwnerRoute] = (),
    declared: Iterable[OwnerRoute] = (),
) -> dict[str, Any]:
    """The same routes for a plain Alertmanager on a laptop: every receiver is `webhook_url`, the
    owner's with `?owner=<address>` so what arrives says whom the cluster would have mailed; each
    tenant's catch-all after every pipeline's route."""
    routes: list[OwnerRoute | TenantOwnerRoute] = [*owner_routes(configs, declared), *tenants]

    def webhook(owner: str = "") -> dict[str, Any]:
        url = f"{webhook_url}?owner={quote(owner)}" if owner else webhook_url
        return {"webhook_configs": [{"url": url, "send_resolved": True}]} if webhook_url else {}

    return {
        "route": {
            "receiver": ONCALL,
            "group_by": GROUP_BY,
            "group_wait": group_wait,
            "group_interval": "5s",
            "repeat_interval": "12h",
            "routes": [
                {
                    "receiver": route.receiver,
                    "matchers": [f'{k}="{v}"' for k, v in route.matchers.items()],
                }
                for route in routes
            ],
        },
        "receivers": [
            {"name": ONCALL, **webhook()},
            *({"name": route.receiver, **webhook(route.owner)} for route in routes),
        ],
    }
