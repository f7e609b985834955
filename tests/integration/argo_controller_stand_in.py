"""Test code, not a product engine: run a rendered WorkflowTemplate the way Argo executes it, each
task in its own podman container, so the fidelity test can see what a cluster would see.

What it does as Argo's controller and executor do, from the rendered YAML alone:
- walks the DAG: `depends` (`a.Succeeded && b.Succeeded`: false makes the task Omitted), `when`
  (after substituting task outputs; false makes it Skipped), the exit handler;
- substitutes `{{workflow.*}}`, `{{inputs.parameters.*}}` and `{{tasks.*.outputs.parameters.*}}`;
- runs each task in a fresh container of the template's image, with exactly its command, args,
  env (`secretKeyRef` resolved from the Secrets given), `envFrom` (the ConfigMap given), user,
  and nothing else: no shared disk, no MLOPS_HOME from outside;
- artifacts: each output path is tarred and gzipped (Argo's default archive) and uploaded to S3
  under the artifact repository's `keyFormat` + `/<artifact>.tgz`; each input artifact is
  downloaded from there and unpacked at its path before the container starts;
- retryStrategy: `limit`, `expression` (the only form rendered, `asInt(lastRetry.exitCode) != N`),
  and the backoff (`duration` × `factor`^n, capped by `cap`), waited for real.

What it does not do: schedule pods, enforce resources, or talk to Kubernetes. Image names are
mapped to locally built tags, as a registry mirror would.
"""

from __future__ import annotations

import io
import re
import secrets
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PLACEHOLDER = re.compile(r"\{\{\s*([^}]+?)\s*\}\}")
EXPRESSION = re.compile(r"^asInt\(lastRetry\.exitCode\) != (\d+)$")


@dataclass
class Attempt:
    exit_code: int
    seconds: float
    stderr_tail: str


@dataclass
class Node:
    name: str
    phase: str = "Pending"  # Succeeded, Failed, Skipped (its when was false), Omitted (depends false)
    pod: str = ""
    attempts: list[Attempt] = field(default_factory=list)
    parameters: dict[str, str] = field(default_factory=dict)
    artifact_keys: dict[str, str] = field(default_factory=dict)


@dataclass
class WorkflowRun:
    name: str
    phase: str
    nodes: dict[str, Node]
    exit_handler: Node | None

    def ran(self, name: str) -> bool:
        return self.nodes[name].phase in ("Succeeded", "Failed")


Hook = Callable[[str, int, Attempt | None], None]
"""Called as hook(task, attempt_number, result): before an attempt (result None) and after it."""


