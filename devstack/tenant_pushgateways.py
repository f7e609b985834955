"""One Pushgateway per tenant on loopback, each behind basic auth: the cluster's arrangement without a CNI.

Issue 29: on the shared Pushgateway a pricing process pushed `mlops_drift_share 1` with fraud's
labels and paged fraud's owner. On the cluster each tenant now pushes only to the Pushgateway in
its own namespace, a NetworkPolicy admits only that namespace, and the scrape sets `namespace` from
where the target runs (pipelines/tenant_monitoring.py). On loopback every process reaches every
port, so the NetworkPolicy's part is played by a password: each tenant's gateway takes pushes from
the tenant's own user only (Prometheus's exporter-toolkit `--web.config.file`, bcrypt hashes), and
Prometheus scrapes it with a user of its own. The scrape is the cluster's: one target per tenant,
`namespace: <tenant>` set on the target, honor_labels false, and the cluster's metric relabelings
(the keep-list of the platform's `mlops_*` families), rendered by
pipelines.tenant_monitoring.prometheus_scrape_config, which the caller passes in (devstack sits
below pipelines, tests/test_architecture.py).

Each gateway's port and passwords are generated once and kept in `<monitoring>/gateways/<tenant>.json`
(mode 0600); a tenant provisioned on the stack (`mlops tenant add`) pushes with its own password,
the one it has everywhere else. The tenant's environment (`mlops tenant env NAME`) carries the URL,
user and password.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from components.platform.settings import PUSHGATEWAY_CREDENTIALS
from devstack import process

__all__ = [
    "BCRYPT_ROUNDS",
    "PORT_SEARCH",
    "SCRAPER",
    "Gateway",
    "ScrapeConfig",
    "argv",
    "ensure",
    "folder",
    "load",
    "scrape_configs",
    "scrape_password_file",
    "web_config_file",
]

SCRAPER = "prometheus"
"""Prometheus's own user on every tenant's gateway (it scrapes; a tenant's user pushes)."""
BCRYPT_ROUNDS = 10
PORT_SEARCH = 1000


@dataclass(frozen=True)
class Gateway:
    """A tenant's Pushgateway: its port, the tenant's push password and Prometheus's scrape password."""

    tenant: str
    port: int
    password: str
    scrape_password: str

    @property
    def service(self) -> str:
        return f"pushgateway-{self.tenant}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def environment(self) -> dict[str, str]:
        """What the tenant's processes get: this gateway's URL and the tenant's own credentials."""
        username, password = PUSHGATEWAY_CREDENTIALS
        return {"MLOPS_PUSHGATEWAY_URL": self.url, username: self.tenant, password: self.password}


def folder(root: Path) -> Path:
    return root / "gateways"


def load(root: Path) -> dict[str, Gateway]:
    found = {}
    for file in sorted(folder(root).glob("*.json")):
        gateway = Gateway(**json.loads(file.read_text()))
        found[gateway.tenant] = gateway
    return found


def ensure(
    root: Path, tenants: tuple[str, ...], first_port: int, passwords: Mapping[str, str] | None = None
) -> list[Gateway]:
    """Each tenant's gateway, generating the missing ones: a free port at or above `first_port`
    that no other gateway holds, two passwords; writes each one's web config (bcrypt hashes).
    A tenant provisioned on the stack (`passwords`) pushes with its one password, as it logs in
    everywhere else; the gateway reads its web config on each request, so no restart is needed."""
    known = load(root)
    gateways = []
    for tenant in tenants:
        gateway = known.get(tenant)
        wanted = (passwords or {}).get(tenant)
        if gateway is not None and wanted and gateway.password != wanted:
            gateway = replace(gateway, password=wanted)
            process.write_private(folder(root) / f"{tenant}.json", json.dumps(asdict(gateway), indent=2))
            known[tenant] = gateway
        if gateway is None:
            taken = {other.port for other in known.values()}
            port = next(
                port
                for port in range(first_port, first_port + PORT_SEARCH)
                if port not in taken and process.port_free(port)
            )
            gateway = Gateway(tenant, port, wanted or secrets.token_urlsafe(18), secrets.token_urlsafe(18))
            process.write_private(folder(root) / f"{tenant}.json", json.dumps(asdict(gateway), indent=2))
            known[tenant] = gateway
        _write_web_config(root, gateway)
        gateways.append(gateway)
    return gateways


def web_config_file(root: Path, gateway: Gateway) -> Path:
    return folder(root) / gateway.tenant / "web.yml"


def scrape_password_file(root: Path, gateway: Gateway) -> Path:
    return folder(root) / gateway.tenant / "scrape-password"


def _write_web_config(root: Path, gateway: Gateway) -> None:
    """The exporter-toolkit web config: the tenant's user and Prometheus's, as bcrypt hashes."""
    import bcrypt

    def hashed(password: str) -> str:
        return bcrypt.hashpw(password.encode(), bcrypt.gensalt(BCRYPT_ROUNDS)).decode()

    file = web_config_file(root, gateway)
    if file.exists() and _matches(file, gateway):
        return  # hashing takes a while; the same users need no new file
    users = {gateway.tenant: hashed(gateway.password), SCRAPER: hashed(gateway.scrape_password)}
    process.write_private(file, yaml.safe_dump({"basic_auth_users": users}))
    process.write_private(scrape_password_file(root, gateway), gateway.scrape_password)


def _matches(file: Path, gateway: Gateway) -> bool:
    import bcrypt

    users = (yaml.safe_load(file.read_text()) or {}).get("basic_auth_users", {})
    expected = {gateway.tenant: gateway.password, SCRAPER: gateway.scrape_password}
    return set(users) == set(expected) and all(
        bcrypt.checkpw(password.encode(), str(users[user]).encode()) for user, password in expected.items()
    )


def argv(binary: str, root: Path, gateway: Gateway) -> list[str]:
    return [
        binary,
        f"--web.listen-address=127.0.0.1:{gateway.port}",
        f"--web.config.file={web_config_file(root, gateway)}",
        # its own file: Debian's default is one file for every instance on the machine
        f"--persistence.file={folder(root) / gateway.tenant / 'pushgateway.data'}",
    ]


ScrapeConfig = Callable[[str, str], dict[str, Any]]
"""(namespace, host:port) -> one prometheus.yml scrape job: the cluster's rules for a namespace's
gateway (pipelines.tenant_monitoring.prometheus_scrape_config), handed down as data."""


def scrape_configs(root: Path, gateways: list[Gateway], scrape: ScrapeConfig) -> list[dict[str, Any]]:
    """One scrape job per tenant's gateway as `scrape` renders it (the target says its namespace,
    pushed labels do not win, only the kept families stay), with Prometheus's own credentials."""
    return [
        {
            **scrape(gateway.tenant, f"127.0.0.1:{gateway.port}"),
            "basic_auth": {"username": SCRAPER, "password_file": str(scrape_password_file(root, gateway))},
        }
        for gateway in gateways
    ]
