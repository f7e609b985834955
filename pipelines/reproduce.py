"""Train a registered version again from its recorded lineage, and say whether the bytes match.

1. Read the version's lineage from the registry (components/lineage.py wrote it at register).
2. Fetch the source dataset by its recorded URI and check its digest before any use: changed
   or missing bytes stop here with the recorded and found digests.
3. Run validate -> materialize -> train with the recorded config, on a scratch feature store
   (nothing reaches the platform's stores, nothing is registered).
4. Compare the new model's sha256 with the registered one: REPRODUCED, or DIFFERENT with what
   differs (packages, commit, image, the training set's digest, the feature definitions).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from pipelines.declaration import PipelineDeclaration

__all__ = ["STEP", "Reproduction", "reproduce"]

STEP = "reproduce"


@dataclass
class Reproduction:
    model: str
    version: int
    registered_sha256: str
    reproduced_sha256: str
    differences: list[str] = field(default_factory=list)

    @property
    def same(self) -> bool:
        return self.registered_sha256 == self.reproduced_sha256


def _recorded_documents(mlflow: MlflowClient, run_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    from components.errors import ComponentError

    with tempfile.TemporaryDirectory() as tmp:
        try:
            document = json.loads(Path(mlflow.download_artifacts(run_id, "lineage/lineage.json", tmp)).read_text())
            config = json.loads(Path(mlflow.download_artifacts(run_id, "lineage/config.json", tmp)).read_text())
        except Exception as error:
            raise ComponentError(
                STEP,
                f"run {run_id} has no lineage record to reproduce from",
                "only versions registered with lineage (this release on) can be reproduced",
            ) from error
    return document, config


def _refuse_engineered(pipeline: PipelineDeclaration, version: str, source: str) -> None:
    """Refuse a pipeline whose materialize reads a team features step's output (issue 31 item 3):
    the lineage's raw dataset is then the engineered file, not the extract the step read, and
    reproduce runs validate -> materialize -> train only, so it could rerun neither the step nor
    the validation the extract passed."""
    from components.errors import ComponentError

    materialize = next((step for step in pipeline.spec.steps if step.name == "materialize"), None)
    wire = materialize.inputs.get("raw_data", "") if materialize is not None else ""
    if "." not in wire:
        return
    step = wire.partition(".")[0]
    raise ComponentError(
        STEP,
        f"{version}'s pipeline {pipeline.spec.name} engineers its data in team step {step}: the lineage records "
        f"{step}'s output ({source}) as the raw dataset, not the extract {step} read, so reproduce can rerun "
        f"neither {step} nor validate on what the run validated",
        f"rerun the pipeline on the original extract (mlops run {pipeline.spec.name} --data <extract>) and compare "
        "the model's sha256 with this version's (mlops lineage shows it)",
    )


def reproduce(model: str, *, version: int | None = None, alias: str | None = None) -> Reproduction:
    from components import lineage
    from components.config import parse_config
    from components.errors import ComponentError
    from components.platform import model_registry
    from components.platform.model_registry import HASH_TAG
    from components.steps.train import train
    from pipelines.local import declaration, git_commit
    from pipelines.scratch_sets import make_sets

    mlflow = model_registry.client()
    number = model_registry.resolve_version(mlflow, model, version=version, alias=alias)
    record = mlflow.get_model_version(model, str(number))
    document, config_data = _recorded_documents(mlflow, model_registry.run_id_of(record))
    cfg = parse_config(config_data, source=f"{model} v{number}'s recorded config")
    if lineage.canonical_sha256(config_data) != (document.get("config") or {}).get("sha256"):
        raise ComponentError(STEP, f"{model} v{number}'s recorded config does not match its hash", "re-register it")
    raw = next(d for d in document["datasets"] if d["name"] == "raw")
    pipeline = declaration(cfg.pipeline)
    _refuse_engineered(pipeline, f"{model} v{number}", raw["source"])
    lineage.verify(raw)  # refuses changed or missing bytes before anything runs
    folder = pipeline.folder
    with tempfile.TemporaryDirectory(prefix="mlops-reproduce-") as tmp:
        scratch = Path(tmp)
        sets = make_sets(pipeline, cfg, raw["source"], scratch)
        trained = train(
            sets.train_set,
            str(scratch / "model"),
            str(scratch / "metadata.json"),
            features=sets.features,
            label_column=cfg.materialize.label_column,
            settings=cfg.train,
        )
        fresh = json.loads(Path(sets.lineage).read_text())
    result = Reproduction(
        model=model,
        version=number,
        registered_sha256=record.tags.get(HASH_TAG, ""),
        reproduced_sha256=trained["model_sha256"],
    )
    differences = result.differences
    recorded_sets = {d["name"]: d["digest"] for d in document["datasets"]}
    for dataset in fresh["datasets"]:
        if dataset["name"] != "raw" and recorded_sets.get(dataset["name"]) != dataset["digest"]:
            differences.append(
                f"{dataset['name']} set digest {dataset['digest'][:12]}, recorded "
                f"{str(recorded_sets.get(dataset['name']))[:12]}"
            )
    if fresh["feature_service"]["sha256"] != document["feature_service"]["sha256"]:
        differences.append("the feature service's definition changed in the pipeline's feature repo")
    suite = lineage.file_sha256(folder / cfg.validate_.suite)
    if suite != (document.get("suite") or {}).get("sha256"):
        differences.append("the GX suite changed (validation passed with today's suite)")
    recorded_packages, packages = document.get("packages") or {}, lineage.package_versions()
    for name in sorted(set(recorded_packages) | set(packages)):
        if recorded_packages.get(name) != packages.get(name):
            differences.append(f"package {name}: recorded {recorded_packages.get(name)}, here {packages.get(name)}")
    commit = git_commit()
    if document.get("git_commit") and commit and document["git_commit"] != commit:
        differences.append(f"code: recorded commit {document['git_commit'][:12]}, here {commit[:12]}")
    image = lineage.image().get("reference", "")
    recorded_image = (document.get("image") or {}).get("reference", "")
    if recorded_image != image:
        differences.append(f"image: recorded {recorded_image or 'none (a laptop)'}, here {image or 'none (a laptop)'}")
    return result
