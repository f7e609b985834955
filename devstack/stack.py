"""The platform's services on loopback: what `mlops dev up|down|status` and the test fixtures run.

Each service is started from its real binary (Debian's PostgreSQL 15, PgBouncer and Redis 7,
SeaweedFS's `weed` for S3, `mlflow server`) with the settings the platform uses in production:
PgBouncer in transaction pooling in front of PostgreSQL, Redis without snapshots and with a
memory limit and an evicting policy, MLflow with its backend through PgBouncer and artifacts
written by clients straight to S3 (direct mode, as in manifests/base/mlflow).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from components.errors import ComponentError
from components.platform.buckets import BUCKETS
from components.platform.settings import PlatformSettings, environment
from devstack import process, tenant_pgbouncer

SERVICES = ("postgres", "pgbouncer", "redis", "s3", "mlflow")
DEFAULT_PORT_BASE = 15400
PORT_SPAN = 24
DATABASES = ("mlflow", "mlflow_auth", "feast", "offline")
MLFLOW_ADMIN = "admin"
DB_USER = "mlops"
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
            timings[service] = getattr(self, f"_start_{service}")()
            if echo:
                print(f"  {service:<10} up in {timings[service]:5.1f} s  {self.address(service)}", flush=True)
        if "redis" in services:
            self._start_tenant_redis()
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

    # --- PostgreSQL ----------------------------------------------------------------------------
    def _pg_bin(self, name: str) -> str:
        return process.find_binary(name, "/usr/lib/postgresql/*/bin")

    def _start_postgres(self) -> float:
        data = self.folder("postgres") / "data"
        sockets = self.folder("postgres") / "sockets"
        sockets.mkdir(parents=True, exist_ok=True)
        # The socket trusts whoever reaches it (setup runs through it): only the service user may.
        sockets.chmod(0o700)
        if not (data / "PG_VERSION").exists():
            data.mkdir(parents=True, exist_ok=True)
            process.give_to_service_user(self.folder("postgres"))
            init = subprocess.run(
                process.as_service_user(
                    [
                        self._pg_bin("initdb"),
                        "-D",
                        str(data),
                        "-U",
                        "postgres",
                        # Over TCP every role proves its password (tenants must not borrow each
                        # other's roles); the local socket, private to this stack, is for setup.
                        "--auth-local=trust",
                        "--auth-host=scram-sha-256",
                        "-E",
                        "UTF8",
                    ]
                ),
                capture_output=True,
                text=True,
                check=False,
            )
            if init.returncode != 0:
                raise ComponentError(
                    "dev",
                    f"initdb failed in {data}:\n{init.stderr.strip()[-1500:]}",
                    f"every folder above {self.root} must be readable by the '{process.SERVICE_USER}' user"
                    " when running as root (chmod o+x), or pick another --dir",
                )
        process.give_to_service_user(self.folder("postgres"))
        self.log("postgres").touch()
        process.give_to_service_user(self.log("postgres"))
        argv = process.as_service_user(
            [
                self._pg_bin("postgres"),
                "-D",
                str(data),
                "-p",
                str(self.ports.postgres),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                f"unix_socket_directories={sockets}",
                "-c",
                f"max_connections={self.max_connections}",
            ]
        )
        pid = process.start(argv, self.log("postgres"), self.pid_file("postgres"))
        seconds = process.wait_until(
            lambda: self._sql("postgres", "select 1", superuser=True) is not None,
            what="PostgreSQL",
            log=self.log("postgres"),
            pid=pid,
            timeout=60,
        )
        self._provision_databases()
        return seconds

    def _sql(self, database: str, statement: str, *, superuser: bool = False, port: int | None = None) -> Any:
        import psycopg

        user = "postgres" if superuser else DB_USER
        with psycopg.connect(
            host=str(self.folder("postgres") / "sockets") if superuser else "127.0.0.1",
            port=port or self.ports.postgres,
            dbname=database,
            user=user,
            password=self.db_password,
            autocommit=True,
            connect_timeout=3,
        ) as connection:
            cursor = connection.execute(statement)
            return cursor.fetchall() if cursor.description else []

    def _provision_databases(self) -> None:
        """The role and databases the platform expects, created once (idempotent)."""
        if not self._sql("postgres", f"select 1 from pg_roles where rolname = '{DB_USER}'", superuser=True):
            self._sql("postgres", f"create role {DB_USER} login password '{self.db_password}'", superuser=True)
        for database in DATABASES:
            if not self._sql("postgres", f"select 1 from pg_database where datname = '{database}'", superuser=True):
                self._sql("postgres", f"create database {database} owner {DB_USER}", superuser=True)

    # --- PgBouncer -----------------------------------------------------------------------------
    def _start_pgbouncer(self) -> float:
        folder = self.folder("pgbouncer")
        folder.mkdir(parents=True, exist_ok=True)
        process.write_private(folder / "userlist.txt", f'"{DB_USER}" "{self.db_password}"\n')
        (folder / "pgbouncer.ini").write_text(
            "\n".join(
                [
                    "[databases]",
                    f"* = host=127.0.0.1 port={self.ports.postgres}",
                    "[pgbouncer]",
                    "listen_addr = 127.0.0.1",
                    f"listen_port = {self.ports.pgbouncer}",
                    f"unix_socket_dir = {folder}",
                    "auth_type = scram-sha-256",
                    f"auth_file = {folder / 'userlist.txt'}",
                    "pool_mode = transaction",
                    "max_client_conn = 1000",
                    f"default_pool_size = {self.pool_size}",
                    "reserve_pool_size = 0",
                    "server_reset_query = DISCARD ALL",
                    "ignore_startup_parameters = extra_float_digits,options",
                    "",
                ]
            )
        )
        process.give_to_service_user(folder)
        self.log("pgbouncer").touch()
        process.give_to_service_user(self.log("pgbouncer"))
        argv = process.as_service_user([process.find_binary("pgbouncer", "/usr/sbin"), str(folder / "pgbouncer.ini")])
        pid = process.start(argv, self.log("pgbouncer"), self.pid_file("pgbouncer"))
        return process.wait_until(
            lambda: self._sql("mlflow", "select 1", port=self.ports.pgbouncer) is not None,
            what="PgBouncer",
            log=self.log("pgbouncer"),
            pid=pid,
            timeout=30,
        )

    # --- Redis ---------------------------------------------------------------------------------
    def _start_redis(self) -> float:
        return self._start_redis_instance(
            "redis", ["--port", str(self.ports.redis), "--maxmemory", self.redis_maxmemory], self._redis_ping()
        )

    def _start_tenant_redis(self) -> None:
        """Each tenant's own online store (devstack.tenants) that is not running yet."""
        for config in self.tenant_redis_configs():
            service = config.parent.name
            if not self.running(service):
                self._start_redis_instance(service, [str(config)], self._redis_ping(config))

    def tenant_redis_configs(self) -> list[Path]:
        """The tenants' own Redis instances: `<root>/redis-<tenant>/redis.conf`, written at tenant add."""
        return sorted(self.root.glob("redis-*/redis.conf"))

    def _redis_ping(self, config: Path | None = None) -> Callable[[], bool]:
        import redis

        if config is None:
            client = redis.Redis(host="127.0.0.1", port=self.ports.redis, socket_connect_timeout=1)
        else:  # a tenant's instance: only the platform's admin user may ping it unasked
            port = next(int(line.split()[1]) for line in config.read_text().splitlines() if line.startswith("port "))
            client = redis.Redis(
                host="127.0.0.1",
                port=port,
                username="admin",
                password=self.redis_admin_password,
                socket_connect_timeout=1,
            )
        return lambda: bool(client.ping())

    def _start_redis_instance(self, service: str, arguments: list[str], ping: Callable[[], bool]) -> float:
        """One redis-server: no snapshots, an evicting memory limit, loopback only; `arguments` first."""
        folder = self.folder(service)
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o700)
        argv = [
            process.find_binary("redis-server"),
            *arguments,
            "--bind",
            "127.0.0.1",
            "--dir",
            str(folder),
            "--save",
            "",
            "--appendonly",
            "no",
            "--maxmemory-policy",
            "allkeys-lru",
            "--daemonize",
            "no",
        ]
        pid = process.start(argv, self.log(service), self.pid_file(service))
        return process.wait_until(ping, what=f"Redis ({service})", log=self.log(service), pid=pid, timeout=30)

    # --- S3 (SeaweedFS) ------------------------------------------------------------------------
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

    def _start_s3(self) -> float:
        folder = self.folder("s3")
        (folder / "data").mkdir(parents=True, exist_ok=True)
        identities = {"identities": self.s3_identities()}
        if not (folder / "s3.json").exists():  # tenants (devstack.tenants) add their identities here
            process.write_private(folder / "s3.json", json.dumps(identities, indent=2))
        folder.chmod(0o700)
        from devstack.seaweed_security import write_security

        write_security(folder)  # JWT on the HTTP side doors, mutual TLS on gRPC (weed reads it from cwd)
        weed = Path(sys.executable).parent / "weed"
        binary = str(weed) if weed.exists() else process.find_binary("weed")
        p = self.ports
        argv = [
            binary,
            "mini",
            f"-dir={folder / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={p.weed(0)}",
            f"-master.port.grpc={p.weed(1)}",
            f"-volume.port={p.weed(2)}",
            f"-volume.port.grpc={p.weed(3)}",
            f"-volume.port.public={p.weed(2)}",
            f"-filer.port={p.weed(4)}",
            f"-filer.port.grpc={p.weed(5)}",
            f"-filer.localSocket={folder / 'filer.sock'}",
            f"-s3.port={p.s3}",
            f"-s3.port.grpc={p.weed(6)}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.localSocket={folder / 's3.sock'}",
            f"-admin.port={p.weed(7)}",
            f"-admin.port.grpc={p.weed(7) + 10_000}",
            "-admin.ui=false",
            f"-debug.port={p.weed(8)}",
            "-webdav=false",
            "-master.telemetry=false",
            "-s3.iam=false",  # its embedded IAM API (users, access keys) on the S3 port: not used here
            f"-s3.config={folder / 's3.json'}",
            f"-bucket={','.join(BUCKETS)}",
        ]
        from devstack import private_network

        if self.s3_private_network and private_network.available():
            # weed's master, volume, filer and admin ports in a network of their own; only S3 is published
            argv = [
                sys.executable,
                "-m",
                "devstack.private_network",
                f"--listen=127.0.0.1:{p.s3}",
                f"--socket={folder / 's3.sock'}",
                "--",
                *argv,
            ]
        elif self.s3_private_network:
            print(
                "warning: no user namespaces here (unshare --user --net failed): SeaweedFS's master,"
                " volume and filer ports stay on the host's loopback, where any local user reaches them",
                file=sys.stderr,
            )
        pid = process.start(argv, self.log("s3"), self.pid_file("s3"), cwd=folder)
        client = self.s3_client()

        def buckets_exist() -> bool:
            # The port opens before the buckets exist: wait on HeadBucket, not on the port.
            for bucket in BUCKETS:
                client.head_bucket(Bucket=bucket)
            return True

        seconds = process.wait_until(buckets_exist, what="SeaweedFS S3", log=self.log("s3"), pid=pid, timeout=60)
        from components.platform import buckets

        buckets.ensure(client)  # the lifecycle the cluster's bucket-setup Job applies
        return seconds

    # --- MLflow --------------------------------------------------------------------------------
    def _start_mlflow(self) -> float:
        import urllib.request

        env: dict[str, str | None] = {
            "MLFLOW_S3_ENDPOINT_URL": self.s3_endpoint,
            # No S3 key at all: in direct mode (--no-serve-artifacts) clients move artifacts with
            # their own keys. A key here would make the server a confused deputy: a tenant's own
            # model version whose source points at another tenant's prefix, downloaded through
            # /model-versions/get-artifact, streamed that tenant's object (mlops isolation-check).
            **NO_AWS_CREDENTIALS,
            **(
                {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key}
                if self.mlflow_server_s3_key
                else {}
            ),
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_METADATA_SERVICE_TIMEOUT": "1",
            "MLFLOW_DISABLE_TELEMETRY": "true",
            # Job workers (huey) are for server-side jobs this platform does not use; each one
            # costs a process and a database connection.
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        }
        started = time.monotonic()
        # Schema creation and migrations run once, directly against PostgreSQL: DDL in a
        # transaction-pooled connection is fragile, and the server should not race them.
        migrate = subprocess.run(
            [
                sys.executable,
                "-c",
                "import os; from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore as S;"
                " S(os.environ['MLOPS_MIGRATE_DATABASE_URL'], 's3://mlflow-artifacts')",
            ],
            capture_output=True,
            text=True,
            # issue 29: the URL holds the password, so it travels in the environment, never on argv.
            env=process.merged_environment(
                {**env, "MLOPS_MIGRATE_DATABASE_URL": self.database_url("mlflow", through_pgbouncer=False)}
            ),
            check=False,
        )
        if migrate.returncode != 0:
            raise ComponentError(
                "dev", f"MLflow schema migration failed:\n{migrate.stderr[-2000:]}", "check PostgreSQL's log"
            )
        argv = [
            str(Path(sys.executable).parent / "mlflow"),
            "server",
            "--backend-store-uri",
            # psycopg2, not psycopg 3: psycopg 3 prepares repeated statements on the server,
            # and PgBouncer 1.18 in transaction pooling sends the next transaction to another
            # server connection ("prepared statement _pg3_0 already exists").
            # issue 29: no password on the command line (every local user reads /proc/*/cmdline):
            # libpq takes it from PGPASSWORD, set below for both databases (the same role).
            self.database_url(
                "mlflow", driver="postgresql+psycopg2", through_pgbouncer=self.mlflow_through_pgbouncer
            ).replace(f":{self.db_password}@", "@"),
            "--default-artifact-root",
            "s3://mlflow-artifacts/",
            "--no-serve-artifacts",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.ports.mlflow),
            "--workers",
            str(self.mlflow_workers),
        ]
        env["PGPASSWORD"] = self.db_password
        if self.mlflow_auth:
            from components.platform.tracking_auth import auth_config

            # The cluster's file (pipelines.cluster.mlflow_auth_config): no password in it (libpq
            # reads PGPASSWORD), the admin from the environment.
            database = self.database_url("mlflow_auth", driver="postgresql+psycopg2").replace(
                f":{self.db_password}@", "@"
            )
            config = self.folder("mlflow") / "basic_auth.ini"
            process.write_private(
                config,
                auth_config(
                    database,
                    default_permission=self.mlflow_default_permission,
                    tenant_names=self.mlflow_tenant_names,
                ),
            )
            env["MLFLOW_AUTH_ADMIN_USERNAME"] = MLFLOW_ADMIN
            env["MLFLOW_AUTH_ADMIN_PASSWORD"] = self.admin_password
            env["MLFLOW_AUTH_CONFIG_PATH"] = str(config)
            env["MLFLOW_FLASK_SERVER_SECRET_KEY"] = self.admin_password + "-csrf"
            argv += ["--app-name", "basic-auth"]
        # A server stopped a moment ago may still hold its port while its workers exit.
        deadline = time.monotonic() + 30
        while not process.port_free(self.ports.mlflow) and time.monotonic() < deadline:
            time.sleep(0.2)
        pid = process.start(argv, self.log("mlflow"), self.pid_file("mlflow"), env=env)

        def healthy() -> bool:
            with urllib.request.urlopen(f"{self.tracking_uri}/health", timeout=2) as response:
                return bool(response.status == 200)

        process.wait_until(healthy, what="MLflow server", log=self.log("mlflow"), pid=pid, timeout=120)
        return time.monotonic() - started


NO_AWS_CREDENTIALS: dict[str, str | None] = {
    # None: removed from the inherited environment; botocore then finds no file and no metadata
    "AWS_ACCESS_KEY_ID": None,
    "AWS_SECRET_ACCESS_KEY": None,
    "AWS_SESSION_TOKEN": None,
    "AWS_PROFILE": None,
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def default_root() -> Path:
    from components.environment import mlops_home

    return Path(os.environ.get("MLOPS_SERVICES_DIR") or mlops_home() / "services")
