"""Model kinds: the one interface every trainer goes through, built in or brought by a team.

A kind is what `train.model_type` names in config.yaml. It fits a model on float32 features, saves
and loads its artifact, predicts, and says which objectives it supports and which Triton backend
serves its file. The library's kinds (xgboost, pytorch_mlp, lightgbm, sklearn) live in
components/steps/model_kinds_builtin.py; a team's package adds one without forking the library by
registering it in the entry-point group `private_mlops.models`:

    [project.entry-points."private_mlops.models"]
    my_kind = "my_package.kinds:MyKind"      # a class (instantiated with no arguments) or an instance

This module is shared (every room imports it) and imports nothing heavy: a kind's module is only
imported when `model_kind` resolves it.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from components.errors import ComponentError

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "BUILTIN_KINDS",
    "ENTRY_POINT_GROUP",
    "OBJECTIVES",
    "ModelKind",
    "installed_kinds",
    "kind_of_format",
    "kinds_supporting",
    "model_kind",
    "require_objective",
]

ENTRY_POINT_GROUP = "private_mlops.models"
OBJECTIVES = ("binary", "regression", "multiclass")
"""binary: P(positive class); regression: a number; multiclass: labels 0..k-1, k probabilities."""

BUILTIN_KINDS: dict[str, str] = {
    "xgboost": "components.steps.model_kinds_builtin:XGBoostKind",
    "pytorch_mlp": "components.steps.model_kinds_builtin:MLPKind",
    "lightgbm": "components.steps.model_kinds_builtin:LightGBMKind",
    "sklearn": "components.steps.model_kinds_builtin:SklearnKind",
}
"""The library's own kinds, named as an entry point names one ("module:attribute")."""


@runtime_checkable
class ModelKind(Protocol):
    """One trainer. Fields:

    - `name`: what `train.model_type` says ("xgboost", "lightgbm", or a team's own).
    - `model_format`: TrainingMetadata["format"], how the file is read back ("xgboost_json",
      "torchscript", "lightgbm_text", "onnx", ...); one kind per format.
    - `model_file`: the file's name in a Triton version folder ("xgboost.json", "model.pt",
      "model.txt", "model.onnx").
    - `objectives`: the objectives it can fit, a subset of OBJECTIVES.
    - `triton_backend`: what serves the file: "fil" (trees), "pytorch", "onnxruntime" or "python".

    Methods (features are float32 (n, f) in TrainingMetadata["features"] order; labels float32):
    - `fit(...)` returns the fitted model; `num_classes` is k for multiclass, else None; `params`
      is train.params as the config holds it.
    - `save(model, path)` writes the artifact, `load(path)` reads it back.
    - `predict(model, features)`: binary P(positive) shape (n,), regression (n,), multiclass
      (n, k) probabilities. `load` then `predict` is what evaluate and the stub score with.
    """

    name: str
    model_format: str
    model_file: str
    objectives: frozenset[str]
    triton_backend: str

    def fit(
        self,
        features: np.ndarray,
        labels: np.ndarray,
        *,
        objective: str,
        params: Mapping[str, Any],
        seed: int,
        device: str,
        num_classes: int | None,
    ) -> Any: ...

    def save(self, model: Any, path: Path) -> None: ...

    def load(self, path: Path) -> Any: ...

    def predict(self, model: Any, features: np.ndarray) -> np.ndarray: ...


def _entry_points() -> dict[str, str]:
    """Each registered kind's "module:attribute"; two packages registering one name differently are
    refused (which one a lookup got would depend on the order packages were installed in)."""
    found: dict[str, str] = {}
    for point in importlib_metadata.entry_points(group=ENTRY_POINT_GROUP):
        if found.get(point.name, point.value) != point.value:
            raise ComponentError(
                "train",
                f"two installed packages register the model kind {point.name!r} in {ENTRY_POINT_GROUP!r}:"
                f" {found[point.name]} and {point.value}",
                "uninstall one of them, or rename one kind (its entry point's name)",
            )
        found[point.name] = point.value
    return found


def installed_kinds() -> dict[str, str]:
    """Every kind name this environment can resolve -> where it comes from ("module:attribute");
    a built-in name wins over a package's entry point of the same name."""
    return {**_entry_points(), **BUILTIN_KINDS}


def _unknown(name: str) -> ComponentError:
    return ComponentError(
        "train",
        f"train.model_type {name!r} is no installed model kind (installed: {', '.join(sorted(installed_kinds()))})",
        f"use one of those, or install a package that registers {name!r} in the entry-point group "
        f'{ENTRY_POINT_GROUP!r} ([project.entry-points."{ENTRY_POINT_GROUP}"] {name} = "package.module:Kind", '
        "docs/forking.md: Bring your own model)",
    )


def model_kind(name: str) -> ModelKind:
    """The kind `train.model_type` names: a built-in, or one a package registers under
    ENTRY_POINT_GROUP. An unknown name is a permanent error listing what is installed."""
    where = installed_kinds().get(name)
    if where is None:
        raise _unknown(name)
    module_name, _, attribute = where.partition(":")
    try:
        found: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError) as error:
        raise ComponentError(
            "train",
            f"model kind {name!r} is registered as {where!r}, which does not load: {error}",
            "install the package that provides it (with its dependencies) or fix its entry point",
        ) from error
    kind = found() if isinstance(found, type) else found
    missing = [
        field
        for field in (
            "name",
            "model_format",
            "model_file",
            "objectives",
            "triton_backend",
            "fit",
            "save",
            "load",
            "predict",
        )
        if not hasattr(kind, field)
    ]
    if missing:
        raise ComponentError(
            "train",
            f"model kind {name!r} ({where}) lacks {missing} of the ModelKind interface",
            "implement every field and method of components.model_kinds.ModelKind",
        )
    return kind  # type: ignore[no-any-return]


def kinds_supporting(objective: str) -> list[str]:
    """The installed kinds that can fit `objective` (for the error that refuses one)."""
    supporting = []
    for name in sorted(installed_kinds()):
        try:
            if objective in model_kind(name).objectives:
                supporting.append(name)
        except ComponentError:
            continue
    return supporting


def kind_of_format(model_format: str) -> ModelKind:
    """The kind whose artifact has `model_format` (TrainingMetadata["format"]): how a model file
    is loaded back for scoring."""
    for name in sorted(installed_kinds(), key=lambda kind: (kind not in BUILTIN_KINDS, kind)):
        try:
            kind = model_kind(name)
        except ComponentError:
            continue
        if kind.model_format == model_format:
            return kind
    raise ComponentError(
        "evaluate",
        f"no installed model kind reads the model format {model_format!r}",
        f"install the package whose model kind trained this model (its entry point in {ENTRY_POINT_GROUP!r})",
    )


def require_objective(kind: ModelKind, objective: str) -> None:
    """Refuse an objective `kind` cannot fit, naming the kinds that can."""
    if objective not in kind.objectives:
        raise ComponentError(
            "train",
            f"model kind {kind.name!r} does not support objective {objective!r} "
            f"(it supports {sorted(kind.objectives)})",
            f"choose a kind that does ({', '.join(kinds_supporting(objective)) or 'none installed'}) "
            "or another objective",
        )
