"""`materialize.engine: ray` (issue 33 item 2): Feast's Ray offline store gives the single-node
engine's result, row for row, on the same data; on the cluster the step launches a RayJob.

One local Ray (two CPUs) serves the module. The RayJob tests play KubeRay with a stand-in for the API
server (tests/kuberay_stand_in.py: bodies held to KubeRay's CRD, status moving as the operator moves
it) whose "driver" is the RayJob's own entrypoint, run here on that local Ray: everything else is
real (the rendering, the filled arguments, the staging, the Ray engine, the fetch).
"""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from components.config import MaterializeSettings
from components.errors import ComponentError, TransientError
from components.steps import materialize_ray
from components.steps.materialize import materialize, online_features
from pipelines.fraud import pipeline as fraud
from pipelines.rayjob import launcher_template
from tests.conftest import FEATURE_REPO, MATERIALIZE_SETTINGS
from tests.kuberay_stand_in import KubeRayStandIn

RAY = MATERIALIZE_SETTINGS.model_copy(update={"engine": "ray"})
SETS = ("train.parquet", "holdout.parquet")


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    import ray

    materialize_ray.start_ray(RAY.ray)  # the step's own start: a local Ray of ray.local_cpus CPUs
    assert ray.cluster_resources().get("CPU") == RAY.ray.local_cpus
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pipelines.fraud.data import generate

    path = tmp_path_factory.mktemp("ray-data") / "transactions.parquet"
    generate(3000, 5).to_parquet(path, index=False)
    return path


def _run(data: Path, out: Path, settings: MaterializeSettings) -> dict[str, Any]:
    return materialize(
        str(data), str(FEATURE_REPO), str(out / SETS[0]), str(out / SETS[1]), settings=settings,
        store_dir=str(out / "store"), offline_uri=str(out / "offline" / "fraud_events.parquet"),
        lineage_out=str(out / "lineage.json"),
    )  # fmt: skip


