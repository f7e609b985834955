"""`mlops audit` and `mlops decisions` (issue 32 item 2) on the embedded registry and a local decision log.

The model is the session's trained fraud model (tests/conftest.py: `trained`, `evaluated`), registered
here with a real lineage record (one more materialize of the session's raw data, with lineage_out) and a
serving-history entry, and a second version trained by the real steps. The log is written as the
transformer writes it: DecisionRecords built by components.serving.decision_log.records_of from real
holdout rows, scored by each registered artifact (loaded back from the registry through its model kind,
in float32 as Triton scores), as decision_record.table_of + write_file under the hive layout.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from tests.conftest import (
    FEATURE_REPO,
    FRAUD,
    MATERIALIZE_SETTINGS,
    REPO,
    SUITE,
    register_into,
    train_evaluate_register,
)

MODEL = "fraud-audit"
NAMESPACE = "fraud"
REASON = "holdout roc_auc beat the champion; signed off by risk-review"


def _predictor(mlflow: Any, version: int) -> tuple[dict[str, Any], Any]:
    """The registered artifact of `version`, loaded back by its model kind: (registration, predict)."""
    from components.model_kinds import kind_of_format
    from components.platform import model_registry

    registration, model_bytes = model_registry.load_registration(mlflow, MODEL, version)
    kind = kind_of_format(registration["model_format"])
    folder = Path(tempfile.mkdtemp(prefix="audit-model-"))
    (folder / kind.model_file).write_bytes(model_bytes)
    model = kind.load(folder / kind.model_file)
    return dict(registration), lambda matrix: np.asarray(kind.predict(model, matrix.astype(np.float32)))


def _records(registration: dict[str, Any], predict: Any, rows: pd.DataFrame, *, role: str, day: int) -> list[Any]:
    """One request of `rows` on 2026-12-<day>, as the transformer records it: the features scored in the
    model's order (the last row's entity unknown: its stored features are the defaults, 0.0), the model's
    own scores of exactly those vectors."""
    from components.serving.decision_log import Identity, Offer, records_of

    features = registration["features"]
    matrix = rows[features].to_numpy(np.float32)
    unknown = [False] * (len(rows) - 1) + [True]
    stored = [name for name in features if name not in MATERIALIZE_SETTINGS.request_features]
    matrix[-1, [features.index(name) for name in stored]] = 0.0
    identity = Identity(NAMESPACE, MODEL, registration["artifact_sha256"], role, "local", "user_id", 0.7)
    sent = [{"user_id": int(r.user_id), "amount": float(r.amount), "merchant_category": float(r.merchant_category)}
            for r in rows.itertuples()]  # fmt: skip
    offer = Offer(
        f"req-v{registration['version']}-d{day}",
        dt.datetime(2026, 12, day, 9, 30, tzinfo=dt.UTC) + dt.timedelta(minutes=registration["version"]),
        str(registration["version"]),
        sent,
        features,
        matrix,
        unknown,
        predict(matrix),
    )
    return records_of(offer, identity)


def write_log(root: Path, records: list[Any]) -> None:
    """The records as the sink flushes them: one file per (model, version, day) at decision_record's key."""
    from components.serving import decision_record

    groups: dict[tuple[str, str], list[Any]] = {}
    for record in records:
        groups.setdefault((record.model_version, record.day), []).append(record)
    for (version, day), batch in groups.items():
        key = decision_record.file_key(NAMESPACE, MODEL, version, day)
        path = root / key.removeprefix(decision_record.prefix(NAMESPACE))
        path.parent.mkdir(parents=True, exist_ok=True)
        decision_record.write_file(decision_record.table_of(batch), str(path))


