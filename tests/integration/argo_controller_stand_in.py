"""Test code standing in for Argo's workflow controller and executor (no Kubernetes runs here):
it runs a rendered WorkflowTemplate the way Argo would, each attempt of each task in its own
container, so the fidelity test sees what a cluster would see, and refuses what Argo refuses.

From the rendered YAML alone, as Argo 3.x does (workflow/controller/operator.go, dag.go, cache/):
- the DAG: `depends` (`a.Succeeded && b.Succeeded`; false omits the task), `when` (after
  substituting task outputs; false skips it), then the `onExit` handler;
- substitution: `{{workflow.*}}` (`{{workflow.scheduledTime}}` only in a CronWorkflow's runs:
  `run_scheduled`), task outputs, and `{{inputs.parameters.*}}` of the inputs the template
  declares only: a reference to an undeclared input is refused before anything runs (Argo's
  validation), a declared input no task supplies is "was not supplied";
- `{{workflow.failures}}`: Argo's JSON list of every Failed or Error node (the DAG, each retry
  node and each attempt), with displayName, message, templateName, phase, podName, finishedAt;
- each attempt is a pod: exactly the template's command, args, env (`secretKeyRef` from the
  Secrets given), `envFrom` (the ConfigMap given) and user, and one emptyDir per artifact folder;
- artifacts: each output path is tarred and gzipped and uploaded under the repository's
  keyFormat + `/<artifact>.tgz`; a missing output artifact or parameter that is not optional
  makes the attempt Error, as the wait container's failure to save outputs does;
- retryStrategy as processNodeRetries orders it: `backoff.maxDuration` (from the first attempt's
  start; a backoff past it stops early; the pod's deadline is what is left of it), `retryPolicy`
  (Always, OnFailure, OnError, OnTransientError; with none, Always when an expression is set,
  else OnFailure), `limit`, then `expression` (the only form rendered:
  `asInt(lastRetry.exitCode) != N && not (lastRetry.message matches 'OOMKilled')`; a launcher
  exit of 137 stands for a pod OOMKilled at its limit, node message `OOMKilled (exit code 137)`);
  backoff `duration` x `factor`^n capped by `cap`;
- memoize: the key must match the cache's own rule (`[a-zA-Z0-9][-a-zA-Z0-9]*`, checked when the
  entry is loaded: else the node is Error "invalid cache key") and the ConfigMap key rules
  (`[-._a-zA-Z0-9]+`, at most 253 characters, when it is stored); a hit younger than maxAge
  gives the stored outputs without a pod.

It does not schedule pods, enforce resources, or talk to Kubernetes. Images are mapped to local
tags, as a registry mirror would. The pod launcher is a parameter: podman for the fidelity test,
a Python function for the stand-in's own tests (tests/integration/test_argo_controller_stand_in.py).
The rules themselves, as pure functions, are in argo_controller_stand_in_rules.py.
"""

from __future__ import annotations

import io
import json
import secrets
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.integration.argo_controller_stand_in_rules import (
    CACHE_KEY,
    CONFIGMAP_KEY,
    CONFIGMAP_KEY_MAX,
    OOM_EXIT_CODE,
    RETRY_POLICIES,
    TRANSIENT_MESSAGES,
    backoff_seconds,
    depends,
    duration,
    expression_retries,
    failed_nodes,
    pod_name,
    substitute,
    validate_inputs,
    when,
)

DEADLINE_MESSAGE = "Pod was active on the node longer than the specified deadline"


@dataclass(frozen=True)
class Pod:
    """What a launcher starts: one attempt of one task."""

    name: str
    image: str
    argv: list[str]
    env: dict[str, str]
    user: int | None
    volumes: dict[str, Path]
    """Mount path in the container -> folder on this machine."""
    deadline_seconds: float | None
    """What is left of backoff.maxDuration (Argo sets it as the pod's activeDeadlineSeconds)."""


Launcher = Callable[[Pod], tuple[int | None, str]]
"""Runs a pod: its main container's exit code (None: killed at its deadline) and its log tail."""


