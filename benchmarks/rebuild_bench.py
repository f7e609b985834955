"""make bench (rebuild at size): Redis lost, refilled from the offline store, for 1M entities.

The online store is a derived cache (manifests/README.md): no snapshots, no append-only file, and
after a loss `mlops materialize <pipeline> --rebuild` refills it from the offline store. This
measures that recovery at a realistic size, on real services it starts itself on loopback, as
the platform runs them (devstack): the offline Parquet in S3 (SeaweedFS), Feast's SQL registry on
PostgreSQL through PgBouncer, and a Redis with the fraud tenant's memory limit and eviction
policy (pipelines/tenant_stores.py).

1. The fraud pipeline's data generator (pipelines/fraud/data.py, what `mlops data fraud` writes)
   makes about 10 events per user for at least --entities users with events (default 1M; env
   MLOPS_BENCH_REBUILD_ENTITIES); the events go to the offline store and the repo is applied to
   the registry, as the materialize step leaves them. Redis is empty: the loss.
2. The real rebuild: `mlops materialize fraud --rebuild` in its own process, the operator's
   command; its own timer (the rebuild) and the process's wall time (imports included).
3. Redis afterwards: one hash per entity, the memory they take, and no key evicted.
4. Correctness: a sample of entities read back through Feast's online read
   (`FeatureStore.get_online_features`) equals each entity's latest offline row; an entity the
   offline store does not hold reads back empty (the negative control).
5. The floor, in the same run on the same Redis: the same hashes (read back from Redis, so the
   same keys, fields and bytes) written again into the flushed Redis with redis-py's pipelined
   HSET in the writer's chunk size, nothing else: no Parquet, no sort, no encoding, no read of
   the stored event times.
The goal (docs/performance.md): 1M entities within 3x the floor and under 2 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from devstack import process  # noqa: E402
from devstack.stack import PORT_SPAN, Ports, Stack  # noqa: E402

if TYPE_CHECKING:
    import redis

__all__ = ["GOAL_ENTITIES", "GOAL_FLOOR_RATIO", "GOAL_SECONDS", "differences", "latest_rows", "main"]

GOAL_ENTITIES = 1_000_000
GOAL_FLOOR_RATIO = 3.0
GOAL_SECONDS = 120.0
PIPELINE = "fraud"
FEATURE_REPO = REPO / "pipelines" / "fraud" / "feature_repo"
SERVICES = ("postgres", "pgbouncer", "s3", "redis")
# The generator draws rows // 10 users; about 97.5 % of them have at least one event (measured at
# 1M rows, seed 7), so 10 rows per 0.97 wanted entities leaves at least that many with events.
ROWS_PER_USER = 10
USERS_WITH_EVENTS = 0.97


def offline_data(entities: int, seed: int) -> pd.DataFrame:
    """The generator's events for about `entities` users with events (exact count: nunique)."""
    from pipelines.fraud.data import generate

    return generate(ROWS_PER_USER * math.ceil(entities / USERS_WITH_EVENTS), seed)


def latest_rows(frame: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    """Each entity's latest offline row, by event time (the generator's times are unique per user)."""
    ordered = frame.sort_values("event_timestamp", kind="stable")
    return ordered.drop_duplicates("user_id", keep="last").set_index("user_id")[features]


def publish(project: str, service_name: str, frame: pd.DataFrame) -> tuple[str, list[str], float]:
    """The offline store and the registry as the materialize step leaves them; the source's URI,
    the feature service's features and the seconds the upload took."""
    from components import artifacts
    from components.steps.materialize import apply_repo, offline_location, open_store

    uri = offline_location(project, f"bench-{len(frame)}")
    started = time.perf_counter()
    artifacts.write_parquet(uri, frame)
    uploaded = time.perf_counter() - started
    store = open_store(project)
    apply_repo(store, FEATURE_REPO, uri)
    service = store.get_feature_service(service_name)
    features = [field.name for projection in service.feature_view_projections for field in projection.features]
    return uri, features, uploaded


def rebuild(environment: dict[str, str]) -> tuple[float, float, str]:
    """`mlops materialize fraud --rebuild`: the rebuild's own seconds, the process's, its output.
    (The largest child this process has waited for is then this one: `peak_rss`.)"""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "mlops.cli", "materialize", PIPELINE, "--rebuild"],
        cwd=REPO, env=environment, capture_output=True, text=True, timeout=3600,
    )  # fmt: skip
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"the rebuild failed (exit {done.returncode}):\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    timed = re.search(r"rebuilt in ([0-9.]+) s", done.stdout)
    if timed is None:
        raise SystemExit(f"the rebuild printed no time:\n{done.stdout[-3000:]}")
    return float(timed.group(1)), wall, done.stdout


