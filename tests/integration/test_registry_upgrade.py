"""Issue 34 item 6: the registries upgraded across their version pins, rehearsed on real PostgreSQL 15.

A stack of its own (PostgreSQL archiving to SeaweedFS S3 with barman-cloud: the upgrade restores
its data directory) holds an MLflow registry written by the previous MLflow pin (3.16.1, run from a
cached `--no-deps` install in front of this environment: tests/integration/old_pins.py says why
that version and how) with this checkout's register step: two models, two versions each, aliases,
serving-history entries and a lineage record. Then, through the product's command:

1. a migration that fails halfway: a table planted under the name the second new revision creates
   (dc11669786a5's `scheduler_leases`), so 75868b020152 applies and dc11669786a5 fails. `mlops dev
   upgrade` exits 2 naming the revision and the object, after restoring the mlflow database from the
   dump it took: the old revision, the same contents, none of 75868b020152's tables. A row another
   writer put in another database (`offline`) during the attempt is still there; broken on purpose,
   the whole-server restore to the upgrade's restore point (what a failure did before) loses it;
2. the object removed (the fix the error names), `mlops dev upgrade` migrates to 3.17.2's head and
   verifies; the registry the old MLflow wrote reads the same through the current client, and
   `mlops history` and `mlops lineage` read it; a second run has nothing to do.

Feast: the fraud pipeline's materialize step on Feast 0.66.0 writes the SQL registry (the platform's
registry type) in the stack's PostgreSQL, then the same step on 0.67.0 applies onto it. No migration
exists between them (the tables' columns are the same after 0.67 opened them); the objects the old
one registered are read whole by the new one, and both make the same training and holdout sets.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from devstack import backup, process
from devstack.postgres import run_sql
from devstack.stack import PORT_SPAN, Ports, Stack
from tests.conftest import FEATURE_REPO, FEATURES, MATERIALIZE_SETTINGS, evaluate_into
from tests.integration.old_pins import PREVIOUS, run_old

pytestmark = pytest.mark.integration  # runs in make test and make test-integration

A, B = "upgrade-fraud", "upgrade-churn"
WITNESS = "written_during_the_upgrade"  # a table in the offline database, another writer's
PLANTED = "scheduler_leases"  # created by revision dc11669786a5, the second of the two 3.17 brings
FIRST_NEW_TABLE = "sql_trace_metric_daily_rollups"  # created by 75868b020152, the first


def _main(*args: str) -> tuple[int, str, str]:
    from mlops.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def _state(uri: str) -> dict[str, Any]:
    """The drill's view of the registry through the current client: versions, aliases, history."""
    from components.platform import model_registry

    mlflow = model_registry.client_at(uri)
    state: dict[str, Any] = {}
    for name in (A, B):
        model = mlflow.get_registered_model(name)
        versions = sorted(int(v.version) for v in mlflow.search_model_versions(f"name = '{name}'"))
        history = [entry.who for entry in model_registry.history(mlflow, name)]
        state[name] = {"versions": versions, "aliases": dict(model.aliases or {}), "history": history}
    return state


def _tables(stack: Stack, database: str) -> list[tuple[str, str, str]]:
    query = (
        "select table_name, column_name, data_type from information_schema.columns"
        " where table_schema = 'public' order by 1, 2"
    )
    return [tuple(row) for row in run_sql(stack, database, query, superuser=True)]


def _trained(out: Path, materialized: dict[str, Any], rounds: int) -> tuple[str, str, str]:
    from components.config import EvaluateSettings, TrainSettings
    from components.steps.train import train

    model, metadata = out / "model", out / "metadata.json"
    train(
        str(materialized["train"]),
        str(model),
        str(metadata),
        features=FEATURES,
        label_column="is_fraud",
        settings=TrainSettings(model_type="xgboost", params={"num_boost_round": rounds}),
    )
    evaluate_into(out, model, metadata, materialized["holdout"], EvaluateSettings(threshold=0.0))
    return str(model), str(metadata), str(out / "metrics.json")


