"""`mlops promote`: the canary lifecycle of a registered model on KServe.

    --canary N   the new version takes N% through canaryTrafficPercent; the previous revision
                 keeps the rest (alias `canary` marks it). With no action flag, a canary at the
                 pipeline config's promote.canary_percent (the CLI resolves the share; --canary
                 overrides it). A canary without --version/--alias while one is live ramps it.
    --promote    the new version takes 100%; alias `champion` moves to it
    --rollback   during a canary: canaryTrafficPercent 0, all traffic back on the previous
                 revision, which never stopped serving; after a promotion: the previous champion
                 is rolled out again and the alias moves back

In KServe's Standard (RawDeployment) mode, which ignores canaryTrafficPercent, a canary is a
spec.canary entry beside the champion's predictor, a promotion retargets spec.predictor to it and a
rollback removes it (components/steps/promote_canary.py). A production step's sign-off must not be
the version's trainer (components/steps/promote_signoff.py; the service carries both, `trained-by` and
`signed-off-by`), must be the identity the cluster authenticates the kubeconfig as unless that identity
applies recorded sign-offs (components/steps/promote_identity.py, asked with a SelfSubjectReview), and is
recorded with the entry, as is a canary analysis's evidence (`mlops promote --analyze`, mlops/canary.py).

Every step, in this order: work out the serving state from the registry's history; render the
InferenceService; evaluate it with the platform's Gatekeeper policies on the real Rego engine
(refuse with Gatekeeper's own message: a bad promotion never leaves the laptop), or, where no policy
folder travels (the canary analysis in a pod), send every object through the API server's dryRun=All
first, which runs the installed Gatekeeper; apply it with
who may call it, its Istio AuthorizationPolicy and NetworkPolicy (issue 29,
components/steps/serving_authorization.py; Kubernetes API, or a GitOps folder, or nowhere with
--dry-run, which prints the three documents; mlops/rollout_target.py, which also says what a refused
write leaves behind); then record the history entry and move the aliases. A failure before the apply
changes nothing anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components.config import PromoteSettings, TransformerSettings
from components.errors import ComponentError
from components.platform import model_registry, services
from components.steps.promote import (
    RAW_DEPLOYMENT,
    annotation,
    check_replicas,
    check_traffic_split,
    publish_repository,
    render_inference_service,
)
from components.steps.promote_canary import is_standard, standard_service
from components.steps.promote_identity import GITOPS_APPLIER, check_signer
from components.steps.promote_signoff import check_sign_off, trainer_of
from components.steps.serving_authorization import serving_objects
from mlops.admission import POLICY_DIR, PolicySet
from mlops.rollout_target import Target

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from components.config import PipelineConfig

STEP = "promote"
ACTIONS = ("canary", "promote", "rollback")


@dataclass(frozen=True, kw_only=True)
class ServingState:
    """Who serves what, replayed from the history entries."""

    champion: int | None = None
    canary: int | None = None
    canary_percent: int = 0
    earlier_champions: tuple[int, ...] = ()
    """Champions replaced by a promotion, oldest first: what --rollback after a promotion restores."""

    @classmethod
    def replay(cls, entries: list[model_registry.HistoryEntry]) -> ServingState:
        champion: int | None = None
        canary: int | None = None
        percent = 0
        earlier: list[int] = []
        for entry in entries:
            if entry.action == "canary":
                canary, percent = entry.to_version, entry.traffic_percent
            elif entry.action == "promote":
                if champion is not None and champion != entry.to_version:
                    earlier.append(champion)
                champion, canary, percent = entry.to_version, None, 0
            elif entry.action == "rollback":
                if canary is not None:
                    canary, percent = None, 0
                else:
                    champion = entry.to_version
                    if earlier and earlier[-1] == entry.to_version:
                        earlier.pop()
        return cls(champion=champion, canary=canary, canary_percent=percent, earlier_champions=tuple(earlier))

    def describe(self) -> str:
        if self.champion is None:
            return "nothing serves yet"
        text = f"v{self.champion} serves"
        if self.canary is not None:
            text += f" {100 - self.canary_percent}%, canary v{self.canary} {self.canary_percent}%"
        return text


@dataclass(kw_only=True)
class Request:
    """What the user asked for, with the pipeline's promote settings."""

    action: str
    model: str
    settings: PromoteSettings
    version: int | None = None
    alias: str | None = None
    percent: int | None = None
    stage: str | None = None
    signed_off_by: str | None = None
    reason: str = ""
    serving_root: str | None = None
    policies: Path | None = POLICY_DIR
    """The Gatekeeper policies to admit against before applying; None on a cluster (`mlops canary-analysis`
    in a pod, whose image ships none): the API server's dryRun=All runs the installed ones instead."""
    decision_threshold: float = 0.5
    transformer: TransformerSettings | None = None
    """The scoring transformer in front of the predictor (components.config.transformer_settings)."""
    evidence: dict[str, Any] | None = None
    """What decided this step, recorded with it (a canary analysis's figures: mlops promote --analyze)."""


