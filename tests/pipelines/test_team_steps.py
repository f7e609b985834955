"""issue 31 item 3: steps a team adds to the standard DAG (pipelines/team_steps.py), declared by a
function's typed signature, rendered to Argo and KFP, run and cached like the built-in steps.

The team's functions are tests/pipelines/team_example.py: a features step adding a ratio column
between validate and materialize, and a fairness check after evaluate that joins the gate.
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pandas as pd
import pytest

from components.errors import ComponentError
from pipelines.declaration import PipelineDeclaration
from pipelines.spec import Condition
from pipelines.standard import standard_pipeline
from pipelines.team_steps import TeamStep

EXAMPLE = "tests.pipelines.team_example"
FEATURES = TeamStep(kind="features", component=f"{EXAMPLE}:engineer_features")
CHECK = TeamStep(
    kind="check",
    component=f"{EXAMPLE}:fairness",
    inputs={"model": "train.model", "metadata": "train.metadata", "holdout_set": "materialize.holdout_set"},
    parameters={"max_gap": 0.1},
)
RETRAIN = Condition(step="drift", output="retrain", equals=True)
GATE_PASSED = Condition(step="evaluate", output="passed", equals=True)
FAIR = Condition(step="fairness", output="passed", equals=True)
UNFAIR = Condition(step="fairness", output="passed", equals=False)


def team_pipeline(*team_steps: TeamStep) -> PipelineDeclaration:
    return standard_pipeline(name="fraud", description="fraud, with a team's steps", package="pipelines.fraud",
                             team_steps=team_steps)  # fmt: skip


@pytest.fixture(scope="module")
def declared() -> PipelineDeclaration:
    return team_pipeline(FEATURES, CHECK)


def test_features_step_sits_between_validate_and_materialize(declared: PipelineDeclaration) -> None:
    """issue 31: a features step runs after validate, and materialize and drift read its dataset."""
    spec = declared.spec
    assert spec.step("engineer-features").upstream() == ("validate",)
    assert spec.step("materialize").inputs["raw_data"] == "engineer-features.data_uri"
    assert spec.step("materialize").inputs["data_digest"] == "engineer-features.data_digest"
    assert spec.step("drift").inputs["current_data"] == "engineer-features.data_uri"
    run = {"raw_data": "s3://in/raw.parquet", "git_commit": "", "gate_threshold": 0.8, "force_retrain": False,
           "logical_date": "", "run_id": "r"}  # fmt: skip
    parameters = declared.step_parameters(declared.config(), run)
    assert parameters["engineer-features"] == {"raw_data": "s3://in/raw.parquet", "logical_date": "",
                                               "numerator": "amount", "denominator": "amount_avg_7d"}  # fmt: skip
    assert "raw_data" not in parameters["materialize"] and "current_data" not in parameters["drift"]
    assert parameters["fairness"]["max_gap"] == 0.1


def test_a_features_step_given_a_dated_uri_must_take_the_logical_date() -> None:
    """issue 31 item 6: with cluster.raw_data dated, a features step reading the run's raw_data gets
    the template; one without a logical_date parameter could not fill it, and is refused naming the
    fix. Controls: the same step on an undated URI, and a step that takes the date, are accepted."""
    run = {"raw_data": "s3://in/{date}/raw.parquet", "git_commit": "", "gate_threshold": 0.8,
           "force_retrain": False, "logical_date": "2026-12-04", "run_id": "r"}  # fmt: skip
    undated_step = team_pipeline(TeamStep(kind="features", component=f"{EXAMPLE}:undated_features"))
    dated = undated_step.config().with_overrides({"cluster.raw_data": "s3://in/{date}/raw.parquet"})
    with pytest.raises(ComponentError, match="takes no logical_date") as refused:
        undated_step.step_parameters(dated, run)
    assert "components.dated_inputs.resolve" in str(refused.value)
    assert "undated-features" in undated_step.step_parameters(undated_step.config(), run)
    taking = team_pipeline(FEATURES)
    assert taking.step_parameters(dated, run)["engineer-features"]["logical_date"] == "2026-12-04"


def test_check_joins_the_gate_and_notifies_when_it_fails(declared: PipelineDeclaration) -> None:
    """issue 31: register and promote need evaluate AND the check; a failed check notifies the owner."""
    spec = declared.spec
    assert spec.step("fairness").when == (RETRAIN,) and "evaluate" in spec.step("fairness").upstream()
    for name in ("register", "promote"):
        assert spec.step(name).when == (RETRAIN, GATE_PASSED, FAIR)
    notice = spec.step("notify-fairness")
    assert notice.component == spec.step("notify").component
    assert notice.inputs == {"metrics": "fairness.metrics"}
    assert notice.when == (RETRAIN, GATE_PASSED, UNFAIR)
    assert spec.step("notify").when == (RETRAIN, Condition(step="evaluate", output="passed", equals=False))


def write_team_module(tmp_path: Path, name: str, source: str) -> str:
    """A team package `name` under tmp_path with `steps.py`; its import path for a TeamStep."""
    package = tmp_path / name
    package.mkdir(exist_ok=True)
    (package / "__init__.py").write_text("")
    (package / "steps.py").write_text(textwrap.dedent(source))
    if str(tmp_path) not in sys.path:
        sys.path.insert(0, str(tmp_path))
    sys.modules.pop(f"{name}.steps", None)
    return f"{name}.steps"


CLASHING = """
from typing import NamedTuple
from kfp.dsl import Dataset, Output

