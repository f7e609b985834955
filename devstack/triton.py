"""A real Triton on loopback, serving a registered model version (`mlops serve`).

The server is the `tritonserver` binary that PyPI's nvidia-pytriton bundles (python backend
only, CPU). It lives in its own environment (`make serving-env`, numpy<2: under numpy 2 that
backend answers with empty tensors), as production's NGC image has its own Python too.
Two facts make it start here:
- the python backend's stub links Debian's libpython3.11; under another 3.11 build the model
  fails with "'_thread.RLock' object has no attribute '_recursion_count'" unless
  LD_LIBRARY_PATH points at the serving interpreter's own lib directory;
- the stub finds packages through the activated environment (VIRTUAL_ENV and PATH).
The backend folder is assembled under the run folder with links into the package, so the
serving environment is never modified.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.errors import ComponentError
from components.handoffs import Registration
from devstack import process

__all__ = ["DEFAULT_PORT_BASE", "REPO_ROOT", "STEP", "LocalTriton", "serve_registered", "serving_venv"]

STEP = "serve"
REPO_ROOT = Path(__file__).resolve().parents[1]


def serving_venv() -> Path:
    """The serving environment: $MLOPS_SERVING_VENV, else .venv-serving beside the package."""
    contents = "nvidia-pytriton, numpy<2, xgboost-cpu, torch, lightgbm and onnxruntime from serving-constraints.txt"
    return process.companion_venv("MLOPS_SERVING_VENV", REPO_ROOT / ".venv-serving", "serving-env", contents)


def _interpreter_facts(venv: Path) -> dict[str, str]:
    script = (
        "import json, sys, sysconfig, importlib.util as u;"
        "spec = u.find_spec('pytriton');"
        "print(json.dumps({'libdir': sysconfig.get_config_var('LIBDIR'),"
        "'version': f'{sys.version_info[0]}.{sys.version_info[1]}',"
        "'pytriton': spec.submodule_search_locations[0] if spec else ''}))"
    )
    output = subprocess.run([str(venv / "bin" / "python"), "-c", script], capture_output=True, text=True, check=True)
    facts: dict[str, str] = json.loads(output.stdout)
    if not facts["pytriton"]:
        raise ComponentError(STEP, f"{venv} has no nvidia-pytriton", "run `make serving-env`")
    return facts


def _backend_directory(target: Path, server_root: Path, python_version: str) -> Path:
    """backends/python with the stub for the serving interpreter's version, as links."""
    python_dir = target / "python"
    python_dir.mkdir(parents=True, exist_ok=True)
    backend = server_root / "backends" / "python"
    stubs = server_root / "python_backend_stubs"
    sources = {
        "libtriton_python.so": backend / "libtriton_python.so",
        "triton_python_backend_utils.py": backend / "triton_python_backend_utils.py",
        "triton_python_backend_stub": stubs / python_version / "triton_python_backend_stub",
    }
    for name, source in sources.items():
        if not source.exists():
            raise ComponentError(STEP, f"nvidia-pytriton lacks {source}", "reinstall it with `make serving-env`")
        link = python_dir / name
        link.unlink(missing_ok=True)
        link.symlink_to(source)
    return target


def _get(url: str, timeout: float = 1.0) -> int:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # loopback only
        return int(response.status)