@dataclass
class ArgoTestHarness:
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
    engine: str = "podman"
    timings: list[tuple[str, float]] = field(default_factory=list)

    # --- the workflow -------------------------------------------------------------------------
    def run(self, parameters: dict[str, str] | None = None) -> WorkflowRun:
        spec = self.template["spec"]
        templates = {t["name"]: t for t in spec["templates"]}
        declared = {p["name"]: str(p.get("value", "")) for p in spec["arguments"]["parameters"]}
        unknown = set(parameters or {}) - set(declared)
        if unknown:
            raise ValueError(f"no such workflow parameters: {sorted(unknown)}")
        name = f"{self.template['metadata']['name']}-{secrets.token_hex(3)}"
        scope = {f"workflow.parameters.{k}": v for k, v in {**declared, **(parameters or {})}.items()}
        scope |= {"workflow.name": name, "workflow.namespace": self.namespace}
        nodes = self._run_dag(templates[spec["entrypoint"]]["dag"]["tasks"], templates, scope, name)
        phase = "Succeeded" if all(n.phase in ("Succeeded", "Skipped", "Omitted") for n in nodes.values()) else "Failed"
        exit_node = None
        if spec.get("onExit"):
            failures = ", ".join(n.name for n in nodes.values() if n.phase == "Failed")
            exit_scope = scope | {"workflow.status": phase, "workflow.failures": failures}
            exit_nodes = self._run_dag(templates[spec["onExit"]]["dag"]["tasks"], templates, exit_scope, name)
            exit_node = next(iter(exit_nodes.values()))
        return WorkflowRun(name=name, phase=phase, nodes=nodes, exit_handler=exit_node)

    def _run_dag(
        self, tasks: list[dict[str, Any]], templates: dict[str, Any], scope: dict[str, str], workflow: str
    ) -> dict[str, Node]:
        nodes = {task["name"]: Node(task["name"]) for task in tasks}
        pending = list(tasks)
        while pending:
            ready = [t for t in pending if all(nodes[d].phase != "Pending" for d in _depends(t))]
            if not ready:
                raise ValueError("the DAG has a cycle or a dependency on a missing task")
            for task in ready:
                pending.remove(task)
                node = nodes[task["name"]]
                if any(nodes[d].phase != "Succeeded" for d in _depends(task)):
                    node.phase = "Omitted"  # Argo: a false `depends` omits the task, its `when` unread
                    continue
                task_scope = dict(scope)
                for other in nodes.values():
                    for key, value in other.parameters.items():
                        task_scope[f"tasks.{other.name}.outputs.parameters.{key}"] = value
                if "when" in task and not _when(_substitute(task["when"], task_scope)):
                    node.phase = "Skipped"  # Argo: a false `when` skips the task
                    continue
                self._run_task(task, templates[task["template"]], task_scope, nodes, node, workflow)
        return nodes

    # --- one task: a pod per attempt ------------------------------------------------------------
    def _run_task(
        self,
        task: dict[str, Any],
        template: dict[str, Any],
        scope: dict[str, str],
        nodes: dict[str, Node],
        node: Node,
        workflow: str,
    ) -> None:
        arguments = task.get("arguments", {})
        inputs = {p["name"]: _substitute(str(p["value"]), scope) for p in arguments.get("parameters", [])}
        artifact_keys = {}
        for artifact in arguments.get("artifacts", []):
            source, _, output = artifact["from"].strip("{} ").removeprefix("tasks.").partition(".outputs.artifacts.")
            artifact_keys[artifact["name"]] = nodes[source].artifact_keys[output]
        strategy = template.get("retryStrategy", {})
        limit = int(strategy.get("limit", 0))
        permanent = _permanent_exit_code(strategy.get("expression"))
        attempt_number = 0
        while True:
            attempt_number += 1
            node.pod = f"{workflow}-{template['name']}-{secrets.token_hex(4)}"
            if self.hook:
                self.hook(node.name, attempt_number, None)
            attempt, outputs = self._attempt(template, inputs, artifact_keys, scope, node.pod)
            node.attempts.append(attempt)
            if self.hook:
                self.hook(node.name, attempt_number, attempt)
            if attempt.exit_code == 0:
                node.phase = "Succeeded"
                node.parameters, node.artifact_keys = outputs
                return
            retryable = permanent is None or attempt.exit_code != permanent
            if attempt_number > limit or not retryable:
                node.phase = "Failed"
                return
            time.sleep(_backoff_seconds(strategy.get("backoff", {}), attempt_number))

    def _attempt(
        self,
        template: dict[str, Any],
        inputs: dict[str, str],
        artifact_keys: dict[str, str],
        scope: dict[str, str],
        pod: str,
    ) -> tuple[Attempt, tuple[dict[str, str], dict[str, str]]]:
        container = template["container"]
        local = scope | {f"inputs.parameters.{k}": v for k, v in inputs.items()} | {"pod.name": pod}
        with tempfile.TemporaryDirectory(prefix=f"{pod}-") as scratch:
            volumes: dict[str, Path] = {}  # one emptyDir per artifact folder, as the executor mounts
            for artifact in template.get("inputs", {}).get("artifacts", []):
                target = self._volume(volumes, Path(scratch), artifact["path"])
                self._download(artifact_keys[artifact["name"]], target / Path(artifact["path"]).name)
            for artifact in template.get("outputs", {}).get("artifacts", []):
                self._volume(volumes, Path(scratch), artifact["path"])
            for parameter in template.get("outputs", {}).get("parameters", []):
                self._volume(volumes, Path(scratch), parameter["valueFrom"]["path"])
            env = self._environment(container)
            argv = [self.engine, "run", "--rm", "--name", pod, "--network", "host"]
            user = template.get("securityContext", {}).get("runAsUser") or self.template["spec"].get(
                "securityContext", {}
            ).get("runAsUser")
            if user is not None:
                argv += ["--user", str(user)]
            for mount, source in volumes.items():
                argv += ["-v", f"{source}:{mount}"]
            env_file = Path(scratch) / "env"  # not on the command line, where `ps` would show the Secrets
            env_file.write_text("".join(f"{key}={value}\n" for key, value in env.items()))
            env_file.chmod(0o600)
            argv += ["--env-file", str(env_file)]
            command = [_substitute(part, local) for part in container.get("command", [])]
            args = [_substitute(part, local) for part in container.get("args", [])]
            argv += ["--entrypoint", command[0], self.images.get(container["image"], container["image"])]
            argv += command[1:] + args
            started = time.monotonic()
            done = subprocess.run(argv, capture_output=True, text=True, timeout=1800, check=False)
            seconds = time.monotonic() - started
            self.timings.append((template["name"], seconds))
            attempt = Attempt(done.returncode, seconds, (done.stdout + done.stderr)[-4000:])
            if done.returncode != 0:
                return attempt, ({}, {})
            parameters = {
                p["name"]: self._in_volume(volumes, p["valueFrom"]["path"]).read_text()
                for p in template.get("outputs", {}).get("parameters", [])
            }
            keys = {}
            prefix = _substitute(self.artifact_repository["keyFormat"], local)
            for artifact in template.get("outputs", {}).get("artifacts", []):
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
            else:
                ref = entry["valueFrom"]["secretKeyRef"]
                env[entry["name"]] = self.secrets[ref["name"]][ref["key"]]
        return env

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