Out = NamedTuple("Outputs", [("data_uri", str), ("data_digest", str)])

def validate(raw_data: str, out: Output[Dataset]) -> Out:
    return (out.uri, "")

import pandas as pd

def from_module(raw_data: str, out: Output[Dataset]) -> Out:
    pd.read_parquet(raw_data).to_parquet(out.path)
    return (out.uri, "")

def retrain_flag(raw_data: str, out: Output[Dataset]) -> NamedTuple(
    "Outputs", [("data_uri", str), ("data_digest", str), ("retrain", bool)]
):
    return (out.uri, "", True)
"""


@pytest.mark.parametrize(
    ("team", "named", "says"),
    [
        (TeamStep(kind="check", component=f"{EXAMPLE}:fairness", inputs={"model": "train.weights"}),
         "fairness", "train.weights, which no step outputs"),
        (TeamStep(kind="features", component=f"{EXAMPLE}:scale_features",
                  inputs={"reference": "materialize.train_set"}), "scale-features", "a cycle"),
        (TeamStep(kind="features", component="clashing_team.steps:retrain_flag"),
         "retrain-flag", "'retrain' is a built-in step's output"),
        (TeamStep(kind="features", component="clashing_team.steps:validate"), "validate", "a built-in step's name"),
        (TeamStep(kind="features", component=f"{EXAMPLE}:fairness"), "fairness", "must return 'data_uri'"),
        (TeamStep(kind="features", component="no_such_team.steps:engineer"), "engineer", "cannot be loaded"),
        (TeamStep(kind="features", component="clashing_team.steps:from_module"), "from-module",
         "reads pd from its module"),
        (TeamStep(kind="check", component=f"{EXAMPLE}:fairness", inputs=CHECK.inputs, parameters={"max_gapp": 0.1}),
         "fairness", "'max_gapp', which"),
        (TeamStep(kind="check", component=f"{EXAMPLE}:fairness", inputs={"model": "train.model"}),
         "fairness", "'metadata' has no value"),
    ],
)  # fmt: skip
def test_invalid_wiring_is_refused_at_declaration(tmp_path: Path, team: TeamStep, named: str, says: str) -> None:
    """issue 31: an unknown input, a cycle, an output or a step named like a built-in one, an
    argument without a value and a function KFP could not run alone are refused when the
    declaration is built, naming the step and the fix."""
    write_team_module(tmp_path, "clashing_team", CLASHING)
    with pytest.raises(ComponentError) as refused:
        team_pipeline(team)
    assert refused.value.step == named and says in str(refused.value) and refused.value.fix


def test_renders_to_schema_valid_argo_with_the_team_steps(declared: PipelineDeclaration, schemas_dir: Path) -> None:
    """issue 31: team steps are Argo tasks like the built-ins: same image and `mlops task`, their
    declared retry class and resources, memoized, ordered and gated; the features step's dataset is
    stored where materialize's and drift's pods read the URI it returns."""
    from pipelines.argo import render

    rendered = render(declared, declared.config())
    full = json.loads((schemas_dir / "argo-workflows-v4.1.2.intorstring.schema.json").read_text())
    for kind, body in rendered.items():
        jsonschema.validate(body, {"$ref": f"#/definitions/io.argoproj.workflow.v1alpha1.{kind}",
                                   "definitions": full["definitions"]})  # fmt: skip
    templates = {t["name"]: t for t in rendered["WorkflowTemplate"]["spec"]["templates"]}
    tasks = {t["name"]: t for t in templates["pipeline"]["dag"]["tasks"]}
    assert tasks["engineer-features"]["depends"] == "validate.Succeeded"
    assert tasks["materialize"]["depends"] == "engineer-features.Succeeded"  # which validate precedes
    wired = {p["name"]: p["value"] for p in tasks["materialize"]["arguments"]["parameters"]}
    assert wired["raw-data"] == "{{tasks.engineer-features.outputs.parameters.data_uri}}"
    assert tasks["register"]["when"].endswith("{{tasks.fairness.outputs.parameters.passed}} == true")
    assert tasks["notify-fairness"]["when"] == (
        "{{tasks.drift.outputs.parameters.retrain}} == true && {{tasks.evaluate.outputs.parameters.passed}} == true"
        " && {{tasks.fairness.outputs.parameters.passed}} == false"
    )
    engineer = templates["engineer-features"]
    assert engineer["container"]["command"] == ["mlops", "task", "fraud", "engineer-features"]
    assert engineer["container"]["image"] == templates["validate"]["container"]["image"]
    assert engineer["retryStrategy"]["limit"] == 5 and "memoize" in engineer
    stored = engineer["outputs"]["artifacts"][0]["s3"]["key"]
    uris = {e["name"]: e.get("value") for e in engineer["container"]["env"]}
    assert json.loads(uris["MLOPS_OUTPUT_URIS"]) == {"engineered": f"s3://pipeline-artifacts/{stored}"}


def test_compiles_to_kfp_ir_with_the_team_components(declared: PipelineDeclaration, tmp_path: Path) -> None:
    """issue 31: the KFP IR holds the team's components, nested under the same conditions."""
    import yaml

    from pipelines.kfp import compile_ir
    from tests.pipelines.test_kfp_rendering import flatten, kfp_condition

    compile_ir(declared, declared.config(), str(tmp_path / "ir.yaml"))
    tasks = flatten(next(yaml.safe_load_all((tmp_path / "ir.yaml").read_text())))
    assert {"engineer-features", "fairness"} <= set(tasks)
    assert tasks["engineer-features"]["deps"] == {"validate"}
    assert tasks["fairness"]["conditions"] == [kfp_condition(RETRAIN)]
    assert tasks["engineer-features"]["image"] == tasks["validate"]["image"]


