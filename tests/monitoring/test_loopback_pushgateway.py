"""The loopback Pushgateway (devstack/monitoring.py) starts empty and keeps its own state; with
tenants, each tenant's takes only the tenant's own password.

Issue 28's end-to-end test found it: Debian's prometheus-pushgateway defaults to
--persistence.file=/var/lib/prometheus/pushgateway.data, one file for every instance on the
machine, so a fresh stack started with the groups any earlier one was pushed (the owner's notices,
which fire for a day, reached the next run's "nothing is posted" control).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from devstack import process, tenant_pushgateways
from devstack.monitoring import Monitoring
from devstack.tenant_pushgateways import Gateway

pytestmark = pytest.mark.integration  # Debian's prometheus-pushgateway, installed by `make test`


def groups(services: Monitoring) -> list[dict[str, str]]:
    answer = requests.get(services.url("pushgateway") + "/api/v1/metrics", timeout=5).json()
    return [group["labels"] for group in answer["data"]]


def test_a_second_stack_does_not_start_with_the_first_ones_pushes(tmp_path: Path) -> None:
    first = Monitoring(root=tmp_path / "first", port_base=process.free_port_base(3))
    try:
        first.up()
        pushed = requests.put(
            first.url("pushgateway") + "/metrics/job/loopback-probe/namespace/fraud",
            data="probe_value 1\n",
            timeout=5,
        )
        assert pushed.status_code == 200 and {"job": "loopback-probe", "namespace": "fraud"} in groups(first)
    finally:
        first.down()  # the Pushgateway writes its persistence file on shutdown
    assert (tmp_path / "first" / "pushgateway.data").exists(), "the group was persisted under the stack's root"
    second = Monitoring(root=tmp_path / "second", port_base=process.free_port_base(3))
    try:
        second.up()
        assert groups(second) == []
    finally:
        second.down()


def test_each_tenants_gateway_takes_only_its_own_password_which_no_command_line_or_file_holds(
    tmp_path: Path,
) -> None:
    """issue 29 on loopback (`mlops dev up --monitoring --tenancy`): no NetworkPolicy keeps pricing
    off fraud's Pushgateway there, so each tenant's asks for the tenant's password. Positive control
    first (each tenant's push on its own gateway), then pricing on fraud's, with its password and with
    none; the passwords are on no command line and in no web config (bcrypt hashes only), and the
    tenant keeps its port and password when the gateways are listed again."""
    services = Monitoring(root=tmp_path, port_base=process.free_port_base(3), tenants=("fraud", "pricing"))
    gateways = {gateway.tenant: gateway for gateway in services.gateways()}
    started = []
    try:
        for service, argv, ready in services.starts():
            if service.startswith("pushgateway-"):
                services.start(service, argv, ready)
                started.append(service)
        fraud, pricing = gateways["fraud"], gateways["pricing"]

        def push(gateway: Gateway, auth: tuple[str, str] | None) -> int:
            url = gateway.url + "/metrics/job/probe/namespace/fraud"
            return requests.put(url, data="probe_value 1\n", auth=auth, timeout=5).status_code

        assert push(fraud, ("fraud", fraud.password)) == 200 and push(pricing, ("pricing", pricing.password)) == 200
        assert push(fraud, ("pricing", pricing.password)) == 401
        assert push(fraud, ("fraud", pricing.password)) == 401
        assert push(fraud, None) == 401

        secrets = {fraud.password, pricing.password, fraud.scrape_password, pricing.scrape_password}
        for service in started:
            pid = process.read_pid(services.pid_file(service))
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode()
            assert "--web.config.file=" in cmdline and not any(secret in cmdline for secret in secrets)
        for gateway in gateways.values():
            web_config = tenant_pushgateways.web_config_file(tmp_path, gateway).read_text()
            assert "$2b$" in web_config and not any(secret in web_config for secret in secrets)
        assert {gateway.tenant: gateway for gateway in services.gateways()} == gateways
    finally:
        services.down()
