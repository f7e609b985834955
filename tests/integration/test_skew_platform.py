"""The skew check on the platform's stores: the pipelined HMGET on the real Redis against Feast's
point-in-time join over the offline Parquet in S3, after `mlops run fraud` on the platform
profile. In step as run; one entity's value overwritten in Redis (an online store written by
something other than materialize) is named, and the command exits 1."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.conftest import mlops

pytestmark = pytest.mark.integration


def test_skew_check_passes_on_the_platform_run_and_names_an_overwritten_feature(platform_run: dict[str, Any]) -> None:
    from components.environment import temporary_env
    from components.serving.online_reader import OnlineFeatureReader
    from components.steps import skew
    from components.steps.materialize import open_store
    from devstack.tenants import platform_variables
    from pipelines.fraud import pipeline as fraud

    env = platform_run["env"]
    passed = mlops(env, "skew-check", "fraud", "--sample", "40")
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "in step: online features equal" in passed.stdout and "SKEW" not in passed.stdout

    m = fraud.DECLARATION.config().materialize
    with temporary_env(platform_variables(env)):
        store = open_store(m.project)
        reader = OnlineFeatureReader(store, m.feature_service)
        user = int(
            skew.latest_events(store, m.feature_service, m.entity_column, m.timestamp_column)[m.entity_column].iloc[0]
        )
        key, field = reader.location({m.entity_column: user}, "txn_count_24h")
        original = reader.client.hget(key, field)
        assert original is not None
        try:
            reader.client.hset(key, field, b"\x20" + bytes([99]))  # Feast's Value proto: int64 99
            broken = mlops(env, "skew-check", "fraud", "--sample", "100000")  # every entity, so this one too
        finally:
            reader.client.hset(key, field, original)
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert "txn_count_24h" in broken.stdout and "SKEW in 1 of" in broken.stdout
    assert all("SKEW" not in line for line in broken.stdout.splitlines() if line.strip().startswith("amount_avg_7d"))