def _substitute(text: str, scope: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        if match.group(1) not in scope:
            raise KeyError(f"unresolved placeholder {match.group(0)} in {text!r}")
        return scope[match.group(1)]

    return PLACEHOLDER.sub(value, text)


def _depends(task: dict[str, Any]) -> list[str]:
    """The upstream tasks of the only `depends` form the renderer writes: `a.Succeeded && b.Succeeded`."""
    clauses = task.get("depends", "").split(" && ") if task.get("depends") else []
    if any(not clause.endswith(".Succeeded") for clause in clauses):
        raise ValueError(f"unsupported depends expression {task['depends']!r}")
    return [clause.removesuffix(".Succeeded") for clause in clauses]


def _when(expression: str) -> bool:
    """The `when` forms the renderer writes: `A == B` and `A != B` on plain strings, joined by &&."""
    if " && " in expression:
        return all(_when(clause) for clause in expression.split(" && "))
    for operator in (" == ", " != "):
        if operator in expression:
            left, right = (side.strip() for side in expression.split(operator, 1))
            return (left == right) == (operator == " == ")
    raise ValueError(f"unsupported when expression {expression!r}")


def _permanent_exit_code(expression: str | None) -> int | None:
    if expression is None:
        return None
    match = EXPRESSION.match(expression)
    if match is None:
        raise ValueError(f"unsupported retry expression {expression!r}")
    return int(match.group(1))


def _duration(text: str) -> float:
    match = re.fullmatch(r"(\d+)([smh]?)", str(text))
    if match is None:
        raise ValueError(f"unsupported duration {text!r}")
    return int(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


def _backoff_seconds(backoff: dict[str, Any], attempt_number: int) -> float:
    if not backoff:
        return 0.0
    wait = _duration(backoff.get("duration", "0")) * float(backoff.get("factor", 1)) ** (attempt_number - 1)
    return min(wait, _duration(backoff["cap"])) if "cap" in backoff else wait
