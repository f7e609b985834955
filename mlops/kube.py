"""The few Kubernetes calls promote makes, through the official Python client.

Read the live InferenceService, KServe's default deployment mode and who the kubeconfig is (a
production sign-off is held to it); create or replace an
InferenceService, and the Istio AuthorizationPolicy and NetworkPolicy that say who may call it
(components/steps/serving_authorization.py, issue 29); and Gatekeeper's ValidatingWebhookConfiguration,
whose failure policy says whether the cluster's dry runs can be trusted (mlops/admission_control.py).
Nothing else: the manifests are rendered and admitted before they get here. Every write asks for strict
field validation and replaces exactly the version it read (409 Conflict otherwise), and every failure
says whether a retry can help and, through `refused_outright`, whether the write surely stored nothing.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components.errors import ComponentError, TransientError
from components.steps.serving_api import API, AUTHORIZATION_KINDS, GATEKEEPER_CONFIGURATION, PLURALS

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

__all__ = [
    "AUTHORIZATION_KINDS",
    "GATEKEEPER_CONFIGURATION",
    "KSERVE_CONFIG",
    "KSERVE_NAMESPACE",
    "PLURALS",
    "REFUSED_OUTRIGHT",
    "REQUEST_TIMEOUT",
    "SERVICE_ACCOUNT",
    "Cluster",
    "answered",
    "kubeconfig_path",
    "refused_outright",
    "restorable",
]

GROUP, VERSION, PLURAL = API["InferenceService"]
ISTIO_GROUP, ISTIO_VERSION, AUTHORIZATION_PLURAL = API["AuthorizationPolicy"]
KSERVE_NAMESPACE = "kserve"
KSERVE_CONFIG = "inferenceservice-config"
SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
"""Where Kubernetes mounts a pod's ServiceAccount token and the cluster's CA."""
# (connect, read) seconds for every API call: the client's default is to wait forever.
REQUEST_TIMEOUT = (5.0, 30.0)
REFUSED_OUTRIGHT = frozenset({400, 401, 403, 404, 409, 422, 429})
"""Answers the API server gives before it stores anything (decoding, authentication, RBAC, a missing
object, a stale resourceVersion, schema or admission, throttling): a write answered so wrote nothing.
A timeout, a dropped connection or a 5xx says nothing of the kind (the write may have landed)."""


def kubeconfig_path(explicit: str | None = None) -> Path | None:
    """--kubeconfig, else the first file of $KUBECONFIG, else ~/.kube/config; None if none exists."""
    candidates = [explicit] if explicit else []
    if not explicit and os.environ.get("KUBECONFIG"):
        candidates += os.environ["KUBECONFIG"].split(os.pathsep)
    if not explicit:
        candidates.append(str(Path.home() / ".kube" / "config"))
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    if explicit:
        raise ComponentError("promote", f"no kubeconfig at {explicit}", "pass an existing --kubeconfig")
    return None


class _Unread:
    """The default of apply_authorization's `live`: not read by the caller."""


UNREAD = _Unread()


