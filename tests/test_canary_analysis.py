"""`mlops promote <model> --analyze` (issue 32 item 4), Standard-mode canaries and the production sign-off.

Against a real MLflow registry (embedded sqlite; two versions registered by the real steps, trained as
carol@bank.internal), the platform's Gatekeeper policies on the real OPA engine and the KServe CRD
(mlops lint, strictly). The decision log is written as the transformer writes it: DecisionRecords as
decision_record.table_of + write_file under the hive layout (decision_record.file_key). The champion's
and the canary's scores are drawn from known distributions: a similar canary (same distribution, another
draw), a worse one (scores shifted up by 0.25), too few decisions. Champion decisions made before the
canary began, with wild scores, must not count: the window starts at the canary's history entry.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from components.config import PromoteSettings
from components.errors import ComponentError
from components.platform import model_registry
from components.serving.decision_record import DecisionRecord, file_key, table_of, write_file
from components.steps.canary_analysis import analyze, population_stability_index
from mlops import lint, rollout
from mlops.cli import main
from tests.conftest import train_evaluate_register

MODEL = "fraud-detector"
TRAINER = "carol@bank.internal"
CHAMPION, CANARY = 1, 2


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory: pytest.TempPathFactory, materialized: dict[str, Any]) -> dict[str, Any]:
    """Two registered versions (different boosting rounds), registered by TRAINER."""
    home = tmp_path_factory.mktemp("canary-analysis")
    before = os.environ.get("MLOPS_USER")
    os.environ["MLOPS_USER"] = TRAINER
    try:
        for rounds in (20, 30):
            train_evaluate_register(
                materialized, home / f"r{rounds}", home, model_name=MODEL, params={"num_boost_round": rounds}
            )
    finally:
        os.environ.pop("MLOPS_USER") if before is None else os.environ.update(MLOPS_USER=before)
    return {"home": home, "uri": f"sqlite:///{home}/mlflow.db"}


@pytest.fixture()
def registry(two_versions: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A fresh serving history and log for each test (the registry is shared)."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", two_versions["uri"])
    monkeypatch.setenv("MLOPS_SERVING_ROOT", (tmp_path / "serving").as_uri())
    monkeypatch.setenv("MLOPS_USER", "alice@bank.internal")
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    mlflow = model_registry.client()
    for key in list(mlflow.get_registered_model(MODEL).tags):
        if key.startswith(model_registry.HISTORY_PREFIX):
            mlflow.delete_registered_model_tag(MODEL, key)
    for alias in (model_registry.CHAMPION, model_registry.CANARY):
        if alias in model_registry.aliases(mlflow, MODEL):
            mlflow.delete_registered_model_alias(MODEL, alias)
    return {"mlflow": mlflow, "gitops": tmp_path / "gitops", "log": tmp_path / "log", "tmp": tmp_path}


def _config(tmp_path: Path, **promote: Any) -> str:
    from pipelines.fraud.pipeline import DECLARATION

    document = yaml.safe_load((DECLARATION.folder / "config.yaml").read_text())
    document["promote"].update(promote)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(document))
    return str(path)


def _promote(registry: dict[str, Any], *flags: str) -> int:
    return main(["promote", MODEL, "--out", str(registry["gitops"]), *flags])


def _record(version: int, i: int, score: float, when: dt.datetime, role: str = "champion") -> DecisionRecord:
    """One scored row of `version`, as the transformer logs it."""
    request = {"user_id": i}
    return DecisionRecord(
        request_id=f"{version}-{when:%H%M%S%f}-{i}", row=0, decided_at=when, namespace="fraud", model_name=MODEL,
        model_version=str(version), model_sha256="0" * 64, serving_role=role, revision="local",
        entity_column="user_id", entity_id=str(i), request=request, feature_names=["amount"],
        feature_values=[score], unknown_entity=False, score=score, threshold=0.5, decision=int(score >= 0.5),
    )  # fmt: skip


def _log(root: Path, version: int, scores: np.ndarray, when: dt.datetime, role: str = "champion") -> None:
    """One flushed batch of `version`'s decisions, written where the transformer writes it."""
    records = [_record(version, i, float(s), when, role) for i, s in enumerate(scores)]
    path = root / file_key("fraud", MODEL, str(version), when.strftime("%Y-%m-%d"))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_file(table_of(records), str(path))