TEAM_STEP = """
from typing import NamedTuple
from kfp.dsl import Dataset, Output

def engineer(raw_data: str, out: Output[Dataset]) -> NamedTuple("Outputs", [("data_uri", str), ("data_digest", str)]):
    import pandas as pd
    from components.lineage import data_digest
    pd.read_parquet(raw_data).assign(double=lambda f: f["amount"] * {factor}).to_parquet(out.path)
    return (out.uri, data_digest(out.path))
"""


def test_team_step_cache_key_follows_its_own_code(tmp_path: Path, raw_dataset: Path) -> None:
    """issue 31: a team step is keyed by its module's source, which lives outside the library's
    fingerprinted roots: the same code keeps its key, an edit to it gives a new one (a cache miss),
    and the built-in steps' keys do not move."""
    from pipelines.caching import step_keys

    module = write_team_module(tmp_path, "cached_team", TEAM_STEP.format(factor=2))
    team = TeamStep(kind="features", component=f"{module}:engineer")

    def keys() -> dict[str, str]:
        declared = team_pipeline(team)
        run = {"raw_data": str(raw_dataset), "git_commit": "", "gate_threshold": 0.8, "force_retrain": True,
               "logical_date": "", "run_id": "r"}  # fmt: skip
        return step_keys(declared, declared.step_parameters(declared.config(), run), str(raw_dataset))

    first, again = keys(), keys()
    assert first == again and "engineer" in first
    write_team_module(tmp_path, "cached_team", TEAM_STEP.format(factor=3))
    edited = keys()
    assert edited["engineer"] != first["engineer"]
    assert edited["validate"] == first["validate"]
    # a helper of the step's package, and a dependency's version, are the step's code too (test audit)
    (tmp_path / "cached_team" / "helpers.py").write_text("FACTOR = 4\n")
    helped = keys()
    assert helped["engineer"] != edited["engineer"] and helped["validate"] == first["validate"]
    import pipelines.team_steps

    installed = pipelines.team_steps.installed_versions()
    assert any(line.startswith("pandas==") for line in installed)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pipelines.team_steps, "installed_versions", lambda: [*installed, "churn-extras==0.2"])
        assert keys()["engineer"] != helped["engineer"]
    assert keys()["engineer"] == helped["engineer"]