@dataclass(kw_only=True)
class Outcome:
    action: str
    before: ServingState
    after: ServingState
    service: dict[str, Any]
    applied: str
    entry: model_registry.HistoryEntry | None
    aliases: dict[str, int] = field(default_factory=dict)


def _refuse(problem: str, fix: str) -> ComponentError:
    return ComponentError(STEP, problem, fix)


def _candidate(mlflow: MlflowClient, request: Request, state: ServingState) -> int:
    if request.action == "rollback":
        if request.version is not None or request.alias is not None:
            raise _refuse("--rollback takes no --version or --alias", "it always returns to the previous revision")
        if state.canary is not None:
            assert state.champion is not None
            return state.champion
        if not state.earlier_champions:
            raise _refuse(
                f"{request.model}: nothing to roll back to ({state.describe()}; no earlier champion in the history)",
                f"see `mlops history {request.model}`; roll forward with --canary/--promote --version N",
            )
        return state.earlier_champions[-1]
    if request.action == "canary" and state.canary is not None and request.version is None and request.alias is None:
        return state.canary  # ramp the live canary (`mlops promote M --canary 50`)
    if request.action == "promote" and state.canary is not None:
        if request.version is not None and request.version != state.canary:
            raise _refuse(
                f"v{state.canary} is in canary; promoting v{request.version} instead would skip it",
                "promote the canary (no --version), or --rollback it first",
            )
        return state.canary
    if request.version is None and request.alias is None and request.action == "promote" and state.champion is None:
        return model_registry.resolve_version(mlflow, request.model, alias=model_registry.CHALLENGER)
    return model_registry.resolve_version(mlflow, request.model, version=request.version, alias=request.alias)


def _check_transition(request: Request, state: ServingState, version: int) -> None:
    if request.action == "canary":
        if state.champion is None:
            raise _refuse(
                f"nothing serves {request.model} yet: a canary needs a previous revision to split traffic with",
                f"roll out the first version at 100%: mlops promote {request.model} --promote --version {version}",
            )
        if version == state.champion:
            raise _refuse(f"v{version} already serves {request.model} as champion", "pick the new version to canary")
        if state.canary is not None and state.canary != version:
            raise _refuse(
                f"v{state.canary} is already in canary at {state.canary_percent}%",
                "promote it or --rollback it before starting another canary",
            )
        if request.percent is None or not 1 <= request.percent <= 99:
            raise _refuse(
                f"canary percent must be 1..99, got {request.percent}", "use --promote to send 100% to the new version"
            )
    if request.action == "promote" and state.canary is None and version == state.champion:
        raise _refuse(f"v{version} already serves {request.model} at 100%", "nothing to promote")


