"""`mlops dev`, `tenant`, `isolation-check`, `buckets`: the services on loopback, their tenants, the buckets.

`mlops dev backup` takes a base backup of the stack's PostgreSQL to its S3 with barman-cloud (turning
WAL archiving on first); `mlops dev restore [--to TIME]` replaces its data directory from them, to the
latest archived WAL or to a point in time (devstack/backup.py, docs/recovery.md). `mlops dev upgrade`
migrates the registry's schema to the pinned MLflow's: backed up first, verified after, restored to
the state before when the migration fails (devstack/upgrade.py, docs/recovery.md, Upgrades).
"""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components.errors import ComponentError

if TYPE_CHECKING:
    from devstack.stack import Stack


def register(sub: Any, argv: list[str]) -> None:
    dev = sub.add_parser("dev", help="start, stop or show the platform services on loopback (PostgreSQL, ...)")
    dev.add_argument("action", choices=["up", "down", "status", "env", "backup", "restore", "upgrade"])
    dev.add_argument("--dir", help="data, logs and pid files (default: $MLOPS_SERVICES_DIR or $MLOPS_HOME/services)")
    dev.add_argument("--port-base", type=int, help="first port; services take base..base+24 (default 15400)")
    dev.add_argument("--services", help="comma-separated subset of postgres,pgbouncer,redis,s3,mlflow")
    dev.add_argument(
        "--tenancy", action="store_true", help="run MLflow's basic-auth app (NO_PERMISSIONS by default) for tenants"
    )
    dev.add_argument(
        "--monitoring",
        action="store_true",
        help="also Prometheus, Pushgateway and Alertmanager (Debian's), with the platform's rules and alert routes;"
        " with --tenancy one Pushgateway per tenant behind the tenant's password, scraped as the cluster does",
    )
    dev.add_argument("--alert-webhook", help="with --monitoring: where Alertmanager posts (default: nowhere)")
    recovery = dev.add_argument_group("backup and restore (barman-cloud to the stack's S3, bucket postgres-backups)")
    recovery.add_argument(
        "--to", metavar="TIME", help="restore: the point in time, ISO 8601 with its zone (default: the latest archived)"
    )
    recovery.add_argument("--list", action="store_true", help="backup: list the base backups instead of taking one")
    recovery.add_argument(
        "--archive-timeout", type=int, metavar="SECONDS", help="backup: archive WAL at least this often (default 60)"
    )
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
    isolation.add_argument(
        "--surface",
        action="append",
        dest="surfaces",
        help="try only this surface (repeatable; default: every running one): s3, online-store, tracking, ...",
    )
    isolation.set_defaults(handler=_isolation_check)

    buckets = sub.add_parser(
        "buckets", help="create the platform buckets, their lifecycle and the registry's object lock (platform admins)"
    )
    buckets.add_argument("action", choices=["ensure"])
    buckets.add_argument(
        "--lock-existing",
        action="store_true",
        help="also give the registry buckets' versions written before the lock the retention (once, after upgrading)",
    )
    buckets.set_defaults(handler=_buckets)


def _stack(args: argparse.Namespace) -> Stack:
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
            routing = loopback_alertmanager(configs, args.alert_webhook or "", MANIFESTS)
            if stack.mlflow_auth:  # --tenancy: the cluster's arrangement, a Pushgateway per tenant
                _up_tenant_monitoring(stack, routing)
            else:  # one team's laptop: one gateway, scraped as the cluster scrapes (issue 29)
                from pipelines.tenant_monitoring import prometheus_scrape_config

                stack.up_monitoring(routing, prometheus_scrape_config, echo=True)
        print(f'use them: eval "$(mlops dev env --dir {stack.root})"; then `mlops run fraud` runs on them')
    elif args.action == "down":
        stopped = stack.down(services)
        if set(services) == set(SERVICES):
            from devstack import tenant_monitoring

            stopped += tenant_monitoring.down(stack)
        print(f"stopped: {', '.join(stopped) or 'nothing was running'}")
    elif args.action in ("backup", "restore"):
        return _backup_or_restore(stack, args)
    elif args.action == "upgrade":
        return _upgrade(stack)
    elif args.action == "env":
        for key, value in stack.environment().items():
            print(f"export {key}={shlex.quote(value)}")
    else:
        from devstack import tenant_pgbouncer

        # each tenant's own PgBouncer belongs to the pgbouncer service
        tenant_rows = tenant_pgbouncer.rows(stack) if "pgbouncer" in services else []
        rows = stack.status() + tenant_rows
        for row in rows:
            state = "running" if row["running"] else "stopped"
            print(f"{row['service']:<10} {state:<8} pid {row['pid'] or '-':<8} {row['address']}  log {row['log']}")
        return 0 if all(row["running"] for row in rows if row["service"] in services or row in tenant_rows) else 1
    return 0


