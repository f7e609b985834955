"""The train step's arguments travel as one value (components.steps.train_arguments.TrainArguments).

Issue 30 (repeated logic): `train` and its local-workers launcher `_launch` repeated the step's
seven-argument signature, and `_launch` and pipelines/trainer.py each spelt `mlops step train`'s
flags by hand. Now the launcher takes one TrainArguments, and both commands are its `command`.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import pytest

from components.config import TrainSettings
from components.steps import distributed, train, trainjob
from components.steps.train_arguments import TrainArguments
from mlops.cli import build_parser
from pipelines import trainer
from pipelines.fraud.pipeline import DECLARATION as fraud

SETTINGS = TrainSettings.model_validate(
    {"model_type": "xgboost", "distributed": {"workers": 2, "runtime": "xgboost-distributed"}}
)
ARGUMENTS = TrainArguments(
    "s3://a/train.parquet", "/m/model", "/m/meta.json", ("f1", "f2"), "label", SETTINGS, "ab" * 32
)


def test_the_arguments_are_the_steps_signature_and_parse_back_through_mlops_step_train() -> None:
    """issue 30: one value holds what train was called with; its command is what `mlops step train` reads."""
    parameters = list(inspect.signature(train.train).parameters)
    assert [field.name for field in dataclasses.fields(TrainArguments)] == parameters
    command = ARGUMENTS.command("mlops")
    assert command[:3] == ["mlops", "step", "train"]
    parsed = vars(build_parser(command[1:]).parse_args(command[1:]))
    assert {name: parsed[name] for name in parameters} == {
        **dataclasses.asdict(ARGUMENTS),
        "features": ["f1", "f2"],
        "settings": SETTINGS.model_dump(mode="json"),  # the flag parses as JSON; run_step validates it
    }
    # without a recorded digest the flag is left out, and the step's default applies
    bare = dataclasses.replace(ARGUMENTS, train_set_sha256="").command("mlops")
    assert (
        "--train-set-sha256" not in bare and vars(build_parser(bare[1:]).parse_args(bare[1:]))["train_set_sha256"] == ""
    )


def test_the_local_workers_and_the_train_job_nodes_run_the_same_command(monkeypatch: pytest.MonkeyPatch) -> None:
    """issue 30: the launcher's command and the TrainJob's are one rendering, not two hand-kept lists."""
    launched: list[list[str]] = []

    def record(settings: Any, command: list[str]) -> None:
        launched.append(command)
        raise SystemExit("recorded")

    monkeypatch.setattr(distributed, "launch", record)
    monkeypatch.delenv(trainjob.TEMPLATE_VARIABLE, raising=False)
    with pytest.raises(SystemExit, match="recorded"):
        train.train(
            ARGUMENTS.train_set,
            ARGUMENTS.model_out,
            ARGUMENTS.metadata_out,
            features=list(ARGUMENTS.features),
            label_column=ARGUMENTS.label_column,
            settings=SETTINGS,
        )  # no recorded digest: the step would read the set to check it
    local = launched[0]
    assert local[local.index("step") :] == dataclasses.replace(ARGUMENTS, train_set_sha256="").command()
    cfg = fraud.config().with_overrides({"train.model_type": "xgboost"})
    on_nodes = trainer.train_command(
        cfg, train_set="{{t}}", model_out="{{m}}", metadata_out="{{d}}", features="{{inputs.parameters.features}}"
    )
    placeholders = TrainArguments("{{t}}", "{{m}}", "{{d}}", ("{{inputs.parameters.features}}",),
                                  cfg.materialize.label_column, cfg.train)  # fmt: skip
    assert on_nodes == placeholders.command("mlops")
