"""make bench (cluster part): each step as a pod vs the same step under kfp.local, on the same services.

Starts its own PostgreSQL, PgBouncer, Redis, S3 and MLflow on free ports (or, with `--stack`, uses a
running `mlops dev up --tenancy` stack's: benchmarks/bench_stack.py), builds the component image
(images/build.sh), then runs the fraud pipeline twice on the same data, under names of its own
(model and experiment fraud-bench, Feast projects bench_argo and bench_kfp, its own raw data key):
1. the compiled WorkflowTemplate through the Argo controller stand-in (tests/integration/
   argo_controller_stand_in.py), as tenant fraud: a fresh podman container per step, artifacts
   through S3;
2. `mlops run fraud` through kfp.local's SubprocessRunner, in this environment.
Per step it prints both times and their ratio: the difference is the container's start, the
imports in a fresh interpreter, and the artifacts' trip through S3, the figure to keep low.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_stack import add_stack_argument, bench_stack  # noqa: E402

from devstack.monitoring import SERVICES as MONITORING  # noqa: E402
from devstack.stack import SERVICES, Stack  # noqa: E402

IMAGE = "localhost/private-mlops/component:bench"
NAMES = {"register.model_name": "fraud-bench", "register.experiment": "fraud-bench"}
"""Its own model and experiment in tenant fraud's namespace: on a running stack (--stack) the
team's fraud-detector gets no versions from a benchmark."""
PROGRESS = re.compile(r"^\s+(ok|FAIL)\s+(\w+)\s+([\d.]+)s")


def kfp_local_times(stack: Stack, rows: int, home: Path) -> tuple[dict[str, float], float]:
    env = {**os.environ, **stack.environment(), "MLOPS_HOME": str(home)}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "mlops.cli", "run", "fraud", "--rows", str(rows),
         "--set", "materialize.project=bench_kfp", "--no-cache",
         *(part for key, value in NAMES.items() for part in ("--set", f"{key}={value}"))],
        cwd=REPO, env=env, capture_output=True, text=True, check=False, timeout=3600,
    )  # fmt: skip
    total = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"mlops run failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    times = {m.group(2): float(m.group(3)) for line in done.stdout.splitlines() if (m := PROGRESS.match(line))}
    return times, total


def harness_times(stack: Stack, rows: int, image: str, data: Path) -> tuple[dict[str, float], float]:
    from devstack.tenants import add_tenant
    from pipelines.argo import render
    from pipelines.fraud import pipeline as fraud
    from pipelines.fraud.data import generate
    from tests.integration.argo_controller_stand_in import ArgoControllerStandIn
    from tests.integration.fidelity_tenant import (
        RAW,
        TENANT,
        artifact_repository,
        loopback_configmap,
        tenant_secrets,
    )

    tenant = add_tenant(stack, TENANT)
    cfg = fraud.DECLARATION.config().with_overrides({"materialize.project": "bench_argo", **NAMES})
    raw = RAW.replace("latest.parquet", f"bench-{rows}.parquet")  # not the tenant's own extract
    bucket, _, key = raw.removeprefix("s3://").partition("/")
    generate(rows, cfg.data.seed).to_parquet(data, index=False)
    stack.s3_client().upload_file(str(data), bucket, key)
    harness = ArgoControllerStandIn(
        template=render(fraud.DECLARATION, cfg)["WorkflowTemplate"],
        images={fraud.DECLARATION.spec.image: image},
        configmaps={"mlops-platform": loopback_configmap(stack, tenant)},
        secrets=tenant_secrets(tenant),
        artifact_repository=artifact_repository(TENANT),
        s3_client=stack.s3_client(tenant.access_key, tenant.secret_key),
        namespace=TENANT,
    )
    started = time.perf_counter()
    run = harness.run({"raw-data": raw})
    total = time.perf_counter() - started
    if run.phase != "Succeeded":
        failed = [n for n in run.nodes.values() if n.phase in ("Failed", "Error")]
        raise SystemExit(f"fidelity run failed: {failed[0].name}: {failed[0].message}")
    return {name: sum(a.seconds for a in node.attempts) for name, node in run.nodes.items() if node.attempts}, total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--image", help="an already built component image (default: build one)")
    add_stack_argument(parser)
    args = parser.parse_args(argv)

    image = args.image or IMAGE
    if not args.image:
        print("building the component image (images/build.sh)", flush=True)
        subprocess.run(["bash", "images/build.sh", "component", IMAGE], cwd=REPO, check=True, capture_output=True)
    root = Path(tempfile.mkdtemp(prefix="mlops-bench-fidelity-"))
    try:
        with bench_stack(args, SERVICES, "mlops-bench-fidelity-services-", echo=True, mlflow_auth=True) as stack:
            monitoring = stack.monitoring_services()
            running = stack.monitoring and all(map(monitoring.running, MONITORING))
            if not running:  # the notices' Pushgateway (Alertmanager routes nowhere)
                stack.up_monitoring({"route": {"receiver": "none"}, "receivers": [{"name": "none"}]})
            try:
                argo, argo_total = harness_times(stack, args.rows, image, root / "raw.parquet")
                local, local_total = kfp_local_times(stack, args.rows, root / "home")
            finally:
                if not running:
                    monitoring.down()
                    stack.monitoring = False
                    stack.save()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"\neach step as a pod (Argo harness, podman) vs kfp.local, {args.rows:,} rows, same services")
    print(f"  {'step':<12} {'pod':>8} {'kfp.local':>10} {'ratio':>7} {'pod - local':>12}")
    for step in argo:
        if step in local:
            print(f"  {step:<12} {argo[step]:7.1f}s {local[step]:9.1f}s {argo[step] / local[step]:6.2f}x "
                  f"{argo[step] - local[step]:+11.1f}s")  # fmt: skip
    print(f"  {'whole run':<12} {argo_total:7.1f}s {local_total:9.1f}s {argo_total / local_total:6.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
