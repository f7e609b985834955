"""notify: tell the model owner that a candidate failed its gate, instead of shipping it.

The notice is a file (Markdown for people, JSON for machines) so the pipeline's outputs hold
it whatever the delivery channel; on the cluster the exit handler forwards it to the owner.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from components import artifacts

STEP = "notify"


def notify(
    metrics: str,
    notice_out: str,
    notice_markdown_out: str,
    *,
    owner: str,
    pipeline: str,
    model_name: str,
    run_name: str = "",
) -> dict[str, Any]:
    scores = artifacts.read_json(metrics)
    gate = scores["gate"]
    notice = {
        "kind": "gate-failed",
        "owner": owner,
        "pipeline": pipeline,
        "model_name": model_name,
        "run": run_name,
        "metric": gate["metric"],
        "value": gate["value"],
        "threshold": gate["threshold"],
        "direction": gate["direction"],
        "holdout_rows": scores["holdout_rows"],
        "model_sha256": scores.get("model_sha256"),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "action": "nothing was registered or promoted; the serving model is unchanged",
    }
    text = (
        f"# {pipeline}: candidate {model_name} did not pass its gate\n\n"
        f"- Owner: {owner}\n- Run: {run_name or 'local'}\n"
        f"- Holdout {gate['metric']} {gate['value']:.4f}; required {gate['direction']} {gate['threshold']} "
        f"({scores['holdout_rows']} rows)\n"
        f"- Nothing was registered or promoted; the model serving now keeps serving.\n\n"
        "Next: compare the training window and features with the last good run; "
        "retrain, or lower the threshold only with a reviewed change to the pipeline config.\n"
    )
    artifacts.write_json(notice_out, notice)
    artifacts.write_bytes(notice_markdown_out, text.encode())
    return {
        "step": STEP,
        "owner": owner,
        "metric": gate["metric"],
        "value": gate["value"],
        "threshold": gate["threshold"],
    }


def notify_failure(
    notice_out: str, *, pipeline: str, owner: str, workflow: str, status: str, failures: str = ""
) -> dict[str, Any]:
    """Exit handler: tell the owner the run failed, which steps, and the first thing to check.

    `failures` is Argo's `{{workflow.failures}}` (a JSON list of failed nodes) when available.
    """
    import json

    try:
        nodes = json.loads(failures) if failures.strip() else []
    except json.JSONDecodeError:
        nodes = [{"message": failures}]
    failed = [
        {key: node.get(key) for key in ("displayName", "templateName", "phase", "message", "podName") if key in node}
        for node in nodes
        if isinstance(node, dict)
    ]
    notice = {
        "kind": "run-failed",
        "pipeline": pipeline,
        "owner": owner,
        "workflow": workflow,
        "status": status,
        "failed_steps": failed,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "first_check": f"mlops status {workflow}  (node tree, artifact keys, exit codes)",
        "serving": "unchanged: promote never ran or left the previous revision serving",
    }
    artifacts.write_json(notice_out, notice)
    return {"step": "notify-failure", "workflow": workflow, "status": status, "failed_steps": len(failed)}