def test_argo_task_hands_the_stored_uri_to_the_team_step(
    declared: PipelineDeclaration, raw_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """issue 31: `mlops task` runs a team step by its import path; the URI it returns is where Argo
    stores its dataset (MLOPS_OUTPUT_URIS), not the pod's own file."""
    import pipelines.local
    from pipelines.task import run_task

    monkeypatch.setattr(pipelines.local, "declaration", lambda name: declared)
    monkeypatch.setenv("MLOPS_OUTPUT_URIS", json.dumps({"engineered": "s3://pipeline-artifacts/t/e.parquet"}))
    dated = tmp_path / "extracts" / "2026-12-04" / "raw.parquet"  # the day's extract, named by a dated URI
    dated.parent.mkdir(parents=True)
    dated.write_bytes(raw_dataset.read_bytes())
    template = str(tmp_path / "extracts" / "{date}" / "raw.parquet")
    params = {"raw_data": template, "logical_date": "2026-12-04T02:00:00+01:00", "numerator": "amount",
              "denominator": "amount_avg_7d"}  # fmt: skip
    run_task("fraud", "engineer-features", {}, params, tmp_path)
    assert (tmp_path / "data_uri").read_text() == "s3://pipeline-artifacts/t/e.parquet"
    engineered = pd.read_parquet(tmp_path / "engineered")
    assert "amount_ratio" in engineered.columns and len(engineered) == len(pd.read_parquet(raw_dataset))


def biased_model(tmp_path: Path) -> tuple[Any, ...]:
    """A small xgboost model whose positive rate depends on the group: a holdout of 400 rows."""
    import xgboost as xgb

    rng = np.random.default_rng(7)
    frame = pd.DataFrame({"amount": rng.normal(size=400), "merchant_category": rng.integers(0, 2, size=400)})
    frame["is_fraud"] = (frame["merchant_category"] == 1).astype(int)
    booster = xgb.train({"objective": "binary:logistic"}, xgb.DMatrix(frame[["amount", "merchant_category"]],
                        label=frame["is_fraud"]), num_boost_round=5)  # fmt: skip
    booster.save_model(str(tmp_path / "model.json"))
    (tmp_path / "metadata.json").write_text(json.dumps({"format": "xgboost_json", "objective": "binary",
                                                        "features": ["amount", "merchant_category"]}))  # fmt: skip
    frame.to_parquet(tmp_path / "holdout.parquet")
    return tuple(tmp_path / name for name in ("model.json", "metadata.json", "holdout.parquet"))


def test_fairness_check_fails_a_biased_model_and_its_notice_is_the_gates(tmp_path: Path) -> None:
    """issue 31: the example check fails a model whose positive rate differs by group, and writes
    what the notify step reads, so a failed check reaches the owner as a failed gate does."""
    from components.steps.notify import notify
    from pipelines.task import PathArtifact
    from tests.pipelines.team_example import fairness

    model, metadata, holdout = biased_model(tmp_path)
    metrics = PathArtifact(tmp_path / "fairness.json")
    passed, gap = fairness(PathArtifact(model), PathArtifact(metadata), PathArtifact(holdout), metrics)  # type: ignore[arg-type]
    assert passed is False and gap > 0.9
    notify(metrics.path, str(tmp_path / "notice.json"), str(tmp_path / "notice.md"), owner="o@x", pipeline="fraud",
           model_name="m")  # fmt: skip
    notice = json.loads((tmp_path / "notice.json").read_text())
    assert notice["metric"] == "positive_rate_gap" and notice["kind"] == "gate-failed"
    lenient = fairness(PathArtifact(model), PathArtifact(metadata), PathArtifact(holdout), metrics, max_gap=1.0)  # type: ignore[arg-type]
    assert lenient[0] is True  # the control: the same model within a wider gap passes


def test_team_steps_run_locally_take_the_notify_branch_and_are_cached(
    tmp_path: Path, raw_dataset: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """issue 31: `mlops run`'s runner (pipelines/local.py) runs the DAG with a team features step and
    a fairness check: materialize reads the engineered dataset, the check fails the candidate, so
    the run takes the check's notify branch and registers nothing. Then, cut to validate and the
    features step (the same cache keys, seconds not a pipeline): the unchanged step is served from
    the cache, and an edit to its code runs it again."""
    import logging
    from dataclasses import replace

    import pipelines.caching
    import pipelines.local

    def declared(factor: int, *, whole: bool) -> PipelineDeclaration:
        module = write_team_module(tmp_path, "local_team", TEAM_STEP.format(factor=factor))
        full = team_pipeline(TeamStep(kind="features", component=f"{module}:engineer"),
                             replace(CHECK, parameters={"max_gap": 0.01}))  # fmt: skip
        steps = tuple(s for s in full.spec.steps if whole or s.name in ("validate", "engineer"))
        return replace(full, spec=replace(full.spec, steps=steps))

    def run(factor: int, *, whole: bool = False) -> tuple[Any, list[str]]:
        declaration = declared(factor, whole=whole)
        monkeypatch.setattr(pipelines.local, "declaration", lambda name: declaration)
        caplog.clear()
        with caplog.at_level(logging.INFO):
            result = pipelines.local.run_local("fraud", config, raw_data=raw_dataset, home=tmp_path / "home")
        return result, [r.getMessage() for r in caplog.records if "cache hit" in r.getMessage()]

    monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "home"))
    # the library's own fingerprint held still (its tests are test_caching's): here only the team's code moves
    library_code = pipelines.caching.code_fingerprint()
    monkeypatch.setattr(pipelines.caching, "code_fingerprint", lambda: library_code)
    fraud = declared(2, whole=False).config()  # evaluate's gate passes: the fairness check is what refuses
    config = fraud.model_copy(update={"evaluate": fraud.evaluate.model_copy(update={"threshold": 0.6})})
    first, hits = run(2, whole=True)
    assert not hits
    assert [name for name in ("register", "promote", "notify", "notify-fairness") if first.ran(name)] == [
        "notify-fairness"
    ]
    notice = first.read_json("notify-fairness", "notice")
    assert notice is not None and notice["metric"] == "positive_rate_gap" and notice["value"] > 0.01
    engineered = pd.read_parquet(first.outputs["engineer"]["out"])
    assert (engineered["double"] == engineered["amount"] * 2).all()
    read = first.read_json("materialize", "lineage")  # what materialize read: the engineered dataset
    assert read is not None and read["datasets"][0]["source"] == str(first.outputs["engineer"]["out"])
    assert "double" in read["datasets"][0]["schema"]
    _, hits = run(2)
    assert any("Task engineer cache hit" in hit for hit in hits), hits
    edited, hits = run(3)
    assert any("Task validate cache hit" in hit for hit in hits) and not any("engineer" in h for h in hits)
    engineered = pd.read_parquet(edited.outputs["engineer"]["out"])
    assert (engineered["double"] == engineered["amount"] * 3).all()
