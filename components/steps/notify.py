"""notify: tell the model owner that a candidate failed its gate, or that a run failed.

Two notices: `notify` (a DAG step, when the gate refuses the candidate; the workflow still ends
Succeeded, so nothing else would tell anyone) and `notify_failure` (the exit handler, when the
run did not succeed). Each is written first as a file (JSON for machines, Markdown for people)
so the run's outputs hold it whatever happens next, then delivered to the owner through
Alertmanager: a gauge pushed to the namespace's own Pushgateway, the one the drift step
already pushes to (MLOPS_PUSHGATEWAY_URL, pipelines/tenant_monitoring.py), which Prometheus
scrapes without honor_labels, setting `namespace` from where the Pushgateway runs; a rule
(PipelineGateFailed, PipelineRunFailed in manifests/monitoring/prometheus-rules.yaml) labels it
`owner: model-owner` with that namespace and the pipeline, so the tenant's AlertmanagerConfig
routes it to the pipeline's owner (pipelines/alerting.py). The push carries no `namespace`
(issue 29: a pushed one chose whose owner was paged).

Why a pushed metric and a rule, not a POST to Alertmanager's /api/v2/alerts:
- reachability: tenant pods already reach the Pushgateway (the drift step's required flow);
  Alertmanager would need a new flow from every tenant namespace into the monitoring one;
- forging: Alertmanager's API has no per-tenant authorisation, so any pod that can post an
  alert can post one for another tenant's namespace and pipeline, and the same API creates
  and expires silences. Each tenant pushes only to the Pushgateway in its own namespace (issue
  29), whose scrape fixes the namespace, and the rule adds the owner;
- resolve and expiry: an alert posted to Alertmanager resolves by itself after its
  `resolve_timeout` (5 minutes) unless it is posted again. Here one push group per (pipeline,
  kind) in the namespace's Pushgateway holds the last notice; the rule fires while it is under
  24 hours old, and the next notice of that kind replaces the group, so the old alert resolves
  and the new one fires.

Delivery failures: no Pushgateway answering, a timeout or a 5xx is transient (exit 75: the
step's retry class retries it); a 4xx refusal (a push the gateway or its proxy forbids) is
permanent. An empty MLOPS_PUSHGATEWAY_URL (a laptop without `mlops dev up --monitoring`)
writes the notice and delivers nothing, as the drift step pushes nothing.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from components import artifacts
from components.platform import pushgateway_client, services

__all__ = [
    "GATE_FAILED",
    "HELP",
    "JOB",
    "KIND",
    "RUN_FAILED",
    "STEP",
    "VERIFY_COMPLETED",
    "VERIFY_FAILED",
    "deliver",
    "deliver_verification",
    "failed_nodes",
    "failed_step_names",
    "notify",
    "notify_failure",
]

STEP = "notify"
JOB = "mlops-notice"
GATE_FAILED = "mlops_gate_failed_timestamp_seconds"
RUN_FAILED = "mlops_run_failed_timestamp_seconds"
VERIFY_FAILED = "mlops_registry_verify_failed"
VERIFY_COMPLETED = "mlops_registry_verify_completed_timestamp_seconds"
HELP = {
    GATE_FAILED: "When the pipeline's candidate last failed its gate (nothing was registered or promoted).",
    RUN_FAILED: "When a run of the pipeline last ended Failed or Error (the exit handler's notice).",
    VERIFY_FAILED: "1 for each registered version `mlops verify` last found MISSING or CORRUPT (mlops/verify.py).",
    VERIFY_COMPLETED: "When `mlops verify --push` last walked the registry to the end.",
}
KIND = {GATE_FAILED: "gate-failed", RUN_FAILED: "run-failed", VERIFY_FAILED: "registry-verify"}
"""The push group's `kind`: a gate failure and a run failure do not replace each other."""


def deliver(metric: str, labels: dict[str, str], *, namespace: str, pipeline: str, at: datetime, step: str) -> str:
    """Push the notice's gauge to the Pushgateway; the URL it went to, or "" with none configured.

    One group per (pipeline, kind) in the namespace's own Pushgateway, replaced whole by the next
    notice of its kind; no `namespace` in the group (the scrape sets it from the target)."""
    url = services.settings().pushgateway_url
    if not url:
        return ""
    from prometheus_client import CollectorRegistry, Gauge

    collectors = CollectorRegistry()
    Gauge(metric, HELP[metric], list(labels), registry=collectors).labels(**labels).set(at.timestamp())
    grouping = {"pipeline": pipeline, "kind": KIND[metric]}
    pushgateway_client.push(step, url, job=JOB, grouping=grouping, registry=collectors, what="the owner's notice")
    return url


