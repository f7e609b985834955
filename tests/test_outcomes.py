"""Late outcomes (issue 32 item 3): `mlops outcomes ingest` and `metrics` on a decision log written here.

The log is written as the transformer writes it (decision_record.DecisionRecord, table_of, write_file under
the hive layout), for the reference pipelines' own configs (fraud: binary; forecast: regression). The
realized metrics are compared with scikit-learn run directly on the rows this test generated, never with
figures the module under test produced; each refusal is shown to leave the store untouched.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    mean_absolute_error,
    mean_absolute_percentage_error,
    mean_squared_error,
    roc_auc_score,
)

from components.config import PipelineConfig, load_config
from components.errors import ComponentError
from components.platform import outcomes
from components.serving.decision_record import DecisionRecord, file_key, table_of, write_file
from tests.conftest import REPO

FRAUD = load_config(REPO / "pipelines" / "fraud" / "config.yaml")
FORECAST = load_config(REPO / "pipelines" / "forecast" / "config.yaml")
DAY = dt.datetime(2026, 12, 3, 9, 0, tzinfo=dt.UTC)


def _write_log(
    root: Path, cfg: PipelineConfig, version: int, role: str, scores: np.ndarray, *, seconds: int = 60,
    start: dt.datetime = DAY, entity_base: int = 0,
) -> pd.DataFrame:  # fmt: skip
    """One request of len(scores) rows by `version` in `role`, a decision every `seconds`, one file per day;
    the rows as (decision_id, decided_at, entity, score)."""
    model = cfg.register_.model_name
    threshold = 0.5 if cfg.train.objective == "binary" else None
    records = [
        DecisionRecord(
            request_id=f"req-v{version}-{role}", row=i, decided_at=start + dt.timedelta(seconds=seconds * i),
            namespace="fraud", model_name=model, model_version=str(version), model_sha256="ab" * 32,
            serving_role=role, revision="local", entity_column=cfg.materialize.entity_column,
            entity_id=str(entity_base + i), request={cfg.materialize.entity_column: entity_base + i},
            feature_names=["x"], feature_values=[float(s)], unknown_entity=False, score=float(s),
            threshold=threshold, decision=None if threshold is None else int(s >= threshold),
        )
        for i, s in enumerate(scores)
    ]  # fmt: skip
    by_day: dict[str, list[DecisionRecord]] = {}
    for record in records:
        by_day.setdefault(record.day, []).append(record)
    for day, batch in by_day.items():
        where = root / file_key("fraud", model, str(version), day)
        where.parent.mkdir(parents=True, exist_ok=True)
        write_file(table_of(batch), str(where))
    return pd.DataFrame(
        {"decision_id": [r.decision_id for r in records], "decided_at": [r.decided_at for r in records],
         "entity": [entity_base + i for i in range(len(records))], "score": [r.score for r in records]}
    )  # fmt: skip


def _root(tmp_path: Path) -> Path:
    return tmp_path / "decisions" / "fraud"


def _stored(root: Path) -> list[str]:
    folder = Path(outcomes.outcomes_root(str(root)))
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def _binary_log(root: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(5)
    champion = _write_log(root, FRAUD, 1, "champion", rng.uniform(size=80))
    canary = _write_log(root, FRAUD, 2, "canary", rng.uniform(size=60), seconds=90)
    champion["label"] = (rng.uniform(size=80) < champion["score"]).astype(int)
    canary["label"] = (rng.uniform(size=60) < 0.3).astype(int)
    return champion, canary


def test_ingest_by_decision_id_and_realized_metrics_equal_sklearns(tmp_path: Path) -> None:
    root = _root(tmp_path)
    champion, canary = _binary_log(root)
    labelled = pd.concat([champion.iloc[:70], canary])  # 10 of the champion's decisions stay unlabelled
    strangers = pd.DataFrame({"decision_id": ["req-none/0", "req-none/1"], "label": [1, 0]})
    file = tmp_path / "labels.parquet"
    pd.concat([labelled[["decision_id", "label"]], strangers]).rename(columns={"label": "is_fraud"}).to_parquet(file)

    summary = outcomes.ingest(str(root), str(file), FRAUD)
    assert (summary["outcomes"], summary["joined"], summary["stored"], summary["unmatched"]) == (132, 130, 130, 2)
    assert summary["stored_in"] == f"{root}/_outcomes/"
    assert summary["unmatched_examples"] == ["req-none/0", "req-none/1"]
    assert all(name.startswith("model=fraud-detector/version=") for name in _stored(root))

    rows = {
        (r["version"], r["role"]): r for r in outcomes.realized(str(root), "fraud-detector", "2026-12-03", "2026-12-03")
    }
    assert set(rows) == {(1, "champion"), (2, "canary")}
    for side, frame in (((1, "champion"), champion.iloc[:70]), ((2, "canary"), canary)):
        y, p = frame["label"].to_numpy(), frame["score"].to_numpy()
        row = rows[side]
        assert row["labelled"] == len(frame)
        assert row["roc_auc"] == pytest.approx(roc_auc_score(y, p))
        assert row["pr_auc"] == pytest.approx(average_precision_score(y, p))
        assert row["brier"] == pytest.approx(brier_score_loss(y, p))
        assert row["positive_rate"] == pytest.approx(y.mean())
        assert row["reasons"] == {}
    assert rows[(1, "champion")]["roc_auc"] > rows[(2, "canary")]["roc_auc"] + 0.1  # labels follow v1's scores only

    again = outcomes.ingest(str(root), str(file), FRAUD)  # the same file again counts nothing twice
    assert (again["stored"], again["already_stored"], again["files"]) == (0, 130, [])
    assert outcomes.realized(str(root), "fraud-detector", "2026-12-03", "2026-12-03")[0]["labelled"] == 70
    assert outcomes.realized(str(root), "fraud-detector", "2026-12-04", "2026-12-05") == []


def test_the_log_readers_do_not_see_the_outcomes(tmp_path: Path) -> None:
    """Outcomes live inside the log's root (the same tenant prefix) under `_outcomes`, which the log's
    dataset discovery skips: `mlops decisions` reads the decisions and nothing else, and audit finds one."""
    from components.platform import decisions

    root = _root(tmp_path)
    champion, _ = _binary_log(root)
    file = tmp_path / "labels.csv"
    champion[["decision_id", "label"]].rename(columns={"label": "is_fraud"}).to_csv(file, index=False)
    assert outcomes.ingest(str(root), str(file), FRAUD)["stored"] == 80
    assert decisions.between(str(root), "fraud-detector", "2026-12-01", "2026-12-09").num_rows == 140
    found = decisions.find(str(root), champion["decision_id"][3])
    assert found is not None and found["score"] == pytest.approx(champion["score"][3])


def test_ingest_by_entity_and_event_time_for_a_regressor(tmp_path: Path) -> None:
    root = _root(tmp_path)
    rng = np.random.default_rng(9)
    logged = _write_log(root, FORECAST, 4, "champion", rng.uniform(5, 50, size=40), seconds=3600, entity_base=100)
    actual = logged["score"] + rng.normal(0, 4, size=40)
    actual[0] = 0.4  # |y| < 1: left out of MAPE, as evaluate leaves it out
    events = logged["decided_at"] + pd.Timedelta(minutes=7)
    events[5] = events[5] + pd.Timedelta(hours=3)  # 3 hours from any decision of store 105: joins none
    file = tmp_path / "demand.csv"
    pd.DataFrame({"store_id": logged["entity"], "event_timestamp": events.map(lambda t: t.isoformat()),
                  "demand": actual}).to_csv(file, index=False)  # fmt: skip

    summary = outcomes.ingest(str(root), str(file), FORECAST)
    assert (summary["joined"], summary["unmatched"]) == (39, 1)
    assert summary["unmatched_examples"] == [f"105@{events[5].isoformat()}"]
    assert summary["keyed_by"] == "store_id and event time"
    [row] = outcomes.realized(str(root), "forecast-demand", "2026-12-03", "2026-12-05")
    keep = np.arange(40) != 5
    y, p = actual.to_numpy()[keep], logged["score"].to_numpy()[keep]
    assert row["labelled"] == 39 and row["version"] == 4 and row["role"] == "champion"
    assert row["mae"] == pytest.approx(mean_absolute_error(y, p))
    assert row["rmse"] == pytest.approx(math.sqrt(mean_squared_error(y, p)))
    big = np.abs(y) >= 1
    assert row["mape"] == pytest.approx(mean_absolute_percentage_error(y[big], p[big]))
    assert "roc_auc" not in row


def test_a_metric_that_cannot_be_computed_is_none_with_its_reason(tmp_path: Path) -> None:
    root = _root(tmp_path)
    champion, _ = _binary_log(root)
    file = tmp_path / "labels.parquet"
    pd.DataFrame({"decision_id": champion["decision_id"][:20], "is_fraud": 0}).to_parquet(file)
    outcomes.ingest(str(root), str(file), FRAUD)
    one = pd.DataFrame({"decision_id": [f"req-v2-canary/{i}" for i in range(1)], "is_fraud": [1]})
    one.to_parquet(file)
    outcomes.ingest(str(root), str(file), FRAUD)
    rows = {r["version"]: r for r in outcomes.realized(str(root), "fraud-detector", "2026-12-03", "2026-12-03")}
    assert rows[1]["roc_auc"] is None and rows[1]["pr_auc"] is None
    assert "one class only" in rows[1]["reasons"]["roc_auc"]
    assert rows[1]["brier"] == pytest.approx(brier_score_loss(np.zeros(20), champion["score"][:20]))
    assert rows[2]["labelled"] == 1 and rows[2]["brier"] is None and "fewer than 2" in rows[2]["reasons"]["brier"]


def _refused(root: Path, tmp_path: Path, frame: pd.DataFrame, cfg: PipelineConfig = FRAUD) -> str:
    before = _stored(root)
    file = tmp_path / "bad.parquet"
    frame.to_parquet(file)
    with pytest.raises(ComponentError) as refused:
        outcomes.ingest(str(root), str(file), cfg)
    assert _stored(root) == before, "a refused file wrote nothing"
    assert refused.value.fix
    return f"{refused.value.problem} | {refused.value.fix}"


def test_a_bad_file_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    root = _root(tmp_path)
    champion, _ = _binary_log(root)
    ids = champion["decision_id"]
    assert "no key column: neither 'decision_id' nor both 'user_id' and 'event_timestamp'" in _refused(
        root, tmp_path, pd.DataFrame({"id": ids[:3], "is_fraud": [0, 1, 0]})
    )
    assert "no label column 'is_fraud'" in _refused(root, tmp_path, pd.DataFrame({"decision_id": ids[:3]}))
    clash = pd.DataFrame({"decision_id": [ids[0], ids[1], ids[0], ids[2]], "is_fraud": [0, 1, 1, 0]})
    text = _refused(root, tmp_path, clash)
    assert "1 keys carry different labels" in text and ids[0] in text and ids[1] not in text
    text = _refused(root, tmp_path, pd.DataFrame({"decision_id": ids[:4], "is_fraud": [0, 2, 1, -1]}))
    assert (
        "2 labels in column 'is_fraud' are outside the binary label's domain (0 or 1): rows 1, 3 (from 0; values 2, -1)"
        in text
    )
    assert "outside" in _refused(root, tmp_path, pd.DataFrame({"decision_id": ids[:2], "is_fraud": ["yes", "0"]}))
    assert "have no decision_id: rows 1 (from 0)" in _refused(
        root, tmp_path, pd.DataFrame({"decision_id": [ids[0], None], "is_fraud": [0, 1]})
    )
    regression = pd.DataFrame({"decision_id": ids[:3], "demand": [1.0, float("inf"), float("nan")]})
    assert "outside the regression label's domain (a finite number): rows 1, 2 (from 0" in _refused(
        root, tmp_path, regression, FORECAST
    )
    assert _stored(root) == []

    good = tmp_path / "good.parquet"
    pd.DataFrame({"decision_id": ids[:5], "is_fraud": [0, 1, 0, 1, 0]}).to_parquet(good)
    outcomes.ingest(str(root), str(good), FRAUD)
    text = _refused(root, tmp_path, pd.DataFrame({"decision_id": ids[3:7], "is_fraud": [1, 1, 0, 1]}))
    assert f"1 decisions already have a different stored outcome: {ids[4]} |" in text


def test_the_canary_analysis_judges_by_the_realized_rows(tmp_path: Path) -> None:
    """The contract with components/steps/canary_analysis.py: its hook is `realized`, and a canary whose
    scores look like the champion's but whose realized AUC is worse is rolled back on that alone."""
    import pyarrow.parquet as pq

    from components.config import PromoteSettings
    from components.steps import canary_analysis

    assert canary_analysis.realized_hook() is outcomes.realized
    root = _root(tmp_path)
    rng = np.random.default_rng(3)
    scores = rng.uniform(size=300)
    old = _write_log(root, FRAUD, 1, "champion", scores, seconds=10)
    new = _write_log(root, FRAUD, 2, "canary", scores, seconds=10)  # the same scores: KS 0, PSI 0
    old["is_fraud"] = (rng.uniform(size=300) < old["score"]).astype(int)
    new["is_fraud"] = (rng.uniform(size=300) < 0.5).astype(int)
    file = tmp_path / "labels.parquet"
    pd.concat([old, new])[["decision_id", "is_fraud"]].to_parquet(file)
    outcomes.ingest(str(root), str(file), FRAUD)

    table = pq.read_table(root).select(["decided_at", "model_version", "serving_role", "score"])
    settings = PromoteSettings(namespace="fraud", analysis_min_decisions=200, analysis_min_labelled=200)

    def verdict(realized: Any) -> Any:
        return canary_analysis.analyze(
            table, champion=1, canary=2, since=DAY, until=DAY + dt.timedelta(hours=2), settings=settings,
            realized=realized,
        )  # fmt: skip

    judged = verdict(lambda: outcomes.realized(str(root), "fraud-detector", "2026-12-03", "2026-12-03"))
    assert judged.action == "rollback" and judged.evidence["ks"] == 0.0
    assert any(reason.startswith("realized roc_auc") for reason in judged.reasons)
    assert judged.evidence["realized"]["canary"]["labelled"] == 300
    assert verdict(None).action == "promote"  # the control: without the realized rows nothing says roll back


