"""The backup drill of issue 34 item 2, on real PostgreSQL 15, barman-cloud 3.4 and SeaweedFS S3.

A small stack of its own (PostgreSQL and S3 only: the session's stack must not lose its database)
archives its WAL with barman-cloud-wal-archive. The MLflow registry lives in its PostgreSQL (the
client talks to the database directly; no tracking server needed to drill the database). The
module's fixture runs the drill once through the product's commands, `mlops dev backup` and
`mlops dev restore [--to TIME]`, and records what the registry holds at each point:

1. two registered models made by the real steps, several versions, aliases, a serving-history
   entry, lineage;
2. a base backup; the time noted;
3. more changes: a new version, the champion alias moved, a history entry;
4. PostgreSQL stopped, its data directory destroyed;
5. restored to the latest archived WAL: every change is there;
6. restored to the noted time: exactly the state before the later changes.

After each restore `mlops history` and `mlops lineage` run on the restored registry. Not run here:
`mlops serve` (a Triton server, minutes) and `mlops reproduce` (a retraining): they read the
registry through the same client that history and lineage exercise.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack import backup, process
from devstack.stack import PORT_SPAN, Ports, Stack
from tests.conftest import FEATURE_REPO, FEATURES, MATERIALIZE_SETTINGS, evaluate_into

A, B = "drill-fraud", "drill-churn"


def _main(*args: str) -> tuple[int, str]:
    from mlops.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(list(args))
    return code, out.getvalue()


def _state(uri: str) -> dict[str, Any]:
    """What the registry holds for the drill's models: versions, aliases, serving-history keys."""
    from components.platform import model_registry

    mlflow = model_registry.client_at(uri)
    state: dict[str, Any] = {}
    for name in (A, B):
        model = mlflow.get_registered_model(name)
        versions = sorted(int(v.version) for v in mlflow.search_model_versions(f"name = '{name}'"))
        history = sorted(k for k in (model.tags or {}) if k.startswith(model_registry.HISTORY_PREFIX))
        state[name] = {"versions": versions, "aliases": dict(model.aliases or {}), "history": history}
    return state


def _register(out: Path, model: Path, metadata: Path, metrics: Path, name: str, uri: str, root: Path,
              **extra: Any) -> int:  # fmt: skip
    from components.config import RegisterSettings
    from components.steps.register import register

    out.mkdir(parents=True, exist_ok=True)
    summary = register(str(model), str(metadata), str(metrics), str(out / "registration.json"), str(out / "card.md"),
                       settings=RegisterSettings(model_name=name, experiment="drill"), pipeline="fraud",
                       tracking_uri=uri, artifact_root=(root / "artifacts").as_uri(), **extra)  # fmt: skip
    return int(summary["version"])


def _trained(out: Path, materialized: dict[str, Any], rounds: int) -> tuple[Path, Path, Path]:
    from components.config import EvaluateSettings, TrainSettings
    from components.steps.train import train

    model, metadata = out / "model", out / "metadata.json"
    train(str(materialized["train"]), str(model), str(metadata), features=FEATURES, label_column="is_fraud",
          settings=TrainSettings(model_type="xgboost", params={"num_boost_round": rounds}))  # fmt: skip
    evaluate_into(out, model, metadata, materialized["holdout"], EvaluateSettings(threshold=0.0))
    return model, metadata, out / "metrics.json"


def _after_restore(root: Path, uri: str, *restore: str) -> dict[str, Any]:
    code, said = _main("dev", "restore", "--dir", str(root), *restore)
    assert code == 0, said
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        history = _main("history", A)
        lineage = _main("lineage", A, "--version", "1", "--json")
    return {"said": said, "state": _state(uri), "history": history, "lineage": lineage}


@pytest.fixture(scope="module")
def drill(
    raw_dataset: Path, materialized: dict[str, Any], trained: dict[str, Path], evaluated: dict[str, Path]
) -> Iterator[dict[str, Any]]:
    from components.platform import model_registry
    from components.steps.materialize import materialize
    from devstack.postgres import run_sql

    root = Path(tempfile.mkdtemp(prefix="mlops-backup-drill-"))
    root.chmod(0o755)
    stack = Stack(root=root, ports=Ports.from_base(process.free_port_base(PORT_SPAN)))
    work = root / "work"
    uri = f"postgresql+psycopg://mlops:{stack.db_password}@127.0.0.1:{stack.ports.postgres}/mlflow"
    try:
        backup.enable_archiving(stack)  # the default archive_timeout: the drill switches segments itself
        stack.up(("postgres", "s3"))
        lineage = work / "lineage.json"
        materialize(str(raw_dataset), str(FEATURE_REPO), str(work / "train.parquet"), str(work / "holdout.parquet"),
                    store_dir=str(work / "store"), settings=MATERIALIZE_SETTINGS, lineage_out=str(lineage))  # fmt: skip
        shipped = (trained["model"], trained["metadata"], evaluated["metrics"])
        small, other = _trained(work / "r5", materialized, 5), _trained(work / "r8", materialized, 8)
        # 1. the registry: A v1 (with lineage, champion, promoted), A v2; B v1, B v2 (champion v2)
        _register(work / "a1", *shipped, A, uri, work, lineage=str(lineage))
        _register(work / "a2", *small, A, uri, work)
        _register(work / "b1", *shipped, B, uri, work)
        _register(work / "b2", *other, B, uri, work)
        mlflow = model_registry.client_at(uri)
        mlflow.set_registered_model_alias(A, "champion", "1")
        mlflow.set_registered_model_alias(B, "champion", "2")
        model_registry.append_history(mlflow, A, model_registry.HistoryEntry(
            action="promote", to_version=1, from_version=None, traffic_percent=100, who="alice"))  # fmt: skip
        before = _state(uri)
        # 2. a base backup, through the product's command; then the time to restore to
        backed_up = _main("dev", "backup", "--dir", str(root))
        listed = _main("dev", "backup", "--list", "--dir", str(root))
        noted = run_sql(stack, "postgres", "select now()", superuser=True)[0][0]
        # 3. later changes: A v3 (new bytes), A's champion moved to v2 with its history entry
        _register(work / "a3", *other, A, uri, work)
        mlflow.set_registered_model_alias(A, "champion", "2")
        model_registry.append_history(mlflow, A, model_registry.HistoryEntry(
            action="promote", to_version=2, from_version=1, traffic_percent=100, who="bob"))  # fmt: skip
        after = _state(uri)
        archived_in = backup.wait_archived(stack)
        # 4. PostgreSQL gone with its data directory
        stack.down(("postgres",))
        shutil.rmtree(stack.folder("postgres") / "data")
        # 5. and 6.
        latest = _after_restore(root, uri)
        earlier = _after_restore(root, uri, "--to", noted.isoformat())
        yield {"stack": stack, "before": before, "after": after, "backed_up": backed_up, "noted": noted,
               "latest": latest, "earlier": earlier, "listed": listed, "archived_in": archived_in}  # fmt: skip
    finally:
        # a throwaway cluster: immediate shutdown, not a wait for the archiver to ship the last WAL
        process.stop(stack.pid_file("postgres"), signal.SIGQUIT, 5.0)
        stack.down()
        shutil.rmtree(root, ignore_errors=True)