@pytest.fixture(scope="module")
def logged(
    tmp_path_factory: pytest.TempPathFactory,
    raw_dataset: Path,
    materialized: dict[str, Any],
    trained: dict[str, Path],
    evaluated: dict[str, Path],
) -> Iterator[dict[str, Any]]:
    from components.platform import model_registry
    from components.steps.materialize import materialize

    root = tmp_path_factory.mktemp("audit")
    home = root / "registry"
    lineage = root / "lineage.json"
    materialize(str(raw_dataset), str(FEATURE_REPO), str(root / "train.parquet"), str(root / "holdout.parquet"),
                store_dir=str(root / "store"), settings=MATERIALIZE_SETTINGS, lineage_out=str(lineage))  # fmt: skip
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    config = yaml.safe_load((FRAUD / "config.yaml").read_text())
    register_into(root / "v1", home, trained["model"], trained["metadata"], evaluated["metrics"], model_name=MODEL,
                  lineage=str(lineage), suite_path=str(SUITE), config=config, git_commit=commit)  # fmt: skip
    train_evaluate_register(materialized, root / "v2", home, model_name=MODEL, params={"num_boost_round": 15})
    uri = f"sqlite:///{home}/mlflow.db"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        mlflow = model_registry.client()
        model_registry.append_history(mlflow, MODEL, model_registry.HistoryEntry(
            action="promote", to_version=1, from_version=None, traffic_percent=100, who="alice", reason=REASON,
            namespace=NAMESPACE, applied="kubernetes"))  # fmt: skip
        v1, predict1 = _predictor(mlflow, 1)
        v2, predict2 = _predictor(mlflow, 2)
        holdout = pd.read_parquet(materialized["holdout"])
        records = [
            *(_records(v1, predict1, holdout.iloc[4 * d : 4 * d + 4], role="champion", day=d) for d in (1, 2, 3)),
            *(_records(v2, predict2, holdout.iloc[40 + 3 * d : 43 + 3 * d], role="canary", day=d) for d in (2, 3)),
        ]
        flat = [record for batch in records for record in batch]
        honest = flat[0]
        tampered = replace(flat[1], request_id="req-tampered", score=flat[1].score + 0.05)
        foreign = replace(flat[2], request_id="req-foreign-bytes", model_sha256=v2["artifact_sha256"])
        log = root / "decisions"
        write_log(log, [*flat, tampered, foreign])
        chain = json.loads(lineage.read_text())
        yield {"log": log, "records": flat, "honest": honest, "tampered": tampered, "foreign": foreign,
               "v1": v1, "v2": v2, "lineage": chain, "commit": commit, "uri": uri}  # fmt: skip