def _cli(*args: str) -> int:
    from mlops.cli import main

    return main(["outcomes", *args])


def test_the_cli_ingests_reports_and_refuses(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _root(tmp_path)
    champion, canary = _binary_log(root)
    file = tmp_path / "labels.parquet"
    pd.concat([champion, canary])[["decision_id", "label"]].rename(columns={"label": "is_fraud"}).to_parquet(file)
    assert _cli("ingest", "fraud", str(file), "--log", str(root)) == 0
    assert "140 outcomes: 140 joined to decisions, 140 stored" in capsys.readouterr().out
    assert _cli("metrics", "fraud", "--since", "2026-12-03", "--until", "2026-12-03", "--log", str(root), "--json") == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["model"] == "fraud-detector" and printed["gate"] == {"metric": "roc_auc", "threshold": 0.85}
    rows = {r["version"]: r for r in printed["rows"]}
    y, p = champion["label"].to_numpy(), champion["score"].to_numpy()
    assert rows[1]["roc_auc"] == pytest.approx(roc_auc_score(y, p)) and rows[1]["labelled"] == 80
    assert _cli("metrics", "fraud-detector", "--since", "2026-12-03", "--until", "2026-12-03", "--log", str(root)) == 0
    assert "v2 canary" in capsys.readouterr().out

    bad = tmp_path / "bad.parquet"
    pd.DataFrame({"decision_id": ["x/0"], "is_fraud": [3]}).to_parquet(bad)
    assert _cli("ingest", "fraud", str(bad), "--log", str(root)) == 2
    assert "outside the binary label's domain" in capsys.readouterr().err
    assert _cli("ingest", "fraud", str(tmp_path / "missing.parquet"), "--log", str(root)) == 2


def test_an_unreachable_store_is_transient(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "tenant")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    args = ("metrics", "fraud", "--since", "2026-12-03", "--until", "2026-12-03", "--log", "s3://decisions/fraud/")
    assert _cli(*args) == 75
    assert "could not be read" in capsys.readouterr().err


def _recording_gateway(received: list[tuple[str, str]]) -> type[Any]:
    """A Pushgateway stand-in that answers every PUT 200 and records its path and body."""
    from tests.loopback_http import QuietHandler

    class Gateway(QuietHandler):
        def do_PUT(self) -> None:
            received.append((self.path, self.rfile.read(int(self.headers["Content-Length"])).decode()))
            self.send_response(200)
            self.end_headers()

    return Gateway


def test_push_sends_the_realized_metrics_and_the_gate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.loopback_http import serving

    root = _root(tmp_path)
    champion, canary = _binary_log(root)
    file = tmp_path / "labels.parquet"
    pd.concat([champion, canary])[["decision_id", "label"]].rename(columns={"label": "is_fraud"}).to_parquet(file)
    outcomes.ingest(str(root), str(file), FRAUD)
    received: list[tuple[str, str]] = []
    Gateway = _recording_gateway(received)

    args = ("metrics", "fraud", "--since", "2026-12-03", "--until", "2026-12-03", "--log", str(root), "--push")
    with serving(Gateway) as server:
        monkeypatch.setenv("MLOPS_PUSHGATEWAY_URL", f"http://127.0.0.1:{server.server_address[1]}")
        assert _cli(*args) == 0
    [(path, body)] = received
    assert path == "/metrics/job/mlops-outcomes/kind/realized-metrics/pipeline/fraud"  # one group, replaced whole
    auc = roc_auc_score(champion["label"], champion["score"])
    series = {line.split(" ")[0]: float(line.split(" ")[1]) for line in body.splitlines() if line.startswith("mlops")}
    v1 = 'model="fraud-detector",role="champion",version="1"'
    assert series[f"mlops_model_realized_roc_auc{{{v1}}}"] == pytest.approx(auc)
    assert series[f"mlops_model_realized_labelled{{{v1}}}"] == 80
    assert series[f'mlops_model_realized_gate_margin{{metric="roc_auc",{v1}}}'] == pytest.approx(auc - 0.85)
    assert series[f"mlops_model_realized_min_labelled{{{v1}}}"] == FRAUD.outcomes.min_labelled
    assert set(name.split("{")[0] for name in series) <= set(outcomes.FAMILIES) and "namespace" not in body
    assert _cli("metrics", "fraud-detector", "--since", "2026-12-03", "--until", "2026-12-03", "--push") == 2
    assert "--push needs a pipeline" in capsys.readouterr().err


def _labelled_champion(root: Path, tmp_path: Path, follows_score: bool) -> None:
    """300 decisions of v1 on DAY, labelled; the labels follow the score (AUC well above 0.85) or not."""
    rng = np.random.default_rng(21)
    logged = _write_log(root, FRAUD, 1, "champion", rng.uniform(size=300), seconds=60)
    noise = rng.uniform(size=300)
    logged["is_fraud"] = ((logged["score"] > 0.5) if follows_score else (noise < 0.5)).astype(int)
    file = tmp_path / f"labels-{follows_score}.parquet"
    logged[["decision_id", "is_fraud"]].to_parquet(file)
    outcomes.ingest(str(root), str(file), FRAUD)


def test_the_nightly_gains_a_reason_when_the_realized_gate_metric_is_below_its_gate(tmp_path: Path) -> None:
    from components.config import DriftSettings
    from components.platform.outcomes_gate import below_gate
    from components.steps.drift import DriftResult, Reference, decide

    root, now = _root(tmp_path), DAY + dt.timedelta(days=1)

    def judged(least: int = 200, version: int = 1, threshold: float = 0.85, at: dt.datetime = now) -> str | None:
        return below_gate("fraud-detector", gate_metric="roc_auc", threshold=threshold, min_labelled=least,
                          window_seconds=14 * 86400, now=at, version=version, root=str(root))  # fmt: skip

    assert judged() is None  # no log at all
    _labelled_champion(root, tmp_path, follows_score=False)
    reason = judged()
    assert reason is not None and reason.startswith("realized roc_auc below gate: v1 (champion) realized roc_auc 0.")
    assert "on 300 labelled decisions, the gate requires >= 0.85" in reason
    assert judged(least=301) is None  # too few labels
    assert judged(version=2) is None  # another version's
    assert judged(threshold=0.3) is None  # above its gate
    assert judged(at=now + dt.timedelta(days=30)) is None  # the window no longer holds those decisions

    reference = Reference(model="fraud-detector", version=1, run_id="r", registered_at=DAY, features=["x"],
                          frame=pd.DataFrame())  # fmt: skip
    calm = DriftResult(features=[], drift_share=0.0, threshold=0.3, detected=False, current_rows=10,
                       reference_rows=10, snapshots=[])  # fmt: skip

    def decided(realized: str | None) -> dict[str, Any]:
        return decide(result=calm, reference=reference, settings=DriftSettings(), force=False, now=now,
                      claimed_by=None, key="fraud@2026-12-04", realized=realized)  # fmt: skip

    assert decided(reason) == {"retrain": True, "reason": reason, "key": "fraud@2026-12-04"}
    assert decided(None)["retrain"] is False  # the control: without it nothing asks for a retrain


def test_the_nightly_reads_the_champions_own_gate_from_the_registry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """nightly_reason, as the drift step calls it: the gate from the champion's run (metrics.json, what
    evaluate wrote), the log from MLOPS_DECISION_LOG_URI, the night's rows pushed; a run without
    metrics.json gives no reason, and a log without outcomes neither a reason nor a push."""
    from mlflow import MlflowClient

    from components.platform.outcomes_gate import nightly_reason
    from tests.loopback_http import serving

    root = _root(tmp_path)
    _labelled_champion(root, tmp_path, follows_score=False)
    monkeypatch.setenv("MLOPS_DECISION_LOG_URI", str(root))
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri, uri)
    experiment = client.create_experiment("fraud", artifact_location=(tmp_path / "artifacts").as_uri())
    runs = {}
    for threshold in (0.85, 0.3):
        run = client.create_run(experiment).info.run_id
        metrics = tmp_path / "metrics.json"
        metrics.write_text(json.dumps({"gate": {"metric": "roc_auc", "threshold": threshold, "direction": ">="}}))
        client.log_artifact(run, str(metrics))
        runs[threshold] = run
    bare = client.create_run(experiment).info.run_id
    now = DAY + dt.timedelta(days=1)
    received: list[tuple[str, str]] = []
    Gateway = _recording_gateway(received)

    with serving(Gateway) as server:
        monkeypatch.setenv("MLOPS_PUSHGATEWAY_URL", f"http://127.0.0.1:{server.server_address[1]}")
        reason = nightly_reason(client, "fraud-detector", 1, runs[0.85], now=now, pipeline="fraud")
        assert reason is not None and "realized roc_auc below gate" in reason
        [(path, body)] = received  # the night's figures, for ModelPerformanceDegraded
        assert path.endswith("/kind/realized-metrics/pipeline/fraud")
        assert 'mlops_model_realized_labelled{model="fraud-detector",role="champion",version="1"} 300.0' in body
        assert nightly_reason(client, "fraud-detector", 1, runs[0.3], now=now) is None
        assert nightly_reason(client, "fraud-detector", 1, bare, now=now) is None
        # an outcomes file pyarrow refuses: nothing judged, nothing pushed (the figures stay as they were)
        from components.platform.outcomes import outcomes_root

        broken = Path(outcomes_root(str(root))) / "model=fraud-detector" / "version=1" / "date=2026-12-03"
        broken.mkdir(parents=True, exist_ok=True)
        (broken / "part-broken.parquet").write_bytes(b"not parquet")
        assert nightly_reason(client, "fraud-detector", 1, runs[0.85], now=now, pipeline="fraud") is None
        assert len(received) == 1, "an unreadable store pushed figures"
        monkeypatch.setenv("MLOPS_DECISION_LOG_URI", str(tmp_path / "no-log"))
        assert nightly_reason(client, "fraud-detector", 1, runs[0.85], now=now, pipeline="fraud") is None
    # nothing labelled: an empty group replaces the night before's, so ModelPerformanceDegraded stops
    assert len(received) == 2 and received[1][0] == received[0][0], received
    assert (
        "mlops_model_realized_labelled{" not in received[1][1]
        and "mlops_model_realized_gate_margin{" not in received[1][1]
    )


