"""Canaries in KServe's Standard (RawDeployment) mode: `spec.canary`, beside the stable predictor.

KServe ignores `canaryTrafficPercent` outside Serverless (Knative) mode (kserve#5335, kserve#4074):
the new version would silently take all traffic. KServe 0.20 added `spec.canary` for Standard mode
(kserve PR #5672, in the CRD at $MLOPS_SCHEMAS_DIR): a list of named canary predictors, each with its
own Deployment (`<isvc>-<name>-predictor`) and a `trafficPercent` the HTTPRoute weighs. This module
turns the renders of `components.steps.promote.render_inference_service` into that shape:

- a canary: `spec.predictor` is the champion's predictor, unchanged; `spec.canary` is one entry,
  `{predictor: <the canary version's predictor, named v<version>>, trafficPercent: N}`; the object's
  labels and evidence annotations are the canary version's (what admission judges is what is new);
- a promotion: `spec.predictor` is retargeted to the canary's predictor (same name, so KServe keeps
  its pods: no restart) and the entry is removed;
- a rollback: the entry is removed; the champion's predictor never stopped serving.

In Standard mode every predictor is named `v<version>` and carries no `canaryTrafficPercent` (which
KServe would ignore and `mlops doctor` flags). One scoring transformer fronts both predictors, so its
decision log says `champion` for every row; the version in each record comes from the predictor
that answered, which is what the canary analysis (components/steps/canary_analysis.py) selects by.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from components.errors import ComponentError

__all__ = [
    "MODEL_CONTAINER",
    "STANDARD_MODES",
    "STEP",
    "canary_entries",
    "check_step_split",
    "is_standard",
    "predictor_name",
    "stable_service",
    "standard_service",
    "with_canary",
]

STEP = "promote"
STANDARD_MODES = ("RawDeployment", "Standard")
"""KServe's names for the mode without Knative (Standard since 0.15; RawDeployment still accepted)."""

Render = Callable[[int, int | None], dict[str, Any]]
"""Renders one registered version's InferenceService at a canaryTrafficPercent (or None)."""


def is_standard(mode: str) -> bool:
    return mode in STANDARD_MODES


def predictor_name(version: int) -> str:
    """The predictor's name in Standard mode (its Deployment is `<isvc>-v<version>-predictor`)."""
    return f"v{version}"


MODEL_CONTAINER = "kserve-container"
"""The model container's name, which KServe gives it; a spec.canary predictor's model requires one (the
CRD), so every Standard-mode predictor names it, and a promoted canary's spec is the stable's unchanged."""


def _named(predictor: dict[str, Any], version: int) -> dict[str, Any]:
    rest = {key: value for key, value in predictor.items() if key not in ("name", "canaryTrafficPercent")}
    if "model" in rest:
        rest["model"] = {"name": MODEL_CONTAINER, **{k: v for k, v in rest["model"].items() if k != "name"}}
    return {"name": predictor_name(version), **rest}


def stable_service(service: dict[str, Any], version: int) -> dict[str, Any]:
    """One version serving everything in Standard mode: its predictor named, no split, no entry."""
    result = copy.deepcopy(service)
    result["spec"]["predictor"] = _named(result["spec"]["predictor"], version)
    result["spec"].pop("canary", None)
    return result


def with_canary(
    champion: dict[str, Any], canary: dict[str, Any], *, champion_version: int, canary_version: int, percent: int
) -> dict[str, Any]:
    """The champion's service with the canary version beside it at `percent` (1..99)."""
    if not 1 <= percent <= 99:
        raise ComponentError(STEP, f"canary percent must be 1..99, got {percent}", "use --promote for 100%")
    if champion_version == canary_version:
        raise ComponentError(STEP, f"v{canary_version} already serves as champion", "pick a new version to canary")
    result = copy.deepcopy(canary)
    result["spec"]["predictor"] = _named(copy.deepcopy(champion["spec"]["predictor"]), champion_version)
    if "transformer" in champion["spec"]:  # one transformer fronts both predictors
        result["spec"]["transformer"] = copy.deepcopy(champion["spec"]["transformer"])
    entry = {"predictor": _named(copy.deepcopy(canary["spec"]["predictor"]), canary_version), "trafficPercent": percent}
    result["spec"]["canary"] = [entry]
    return result


def standard_service(
    render: Render, action: str, version: int, champion: int | None, percent: int | None
) -> dict[str, Any]:
    """The Standard-mode InferenceService for one lifecycle step (mlops/rollout.py's actions):
    `canary` puts `version` beside the champion at `percent`; `promote` and `rollback` render
    `version` alone (the promoted canary, the champion kept, or an earlier champion restored)."""
    if action == "canary":
        if champion is None or percent is None:
            raise ComponentError(
                STEP,
                "a canary needs a champion to split traffic with and a share",
                "roll out the first version with --promote",
            )
        return with_canary(
            render(champion, None), render(version, None), champion_version=champion, canary_version=version,
            percent=percent,
        )  # fmt: skip
    return stable_service(render(version, None), version)


def canary_entries(service: dict[str, Any]) -> list[tuple[str, int]]:
    """(predictor name, trafficPercent) of each `spec.canary` entry."""
    return [(str(e["predictor"].get("name", "")), int(e["trafficPercent"])) for e in service["spec"].get("canary", [])]


def check_step_split(deployment_mode: str, canary_percent: int) -> None:
    """The pipeline's promote step renders one version without knowing what serves: in Standard mode a
    canary is an entry beside the champion's predictor, which `mlops promote` reads from the serving
    history. So the step refuses a Standard-mode share below 100% and names the command."""
    if is_standard(deployment_mode) and canary_percent < 100:
        raise ComponentError(
            STEP,
            f"a {canary_percent}% canary in {deployment_mode} mode is a spec.canary entry beside the champion's "
            "predictor, and this step renders one version without knowing which one serves",
            f"start the canary with `mlops promote <model> --canary {canary_percent} --version N` (it reads the "
            "serving history and renders both predictors), or set promote.canary_percent: 100 for a full rollout",
        )
