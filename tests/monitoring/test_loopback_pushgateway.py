"""The loopback Pushgateway (devstack/monitoring.py) starts empty and keeps its own state.

Issue 28's end-to-end test found it: Debian's prometheus-pushgateway defaults to
--persistence.file=/var/lib/prometheus/pushgateway.data, one file for every instance on the
machine, so a fresh stack started with the groups any earlier one was pushed (the owner's notices,
which fire for a day, reached the next run's "nothing is posted" control).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from devstack import process
from devstack.monitoring import Monitoring

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
