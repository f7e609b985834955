"""The platform's services on loopback: what `mlops dev up|down|status` and the test fixtures run.

Each service is started from its real binary (Debian's PostgreSQL 15, PgBouncer and Redis 7,
SeaweedFS's `weed` for S3, `mlflow server`) with the settings the platform uses in production:
PgBouncer in transaction pooling in front of PostgreSQL, Redis without snapshots and with a
memory limit and an evicting policy, MLflow with its backend through PgBouncer and artifacts
written by clients straight to S3 (direct mode, as in manifests/base/mlflow).

This module describes a stack: its ports, folders, state file, addresses, credentials and the
platform settings on them, and starts or stops its services in dependency order through LAUNCHERS,
one module per service (devstack.postgres, devstack.pgbouncer, devstack.redis_server,
devstack.seaweedfs, devstack.mlflow_server), beside devstack.triton and devstack.monitoring.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from components.errors import ComponentError
from components.platform.buckets import BUCKETS
from components.platform.settings import PlatformSettings, environment
from devstack import mlflow_server, pgbouncer, postgres, process, redis_server, seaweedfs, tenant_pgbouncer
from devstack.mlflow_server import MLFLOW_ADMIN
from devstack.postgres import DATABASES, DB_USER

__all__ = [
    "BUCKETS",
    "DATABASES",
    "DB_USER",
    "DEFAULT_PORT_BASE",
    "LAUNCHERS",
    "LEGACY_DB_PASSWORD",
    "MLFLOW_ADMIN",
    "PORT_SPAN",
    "SERVICES",
    "Ports",
    "Stack",
    "default_root",
]

LAUNCHERS: dict[str, Callable[[Stack], float]] = {
    # service -> its launcher (seconds to ready), in dependency order: up starts them in this order,
    # down stops them in the reverse one.
    "postgres": postgres.start_postgres,
    "pgbouncer": pgbouncer.start_pgbouncer,
    "redis": redis_server.start_redis,
    "s3": seaweedfs.start_s3,
    "mlflow": mlflow_server.start_mlflow,
}
SERVICES = tuple(LAUNCHERS)
DEFAULT_PORT_BASE = 15400
PORT_SPAN = 24
# What stacks started before the secrets were generated per stack used; kept for loading them.
LEGACY_DB_PASSWORD = "mlops-dev"


@dataclass(frozen=True)
class Ports:
    """Every port a stack listens on, derived from one base so two stacks never collide."""

    postgres: int
    pgbouncer: int
    redis: int
    s3: int
    mlflow: int
    weed_first: int  # SeaweedFS's internal servers (master, volume, filer, admin) from here on

    @classmethod
    def from_base(cls, base: int) -> Ports:
        return cls(base, base + 1, base + 2, base + 3, base + 4, base + 10)

    def weed(self, offset: int) -> int:
        return self.weed_first + offset


@dataclass
class Stack:
    """One set of services under `root`, described by root/stack.json once started."""

    root: Path
    ports: Ports = field(default_factory=lambda: Ports.from_base(DEFAULT_PORT_BASE))
    # Generated per stack and kept in stack.json (0600): a key that every checkout knows is no key.
    access_key: str = field(default_factory=lambda: "admin-" + secrets.token_hex(6))
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    db_password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    # The platform's user on each tenant's Redis (the tenant's own user may not administer it).
    redis_admin_password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    # KServe's storage initializer reads models with this key: Read and List on the models bucket only.
    puller_access_key: str = field(default_factory=lambda: "puller-" + secrets.token_hex(6))
    puller_secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    max_connections: int = 100
    pool_size: int = 20
    redis_maxmemory: str = "512mb"
    mlflow_workers: int = 1
    # The tracking server's database connections through PgBouncer (the platform's way); False
    # only to show the connection storm a parallel sweep makes without it (tests/integration).
    mlflow_through_pgbouncer: bool = True
    # The basic-auth app: users, per-experiment and per-model permissions (multi-tenant stacks).
    mlflow_auth: bool = False
    mlflow_default_permission: str = "NO_PERMISSIONS"
    # Give the tracking server the admin S3 key, as the platform once did: only to prove that
    # isolation-check catches the confused deputy it makes (tests/integration/test_tenancy.py).
    mlflow_server_s3_key: bool = False
    # Tenants create MLflow names only in their own namespace (components.platform.tracking_auth); False only
    # to show the name squatting MLflow's auth app allows.
    mlflow_tenant_names: bool = True
    # SeaweedFS in a network namespace of its own, S3 published through a Unix socket
    # (devstack.private_network); False only to show what the side doors give away.
    s3_private_network: bool = True
    admin_password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    # Prometheus, Pushgateway and Alertmanager beside the stack (`mlops dev up --monitoring`), on
    # ports base+5..base+7 (devstack.monitoring).
    monitoring: bool = False

    # --- files -------------------------------------------------------------------------------
    def folder(self, service: str) -> Path:
        return self.root / service

    def pid_file(self, service: str) -> Path:
        return self.root / "run" / f"{service}.pid"

    def log(self, service: str) -> Path:
        return self.root / "logs" / f"{service}.log"

    @property
    def state_file(self) -> Path:
        return self.root / "stack.json"

    def save(self) -> None:
        state = {k: v for k, v in asdict(self).items() if k != "root"}
        process.write_private(self.state_file, json.dumps(state, indent=2))
        # When we are root the service user must still reach its own folders below: traverse only.
        self.root.chmod(0o711 if process.running_as_root() else 0o700)

    @classmethod
    def load(cls, root: Path) -> Stack | None:
        try:
            state = json.loads((root / "stack.json").read_text())
        except (OSError, ValueError):
            return None
        state["ports"] = Ports(**state["ports"])
        state.setdefault("db_password", LEGACY_DB_PASSWORD)
        return cls(root=root, **state)

    def moved_to(self, ports: Ports) -> Stack:
        """The same stack (data, keys, passwords) on other ports; only while nothing runs."""
        running = [service for service in SERVICES if self.running(service)]
        if running and ports != self.ports:
            raise ComponentError(
                "dev",
                f"the stack under {self.root} is running on ports from {self.ports.postgres} ({', '.join(running)})",
                "mlops dev down first, then mlops dev up --port-base N",
            )
        return replace(self, ports=ports)

    # --- addresses ---------------------------------------------------------------------------
    def database_url(self, database: str, *, through_pgbouncer: bool = True, driver: str = "postgresql+psycopg") -> str:
        port = self.ports.pgbouncer if through_pgbouncer else self.ports.postgres
        return f"{driver}://{DB_USER}:{self.db_password}@127.0.0.1:{port}/{database}"

    @property
    def s3_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports.s3}"

    @property
    def tracking_uri(self) -> str:
        return f"http://127.0.0.1:{self.ports.mlflow}"

    def settings(self) -> PlatformSettings:
        """The platform profile on these services: what a pod's ConfigMap says on a cluster."""
        return PlatformSettings(
            profile="platform",
            tracking_uri=self.tracking_uri,
            mlflow_artifact_root="s3://mlflow-artifacts",
            s3_endpoint=self.s3_endpoint,
            feast_registry_url=f"postgresql+psycopg://{DB_USER}@127.0.0.1:{self.ports.pgbouncer}/feast",
            feast_redis=f"127.0.0.1:{self.ports.redis}",
            offline_store_uri="s3://feast-offline",
            serving_root="s3://models",
            pushgateway_url=self.monitoring_services().url("pushgateway") if self.monitoring else "",
        )

    def monitoring_services(self, alert_routing: dict[str, Any] | None = None, scrape: Any = None) -> Any:
        """This stack's Prometheus, Pushgateway and Alertmanager (devstack.monitoring.Monitoring)."""
        from devstack.monitoring import Monitoring

        services = Monitoring(root=self.root / "monitoring", port_base=self.ports.postgres + 5, tenant_scrape=scrape)
        if alert_routing is not None:
            services.alert_routing = alert_routing
        return services

    def up_monitoring(self, routing: dict[str, Any], scrape: Any = None, *, echo: bool = False) -> dict[str, float]:
        """Start them: these routes, the gateway scraped by `scrape` (Monitoring.tenant_scrape; None: not at all)."""
        self.monitoring = True
        self.root.mkdir(parents=True, exist_ok=True)
        self.save()
        services = self.monitoring_services(routing, scrape)
        timings: dict[str, float] = services.up()
        if echo:
            for service, seconds in timings.items():
                print(f"  {service:<12} up in {seconds:5.1f} s  {services.url(service)}", flush=True)
        return timings

    def credentials(self) -> dict[str, str]:
        """What a pod's Secrets hold on a cluster (components.platform.settings.SECRET_VARIABLES)."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "MLOPS_FEAST_REGISTRY_PASSWORD": self.db_password,
            **(
                {"MLFLOW_TRACKING_USERNAME": MLFLOW_ADMIN, "MLFLOW_TRACKING_PASSWORD": self.admin_password}
                if self.mlflow_auth
                else {}
            ),
        }

    def environment(self) -> dict[str, str]:
        """The platform profile: what a client needs to run the pipeline on these services."""
        return {**environment(self.settings()), **self.credentials()}

    # --- lifecycle ---------------------------------------------------------------------------
    def up(self, services: tuple[str, ...] = SERVICES, *, echo: bool = False) -> dict[str, float]:
        """Start what is not running yet, in dependency order; returns seconds to ready per service."""
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "run").mkdir(exist_ok=True)
        (self.root / "logs").mkdir(exist_ok=True)
        self.save()
        timings: dict[str, float] = {}
        for service in SERVICES:
            if service not in services:
                continue
            if self.running(service):
                timings[service] = 0.0
                continue
            timings[service] = LAUNCHERS[service](self)
            if echo:
                print(f"  {service:<10} up in {timings[service]:5.1f} s  {self.address(service)}", flush=True)
        if "redis" in services:
            redis_server.start_tenant_redis(self)
        return timings | (tenant_pgbouncer.start_all(self) if "pgbouncer" in services else {})

    def down(self, services: tuple[str, ...] = SERVICES) -> list[str]:
        """Stop in reverse order by pid; PostgreSQL gets SIGINT (fast shutdown), weed a short grace."""
        stopped = []
        if self.monitoring and set(services) == set(SERVICES):
            stopped += self.monitoring_services().down()
        stopped += tenant_pgbouncer.stop_all(self) if "pgbouncer" in services else []  # the tenants' own
        for config in self.tenant_redis_configs() if "redis" in services else []:
            if process.stop(self.pid_file(config.parent.name)):
                stopped.append(config.parent.name)
        for service in reversed(SERVICES):
            if service not in services:
                continue
            first = signal.SIGINT if service == "postgres" else signal.SIGTERM
            grace = 3.0 if service == "s3" else 20.0  # weed ignores SIGTERM for a long time
            if process.stop(self.pid_file(service), first, grace):
                stopped.append(service)
        return stopped

    def running(self, service: str) -> bool:
        return process.alive(process.read_pid(self.pid_file(service)))

    def address(self, service: str) -> str:
        return {
            "postgres": f"127.0.0.1:{self.ports.postgres}",
            "pgbouncer": f"127.0.0.1:{self.ports.pgbouncer} (transaction pooling)",
            "redis": f"127.0.0.1:{self.ports.redis}",
            "s3": self.s3_endpoint,
            "mlflow": self.tracking_uri,
        }[service]

    def status(self) -> list[dict[str, Any]]:
        return [
            {
                "service": service,
                "running": self.running(service),
                "pid": process.read_pid(self.pid_file(service)),
                "address": self.address(service),
                "log": str(self.log(service)),
            }
            for service in SERVICES
        ]

    # --- the services' own clients and files --------------------------------------------------
    def tenant_redis_configs(self) -> list[Path]:
        """The tenants' own Redis instances: `<root>/redis-<tenant>/redis.conf`, written at tenant add."""
        return sorted(self.root.glob("redis-*/redis.conf"))

    def s3_client(self, access_key: str | None = None, secret_key: str | None = None, *, service: str = "s3") -> Any:
        """A client of the S3 port (`service="iam"`: SeaweedFS's IAM API on the same port)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            service,
            endpoint_url=self.s3_endpoint,
            aws_access_key_id=access_key or self.access_key,
            aws_secret_access_key=secret_key or self.secret_key,
            region_name="us-east-1",
            config=Config(signature_version="s3v4", retries={"max_attempts": 1}, connect_timeout=2, read_timeout=10),
        )

    def s3_identities(self) -> list[dict[str, Any]]:
        """The platform's own S3 identities: the admin, and the read-only model puller."""
        return [
            {
                "name": "platform-admin",
                "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            },
            {
                "name": "model-puller",
                "credentials": [{"accessKey": self.puller_access_key, "secretKey": self.puller_secret_key}],
                "actions": ["Read:models", "List:models"],
            },
        ]


def default_root() -> Path:
    from components.environment import mlops_home

    return Path(os.environ.get("MLOPS_SERVICES_DIR") or mlops_home() / "services")