def podman_launcher(engine: str = "podman") -> Launcher:
    def launch(pod: Pod) -> tuple[int | None, str]:
        argv = [engine, "run", "--rm", "--name", pod.name, "--network", "host"]
        if pod.user is not None:
            argv += ["--user", str(pod.user)]
        for mount, source in pod.volumes.items():
            argv += ["-v", f"{source}:{mount}"]
        with tempfile.TemporaryDirectory(prefix=f"{pod.name}-env-") as folder:
            env_file = Path(folder) / "env"  # not on the command line, where `ps` would show the Secrets
            env_file.write_text("".join(f"{key}={value}\n" for key, value in pod.env.items()))
            env_file.chmod(0o600)
            argv += ["--env-file", str(env_file), "--entrypoint", pod.argv[0], pod.image, *pod.argv[1:]]
            try:
                done = subprocess.run(
                    argv, capture_output=True, text=True, timeout=pod.deadline_seconds or 1800, check=False
                )
            except subprocess.TimeoutExpired as expired:
                subprocess.run([engine, "kill", pod.name], capture_output=True, check=False)
                return None, str(expired.stdout or "")[-4000:]
        return done.returncode, (done.stdout + done.stderr)[-4000:]

    return launch


@dataclass
class Attempt:
    exit_code: int | None
    seconds: float
    stderr_tail: str
    phase: str = "Succeeded"
    """Succeeded, Failed (the main container failed) or Error (its outputs could not be saved)."""
    message: str = ""
    pod: str = ""
    finished_at: str = ""


@dataclass
class Node:
    name: str
    template: str = ""
    phase: str = "Pending"  # Succeeded, Failed, Error, Skipped (its when was false), Omitted (depends false)
    message: str = ""
    pod: str = ""
    attempts: list[Attempt] = field(default_factory=list)
    parameters: dict[str, str] = field(default_factory=dict)
    artifact_keys: dict[str, str] = field(default_factory=dict)
    memoized: bool = False
    """Its outputs came from the memoization cache: no pod ran."""
    retried: bool = False
    """Its template has a retryStrategy: Argo makes a retry node with one child per attempt."""
    finished_at: str = ""


@dataclass
class WorkflowRun:
    name: str
    phase: str
    nodes: dict[str, Node]
    exit_handler: Node | None
    failures: str
    """The `{{workflow.failures}}` the exit handler was given."""


Hook = Callable[[str, int, Attempt | None], None]
"""Called as hook(task, attempt_number, result): before an attempt (result None) and after it."""


