"""Training across processes, started the way Kubeflow Trainer's runtimes start it.

The train step stays one command (`mlops step train ...`). What makes it one worker of many is
the environment the runtime injects, and nothing else:
- torch-distributed: the runtime sets `PET_NNODES`, `PET_NPROC_PER_NODE`, `PET_NODE_RANK`,
  `PET_MASTER_ADDR`, `PET_MASTER_PORT` and runs the command under `torchrun`, which gives each
  process `RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `MASTER_ADDR`, `MASTER_PORT`;
- xgboost-distributed: the runtime sets `DMLC_TRACKER_URI`, `DMLC_TRACKER_PORT`, `DMLC_TASK_ID`,
  `DMLC_NUM_WORKER`; the worker of task 0 runs the `RabitTracker` the others connect to.

Locally, `launch` sets exactly those variables and starts the same command N times on this
machine (`torchrun --no-python` for torch), so a laptop runs what a TrainJob's pods run. Each
worker reads only its shard of the training set; rank 0 writes the model and its metadata.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from components.config import DistributedSettings
from components.errors import ComponentError, TransientError

__all__ = [
    "LAUNCH_TIMEOUT_SECONDS",
    "SINGLE",
    "STEP",
    "TORCH_RUNTIME_VARIABLES",
    "WORKER_OWN_VARIABLES",
    "XGBOOST_RUNTIME_VARIABLES",
    "World",
    "current_world",
    "free_port",
    "launch",
    "read_shard",
    "shard_bounds",
    "torch_process_group",
    "torch_sum",
    "tracker_host",
    "xgboost_collective",
    "xgboost_sum",
]

STEP = "train"
TORCH_RUNTIME_VARIABLES = ("PET_NNODES", "PET_NPROC_PER_NODE", "PET_NODE_RANK", "PET_MASTER_ADDR", "PET_MASTER_PORT")
XGBOOST_RUNTIME_VARIABLES = ("DMLC_TRACKER_URI", "DMLC_TRACKER_PORT", "DMLC_TASK_ID", "DMLC_NUM_WORKER")
LAUNCH_TIMEOUT_SECONDS = 6 * 3600
WORKER_OWN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MLOPS_STEP_RETRY")
"""Not inherited by local workers: their place in the world is the launcher's to set, and a
transient failure is retried by relaunching the whole world (the step's own retry), never by one
worker alone while the others wait on it."""


@dataclass(frozen=True)
class World:
    """This process's place among the training workers."""

    runtime: str
    """torch-distributed, xgboost-distributed, or "" for a single process."""
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def leader(self) -> bool:
        """Rank 0 writes the model and the metadata; the others only train."""
        return self.rank == 0


SINGLE = World(runtime="")


def current_world(environ: dict[str, str] | None = None) -> World:
    """The world this process was started into, read from the variables its launcher set."""
    env = os.environ if environ is None else environ
    if "WORLD_SIZE" in env and "RANK" in env and int(env["WORLD_SIZE"]) > 1:  # torchrun's children
        return World("torch-distributed", int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", "0")))
    if all(name in env for name in XGBOOST_RUNTIME_VARIABLES) and int(env["DMLC_NUM_WORKER"]) > 1:
        return World("xgboost-distributed", int(env["DMLC_TASK_ID"]), int(env["DMLC_NUM_WORKER"]))
    return SINGLE


def shard_bounds(rows: int, world: World) -> tuple[int, int]:
    """The rows [start, stop) of this worker: contiguous blocks, sizes differing by at most one."""
    base, extra = divmod(rows, world.size)
    start = world.rank * base + min(world.rank, extra)
    return start, start + base + (1 if world.rank < extra else 0)


def read_shard(uri: str, world: World, what: str) -> Any:
    """This worker's rows of a Parquet training set, reading only the row groups that hold them."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from components import artifacts
    from components.tabular import read_parquet

    if world.size == 1:
        return read_parquet(STEP, uri, what)
    if not artifacts.exists(uri):
        raise ComponentError(STEP, f"{what} not found at {uri}", "check the path or URI; run the upstream step first")
    with artifacts.fetched(uri) as path:
        try:
            parquet = pq.ParquetFile(path)
        except (pa.ArrowException, OSError) as error:
            raise ComponentError(
                STEP, f"{what} at {uri} is not a readable Parquet file ({error})", "point the step at Parquet"
            ) from error
        start, stop = shard_bounds(parquet.metadata.num_rows, world)
        groups: list[int] = []
        offset = first = 0
        for index in range(parquet.metadata.num_row_groups):
            rows = parquet.metadata.row_group(index).num_rows
            if offset + rows > start and offset < stop:
                if not groups:
                    first = offset
                groups.append(index)
            offset += rows
        table = parquet.read_row_groups(groups) if groups else parquet.schema_arrow.empty_table()
    frame = table.slice(start - first, stop - start).to_pandas()
    if frame.empty:
        raise ComponentError(
            STEP,
            f"worker {world.rank} of {world.size} got no rows of {what} ({uri})",
            "use fewer workers than the training set has rows",
        )
    return frame


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def launch(settings: DistributedSettings, command: list[str]) -> None:
    """Run `command` as `settings.workers` workers on this machine, in the environment the
    cluster's runtime would give them; raises the workers' own failure class if one fails."""
    port = free_port()
    base = {key: value for key, value in os.environ.items() if key not in WORKER_OWN_VARIABLES}
    # N workers on one machine share its cores: OpenMP threads beyond a worker's share spin
    # against each other (XGBoost on 2 cores, 2 workers: 26 s with a thread per core each, 7 s
    # with one); torchrun sets the same for its children
    base.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // settings.workers)))
    with tempfile.TemporaryDirectory(prefix="mlops-train-workers-") as tmp:
        logs = Path(tmp)
        if settings.runtime == "torch-distributed":
            env = base | {
                "PET_NNODES": "1",
                "PET_NPROC_PER_NODE": str(settings.workers),
                "PET_NODE_RANK": "0",
                "PET_MASTER_ADDR": "127.0.0.1",
                "PET_MASTER_PORT": str(port),
            }
            launcher = [sys.executable, "-m", "torch.distributed.run", "--no-python", *command]
            with open(logs / "torchrun.log", "wb") as log:
                codes = [_wait(subprocess.Popen(launcher, env=env, stdout=log, stderr=subprocess.STDOUT))]
        else:
            processes = []
            for rank in range(settings.workers):
                env = base | {
                    "DMLC_TRACKER_URI": "127.0.0.1",
                    "DMLC_TRACKER_PORT": str(port),
                    "DMLC_TASK_ID": str(rank),
                    "DMLC_NUM_WORKER": str(settings.workers),
                }
                with open(logs / f"worker-{rank}.log", "wb") as log:
                    processes.append(subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT))
            codes = [_wait(process) for process in processes]
        output = "\n".join(path.read_text(errors="replace") for path in sorted(logs.glob("*.log")))
    if any(codes):
        raise _worker_failure(settings, codes, output)


def _wait(process: subprocess.Popen[bytes]) -> int:
    try:
        return process.wait(timeout=LAUNCH_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


def _worker_failure(settings: DistributedSettings, codes: list[int], output: str) -> Exception:
    """The workers' failure, with its class: a permanent one stays permanent (exit 2, never retried)."""
    lines = output.strip().splitlines()
    # a worker's own `error: ...` line (the CLI's or argparse's) comes before torchrun's summary,
    # which alone fills the tail: name it first
    errors = list(dict.fromkeys(line.strip() for line in lines if "error:" in line and "error_file" not in line))
    tail = "\n".join([*errors[:5], *lines[-25:]])
    problem = f"{settings.workers} {settings.runtime} workers exited {codes}:\n{tail}"
    if "failure: permanent" in output:
        return ComponentError(STEP, problem, "fix what the worker's error names; a retry gives the same answer")
    if "failure: transient" in output:
        return TransientError(STEP, problem, "nothing to fix in the step; a retry may pass")
    return RuntimeError(problem)


def tracker_host(uri: str) -> str:
    """Where task 0's tracker listens: the URI itself when it is an address (127.0.0.1 on a
    laptop), every interface when it is the leader pod's DNS name (its peers resolve that name)."""
    try:
        ipaddress.ip_address(uri)
        return uri
    except ValueError:
        return "0.0.0.0"  # inside the TrainJob's pod network, where the runtime points peers


@contextmanager
def xgboost_collective(world: World) -> Iterator[None]:
    """Join the XGBoost collective of `world` (task 0 also runs its RabitTracker)."""
    if world.size == 1:
        yield
        return
    from xgboost import collective
    from xgboost.tracker import RabitTracker

    uri, port = os.environ["DMLC_TRACKER_URI"], int(os.environ["DMLC_TRACKER_PORT"])
    tracker = None
    if world.leader:
        tracker = RabitTracker(n_workers=world.size, host_ip=tracker_host(uri), port=port, sortby="task")
        tracker.start()
    with collective.CommunicatorContext(
        dmlc_tracker_uri=uri, dmlc_tracker_port=port, dmlc_task_id=str(world.rank), dmlc_retry=10
    ):
        yield
    if tracker is not None:
        tracker.wait_for()


def xgboost_sum(values: np.ndarray, world: World) -> np.ndarray:
    """Element-wise sum over the workers (inside xgboost_collective)."""
    if world.size == 1:
        return values
    from xgboost import collective

    return np.asarray(collective.allreduce(values, collective.Op.SUM))


@contextmanager
def torch_process_group(world: World, device: str) -> Iterator[str]:
    """Join torch's process group of `world`; yields the device this worker trains on. NCCL when
    each worker has a GPU of its own, gloo on the CPU and when workers share a GPU (NCCL refuses
    two ranks on one device: the GPU check runs 2 workers on its one GPU)."""
    if world.size == 1:
        yield device
        return
    import torch
    import torch.distributed as dist

    backend = "gloo"
    if device.startswith("cuda"):
        count = torch.cuda.device_count()
        index = world.local_rank % count
        torch.cuda.set_device(index)
        device = f"cuda:{index}"
        if int(os.environ.get("LOCAL_WORLD_SIZE", str(world.size))) <= count:
            backend = "nccl"
    dist.init_process_group(backend=backend)
    try:
        yield device
    finally:
        dist.destroy_process_group()


def torch_sum(values: np.ndarray, world: World) -> np.ndarray:
    """Element-wise sum over the workers, in float64 (inside torch_process_group)."""
    if world.size == 1:
        return values
    import torch
    import torch.distributed as dist

    tensor = torch.from_numpy(np.asarray(values, dtype=np.float64).copy())
    if dist.get_backend() == "nccl":  # NCCL reduces GPU tensors only
        tensor = tensor.cuda()
    dist.all_reduce(tensor)
    return tensor.cpu().numpy()
