"""`mlops dev`, `tenant`, `isolation-check`, `buckets`: the services on loopback, their tenants, the buckets."""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path
from typing import Any

from components.errors import ComponentError


def register(sub: Any, argv: list[str]) -> None:
    dev = sub.add_parser("dev", help="start, stop or show the platform services on loopback (PostgreSQL, ...)")
    dev.add_argument("action", choices=["up", "down", "status", "env"])
    dev.add_argument("--dir", help="data, logs and pid files (default: $MLOPS_SERVICES_DIR or $MLOPS_HOME/services)")
    dev.add_argument("--port-base", type=int, help="first port; services take base..base+24 (default 15400)")
    dev.add_argument("--services", help="comma-separated subset of postgres,pgbouncer,redis,s3,mlflow")
    dev.add_argument(
        "--tenancy", action="store_true", help="run MLflow's basic-auth app (NO_PERMISSIONS by default) for tenants"
    )
    dev.add_argument(
        "--monitoring",
        action="store_true",
        help="also Prometheus, Pushgateway and Alertmanager (Debian's), with the platform's rules and alert routes",
    )
    dev.add_argument("--alert-webhook", help="with --monitoring: where Alertmanager posts (default: nowhere)")
    dev.set_defaults(handler=_dev)

    tenant = sub.add_parser(
        "tenant",
        help="provision a tenant on the loopback services (S3, PostgreSQL, MLflow), or declare one for the cluster",
    )
    tenant.add_argument("action", choices=["add", "env", "list"])
    tenant.add_argument("name", nargs="?", default="")
    tenant.add_argument("--dir", help="the services folder (default: $MLOPS_SERVICES_DIR or $MLOPS_HOME/services)")
    tenant.add_argument("--port-base", type=int, help=argparse.SUPPRESS)
    cluster = tenant.add_argument_group("--cluster: declare it in manifests/tenants/tenants.yaml, then `make golden`")
    cluster.add_argument("--cluster", action="store_true", help="the cluster's tenant declaration, not the loopback")
    cluster.add_argument("--owner", default="", help="the team's alert address (its namespace's catch-all route)")
    cluster.add_argument("--gpu", action="store_true", help="may use the GPU nodes (restricted-scheduling)")
    cluster.add_argument("--cpu", help="quota requests.cpu (default 32)")
    cluster.add_argument("--memory", help="quota requests.memory (default 128Gi)")
    cluster.add_argument("--memory-limit", help="quota limits.memory (default 192Gi)")
    cluster.add_argument("--gpu-quota", type=int, help="quota requests.nvidia.com/gpu (default 4 with --gpu, else 0)")
    cluster.add_argument("--pods", type=int, help="quota pods (default 100)")
    cluster.add_argument("--manifests", help="the manifests folder (default: this checkout's manifests/)")
    tenant.set_defaults(handler=_tenant)

    isolation = sub.add_parser("isolation-check", help="try every path from one tenant into another's data")
    isolation.add_argument("--as", dest="as_", required=True, help="the curious tenant")
    isolation.add_argument("--target", required=True, help="the tenant whose data must stay out of reach")
    isolation.add_argument("--dir", help="the services folder (default: $MLOPS_SERVICES_DIR or $MLOPS_HOME/services)")
    isolation.add_argument("--port-base", type=int, help=argparse.SUPPRESS)
    isolation.set_defaults(handler=_isolation_check)

    buckets = sub.add_parser("buckets", help="create the platform buckets and their lifecycle (platform admins)")
    buckets.add_argument("action", choices=["ensure"])
    buckets.set_defaults(handler=_buckets)


def _stack(args: argparse.Namespace) -> Any:
    from devstack.stack import DEFAULT_PORT_BASE, Ports, Stack, default_root

    root = Path(args.dir) if args.dir else default_root()
    existing = Stack.load(root)
    tenancy = bool(getattr(args, "tenancy", False))
    if existing is not None:
        if tenancy and not existing.mlflow_auth:
            existing.mlflow_auth = True
        # another port base moves the stack, never regenerates its keys and passwords
        return existing if args.port_base is None else existing.moved_to(Ports.from_base(args.port_base))
    return Stack(root=root, ports=Ports.from_base(args.port_base or DEFAULT_PORT_BASE), mlflow_auth=tenancy)


