"""`mlops canary-analysis`: each live canary of a namespace judged once its window has passed (the hourly sweep).

The command the tenant's hourly CronWorkflow runs inside the cluster (pipelines/canary_cron.py); the
sweep itself is mlops/canary_sweep.py, each verdict mlops/canary.py's. On a laptop it takes the same
targets as `mlops promote`: a kubeconfig, --out (GitOps) or --dry-run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from components.errors import ComponentError

__all__ = ["namespace_of", "register"]

STEP = "promote"


def register(sub: Any, argv: list[str]) -> None:
    analysis = sub.add_parser(
        "canary-analysis",
        help="judge every live canary of the namespace once its promote.canary_window has passed, as "
        "`mlops promote <model> --analyze` would, and apply each verdict (the tenant's hourly CronWorkflow)",
    )
    analysis.add_argument(
        "--namespace",
        help="whose canaries (default: $MLOPS_NAMESPACE, else in a pod its ServiceAccount's namespace; the tenant's "
        "CronWorkflow passes its own)",
    )
    analysis.add_argument("--model", action="append", help="only this model (repeatable; default: every one)")
    analysis.add_argument(
        "--admission",
        choices=["local", "cluster"],
        help="local: the platform's Gatekeeper policies on the OPA engine before anything is applied (the default "
        "with a policy folder); cluster: the API server's dryRun=All, which runs the installed Gatekeeper, first "
        "(the default inside a pod, whose image ships no policy folder)",
    )
    analysis.add_argument(
        "--prometheus",
        help="each version's error rate and p99 from this Prometheus (default: promote.prometheus_url, "
        "else the decision log's request outcomes)",
    )
    analysis.add_argument("--policies", help="--admission local: the policy folder (default: manifests/policies)")
    analysis.add_argument("--kubeconfig", help="default: $KUBECONFIG, then ~/.kube/config, then the pod's account")
    analysis.add_argument("--context", help="kubeconfig context (default: the current one)")
    analysis.add_argument("--out", help="GitOps: write each verdict's manifests under DIR/<namespace>/")
    analysis.add_argument("--dry-run", action="store_true", help="judge and print; apply and record nothing")
    analysis.add_argument("--json", action="store_true", help="one JSON object per model")
    analysis.set_defaults(handler=_canary_analysis)


def _policies(args: argparse.Namespace, in_pod: bool) -> Path | None:
    """The policy folder to check against before applying, or None: the cluster's admission decides."""
    from mlops import rollout

    folder = Path(args.policies) if args.policies else rollout.POLICY_DIR
    admission = args.admission or ("cluster" if in_pod and not folder.is_dir() else "local")
    if admission == "cluster":
        return None
    if not folder.is_dir():
        raise ComponentError(
            STEP, f"no policy folder at {folder}", "pass --policies DIR, or --admission cluster on a cluster"
        )
    return folder


def namespace_of(
    args: argparse.Namespace, environ: Mapping[str, str] | None = None, namespace_file: Path | None = None
) -> str:
    """Whose canaries: --namespace, else $MLOPS_NAMESPACE, else the pod's ServiceAccount namespace (a
    pod of the platform's own CronWorkflow has one; its command also names it)."""
    from components.serving.decision_record import NAMESPACE_VARIABLE
    from pipelines.caching import NAMESPACE_FILE

    env = os.environ if environ is None else environ
    found = args.namespace or env.get(NAMESPACE_VARIABLE, "").strip()
    account = NAMESPACE_FILE if namespace_file is None else namespace_file
    if not found and account.is_file():
        found = account.read_text().strip()
    if not found:
        raise ComponentError(
            STEP,
            "no namespace: the sweep judges one namespace's canaries",
            f"pass --namespace NAME or set {NAMESPACE_VARIABLE} (in a pod, its ServiceAccount's namespace is used)",
        )
    return found


def _canary_analysis(args: argparse.Namespace) -> int:
    from mlops import canary_sweep
    from mlops.cli.serving import pipeline_request, target_of

    namespace = namespace_of(args)
    target = target_of(args, in_cluster=True)
    in_pod = target.cluster is not None and target.cluster.context == "in-cluster"
    policies = _policies(args, in_pod)
    if policies is None and target.kind != "kubernetes":
        raise ComponentError(STEP, "--admission cluster needs a cluster to ask",
                             "drop --out/--dry-run, or use --admission local")  # fmt: skip

    def request_for(cfg: Any, model: str) -> Any:
        return pipeline_request(cfg, model, action="promote", policies=policies)

    findings = canary_sweep.sweep(namespace, target, request_for, models=args.model, prometheus=args.prometheus)
    for finding in findings:
        if args.json:
            print(json.dumps(asdict(finding), sort_keys=True))
        else:
            out = sys.stderr if finding.status == "failed" else sys.stdout
            print(f"{finding.model}: {finding.status}: {finding.detail}", file=out)
    if not findings:
        print(f"{namespace}: no registered model to judge", file=sys.stderr)
    return canary_sweep.exit_code(findings)
