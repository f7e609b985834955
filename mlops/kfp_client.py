"""Submit, schedule and follow pipelines on Kubeflow Pipelines, through kfp.Client (the Argo side is argo_client.py).

`mlops submit|schedule|status --engine kfp` compiles the pipeline's IR (pipelines/kfp.py) and
speaks the KFP v2beta1 API through kfp.Client:

- the IR is uploaded as a pipeline when none of that name exists in the namespace, and as a
  version named from the git sha and the IR's content digest (`<pipeline>-<sha>-<digest>`); runs
  use that version. A version of that name already there is reused, so submitting the same IR
  from the same commit again uploads nothing;
- runs go to the tenant's namespace, in an experiment named after the pipeline, with the inputs
  `mlops submit -p` sets for Argo (pipelines.declaration.RunInputs, typed as the IR declares them);
- a recurring run takes the config's `cluster.schedule`: KFP's cron has six fields, seconds
  first (robfig/cron, which reads a five-field cron as seconds-first, so `0 2 * * *` would run
  hourly at :02), and no timezone of its own: the scheduledworkflow controller reads every cron
  in its CRON_SCHEDULE_TIMEZONE (UTC unless the platform set it), declared here as
  $KFP_CRON_TIMEZONE. A schedule in another zone is refused rather than shifted by an offset that
  daylight saving would make wrong for half the year.

Host from --server or $KFP_HOST, token from $KFP_TOKEN or the kubeconfig (as for Argo),
namespace from --namespace, $KFP_NAMESPACE, then the pipeline's. Server errors become messages
that name the fix; an unreachable server is transient (exit 75).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components.errors import ComponentError, TransientError
from mlops.argo_client import follow, normalise_token, token_from_kubeconfig

if TYPE_CHECKING:
    from kfp import Client as KfpClient

__all__ = [
    "CONTROLLER_TIMEZONE",
    "FILTER_EQUALS",
    "REQUEST_TIMEOUT",
    "TERMINAL",
    "UNRECORDED_REASON",
    "Connection",
    "Upload",
    "client",
    "connect",
    "create_run",
    "ensure_experiment",
    "ensure_recurring_run",
    "ensure_version",
    "explain",
    "format_run",
    "get_run",
    "ir_digest",
    "kfp_cron",
    "run_parameters",
    "version_name",
    "wait",
]

TERMINAL = ("SUCCEEDED", "SKIPPED", "FAILED", "CANCELED")
REQUEST_TIMEOUT = (5.0, 60.0)
"""(connect, read) seconds for every request: kfp_server_api sets none, so a stuck port-forward hung."""
CONTROLLER_TIMEZONE = "KFP_CRON_TIMEZONE"
FILTER_EQUALS = "EQUALS"


@dataclass(frozen=True, kw_only=True)
class Connection:
    host: str
    token: str | None
    namespace: str
    verify_ssl: bool

    def redacted(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "namespace": self.namespace,
            "verify_ssl": self.verify_ssl,
            "token": "Bearer ***" if self.token else None,
        }


def connect(
    *,
    server: str | None = None,
    namespace: str | None = None,
    token_from: str | None = None,
    insecure_skip_verify: bool = False,
    default_namespace: str | None = None,
) -> Connection:
    """Connection settings from flags, then KFP_HOST, KFP_TOKEN and KFP_NAMESPACE."""
    host = server or os.environ.get("KFP_HOST")
    if not host:
        raise ComponentError(
            "submit",
            "no Kubeflow Pipelines API configured",
            "set KFP_HOST=https://kubeflow.example.com/pipeline (or a port-forward: "
            "kubectl -n kubeflow port-forward svc/ml-pipeline 8888, KFP_HOST=http://127.0.0.1:8888) or pass --server",
        )
    if token_from == "argo":
        raise ComponentError(
            "submit", "--token-from argo names an Argo token", "use --token-from kubeconfig, or set KFP_TOKEN"
        )
    raw = token_from_kubeconfig() if token_from == "kubeconfig" else os.environ.get("KFP_TOKEN")
    return Connection(
        host=(host if "://" in host else f"https://{host}").rstrip("/"),
        token=normalise_token(raw),
        namespace=namespace or os.environ.get("KFP_NAMESPACE") or default_namespace or "kubeflow",
        verify_ssl=not insecure_skip_verify,
    )


def client(connection: Connection) -> KfpClient:
    """kfp.Client for the connection, every request bounded by REQUEST_TIMEOUT."""
    import kfp

    class Client(kfp.Client):  # type: ignore[misc]
        def get_kfp_healthz(self, sleep_duration: int = 5) -> Any:
            """Once: kfp.Client probes it on creation for namespace "kubeflow" and retries 5 times, 5 s apart."""
            return self._healthz_api.healthz_service_get_healthz(_request_timeout=REQUEST_TIMEOUT)

    with warnings.catch_warnings():  # "only works with KFP v2.0.0-beta.2 and later": said once, in the docs
        warnings.simplefilter("ignore", FutureWarning)
        made = _call(
            connection,
            "connect",
            Client,
            host=connection.host,
            existing_token=connection.token,
            namespace=connection.namespace,
            verify_ssl=connection.verify_ssl,
        )
    rest = made._run_api.api_client.rest_client  # one ApiClient is shared by every service of the client
    original = rest.request

    def request(*args: Any, _request_timeout: Any = None, **kwargs: Any) -> Any:
        return original(*args, _request_timeout=_request_timeout or REQUEST_TIMEOUT, **kwargs)

    rest.request = request
    return made


def explain(error: Exception, connection: Connection, action: str) -> ComponentError:
    """A KFP API error as problem and fix, with its retry class."""
    import kfp_server_api

    status = getattr(error, "status", None) if isinstance(error, kfp_server_api.ApiException) else None
    body = str(getattr(error, "body", "") or error)[:400]
    if status == 401:
        return ComponentError(
            "submit",
            f"{action}: the KFP API at {connection.host} answered 401 Unauthorized",
            "set KFP_TOKEN to a valid bearer token (or --token-from kubeconfig); behind Istio/Dex the token "
            "must be one the cluster's authentication accepts",
        )
    if status == 403:
        return ComponentError(
            "submit",
            f"{action}: 403 Forbidden in namespace {connection.namespace!r} ({body})",
            "the token's identity needs a Kubeflow profile contributor binding in that namespace, "
            "or pass --namespace for one it has",
        )
    if status == 404:
        return ComponentError("submit", f"{action}: not found on {connection.host} ({body})", "check the id or name")
    if (status is not None and (status == 0 or status >= 500)) or _unreachable(error):
        return TransientError(
            "submit",
            f"{action}: cannot reach the KFP API at {connection.host} ({body[:200]})",
            "check KFP_HOST (http vs https, the /pipeline prefix) and the network path (port-forward?); then retry",
        )
    return ComponentError(
        "submit",
        f"{action}: the KFP API refused it ({status}): {body}",
        "see the message; `mlops compile PIPELINE --target kfp` writes the IR for inspection",
    )


def _unreachable(error: Exception) -> bool:
    import urllib3

    return isinstance(error, OSError | TimeoutError | urllib3.exceptions.HTTPError)


def _call(connection: Connection, action: str, function: Any, *args: Any, **kwargs: Any) -> Any:
    import kfp_server_api
    import urllib3

    try:
        with contextlib.redirect_stdout(io.StringIO()):  # kfp.Client prints UI links; the CLI prints its own
            return function(*args, **kwargs)
    except (kfp_server_api.ApiException, urllib3.exceptions.HTTPError, OSError, TimeoutError) as error:
        raise explain(error, connection, action) from error


def ir_digest(package: Path) -> str:
    return hashlib.sha256(package.read_bytes()).hexdigest()


def version_name(pipeline: str, package: Path, git_sha: str) -> str:
    """`<pipeline>-<sha 12>-<IR digest 12>`: the same IR from the same commit names the same version."""
    return f"{pipeline}-{(git_sha or 'nogit')[:12]}-{ir_digest(package)[:12]}"


def run_parameters(given: dict[str, str], *, git_sha: str) -> dict[str, Any]:
    """`-p` values (Argo's hyphenated names) as the IR's typed inputs; the commit as for Argo's labels."""
    from pipelines.declaration import RunInputs

    types = RunInputs.types()
    typed: dict[str, Any] = {}
    for key, value in given.items():
        name = key.replace("-", "_")
        kind = types[name]
        if kind is bool:
            typed[name] = value.strip().lower() in ("1", "true", "yes")
        elif kind is float:
            try:
                typed[name] = float(value)
            except ValueError as error:
                raise ComponentError("submit", f"-p {key}={value!r} is not a number", f"pass -p {key}=0.8") from error
        else:
            typed[name] = value
    if git_sha and "git_commit" not in typed:
        typed["git_commit"] = git_sha
    return typed


def kfp_cron(cron: str, timezone: str) -> str:
    """A five-field cron in `timezone` as KFP's six-field one (seconds first), in the controller's zone."""
    controller = os.environ.get(CONTROLLER_TIMEZONE, "UTC")
    if timezone != controller:
        raise ComponentError(
            "schedule",
            f"the schedule's timezone {timezone!r} is not the KFP scheduler's {controller!r}: KFP recurring runs "
            "have no timezone; the scheduledworkflow controller reads every cron in its CRON_SCHEDULE_TIMEZONE",
            f"pass --timezone {controller} with a cron in {controller}, or set the controller's "
            f"CRON_SCHEDULE_TIMEZONE={timezone} and export {CONTROLLER_TIMEZONE}={timezone}",
        )
    text = cron.strip()
    if text.startswith("@"):
        return text
    fields = text.split()
    if len(fields) == 6:
        return text
    if len(fields) != 5:
        raise ComponentError(
            "schedule", f"cron {cron!r} has {len(fields)} fields", "write minute hour day-of-month month day-of-week"
        )
    return "0 " + text


@dataclass(frozen=True, kw_only=True)
class Upload:
    pipeline: str
    description: str
    package: Path
    version: str


def _equals(key: str, value: str) -> str:
    return json.dumps({"predicates": [{"operation": FILTER_EQUALS, "key": key, "stringValue": value}]})


def ensure_version(kfp: KfpClient, connection: Connection, upload: Upload) -> tuple[str, str, str]:
    """(pipeline id, version id, what happened): upload, add a version, or reuse the one already there."""
    found = _call(
        connection,
        f"find pipeline {upload.pipeline}",
        kfp.list_pipelines,
        filter=_equals("display_name", upload.pipeline),
        namespace=connection.namespace,
    )
    outcome = "versioned"
    if found.pipelines:
        pipeline_id = found.pipelines[0].pipeline_id
    else:  # the upload's own first version is named after the pipeline; runs use the content-named one below
        created = _call(
            connection,
            f"upload pipeline {upload.pipeline}",
            kfp.upload_pipeline,
            str(upload.package),
            pipeline_name=upload.pipeline,
            description=upload.description,
            namespace=connection.namespace,
        )
        pipeline_id, outcome = created.pipeline_id, "uploaded"
    same = _call(
        connection,
        f"find version {upload.version}",
        kfp.list_pipeline_versions,
        pipeline_id,
        filter=_equals("display_name", upload.version),
    )
    if same.pipeline_versions:
        return pipeline_id, same.pipeline_versions[0].pipeline_version_id, "unchanged"
    added = _call(
        connection,
        f"upload version {upload.version}",
        kfp.upload_pipeline_version,
        str(upload.package),
        upload.version,
        pipeline_id=pipeline_id,
        description=upload.description,
    )
    return pipeline_id, added.pipeline_version_id, outcome


def ensure_experiment(kfp: KfpClient, connection: Connection, name: str) -> str:
    experiment = _call(
        connection, f"get or create experiment {name}", kfp.create_experiment, name, namespace=connection.namespace
    )
    return str(experiment.experiment_id)


def create_run(
    kfp: KfpClient, connection: Connection, upload: Upload, name: str, parameters: dict[str, Any]
) -> dict[str, Any]:
    pipeline_id, version_id, outcome = ensure_version(kfp, connection, upload)
    experiment = ensure_experiment(kfp, connection, upload.pipeline)
    run = _call(
        connection,
        "create run",
        kfp.run_pipeline,
        experiment,
        name,
        params=parameters,
        pipeline_id=pipeline_id,
        version_id=version_id,
    )
    return {"run_id": run.run_id, "pipeline": outcome, "version_id": version_id, "experiment_id": experiment}


def ensure_recurring_run(
    kfp: KfpClient, connection: Connection, upload: Upload, name: str, cron: str, parameters: dict[str, Any]
) -> dict[str, Any]:
    """Create the nightly recurring run; one of that name on another version or cron is replaced (KFP
    has no update). One run at a time and no backfill, as Argo's Forbid and starting deadline."""
    pipeline_id, version_id, outcome = ensure_version(kfp, connection, upload)
    experiment = ensure_experiment(kfp, connection, upload.pipeline)
    existing = _call(
        connection,
        f"find recurring run {name}",
        kfp.list_recurring_runs,
        experiment_id=experiment,
        filter=_equals("display_name", name),
    )
    for current in existing.recurring_runs or []:
        reference = current.pipeline_version_reference
        same_cron = current.trigger and current.trigger.cron_schedule and current.trigger.cron_schedule.cron == cron
        if same_cron and reference and reference.pipeline_version_id == version_id:
            return {"recurring_run_id": current.recurring_run_id, "outcome": "unchanged", "pipeline": outcome}
        _call(connection, f"replace recurring run {name}", kfp.delete_recurring_run, current.recurring_run_id)
    created = _call(
        connection,
        f"create recurring run {name}",
        kfp.create_recurring_run,
        experiment,
        name,
        cron_expression=cron,
        max_concurrency=1,
        no_catchup=True,
        params=parameters,
        pipeline_id=pipeline_id,
        version_id=version_id,
    )
    return {"recurring_run_id": created.recurring_run_id, "outcome": "created", "pipeline": outcome}


def get_run(connection: Connection, run_id: str, kfp: KfpClient | None = None) -> dict[str, Any]:
    found = _call(connection, f"get run {run_id}", (kfp or client(connection)).get_run, run_id)
    document: dict[str, Any] = found.to_dict()
    return document


def wait(
    connection: Connection,
    run_id: str,
    *,
    poll_seconds: float = 5.0,
    timeout_seconds: float = 86400,
    report: Any = print,
) -> dict[str, Any]:
    """Follow the run until a terminal state, reporting each change; returns the final run."""
    kfp = client(connection)

    def state() -> tuple[dict[str, Any], str]:
        document = get_run(connection, run_id, kfp)
        return document, document.get("state") or "PENDING"

    hint = f"follow it with `mlops status {run_id} --engine kfp` or in the KFP UI"
    return follow(
        run_id, state, TERMINAL, hint, poll_seconds=poll_seconds, timeout_seconds=timeout_seconds, report=report
    )


def format_run(document: dict[str, Any], memory: Mapping[str, str | None] | None = None) -> str:
    """The run, a line a task; a task killed for memory names the setting to raise, with its limit
    when `memory` (step -> limit, from the pipeline's sized spec) has it."""
    from pipelines.resources import killed_for_memory, memory_advice

    lines = [
        f"{document.get('display_name', '')} ({document.get('run_id', '')})  state={document.get('state') or 'PENDING'}"
        f"  created={document.get('created_at') or '-'}  finished={document.get('finished_at') or '-'}"
    ]
    if (document.get("error") or {}).get("message"):
        lines.append(f"  error: {document['error']['message']}")
    tasks = ((document.get("run_details") or {}).get("task_details")) or []
    for task in sorted(tasks, key=lambda t: (str(t.get("start_time") or ""), t.get("display_name") or "")):
        lines.append(f"- {task.get('display_name')} {task.get('state') or 'PENDING'}")
        step, message = str(task.get("display_name") or ""), (task.get("error") or {}).get("message")
        if message:
            lines.append(f"    error: {message}")
        if killed_for_memory(message):  # a pod killed for memory is not retried
            lines.append(f"    {memory_advice(step, (memory or {}).get(step))}")
        elif task.get("state") == "FAILED":
            lines.append(f"    {UNRECORDED_REASON.format(step=step)}")
    return "\n".join(lines)


UNRECORDED_REASON = (
    "KFP does not record why a task's pod ended (kubeflow/pipelines#13192): if its pod shows"
    " `Reason: OOMKilled` (kubectl describe pod, or the KFP UI's pod tab), raise resources.{step}.memory in config.yaml"
)
"""What a failed KFP task is reported with when its error does not say OOMKilled: KFP v2 keeps only
the launcher's generic error, so the pod's own reason has to be read from Kubernetes."""