def _populate_with_old_mlflow(work: Path, uri: str, raw_dataset: Path, materialized: dict[str, Any]) -> dict[str, Any]:
    from components.steps.materialize import materialize

    lineage = work / "lineage.json"
    materialize(
        str(raw_dataset),
        str(FEATURE_REPO),
        str(work / "train.parquet"),
        str(work / "holdout.parquet"),
        store_dir=str(work / "store"),
        settings=MATERIALIZE_SETTINGS,
        lineage_out=str(lineage),
    )
    models = {rounds: _trained(work / f"r{rounds}", materialized, rounds) for rounds in (4, 6, 8)}
    registrations = [
        {
            "name": A,
            "out": str(work / "a1"),
            **dict(zip(("model", "metadata", "metrics"), models[4], strict=True)),
            "lineage": str(lineage),
        },
        {"name": A, "out": str(work / "a2"), **dict(zip(("model", "metadata", "metrics"), models[6], strict=True))},
        {"name": B, "out": str(work / "b1"), **dict(zip(("model", "metadata", "metrics"), models[6], strict=True))},
        {"name": B, "out": str(work / "b2"), **dict(zip(("model", "metadata", "metrics"), models[8], strict=True))},
    ]
    entry = {"action": "promote", "from_version": None, "traffic_percent": 100}
    payload = {
        "uri": uri,
        "artifact_root": (work / "artifacts").as_uri(),
        "registrations": registrations,
        "aliases": [[A, "champion", 1], [B, "champion", 2]],
        "history": [
            [A, {**entry, "to_version": 1, "who": "alice"}],
            [B, {**entry, "to_version": 2, "who": "carol"}],
            [A, {**entry, "to_version": 2, "from_version": 1, "who": "bob"}],
        ],
    }
    return run_old("mlflow", "register", payload)


def _failed_databases(stack: Stack) -> list[str]:
    query = "select datname from pg_database where datname like 'mlflow_failed_%'"
    return [str(row[0]) for row in run_sql(stack, "postgres", query, superuser=True)]


def _failing_upgrade_with_a_write_elsewhere(
    patch: pytest.MonkeyPatch, root: Path, stack: Stack
) -> tuple[tuple[int, str, str], list[tuple[str, Any]]]:
    """`mlops dev upgrade`, whose migration fails; another writer writes to the offline database
    while it runs (after the restore point); the restore point's name and time, as it made them."""
    from devstack import upgrade

    migrate, create_point = upgrade._migrate, backup.create_restore_point
    points: list[tuple[str, Any]] = []

    def migrate_while_another_writes(on: Stack) -> Any:
        run_sql(on, "offline", f"insert into {WITNESS} values ('kept')")
        return migrate(on)

    def noted(on: Stack, name: str) -> Any:
        points.append((name, create_point(on, name)))
        return points[-1][1]

    patch.setattr(upgrade, "_migrate", migrate_while_another_writes)
    patch.setattr(backup, "create_restore_point", noted)
    return _main("dev", "upgrade", "--dir", str(root)), points


@pytest.fixture(scope="module")
def rehearsal(raw_dataset: Path, materialized: dict[str, Any]) -> Iterator[dict[str, Any]]:
    from components.errors import ComponentError
    from devstack.mlflow_server import start_mlflow
    from devstack.upgrade import head_revision, registry_contents, schema_revision

    root = Path(tempfile.mkdtemp(prefix="mlops-upgrade-"))
    root.chmod(0o755)
    stack = Stack(root=root, ports=Ports.from_base(process.free_port_base(PORT_SPAN)))
    work = root / "work"
    uri = f"postgresql+psycopg://mlops:{stack.db_password}@127.0.0.1:{stack.ports.postgres}/mlflow"
    try:
        backup.enable_archiving(stack)
        stack.up(("postgres", "s3"))
        old = _populate_with_old_mlflow(work, uri, raw_dataset, materialized)
        try:  # the current MLflow refuses the old schema; the devstack names the rehearsed way
            start_mlflow(stack)
            refused = ""
        except ComponentError as error:
            refused = str(error)
        written = {
            "revision": schema_revision(stack),
            "contents": registry_contents(stack),
            "tables": _tables(stack, "mlflow"),
        }
        # 1. a migration that fails halfway, while another writer writes to another database
        run_sql(stack, "mlflow", f"create table {PLANTED} (planted integer)", superuser=True)
        run_sql(stack, "offline", f"create table {WITNESS} (written text)")
        planted = {"tables": _tables(stack, "mlflow")}
        with pytest.MonkeyPatch.context() as patch:
            failed, points = _failing_upgrade_with_a_write_elsewhere(patch, root, stack)
        after_failure = {
            "revision": schema_revision(stack),
            "contents": registry_contents(stack),
            "tables": _tables(stack, "mlflow"),
            "set_aside": sorted(p.name for p in (root / "postgres").glob("data.replaced-*")),
            "failed_databases": _failed_databases(stack),
            "witness": run_sql(stack, "offline", f"select written from {WITNESS}"),
        }
        # broken on purpose: the whole server back to the upgrade's restore point loses the other write
        backup.restore(stack, target=points[0][1], restore_point=points[0][0])
        whole_server = {
            "witness": run_sql(stack, "offline", f"select written from {WITNESS}"),
            "contents": registry_contents(stack),
            "failed_databases": _failed_databases(stack),
        }
        # 2. the fix the error names, and the upgrade again
        run_sql(stack, "mlflow", f"drop table {PLANTED}", superuser=True)
        upgraded = _main("dev", "upgrade", "--dir", str(root))
        migrated = {"revision": schema_revision(stack), "contents": registry_contents(stack), "state": _state(uri)}
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("MLFLOW_TRACKING_URI", uri)
            history = _main("history", A)
            lineage = _main("lineage", A, "--version", "1", "--json")
        again = _main("dev", "upgrade", "--dir", str(root))
        yield {
            "stack": stack,
            "root": root,
            "uri": uri,
            "old": old,
            "refused": refused,
            "written": written,
            "planted": planted,
            "failed": failed,
            "after_failure": after_failure,
            "whole_server": whole_server,
            "upgraded": upgraded,
            "migrated": migrated,
            "history": history,
            "lineage": lineage,
            "again": again,
            "head": head_revision(),
            "work": work,
        }
    finally:
        process.stop(stack.pid_file("postgres"), signal.SIGQUIT, 5.0)
        stack.down()
        shutil.rmtree(root, ignore_errors=True)


