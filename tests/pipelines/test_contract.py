"""One contract per step: the KFP op's signature. An input added in one place only is refused by
name when the pipeline is rendered, and every other view of a step is derived from the op."""

from __future__ import annotations

from typing import Any

import pytest
from kfp.dsl import Artifact, Input, Model, Output

from pipelines.argo import render
from pipelines.contract import check, contract_of
from pipelines.fraud.pipeline import DECLARATION as FRAUD
from pipelines.kfp_components import OPS


def _check(declaration: Any = FRAUD, **changed: dict[str, Any]) -> None:
    cfg = declaration.config()
    run = {
        "raw_data": "s3://d",
        "git_commit": "",
        "gate_threshold": 0.5,
        "force_retrain": False,
        "logical_date": "",
        "run_id": "r",
    }
    parameters = declaration.step_parameters(cfg, run) | changed
    check(declaration.spec.steps, parameters)


def test_both_reference_pipelines_agree_with_their_contracts() -> None:
    from pipelines.forecast.pipeline import DECLARATION as FORECAST

    _check(FRAUD)
    _check(FORECAST)


def promote_with_a_new_input(
    registration: Input[Artifact],
    model: Input[Model],
    settings: dict,
    decision_threshold: float,
    max_replicas: int,
    inference_service: Output[Artifact],
    model_repository: Output[Artifact],
) -> None:
    """promote's op with one more parameter, as a contributor would add it."""


def test_an_input_added_to_the_op_only_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(OPS, "components.steps.promote:promote", promote_with_a_new_input)
    with pytest.raises(ValueError, match="promote: parameter 'max_replicas': the op takes it but step_parameters"):
        _check()
    with pytest.raises(ValueError, match="max_replicas"):
        render(FRAUD, FRAUD.config())  # the renderers check before they render


def test_an_input_given_by_step_parameters_only_is_refused_by_name() -> None:
    run = {"raw_data": "", "git_commit": "", "gate_threshold": 0.5, "force_retrain": False, "logical_date": "",
           "run_id": ""}  # fmt: skip
    parameters = FRAUD.step_parameters(FRAUD.config(), run)
    with pytest.raises(ValueError, match="notify: parameter 'channel': step_parameters gives it but the op does not"):
        _check(notify={**parameters["notify"], "channel": "#fraud-oncall"})


def test_wiring_to_an_output_a_step_does_not_make_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    steps = tuple(
        replace(step, inputs={**step.inputs, "model": "train.weights"}) if step.name == "evaluate" else step
        for step in FRAUD.spec.steps
    )
    spec = replace(FRAUD.spec, steps=steps)
    with pytest.raises(ValueError, match=r"evaluate\.model is wired to train\.weights, which train.s op does not"):
        _check(replace(FRAUD, spec=spec))


def test_every_view_of_a_step_is_derived_from_its_op() -> None:
    from mlops.cli.run import steps

    rendered = render(FRAUD, FRAUD.config())["WorkflowTemplate"]["spec"]["templates"]
    templates = {t["name"]: t for t in rendered}
    for step in FRAUD.spec.steps:
        contract = contract_of(step.component)
        outputs = templates[step.name].get("outputs", {})
        assert [a["name"] for a in outputs.get("artifacts", [])] == list(contract.artifact_outputs)
        assert [p["name"] for p in outputs.get("parameters", [])] == list(contract.parameter_outputs)
        assert "kfp_metrics" not in contract.artifact_outputs  # KFP's UI only: no file for Argo
    assert set(steps()) == {step.name for step in FRAUD.spec.steps} | {"notify-failure"}


READ_BY_THE_OP = {"materialize": {"feature_repo"}}  # resolved to a folder in the package by the op
READ_THROUGH = {"promote": {"components.steps.serving_authorization": "serving_objects"}}
"""Functions a component hands its settings whole to (promote's callers and expose: who may call the
model, issue 29): if the component calls it, the fields its module reads count as read."""
READ_BY_THE_CLI = {
    "promote": (
        ("components.steps.canary_analysis", ("analysis_", "prometheus_url")),
        ("mlops.canary_sweep", ("canary_window",)),
    )
}
"""Fields (by name or prefix) read by another module, which `mlops promote --analyze` or the hourly
`mlops canary-analysis` runs after a canary has served (issue 32 item 4), not by the step: they count as
read only where that module reads them (`settings.<field>` or `promote.<field>`)."""


@pytest.mark.parametrize(
    ("component", "section"),
    [
        ("components.steps.materialize:materialize", "materialize"),
        ("components.steps.train:train", "train"),
        ("components.steps.evaluate:evaluate", "evaluate"),
        ("components.steps.register:register", "register_"),
        ("components.steps.promote:promote", "promote"),
    ],
)
def test_every_field_of_a_steps_settings_reaches_its_component(component: str, section: str) -> None:
    """A component takes its config section whole (`settings: <Model>`), so the op cannot drop a
    field; and a field added to the model that the component never reads fails here, naming it."""
    import importlib
    import inspect
    import re
    import typing

    from components.config import PipelineConfig

    model = PipelineConfig.model_fields[section].annotation
    assert model is not None
    module_name, _, name = component.partition(":")
    module = importlib.import_module(module_name)
    assert typing.get_type_hints(getattr(module, name))["settings"] is model
    sources = [inspect.getsource(module)]
    for through, function in READ_THROUGH.get(section, {}).items():
        assert f"{function}(" in sources[0], f"{component} no longer calls {through}.{function}"
        sources.append(inspect.getsource(importlib.import_module(through)))
    read = {field for source in sources for field in re.findall(r"\bsettings\.(\w+)", source)}
    for reader, prefixes in READ_BY_THE_CLI.get(section, ()):
        source = inspect.getsource(importlib.import_module(reader))
        by_cli = set(re.findall(r"\b(?:settings|promote)\.(\w+)", source))
        read |= {field for field in by_cli if field.startswith(prefixes)}
    unread = set(model.model_fields) - read - READ_BY_THE_OP.get(section, set())
    assert unread == set(), f"{component} never reads settings.{sorted(unread)}"
