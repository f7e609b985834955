"""make bench (recovery): the registry database's RPO and RTO with barman-cloud, beside its size.

Issue 34 item 2, on real services it starts itself on loopback (devstack: PostgreSQL 15 and
SeaweedFS S3), archiving WAL with barman-cloud-wal-archive as `mlops dev backup` sets it up
(devstack/backup.py):

1. A registry of --models registered models with --versions versions each, an alias and a
   serving-history tag per model, written with MLflow's client into the stack's PostgreSQL.
2. A base backup (barman-cloud-backup), timed.
3. RPO: --commits times, one registry change is committed and the clock runs until PostgreSQL
   reports its WAL segment archived (pg_stat_archiver) and the segment is listed in the bucket.
   Nothing forces the switch: the segment goes when archive_timeout (--archive-timeout, the
   devstack's 60 s by default) closes it, as it would in production. The RPO is the worst lag.
4. RTO: PostgreSQL stopped and its data directory deleted; `devstack.backup.restore` to the latest
   archived WAL (barman-cloud-restore, WAL replayed through barman-cloud-wal-restore, promoted),
   timed from the stop to the first write accepted. The restored registry is compared with the one
   backed up, including the last change committed.
Goals (issue 34): RPO at most 5 minutes, RTO at most 15 minutes for this registry on 2 cores.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from components.platform.buckets import BACKUPS  # noqa: E402
from devstack import backup, process  # noqa: E402
from devstack.postgres import run_sql  # noqa: E402
from devstack.stack import PORT_SPAN, Ports, Stack  # noqa: E402

__all__ = ["GOAL_RPO_SECONDS", "GOAL_RTO_SECONDS", "main"]

GOAL_RPO_SECONDS = 300.0
GOAL_RTO_SECONDS = 900.0


def populate(uri: str, models: int, versions: int) -> dict[str, Any]:
    """The registry: models x versions (each a source URI, as register leaves it), an alias, a history tag."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    for m in range(models):
        name = f"bench-model-{m}"
        client.create_registered_model(name)
        for v in range(versions):
            client.create_model_version(name, f"s3://models/{name}/v{v + 1}", tags={"artifact_sha256": f"{v:064x}"})
        client.set_registered_model_alias(name, "champion", str(versions))
        client.set_registered_model_tag(name, "mlops.history.0", '{"action": "promote"}')
    return registry_state(uri)


def registry_state(uri: str) -> dict[str, Any]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    state = {}
    for model in client.search_registered_models(max_results=1000):
        count = len(client.search_model_versions(f"name = '{model.name}'", max_results=10000))
        state[model.name] = (count, dict(model.aliases), dict(model.tags))
    return state


def segment_listed(stack: Stack, config: backup.ArchiveConfig, segment: str) -> bool:
    listed = stack.s3_client().list_objects_v2(Bucket=BACKUPS, Prefix=f"{config.server}/wals/{segment[:16]}/{segment}")
    return bool(listed.get("Contents"))


def archive_lag(stack: Stack, uri: str, commit: int) -> float:
    """Seconds from one committed registry change to its WAL segment in the bucket."""
    from mlflow import MlflowClient

    config = backup.archive_config(stack)
    assert config is not None
    MlflowClient(tracking_uri=uri, registry_uri=uri).set_registered_model_tag("bench-model-0", "rpo", str(commit))
    committed = time.monotonic()
    segment = run_sql(stack, "postgres", "select pg_walfile_name(pg_current_wal_insert_lsn())", superuser=True)[0][0]
    backup.wait_archived(stack, switch=False, timeout=GOAL_RPO_SECONDS + config.archive_timeout)
    while not segment_listed(stack, config, segment):
        time.sleep(0.1)
    return time.monotonic() - committed


def database_bytes(stack: Stack) -> tuple[int, int]:
    """The mlflow database's size and the whole cluster's (what the base backup copies)."""
    rows = run_sql(stack, "postgres", "select datname, pg_database_size(datname) from pg_database", superuser=True)
    sizes = {name: size for name, size in rows}
    return sizes["mlflow"], sum(sizes.values())


def measure(stack: Stack, models: int, versions: int, commits: int) -> dict[str, Any]:
    uri = f"postgresql+psycopg://mlops:{stack.db_password}@127.0.0.1:{stack.ports.postgres}/mlflow"
    started = time.perf_counter()
    populate(uri, models, versions)
    populated = time.perf_counter() - started
    registry, cluster = database_bytes(stack)
    taken = backup.base_backup(stack)
    lags = [archive_lag(stack, uri, commit) for commit in range(commits)]
    expected = registry_state(uri)
    started = time.perf_counter()
    stack.down(("postgres",))
    shutil.rmtree(stack.folder("postgres") / "data")
    restored = backup.restore(stack)
    rto = time.perf_counter() - started
    equal = registry_state(uri) == expected
    return {"populated": populated, "registry": registry, "cluster": cluster, "backup": taken.seconds,
            "lags": lags, "rto": rto, "equal": equal, "restored": restored}  # fmt: skip


def report(figures: dict[str, Any], models: int, versions: int, archive_timeout: int) -> bool:
    rpo, rto = max(figures["lags"]), figures["rto"]
    print(f"\nregistry: {models} models x {versions} versions, mlflow database {figures['registry'] / 2**20:.1f} MiB,"
          f" cluster {figures['cluster'] / 2**20:.1f} MiB; archive_timeout {archive_timeout} s")  # fmt: skip
    print(f"  {'what':<58} {'seconds':>8}")
    print(f"  {'(setup: registry written through MLflow)':<58} {figures['populated']:8.2f}")
    print(f"  {'base backup (barman-cloud-backup)':<58} {figures['backup']:8.2f}")
    for number, lag in enumerate(figures["lags"], 1):
        print(f"  {f'commit {number} to its WAL segment in S3 (archive lag)':<58} {lag:8.2f}")
    print(f"  {'restore to the latest WAL: stop to first write (RTO)':<58} {rto:8.2f}")
    print(f"  restored registry {'equal to' if figures['equal'] else 'DIFFERENT from'} the one backed up")
    rpo_met, rto_met = rpo <= GOAL_RPO_SECONDS, rto <= GOAL_RTO_SECONDS
    print(f"RPO goal (<= {GOAL_RPO_SECONDS:.0f} s): {rpo:.1f} s, {'met' if rpo_met else 'MISSED'}")
    print(f"RTO goal (<= {GOAL_RTO_SECONDS:.0f} s): {rto:.1f} s, {'met' if rto_met else 'MISSED'}")
    return bool(figures["equal"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--versions", type=int, default=25)
    parser.add_argument("--commits", type=int, default=2, help="archive-lag samples (each up to --archive-timeout)")
    parser.add_argument("--archive-timeout", type=int, default=backup.ARCHIVE_TIMEOUT)
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="mlops-recovery-bench-"))
    root.chmod(0o755)
    stack = Stack(root=root, ports=Ports.from_base(process.free_port_base(PORT_SPAN)))
    try:
        backup.enable_archiving(stack, archive_timeout=args.archive_timeout)
        stack.up(("postgres", "s3"))
        figures = measure(stack, args.models, args.versions, args.commits)
        return 0 if report(figures, args.models, args.versions, args.archive_timeout) else 1
    finally:
        stack.down()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
