"""The devstack's PostgreSQL backed up with barman-cloud to the local S3, and restored from it.

Issue 34 item 2: the same tool CloudNativePG's backups run on the cluster (pipelines/backups.py),
drilled on the loopback services. `enable_archiving` turns on WAL archiving for a stack: PostgreSQL
(devstack.postgres, through `server_settings`) then ships every WAL segment with
`barman-cloud-wal-archive` to `s3://postgres-backups/<server>/wals/`, at least every
`archive_timeout` seconds (the RPO). `base_backup` runs `barman-cloud-backup`; `restore` stops
PostgreSQL, puts the data directory aside, fetches the newest base backup before the target with
`barman-cloud-restore` and replays the archived WAL (`barman-cloud-wal-restore` as the
restore_command) to the latest point or to a time, then promotes. `mlops dev backup|restore` and
benchmarks/recovery_bench.py run them; docs/recovery.md has the procedure.

Debian's barman-cli-cloud 3.4: `apt-get install barman-cli-cloud`. The S3 key is the stack's admin
key, written for PostgreSQL's archive and restore commands into 0700 scripts only the service user
reads. Segments and backups are stored uncompressed: the loopback store is not short of space, and
a devstack restore should not spend its CPU on gzip.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components.errors import ComponentError, TransientError
from components.platform.buckets import BACKUPS
from devstack import process

if TYPE_CHECKING:
    from devstack.stack import Stack

__all__ = [
    "ARCHIVE_SERVER",
    "ARCHIVE_TIMEOUT",
    "ArchiveConfig",
    "Backup",
    "Restored",
    "archive_config",
    "backups",
    "barman_binary",
    "base_backup",
    "create_restore_point",
    "enable_archiving",
    "restore",
    "server_settings",
    "wait_archived",
]

STEP = "dev"
ARCHIVE_SERVER = "devstack"
"""The archive's server name under s3://postgres-backups/ (the cluster's is ARCHIVE_SERVER in pipelines/backups.py)."""
ARCHIVE_TIMEOUT = 60
"""Seconds after which a WAL segment with changes is archived even when not full: the RPO bound (goal 5 min)."""
INSTALL = "apt-get install barman-cli-cloud (Debian's barman-cloud 3.4, the tool CloudNativePG's backups run)"


@dataclass(frozen=True)
class ArchiveConfig:
    """What `enable_archiving` wrote: where WAL goes and how often at least."""

    server: str = ARCHIVE_SERVER
    archive_timeout: int = ARCHIVE_TIMEOUT

    @property
    def url(self) -> str:
        return f"s3://{BACKUPS}"


@dataclass(frozen=True)
class Backup:
    """One base backup in the archive: its id and when it ended (UTC)."""

    backup_id: str
    end_time: dt.datetime
    seconds: float = 0.0


@dataclass(frozen=True)
class Restored:
    """A finished restore: the base backup it started from, the target, the wall time (the RTO)."""

    backup_id: str
    target: dt.datetime | None
    seconds: float
    set_aside: Path | None


def barman_binary(name: str) -> str:
    """A barman-cloud command, or a clear error naming the package."""
    found = shutil.which(name)
    if not found:
        raise ComponentError(STEP, f"{name} is not installed (barman-cloud backs up the stack's PostgreSQL)", INSTALL)
    return found


def _folder(stack: Stack) -> Path:
    return stack.folder("postgres") / "barman"


def _config_file(stack: Stack) -> Path:
    return _folder(stack) / "archive.json"


def archive_config(stack: Stack) -> ArchiveConfig | None:
    """The stack's archiving, or None when `enable_archiving` was never run for it."""
    try:
        return ArchiveConfig(**json.loads(_config_file(stack).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _cloud(stack: Stack) -> list[str]:
    return ["--cloud-provider", "aws-s3", "--endpoint-url", stack.s3_endpoint]


def _environment(stack: Stack) -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": stack.access_key,
        "AWS_SECRET_ACCESS_KEY": stack.secret_key,
        "AWS_DEFAULT_REGION": "us-east-1",
    }


def enable_archiving(
    stack: Stack, *, archive_timeout: int = ARCHIVE_TIMEOUT, server: str = ARCHIVE_SERVER
) -> ArchiveConfig:
    """Write the archive and restore scripts and the config; PostgreSQL archives from its next start."""
    config = ArchiveConfig(server=server, archive_timeout=archive_timeout)
    archive, restore_wal = barman_binary("barman-cloud-wal-archive"), barman_binary("barman-cloud-wal-restore")
    folder = _folder(stack)
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    exports = "".join(f"export {key}={shlex.quote(value)}\n" for key, value in _environment(stack).items())
    common = " ".join(shlex.quote(part) for part in [*_cloud(stack), config.url, config.server])
    for name, command in (
        ("wal-archive", f'exec {archive} {common} "$1"'),
        ("wal-restore", f'exec {restore_wal} {common} "$1" "$2"'),
    ):
        script = folder / name
        process.write_private(script, f"#!/bin/sh\n# {name} for PostgreSQL (devstack.backup)\n{exports}{command}\n")
        script.chmod(0o700)
    process.write_private(_config_file(stack), json.dumps(asdict(config)))
    process.give_to_service_user(folder)
    return config


def server_settings(stack: Stack) -> list[str]:
    """PostgreSQL's `-c` settings for archiving (once enabled) and for a restore in progress."""
    config = archive_config(stack)
    settings = []
    if config is not None:
        command = f"{_folder(stack) / 'wal-archive'} %p"
        settings += ["-c", "archive_mode=on", "-c", f"archive_command={command}"]
        settings += ["-c", f"archive_timeout={config.archive_timeout}"]
    recovering = (stack.folder("postgres") / "data" / "recovery.signal").exists()
    if recovering and _recovery_file(stack).exists():
        # Given on the command line, not written to a file: gone at the next start after promotion.
        recovery = json.loads(_recovery_file(stack).read_text())
        target, point = recovery["target"], recovery.get("restore_point")
        settings += ["-c", f"restore_command={_folder(stack) / 'wal-restore'} %f %p"]
        settings += ["-c", "recovery_target_timeline=latest"]
        if point:  # one recovery target only: the named point (create_restore_point), not its time
            settings += ["-c", f"recovery_target_name={point}", "-c", "recovery_target_action=promote"]
        elif target:
            settings += ["-c", f"recovery_target_time={target}", "-c", "recovery_target_action=promote"]
    return settings


def create_restore_point(stack: Stack, name: str) -> dt.datetime:
    """A named restore point (pg_create_restore_point) now, its WAL archived before this returns; the
    point's time (UTC), which `restore(target=..., restore_point=name)` picks its base backup by."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,62}", name):
        raise ComponentError(STEP, f"restore point name {name!r} is not [a-z0-9._-]", "e.g. mlops-upgrade-20261206")
    _required(stack)
    _sql(stack, f"select pg_create_restore_point('{name}')")
    created: dt.datetime = _sql(stack, "select now()")[0][0]
    wait_archived(stack)
    return created.astimezone(dt.UTC)


def _recovery_file(stack: Stack) -> Path:
    return _folder(stack) / "recovery.json"


def _required(stack: Stack) -> ArchiveConfig:
    config = archive_config(stack)
    if config is None:
        raise ComponentError(
            STEP,
            f"the stack under {stack.root} does not archive its WAL to s3://{BACKUPS}",
            "mlops dev backup turns archiving on (it restarts PostgreSQL once)",
        )
    return config


def _sql(stack: Stack, statement: str) -> Any:
    from devstack.postgres import run_sql

    return run_sql(stack, "postgres", statement, superuser=True)


def _barman(stack: Stack, name: str, *args: str, timeout: float = 600) -> str:
    argv = [barman_binary(name), *_cloud(stack), *args]
    try:
        done = subprocess.run(
            argv,
            env={**os.environ, **_environment(stack)},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        raise TransientError(
            STEP, f"{name} did not finish in {timeout:.0f} s", "check the S3 service; retry"
        ) from error
    if done.returncode != 0:
        raise TransientError(
            STEP,
            f"{name} failed ({done.returncode}):\n{(done.stderr or done.stdout).strip()[-1500:]}",
            f"check that the stack's S3 answers at {stack.s3_endpoint} (mlops dev status) and retry",
        )
    return done.stdout


def backups(stack: Stack) -> list[Backup]:
    """The finished base backups in the stack's archive, oldest first.

    Read from each backup's backup.info in the bucket (what barman-cloud-backup-list reads), with the
    stack's S3 client: a restore should not spend a second Python start on listing.
    """
    config = _required(stack)
    s3 = stack.s3_client()
    found = []
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BACKUPS, Prefix=f"{config.server}/base/")
    for key in (item["Key"] for page in pages for item in page.get("Contents", [])):
        if not key.endswith("/backup.info"):
            continue
        fields = dict(
            line.split("=", 1)
            for line in s3.get_object(Bucket=BACKUPS, Key=key)["Body"].read().decode().splitlines()
            if "=" in line
        )
        if fields.get("status") != "DONE":
            continue
        ended = dt.datetime.fromisoformat(fields["end_time"])
        ended = ended.astimezone(dt.UTC) if ended.tzinfo else ended.astimezone().astimezone(dt.UTC)
        found.append(Backup(backup_id=key.split("/")[-2], end_time=ended))
    return sorted(found, key=lambda backup: backup.end_time)


def wait_archived(stack: Stack, *, switch: bool = True, timeout: float = 120) -> float:
    """Seconds until the WAL segment holding everything committed so far is in S3.

    `switch`: close the segment now (pg_switch_wal), as before a planned restore; without it the
    segment goes when full or at archive_timeout, which is what the RPO measures.
    """
    segment = _sql(stack, "select pg_walfile_name(pg_current_wal_insert_lsn())")[0][0]
    started = time.monotonic()
    if switch:
        _sql(stack, "select pg_switch_wal()")
    while True:
        archived, failed = _sql(stack, "select last_archived_wal, last_failed_wal from pg_stat_archiver")[0]
        if archived is not None and archived[:24] >= segment:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise TransientError(
                STEP,
                f"WAL segment {segment} not archived after {timeout:.0f} s"
                f" (last archived {archived}, last failed {failed})",
                f"read {stack.log('postgres')} for barman-cloud-wal-archive's error; check the S3 service",
            )
        time.sleep(0.1)


def base_backup(stack: Stack) -> Backup:
    """A base backup now (barman-cloud-backup, immediate checkpoint); enables archiving first if needed."""
    from devstack.postgres import start_postgres

    config = archive_config(stack)
    if config is None or _sql(stack, "show archive_mode")[0][0] != "on":
        config = config or enable_archiving(stack)
        process.stop(stack.pid_file("postgres"), signal.SIGINT, 20.0)
        start_postgres(stack)
    started = time.monotonic()
    sockets = str(stack.folder("postgres") / "sockets")
    _barman(stack, "barman-cloud-backup", "-h", sockets, "-p", str(stack.ports.postgres), "-U", "postgres",
            "--immediate-checkpoint", config.url, config.server)  # fmt: skip
    seconds = time.monotonic() - started
    newest = backups(stack)[-1]
    return Backup(backup_id=newest.backup_id, end_time=newest.end_time, seconds=seconds)


def _chosen(stack: Stack, target: dt.datetime | None) -> Backup:
    found = [b for b in backups(stack) if target is None or b.end_time < target]
    if not found:
        raise ComponentError(
            STEP,
            f"no base backup in s3://{BACKUPS}/{_required(stack).server} ended before {target or 'now'}",
            "pick a later --to (after the first backup's end: mlops dev backup --list), or take one: mlops dev backup",
        )
    return found[-1]


def restore(
    stack: Stack, *, target: dt.datetime | None = None, keep_old: bool = True, restore_point: str | None = None
) -> Restored:
    """Replace the data directory from the archive, to `target` (UTC) or to the last archived WAL.

    PostgreSQL is stopped; the old data directory is renamed `data.replaced-<UTC>` (`keep_old`) or
    deleted; the newest base backup ended before the target is fetched, WAL replayed and the server
    promoted. Returns when it accepts writes again. With `restore_point` (a name given to
    `create_restore_point`, `target` its time) replay stops exactly at that point instead.
    """
    from devstack.postgres import start_postgres

    if target is not None and target.tzinfo is None:
        raise ComponentError(STEP, f"the restore target {target} has no time zone", "give it one: 2026-12-05T09:30Z")
    started = time.monotonic()
    config = _required(stack)
    for needed in ("barman-cloud-restore", "barman-cloud-wal-restore"):
        barman_binary(needed)  # before anything is stopped or moved
    chosen = _chosen(stack, target)
    process.stop(stack.pid_file("postgres"), signal.SIGINT, 20.0)
    data = stack.folder("postgres") / "data"
    set_aside = None
    if data.exists():
        if keep_old:
            set_aside = data.with_name(f"data.replaced-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}")
            data.rename(set_aside)
        else:
            shutil.rmtree(data)
    _barman(stack, "barman-cloud-restore", config.url, config.server, chosen.backup_id, str(data))
    recovery = {"target": target.isoformat() if target else None, "restore_point": restore_point}
    process.write_private(_recovery_file(stack), json.dumps(recovery))
    (data / "recovery.signal").touch()
    data.chmod(0o700)
    process.give_to_service_user(data)
    start_postgres(stack)
    process.wait_until(
        lambda: not _sql(stack, "select pg_is_in_recovery()")[0][0],
        what="PostgreSQL's recovery",
        log=stack.log("postgres"),
        pid=process.read_pid(stack.pid_file("postgres")) or 0,
        timeout=600,
    )
    _recovery_file(stack).unlink()
    return Restored(chosen.backup_id, target, time.monotonic() - started, set_aside)