def test_the_registry_was_written_by_the_previous_mlflow_pin(rehearsal: dict[str, Any]) -> None:
    old, written = rehearsal["old"], rehearsal["written"]
    assert old["version"] == PREVIOUS["mlflow"]
    assert written["revision"] == old["head"] != rehearsal["head"]  # an older schema than the pinned one's
    assert old["versions"] == [[A, 1], [A, 2], [B, 1], [B, 2]]
    refused = rehearsal["refused"]
    assert f"the registry's schema is at revision {old['head']}, older than the pinned MLflow's head" in refused
    assert "starting MLflow would migrate it with no backup" in refused and "mlops dev upgrade --dir" in refused
    counts = {name: contents.count for name, contents in written["contents"].items()}
    assert counts["registered models"] == 2 and counts["model versions"] == 4 and counts["aliases"] == 4
    assert counts["serving-history entries"] == 3 and counts["lineage tags"] > 0 and counts["lineage datasets"] > 0


def test_a_migration_failing_halfway_is_restored_to_the_state_before(rehearsal: dict[str, Any]) -> None:
    code, out, err = rehearsal["failed"]
    assert code == 2, out + err
    assert "mlflow db upgrade (exit 1) failed at revision 75868b020152 -> dc11669786a5" in err, err
    assert PLANTED in err and "the mlflow database restored from its dump taken before the migration" in err, err
    assert "fix: fix the cause the error names" in err and "failure: permanent (exit 2" in err, err
    after, written = rehearsal["after_failure"], rehearsal["written"]
    assert after["revision"] == written["revision"] and after["contents"] == written["contents"]
    # nothing half-migrated: exactly the tables before the attempt, the planted one included, none of 75868b020152's
    assert after["tables"] == rehearsal["planted"]["tables"]
    assert not any(table == FIRST_NEW_TABLE for table, _, _ in after["tables"])
    assert after["set_aside"] == []  # the server was not restored: the mlflow database alone
    assert len(after["failed_databases"]) == 1 and after["failed_databases"][0] in err  # kept for a post-mortem


def test_another_databases_write_during_the_failed_upgrade_survives(rehearsal: dict[str, Any]) -> None:
    assert rehearsal["after_failure"]["witness"] == [("kept",)]  # written while the migration ran, kept
    # broken on purpose: the whole-server restore to the same restore point (the old way) loses it
    whole_server = rehearsal["whole_server"]
    assert whole_server["witness"] == []
    assert whole_server["contents"] == rehearsal["written"]["contents"] and whole_server["failed_databases"] == []


def test_the_upgrade_migrates_and_keeps_versions_aliases_history_and_lineage(rehearsal: dict[str, Any]) -> None:
    code, out, err = rehearsal["upgraded"]
    assert code == 0, out + err
    written, migrated = rehearsal["written"], rehearsal["migrated"]
    assert f"registry schema {written['revision']} -> {rehearsal['head']}" in out, out
    assert (
        "applied 75868b020152 -> dc11669786a5" in out
        and "verified, equal before and after: 2 registered models, 4 model versions, 4 aliases,"
        " 3 serving-history entries"
        in out
    ), out
    assert migrated["revision"] == rehearsal["head"]
    assert migrated["contents"] == written["contents"]  # counts and row digests
    assert migrated["state"] == {
        A: {"versions": [1, 2], "aliases": {"champion": 1, "challenger": 2}, "history": ["alice", "bob"]},
        B: {"versions": [1, 2], "aliases": {"champion": 2, "challenger": 2}, "history": ["carol"]},
    }
    code, again, err = rehearsal["again"]
    assert code == 0 and f"already at MLflow's head {rehearsal['head']}" in again, again + err


