"""issue 29: the scoring transformer reaches only what a request needs.

`allow-platform-egress` selected every pod of a pipelines namespace, so the transformer, which
serves requests, also reached MLflow, MinIO and the Pushgateway, against required-flows.yaml's
"never". The transformer's rows of required-flows.yaml are allowed (its predictor, its Redis, the
pool, DNS: the positive control), each row of its `forbidden` section is denied, and the old
select-all rule, put back on purpose, shows those flows open: the check sees the leak. Evaluated
with the test-side evaluator (networkpolicy_evaluator_without_cni.py) on every overlay with every
tenant as kustomize renders them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.manifests.network_platform import FLOWS, Cluster, cluster, endpoints, pipelines_namespaces
from tests.manifests.networkpolicy_evaluator_without_cni import Evaluator

TRANSFORMERS = {"transformer", "tenant-transformer", "shared-transformer"}


@pytest.fixture(scope="module", params=["dev", "prod"])
def platform(request: pytest.FixtureRequest, schemas_dir: Path) -> Cluster:
    return cluster(request.param)


Flow = tuple[str, Any, Any, dict[str, Any]]


def flows(rows: list[dict[str, Any]], namespaces: dict[str, dict[str, str]]) -> Iterator[Flow]:
    """(name, source, target, row) of each row between each pair of its endpoints; a {pipelines}
    endpoint pairs with its own namespace only."""
    pipelines = set(pipelines_namespaces(namespaces))
    for row in rows:
        for source in endpoints(row["from"], namespaces):
            for target in endpoints(row["to"], namespaces):
                ends = (getattr(source, "namespace", ""), getattr(target, "namespace", ""))
                if set(ends) <= pipelines and ends[0] != ends[1]:
                    continue
                yield f"{row['from']}@{ends[0]} -> {row['to']}@{ends[1]}:{row['port']}", source, target, row


def opened(evaluator: Evaluator, rows: list[dict[str, Any]], namespaces: dict[str, dict[str, str]]) -> list[str]:
    """The names of the flows the policies allow."""
    return [
        name
        for name, source, target, row in flows(rows, namespaces)
        if evaluator.allowed(source, target, row["port"], row.get("protocol", "TCP"))
    ]


def test_the_transformer_reaches_its_predictor_redis_pool_and_dns_and_nothing_else(platform: Cluster) -> None:
    """The positive control first: every row from a transformer is allowed (MinIO among them: its
    decision log, issue 32). Then every forbidden row (MLflow, a Pushgateway, PostgreSQL) is denied,
    in every pipelines namespace."""
    needed = [row for row in FLOWS["flows"] if row["from"] in TRANSFORMERS]
    assert {row["to"] for row in needed} >= {"predictor", "tenant-redis", "kube-dns", "minio"}, "the rows are there"
    every = [name for name, *_ in flows(needed, platform.namespaces)]
    assert len(every) >= len(needed) and opened(platform.evaluator, needed, platform.namespaces) == every
    forbidden = FLOWS["forbidden"]
    assert {row["to"] for row in forbidden} >= {"mlflow", "pushgateway", "postgres"}
    assert {row["from"] for row in forbidden} <= TRANSFORMERS
    assert opened(platform.evaluator, forbidden, platform.namespaces) == []


def test_the_old_select_all_platform_egress_shows_the_leak(platform: Cluster) -> None:
    """The control broken on purpose, for each row of required-flows.yaml's `forbidden`. With no
    NetworkPolicy at all every row is open from every pipelines namespace: the check sees each one.
    allow-platform-egress selecting every pod again, as before the fix, opens exactly the rows that
    rule's egress names on its own (MLflow), whole, in every pipelines namespace; the
    others (a Pushgateway, PostgreSQL) stay closed by their targets' ingress."""
    forbidden, namespaces = FLOWS["forbidden"], pipelines_namespaces(platform.namespaces)
    by_row = {row["to"]: [name for name, *_ in flows([row], platform.namespaces)] for row in forbidden}
    assert len(by_row) == len(forbidden) and all(len(names) == len(namespaces) for names in by_row.values())
    every = [name for names in by_row.values() for name in names]
    assert opened(Evaluator([]), forbidden, platform.namespaces) == every

    def open_rows(evaluator: Evaluator) -> set[str]:
        found = set(opened(evaluator, forbidden, platform.namespaces))
        assert all(set(names) <= found or not set(names) & found for names in by_row.values()), found  # whole
        return {to for to, names in by_row.items() if set(names) <= found}

    old_rules = [
        {**policy, "spec": {**policy["spec"], "podSelector": {}}}
        for policy in platform.evaluator.policies
        if policy["metadata"]["name"] == "allow-platform-egress"
    ]
    assert len(old_rules) == len(namespaces)
    named = open_rows(Evaluator(old_rules))  # what the old rule admits, with nothing else in the way
    assert named and named < set(by_row), named
    policies = [
        next((old for old in old_rules if old["metadata"] == policy["metadata"]), policy)
        for policy in platform.evaluator.policies
    ]
    assert len(policies) == len(platform.evaluator.policies) and sum(p in old_rules for p in policies) == len(old_rules)
    assert open_rows(Evaluator(policies)) == named
