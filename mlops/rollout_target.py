"""Where `mlops promote` sends what it rendered: a cluster, a GitOps folder, or nowhere (--dry-run).

On a cluster (issue 29) the InferenceService goes last: first who may call it, its Istio
AuthorizationPolicy and NetworkPolicy, so a new service never runs a moment without them, each
replacing exactly the version read. When a write after the first is refused, what this promotion
already wrote of them is put back, so the old service keeps the callers it had; how depends on what
the API server answered (mlops/kube.py, `refused_outright`):

- a definite refusal (400, 403, 404, 409, 422, 429: nothing of that write was stored): each object
  promote wrote is put back as it was read, replacing the version promote itself stored (an
  optimistic-concurrency write: if another writer changed it since, the API server answers 409 and
  their change stays; the error says so instead of forcing ours back);
- no definite answer (a timeout, a dropped connection, a 5xx: the service may have been stored):
  nothing is touched, since putting the old callers back could leave a new service behind the old
  policy; the error says which objects hold the new rendering and what to check, and the run exits
  75 so that the next one applies the whole promotion again.

Where no policy folder travels, the cluster's admission is asked first (`admit_on_server`): Gatekeeper's
webhook configuration must fail closed, a control object must be refused by Gatekeeper, and then every
object goes through dryRun=All (mlops/admission_control.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from components.errors import ComponentError
from mlops import admission_control
from mlops.kube import answered, refused_outright, restorable

if TYPE_CHECKING:
    from mlops.kube import Cluster

__all__ = ["Target"]


@dataclass(kw_only=True)
class Target:
    """Where the rendered service goes. kind: kubernetes | gitops | dry-run."""

    kind: str
    cluster: Cluster | None = None
    folder: Path | None = None

    @property
    def kube(self) -> Cluster:
        """The cluster of a kubernetes target (the CLI sets it with kind="kubernetes")."""
        assert self.cluster is not None, "a kubernetes target is made with its cluster"
        return self.cluster

    def live(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.kube.get_inference_service(namespace, name) if self.kind == "kubernetes" else None

    def stored(self, namespace: str, name: str, live: dict[str, Any] | None) -> dict[str, Any] | None:
        """What the new service replaces, as admission will see it (review.oldObject): the cluster's
        live object, or the service this GitOps folder holds, which its agent applies the new one over."""
        if self.kind == "kubernetes":
            return live
        if self.kind == "gitops" and self.folder is not None:
            path = self.folder / namespace / f"{name}.inferenceservice.yaml"
            if path.is_file():
                stored: dict[str, Any] = yaml.safe_load(path.read_text())
                return stored
        return None

    def apply(self, objects: list[dict[str, Any]], live: dict[str, Any] | None = None) -> str:
        """Write the InferenceService (objects[0]) and who may call it (the AuthorizationPolicy and
        NetworkPolicy after it, components.steps.serving_authorization.serving_objects). On a cluster the
        authorization goes first, and the service replaces exactly the `live` version that was checked.
        Returns where the service went."""
        service, authorization = objects[0], objects[1:]
        if self.kind == "kubernetes":
            return self._apply_on_cluster(service, authorization, live)
        if self.kind == "gitops":
            assert self.folder is not None
            for obj in authorization:
                self._write(self.folder / obj["metadata"]["namespace"], obj)
            return f"gitops:{self._write(self.folder / service['metadata']['namespace'], service)}"
        if self.folder is not None:
            for obj in objects:
                self._write(self.folder, obj)
        else:
            print("---\n".join(yaml.safe_dump(obj, sort_keys=False) for obj in objects), end="")
        return "dry-run"

    def _apply_on_cluster(
        self, service: dict[str, Any], authorization: list[dict[str, Any]], live: dict[str, Any] | None
    ) -> str:
        before = [self.kube.read_authorization(o["kind"], *_address(o)) for o in authorization]
        written: list[dict[str, Any]] = []  # each authorization object as the API server stored it, in order
        try:
            for obj, was in zip(authorization, before, strict=True):  # replaces exactly what was read
                written.append(self.kube.apply_authorization(obj, live=was))
            return f"kubernetes:{self.kube.context}:{self.kube.apply(service, live)}"
        except ComponentError as error:  # TransientError too: no half-applied authorization stays unsaid
            failed = authorization[len(written)] if len(written) < len(authorization) else service
            problem = error.problem + self._after_refusal(error, failed, authorization, before, written)
            raise type(error)(error.step, problem, error.fix) from error

    def _after_refusal(
        self,
        error: ComponentError,
        failed: dict[str, Any],
        authorization: list[dict[str, Any]],
        before: list[dict[str, Any] | None],
        written: list[dict[str, Any]],
    ) -> str:
        """What became of the authorization objects this promotion wrote before `failed` was refused."""
        if not written:
            return ""
        if not refused_outright(error):  # the write may have landed: putting back could strand it
            ours = ", ".join(_where(obj) for obj in authorization[: len(written)])
            return (
                f"; the API server gave no definite answer, so {_where(failed)} may or may not have been stored "
                f"and nothing was put back: {ours} now hold what this promotion rendered. Check them and "
                f"{_where(failed)} with kubectl; running the promotion again applies it whole"
            )
        return self._put_back(authorization, before, written)

    def _put_back(
        self, applied: list[dict[str, Any]], before: list[dict[str, Any] | None], written: list[dict[str, Any]]
    ) -> str:
        """Each authorization object promote wrote, as it was before this promotion, so the callers of the
        old service stay those it had: replacing the version promote stored, so a writer who changed it
        since keeps their change (409, reported). One created now stays (the Role grants no delete): it
        selects the service's pods, which the refused write did not change. Says what it did."""
        said = []
        for obj, was, ours in zip(applied, before, written, strict=False):  # written: those that landed
            where = _where(obj)
            if was is None:
                said.append(f"{where} was created for this promotion and stays (delete it with kubectl if unwanted)")
                continue
            try:
                self.kube.apply_authorization(restorable(was), live=ours)
                said.append(f"{where} was put back as it was")
            except ComponentError as failed:
                if answered(failed) == 409:
                    said.append(
                        f"{where} was NOT put back: another writer changed it after promote wrote it, and their "
                        f"change stays (not overwritten); check it holds the callers you want: kubectl -n "
                        f"{obj['metadata']['namespace']} get {obj['kind'].lower()} {obj['metadata']['name']} -o yaml"
                    )
                else:
                    said.append(f"{where} could NOT be put back ({failed.problem}): re-apply the previous one by hand")
        return "; " + "; ".join(said)

    def admit_on_server(self, objects: list[dict[str, Any]], live: dict[str, Any] | None) -> None:
        """Each object through the API server's dryRun=All (schema, RBAC and every admission webhook,
        Gatekeeper's included; nothing stored): a refusal of any stops the apply before it begins. First
        Gatekeeper's webhook configuration must fail closed, then the positive control
        (mlops/admission_control.py): a copy Gatekeeper must refuse, since a webhook that fails open
        admits everything and a passing dry run would then prove nothing."""
        service, authorization = objects[0], objects[1:]
        admission_control.judge_webhooks(self.kube.gatekeeper_webhooks(), self.kube.context)
        try:
            self.kube.apply(admission_control.control_object(service), live, dry_run=True)
            refusal = None
        except ComponentError as error:
            refusal = error
        admission_control.judge_control(refusal, self.kube.context)
        for obj in authorization:
            self.kube.apply_authorization(obj, dry_run=True)
        self.kube.apply(service, live, dry_run=True)

    @staticmethod
    def _write(folder: Path, obj: dict[str, Any]) -> Path:
        """`<folder>/<name>.<kind>.yaml`, atomically (a GitOps agent never reads half a file)."""
        path = folder / f"{obj['metadata']['name']}.{obj['kind'].lower()}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.partial")
        partial.write_text(yaml.safe_dump(obj, sort_keys=False))
        os.replace(partial, path)
        return path


def _address(obj: dict[str, Any]) -> tuple[str, str]:
    return obj["metadata"]["namespace"], obj["metadata"]["name"]


def _where(obj: dict[str, Any]) -> str:
    return f"{obj['kind']} {'/'.join(_address(obj))}"
