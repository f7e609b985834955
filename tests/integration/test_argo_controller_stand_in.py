"""The Argo controller stand-in on known cases, with a Python launcher and an in-memory S3: no
services, no containers. Each case is what Argo's controller does (workflow/controller/
operator.go processNodeRetries, cache/configmap_cache.go, the `{{workflow.failures}}` global),
and each names the issue 28 finding it holds the stand-in to."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.integration.argo_controller_stand_in import ArgoControllerStandIn, Pod
from tests.integration.argo_controller_stand_in_rules import pod_name

REPOSITORY = {"bucket": "pipeline-artifacts", "keyFormat": "{{workflow.namespace}}/{{workflow.name}}/{{pod.name}}"}


class MemoryS3:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}

    def put_object(self, Bucket: str, Key: str, Body: bytes) -> None:
        self.objects[(Bucket, Key)] = Body

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:
        import io

        return {"Body": io.BytesIO(self.objects[(Bucket, Key)])}


class Clock:
    """Time that moves only when a pod runs or the controller waits."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


def step(name: str, *, outputs: list[str] = (), retry: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:  # type: ignore[assignment]
    template: dict[str, Any] = {
        "name": name,
        "container": {"image": "component", "command": ["step", name], "args": extra.pop("args", [])},
        "outputs": {"artifacts": [{"name": o, "path": f"/work/out/{o}"} for o in outputs]},
        **extra,
    }
    if retry is not None:
        template["retryStrategy"] = retry
    return template


def workflow(
    templates: list[dict[str, Any]], tasks: list[dict[str, Any]], exit_handler: bool = False
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "entrypoint": "pipeline",
        "arguments": {"parameters": [{"name": "threshold", "value": "0.85"}]},
        "templates": [*templates, {"name": "pipeline", "dag": {"tasks": tasks}}],
    }
    if exit_handler:
        spec["onExit"] = "exit-handler"
        spec["templates"] += [
            step("notify-failure", args=["{{workflow.status}}", "{{workflow.failures}}"]),
            {"name": "exit-handler", "dag": {"tasks": [{"name": "notify-failure", "template": "notify-failure",
                                                       "when": "{{workflow.status}} != Succeeded"}]}},
        ]  # fmt: skip
    return {"metadata": {"name": "demo"}, "spec": spec}


def stand_in(template: dict[str, Any], behaviour: dict[str, list[int | None]], clock: Clock) -> ArgoControllerStandIn:
    """behaviour: step -> exit code of each attempt (None: killed at its deadline). A step that
    exits 0 writes each output its template declares, unless its name says `forgets`."""
    pods: list[Pod] = []

    def launch(pod: Pod) -> tuple[int | None, str]:
        pods.append(pod)
        name = pod.argv[1]
        codes = behaviour.get(name, [0])
        code = codes[min(sum(1 for p in pods if p.argv[1] == name) - 1, len(codes) - 1)]
        clock.now += 5
        if code == 0 and not name.startswith("forgets"):
            for mount, folder in pod.volumes.items():
                if mount == "/work/out":
                    for output in ("model", "report", "notice"):
                        (folder / output).write_text(f"{name} {output}")
        return code, f"{name} exited {code}"

    runner = ArgoControllerStandIn(
        template=template, images={}, configmaps={}, secrets={}, artifact_repository=REPOSITORY,
        s3_client=MemoryS3(), namespace="fraud", launcher=launch, clock=clock, sleep=clock.sleep,
    )  # fmt: skip
    runner.pods = pods  # type: ignore[attr-defined]
    return runner


RETRY = {"limit": 3, "retryPolicy": "Always", "expression": "asInt(lastRetry.exitCode) != 2",
         "backoff": {"duration": "10s", "factor": 2, "cap": "60s", "maxDuration": "600s"}}  # fmt: skip


def test_positive_control_a_step_that_writes_its_outputs_succeeds_with_exactly_their_keys() -> None:
    clock = Clock()
    run = stand_in(
        workflow([step("train", outputs=["model"])], [{"name": "train", "template": "train"}]), {}, clock
    ).run()
    node = run.nodes["train"]
    assert run.phase == "Succeeded" and node.phase == "Succeeded"
    assert node.artifact_keys == {"model": f"fraud/{run.name}/{node.pod}/model.tgz"}
    assert json.loads(run.failures) == []


def test_a_missing_output_artifact_fails_the_step_as_argo_does() -> None:
    """issue 28: the harness skipped a missing output artifact instead of failing the step."""
    clock = Clock()
    template = workflow([step("forgets", outputs=["model"])], [{"name": "forgets", "template": "forgets"}])
    run = stand_in(template, {}, clock).run()
    node = run.nodes["forgets"]
    assert run.phase == "Error" and node.phase == "Error" and node.artifact_keys == {}
    assert node.message == "failed to save outputs: open /work/out/model: no such file or directory"
    # declared optional, the same step succeeds without it
    template["spec"]["templates"][0]["outputs"]["artifacts"][0]["optional"] = True
    assert stand_in(template, {}, Clock()).run().nodes["forgets"].phase == "Succeeded"


def test_workflow_failures_is_argos_json_and_names_the_failed_step() -> None:
    """issue 28: {{workflow.failures}} was passed comma-joined, where Argo passes a JSON list."""
    clock = Clock()
    template = workflow([step("validate", retry=RETRY)], [{"name": "validate", "template": "validate"}], True)
    runner = stand_in(template, {"validate": [2]}, clock)
    run = runner.run()
    failures = json.loads(run.failures)
    assert [f["displayName"] for f in failures] == [run.name, "validate", "validate(0)"]
    assert all(set(f) == {"displayName", "message", "templateName", "phase", "podName", "finishedAt"} for f in failures)
    retry, attempt = failures[1], failures[2]
    assert retry["message"] == "retryStrategy.expression evaluated to false" and retry["phase"] == "Failed"
    assert attempt["message"] == "main: Error (exit code 2)"
    assert attempt["podName"] == pod_name(run.name, f"{run.name}.validate(0)", "validate") == run.nodes["validate"].pod
    # the exit handler's container got exactly that JSON as one argument
    assert run.exit_handler is not None and run.exit_handler.phase == "Succeeded"
    handler_pod = runner.pods[-1]  # type: ignore[attr-defined]
    assert handler_pod.argv[2:] == ["Failed", run.failures]


def test_only_declared_inputs_resolve() -> None:
    """issue 28: the harness resolved inputs a template does not declare."""
    declared = step("gate", args=["{{inputs.parameters.threshold}}"], inputs={"parameters": [{"name": "threshold"}]})
    supplied = [{"name": "threshold", "value": "{{workflow.parameters.threshold}}"}]
    task = {"name": "gate", "template": "gate", "arguments": {"parameters": supplied}}
    runner = stand_in(workflow([declared], [task]), {}, Clock())
    assert runner.run().phase == "Succeeded" and runner.pods[0].argv[2] == "0.85"  # type: ignore[attr-defined]
    undeclared = step("gate", args=["{{inputs.parameters.threshold}}"])  # supplied by the task, not declared
    with pytest.raises(ValueError, match=r"failed to resolve \{\{inputs.parameters.threshold\}\}"):
        stand_in(workflow([undeclared], [task]), {}, Clock()).run()
    unsupplied = {"name": "gate", "template": "gate"}
    with pytest.raises(ValueError, match=r"inputs\.parameters\.threshold was not supplied"):
        stand_in(workflow([declared], [unsupplied]), {}, Clock()).run()


@pytest.mark.parametrize(
    ("policy", "phases", "attempts", "message"),
    [
        ("Always", [75, 75, 0], 3, ""),
        ("OnFailure", [75, 0], 2, ""),
        ("OnError", [75], 1, "main: Error (exit code 75)"),  # a Failed attempt is not retried
        ("OnTransientError", [75], 1, "main: Error (exit code 75)"),  # its message names no transient error
    ],
)
def test_retry_policy_is_honoured(policy: str, phases: list[int], attempts: int, message: str) -> None:
    """issue 28: the harness ignored retryPolicy."""
    clock = Clock()
    retry = {**RETRY, "retryPolicy": policy}
    run = stand_in(workflow([step("register", retry=retry)], [{"name": "register", "template": "register"}]),
                   {"register": phases}, clock).run()  # fmt: skip
    node = run.nodes["register"]
    assert len(node.attempts) == attempts and node.message == message
    assert clock.waits == [10.0, 20.0][: attempts - 1]  # duration x factor^n


def test_retry_policy_on_error_retries_an_error_and_the_limit_stops_it() -> None:
    clock = Clock()
    retry = {**RETRY, "retryPolicy": "OnError", "limit": 1}
    run = stand_in(workflow([step("forgets", outputs=["model"], retry=retry)],
                            [{"name": "forgets", "template": "forgets"}]), {}, clock).run()  # fmt: skip
    node = run.nodes["forgets"]
    assert [a.phase for a in node.attempts] == ["Error", "Error"] and node.message == "No more retries left"


def test_backoff_max_duration_is_honoured() -> None:
    """issue 28: the harness ignored backoff.maxDuration: a backoff that would end past it stops early."""
    clock = Clock()
    retry = {**RETRY, "limit": 10, "backoff": {"duration": "30s", "factor": 2, "maxDuration": "90s"}}
    run = stand_in(workflow([step("register", retry=retry)], [{"name": "register", "template": "register"}]),
                   {"register": [75]}, clock).run()  # fmt: skip
    node = run.nodes["register"]
    # 5 s pod, wait 30; 5 s pod; a wait of 60 would end at 100, past 90: stop
    assert len(node.attempts) == 2 and clock.waits == [30.0]
    assert node.message == "Backoff would exceed max duration limit" and node.phase == "Failed"
    # the pod's deadline is what is left of maxDuration
    pods = stand_in(workflow([step("register", retry=retry)], [{"name": "register", "template": "register"}]),
                    {"register": [0]}, Clock())  # fmt: skip
    pods.run()
    assert pods.pods[0].deadline_seconds == 90.0  # type: ignore[attr-defined]


def test_memoize_keys_follow_argos_cache_rules_and_a_hit_runs_no_pod() -> None:
    """issue 28: the harness ignored memoize; Argo refuses a key outside [a-zA-Z0-9][-a-zA-Z0-9]* when
    it loads the entry, and the ConfigMap refuses a key over 253 characters when it stores it."""

    def memoized(key: str) -> dict[str, Any]:
        return workflow(
            [step("train", outputs=["model"], inputs={"parameters": [{"name": "key"}]},
                  memoize={"key": "{{inputs.parameters.key}}", "maxAge": "720h",
                           "cache": {"configMap": {"name": "mlops-step-cache"}}})],
            [{"name": "train", "template": "train", "arguments": {"parameters": [{"name": "key", "value": key}]}}],
        )  # fmt: skip

    clock = Clock()
    runner = stand_in(memoized("train-abc-sha256-0f"), {}, clock)
    first, second = runner.run(), runner.run()
    assert first.nodes["train"].memoized is False and second.nodes["train"].memoized is True
    assert second.nodes["train"].artifact_keys == first.nodes["train"].artifact_keys
    assert len(runner.pods) == 1  # type: ignore[attr-defined]
    dotted = stand_in(memoized("evaluate-abc-0.85"), {}, Clock()).run().nodes["train"]
    assert dotted.phase == "Error" and dotted.message == "invalid cache key: evaluate-abc-0.85" and not dotted.attempts
    too_long = stand_in(memoized("k" * 254), {}, Clock()).run().nodes["train"]
    assert too_long.phase == "Error" and "not a valid ConfigMap key" in too_long.message


def test_a_pod_name_is_argos_v2_name(tmp_path: Path) -> None:
    # POD_NAMES=v2: <workflow>-<template>-<fnv32a(node name)>; fnv32a("a") is 0xe40c292c
    assert pod_name("wf", "a", "t") == f"wf-t-{0xE40C292C}"


@pytest.mark.parametrize("pipeline", ["fraud", "forecast"])
def test_every_rendered_memoize_key_is_one_argos_cache_accepts(pipeline: str) -> None:
    """issue 28: the harness ignored memoize; with Argo's rule the rendered keys of evaluate held the
    gate threshold as typed (0.85), a key Argo's cache refuses: every node would Error."""
    import secrets as tokens

    from pipelines.argo import render
    from pipelines.local import declaration
    from tests.integration.argo_controller_stand_in_rules import CACHE_KEY, CONFIGMAP_KEY, substitute

    pipeline_declaration = declaration(pipeline)
    template = render(pipeline_declaration, pipeline_declaration.config())["WorkflowTemplate"]
    spec = template["spec"]
    scope = {f"workflow.parameters.{p['name']}": str(p.get("value", "")) for p in spec["arguments"]["parameters"]}
    scope |= {
        "workflow.parameters.git-commit": "0f" * 20,
        "workflow.parameters.cache-salt": tokens.token_hex(6),  # what `mlops submit --no-cache` sets
        "tasks.validate.outputs.parameters.data_digest": "sha256-" + "e3" * 32,
        "workflow.namespace": "n" * 63,  # the longest namespace Kubernetes allows
        "tasks.materialize.outputs.parameters.train_set_sha256": "ab" * 32,
        "tasks.train.outputs.parameters.model_sha256": "cd" * 32,
    }
    dag = next(t for t in spec["templates"] if t["name"] == spec["entrypoint"])["dag"]["tasks"]
    keys = {
        task["name"]: substitute(argument["value"], scope)
        for task in dag
        for argument in task.get("arguments", {}).get("parameters", [])
        if argument["name"] == "cache-key"
    }
    assert keys, "no memoized step rendered"
    for name, key in keys.items():
        assert CACHE_KEY.fullmatch(key) and CONFIGMAP_KEY.fullmatch(key) and len(key) <= 253, (name, key)


def test_a_cron_run_gets_its_scheduled_time_and_a_plain_run_does_not() -> None:
    """As Argo's cron controller: the CronWorkflow's argument `{{workflow.scheduledTime}}` becomes the
    run's scheduled time; a run submitted by hand has no such variable, so its input keeps the
    template's default. A CronWorkflow naming another template is refused."""
    template = workflow(
        [{**step("validate", args=["{{inputs.parameters.logical-date}}"]),
          "inputs": {"parameters": [{"name": "logical-date"}]}}],
        [{"name": "validate", "template": "validate", "arguments": {"parameters": [
            {"name": "logical-date", "value": "{{workflow.parameters.logical-date}}"}]}}],
    )  # fmt: skip
    template["spec"]["arguments"]["parameters"].append({"name": "logical-date", "value": ""})
    cron = {"spec": {"workflowSpec": {"workflowTemplateRef": {"name": "demo"}, "arguments": {"parameters": [
        {"name": "logical-date", "value": "{{workflow.scheduledTime}}"}]}}}}  # fmt: skip
    runner = stand_in(template, {}, Clock())
    assert runner.run_scheduled(cron, "2026-12-04T02:00:00+01:00").phase == "Succeeded"
    assert runner.run().phase == "Succeeded"
    assert [pod.argv[2:] for pod in runner.pods] == [["2026-12-04T02:00:00+01:00"], [""]]  # type: ignore[attr-defined]
    cron["spec"]["workflowSpec"]["workflowTemplateRef"]["name"] = "another"
    with pytest.raises(ValueError, match="not this template"):
        runner.run_scheduled(cron, "2026-12-04T02:00:00+01:00")