RULES = REPO / "manifests" / "monitoring" / "prometheus-rules.yaml"
RULE_TESTS = REPO / "tests" / "monitoring" / "prometheus-rules.test.yaml"


def _rule_groups(without_the_label_floor: bool = False) -> list[dict[str, Any]]:
    import yaml

    groups: list[dict[str, Any]] = yaml.safe_load(RULES.read_text())["spec"]["groups"]
    for group in groups:
        for rule in group["rules"]:
            if rule["alert"] == "ModelPerformanceDegraded" and without_the_label_floor:
                rule["expr"] = rule["expr"].split("and on")[0]
    return groups


def test_the_alert_reads_what_metrics_pushes() -> None:
    """ModelPerformanceDegraded reads the families outcomes.py names (the one source), from the namespace's
    Pushgateway scrape only, with the labels the owner's route matches on."""
    expr = next(r for g in _rule_groups() for r in g["rules"] if r["alert"] == "ModelPerformanceDegraded")["expr"]
    for family in (outcomes.GATE_MARGIN, outcomes.LABELLED, outcomes.MIN_LABELLED):
        assert f'{family}{{job="mlops-pushgateway"}}' in expr
    assert set(outcomes.FAMILIES) >= {outcomes.PREFIX + m for m in ("roc_auc", "pr_auc", "brier", "mae", "rmse")}
    assert "namespace, pipeline" in expr