@dataclass
class ArgoControllerStandIn:
    template: dict[str, Any]
    """The rendered WorkflowTemplate, as a dict."""
    images: dict[str, str]
    """Rendered image -> local tag."""
    configmaps: dict[str, dict[str, str]]
    secrets: dict[str, dict[str, str]]
    artifact_repository: dict[str, Any]
    """The `s3:` block of the artifact-repositories ConfigMap entry the template references."""
    s3_client: Any
    namespace: str
    hook: Hook | None = None
    launcher: Launcher = field(default_factory=podman_launcher)
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    cache: dict[str, dict[str, tuple[float, dict[str, str], dict[str, str]]]] = field(default_factory=dict)
    """Memoization ConfigMaps: name -> key -> (stored at, output parameters, artifact keys)."""

    # --- the workflow -------------------------------------------------------------------------
    def run_scheduled(
        self, cron: dict[str, Any], scheduled_time: str, parameters: dict[str, str] | None = None
    ) -> WorkflowRun:
        """A run the CronWorkflow makes for `scheduled_time` (RFC 3339), as Argo's cron controller
        does (workflow/cron/operator.go; `argo submit --from cronworkflow/NAME --scheduled-time T
        -p ...` by hand): its workflowSpec's arguments, with `{{workflow.scheduledTime}}` (set from
        the `workflows.argoproj.io/scheduled-time` annotation) substituted, then `parameters`."""
        spec = cron["spec"]["workflowSpec"]
        if spec.get("workflowTemplateRef", {}).get("name") != self.template["metadata"]["name"]:
            raise ValueError(f"the CronWorkflow runs {spec.get('workflowTemplateRef')}, not this template")
        scope = {"workflow.scheduledTime": scheduled_time}
        arguments = {p["name"]: substitute(str(p.get("value", "")), scope) for p in spec["arguments"]["parameters"]}
        return self.run({**arguments, **(parameters or {})}, scheduled_time=scheduled_time)

    def run(self, parameters: dict[str, str] | None = None, *, scheduled_time: str | None = None) -> WorkflowRun:
        spec = self.template["spec"]
        templates = {t["name"]: t for t in spec["templates"]}
        validate_inputs(templates)
        declared = {p["name"]: str(p.get("value", "")) for p in spec["arguments"]["parameters"]}
        unknown = set(parameters or {}) - set(declared)
        if unknown:
            raise ValueError(f"no such workflow parameters: {sorted(unknown)}")
        name = f"{self.template['metadata']['name']}-{secrets.token_hex(3)}"
        scope = {f"workflow.parameters.{k}": v for k, v in {**declared, **(parameters or {})}.items()}
        scope |= {"workflow.name": name, "workflow.namespace": self.namespace}
        if scheduled_time is not None:  # only a CronWorkflow's runs have it
            scope["workflow.scheduledTime"] = scheduled_time
        nodes = self._run_dag(templates[spec["entrypoint"]]["dag"]["tasks"], templates, scope, name)
        unsuccessful = [n.phase for n in nodes.values() if n.phase in ("Failed", "Error")]
        phase = unsuccessful[0] if unsuccessful else "Succeeded"
        failures = json.dumps(failed_nodes(name, spec["entrypoint"], phase, nodes.values(), self._now()))
        exit_node = None
        if spec.get("onExit"):
            exit_scope = scope | {"workflow.status": phase, "workflow.failures": failures}
            exit_nodes = self._run_dag(templates[spec["onExit"]]["dag"]["tasks"], templates, exit_scope, name)
            exit_node = next(iter(exit_nodes.values()))
        return WorkflowRun(name=name, phase=phase, nodes=nodes, exit_handler=exit_node, failures=failures)

    def _run_dag(
        self, tasks: list[dict[str, Any]], templates: dict[str, Any], scope: dict[str, str], workflow: str
    ) -> dict[str, Node]:
        nodes = {task["name"]: Node(task["name"], template=task["template"]) for task in tasks}
        pending = list(tasks)
        while pending:
            ready = [t for t in pending if all(nodes[d].phase != "Pending" for d in depends(t))]
            if not ready:
                raise ValueError("the DAG has a cycle or a dependency on a missing task")
            for task in ready:
                pending.remove(task)
                node = nodes[task["name"]]
                if any(nodes[d].phase != "Succeeded" for d in depends(task)):
                    node.phase = "Omitted"  # Argo: a false `depends` omits the task, its `when` unread
                    continue
                task_scope = dict(scope)
                for other in nodes.values():
                    for key, value in other.parameters.items():
                        task_scope[f"tasks.{other.name}.outputs.parameters.{key}"] = value
                if "when" in task and not when(substitute(task["when"], task_scope)):
                    node.phase = "Skipped"  # Argo: a false `when` skips the task
                    continue
                self._run_task(task, templates[task["template"]], task_scope, nodes, node, workflow)
        return nodes

    # --- one task: memoization, then a pod per attempt ------------------------------------------
    def _run_task(
        self,
        task: dict[str, Any],
        template: dict[str, Any],
        scope: dict[str, str],
        nodes: dict[str, Node],
        node: Node,
        workflow: str,
    ) -> None:
        inputs, artifact_keys = self._inputs(task, template, scope, nodes)
        local = scope | {f"inputs.parameters.{k}": v for k, v in inputs.items()}
        memoize = template.get("memoize")
        key = substitute(memoize["key"], local) if memoize else ""
        if memoize:
            if not CACHE_KEY.fullmatch(key):
                node.phase, node.message = "Error", f"invalid cache key: {key}"
                return
            stored = self.cache.get(memoize["cache"]["configMap"]["name"], {}).get(key)
            if stored and self.clock() - stored[0] <= duration(memoize.get("maxAge", "0s")):
                node.phase, node.memoized = "Succeeded", True
                node.parameters, node.artifact_keys = dict(stored[1]), dict(stored[2])
                return
        self._attempts(task, template, inputs, artifact_keys, scope, node, workflow)
        if memoize and node.phase == "Succeeded":
            if len(key) > CONFIGMAP_KEY_MAX or not CONFIGMAP_KEY.fullmatch(key):
                node.phase = "Error"  # the ConfigMap update is refused: Argo marks the node Error
                node.message = f"error creating cache entry: {key!r} is not a valid ConfigMap key"
                return
            entries = self.cache.setdefault(memoize["cache"]["configMap"]["name"], {})
            entries[key] = (self.clock(), dict(node.parameters), dict(node.artifact_keys))

    def _inputs(
        self, task: dict[str, Any], template: dict[str, Any], scope: dict[str, str], nodes: dict[str, Node]
    ) -> tuple[dict[str, str], dict[str, str]]:
        """Only the inputs the template declares, each supplied by the task or by its default."""
        arguments = task.get("arguments", {})
        given = {p["name"]: p for p in arguments.get("parameters", [])}
        inputs = {}
        for declared in template.get("inputs", {}).get("parameters", []):
            if declared["name"] in given:
                inputs[declared["name"]] = substitute(str(given[declared["name"]]["value"]), scope)
            elif "value" in declared or "default" in declared:
                inputs[declared["name"]] = str(declared.get("value", declared.get("default")))
            else:
                raise ValueError(f"{task['name']}: inputs.parameters.{declared['name']} was not supplied")
        artifact_keys = {}
        supplied = {a["name"]: a for a in arguments.get("artifacts", [])}
        for declared in template.get("inputs", {}).get("artifacts", []):
            if declared["name"] not in supplied:
                if declared.get("optional"):
                    continue
                raise ValueError(f"{task['name']}: inputs.artifacts.{declared['name']} was not supplied")
            reference = supplied[declared["name"]]["from"].strip("{} ").removeprefix("tasks.")
            source, _, output = reference.partition(".outputs.artifacts.")
            artifact_keys[declared["name"]] = nodes[source].artifact_keys[output]
        return inputs, artifact_keys

    def _attempts(
        self,
        task: dict[str, Any],
        template: dict[str, Any],
        inputs: dict[str, str],
        artifact_keys: dict[str, str],
        scope: dict[str, str],
        node: Node,
        workflow: str,
    ) -> None:
        """Argo's processNodeRetries, in its order: maxDuration, the backoff, the policy, the limit,
        the expression. The node takes the last attempt's phase and the reason it stopped."""
        strategy = template.get("retryStrategy")
        node.retried = strategy is not None
        strategy = strategy or {}
        backoff = strategy.get("backoff", {})
        limit = int(strategy["limit"]) if "limit" in strategy else None
        policy = strategy.get("retryPolicy") or ("Always" if strategy.get("expression") else "OnFailure")
        if policy not in (*RETRY_POLICIES, "OnTransientError"):
            raise ValueError(f"{policy} is not a valid RetryPolicy")
        started = self.clock()
        deadline = started + duration(backoff["maxDuration"]) if "maxDuration" in backoff else None
        while True:
            number = len(node.attempts) + 1
            pod_node = f"{workflow}.{task['name']}" + (f"({number - 1})" if node.retried else "")
            node.pod = pod_name(workflow, pod_node, template["name"])
            if self.hook:
                self.hook(node.name, number, None)
            remaining = None if deadline is None else max(deadline - self.clock(), 0.0)
            attempt, outputs = self._attempt(template, inputs, artifact_keys, scope, node.pod, remaining)
            node.attempts.append(attempt)
            if self.hook:
                self.hook(node.name, number, attempt)
            node.finished_at = attempt.finished_at
            if attempt.phase == "Succeeded":
                node.phase, node.message = "Succeeded", ""
                node.parameters, node.artifact_keys = outputs
                return
            node.phase, node.message = attempt.phase, attempt.message
            if not strategy:
                return
            wait = backoff_seconds(backoff, number)
            if deadline is not None and self.clock() > deadline:
                node.message = "Max duration limit exceeded"
                return
            if deadline is not None and self.clock() + wait > deadline:
                node.message = "Backoff would exceed max duration limit"
                return
            on_failed, on_error = RETRY_POLICIES.get(policy, (False, False))
            if policy == "OnTransientError" and TRANSIENT_MESSAGES.search(attempt.message):
                on_failed = on_error = True
            if (attempt.phase == "Failed" and not on_failed) or (attempt.phase == "Error" and not on_error):
                return
            if limit is not None and number > limit:
                node.message = "No more retries left"
                return
            if not expression_retries(strategy.get("expression"), attempt.exit_code, attempt.message):
                node.message = "retryStrategy.expression evaluated to false"
                return
            self.sleep(wait)

    def _attempt(
        self,
        template: dict[str, Any],
        inputs: dict[str, str],
        artifact_keys: dict[str, str],
        scope: dict[str, str],
        pod: str,
        deadline_seconds: float | None,
    ) -> tuple[Attempt, tuple[dict[str, str], dict[str, str]]]:
        container = template["container"]
        local = scope | {f"inputs.parameters.{k}": v for k, v in inputs.items()} | {"pod.name": pod}
        outputs = template.get("outputs", {})
        with tempfile.TemporaryDirectory(prefix=f"{pod}-") as scratch:
            volumes: dict[str, Path] = {}  # one emptyDir per artifact folder, as the executor mounts
            for artifact in template.get("inputs", {}).get("artifacts", []):
                if artifact["name"] in artifact_keys:
                    target = self._volume(volumes, Path(scratch), artifact["path"])
                    self._download(artifact_keys[artifact["name"]], target / Path(artifact["path"]).name)
            for path in [a["path"] for a in outputs.get("artifacts", [])] + [
                p["valueFrom"]["path"] for p in outputs.get("parameters", [])
            ]:
                self._volume(volumes, Path(scratch), path)
            user = template.get("securityContext", {}).get("runAsUser")
            if user is None:
                user = self.template["spec"].get("securityContext", {}).get("runAsUser")
            argv = [substitute(part, local) for part in [*container.get("command", []), *container.get("args", [])]]
            image = self.images.get(container["image"], container["image"])
            started = time.monotonic()
            exit_code, log = self.launcher(
                Pod(pod, image, argv, self._environment(container), user, volumes, deadline_seconds)
            )
            attempt = Attempt(exit_code, time.monotonic() - started, log, pod=pod, finished_at=self._now())
            if exit_code != 0:
                attempt.phase = "Failed"
                attempt.message = (
                    DEADLINE_MESSAGE
                    if exit_code is None
                    else f"OOMKilled (exit code {exit_code})"
                    if exit_code == OOM_EXIT_CODE
                    else f"main: Error (exit code {exit_code})"
                )
                return attempt, ({}, {})
            missing = [
                path
                for path, optional in [(a["path"], a.get("optional", False)) for a in outputs.get("artifacts", [])]
                + [(p["valueFrom"]["path"], "default" in p["valueFrom"]) for p in outputs.get("parameters", [])]
                if not optional and not self._in_volume(volumes, path).exists()
            ]
            if missing:  # the wait container cannot save the outputs: the node is Error
                attempt.phase = "Error"
                attempt.message = f"failed to save outputs: open {missing[0]}: no such file or directory"
                return attempt, ({}, {})
            parameters = {
                p["name"]: (
                    self._in_volume(volumes, p["valueFrom"]["path"]).read_text()
                    if self._in_volume(volumes, p["valueFrom"]["path"]).exists()
                    else str(p["valueFrom"]["default"])
                )
                for p in outputs.get("parameters", [])
            }
            keys = {}
            prefix = substitute(self.artifact_repository["keyFormat"], local)
            for artifact in outputs.get("artifacts", []):
                produced = self._in_volume(volumes, artifact["path"])
                if produced.exists():
                    keys[artifact["name"]] = self._upload(produced, f"{prefix}/{artifact['name']}.tgz")
        return attempt, (parameters, keys)

    def _environment(self, container: dict[str, Any]) -> dict[str, str]:
        env: dict[str, str] = {}
        for source in container.get("envFrom", []):
            env.update(self.configmaps[source["configMapRef"]["name"]])
        for entry in container.get("env", []):
            if "value" in entry:
                env[entry["name"]] = entry["value"]
                continue
            ref = entry["valueFrom"]["secretKeyRef"]
            if ref["key"] not in self.secrets.get(ref["name"], {}):
                raise KeyError(f"CreateContainerConfigError: couldn't find key {ref['key']} in Secret {ref['name']}")
            env[entry["name"]] = self.secrets[ref["name"]][ref["key"]]
        return env

    def _now(self) -> str:
        return datetime.fromtimestamp(self.clock(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    @staticmethod
    def _volume(volumes: dict[str, Path], scratch: Path, path: str) -> Path:
        mount = str(Path(path).parent)
        if mount not in volumes:
            folder = scratch / f"volume-{len(volumes)}"
            folder.mkdir()
            folder.chmod(0o777)  # the container runs as the template's non-root user
            volumes[mount] = folder
        return volumes[mount]

    @staticmethod
    def _in_volume(volumes: dict[str, Path], path: str) -> Path:
        return volumes[str(Path(path).parent)] / Path(path).name

    # --- the artifact repository ------------------------------------------------------------------
    def _upload(self, path: Path, key: str) -> str:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
            archive.add(path, arcname=path.name)
        self.s3_client.put_object(Bucket=self.artifact_repository["bucket"], Key=key, Body=buffer.getvalue())
        return key

    def _download(self, key: str, target: Path) -> None:
        body = self.s3_client.get_object(Bucket=self.artifact_repository["bucket"], Key=key)["Body"].read()
        with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as archive:
            archive.extractall(target.parent, filter="data")
        for extracted in [target, *target.rglob("*")] if target.is_dir() else [target]:
            extracted.chmod(0o777 if extracted.is_dir() else 0o666)