@dataclass(kw_only=True)
class Cluster:
    api: ApiClient
    context: str

    @classmethod
    def from_kubeconfig(cls, path: Path, context: str | None = None) -> Cluster:
        from kubernetes import config

        contexts, active = config.list_kube_config_contexts(config_file=str(path))
        chosen = context or (active or {}).get("name", "")
        if context and context not in [c["name"] for c in contexts]:
            raise ComponentError(
                "promote", f"no context {context!r} in {path}", "pick one of `kubectl config get-contexts`"
            )
        return cls(api=config.new_client_from_config(config_file=str(path), context=chosen or None), context=chosen)

    @classmethod
    def in_cluster(cls, account: Path = SERVICE_ACCOUNT) -> Cluster:
        """The pod's own ServiceAccount (a CronWorkflow's step: pipelines/canary_cron.py): the API
        server from KUBERNETES_SERVICE_HOST/PORT, the token and CA Kubernetes mounts at `account`."""
        from kubernetes import client
        from kubernetes.config.config_exception import ConfigException
        from kubernetes.config.incluster_config import InClusterConfigLoader

        configuration = client.Configuration()
        try:
            InClusterConfigLoader(str(account / "token"), str(account / "ca.crt")).load_and_set(configuration)
        except ConfigException as error:
            raise ComponentError(
                "promote",
                f"not inside a pod with a ServiceAccount ({error})",
                "run it in the cluster (the canary-analysis CronWorkflow), or point at one with --kubeconfig",
            ) from error
        return cls(api=client.ApiClient(configuration), context="in-cluster")

    def _custom(self) -> Any:
        from kubernetes import client

        return client.CustomObjectsApi(self.api)

    def _fail(self, what: str, error: Any, kind: str = "InferenceService") -> ComponentError:
        failure = TransientError if error.status >= 500 or error.status in (0, 429) else ComponentError
        try:  # the server's own words: which field, which rule
            said = f": {json.loads(error.body)['message']}"
        except (TypeError, ValueError, KeyError):
            said = ""
        fix = (
            f"check the kubeconfig context and that your account may get/create/update {PLURALS[kind]} there "
            "(the tenant's pipeline-submitter Role grants it)"
        )
        if error.status in (400, 422):
            fix = f"the rendered {kind} breaks the cluster's schema: run `mlops lint` on it and fix what it names"
        if "admission webhook" in said:  # Gatekeeper's answer: the cluster's policies refuse the object
            fix = f"change what the policy names (the {kind} was not applied); `mlops lint` runs the same policies"
        return failure("promote", f"the Kubernetes API ({self.context}) refused to {what}: {error.status} "
                       f"{error.reason}{said}", fix)  # fmt: skip

    def _unreachable(self, what: str, error: Exception) -> TransientError:
        return TransientError(
            "promote",
            f"the Kubernetes API ({self.context}) did not answer to {what}: {type(error).__name__}",
            "check the cluster's API server and the kubeconfig's server address, then retry",
        )

    def _garbled(self, what: str, error: ValueError) -> TransientError:
        """An answer that is not the JSON object the call returns (a proxy's page, a cut body): no definite
        answer whether a write was stored, so it is transient and nothing is put back on it."""
        return TransientError(
            "promote",
            f"the Kubernetes API ({self.context}) answered to {what} with a body that is not its JSON "
            f"({type(error).__name__}: {str(error)[:80]}); whether it was stored is unknown",
            "check the cluster's API server and what stands in front of it (a proxy), then retry",
        )

    def identity(self) -> str:
        """Who the API server takes this kubeconfig for (authentication.k8s.io/v1 SelfSubjectReview,
        GA in Kubernetes 1.28; any authenticated user may ask): the user a production sign-off is held to."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        body = client.V1SelfSubjectReview(api_version="authentication.k8s.io/v1", kind="SelfSubjectReview")
        what = "say who this kubeconfig is (SelfSubjectReview)"
        try:
            review = client.AuthenticationV1Api(self.api).create_self_subject_review(
                body, _request_timeout=REQUEST_TIMEOUT
            )
        except ApiException as error:
            if error.status >= 500 or error.status in (0, 429):
                raise self._fail(what, error) from error
            raise ComponentError(
                "promote",
                f"the Kubernetes API ({self.context}) refused to {what}: {error.status} {error.reason}",
                "a production sign-off is checked against the identity the cluster authenticates: use a cluster "
                "of Kubernetes 1.28 or later and a kubeconfig whose credentials it accepts",
            ) from error
        except HTTPError as error:
            raise self._unreachable(what, error) from error
        user = review.status.user_info if review.status is not None else None
        username = str(user.username or "") if user is not None else ""
        if not username:
            raise ComponentError(
                "promote",
                f"the Kubernetes API ({self.context}) named no user for this kubeconfig",
                "use a kubeconfig with credentials the cluster authenticates (not anonymous)",
            )
        return username

    def get_inference_service(self, namespace: str, name: str) -> dict[str, Any] | None:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            found: dict[str, Any] = self._custom().get_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name, _request_timeout=REQUEST_TIMEOUT
            )
            return found
        except ApiException as error:
            if error.status == 404:
                return None
            raise self._fail(f"read InferenceService {namespace}/{name}", error) from error
        except HTTPError as error:
            raise self._unreachable(f"read InferenceService {namespace}/{name}", error) from error

    def default_deployment_mode(self) -> str | None:
        """KServe's cluster-wide default (inferenceservice-config, key deploy), if readable."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            config_map = client.CoreV1Api(self.api).read_namespaced_config_map(
                KSERVE_CONFIG, KSERVE_NAMESPACE, _request_timeout=REQUEST_TIMEOUT
            )
        except (ApiException, HTTPError):
            return None
        deploy = json.loads((config_map.data or {}).get("deploy", "{}"))
        mode = deploy.get("defaultDeploymentMode")
        return str(mode) if mode else None

    def deployment_mode(self, live: dict[str, Any] | None) -> str | None:
        """The mode a service runs in: its own annotation, else the cluster default."""
        if live is not None:
            mode = live.get("metadata", {}).get("annotations", {}).get("serving.kserve.io/deploymentMode")
            if mode:
                return str(mode)
        return self.default_deployment_mode()

    def apply(self, service: dict[str, Any], live: dict[str, Any] | None, *, dry_run: bool = False) -> str:
        """Create the InferenceService, or replace exactly the `live` version the caller checked.

        The replace carries that version's resourceVersion: if anyone changed the service after
        the check (a concurrent promotion), the API server answers 409 and nothing is written,
        instead of silently overwriting what the check never saw. `dry_run`: the API server's
        dryRun=All, which runs validation and every admission webhook (Gatekeeper) and stores nothing.
        """
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        namespace, name = service["metadata"]["namespace"], service["metadata"]["name"]
        try:
            if live is None:
                self._custom().create_namespaced_custom_object(  # Strict: an unknown field is refused, not pruned
                    GROUP,
                    VERSION,
                    namespace,
                    PLURAL,
                    service,
                    field_validation="Strict",
                    _request_timeout=REQUEST_TIMEOUT,
                    **_dry(dry_run),
                )
                return "created"
            metadata = {**service["metadata"], "resourceVersion": live["metadata"]["resourceVersion"]}
            body = {**service, "metadata": metadata}
            self._custom().replace_namespaced_custom_object(
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                name,
                body,
                field_validation="Strict",
                _request_timeout=REQUEST_TIMEOUT,
                **_dry(dry_run),
            )
            return "replaced"
        except ApiException as error:
            if error.status == 409:
                raise ComponentError(
                    "promote",
                    f"InferenceService {namespace}/{name} changed after it was checked ({error.reason}): another "
                    "promotion or an edit landed in between; the service was not applied, nothing recorded or moved",
                    f"look at `mlops history {name}` and the live service, then run the promotion again",
                ) from error
            raise self._fail(f"apply InferenceService {namespace}/{name}", error) from error
        except HTTPError as error:
            raise self._unreachable(f"apply InferenceService {namespace}/{name}", error) from error

    def read_authorization(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The live AuthorizationPolicy or NetworkPolicy as the API server returns it, None if there is none."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            if kind == "NetworkPolicy":
                response = client.NetworkingV1Api(self.api).read_namespaced_network_policy(
                    name, namespace, _request_timeout=REQUEST_TIMEOUT, _preload_content=False
                )
                found: dict[str, Any] = json.loads(response.data)
                return found
            policy: dict[str, Any] = self._custom().get_namespaced_custom_object(
                ISTIO_GROUP, ISTIO_VERSION, namespace, AUTHORIZATION_PLURAL, name, _request_timeout=REQUEST_TIMEOUT
            )
            return policy
        except ApiException as error:
            if error.status == 404:
                return None
            raise self._fail(f"read {kind} {namespace}/{name}", error, kind) from error
        except HTTPError as error:
            raise self._unreachable(f"read {kind} {namespace}/{name}", error) from error
        except ValueError as error:  # json.loads of a body that is not JSON
            raise self._garbled(f"read {kind} {namespace}/{name}", error) from error

    def apply_authorization(
        self, obj: dict[str, Any], *, dry_run: bool = False, live: dict[str, Any] | _Unread | None = UNREAD
    ) -> dict[str, Any]:
        """Create the AuthorizationPolicy or NetworkPolicy beside an InferenceService, or replace the
        version read (its resourceVersion: a concurrent writer makes it 409, nothing written). `live`:
        what the caller read of it (read_authorization; None: there was none), else it is read now.
        Returns the object as the API server stored it (its new resourceVersion: what a put-back replaces)."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        kind, namespace, name = obj["kind"], obj["metadata"]["namespace"], obj["metadata"]["name"]
        if kind not in AUTHORIZATION_KINDS:
            raise ComponentError("promote", f"promote applies no {kind} beside a model", "report it: a bug")
        read = self.read_authorization(kind, namespace, name) if isinstance(live, _Unread) else live
        version = None if read is None else str(read["metadata"]["resourceVersion"])
        network = client.NetworkingV1Api(self.api)
        strict: dict[str, Any] = {"field_validation": "Strict", "_request_timeout": REQUEST_TIMEOUT, **_dry(dry_run)}
        body = obj if version is None else {**obj, "metadata": {**obj["metadata"], "resourceVersion": version}}
        try:
            if kind == "NetworkPolicy" and version is None:
                response = network.create_namespaced_network_policy(namespace, body, _preload_content=False, **strict)
            elif kind == "NetworkPolicy":
                response = network.replace_namespaced_network_policy(
                    name, namespace, body, _preload_content=False, **strict
                )
            elif version is None:
                return dict(
                    self._custom().create_namespaced_custom_object(
                        ISTIO_GROUP, ISTIO_VERSION, namespace, AUTHORIZATION_PLURAL, body, **strict
                    )
                )
            else:
                return dict(
                    self._custom().replace_namespaced_custom_object(
                        ISTIO_GROUP, ISTIO_VERSION, namespace, AUTHORIZATION_PLURAL, name, body, **strict
                    )
                )
            stored: dict[str, Any] = json.loads(response.data)  # a NetworkPolicy: the server's JSON, as read
            return stored
        except ApiException as error:
            if error.status == 409:
                raise ComponentError(
                    "promote",
                    f"{kind} {namespace}/{name} changed while promote applied it ({error.reason}): another "
                    "promotion or an edit landed in between; the InferenceService was not applied, nothing "
                    "was recorded or moved",
                    f"look at `kubectl -n {namespace} get {kind.lower()} {name} -o yaml`, then run the promotion again",
                ) from error
            raise self._fail(f"apply {kind} {namespace}/{name}", error, kind) from error
        except HTTPError as error:
            raise self._unreachable(f"apply {kind} {namespace}/{name}", error) from error
        except ValueError as error:  # json.loads of a body that is not JSON: no definite answer
            raise self._garbled(f"apply {kind} {namespace}/{name}", error) from error

    def gatekeeper_webhooks(self) -> dict[str, Any] | None:
        """Gatekeeper's ValidatingWebhookConfiguration (GATEKEEPER_CONFIGURATION, cluster-scoped) as the API
        server returns it, None if there is none. The canary analyst's ClusterRole grants get on this one
        name (pipelines/canary_cron.py); a 403 names that rule."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        what = f"read ValidatingWebhookConfiguration {GATEKEEPER_CONFIGURATION}"
        try:
            response = client.AdmissionregistrationV1Api(self.api).read_validating_webhook_configuration(
                GATEKEEPER_CONFIGURATION, _request_timeout=REQUEST_TIMEOUT, _preload_content=False
            )
            found: dict[str, Any] = json.loads(response.data)  # reading the body can fail as the call can
        except ApiException as error:
            if error.status == 404:
                return None
            if error.status == 403:
                raise ComponentError(
                    "promote",
                    f"the Kubernetes API ({self.context}) refused to {what}: 403 Forbidden",
                    "grant get on validatingwebhookconfigurations named "
                    f"{GATEKEEPER_CONFIGURATION} (the canary-analyst ClusterRole `make golden` renders in "
                    "manifests/tenants/<tenant>/canary-analysis.yaml): without it no dry run can be trusted",
                ) from error
            raise self._fail(what, error) from error
        except HTTPError as error:
            raise self._unreachable(what, error) from error
        except ValueError as error:
            raise self._garbled(what, error) from error
        return found


def answered(error: BaseException) -> int | None:
    """The HTTP status the API server answered with, behind an error a Cluster call raised (the Kubernetes
    client's ApiException it was raised from); None where no answer came (a timeout, a lost connection)."""
    from kubernetes.client.exceptions import ApiException

    cause = error.__cause__
    return int(cause.status) if isinstance(cause, ApiException) and cause.status else None


def refused_outright(error: BaseException) -> bool:
    """Whether `error` (a Cluster write's) is the API server's answer that it stored nothing
    (REFUSED_OUTRIGHT), not a timeout, a lost connection or a 5xx, after which the write may have landed."""
    return answered(error) in REFUSED_OUTRIGHT


def restorable(live: dict[str, Any]) -> dict[str, Any]:
    """What to send to put a read AuthorizationPolicy or NetworkPolicy back: its kind, name, labels,
    annotations and spec, without what the server keeps (uid, managedFields, resourceVersion...)."""
    metadata = live["metadata"]
    kept = {key: metadata[key] for key in ("name", "namespace", "labels", "annotations") if key in metadata}
    return {"apiVersion": live["apiVersion"], "kind": live["kind"], "metadata": kept, "spec": live.get("spec", {})}


def _dry(dry_run: bool) -> dict[str, str]:
    """The client's keyword for the API server's dryRun=All (validated and admitted, not stored)."""
    return {"dry_run": "All"} if dry_run else {}