def read_back(project: str, service_name: str, expected: pd.DataFrame, sample: int, seed: int) -> int:
    """Feast's online read of `sample` entities equals their latest offline rows; an entity the
    offline store lacks reads back empty. Returns how many entities were compared."""
    from components.steps.materialize import open_store

    store = open_store(project)
    service = store.get_feature_service(service_name)
    chosen = expected.sample(min(sample, len(expected)), random_state=seed)
    absent = int(expected.index.max()) + 1
    rows = [{"user_id": int(user)} for user in chosen.index] + [{"user_id": absent}]
    online = store.get_online_features(features=service, entity_rows=rows).to_dict()
    if wrong := differences(chosen, online, absent):
        raise SystemExit(f"{len(wrong)} online values differ from the offline store, e.g.:\n" + "\n".join(wrong[:10]))
    return len(chosen)


def differences(chosen: pd.DataFrame, online: dict[str, list[Any]], absent: int) -> list[str]:
    """What Feast's answer for chosen's entities, then `absent` (no offline rows), gets wrong:
    each feature must equal the entity's latest offline value, and be None for `absent`."""
    wrong = []
    for feature in chosen.columns:
        values = online.get(feature, [])
        if len(values) != len(chosen) + 1:
            wrong.append(f"{feature}: {len(values)} values online for {len(chosen) + 1} entities")
            continue
        if values[-1] is not None:
            wrong.append(f"{feature} of user {absent}, who has no offline rows: {values[-1]!r}, expected None")
        for user, want, got in zip(chosen.index, chosen[feature].tolist(), values[:-1], strict=True):
            if got != want:
                wrong.append(f"{feature} of user {user}: online {got!r}, offline latest {want!r}")
    return wrong


def peak_rss() -> int:
    """Bytes: the peak resident memory of the largest child waited for (Linux reports KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024


def redis_figures(client: redis.Redis) -> dict[str, int]:
    memory = cast("dict[str, Any]", client.info("memory"))
    stats = cast("dict[str, Any]", client.info("stats"))
    return {
        "keys": cast("int", client.dbsize()),
        "used_memory": int(memory["used_memory"]),
        "maxmemory": int(memory["maxmemory"]),
        "evicted_keys": int(stats["evicted_keys"]),
    }


def floor(client: redis.Redis) -> tuple[float, int]:
    """Every hash in Redis read back (not timed), Redis flushed, the same hashes written again
    with pipelined HSET in the writer's chunks: the seconds of the writes and the hashes written."""
    from components.platform.online_writer import CHUNK

    keys = list(client.scan_iter(count=10_000))
    hashes: list[tuple[bytes, dict[bytes, bytes]]] = []
    for begin in range(0, len(keys), CHUNK):
        chunk = keys[begin : begin + CHUNK]
        with client.pipeline(transaction=False) as pipe:
            for key in chunk:
                pipe.hgetall(key)
            hashes.extend(zip(chunk, pipe.execute(), strict=True))
    client.flushall()
    started = time.perf_counter()
    for begin in range(0, len(hashes), CHUNK):
        with client.pipeline(transaction=False) as pipe:
            for key, fields in hashes[begin : begin + CHUNK]:
                pipe.hset(key, mapping=fields)  # type: ignore[arg-type]  # redis-py takes bytes fields too
            pipe.execute()
    return time.perf_counter() - started, len(hashes)


