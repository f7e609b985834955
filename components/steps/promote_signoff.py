"""Production sign-off: the person who signs a version off is not the person who trained it (issue 32).

A production canary or promotion needs `--signed-off-by` (or promote.signed_off_by); the admission
policy already refuses a service without the annotation. This adds the four-eyes rule: the identity
that signs off must differ from the one that trained the version. Who trained it is the `mlflow.user`
tag register writes on the version and its run (MLflow's own "who ran it" tag, from MLOPS_USER, else
the login name: components.platform.model_registry.who). A version that records no trainer cannot be
shown to be signed off by someone else, so it is refused too, with the fix. The sign-off is recorded in
the serving history entry (`signed_off_by`), beside `who` applied it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from components.errors import ComponentError

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = ["STEP", "TRAINER_TAG", "check_sign_off", "trainer_of"]

STEP = "promote"
TRAINER_TAG = "mlflow.user"
"""Who trained a version: on the version and on its run (components/steps/register.py writes it)."""
_UNKNOWN = ("", "unknown")  # MLflow's run user when nobody said


def trainer_of(mlflow: MlflowClient, model: str, version: int) -> str:
    """The identity that trained the version, from its tag, else its run's; "" when none is recorded."""
    record = mlflow.get_model_version(model, str(version))
    found = (record.tags or {}).get(TRAINER_TAG, "")
    if found in _UNKNOWN and record.run_id:
        found = mlflow.get_run(record.run_id).data.tags.get(TRAINER_TAG, "")
    return "" if found in _UNKNOWN else str(found)


def check_sign_off(mlflow: MlflowClient, model: str, version: int, signed_off_by: str) -> None:
    """Refuse (exit 2) a production sign-off by the version's trainer, or for a version whose trainer is
    not recorded. No sign-off at all is the admission policy's to refuse (production-promotion-evidence,
    with Gatekeeper's own message, as the cluster would)."""
    who = signed_off_by.strip()
    if not who:
        return
    trainer = trainer_of(mlflow, model, version)
    if not trainer:
        raise ComponentError(
            STEP,
            f"{model} v{version} records no trainer ({TRAINER_TAG} on the version or its run), so a sign-off "
            "cannot be shown to come from someone else",
            f"re-register the version with a release that records it, or set the tag to who trained it: "
            f"MlflowClient().set_model_version_tag({model!r}, '{version}', {TRAINER_TAG!r}, '<trainer>')",
        )
    if who.casefold() == trainer.casefold():
        raise ComponentError(
            STEP,
            f"{who} trained {model} v{version} and cannot also sign it off for production",
            "ask someone else to review it and pass --signed-off-by <their identity>",
        )
