"""Issue 32 end to end, local first: a decision is scored, logged, audited, labelled late, measured, and
judges a canary, on the platform profile (the session's `stack`: real Redis, S3, MLflow, PostgreSQL).

What is real:
- the model: the platform run's registered fraud-detector v1 (`platform_run`, not retrained here), served
  by `mlops serve fraud-detector --with-features`: a real Triton and the real scoring transformer (KServe's
  ModelServer) joining the platform's Redis, logging every decision to the devstack's S3
  (s3://decisions/fraud/);
- the requests and their outcomes: transactions drawn by the pipeline's own data generator
  (pipelines/fraud/data.py `generate`, another seed than the training extract's), one per entity, fraud
  bursts included; each scored row's outcome is the generator's `is_fraud`, stamped a known delay (DELAY)
  after the decision time the log records;
- `mlops audit`, `mlops outcomes ingest|metrics` and `mlops promote` (canary, --analyze) as a user runs
  them, in processes of their own; the realized metrics are checked against scikit-learn computed here,
  from the scores the transformer answered and the generator's labels;
- the challengers: v2 (deliberately worse: 3 boosting rounds of depth 1) and v3 (the champion's settings,
  more rounds) trained by the real train step on the platform run's training set, evaluated and registered
  into the platform's MLflow by the real steps, each served by its own real Triton and transformer (role
  canary), as a canary revision runs beside the champion's.

What is not: there is no cluster, so `mlops promote` writes its manifests to a GitOps folder (--out), and
publishes repositories to a local folder, not to KServe; the canary's share of traffic is not routed by a
mesh: in each window the test sends the same batch to the champion's transformer and to the canary's, so
the two score distributions (KS, PSI) and realized metrics compare the versions on the same requests. In
the windows the champion's batch goes through a second transformer in front of the same champion Triton,
started as `mlops serve` starts its own but flushing its log every 0.5 s, not every 5 s (the config's), to
keep the test short. "Better" is the holdout's verdict (the gate metric, higher than the champion's); on the
600 labelled requests the analysis judges its realized ROC AUC within promote.analysis_max_realized_drop.

The registry is left as the other integration tests expect it (the challengers registered under their own
alias, then their versions, aliases and the serving history removed at the end).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from devstack.process import free_port_base
from devstack.tenants import platform_variables
from tests.integration.conftest import mlops
from tests.integration.test_scoring_path import _decisions_bucket, _logged, _post

pytestmark = pytest.mark.integration

MODEL = "fraud-detector"
LOG = "s3://decisions/fraud/"
DELAY = dt.timedelta(minutes=20)
"""How long after its decision each outcome is stamped (outcomes.join_tolerance is 1h)."""
SEED = 11
"""The generator's seed for the scored transactions (the platform run's extract uses its default)."""
FRAUD_ROWS, NORMAL_ROWS = 100, 500
LOOP_ALIAS = "decision-loop"
"""The challengers' alias, so the registry's `challenger` stays on the platform run's version."""


def _requests(extract: Path) -> pd.DataFrame:
    """One generated transaction per entity known to the online store: FRAUD_ROWS fraudulent, NORMAL_ROWS
    not (the generator's ~2% rate would leave a handful of positives), in a shuffled order."""
    from pipelines.fraud.data import generate

    known = set(pd.read_parquet(extract, columns=["user_id"])["user_id"])
    drawn = generate(20_000, SEED)
    drawn = drawn[drawn["user_id"].isin(known)]
    fraud = drawn[drawn["is_fraud"] == 1].drop_duplicates("user_id").head(FRAUD_ROWS)
    others = drawn[(drawn["is_fraud"] == 0) & ~drawn["user_id"].isin(fraud["user_id"])]
    normal = others.drop_duplicates("user_id").head(NORMAL_ROWS)
    chosen = pd.concat([fraud, normal]).sample(frac=1.0, random_state=SEED).reset_index(drop=True)
    assert len(chosen) == FRAUD_ROWS + NORMAL_ROWS and chosen["user_id"].is_unique
    return chosen


def _instances(requests: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {"user_id": int(r.user_id), "amount": float(r.amount), "merchant_category": int(r.merchant_category)}
        for r in requests.itertuples()
    ]