def report(figures: dict[str, Any]) -> None:
    """The table, each figure beside the floor measured in the same run, and the goal's verdict."""
    entities, rows, after = figures["entities"], figures["rows"], figures["redis"]
    seconds, floor_seconds = figures["rebuild"], figures["floor"]
    ratio = seconds / floor_seconds
    print(
        f"rebuild Redis from the offline store: {entities:,} entities ({rows:,} offline rows in S3), "
        f"{len(os.sched_getaffinity(0))} cores"
    )
    print(f"  {'what':<52} {'seconds':>8} {'entities/s':>11} {'rows/s':>11}")
    print(f"  {'floor: pipelined HSET of the same hashes (redis-py)':<52} {floor_seconds:8.2f} "
          f"{entities / floor_seconds:11,.0f} {'':>11}  (baseline)")  # fmt: skip
    print(f"  {'mlops materialize fraud --rebuild (its own timer)':<52} {seconds:8.2f} "
          f"{entities / seconds:11,.0f} {rows / seconds:11,.0f}  {ratio:5.2f}x floor")  # fmt: skip
    print(f"  {'the same command, process start to exit':<52} {figures['wall']:8.2f}  "
          f"peak RSS {figures['peak_rss'] / 2**20:,.0f} MiB")  # fmt: skip
    print(f"  {'(setup, not timed above: upload to S3)':<52} {figures['upload']:8.2f}")
    used = after["used_memory"] - figures["empty_memory"]
    print(
        f"  Redis: {after['keys']:,} hashes, {used / 2**20:,.1f} MiB ({used / max(after['keys'], 1):,.0f} B per "
        f"entity) of maxmemory {after['maxmemory'] / 2**20:,.0f} MiB (the fraud tenant's), "
        f"{after['evicted_keys']} evicted"
    )
    print(f"  read back through Feast for {figures['sampled']:,} sampled entities: equal to the offline latest rows")
    goal = f"goal: {GOAL_ENTITIES:,} entities within {GOAL_FLOOR_RATIO:.0f}x the floor and under {GOAL_SECONDS:.0f} s"
    if entities < GOAL_ENTITIES:
        print(f"{goal}: not measured at this size")
    else:
        met = ratio <= GOAL_FLOOR_RATIO and seconds <= GOAL_SECONDS
        print(f"{goal}: {seconds:.1f} s, {ratio:.2f}x, {'met' if met else 'MISSED'}")


def measure(stack: Stack, home: Path, frame: pd.DataFrame, sample: int, seed: int) -> dict[str, Any]:
    import redis

    from pipelines.local import declaration

    environment = {**os.environ, **stack.environment(), "MLOPS_HOME": str(home)}
    os.environ.update(environment)
    settings = declaration(PIPELINE).config().materialize
    project, service_name = settings.project, settings.feature_service
    _, features, uploaded = publish(project, service_name, frame)
    expected = latest_rows(frame, features)
    client = redis.Redis(host="127.0.0.1", port=stack.ports.redis)
    client.flushall()  # the loss: nothing of the project is online
    empty = redis_figures(client)
    seconds, wall, output = rebuild(environment)
    command_peak = peak_rss()
    after = redis_figures(client)
    if after["evicted_keys"]:
        raise SystemExit(
            f"Redis evicted {after['evicted_keys']:,} keys: {len(expected):,} entities do not fit in maxmemory "
            f"{after['maxmemory']:,} B (raise TENANT_REDIS_MAXMEMORY in pipelines/tenant_stores.py)\n{output}"
        )
    if after["keys"] != len(expected):
        raise SystemExit(f"the rebuild left {after['keys']:,} hashes for {len(expected):,} entities\n{output}")
    sampled = read_back(project, service_name, expected, sample, seed)
    floor_seconds, written = floor(client)
    held = redis_figures(client)["keys"]
    if written != after["keys"] or held != after["keys"]:
        raise SystemExit(f"the floor wrote {written:,} hashes, Redis holds {held:,}; {after['keys']:,} wanted")
    return {
        "entities": len(expected), "rows": len(frame), "rebuild": seconds, "wall": wall, "upload": uploaded,
        "floor": floor_seconds, "redis": after, "peak_rss": command_peak, "empty_memory": empty["used_memory"],
        "sampled": sampled,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    from pipelines.tenant_stores import TENANT_REDIS_MAXMEMORY

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--entities",
        type=int,
        default=int(os.environ.get("MLOPS_BENCH_REBUILD_ENTITIES", GOAL_ENTITIES)),
        help="at least this many users with events in the offline store (env MLOPS_BENCH_REBUILD_ENTITIES)",
    )
    parser.add_argument("--sample", type=int, default=2000, help="entities read back through Feast")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    started = time.perf_counter()
    frame = offline_data(args.entities, args.seed)
    print(f"generated {len(frame):,} events in {time.perf_counter() - started:.1f} s", flush=True)
    root = Path(tempfile.mkdtemp(prefix="mlops-bench-rebuild-"))
    root.chmod(0o755)
    home = Path(tempfile.mkdtemp(prefix="mlops-bench-rebuild-home-"))
    ports = Ports.from_base(process.free_port_base(PORT_SPAN))
    stack = Stack(root=root / "services", ports=ports, redis_maxmemory=TENANT_REDIS_MAXMEMORY)
    try:
        stack.up(SERVICES, echo=True)
        figures = measure(stack, home, frame, args.sample, args.seed)
    finally:
        stack.down(SERVICES)
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(home, ignore_errors=True)
    report(figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