@pytest.mark.integration  # Debian's promtool, as tests/monitoring/test_rules.py
def test_the_alerts_promtool_case_fires_only_with_enough_labels(tmp_path: Path) -> None:
    """The promtool case ("realized metrics on late labels") passes on the rules as they are; the control:
    the rule without its labelled >= min_labelled floor pages for the canary on 40 labels, and fails it."""
    import shutil
    import subprocess

    import yaml

    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: `make test` installs Debian's prometheus package"
    tests = yaml.safe_load(RULE_TESTS.read_text())
    tests["tests"] = [t for t in tests["tests"] if t["name"] == "realized metrics on late labels"]
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests, sort_keys=False))
    results = []
    for lax in (False, True):
        (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": _rule_groups(lax)}, sort_keys=False))
        run = subprocess.run([promtool, "test", "rules", "tests.yaml"], cwd=tmp_path, capture_output=True, text=True)
        results.append((run.returncode, run.stdout + run.stderr))
    assert results[0][0] == 0, results[0][1]
    assert results[1][0] != 0 and 'version="4"' in results[1][1]


def test_a_version_or_model_that_is_no_folder_name_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    """The outcomes folder is built from the log's model_version and the model's name: a value that
    would climb out of `<root>/_outcomes/` (or name no folder) is refused, and nothing is written."""
    from components.errors import ComponentError
    from components.platform import outcomes

    row = {"model_version": "1", "date": "2026-12-03"}
    for model, version in (("fraud-detector", "../../elsewhere"), ("../fraud", "1"), ("fraud-detector", "1/2")):
        with pytest.raises(ComponentError, match="do not make an outcomes folder"):
            outcomes._write(str(tmp_path), model, pd.DataFrame([{**row, "model_version": version}]))
    assert not any(tmp_path.rglob("*.parquet")) and not (tmp_path.parent / "elsewhere").exists()
