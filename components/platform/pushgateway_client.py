"""How a step pushes to its Pushgateway: with the tenant's basic-auth credentials when it has them.

The drift figures (components/steps/drift_metrics.py) and the owner's notices (components/steps/notify.py)
both go through `handler()`. On the cluster the environment holds no credentials and the push goes
plain: each tenant's Pushgateway runs in the tenant's own namespace, where a NetworkPolicy admits
only that namespace's pods (pipelines/tenant_monitoring.py). On loopback nothing keeps one tenant's
process off another's port, so each tenant's Pushgateway asks for basic auth
(devstack/tenant_pushgateways.py) and `mlops tenant env NAME` gives the tenant its own user and
password in the environment (components.platform.settings.PUSHGATEWAY_CREDENTIALS), never on a command line.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from components.errors import ComponentError
from components.platform.settings import PUSHGATEWAY_CREDENTIALS

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = ["Handler", "credentials", "handler", "push"]

Handler = Callable[..., Callable[[], None]]
"""prometheus_client's push handler: (url, method, timeout, headers, data) -> a callable that sends."""


def credentials(env: Mapping[str, str] | None = None) -> tuple[str, str] | None:
    """The (user, password) the environment gives for pushes, or None when it gives none."""
    source = os.environ if env is None else env
    username, password = (source.get(name, "") for name in PUSHGATEWAY_CREDENTIALS)
    if not username and not password:
        return None
    if not (username and password):
        missing = PUSHGATEWAY_CREDENTIALS[1] if username else PUSHGATEWAY_CREDENTIALS[0]
        raise ComponentError(
            "pushgateway",
            f"{missing} is not set while the other Pushgateway credential is",
            'set both from the tenant\'s environment (eval "$(mlops tenant env NAME)"), or neither',
        )
    return username, password


def handler(env: Mapping[str, str] | None = None) -> Handler:
    """The push handler for push_to_gateway/delete_from_gateway: basic auth with the tenant's
    credentials when the environment holds them, else prometheus_client's plain one."""
    from prometheus_client.exposition import basic_auth_handler, default_handler

    found = credentials(env)
    if found is None:
        plain: Handler = default_handler
        return plain
    username, password = found

    def authenticated(url: str, method: str, timeout: float | None, headers: list[Any], data: bytes) -> Any:
        return basic_auth_handler(url, method, timeout, headers, data, username, password)

    return authenticated


def push(step: str, url: str, *, job: str, grouping: dict[str, str], registry: CollectorRegistry, what: str) -> None:
    """Push one group with the tenant's credentials, each failure with its retry class: a refusal
    (4xx but 429: bad credentials, another tenant's gateway, a clashing HELP text) is permanent
    (exit 2) and names the group; an unreachable or overloaded gateway is transient (exit 75)."""
    from urllib.error import HTTPError

    from prometheus_client import push_to_gateway

    from components.errors import TransientError

    try:
        push_to_gateway(url, job=job, grouping_key=grouping, registry=registry, timeout=10, handler=handler())
    except HTTPError as error:
        if 400 <= error.code < 500 and error.code != 429:
            raise ComponentError(
                step,
                f"the Pushgateway at {url} refused {what} (HTTP {error.code}: {error.reason})",
                f"check that this namespace's credentials may push group {grouping} to its own Pushgateway"
                " (MLOPS_PUSHGATEWAY_URL; on loopback `mlops tenant env NAME` gives both)",
            ) from error
        raise TransientError(
            step, f"the Pushgateway at {url} did not take {what}: {error}", "check the Pushgateway"
        ) from error
    except OSError as error:  # URLError and connection errors are OSErrors
        raise TransientError(
            step,
            f"the Pushgateway at {url} did not take {what}: {error}",
            "check the namespace's Pushgateway (MLOPS_PUSHGATEWAY_URL in its mlops-platform ConfigMap)",
        ) from error