def _send(url: str, requests: pd.DataFrame, request_id: str) -> list[float]:
    """One batch through a transformer: the scores the caller got."""
    status, answer = _post(f"{url}/v1/models/{MODEL}:predict", {"instances": _instances(requests)},
                           {"x-request-id": request_id})  # fmt: skip
    assert status == 200, answer
    return [float(score) for score in answer["predictions"]]


def _read_back(env: dict[str, str], request_id: str, answered: list[float]) -> list[dict[str, Any]]:
    """A batch's decisions as the transformer logged them, each with the score the caller got."""
    logged = _logged(env, request_id, len(answered), LOG)
    for record, score in zip(logged, answered, strict=True):
        record["answered"] = score
    return logged


@pytest.fixture(scope="module")
def served(platform_run: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The platform run's version behind `mlops serve --with-features`, one generated batch scored on it.
    Meanwhile, in the background, the challengers are trained, registered and served (`_challengers`);
    at the end every server is stopped and the registry restored."""
    env, root = platform_run["env"], tmp_path_factory.mktemp("decision-loop")
    port_base = free_port_base(5)
    context: dict[str, Any] = {"env": env, "root": root, "url": f"http://127.0.0.1:{port_base + 3}",
                               "predictor": f"127.0.0.1:{port_base + 1}", "run_dir": platform_run["run_dir"],
                               "registration": platform_run["registration"], "running": [], "versions": []}  # fmt: skip
    with pytest.MonkeyPatch.context() as patch, ThreadPoolExecutor(max_workers=1) as background:
        for key, value in platform_variables(env).items():  # this process reads the platform as its tools do
            patch.setenv(key, value)
        _decisions_bucket(env)
        context["challengers"] = background.submit(_challengers, context)
        started = mlops(env, "serve", MODEL, "--with-features", "--detach", "--port-base", str(port_base),
                        "--dir", str(root / "serve"))  # fmt: skip
        try:
            assert started.returncode == 0, started.stdout + started.stderr
            assert f"decisions {LOG}" in started.stdout, started.stdout
            context["requests"] = _requests(platform_run["extract"])
            answered = _send(context["url"], context["requests"], "loop-batch")
            context["logged"] = _read_back(env, "loop-batch", answered)
            yield context
        finally:
            background.shutdown(wait=True)
            _stop_all(context, [root / "serve" / "transformer.pid", root / "serve" / "triton.pid"])
            _restore_registry(env, context["versions"])


def _reader(env: dict[str, str]) -> dict[str, str]:
    """The environment of a reader that knows only a decision id (`mlops audit`): the namespace the log
    is kept under, as `mlops tenant env` names it; readers given the pipeline find it themselves."""
    return {**env, "MLOPS_NAMESPACE": "fraud"}


def test_a_scored_decision_is_audited_to_reproduced(served: dict[str, Any]) -> None:
    registration = served["registration"]
    record = served["logged"][3]
    assert record["model_version"] == str(registration["version"]) and record["serving_role"] == "champion"
    audited = mlops(_reader(served["env"]), "audit", record["decision_id"], "--json")
    assert audited.returncode == 0, audited.stdout + audited.stderr
    found = json.loads(audited.stdout)
    assert found["verdict"] == "REPRODUCED" and found["sha256_matches"] is True
    assert found["model"]["version"] == registration["version"]
    assert found["rescore"]["logged"] == pytest.approx(record["answered"], abs=1e-6)
    assert [f["name"] for f in found["features"]] == registration["features"]
    shown = mlops(_reader(served["env"]), "audit", record["decision_id"])
    assert shown.returncode == 0 and shown.stdout.strip().splitlines()[-1].startswith("REPRODUCED"), shown.stdout
    unknown = mlops(_reader(served["env"]), "audit", "loop-batch/99999")
    assert unknown.returncode == 2, unknown.stdout + unknown.stderr


def _outcomes_by_entity(served: dict[str, Any], path: Path) -> pd.DataFrame:
    """The generator's label of each scored transaction, keyed by entity and an event time DELAY after the
    decision; plus two outcomes 3 h after theirs, past outcomes.join_tolerance (1h), which match nothing."""
    labels = served["requests"].set_index("user_id")["is_fraud"]
    rows = [
        {"user_id": int(r["entity_id"]), "event_timestamp": r["decided_at"] + DELAY,
         "is_fraud": int(labels[int(r["entity_id"])])}
        for r in served["logged"]
    ]  # fmt: skip
    late = [{**row, "event_timestamp": row["event_timestamp"] + dt.timedelta(hours=3)} for row in rows[:2]]
    frame = pd.DataFrame(rows + late)
    frame.to_parquet(path, index=False)
    return frame.head(len(rows))


def test_late_outcomes_give_the_realized_metrics_scikit_learn_computes(served: dict[str, Any], tmp_path: Path) -> None:
    from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

    env = served["env"]  # no MLOPS_NAMESPACE: the readers that know the pipeline find its namespace, as serve does
    outcomes = _outcomes_by_entity(served, tmp_path / "outcomes.parquet")
    ingested = mlops(env, "outcomes", "ingest", "fraud", str(tmp_path / "outcomes.parquet"), "--json")
    assert ingested.returncode == 0, ingested.stdout + ingested.stderr
    summary = json.loads(ingested.stdout)
    assert summary["joined"] == summary["stored"] == len(outcomes) and summary["unmatched"] == 2, summary
    day = served["logged"][0]["decided_at"].date().isoformat()
    shown = mlops(env, "outcomes", "metrics", "fraud", "--since", day, "--until", day, "--json")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    (row,) = [r for r in json.loads(shown.stdout)["rows"] if r["version"] == served["registration"]["version"]]
    labels = outcomes["is_fraud"].to_numpy()
    scores = np.asarray([r["answered"] for r in served["logged"]])  # the same rows, in the same order
    assert row["role"] == "champion" and row["labelled"] == len(labels)
    assert 0 < labels.mean() < 1
    assert row["roc_auc"] == pytest.approx(roc_auc_score(labels, scores), abs=1e-6)
    assert row["pr_auc"] == pytest.approx(average_precision_score(labels, scores), abs=1e-6)
    assert row["brier"] == pytest.approx(brier_score_loss(labels, scores), abs=1e-6)
    assert row["positive_rate"] == pytest.approx(labels.mean())
    shuffled = np.random.default_rng(0).permutation(labels)  # the check can tell a wrong join
    assert abs(roc_auc_score(shuffled, scores) - row["roc_auc"]) > 0.05


# --- the canary ----------------------------------------------------------------------------------


WORSE = {"num_boost_round": 3, "max_depth": 1}
"""Deliberately worse: three stumps (holdout ROC AUC ~0.85 against the champion's ~0.88)."""
BETTER = {"num_boost_round": 200, "max_depth": 6, "learning_rate": 0.1, "subsample": 0.95}
"""The champion's settings (pipelines/fraud/config.yaml) with row subsampling: a higher holdout ROC AUC."""


def _register_challenger(context: dict[str, Any], out: Path, params: dict[str, Any]) -> dict[str, Any]:
    """A version trained, evaluated and registered by the real steps on the platform run's training set."""
    from components.config import EvaluateSettings, RegisterSettings, TrainSettings
    from components.steps.register import register
    from components.steps.train import train
    from tests.conftest import evaluate_into

    run_dir, features = context["run_dir"], context["registration"]["features"]
    out.mkdir(parents=True)
    model, metadata = out / "model", out / "metadata.json"
    train(str(run_dir / "materialize" / "train_set"), str(model), str(metadata), features=features,
          label_column="is_fraud", settings=TrainSettings(model_type="xgboost", params=params))  # fmt: skip
    evaluate_into(out, model, metadata, run_dir / "materialize" / "holdout_set", EvaluateSettings(threshold=0.5))
    settings = RegisterSettings(model_name=MODEL, experiment="fraud", alias=LOOP_ALIAS)
    register(str(model), str(metadata), str(out / "metrics.json"), str(out / "registration.json"),
             str(out / "card.md"), settings=settings, pipeline="fraud")  # fmt: skip
    registration: dict[str, Any] = json.loads((out / "registration.json").read_text())
    context["versions"].append(int(registration["version"]))
    return registration


def _transformer(context: dict[str, Any], name: str, predictor: str, role: str) -> Any:
    """A scoring transformer as `mlops serve --with-features` starts one (the pipeline's feature service and
    scoring settings), logging to LOG as `role`, its flush interval short (0.5 s, the config's is 5 s)."""
    from devstack.transformer import LocalTransformer
    from pipelines.fraud.pipeline import DECLARATION

    m, root, base = DECLARATION.config().materialize, context["root"] / name, free_port_base(2)
    transformer = LocalTransformer(
        root=root, name=name, model_name=MODEL, predictor_grpc=predictor, http_port=base, grpc_port=base + 1,
        project=m.project, feature_service=m.feature_service, entity_column=m.entity_column,
        request_features=list(m.request_features),
        scoring={"decision_log": {"flush_seconds": 0.5, "spill_dir": str(root / "spill")}},
        env={"MLOPS_DECISION_LOG_URI": LOG, "MLOPS_NAMESPACE": "fraud", "MLOPS_SERVING_ROLE": role},
    )  # fmt: skip
    context["running"].append(transformer)
    transformer.start()
    return transformer


def _canary(context: dict[str, Any], version: int) -> str:
    """The version on a Triton of its own and a transformer of its own (role canary): its URL."""
    from devstack.triton import serve_registered

    root = context["root"] / f"canary-v{version}"
    triton, _ = serve_registered(MODEL, root=root, version=version, port_base=free_port_base(3),
                                 record_load_time=False)  # fmt: skip
    context["running"].append(triton)
    return str(_transformer(context, f"canary-v{version}-transformer", triton.grpc_url, "canary").http_url)


def _challengers(context: dict[str, Any]) -> dict[str, Any]:
    """In the background: v2 (WORSE) and v3 (BETTER) registered under LOOP_ALIAS, each served as a canary,
    and a second transformer in front of the champion's Triton for the canary windows."""
    worse = _register_challenger(context, context["root"] / "worse", WORSE)
    better = _register_challenger(context, context["root"] / "better", BETTER)
    with ThreadPoolExecutor(max_workers=3) as pool:
        urls = [pool.submit(_canary, context, int(r["version"])) for r in (worse, better)]
        champion = pool.submit(_transformer, context, "champion-window", context["predictor"], "champion")
        return {"worse": worse, "better": better, "urls": [u.result() for u in urls],
                "champion_url": champion.result().http_url}  # fmt: skip


def _stop_all(context: dict[str, Any], served: list[Path]) -> None:
    """Every server this module started, stopped at once (each stop waits for its process to exit): the
    challengers' and, by their pid files as `mlops serve --stop` stops them, the served transformer and Triton."""
    from devstack import process

    stops = [server.stop for server in context["running"]]
    stops += [lambda pid_file=pid_file: process.stop(pid_file, grace_seconds=10.0) for pid_file in served]
    with ThreadPoolExecutor(max_workers=len(stops)) as pool:
        for done in [pool.submit(stop) for stop in stops]:
            done.result()


def _restore_registry(env: dict[str, str], versions: list[int]) -> None:
    """The registry as the other tests expect it: no champion, canary or LOOP_ALIAS alias, no serving
    history, and the challengers deleted (a deleted version keeps its tags in MLflow: dropped first)."""
    from mlflow import MlflowClient

    from components.platform import model_registry

    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    for alias in (model_registry.CHAMPION, model_registry.CANARY, LOOP_ALIAS):
        if alias in model_registry.aliases(client, MODEL):
            client.delete_registered_model_alias(MODEL, alias)
    for key in [k for k in client.get_registered_model(MODEL).tags if k.startswith(model_registry.HISTORY_PREFIX)]:
        client.delete_registered_model_tag(MODEL, key)
    for version in versions:
        for key in list(client.get_model_version(MODEL, str(version)).tags):
            client.delete_model_version_tag(MODEL, str(version), key)
        client.delete_model_version(MODEL, str(version))


def _window(context: dict[str, Any], champion_url: str, canary_url: str, name: str, tmp_path: Path) -> None:
    """The canary window: the same batch scored by the champion and by the canary, and the outcomes of
    both versions' decisions ingested, keyed by decision id."""
    env, requests = context["env"], context["requests"]
    answered = {role: _send(url, requests, f"{name}-{role}") for role, url in (("champion", champion_url),
                                                                              ("canary", canary_url))}  # fmt: skip
    logged = [record for role, scores in answered.items() for record in _read_back(env, f"{name}-{role}", scores)]
    labels = requests.set_index("user_id")["is_fraud"]
    frame = pd.DataFrame([{"decision_id": r["decision_id"], "is_fraud": int(labels[int(r["entity_id"])])}
                          for r in logged])  # fmt: skip
    frame.to_parquet(tmp_path / f"{name}.parquet", index=False)
    ingested = mlops(env, "outcomes", "ingest", "fraud", str(tmp_path / f"{name}.parquet"), "--json")
    assert ingested.returncode == 0, ingested.stdout + ingested.stderr
    assert json.loads(ingested.stdout)["stored"] == len(frame) == 2 * len(requests)


def _promote(context: dict[str, Any], tmp_path: Path, *flags: str) -> Any:
    """`mlops promote` to a GitOps folder, publishing to a local folder (there is no cluster here)."""
    env = {**_reader(context["env"]), "MLOPS_SERVING_ROOT": (tmp_path / "published").as_uri()}
    done = mlops(env, "promote", MODEL, "--out", str(tmp_path / "gitops"), *flags)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def _analyze(context: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    report: dict[str, Any] = json.loads(_promote(context, tmp_path, "--analyze", "--log", LOG, "--json").stdout)
    return report


def _served_once_each(evidence: dict[str, Any]) -> None:
    """The request outcomes the transformers recorded beside the log: in the window each version answered
    one request (the window's batch), without error; too few to judge, so reported with the count."""
    serving = evidence["serving"]
    assert serving["source"] == f"the decision log's request outcomes at {LOG}_requests/", serving
    for role in ("champion", "canary"):
        assert (serving[role]["requests"], serving[role]["server_errors"]) == (1, 0), serving
        assert serving[role]["p99_ms"] > 0
    assert serving["unattributed"]["requests"] == 0
    assert evidence["error_rate"].startswith("reported, not judged: 1 requests for a version, fewer than 100")


def test_the_canary_analysis_rolls_back_a_worse_challenger_and_promotes_a_better_one(
    served: dict[str, Any], tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    from components.platform import model_registry

    found = served["challengers"].result()
    champion, worse, better = (int(r["version"]) for r in (served["registration"], found["worse"], found["better"]))
    decided = len(served["requests"])
    _promote(served, tmp_path, "--promote", "--version", str(champion))
    _promote(served, tmp_path, "--canary", "10", "--version", str(worse))
    _window(served, found["champion_url"], found["urls"][0], "window-worse", tmp_path)
    report = _analyze(served, tmp_path)
    evidence = report["evidence"]
    assert report["verdict"] == "rollback", report
    assert evidence["canary"]["by_role"] == {"canary": decided}
    assert evidence["champion"]["decisions"] == decided  # the window's: not the batch scored before it began
    assert evidence["ks"] > evidence["thresholds"]["max_ks"]
    realized = evidence["realized"]
    assert realized["canary"]["labelled"] == realized["champion"]["labelled"] == decided
    assert realized["canary"]["roc_auc"] < realized["champion"]["roc_auc"]
    assert (report["applied"]["action"], report["applied"]["to_version"]) == ("rollback", champion)
    _served_once_each(evidence)

    holdout = {version: r["holdout_metrics"]["roc_auc"] for version, r in ((champion, served["registration"]),
                                                                             (better, found["better"]))}  # fmt: skip
    assert holdout[better] > holdout[champion]  # better on the holdout its gate judges
    _promote(served, tmp_path, "--canary", "10", "--version", str(better))
    _window(served, found["champion_url"], found["urls"][1], "window-better", tmp_path)
    report = _analyze(served, tmp_path)
    evidence = report["evidence"]
    assert report["verdict"] == "promote", report
    assert evidence["ks"] <= evidence["thresholds"]["max_ks"] and evidence["psi"] <= evidence["thresholds"]["max_psi"]
    realized = evidence["realized"]
    assert realized["judged"].startswith("roc_auc: canary worse by") and realized["canary"]["labelled"] == decided
    drop = realized["champion"]["roc_auc"] - realized["canary"]["roc_auc"]
    assert drop <= evidence["thresholds"]["max_realized_drop"]  # judged on the labels, within the tolerance
    _served_once_each(evidence)
    client = MlflowClient(served["env"]["MLFLOW_TRACKING_URI"])
    assert model_registry.aliases(client, MODEL)[model_registry.CHAMPION] == better
    actions = [(e.action, e.to_version) for e in model_registry.history(client, MODEL)]
    assert actions == [("promote", champion), ("canary", worse), ("rollback", champion), ("canary", better),
                       ("promote", better)]  # fmt: skip