def test_the_drill_started_from_a_populated_registry_and_changed_it(drill: dict[str, Any]) -> None:
    before, after = drill["before"], drill["after"]
    assert before[A] == {
        "versions": [1, 2],
        "aliases": {"challenger": 2, "champion": 1},
        "history": before[A]["history"],
    }
    assert len(before[A]["history"]) == 1 and before[B]["versions"] == [1, 2] and before[B]["aliases"]["champion"] == 2
    assert after[A]["versions"] == [1, 2, 3] and after[A]["aliases"]["champion"] == 2
    assert len(after[A]["history"]) == 2 and after[B] == before[B]
    code, said = drill["backed_up"]
    assert code == 0 and "base backup " in said, said
    backup_id = said.split()[2]
    code, listed = drill["listed"]
    assert code == 0 and listed.split() == [backup_id, "ended", said.split(" ended ")[1].split()[0]], listed


def test_restore_to_the_latest_point_has_every_change(drill: dict[str, Any]) -> None:
    latest = drill["latest"]
    assert "to the latest archived WAL" in latest["said"]
    assert latest["state"] == drill["after"]
    code, history = latest["history"]
    assert code == 0 and "bob" in history and "alice" in history, history


def test_restore_to_a_point_in_time_is_exactly_the_earlier_state(drill: dict[str, Any]) -> None:
    earlier = drill["earlier"]
    assert earlier["state"] == drill["before"]
    assert earlier["state"] != drill["after"]  # the later version, alias move and history entry are gone
    code, history = earlier["history"]
    assert code == 0 and "alice" in history and "bob" not in history, history
    # the replaced (latest) data directory was set aside, not deleted
    assert "the replaced data directory is" in earlier["said"]


def test_lineage_reads_the_restored_registry(drill: dict[str, Any]) -> None:
    import json

    chains = {}
    for restored in ("latest", "earlier"):
        code, said = drill[restored]["lineage"]
        assert code == 0, said
        chains[restored] = json.loads(said)
        # v1 was registered with materialize's lineage record: its datasets survive both restores
        assert chains[restored]["version"] == 1 and chains[restored]["datasets"], said
    # champion left v1 after the backup: the latest restore has it moved, the earlier one not yet
    assert "champion" not in chains["latest"]["aliases"] and "champion" in chains["earlier"]["aliases"]


def test_a_restore_before_the_first_backup_is_refused(drill: dict[str, Any]) -> None:
    from components.errors import ComponentError

    ended = dt.datetime.fromisoformat(drill["backed_up"][1].split(" ended ")[1].split(" ")[0])
    with pytest.raises(ComponentError, match=r"no base backup .* ended before"):
        backup.restore(drill["stack"], target=ended - dt.timedelta(minutes=1))
    assert drill["stack"].running("postgres")  # refused before anything was stopped


def test_a_missing_barman_cloud_names_the_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from components.errors import ComponentError

    monkeypatch.setenv("PATH", str(tmp_path))  # no barman-cloud-* anywhere on it
    with pytest.raises(ComponentError) as raised:
        backup.enable_archiving(Stack(root=tmp_path))
    assert "apt-get install barman-cli-cloud" in str(raised.value)
    assert not (tmp_path / "postgres").exists()  # nothing half-written
    # a stack that archives, and lost its barman-cloud since: the restore stops before touching the data
    stack = Stack(root=tmp_path)
    (tmp_path / "postgres" / "barman").mkdir(parents=True)
    (tmp_path / "postgres" / "barman" / "archive.json").write_text('{"server": "devstack", "archive_timeout": 60}')
    (tmp_path / "postgres" / "data").mkdir()
    with pytest.raises(ComponentError, match="barman-cloud-restore is not installed") as raised:
        backup.restore(stack)
    assert "apt-get install barman-cli-cloud" in str(raised.value)
    assert sorted(p.name for p in (tmp_path / "postgres").iterdir()) == ["barman", "data"]  # data not moved