@pytest.fixture(scope="module")
def single_node(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("single-node")
    _run(data, out, MATERIALIZE_SETTINGS)
    return out


def _same_sets(expected: Path, got: Path) -> None:
    for name in SETS:
        want, have = pd.read_parquet(expected / name), pd.read_parquet(got / name)
        assert len(want) > 100 and want[want.columns[3:-1]].notna().all().all(), "a real set, its features joined"
        pd.testing.assert_frame_equal(have, want, check_exact=True)


def _same_online(data: Path, expected: Path, got: Path) -> None:
    rows = [{"user_id": int(user)} for user in sorted(pd.read_parquet(data)["user_id"].unique())]
    want = online_features("fraud", "fraud_model_v1", rows, store_dir=str(expected / "store"))
    have = online_features("fraud", "fraud_model_v1", rows, store_dir=str(got / "store"))
    assert want == have and any(value is not None for value in want["txn_count_24h"])


def test_the_ray_engine_gives_the_single_node_result_row_for_row(
    local_ray: None, data: Path, single_node: Path, tmp_path: Path
) -> None:
    """The point-in-time join on Feast's Ray offline store: the same train and holdout sets (values,
    types, order) and the same online features."""
    summary = _run(data, tmp_path, RAY)
    store = materialize_ray.engine_config({"registry": str(tmp_path / "r.db")}, RAY.ray)
    assert store["offline_store"]["type"] == "ray" and "batch_engine" not in store  # the online write: docstring
    _same_sets(single_node, tmp_path)
    _same_online(data, single_node, tmp_path)
    assert summary["online_entities_written"] == pd.read_parquet(data)["user_id"].nunique()


def test_the_comparison_sees_a_set_that_differs(single_node: Path, tmp_path: Path) -> None:
    """Negative control of the equality above: one feature value changed in one row is seen."""
    for name in SETS:
        frame = pd.read_parquet(single_node / name)
        frame.loc[len(frame) // 2, "amount"] += 0.01
        frame.to_parquet(tmp_path / name, index=False)
    with pytest.raises(AssertionError, match="amount"):
        _same_sets(single_node, tmp_path)


def _template(namespace: str = "fraud") -> dict[str, Any]:
    cfg = fraud.DECLARATION.config().with_overrides({"materialize.engine": "ray"})
    job = launcher_template(fraud.DECLARATION.spec, fraud.DECLARATION.spec.step("materialize"), cfg)
    job["metadata"]["namespace"] = namespace  # in a pod: the service account's namespace file
    return job


def _driver(store_dir: Path) -> Any:
    """KubeRay's submitter, played here: the RayJob's entrypoint, its driver run on the local Ray with
    the store it would reach on the cluster (here: a folder)."""

    def run(job: dict[str, Any]) -> bool:
        command = shlex.split(job["spec"]["entrypoint"])
        assert command[:3] == ["python", "-m", "components.steps.materialize_ray"]
        arguments = json.loads(command[3])
        assert arguments["settings"]["engine"] == "ray"
        original = materialize_ray.main
        try:  # the platform's store is a service; here the driver's store is a folder
            from components.steps import materialize as step

            step_open = step.open_store
            step.open_store = lambda project, _dir=None, config=None, ray=None: step_open(
                project, store_dir, config, ray
            )  # type: ignore[assignment]
            return original([json.dumps(arguments)]) == 0
        finally:
            step.open_store = step_open  # type: ignore[assignment]

    return run


def test_on_the_cluster_the_step_launches_a_rayjob_and_fetches_what_it_made(
    local_ray: None, data: Path, single_node: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The task carries its rendered RayJob: the step creates it (strict, held to KubeRay's CRD),
    watches it through KubeRay's phases, and its outputs are the driver's, which are the
    single-node engine's."""
    api = KubeRayStandIn(_driver(tmp_path / "store"))
    monkeypatch.setenv(materialize_ray.TEMPLATE_VARIABLE, json.dumps(_template()))
    monkeypatch.setattr(materialize_ray, "_api", lambda: api)
    original = materialize_ray.launch
    monkeypatch.setattr(materialize_ray, "launch", lambda *a, **k: original(
        *a, **k, staging_root=str(tmp_path / "staging"), poll_seconds=0))  # fmt: skip
    summary = _run(data, tmp_path, RAY)
    (name,) = api.jobs
    assert name == "fraud-materialize-q7m4d" and api.seen[name] == ["none", "Initializing", "Running", "Complete"]
    assert summary["training_rows"] == len(pd.read_parquet(single_node / SETS[0]))
    _same_sets(single_node, tmp_path)
    assert json.loads((tmp_path / "lineage.json").read_text())["feature_service"]["name"] == "fraud_model_v1"


def test_a_failed_rayjob_is_reported_with_where_to_look(tmp_path: Path) -> None:
    api = KubeRayStandIn(lambda job: False)
    with pytest.raises(TransientError) as failed:
        materialize_ray.launch(_template(), {"dataset": "x"}, {"train_out": str(tmp_path / "t.parquet")}, api=api,
                               staging_root=str(tmp_path), poll_seconds=0)  # fmt: skip
    assert (
        "fraud/fraud-materialize-q7m4d failed" in failed.value.problem
        and '"jobStatus": "FAILED"' in failed.value.problem
    )
    assert "kubectl -n fraud logs" in failed.value.fix


def test_a_rayjob_the_api_server_refuses_fails_before_anything_runs(tmp_path: Path) -> None:
    """A field KubeRay's CRD does not declare is refused under strict validation (400), naming the field."""
    ran: list[str] = []
    template = _template()
    template["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["replica"] = 2  # misspelt
    with pytest.raises(ComponentError) as refused:
        materialize_ray.launch(template, {}, {}, api=KubeRayStandIn(lambda job: bool(ran.append("x"))),
                               staging_root=str(tmp_path), poll_seconds=0)  # fmt: skip
    assert 'unknown field "spec.rayClusterSpec.workerGroupSpecs[0].replica"' in refused.value.problem
    assert ran == [] and "mlops lint" in refused.value.fix


def test_the_driver_runs_as_a_module(tmp_path: Path) -> None:
    """The entrypoint's module runs `main` (a typo in it would fail only on the cluster)."""
    import subprocess

    done = subprocess.run([sys.executable, "-m", "components.steps.materialize_ray"], capture_output=True, text=True,
                          check=False)  # fmt: skip
    assert done.returncode != 0 and "the RayJob driver takes one argument" in done.stderr


def test_the_ray_engine_never_takes_feasts_windowed_join(local_ray: None, tmp_path: Path) -> None:
    """Above broadcast_join_threshold_mb (default 100 MB, about 2M rows of the fraud view) Feast's
    Ray store switches to a windowed join, which on a known case returns no feature at all: a
    feature row 10 minutes before an entity row in the same hour, and one 2 hours before it. The
    engine's config keeps every view on the broadcast join (the one the equality above checks)."""
    import ray
    from feast.infra.offline_stores.contrib.ray_offline_store.ray import (
        RayDataProcessor,
        RayOfflineStoreConfig,
        RayResourceManager,
    )

    config = materialize_ray.engine_config({"registry": str(tmp_path / "r.db")}, RAY.ray)["offline_store"]
    ours = RayResourceManager(RayOfflineStoreConfig(**config))
    assert ours.should_use_broadcast_join(1 << 40)  # a terabyte of feature rows: still broadcast
    default = RayResourceManager(RayOfflineStoreConfig(type="ray"))
    assert not default.should_use_broadcast_join(200 << 20)  # why: Feast's own default
    start = pd.Timestamp("2026-01-01", tz="UTC")
    features = pd.DataFrame(
        {
            "user": [1, 2],
            "count": [5, 7],
            "event_timestamp": [start + pd.Timedelta(minutes=10), start + pd.Timedelta(minutes=20)],
        }
    )
    later = [start + pd.Timedelta(hours=2), start + pd.Timedelta(minutes=30)]
    entities = pd.DataFrame({"user": [1, 2], "event_timestamp": later})
    windowed = (
        RayDataProcessor(default)
        .windowed_temporal_join(
            ray.data.from_pandas(entities), ray.data.from_pandas(features), ["user"], "event_timestamp", ["count"]
        )
        .to_pandas()
    )
    assert windowed["count"].isna().all()  # the right answer is 5 and 7
    broadcast = (
        RayDataProcessor(ours)
        .broadcast_join_features(ray.data.from_pandas(entities), features, ["user"], "event_timestamp", ["count"])
        .to_pandas()
    )
    assert broadcast.sort_values("user")["count"].tolist() == [5, 7]