def _backup_or_restore(stack: Stack, args: argparse.Namespace) -> int:
    import datetime as dt

    from devstack import backup

    if args.action == "restore":
        try:
            target = dt.datetime.fromisoformat(args.to.replace("Z", "+00:00")) if args.to else None
        except ValueError as error:
            raise ComponentError(
                "dev", f"--to {args.to!r} is not an ISO 8601 time", "e.g. 2026-12-05T09:30Z"
            ) from error
        restored = backup.restore(stack, target=target)
        print(f"restored from base backup {restored.backup_id} to {args.to or 'the latest archived WAL'}"
              f" in {restored.seconds:.1f} s")  # fmt: skip
        if restored.set_aside is not None:
            print(f"the replaced data directory is {restored.set_aside} (delete it when satisfied)")
        return 0
    if args.list:
        for found in backup.backups(stack):
            print(f"{found.backup_id}  ended {found.end_time.isoformat()}")
        return 0
    if args.archive_timeout is not None:
        backup.enable_archiving(stack, archive_timeout=args.archive_timeout)
    taken = backup.base_backup(stack)
    print(f"base backup {taken.backup_id} ended {taken.end_time.isoformat()} ({taken.seconds:.1f} s)")
    return 0


def _upgrade(stack: Stack) -> int:
    from devstack.upgrade import upgrade_registry

    done = upgrade_registry(stack)
    if done.from_revision == done.to_revision:
        print(f"registry schema already at MLflow's head {done.to_revision}: nothing to migrate")
        return 0
    print(f"registry schema {done.from_revision} -> {done.to_revision} in {done.seconds:.1f} s"
          f" (base backup {done.backup_id}, restore point {done.restore_point})")  # fmt: skip
    for revision in done.revisions:
        print(f"  applied {revision}")
    kept = ", ".join(f"{contents.count} {name}" for name, contents in done.contents.items())
    print(f"verified, equal before and after: {kept}")
    return 0


def _up_tenant_monitoring(stack: Stack, routing: dict[str, Any]) -> None:
    """A Pushgateway for each declared tenant (manifests/tenants/tenants.yaml, when this checkout
    has it) and each tenant added on this stack, scraped with pipelines.tenant_monitoring's rules."""
    from devstack import tenant_monitoring
    from devstack.tenants import load_tenants
    from pipelines.golden import MANIFESTS
    from pipelines.tenancy import TENANTS_FILE, load
    from pipelines.tenant_monitoring import prometheus_scrape_config

    declared = [t.name for t in load(MANIFESTS).tenants] if (MANIFESTS / "tenants" / TENANTS_FILE).is_file() else []
    names = tuple(dict.fromkeys([*declared, *load_tenants(stack)]))
    tenant_monitoring.up(stack, names, prometheus_scrape_config, routing, echo=True)
    print(f'  each tenant pushes to its own: eval "$(mlops tenant env NAME --dir {stack.root})"')


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
    from devstack import tenant_monitoring
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
            f" PostgreSQL role {tenant.name} (databases feast_{tenant.name} and offline_{tenant.name};"
            f" its own PgBouncer 127.0.0.1:{tenant.pgbouncer_port}),"
            f" MLflow user {tenant.name} (experiment {tenant.name})"
        )
        from pipelines.tenant_monitoring import prometheus_scrape_config

        gateway = tenant_monitoring.add(stack, tenant.name, prometheus_scrape_config)
        if gateway is not None:
            print(
                f"tenant {tenant.name}: its own Pushgateway {gateway.url} (user {tenant.name}),"
                f" scraped as namespace {tenant.name}"
            )
        print(f'use it: eval "$(mlops tenant env {tenant.name} --dir {stack.root})"')
    elif args.action == "env":
        own = tenant_environment(stack, get_tenant(stack, args.name)) | tenant_monitoring.environment(stack, args.name)
        for key, value in own.items():
            print(f"export {key}={shlex.quote(value)}")
    else:
        for name in load_tenants(stack):
            print(name)
    return 0


def _isolation_check(args: argparse.Namespace) -> int:
    from devstack.tenants import get_tenant
    from mlops.isolation import DENIED, OK, SURFACES, check, not_tried

    known = [surface.name for surface in SURFACES]
    unknown = sorted(set(args.surfaces or ()) - set(known))
    if unknown:
        raise ComponentError("isolation-check", f"unknown surface(s) {unknown}", f"choose from {', '.join(known)}")
    stack = _stack(args)
    attempts = check(stack, get_tenant(stack, args.as_), get_tenant(stack, args.target), args.surfaces)
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
    for surface, reason in not_tried(stack, args.surfaces).items():
        print(f"not tried: {surface} ({reason})")
    return 1 if bad else 0


def _buckets(args: argparse.Namespace) -> int:
    from components import artifacts
    from components.platform import buckets, immutable

    client = artifacts.s3_client()
    ensured = buckets.ensure(client)
    locked = {bucket: immutable.OBJECT_LOCK for bucket in ensured if bucket in immutable.IMMUTABLE_BUCKETS}
    printed: dict[str, object] = {"buckets": ensured, "lifecycle": buckets.LIFECYCLE["Rules"], "object_lock": locked}
    if args.lock_existing:
        existing = {bucket: immutable.lock_existing(client, bucket) for bucket in locked}
        printed["locked_existing"] = {bucket: count for bucket, (count, _) in existing.items()}
        printed["not_locked"] = {bucket: keys for bucket, (_, keys) in existing.items() if keys}
    print(json.dumps(printed))
    return 0