def _scores(seed: int, n: int, shift: float = 0.0) -> np.ndarray:
    return np.clip(np.random.default_rng(seed).beta(2.0, 8.0, n) + shift, 0.0, 1.0)


def _canary_with_log(registry: dict[str, Any], config: str, canary: np.ndarray, champion_n: int = 800) -> str:
    """v1 serves, v2 in canary at 10%; the log holds the window's decisions of both, and earlier
    champion decisions (before the canary began) with wild scores that must not count."""
    assert _promote(registry, "--promote", "--version", str(CHAMPION), "--config", config) == 0
    root = registry["log"]
    _log(root, CHAMPION, np.full(900, 0.99), dt.datetime.now(dt.UTC) - dt.timedelta(hours=2))
    assert _promote(registry, "--canary", "10", "--version", str(CANARY), "--config", config) == 0
    now = dt.datetime.now(dt.UTC)
    _log(root, CHAMPION, _scores(1, champion_n), now)
    _log(root, CANARY, canary, now, role="canary")
    return str(root / "fraud")


def _last(registry: dict[str, Any]) -> model_registry.HistoryEntry:
    return model_registry.history(registry["mlflow"], MODEL)[-1]


def _manifest(registry: dict[str, Any]) -> dict[str, Any]:
    path = registry["gitops"] / "fraud" / f"{MODEL}.inferenceservice.yaml"
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