def _dev(args: argparse.Namespace) -> int:
    from devstack.stack import SERVICES

    stack = _stack(args)
    services = tuple(args.services.split(",")) if args.services else SERVICES
    unknown = sorted(set(services) - set(SERVICES))
    if unknown:
        raise ComponentError("dev", f"unknown services {unknown}", f"choose from {list(SERVICES)}")
    if args.action == "up":
        print(f"platform services under {stack.root}")
        stack.up(services, echo=True)
        if args.monitoring:
            from pipelines.golden import MANIFESTS
            from pipelines.local import available_pipelines, declaration
            from pipelines.tenancy import loopback_alertmanager

            configs = [declaration(name).config() for name in available_pipelines()]
            stack.up_monitoring(loopback_alertmanager(configs, args.alert_webhook or "", MANIFESTS), echo=True)
        print(f'use them: eval "$(mlops dev env --dir {stack.root})"; then `mlops run fraud` runs on them')
    elif args.action == "down":
        stopped = stack.down(services)
        print(f"stopped: {', '.join(stopped) or 'nothing was running'}")
    elif args.action == "env":
        for key, value in stack.environment().items():
            print(f"export {key}={shlex.quote(value)}")
    else:
        rows = stack.status()
        for row in rows:
            state = "running" if row["running"] else "stopped"
            print(f"{row['service']:<10} {state:<8} pid {row['pid'] or '-':<8} {row['address']}  log {row['log']}")
        return 0 if all(row["running"] for row in rows if row["service"] in services) else 1
    return 0


def _cluster_tenant(args: argparse.Namespace) -> int:
    """`mlops tenant add|list --cluster`: the declaration every tenant's manifests are rendered from."""
    from pipelines import tenancy
    from pipelines.golden import MANIFESTS

    manifests = Path(args.manifests) if args.manifests else MANIFESTS
    if args.action == "list":
        for declared in tenancy.load(manifests).tenants:
            print(f"{declared.name}  owner {declared.owner}  gpu {'yes' if declared.gpu else 'no'}")
        return 0
    if args.action != "add" or not args.name:
        raise ComponentError(
            "tenant", "`--cluster` declares or lists tenants", "mlops tenant add NAME --cluster --owner EMAIL"
        )
    quota = {"cpu": args.cpu, "memory": args.memory, "memory_limit": args.memory_limit, "pods": args.pods}
    declared = tenancy.declare(args.name, args.owner, gpu=args.gpu, gpu_quota=args.gpu_quota, **quota)
    path = tenancy.add(manifests, declared)
    print(f"tenant {declared.name} declared in {path} (owner {declared.owner}, gpu {'yes' if declared.gpu else 'no'})")
    print("render its manifests and commit both: make golden && git add manifests/ (the golden check fails until then)")
    return 0


def _tenant(args: argparse.Namespace) -> int:
    from devstack.tenants import add_tenant, get_tenant, load_tenants, tenant_environment

    if args.cluster:
        return _cluster_tenant(args)
    stack = _stack(args)
    if args.action in ("add", "env") and not args.name:
        raise ComponentError("tenant", f"`mlops tenant {args.action}` needs a tenant name", "mlops tenant add fraud")
    if args.action == "add":
        tenant = add_tenant(stack, args.name)
        print(
            f"tenant {tenant.name}: S3 key {tenant.access_key} (prefix <bucket>/{tenant.name}/),"
            f" PostgreSQL role {tenant.name} (databases feast_{tenant.name} and offline_{tenant.name}),"
            f" MLflow user {tenant.name} (experiment {tenant.name})"
        )
        print(f'use it: eval "$(mlops tenant env {tenant.name} --dir {stack.root})"')
    elif args.action == "env":
        for key, value in tenant_environment(stack, get_tenant(stack, args.name)).items():
            print(f"export {key}={shlex.quote(value)}")
    else:
        for name in load_tenants(stack):
            print(name)
    return 0


def _isolation_check(args: argparse.Namespace) -> int:
    from devstack.tenants import get_tenant
    from mlops.isolation import DENIED, OK, check

    stack = _stack(args)
    attempts = check(stack, get_tenant(stack, args.as_), get_tenant(stack, args.target))
    width = max(len(attempt.path) for attempt in attempts)
    print(f"{'path':<{width}}  expected  observed  detail")
    for attempt in attempts:
        print(f"{attempt.path:<{width}}  {attempt.expected:<8}  {attempt.observed:<8}  {attempt.detail}")
    bad = [attempt for attempt in attempts if attempt.observed != attempt.expected]
    denied = sum(attempt.observed == DENIED for attempt in attempts)
    own = sum(attempt.observed == OK for attempt in attempts)
    print(
        f"{len(attempts)} paths from {args.as_} into {args.target}: {own} own controls OK, {denied} denied,"
        f" {len(bad)} not as expected"
    )
    return 1 if bad else 0


def _buckets(args: argparse.Namespace) -> int:
    from components import artifacts, buckets

    ensured = buckets.ensure(artifacts.s3_client())
    print(json.dumps({"buckets": ensured, "lifecycle": buckets.LIFECYCLE["Rules"]}))
    return 0
