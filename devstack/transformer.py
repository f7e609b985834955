"""The scoring transformer on loopback, beside the local Triton (`mlops serve --with-features`).

The same module the cluster runs (components/serving/transformer.py, KServe's ModelServer), started from
its own environment (`make transformer-env`: kserve pins psutil<6, the pipeline's stack does not
resolve with it), as the InferenceService's transformer container runs from its own image layer.
Like the container, it logs in to Redis and the registry as the tenant's reader when the
environment holds one (`mlops tenant env`'s MLOPS_READER_*, components/platform/readonly.py), and
writes its decision log with the tenant's decisions writer (MLOPS_DECISIONS_AWS_*, DECISIONS_VARIABLES:
an S3 key that may only write `decisions/<tenant>/*`), never with the tenant's own key, which may
write its models (the cluster's tenant-decisions-credentials, components/steps/serving_decisions.py).
"""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.errors import ComponentError
from components.platform.readonly import local_transformer_environment
from devstack import process

__all__ = [
    "DECISIONS_VARIABLES",
    "REPO_ROOT",
    "STEP",
    "LocalTransformer",
    "decisions_writer_variables",
    "transformer_venv",
]

STEP = "serve"
REPO_ROOT = Path(__file__).resolve().parents[1]
DECISIONS_VARIABLES = {
    "AWS_ACCESS_KEY_ID": "MLOPS_DECISIONS_AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY": "MLOPS_DECISIONS_AWS_SECRET_ACCESS_KEY",
}
"""The transformer's S3 variable -> the name `mlops tenant env` exports the decisions writer's under
(devstack/tenants.py decisions_writer_environment); the pipeline's steps keep the tenant's own key."""


def decisions_writer_variables(environment: Mapping[str, str]) -> dict[str, str]:
    """The decisions writer's key as the transformer reads S3 keys, from `environment`'s
    MLOPS_DECISIONS_AWS_* (empty when they are not both set: a stack without tenants, or a tenant
    added before the writer existed, whose transformer keeps the key it inherits)."""
    found = {variable: environment.get(local, "") for variable, local in DECISIONS_VARIABLES.items()}
    return found if all(found.values()) else {}


def transformer_venv() -> Path:
    """The transformer's environment: $MLOPS_TRANSFORMER_VENV, else .venv-transformer beside the package."""
    return process.companion_venv("MLOPS_TRANSFORMER_VENV", REPO_ROOT / ".venv-transformer", "transformer-env",
                                  "what transformer-constraints.txt pins")  # fmt: skip


def _ready(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=1.0) as response:  # loopback only
        return int(response.status) == 200


@dataclass(kw_only=True)
class LocalTransformer:
    """One KServe ModelServer process running the scoring transformer, on 127.0.0.1."""

    root: Path
    """Run folder: transformer.log, transformer.pid."""
    model_name: str
    predictor_grpc: str
    """The Triton predictor's gRPC host:port."""
    http_port: int
    grpc_port: int
    project: str
    feature_service: str
    entity_column: str
    request_features: list[str]
    scoring: dict[str, Any] = field(default_factory=dict)
    """The pipeline's scoring section (unknown_entity, defaults)."""
    store_dir: Path | None = None
    """A local store's folder; ignored where the platform's Feast settings are in the environment."""
    env: dict[str, str | None] = field(default_factory=dict)
    """Overrides of the inherited environment (a drill points MLOPS_FEAST_REDIS elsewhere)."""
    name: str = "transformer"
    pid: int | None = None

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def log(self) -> Path:
        return self.root / f"{self.name}.log"

    @property
    def pid_file(self) -> Path:
        return self.root / f"{self.name}.pid"

    def argv(self) -> list[str]:
        argv = [
            str(transformer_venv() / "bin" / "python"),
            "-m",
            "components.serving.transformer",
            f"--model_name={self.model_name}",
            f"--predictor_host={self.predictor_grpc}",
            "--predictor_protocol=grpc-v2",
            f"--http_port={self.http_port}",
            f"--grpc_port={self.grpc_port}",
            f"--feature-project={self.project}",
            f"--feature-service={self.feature_service}",
            f"--entity-column={self.entity_column}",
            f"--request-features={','.join(self.request_features)}",
            f"--scoring={json.dumps(self.scoring)}",
            "--predictor-wait-seconds=60",
        ]
        if self.store_dir is not None:
            argv.append(f"--feature-store-dir={self.store_dir}")
        return argv

    def start(self, timeout: float = 120.0) -> float:
        """Start it; returns seconds until it answers ready (it reads the predictor's config first)."""
        for port in (self.http_port, self.grpc_port):
            if not process.port_free(port):
                raise ComponentError(STEP, f"port {port} on 127.0.0.1 is taken", "pass other ports (--port-base)")
        self.root.mkdir(parents=True, exist_ok=True)
        reader = local_transformer_environment(os.environ)  # a tenant's reader over its read-write identities
        reader |= decisions_writer_variables(os.environ)  # and its decisions writer over its S3 key
        env: dict[str, str | None] = {"PYTHONPATH": str(self._components_only()), "VIRTUAL_ENV": None, **reader}
        env.update(self.env)
        self.pid = process.start(self.argv(), self.log, self.pid_file, env=env, cwd=self.root)
        ready = f"{self.http_url}/v2/models/{self.model_name}/ready"
        return process.wait_until(lambda: _ready(ready), what="the scoring transformer", log=self.log,
                                  pid=self.pid, timeout=timeout)  # fmt: skip

    def _components_only(self) -> Path:
        """A folder holding only a link to this package's `components`: the transformer's
        environment imports it, and nothing else of the pipeline's environment (a checkout's root
        or an installed site-packages would put psutil 7 and the rest in front of its pins)."""
        import components

        folder = self.root / "pythonpath"
        folder.mkdir(parents=True, exist_ok=True)
        link = folder / "components"
        target = Path(components.__file__).resolve().parent
        if link.is_symlink() and link.resolve() != target:
            link.unlink()
        if not link.exists():
            link.symlink_to(target)
        return folder

    def stop(self) -> bool:
        return process.stop(self.pid_file, grace_seconds=10.0)

    def describe(self) -> dict[str, Any]:
        return {
            "http": self.http_url,
            "grpc": self.grpc_url,
            "v1": f"{self.http_url}/v1/models/{self.model_name}:predict",
            "v2": f"{self.http_url}/v2/models/{self.model_name}/infer",
            "log": str(self.log),
            "pid": self.pid,
        }