@dataclass(kw_only=True)
class LocalTriton:
    """One tritonserver process over a model repository, on 127.0.0.1."""

    root: Path
    """Run folder: backends/, triton.log, triton.pid."""
    repository: Path
    http_port: int
    grpc_port: int
    metrics_port: int
    model_name: str
    pid: int | None = field(default=None, init=False)

    @property
    def http_url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def log(self) -> Path:
        return self.root / "triton.log"

    @property
    def pid_file(self) -> Path:
        return self.root / "triton.pid"

    def start(self, timeout: float = 120.0, threads: int = 1) -> float:
        """Start the server; returns seconds from start to the model being READY."""
        venv = serving_venv()
        facts = _interpreter_facts(venv)
        server_root = Path(facts["pytriton"]) / "tritonserver"
        backends = _backend_directory(self.root / "backends", server_root, facts["version"])
        for port in (self.http_port, self.grpc_port, self.metrics_port):
            if not process.port_free(port):
                raise ComponentError(STEP, f"port {port} on 127.0.0.1 is taken", "pass other ports (--port-base)")
        argv = [
            str(server_root / "bin" / "tritonserver"),
            f"--model-repository={self.repository}",
            f"--backend-directory={backends}",
            "--strict-model-config=true",
            "--exit-on-error=true",
            "--http-address=127.0.0.1",
            f"--http-port={self.http_port}",
            "--grpc-address=127.0.0.1",
            f"--grpc-port={self.grpc_port}",
            f"--metrics-port={self.metrics_port}",
            "--log-verbose=0",
        ]
        library_path = ":".join(p for p in (facts["libdir"], os.environ.get("LD_LIBRARY_PATH", "")) if p)
        env = {
            "VIRTUAL_ENV": str(venv),
            "PATH": f"{venv / 'bin'}:{os.environ.get('PATH', '')}",
            "LD_LIBRARY_PATH": library_path,
            "MLOPS_SERVING_THREADS": str(threads),
            "OMP_NUM_THREADS": str(threads),
        }
        started = time.monotonic()
        self.pid = process.start(argv, self.log, self.pid_file, env=env)
        ready_url = f"http://{self.http_url}/v2/models/{self.model_name}/ready"
        process.wait_until(
            lambda: _get(ready_url) == 200, what="tritonserver", log=self.log, pid=self.pid, timeout=timeout
        )
        return time.monotonic() - started

    def stop(self) -> bool:
        return process.stop(self.pid_file, grace_seconds=10.0)

    def describe(self) -> dict[str, Any]:
        return {
            "model": self.model_name,
            "http": f"http://{self.http_url}",
            "grpc": self.grpc_url,
            "metrics": f"http://127.0.0.1:{self.metrics_port}/metrics",
            "repository": str(self.repository),
            "log": str(self.log),
            "pid": self.pid,
        }


DEFAULT_PORT_BASE = 18000


def serve_registered(
    model: str,
    *,
    root: Path,
    version: int | None = None,
    alias: str | None = None,
    port_base: int = DEFAULT_PORT_BASE,
    instance_count: int = 1,
    max_batch_size: int = 64,
    max_queue_delay_us: int | None = None,
    threads: int = 1,
    tracking_uri: str | None = None,
    record_load_time: bool = True,
) -> tuple[LocalTriton, Registration]:
    """Resolve a registered version, lay out its python-backend repository from the artifact
    store (sha256-checked) and start Triton over it. The measured load time is tagged on the
    version, where promote reads it to size the readiness probe."""
    import shutil

    from components.platform import model_registry
    from components.steps.triton_repository import write_python_repository

    mlflow = model_registry.client(tracking_uri)
    number = model_registry.resolve_version(mlflow, model, version=version, alias=alias)
    registration, model_bytes = model_registry.load_registration(mlflow, model, number)
    repository = root / "repository"
    shutil.rmtree(repository, ignore_errors=True)
    write_python_repository(
        repository,
        model,
        number,
        registration["model_format"],
        model_bytes,
        registration["features"],
        objective=registration["objective"],
        max_batch_size=max_batch_size,
        instance_count=instance_count,
        max_queue_delay_us=max_queue_delay_us,
        threshold=registration["holdout_metrics"].get("decision_threshold"),  # the decision log's binary threshold
    )
    server = LocalTriton(
        root=root,
        repository=repository,
        http_port=port_base,
        grpc_port=port_base + 1,
        metrics_port=port_base + 2,
        model_name=model,
    )
    seconds = server.start(threads=threads)
    registration["load_seconds"] = round(seconds, 2)
    if record_load_time:
        model_registry.record_load_seconds(mlflow, model, number, seconds)
    return server, registration
