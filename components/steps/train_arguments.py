"""The train step's arguments as one value, and the one rendering of the command that runs the step.

`train` (components/steps/train.py) keeps its flat signature: it is the step's contract, and
`mlops step train` derives its flags from it (mlops/cli/run.py). Two places then start that step
again as a command with the same arguments: the step itself when it trains as local workers
(components/steps/distributed.py starts each as the cluster's runtime would), and each node of a
TrainJob (pipelines/trainer.py). Both render the command from `TrainArguments.command`, so a flag
is named once. No pandas, no numpy here: `mlops compile` imports it.
"""

from __future__ import annotations

from dataclasses import dataclass

from components.config import TrainSettings

__all__ = ["TrainArguments"]


@dataclass(frozen=True)
class TrainArguments:
    """What one train step was called with (see train's docstring for each)."""

    train_set: str
    model_out: str
    metadata_out: str
    features: tuple[str, ...]
    label_column: str
    settings: TrainSettings
    train_set_sha256: str = ""

    def command(self, *program: str) -> list[str]:
        """`program` (the `mlops` entry point, or `python -m mlops.cli`) running `step train` with
        these arguments, as `mlops step train`'s flags spell them."""
        return [
            *program, "step", "train",
            "--train-set", self.train_set, "--model-out", self.model_out, "--metadata-out", self.metadata_out,
            "--features", ",".join(self.features), "--label-column", self.label_column,
            "--settings", self.settings.model_dump_json(),
            *(["--train-set-sha256", self.train_set_sha256] if self.train_set_sha256 else []),
        ]  # fmt: skip