def test_history_and_lineage_read_the_migrated_registry(rehearsal: dict[str, Any]) -> None:
    code, history, err = rehearsal["history"]
    assert code == 0 and "alice" in history and "bob" in history, history + err
    code, said, err = rehearsal["lineage"]
    assert code == 0, said + err
    chain = json.loads(said)
    assert chain["version"] == 1 and chain["datasets"], said  # written by the old MLflow, read by the current


@pytest.fixture(scope="module")
def feast_rehearsal(rehearsal: dict[str, Any], raw_dataset: Path) -> dict[str, Any]:
    """The materialize step on Feast 0.66.0, then on 0.67.0, against one SQL registry in PostgreSQL."""
    import feast

    from components.steps.materialize import materialize, open_store

    stack, work = rehearsal["stack"], rehearsal["work"] / "feast"
    registry = f"postgresql+psycopg://mlops:{stack.db_password}@127.0.0.1:{stack.ports.postgres}/feast"

    def config(name: str) -> dict[str, Any]:
        return {
            "project": "fraud",
            "provider": "local",
            "entity_key_serialization_version": 3,
            "registry": {"registry_type": "sql", "path": registry, "cache_ttl_seconds": 0},
            "online_store": {"type": "sqlite", "path": str(work / f"{name}-online.db")},
            "offline_store": {"type": "duckdb"},
        }

    def paths(name: str) -> dict[str, str]:
        return {
            "train": str(work / name / "train.parquet"),
            "holdout": str(work / name / "holdout.parquet"),
            "store_dir": str(work / name / "store"),
        }

    settings = MATERIALIZE_SETTINGS.model_dump()
    old = run_old(
        "feast",
        "materialize",
        {
            "dataset": str(raw_dataset),
            "feature_repo": str(FEATURE_REPO),
            "settings": settings,
            "store_config": config("old"),
            **paths("old"),
        },
    )
    tables = _tables(stack, "feast")
    store = open_store("fraud", work / "read", config("read"))
    read = {
        "entities": sorted(e.name for e in store.list_entities()),
        "sources": sorted(s.name for s in store.list_data_sources()),
        "views": {v.name: sorted(f.name for f in v.features) for v in store.list_feature_views()},
        "services": {
            s.name: sorted(f.name for p in s.feature_view_projections for f in p.features)
            for s in store.list_feature_services()
        },
    }
    new = paths("new")
    summary = materialize(
        str(raw_dataset),
        str(FEATURE_REPO),
        new["train"],
        new["holdout"],
        settings=MATERIALIZE_SETTINGS,
        store_dir=new["store_dir"],
        store_config=config("new"),
    )
    return {
        "old": old,
        "tables": tables,
        "tables_after": _tables(stack, "feast"),
        "read": read,
        "new": summary,
        "version": feast.__version__,
        "work": work,
    }


def test_the_feast_registry_the_previous_pin_wrote_is_read_whole(feast_rehearsal: dict[str, Any]) -> None:
    assert feast_rehearsal["old"]["version"] == PREVIOUS["feast"] and feast_rehearsal["version"] != PREVIOUS["feast"]
    assert feast_rehearsal["tables"], "the old Feast wrote no SQL registry"
    # no schema migration between the pins: 0.67 opened, read and applied onto the tables 0.66 made, unchanged
    assert feast_rehearsal["tables_after"] == feast_rehearsal["tables"]
    read = feast_rehearsal["read"]
    assert read["entities"] == ["user"] and "user_transaction_stats" in read["views"]
    assert read["services"]["fraud_model_v1"] == sorted(set(FEATURES) & set(read["views"]["user_transaction_stats"]))
    assert read["services"]["fraud_model_v1"] == sorted(
        ["txn_count_1h", "txn_count_24h", "amount_avg_7d", "seconds_since_last_txn"]
    )


def test_both_feast_pins_make_the_same_sets_from_that_registry(feast_rehearsal: dict[str, Any]) -> None:
    work = feast_rehearsal["work"]
    for name in ("train", "holdout"):
        old, new = pd.read_parquet(work / "old" / f"{name}.parquet"), pd.read_parquet(work / "new" / f"{name}.parquet")
        assert len(old) > 0
        pd.testing.assert_frame_equal(old, new)