def _traffic(request: Request, state: ServingState) -> tuple[int, int | None]:
    """(canaryTrafficPercent to render, share the target version gets)."""
    if request.action == "canary":
        assert request.percent is not None
        return request.percent, request.percent
    if request.action == "rollback" and state.canary is not None:
        return 0, 100  # the canary revision stays rendered, with 0%: KServe routes all to the previous one
    return 100, 100


def execute(request: Request, target: Target) -> Outcome:
    settings = request.settings
    mlflow = model_registry.client()
    before = ServingState.replay(model_registry.history(mlflow, request.model))
    version = _candidate(mlflow, request, before)
    _check_transition(request, before, version)
    canary_percent, share = _traffic(request, before)
    # during a canary rollback the rendered spec stays the canary's, at 0%
    rendered_version = before.canary if (request.action == "rollback" and before.canary is not None) else version
    assert rendered_version is not None

    namespace = settings.namespace
    live = target.live(namespace, request.model)
    mode: str = settings.deployment_mode  # the live service's own mode wins (a cluster may say otherwise)
    if target.kind == "kubernetes":
        mode = target.kube.deployment_mode(live) or mode
        live_version = (live or {}).get("metadata", {}).get("labels", {}).get(annotation("model-version"))
        expected = before.canary if before.canary is not None else before.champion
        if live is not None and live_version is not None and expected is not None and int(live_version) != expected:
            raise _refuse(
                f"the cluster serves {request.model} v{live_version}, but the registry history says v{expected}: "
                "it was changed outside mlops",
                f"check `mlops history {request.model}` and kubectl; record the truth with --promote --version "
                f"{live_version} --reason 'reconcile'",
            )
    check_traffic_split(mode, canary_percent if request.action == "canary" else None)
    check_replicas(settings.min_replicas, settings.gpu)

    requested = {
        "signed_off_by": request.signed_off_by if request.signed_off_by is not None else settings.signed_off_by,
        "stage": request.stage or settings.stage,
        "deployment_mode": mode,
    }
    rendered = settings.model_copy(update=requested)
    if rendered.stage == "production" and request.action != "rollback":
        check_sign_off(mlflow, request.model, version, rendered.signed_off_by)
    requester = None  # on a cluster, in production: who the API server will see apply it (the guard checks it)
    if rendered.stage == "production" and target.kind == "kubernetes":
        requester = target.kube.identity()
        check_signer(requester, rendered.signed_off_by)
    elif target.kind == "gitops":  # the agent applies the folder's service over the one it holds
        requester = GITOPS_APPLIER
    root = request.serving_root or services.serving_root("promote")

    def render(number: int, percent: int | None) -> dict[str, Any]:
        registration, model_bytes = model_registry.load_registration(mlflow, request.model, number)
        storage_uri = publish_repository(
            registration, model_bytes, root, gpu=settings.gpu, decision_threshold=request.decision_threshold,
            runtime=settings.runtime,
        )  # fmt: skip
        return render_inference_service(
            registration, storage_uri=storage_uri, settings=rendered, canary_percent=percent, probe_readiness=True,
            transformer=request.transformer, trained_by=trainer_of(mlflow, request.model, number),
        )  # fmt: skip

    if is_standard(mode):  # spec.canary beside the champion's predictor (components/steps/promote_canary.py)
        rendered_version = version
        service = standard_service(render, request.action, version, before.champion, request.percent)
    else:
        service = render(rendered_version, canary_percent)
    service["metadata"]["annotations"][annotation("rollout")] = f"{request.action} v{version}" + (
        f" at {share}%" if request.action == "canary" else ""
    )

    objects = serving_objects(service, rendered, request.transformer)
    if request.policies is None:  # the cluster's own admission: every object judged first, nothing stored
        if target.kind != "kubernetes":
            raise _refuse("no policies to admit against and no cluster to ask", "pass a policy folder")
        target.admit_on_server(objects, live)
    denied = (
        []
        if request.policies is None
        else PolicySet(request.policies).violations(
            service, user=requester, old=target.stored(namespace, request.model, live)
        )  # an UPDATE of what serves, on the cluster or in the GitOps folder
    )
    if denied:
        raise _refuse(
            f"admission would deny InferenceService {namespace}/{request.model} (v{rendered_version}):\n  "
            + "\n  ".join(denied),
            "change what each line names (evidence annotations come from the registry, the sign-off from "
            "--signed-off-by or promote.signed_off_by, resources from the promote config); "
            "nothing was applied, recorded or moved",
        )

    applied = target.apply(objects, live)
    if target.kind == "dry-run":
        return Outcome(action=request.action, before=before, after=before, service=service, applied=applied, entry=None)

    from_version = before.champion if request.action != "rollback" else (before.canary or before.champion)
    entry = model_registry.HistoryEntry(
        action=request.action,
        to_version=version,
        from_version=from_version,
        traffic_percent=share or 100,
        who=model_registry.who(),
        reason=request.reason,
        namespace=namespace,
        applied=applied,
        signed_off_by=rendered.signed_off_by if rendered.stage == "production" else "",
        evidence=request.evidence or {},
    )
    model_registry.append_history(mlflow, request.model, entry)
    moved = _move_aliases(mlflow, request.model, request.action, version, before)
    after = ServingState.replay(model_registry.history(mlflow, request.model))
    return Outcome(
        action=request.action, before=before, after=after, service=service, applied=applied, entry=entry, aliases=moved
    )


