"""Issue 31 item 4: a step killed for memory says so, with the setting to raise, and is not retried
blindly. Fed the stand-ins the shapes the real APIs return: Kubeflow Pipelines' v2beta1 run detail
(run_details.task_details[].error, a google.rpc.Status) and Argo's node status, whose message for a
container terminated with reason OOMKilled is `OOMKilled (exit code 137)`."""

from __future__ import annotations

from typing import Any

import pytest

from mlops import argo_client
from mlops.cli import main
from pipelines.argo import PERMANENT_FAILURE
from pipelines.fraud import pipeline as fraud
from tests.integration.test_argo_controller_stand_in import Clock, stand_in, step, workflow
from tests.kfp_api_stand_in import KfpApiStandIn
from tests.test_kfp_submit import kfp_api  # noqa: F401  (the KFP API stand-in)

OOM = "OOMKilled (exit code 137)"


def test_kfp_submit_wait_names_the_memory_setting_of_a_task_killed_for_memory(
    kfp_api: KfpApiStandIn,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    """issue 31: a pod killed for memory on Kubeflow failed with nothing saying why. KFP v2 does not
    put the pod's reason in the task's error today (kubeflow/pipelines#13192, the generic launcher
    error only): where it does, the setting is named; where it does not, where to read it."""
    kfp_api.fail_runs, kfp_api.failing_task, kfp_api.failure_message = True, "materialize", OOM
    assert main(["submit", "fraud", "--engine", "kfp", "--wait", "--poll-seconds", "0.01"]) == 1
    out = capsys.readouterr().out
    limit = fraud.DECLARATION.spec.step("materialize").resources.memory
    assert f"killed for memory (limit {limit}): raise resources.materialize.memory in config.yaml" in out
    # control: a failure of another kind says nothing about memory
    kfp_api.failure_message = "{task} exited 2 (stand-in failure)"
    assert main(["submit", "fraud", "--engine", "kfp", "--wait", "--poll-seconds", "0.01"]) == 1
    out = capsys.readouterr().out
    assert "killed for memory" not in out
    assert "KFP does not record why a task's pod ended (kubeflow/pipelines#13192)" in out
    assert "raise resources.materialize.memory in config.yaml" in out


RETRY = {"limit": 3, "retryPolicy": "Always", "expression": PERMANENT_FAILURE,
         "backoff": {"duration": "10s", "factor": 2, "cap": "60s", "maxDuration": "600s"}}  # fmt: skip


def test_argo_does_not_retry_a_pod_killed_for_memory_and_retries_other_failures() -> None:
    """issue 31: with the same limit an OOM fails again; the rendered retry expression stops on it."""
    template = workflow([step("materialize", retry=RETRY)], [{"name": "materialize", "template": "materialize"}])
    node = stand_in(template, {"materialize": [137, 0]}, Clock()).run().nodes["materialize"]
    assert len(node.attempts) == 1 and node.attempts[0].message == OOM and node.phase == "Failed"
    assert node.message == "retryStrategy.expression evaluated to false"
    retried = stand_in(template, {"materialize": [1, 0]}, Clock()).run().nodes["materialize"]
    assert len(retried.attempts) == 2 and retried.phase == "Succeeded"


def _workflow_status(message: str) -> dict[str, Any]:
    """A failed Workflow as Argo's API returns it: the WorkflowTemplate it ran, a retry node and its pod."""
    resources = {"limits": {"cpu": "2", "memory": "16Gi"}, "requests": {"cpu": "2", "memory": "16Gi"}}
    pod = {"id": "fraud-x-1", "displayName": "materialize(0)", "type": "Pod", "phase": "Failed",
           "templateName": "materialize", "message": message, "outputs": {"exitCode": "137"},
           "startedAt": "2026-12-04T01:00:01Z"}  # fmt: skip
    retry = {"id": "fraud-x-0", "displayName": "materialize", "type": "Retry", "phase": "Failed",
             "templateName": "materialize", "children": ["fraud-x-1"], "startedAt": "2026-12-04T01:00:00Z",
             "message": "retryStrategy.expression evaluated to false"}  # fmt: skip
    return {
        "metadata": {"name": "fraud-x"},
        "status": {
            "phase": "Failed",
            "nodes": {"fraud-x-0": retry, "fraud-x-1": pod},
            "storedWorkflowTemplateSpec": {
                "templates": [{"name": "materialize", "container": {"resources": resources}}]
            },
        },
    }


def test_argo_status_names_the_memory_setting_and_the_limit_the_pod_ran_with() -> None:
    """issue 31: `mlops status` showed the node's message and no fix."""
    shown = argo_client.format_status(_workflow_status(OOM))
    assert "killed for memory (limit 16Gi): raise resources.materialize.memory in config.yaml" in shown
    assert "killed for memory" not in argo_client.format_status(_workflow_status("main: Error (exit code 1)"))
    # a SIGKILL that is not the memory limit (liveness probe, preemption) exits 137 too: not memory
    assert "killed for memory" not in argo_client.format_status(_workflow_status("Error (exit code 137)"))