def deliver_verification(failed: list[tuple[str, int, str]], *, at: datetime, step: str = "verify") -> str:
    """Push `mlops verify`'s result: one VERIFY_FAILED series per (model, version, status) not whole, and
    when the walk ended. One group (kind registry-verify) replaced whole by each run, so a version made
    whole again stops alerting; "" with no Pushgateway configured."""
    url = services.settings().pushgateway_url
    if not url:
        return ""
    from prometheus_client import CollectorRegistry, Gauge

    collectors = CollectorRegistry()
    gauge = Gauge(VERIFY_FAILED, HELP[VERIFY_FAILED], ["model", "version", "status"], registry=collectors)
    for model, version, status in failed:
        gauge.labels(model=model, version=str(version), status=status).set(1)
    Gauge(VERIFY_COMPLETED, HELP[VERIFY_COMPLETED], registry=collectors).set(at.timestamp())
    grouping = {"kind": KIND[VERIFY_FAILED]}
    pushgateway_client.push(step, url, job=JOB, grouping=grouping, registry=collectors, what="the registry check")
    return url


def notify(
    metrics: str,
    notice_out: str,
    notice_markdown_out: str,
    *,
    owner: str,
    pipeline: str,
    model_name: str,
    namespace: str = "",
    run_name: str = "",
) -> dict[str, Any]:
    """Gate refused the candidate: write the notice, then deliver it to the owner through Alertmanager."""
    scores = artifacts.read_json(metrics)
    gate = scores["gate"]
    at = datetime.now(UTC)
    notice = {
        "kind": "gate-failed",
        "owner": owner,
        "namespace": namespace,
        "pipeline": pipeline,
        "model_name": model_name,
        "run": run_name,
        "metric": gate["metric"],
        "value": gate["value"],
        "threshold": gate["threshold"],
        "direction": gate["direction"],
        "holdout_rows": scores["holdout_rows"],
        "model_sha256": scores.get("model_sha256"),
        "at": at.isoformat(timespec="seconds"),
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
    labels = {"model": model_name, "run": run_name, "metric": str(gate["metric"])}
    delivered = deliver(GATE_FAILED, labels, namespace=namespace, pipeline=pipeline, at=at, step=STEP)
    return {
        "step": STEP,
        "owner": owner,
        "metric": gate["metric"],
        "value": gate["value"],
        "threshold": gate["threshold"],
        "delivered": delivered,
    }


def failed_nodes(failures: str) -> list[dict[str, Any]]:
    """Argo's `{{workflow.failures}}`: a JSON list of failed nodes; anything else kept as a message."""
    try:
        nodes = json.loads(failures) if failures.strip() else []
    except json.JSONDecodeError:
        nodes = [{"message": failures}]
    if nodes is None:  # Argo passes `null` when no node failed (a workflow-level error)
        nodes = []
    if not isinstance(nodes, list):
        nodes = [{"message": failures}]
    return [
        {key: node.get(key) for key in ("displayName", "templateName", "phase", "message", "podName") if key in node}
        for node in nodes
        if isinstance(node, dict)
    ]


def failed_step_names(failed: list[dict[str, Any]], workflow: str) -> list[str]:
    """The steps that failed, once each: Argo lists the workflow's own DAG node and every failed
    attempt (`train(0)`, `train(1)`) beside the task itself."""
    names = {str(node.get("displayName") or node.get("templateName") or "") for node in failed}
    return sorted({re.sub(r"\(\d+\)$", "", name) for name in names} - {"", workflow})


def notify_failure(
    notice_out: str,
    *,
    pipeline: str,
    owner: str,
    workflow: str,
    status: str,
    failures: str = "",
    namespace: str = "",
) -> dict[str, Any]:
    """Exit handler: tell the owner the run failed, which steps, and the first thing to check.

    `failures` is Argo's `{{workflow.failures}}` (a JSON list of failed nodes) when available.
    """
    failed = failed_nodes(failures)
    at = datetime.now(UTC)
    notice = {
        "kind": "run-failed",
        "namespace": namespace,
        "pipeline": pipeline,
        "owner": owner,
        "workflow": workflow,
        "status": status,
        "failed_steps": failed,
        "at": at.isoformat(timespec="seconds"),
        "first_check": f"mlops status {workflow}  (node tree, artifact keys, exit codes)",
        "serving": "unchanged: promote never ran or left the previous revision serving",
    }
    artifacts.write_json(notice_out, notice)
    steps = failed_step_names(failed, workflow)
    labels = {"workflow": workflow, "status": status, "failed_steps": ",".join(steps)}
    delivered = deliver(RUN_FAILED, labels, namespace=namespace, pipeline=pipeline, at=at, step="notify-failure")
    return {
        "step": "notify-failure",
        "workflow": workflow,
        "status": status,
        "failed_steps": len(failed),
        "delivered": delivered,
    }