def _move_aliases(mlflow: MlflowClient, model: str, action: str, version: int, before: ServingState) -> dict[str, int]:
    if action == "canary":
        mlflow.set_registered_model_alias(model, model_registry.CANARY, str(version))
    elif action == "promote" or before.canary is None:  # a promotion, or a rollback after one
        mlflow.set_registered_model_alias(model, model_registry.CHAMPION, str(version))
    if action in ("promote", "rollback") and model_registry.CANARY in model_registry.aliases(mlflow, model):
        mlflow.delete_registered_model_alias(model, model_registry.CANARY)
    return model_registry.aliases(mlflow, model)


def settings_for(
    mlflow: MlflowClient, model: str, version: int | None, config: Path | None, pipeline: str | None
) -> PipelineConfig:
    """The promote settings of the pipeline that registered the model (from the version's tag),
    or of --pipeline / --config."""
    from pipelines.local import declaration

    name = pipeline
    if name is None:
        number = version
        if number is None:
            known = model_registry.aliases(mlflow, model)
            number = next((known[a] for a in (model_registry.CHAMPION, model_registry.CHALLENGER) if a in known), None)
        if number is not None:
            name = mlflow.get_model_version(model, str(number)).tags.get("pipeline")
    if not name:
        raise _refuse(f"cannot tell which pipeline {model} belongs to", "pass --pipeline NAME (or --config FILE)")
    return declaration(name).config(config)


def render_history(entries: list[model_registry.HistoryEntry]) -> list[str]:
    lines = [f"{'when (UTC)':<25} {'action':<8} {'from':>5} {'to':>5} {'traffic':>7}  {'who':<16} applied / reason"]
    for e in entries:
        source = f"v{e.from_version}" if e.from_version is not None else "-"
        lines.append(
            f"{e.at:<25} {e.action:<8} {source:>5} {'v' + str(e.to_version):>5} {str(e.traffic_percent) + '%':>7}  "
            f"{e.who:<16} {e.applied}"
            + (f" / {e.reason}" if e.reason else "")
            + (f" / signed off by {e.signed_off_by}" if e.signed_off_by else "")
        )
    return lines


__all__ = [
    "ACTIONS",
    "POLICY_DIR",
    "RAW_DEPLOYMENT",
    "Outcome",
    "Request",
    "ServingState",
    "Target",
    "execute",
    "render_history",
    "settings_for",
]
