"""make bench (cluster part): each step as a pod vs the same step under kfp.local, on the same services.

Starts its own PostgreSQL, PgBouncer, Redis, S3 and MLflow on free ports, builds the component
image (images/build.sh), then runs the fraud pipeline twice on the same data:
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

from devstack import process  # noqa: E402
from devstack.stack import PORT_SPAN, Ports, Stack  # noqa: E402

IMAGE = "localhost/private-mlops/component:bench"
PROGRESS = re.compile(r"^\s+(ok|FAIL)\s+(\w+)\s+([\d.]+)s")


def kfp_local_times(stack: Stack, rows: int, home: Path) -> tuple[dict[str, float], float]:
    env = {**os.environ, **stack.environment(), "MLOPS_HOME": str(home)}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "mlops.cli", "run", "fraud", "--rows", str(rows),
         "--set", "materialize.project=bench_kfp", "--no-cache"],
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
    cfg = fraud.DECLARATION.config().with_overrides({"materialize.project": "bench_argo"})
    bucket, _, key = RAW.removeprefix("s3://").partition("/")
    generate(rows, cfg.data.seed).to_parquet(data, index=False)
    stack.s3_client().upload_file(str(data), bucket, key)
    stack.up_monitoring({"route": {"receiver": "none"}, "receivers": [{"name": "none"}]})
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
    run = harness.run({"raw-data": RAW})
    total = time.perf_counter() - started
    if run.phase != "Succeeded":
        failed = [n for n in run.nodes.values() if n.phase in ("Failed", "Error")]
        raise SystemExit(f"fidelity run failed: {failed[0].name}: {failed[0].message}")
    return {name: sum(a.seconds for a in node.attempts) for name, node in run.nodes.items() if node.attempts}, total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--image", help="an already built component image (default: build one)")
    args = parser.parse_args(argv)

    image = args.image or IMAGE
    if not args.image:
        print("building the component image (images/build.sh)", flush=True)
        subprocess.run(["bash", "images/build.sh", "component", IMAGE], cwd=REPO, check=True, capture_output=True)
    root = Path(tempfile.mkdtemp(prefix="mlops-bench-fidelity-"))
    root.chmod(0o755)
    stack = Stack(root=root, ports=Ports.from_base(process.free_port_base(PORT_SPAN)), mlflow_auth=True)
    try:
        stack.up(echo=True)
        argo, argo_total = harness_times(stack, args.rows, image, root / "raw.parquet")
        local, local_total = kfp_local_times(stack, args.rows, root / "home")
    finally:
        stack.monitoring_services().down()
        stack.down()
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