def mlops(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """`mlops ARGS` in this process (the CLI's own main): exit code, stdout, stderr."""
    from mlops.cli import main

    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def registry(logged: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", logged["uri"])
    monkeypatch.delenv("MLOPS_DECISION_LOG_URI", raising=False)
    return logged


def test_a_logged_decision_is_audited_to_reproduced_with_its_version_promotion_lineage_and_features(
    registry: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    from components.lineage import file_sha256

    record, v1, lineage = registry["honest"], registry["v1"], registry["lineage"]
    code, out, err = mlops(capsys, "audit", record.decision_id, "--log", str(registry["log"]))
    assert code == 0, out + err
    assert f"{MODEL} v1 as champion" in out
    assert v1["artifact_sha256"] in out and "the same bytes" in out and "MISMATCH" not in out
    assert "promote v1 to 100%" in out and "by alice" in out and REASON in out
    assert "(after this decision)" in out  # promoted (in this test) after the logged day: said so
    assert lineage["feature_service"]["sha256"] in out and file_sha256(SUITE) in out and registry["commit"] in out
    assert all(d["digest"] in out for d in lineage["datasets"])
    lines = [line.split("=")[0].split()[-1] for line in out.splitlines() if " = " in line]
    assert lines == v1["features"]  # name = value, in the model's order
    for name, value in zip(record.feature_names, record.feature_values, strict=True):
        assert f"{name} = {value}" in out
    assert out.strip().splitlines()[-1].startswith("REPRODUCED")

    code, out, _ = mlops(capsys, "audit", record.decision_id, "--log", str(registry["log"]), "--json")
    found = json.loads(out)
    assert code == 0 and found["verdict"] == "REPRODUCED" and found["sha256_matches"] is True
    assert found["rescore"]["difference"] <= found["rescore"]["tolerance"] == 1e-5
    assert found["rescore"]["logged"] == record.score and [f["name"] for f in found["features"]] == v1["features"]
    assert found["serving_history"][0]["reason"] == REASON and found["model"]["version"] == 1


def test_the_default_log_is_under_mlops_home_and_the_platform_profile_names_the_tenants_prefix(
    registry: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from components.errors import ComponentError
    from components.platform.decisions import decision_log_root

    shutil.copytree(registry["log"], tmp_path / "decisions")
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    assert mlops(capsys, "audit", registry["honest"].decision_id)[0] == 0  # $MLOPS_HOME/decisions/, no --log
    platform = {"MLOPS_PROFILE": "platform", "MLOPS_SERVING_ROOT": "s3://models/pricing"}
    assert decision_log_root(env=platform) == "s3://decisions/pricing/"
    assert decision_log_root(env={**platform, "MLOPS_NAMESPACE": "fraud"}) == "s3://decisions/fraud/"
    assert decision_log_root("s3://decisions/other/", env=platform) == "s3://decisions/other/"
    shared = {"MLOPS_PROFILE": "platform", "MLOPS_SERVING_ROOT": "s3://models"}
    with pytest.raises(ComponentError, match="MLOPS_NAMESPACE"):  # the shared namespace: bucket roots, no tenant
        decision_log_root(env=shared)
    # a reader that knows the pipeline falls back to the namespace it serves in, as `mlops serve` logs there;
    # a tenant's own prefixes (or MLOPS_NAMESPACE) still win
    assert decision_log_root(env=shared, serving_namespace="fraud") == "s3://decisions/fraud/"
    assert decision_log_root(env=platform, serving_namespace="fraud") == "s3://decisions/pricing/"


@pytest.fixture
def shared_profile(registry: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    """The platform profile as `eval "$(mlops dev env)"` sets it: the buckets' roots, no tenant, no
    MLOPS_NAMESPACE, so the log is `s3://decisions/<namespace>/` and nothing names the namespace. The
    s3:// roots are read from folders under tmp (the one seam: decision_log.open_destination maps
    s3://<bucket>/<prefix> to tmp/<bucket>/<prefix>; the files, their discovery and reading are pyarrow's,
    as for S3; tests/integration/test_decision_loop.py reads the devstack's real S3)."""
    import pyarrow.fs as pafs

    from components.serving import decision_log
    from pipelines.local import available_pipelines, declaration

    buckets, original = tmp_path / "s3", decision_log.open_destination

    def on_disk(uri: str) -> tuple[Any, str]:
        if not uri.startswith("s3://"):
            return original(uri)
        return pafs.LocalFileSystem(), str(buckets / uri.removeprefix("s3://").rstrip("/"))

    monkeypatch.setattr(decision_log, "open_destination", on_disk)
    monkeypatch.setenv("MLOPS_PROFILE", "platform")
    monkeypatch.setenv("MLOPS_SERVING_ROOT", "s3://models")
    for variable in ("MLOPS_NAMESPACE", "MLOPS_MLFLOW_ARTIFACT_ROOT", "MLOPS_OFFLINE_STORE_URI"):
        monkeypatch.delenv(variable, raising=False)
    serving = sorted({declaration(name).config().promote.namespace for name in available_pipelines()})
    assert len(serving) > 1, serving  # more than one log to search, or the search is not tested
    return {**registry, "buckets": buckets, "serving": serving}


def test_a_bare_id_is_found_in_the_log_of_the_pipeline_namespace_it_was_served_in(
    shared_profile: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from components.platform.decisions import decision_log_root
    from pipelines.local import declaration

    namespace = declaration("fraud").config().promote.namespace  # where `mlops serve` logged it
    other = next(name for name in shared_profile["serving"] if name != namespace)
    decisions = shared_profile["buckets"] / "decisions"
    shutil.copytree(shared_profile["log"], decisions / namespace)
    (decisions / other).mkdir(parents=True)  # another pipeline's namespace: a log, but not this decision
    decision = shared_profile["honest"].decision_id
    with pytest.raises(Exception, match="MLOPS_NAMESPACE"):  # the settings alone name no log
        decision_log_root()
    code, out, err = mlops(capsys, "audit", decision)
    assert code == 0, out + err
    assert f"({decision_log_root(serving_namespace=namespace)})" in out.splitlines()[0]
    assert out.strip().splitlines()[-1].startswith("REPRODUCED")
    day = shared_profile["honest"].decided_at.date().isoformat()  # a model's list: its pipeline's namespace
    code, out, err = mlops(capsys, "decisions", MODEL, "--since", day, "--until", day, "--json")
    assert code == 0 and json.loads(out)["log"] == decision_log_root(serving_namespace=namespace), out + err
    assert decision in [d["decision_id"] for d in json.loads(out)["decisions"]]
    code, _, err = mlops(capsys, "audit", "req-never-sent/0")  # unknown: every log searched, each named
    assert code == 2 and "no decision 'req-never-sent/0'" in err
    assert all(f"s3://decisions/{name}/" in err for name in shared_profile["serving"])
    assert "--log s3://decisions/<namespace>/" in err and "MLOPS_NAMESPACE" in err


def test_a_bare_id_in_more_than_one_namespaces_log_is_refused_naming_both(
    shared_profile: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = shared_profile["serving"][:2]
    for namespace in (first, second):
        shutil.copytree(shared_profile["log"], shared_profile["buckets"] / "decisions" / namespace)
    decision = shared_profile["honest"].decision_id
    code, _, err = mlops(capsys, "audit", decision)
    assert code == 2 and "more than one decision log" in err
    assert f"s3://decisions/{first}/" in err and f"s3://decisions/{second}/" in err
    assert f"--log s3://decisions/{first}/" in err  # the fix names a log to pick
    monkeypatch.setenv("MLOPS_NAMESPACE", second)  # named: that log alone, as before
    code, out, err = mlops(capsys, "audit", decision)
    assert code == 0 and f"(s3://decisions/{second}/)" in out.splitlines()[0], out + err


def test_a_tampered_score_is_different_naming_both_scores(
    registry: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    tampered = registry["tampered"]
    code, out, err = mlops(capsys, "audit", tampered.decision_id, "--log", str(registry["log"]))
    assert code == 1, out + err
    verdict = out.strip().splitlines()[-1]
    honest_score = tampered.score - 0.05
    assert verdict.startswith("DIFFERENT") and f"logged score {tampered.score}" in verdict
    rescored = float(verdict.split("re-scored ")[1].split(",")[0])
    difference = float(verdict.split("difference ")[1])
    assert abs(rescored - honest_score) <= 1e-5 and difference == pytest.approx(0.05, abs=1e-5)


def test_a_decision_logged_with_other_bytes_than_the_registered_ones_is_reported(
    registry: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    foreign = registry["foreign"]
    code, out, err = mlops(capsys, "audit", foreign.decision_id, "--log", str(registry["log"]))
    assert code == 1, out + err
    assert "SHA256 MISMATCH: the bytes that decided are not the bytes registered as v1" in out
    assert out.strip().splitlines()[-1].startswith("SHA256 MISMATCH")  # the last word, though the score reproduces
    assert registry["v1"]["artifact_sha256"] in out and registry["v2"]["artifact_sha256"] in out
    assert (
        json.loads(mlops(capsys, "audit", foreign.decision_id, "--log", str(registry["log"]), "--json")[1])[
            "sha256_matches"
        ]
        is False
    )


def test_an_unknown_id_and_a_malformed_one_exit_2_naming_them(
    registry: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = mlops(capsys, "audit", "req-never-sent/0", "--log", str(registry["log"]))
    assert code == 2 and "no decision 'req-never-sent/0'" in err
    code, _, err = mlops(capsys, "audit", "req-v1-d1", "--log", str(registry["log"]))
    assert code == 2 and "expected <request id>/<row>" in err
    code, _, err = mlops(capsys, "audit", "x/0", "--log", str(registry["log"] / "missing"))
    assert code == 2 and "no decision log at" in err


def test_a_file_of_a_newer_schema_is_refused_naming_the_upgrade(
    registry: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from components.serving import decision_record

    log = tmp_path / "decisions"
    shutil.copytree(registry["log"], log)
    table = decision_record.table_of(registry["records"][:2])
    newer = table.append_column("reviewer", pa.array(["bob", "bob"])).replace_schema_metadata(
        {b"mlops.decision_schema": str(decision_record.SCHEMA_VERSION + 1).encode()}
    )
    folder = log / f"model={MODEL}" / "version=1" / "date=2026-12-02"
    pq.write_table(newer, folder / "part-newer.parquet")
    code, _, err = mlops(capsys, "audit", registry["honest"].decision_id, "--log", str(log))
    assert code == 2 and f"decision schema {decision_record.SCHEMA_VERSION + 1}" in err and "upgrade" in err
    code, _, err = mlops(
        capsys, "decisions", MODEL, "--since", "2026-12-01", "--until", "2026-12-03", "--log", str(log)
    )
    assert code == 2 and "upgrade private-mlops" in err
    # a day the newer file is not in is pruned before any file is opened: still readable
    assert (
        mlops(capsys, "decisions", MODEL, "--since", "2026-12-03", "--until", "2026-12-03", "--log", str(log))[0] == 0
    )


def test_decisions_prunes_days_filters_a_version_and_sums_like_pandas(
    registry: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    log = tmp_path / "decisions"
    shutil.copytree(registry["log"], log)
    unreadable = log / f"model={MODEL}" / "version=1" / "date=2026-12-01" / "part-garbage.parquet"
    unreadable.write_bytes(b"not parquet")  # read only if the date partition is not pruned
    expected = pd.DataFrame([r.as_row() for r in registry["records"]])
    expected = expected[expected["decided_at"].dt.strftime("%Y-%m-%d").isin(["2026-12-02", "2026-12-03"])]
    code, out, err = mlops(capsys, "decisions", MODEL, "--since", "2026-12-02", "--until", "2026-12-03",
                           "--log", str(log), "--json", "--limit", "0")  # fmt: skip
    assert code == 0, err
    found = json.loads(out)
    assert sorted(d["decision_id"] for d in found["decisions"]) == sorted(expected["decision_id"])
    assert {d["decided_at"][:10] for d in found["decisions"]} == {"2026-12-02", "2026-12-03"}
    by_key = {(s["model_version"], s["serving_role"]): s for s in found["summary"]}
    counts = expected.groupby(["model_version", "serving_role"])
    assert {k: v["decisions"] for k, v in by_key.items()} == counts.size().to_dict()
    for key, group in counts:
        assert by_key[key]["positive_rate"] == pytest.approx(group["decision"].mean())
        assert by_key[key]["mean_score"] == pytest.approx(group["score"].mean())
        assert by_key[key]["unknown_share"] == pytest.approx(group["unknown_entity"].mean())
    assert (
        mlops(capsys, "decisions", MODEL, "--since", "2026-12-01", "--until", "2026-12-03", "--log", str(log))[0] != 0
    )

    code, out, _ = mlops(capsys, "decisions", MODEL, "--since", "2026-12-02", "--until", "2026-12-03", "--version", "2",
                         "--log", str(log), "--json")  # fmt: skip
    only = json.loads(out)
    assert code == 0 and only["total"] == int((expected["model_version"] == "2").sum()) > 0
    assert {d["model_version"] for d in only["decisions"]} == {"2"}
    code, out, _ = mlops(
        capsys, "decisions", MODEL, "--since", "2026-12-02", "--until", "2026-12-03", "--log", str(log)
    )
    assert code == 0 and f"{len(expected)} decisions from 2026-12-02 to 2026-12-03" in out
    assert "v2 canary" in out and "UNKNOWN-ENTITY" in out


def _overwrite_column(path: Path, column: str) -> None:
    """Garbage over one column's bytes in a Parquet file (its chunk in the one row group): a reader that
    reads that column fails; one that reads only the others does not notice."""
    metadata = pq.ParquetFile(path).metadata.row_group(0)
    chunk = next(c for c in map(metadata.column, range(metadata.num_columns)) if c.path_in_schema == column)
    start = chunk.dictionary_page_offset or chunk.data_page_offset
    data = bytearray(path.read_bytes())
    data[start : start + chunk.total_compressed_size] = b"\xff" * chunk.total_compressed_size
    path.write_bytes(bytes(data))


def test_finding_a_decision_reads_only_the_id_columns_of_the_files_that_do_not_hold_it(
    registry: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from components.platform import decisions

    log, honest = tmp_path / "decisions", registry["honest"]
    shutil.copytree(registry["log"], log)
    folder = log / f"model={MODEL}" / "version=2" / "date=2026-12-03"
    before = set(folder.glob("*.parquet"))
    # another file whose request ids bracket the one asked for: its statistics cannot rule it out
    others = [r for r in registry["records"] if r.model_version == "2" and r.day == "2026-12-03"][:2]
    assert others and all(r.request_id != honest.request_id for r in others)
    write_log(log, [replace(others[0], request_id="req-a"), replace(others[1], request_id="req-z")])
    (other,) = set(folder.glob("*.parquet")) - before
    assert "req-a" < honest.request_id < "req-z"
    _overwrite_column(other, "request")  # a column only a whole record needs
    code, out, err = mlops(capsys, "audit", honest.decision_id, "--log", str(log))
    assert code == 0 and out.strip().splitlines()[-1].startswith("REPRODUCED"), out + err
    with pytest.raises((OSError, pa.ArrowException)):  # positive control: reading that file whole fails
        decisions.between(str(log), MODEL, "2026-12-03", "2026-12-03", version="2")


@pytest.mark.parametrize("objective", ["multiclass", "regression"])
def test_a_multiclass_or_regression_decision_is_rescored_through_its_model_kind(objective: str, tmp_path: Path) -> None:
    """The re-score goes through the model kind that reads the artifact's format (here LightGBM's, fitted
    for real): multiclass compares every class probability, regression the value; the logged vector is
    put back into the model's feature order first (logged here in reverse)."""
    from components.model_kinds import model_kind
    from components.platform.decisions import rescore
    from components.serving.decision_log import Identity, Offer, records_of

    kind = model_kind("lightgbm")
    names = ["f0", "f1", "f2", "f3"]
    features = np.random.default_rng(3).normal(size=(400, 4)).astype(np.float32)
    labels = (features[:, 0] > 0).astype(np.float32) + (features[:, 1] > 0.5) if objective == "multiclass" else (
        2 * features[:, 0] + features[:, 1])  # fmt: skip
    model = kind.fit(features, labels.astype(np.float32), objective=objective, params={"num_boost_round": 10},
                     seed=1, device="cpu", num_classes=3 if objective == "multiclass" else None)  # fmt: skip
    kind.save(model, tmp_path / kind.model_file)
    rows = features[:3]
    offer = Offer("req-k", dt.datetime(2026, 12, 2, tzinfo=dt.UTC), "1", [{"user_id": i} for i in range(3)],
                  names[::-1], rows[:, ::-1], [False] * 3, kind.predict(model, rows))  # fmt: skip
    identity = Identity(NAMESPACE, MODEL, "b" * 64, "champion", "local", "user_id", None)
    record = records_of(offer, identity)[1].as_row()
    registration = {"model_format": kind.model_format, "features": names}
    result = rescore(record, registration, (tmp_path / kind.model_file).read_bytes())
    assert result.reproduced and result.rescored == pytest.approx(record["score"], abs=1e-6)
    if objective == "multiclass":
        assert result.class_scores is not None and len(result.class_scores) == 3
        record["class_scores"] = [p + 0.01 for p in record["class_scores"]]
    else:
        record["score"] += 0.01
    changed = rescore(record, registration, (tmp_path / kind.model_file).read_bytes())
    assert not changed.reproduced and changed.difference == pytest.approx(0.01, abs=1e-6)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_unreachable_log_store_or_registry_exits_75(
    registry: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    decision = registry["honest"].decision_id
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "fraud")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    code, _, err = mlops(capsys, "audit", decision, "--log", "s3://decisions/fraud/")
    assert code == 75 and "s3://decisions/fraud/" in err
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{_closed_port()}")
    code, _, err = mlops(capsys, "audit", decision, "--log", str(registry["log"]))
    assert code == 75 and "tracking server" in err