def test_a_worse_canary_is_rolled_back_with_its_evidence_in_the_history(
    registry: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(registry["tmp"])
    log = _canary_with_log(registry, config, _scores(2, 600, shift=0.25))
    capsys.readouterr()
    history = len(model_registry.history(registry["mlflow"], MODEL))
    assert _promote(registry, "--analyze", "--log", log, "--config", config, "--dry-run", "--json") == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["verdict"] == "rollback" and printed["applied"] is None
    assert len(model_registry.history(registry["mlflow"], MODEL)) == history, "a dry run records nothing"

    assert _promote(registry, "--analyze", "--log", log, "--config", config) == 0
    shown = capsys.readouterr().out
    assert "verdict: rollback" in shown and "not measured" in shown
    entry = _last(registry)
    assert (entry.action, entry.from_version, entry.to_version) == ("rollback", CANARY, CHAMPION)
    evidence = entry.evidence
    assert evidence["verdict"] == "rollback" and entry.reason.startswith("canary analysis: rollback")
    assert evidence["psi"] > evidence["thresholds"]["max_psi"] and evidence["ks"] > evidence["thresholds"]["max_ks"]
    # the window: 800 champion decisions, not the 900 made before the canary began
    assert (evidence["champion"]["decisions"], evidence["canary"]["decisions"]) == (800, 600)
    assert evidence["canary"]["by_role"] == {"canary": 600}
    assert evidence["latency_p99"].startswith("not measured") and evidence["error_rate"].startswith("not measured")
    assert model_registry.CANARY not in model_registry.aliases(registry["mlflow"], MODEL)
    assert int(_manifest(registry)["spec"]["predictor"]["canaryTrafficPercent"]) == 0  # Serverless: 0% to v2


def test_a_similar_canary_is_promoted_in_standard_mode_through_the_lifecycle(
    registry: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """Standard (RawDeployment) mode: the canary is a spec.canary entry; the promote verdict retargets
    spec.predictor to the canary's predictor and removes the entry, like `--promote` does."""
    config = _config(registry["tmp"], deployment_mode="RawDeployment")
    log = _canary_with_log(registry, config, _scores(3, 600))
    before = _manifest(registry)
    assert [e["trafficPercent"] for e in before["spec"]["canary"]] == [10] and lint.check(before) is None
    assert _promote(registry, "--analyze", "--log", log, "--config", config) == 0
    entry = _last(registry)
    assert (entry.action, entry.to_version) == ("promote", CANARY) and entry.evidence["verdict"] == "promote"
    assert entry.evidence["ks"] <= entry.evidence["thresholds"]["max_ks"]
    assert entry.evidence["psi"] <= entry.evidence["thresholds"]["max_psi"]
    assert model_registry.aliases(registry["mlflow"], MODEL)[model_registry.CHAMPION] == CANARY
    after = _manifest(registry)
    assert lint.check(after) is None and "canary" not in after["spec"]
    assert after["spec"]["predictor"] == before["spec"]["canary"][0]["predictor"]
    assert after["spec"]["predictor"]["name"] == f"v{CANARY}"
    assert "promote recorded" in capsys.readouterr().out


def test_too_few_decisions_waits_and_records_the_wait(registry: dict[str, Any]) -> None:
    config = _config(registry["tmp"])
    log = _canary_with_log(registry, config, _scores(4, 120, shift=0.25))  # worse, but too few to tell
    state = (model_registry.aliases(registry["mlflow"], MODEL), _manifest(registry))
    assert _promote(registry, "--analyze", "--log", log, "--config", config) == 0
    entry = _last(registry)
    assert (entry.action, entry.to_version, entry.traffic_percent) == ("wait", CANARY, 10)
    assert entry.evidence["canary"]["decisions"] == 120 and "fewer than 500" in entry.evidence["reasons"][0]
    assert "ks" not in entry.evidence, "no verdict on the distributions with too few decisions"
    assert (model_registry.aliases(registry["mlflow"], MODEL), _manifest(registry)) == state
    after = [(e.action, e.to_version) for e in model_registry.history(registry["mlflow"], MODEL)]
    assert after[-2:] == [("canary", CANARY), ("wait", CANARY)]
    # the wait changes no serving state: the canary is still live and can be judged again
    assert main(["history", MODEL]) == 0


def test_analyze_refuses_without_a_canary_and_with_an_action_flag(
    registry: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(registry["tmp"])
    assert _promote(registry, "--promote", "--version", "1", "--config", config) == 0
    assert _promote(registry, "--analyze", "--log", str(registry["log"]), "--config", config) == 2
    assert "no canary is live (v1 serves), so there is nothing to analyze" in capsys.readouterr().err
    assert _promote(registry, "--analyze", "--promote") == 2
    assert "--analyze judges the live canary and chooses the action itself" in capsys.readouterr().err
    assert _promote(registry, "--promote", "--json") == 2
    assert "--json belongs to --analyze" in capsys.readouterr().err


def test_the_verdicts_rules_realized_metrics_and_psi() -> None:
    """analyze alone: realized metrics judge where enough labels exist (a canary whose scores look like
    the champion's but whose realized AUC is lower is rolled back), and are only reported with too few."""
    now = dt.datetime.now(dt.UTC)
    table = table_of(
        _record(version, i, float(s), now) for version, seed in ((CHAMPION, 10), (CANARY, 11))
        for i, s in enumerate(_scores(seed, 700))
    )  # fmt: skip
    settings = PromoteSettings(namespace="fraud")
    since, until = now - dt.timedelta(minutes=1), now + dt.timedelta(minutes=1)

    def judge(realized: Any = None) -> Any:
        return analyze(table, champion=CHAMPION, canary=CANARY, since=since, until=until, settings=settings,
                       realized=realized)  # fmt: skip

    def realized(labelled: int, canary_auc: float) -> Any:
        return lambda: [
            {"version": str(CHAMPION), "serving_role": "champion", "labelled": labelled, "roc_auc": 0.80},
            {"version": str(CANARY), "serving_role": "champion", "labelled": labelled, "roc_auc": canary_auc},
        ]

    assert judge().action == "promote"
    worse = judge(realized(300, 0.70))
    assert worse.action == "rollback" and "realized roc_auc 0.7000" in worse.reasons[0]
    few = judge(realized(50, 0.70))
    assert few.action == "promote" and few.evidence["realized"]["judged"].startswith("no: fewer than 200")
    close = judge(realized(300, 0.79))
    assert close.action == "promote" and close.evidence["realized"]["canary"] == {"labelled": 300, "roc_auc": 0.79}

    same, shifted = _scores(20, 5000), _scores(21, 5000)
    assert population_stability_index(same, shifted) < 0.02  # two draws of one distribution
    psi = population_stability_index(same, _scores(22, 5000, shift=0.25))
    edges = np.quantile(same, np.linspace(0, 1, 11)[1:-1])
    expected = np.histogram(same, bins=[-np.inf, *edges, np.inf])[0] / len(same)
    actual = np.histogram(_scores(22, 5000, shift=0.25), bins=[-np.inf, *edges, np.inf])[0] / 5000
    expected, actual = np.maximum(expected, 1e-4), np.maximum(actual, 1e-4)
    assert psi == pytest.approx(float(np.sum((actual - expected) * np.log(actual / expected))), rel=0.05)
    assert psi > settings.analysis_max_psi


def test_production_sign_off_must_not_be_the_trainer_and_is_recorded(
    registry: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from components.steps.promote_signoff import TRAINER_TAG, trainer_of
    from mlops.admission import POLICY_DIR

    assert trainer_of(registry["mlflow"], MODEL, CANARY) == TRAINER  # register recorded who trained it
    lenient = tmp_path / "policies"  # the small test set's AUC (~0.8) is under the shipped bar (0.85)
    lenient.mkdir()
    for file in POLICY_DIR.glob("*.yaml"):
        (lenient / file.name).write_text(file.read_text().replace("minHoldoutAuc: 0.85", "minHoldoutAuc: 0.5"))
    production = ("--stage", "production", "--policies", str(lenient))
    assert _promote(registry, "--promote", "--version", "1", *production, "--signed-off-by", TRAINER) == 2
    error = capsys.readouterr().err
    assert f"{TRAINER} trained {MODEL} v1 and cannot also sign it off for production" in error
    assert model_registry.history(registry["mlflow"], MODEL) == [] and not registry["gitops"].exists()

    assert _promote(registry, "--promote", "--version", "1", *production, "--signed-off-by", "bob") == 0
    entry = _last(registry)
    assert entry.signed_off_by == "bob" and entry.who == "alice@bank.internal"
    assert _manifest(registry)["metadata"]["annotations"]["mlops.private-platform.io/signed-off-by"] == "bob"
    capsys.readouterr()
    assert main(["history", MODEL]) == 0 and "signed off by bob" in capsys.readouterr().out
    # a staging step records no sign-off; a rollback needs none
    assert _promote(registry, "--rollback") == 2  # nothing to roll back to, not a sign-off refusal
    assert "nothing to roll back to" in capsys.readouterr().err

    version = registry["mlflow"].get_model_version(MODEL, str(CANARY))
    registry["mlflow"].delete_model_version_tag(MODEL, str(CANARY), TRAINER_TAG)
    registry["mlflow"].delete_tag(version.run_id, TRAINER_TAG)
    try:
        assert _promote(registry, "--canary", "10", "--version", "2", *production, "--signed-off-by", "bob") == 2
        assert f"{MODEL} v2 records no trainer" in capsys.readouterr().err
    finally:
        registry["mlflow"].set_model_version_tag(MODEL, str(CANARY), TRAINER_TAG, TRAINER)
        registry["mlflow"].set_tag(version.run_id, TRAINER_TAG, TRAINER)
    assert len(model_registry.history(registry["mlflow"], MODEL)) == 1


def test_the_pipeline_step_in_standard_mode_renders_one_named_predictor_and_refuses_a_split(
    two_versions: dict[str, Any], tmp_path: Path
) -> None:
    from components.steps.promote import promote

    out = two_versions["home"] / "r20"
    settings = {"namespace": "fraud", "deployment_mode": "RawDeployment", "signed_off_by": "bob"}

    def step(percent: int) -> dict[str, Any]:
        promote(str(out / "registration.json"), str(out / "model"), str(tmp_path / "isvc.yaml"),
                str(tmp_path / "repository"), settings=PromoteSettings(**settings, canary_percent=percent),
                serving_root=(tmp_path / "serving").as_uri())  # fmt: skip
        loaded: dict[str, Any] = yaml.safe_load((tmp_path / "isvc.yaml").read_text())
        return loaded

    with pytest.raises(ComponentError, match=r"a 10% canary in RawDeployment mode is a spec\.canary entry"):
        step(10)
    assert not (tmp_path / "isvc.yaml").exists()
    service = step(100)
    assert lint.check(service) is None
    predictor = service["spec"]["predictor"]
    assert predictor["name"] == "v1" and "canaryTrafficPercent" not in predictor and "canary" not in service["spec"]


def test_an_outcomes_store_that_fails_stops_the_analysis_instead_of_reading_as_no_outcomes(
    registry: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refused or failing outcomes read is not 'no outcomes yet' (which lets a canary be promoted on
    its scores alone): the analysis stops with the store's error and records nothing. Positive
    control: the same log with the store answering records a verdict."""
    from components.errors import TransientError
    from components.platform import outcomes

    config = _config(registry["tmp"])
    log = _canary_with_log(registry, config, _scores(4, 120, shift=0.25))
    before = len(model_registry.history(registry["mlflow"], MODEL))

    def down(*_: Any) -> Any:
        raise TransientError("promote", "the decision log's store did not answer", "retry")

    answering = outcomes.realized
    monkeypatch.setattr(outcomes, "realized", down)
    assert _promote(registry, "--analyze", "--log", log, "--config", config) == 75
    assert len(model_registry.history(registry["mlflow"], MODEL)) == before, "a verdict recorded without outcomes"
    monkeypatch.setattr(outcomes, "realized", answering)
    assert _promote(registry, "--analyze", "--log", log, "--config", config) == 0
    assert len(model_registry.history(registry["mlflow"], MODEL)) == before + 1


def test_the_hourly_sweep_judges_a_canary_only_once_its_window_has_passed(
    registry: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`mlops canary-analysis` (the tenant's hourly CronWorkflow, mlops/canary_sweep.py): a canary inside
    its promote.canary_window (24h, the pipeline's) is left alone and nothing is recorded; past it, the
    worse canary is rolled back through the lifecycle with its evidence; then there is no canary to
    judge. Another namespace's sweep never touches it; a model the registry does not know fails alone
    (exit 2) without stopping the others."""
    from mlops import canary_sweep
    from mlops.cli.serving import pipeline_request

    config = _config(registry["tmp"])
    monkeypatch.setenv("MLOPS_DECISION_LOG_URI", _canary_with_log(registry, config, _scores(2, 600, shift=0.25)))
    before = len(model_registry.history(registry["mlflow"], MODEL))
    capsys.readouterr()
    assert main(["canary-analysis", "--namespace", "fraud", "--out", str(registry["gitops"]), "--json"]) == 0
    [printed] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert printed["status"] == "not-due" and "promote.canary_window 24h" in printed["detail"], printed
    assert len(model_registry.history(registry["mlflow"], MODEL)) == before, "judged inside its window"

    def request_for(cfg: Any, model: str) -> Any:
        return pipeline_request(cfg, model, action="promote")

    gitops = rollout.Target(kind="gitops", folder=registry["gitops"])
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=25)
    [elsewhere] = canary_sweep.sweep("pricing", gitops, request_for, now=later)
    assert elsewhere.status == "elsewhere" and len(model_registry.history(registry["mlflow"], MODEL)) == before
    found = canary_sweep.sweep("fraud", gitops, request_for, models=[MODEL, "no-such-model"], now=later)
    assert [f.status for f in found] == ["analyzed", "failed"] and canary_sweep.exit_code(found) == 2
    entry = _last(registry)
    assert (entry.action, entry.from_version, entry.to_version) == ("rollback", CANARY, CHAMPION)
    assert entry.evidence["verdict"] == "rollback" and entry.reason.startswith("canary analysis: rollback")
    [after] = canary_sweep.sweep("fraud", gitops, request_for, now=later)
    assert after.status == "no-canary" and canary_sweep.exit_code([after]) == 0


@pytest.mark.parametrize(
    ("webhook", "stage"),
    [("admits", "staging"), ("denies", "staging"), ("admits", "production"), ("fails-open", "staging"),
     ("not-judging", "staging")],
    ids=["admitted", "denied", "production", "gatekeeper-fails-open", "gatekeeper-not-judging"],
)  # fmt: skip
def test_in_a_pod_the_cluster_admits_every_object_before_any_is_applied(
    registry: dict[str, Any], monkeypatch: pytest.MonkeyPatch, schemas_dir: Path, webhook: str, stage: str
) -> None:
    """The analysis in a pod ships no policy folder (`--admission cluster`, policies None): each object
    goes through the API server's dryRun=All first, which runs Gatekeeper (here the stand-in's webhook
    evaluating the platform's policies on the real OPA engine, as the kubeconfig's user). Admitted: the
    dry runs come before the writes and the rollback lands. Denied (the same policies plus a webhook that
    refuses the rollback): the sweep fails that model with Gatekeeper's words (exit 2), and nothing is
    stored or recorded: the dry run of the authorization objects wrote nothing either. Production (a canary
    started with --stage production, signed off by the kubeconfig's bob, while the config says staging):
    the analyst applies the verdict in production with the live service's sign-off, never relabelling it
    staging (which had dropped the sign-off and ungated the service). First of all the dry runs goes the
    check of Gatekeeper's ValidatingWebhookConfiguration, then the positive control (mlops/admission_control.py),
    a copy of the service that no-node-access refuses. Gatekeeper installed to fail open (failurePolicy
    Ignore, the chart's default): refused before any dry run, a permanent failure (exit 2) naming
    validatingWebhookFailurePolicy=Fail, nothing sent. Installed to fail closed but judging nothing (here no
    webhook answers once the promotions are in: its Constraints not installed), the control is admitted, so
    the sweep applies nothing and says so as a transient failure (exit 75), instead of trusting dry runs
    that judge nothing."""
    import shutil

    from components.steps.promote_identity import ANALYST_SERVICE_ACCOUNT
    from mlops import admission, canary_sweep
    from mlops.admission_control import GATEKEEPER_CONFIGURATION as GATEKEEPER
    from mlops.cli.serving import pipeline_request
    from mlops.kube import Cluster
    from tests.conftest import write_kubeconfig
    from tests.kubernetes_api_stand_in import InferenceServiceApi
    from tests.loopback_http import serving

    folder = registry["tmp"] / "policies"  # the platform's policies; production's AUC bar below these toy models'
    shutil.copytree(rollout.POLICY_DIR, folder)
    guard = folder / "promotion-guard.yaml"
    guard.write_text(guard.read_text().replace("minHoldoutAuc: 0.85", "minHoldoutAuc: 0.5"))
    policies = admission.PolicySet(folder)

    def gatekeeper(obj: dict[str, Any], user: str) -> list[str]:
        found = policies.violations(obj, user=user)
        rollout_note = obj.get("metadata", {}).get("annotations", {}).get("mlops.private-platform.io/rollout", "")
        refused = webhook == "denies" and "rollback" in rollout_note
        return found + (["[no-rollbacks] refused on purpose"] if refused else [])

    InferenceServiceApi.reset()
    InferenceServiceApi.install_gatekeeper(gatekeeper, "Ignore" if webhook == "fails-open" else "Fail")
    with serving(InferenceServiceApi) as server:
        kubeconfig = write_kubeconfig(registry["tmp"] / "kubeconfig", server.server_port)
        config = _config(registry["tmp"])
        signer = InferenceServiceApi.username  # the kubeconfig's identity signs off as itself
        staged = ["--stage", stage, *(["--signed-off-by", signer] if stage == "production" else [])]
        for flags in (["--promote", "--version", str(CHAMPION)], ["--canary", "10", "--version", str(CANARY)]):
            given = [*flags, *staged, "--config", config, "--kubeconfig", str(kubeconfig), "--policies", str(folder)]
            assert main(["promote", MODEL, *given]) == 0
        InferenceServiceApi.username = f"system:serviceaccount:fraud:{ANALYST_SERVICE_ACCOUNT}"  # the sweep's pod
        if webhook == "not-judging":
            InferenceServiceApi.webhooks = []
        now = dt.datetime.now(dt.UTC)
        _log(registry["log"], CHAMPION, _scores(1, 800), now)
        _log(registry["log"], CANARY, _scores(2, 600, shift=0.25), now, role="canary")
        monkeypatch.setenv("MLOPS_DECISION_LOG_URI", str(registry["log"] / "fraud"))
        stored = json.dumps(InferenceServiceApi.objects, sort_keys=True)
        before = len(model_registry.history(registry["mlflow"], MODEL))
        InferenceServiceApi.calls.clear()

        def request_for(cfg: Any, model: str) -> Any:
            return pipeline_request(cfg, model, action="promote", policies=None)

        target = rollout.Target(kind="kubernetes", cluster=Cluster.from_kubeconfig(kubeconfig))
        later = now + dt.timedelta(hours=25)
        [found] = canary_sweep.sweep("fraud", target, request_for, models=[MODEL], now=later)
    writes = [c for c in InferenceServiceApi.calls if not c.startswith("GET") and "selfsubjectreviews" not in c]
    dry = [call for call in writes if call.endswith("(dry run)")]
    configuration = f"GET /apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/{GATEKEEPER}"
    assert configuration in InferenceServiceApi.calls, InferenceServiceApi.calls
    if webhook == "fails-open":  # refused on the configuration: not one object sent, the control neither
        assert (found.status, canary_sweep.exit_code([found])) == ("failed", 2), found
        assert "validation.gatekeeper.sh (Ignore)" in found.detail and "fail open" in found.detail, found.detail
        assert "validatingWebhookFailurePolicy=Fail" in found.detail, found.detail
        assert writes == [] and json.dumps(InferenceServiceApi.objects, sort_keys=True) == stored
        assert len(model_registry.history(registry["mlflow"], MODEL)) == before
        return
    if webhook == "not-judging":  # the control was admitted: nothing after it, not even the real dry runs
        assert (found.status, canary_sweep.exit_code([found])) == ("failed", 75), found
        assert "admitted a service that asks for the node's network" in found.detail, found.detail
        assert "no-node-access" in found.detail and "validatingWebhookFailurePolicy=Fail" in found.detail
        assert len(writes) == len(dry) == 1, writes
        assert json.dumps(InferenceServiceApi.objects, sort_keys=True) == stored, "a fail-open admission wrote"
        assert len(model_registry.history(registry["mlflow"], MODEL)) == before
        return
    assert len(dry) == 4 and writes[: len(dry)] == dry, writes  # the control, then every object, before any write
    if webhook == "denies":
        assert (found.status, canary_sweep.exit_code([found])) == ("failed", 2), found
        assert 'admission webhook "validation.gatekeeper.sh" denied' in found.detail and "no-rollbacks" in found.detail
        assert json.dumps(InferenceServiceApi.objects, sort_keys=True) == stored, "a denied verdict wrote something"
        assert len(model_registry.history(registry["mlflow"], MODEL)) == before
        assert len(writes) == len(dry), writes
    else:
        assert found.status == "analyzed", found
        assert len(writes) == 7, writes
        assert (_last(registry).action, _last(registry).to_version) == ("rollback", CHAMPION)
        [live] = [o for path, o in InferenceServiceApi.objects.items() if path.endswith(f"/inferenceservices/{MODEL}")]
        assert live["metadata"]["labels"]["mlops.private-platform.io/stage"] == stage
        signed = live["metadata"]["annotations"].get("mlops.private-platform.io/signed-off-by", "")
        assert (signed, _last(registry).signed_off_by) == ((signer, signer) if stage == "production" else ("", ""))
