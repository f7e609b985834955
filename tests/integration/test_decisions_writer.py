"""issue 32 on the loopback stack's real SeaweedFS: the scoring transformer writes its decision log with
the tenant's decisions writer, a key that may put `decisions/<tenant>/*` and nothing else.

The transformer held the tenant's own S3 key, which may write the tenant's prefix of every bucket:
a subverted transformer could overwrite a registered model. `mlops tenant add` now also makes the
decisions writer (devstack/tenants.py, DECISIONS_WRITER_ACTIONS: Write on its own decisions prefix),
and `mlops tenant env` exports it as MLOPS_DECISIONS_AWS_*, which the local transformer
(devstack/transformer.py) takes as its S3 key. On the session's tenants stack: the transformer's own
sink, given that key, flushes a batch (nothing spilled: put is all it needs); `mlops isolation-check`'s
`decisions-writer` rows are OK and DENIED; and the writer widened on purpose to whole buckets reads
LEAK on every probe.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import REGISTRY

from components.environment import temporary_env
from components.serving import decision_record
from components.serving.decision_log import DecisionLog, Identity, Offer, open_destination
from components.steps.serving_decisions import decision_log_uri
from devstack.stack import Stack
from devstack.tenants import get_tenant, tenant_environment, write_s3_identities
from devstack.transformer import decisions_writer_variables

pytestmark = pytest.mark.integration
ATTACKER, TARGET = "fraud", "forecast"  # declared tenants (tests/integration/conftest.py tenants_stack)


def _counted(outcome: str) -> float:
    return REGISTRY.get_sample_value("mlops_decision_log_records_total", {"outcome": outcome}) or 0.0


def test_the_transformers_sink_flushes_its_log_with_the_decisions_writer(tenants_stack: Stack, tmp_path: Path) -> None:
    """What the local transformer gets from `mlops tenant env` (the writer over the tenant's key), and
    the sink's real flush with it: one Parquet object under decisions/<tenant>/, nothing spilled."""
    tenant = get_tenant(tenants_stack, ATTACKER)
    env = tenant_environment(tenants_stack, tenant)
    writer = decisions_writer_variables(env)
    assert writer == {"AWS_ACCESS_KEY_ID": tenant.decisions_access_key,
                      "AWS_SECRET_ACCESS_KEY": tenant.decisions_secret_key}  # fmt: skip
    assert writer["AWS_ACCESS_KEY_ID"] != env["AWS_ACCESS_KEY_ID"], "the pipeline's steps keep the tenant's own key"
    identity = Identity(ATTACKER, "writer-probe", "f" * 64, "champion", "writer-probe-00001", "user_id", 0.5)
    sent = [{"user_id": 1, "amount": 2.5}]
    offer = Offer("writer-req", datetime.now(UTC), "3", sent, ["amount"], np.ones((1, 1), dtype=np.float32),
                  [False], np.full(1, 0.75, dtype=np.float32))  # fmt: skip
    spilled, written = _counted("spilled"), _counted("written")
    with temporary_env({**env, **writer}):
        filesystem, root = open_destination(decision_log_uri(ATTACKER))  # what promote renders, for this tenant
        sink = DecisionLog(identity, filesystem, root, spill_dir=tmp_path / "spill", flush_seconds=60)
        sink.offer(offer)
        sink.close()
    assert (_counted("spilled") - spilled, _counted("written") - written) == (0, 1), "the put was refused"
    own = tenants_stack.s3_client(tenant.access_key, tenant.secret_key)
    prefix = f"{ATTACKER}/model=writer-probe/"
    keys = [item["Key"] for item in own.list_objects_v2(Bucket=decision_record.BUCKET, Prefix=prefix)["Contents"]]
    assert len(keys) == 1 and keys[0].endswith(".parquet"), keys
    # the log's writer removes it: the tenant's own key only reads its log (tests/test_decision_evidence.py)
    writes = tenants_stack.s3_client(tenant.decisions_access_key, tenant.decisions_secret_key)
    writes.delete_object(Bucket=decision_record.BUCKET, Key=keys[0])


def _rows(stack: Stack) -> dict[str, str]:
    """The decisions-writer surface's rows as `mlops isolation-check` makes them (its controls, then
    each probe classified), without the seed the other surfaces need (these probes plant their own;
    tests/integration/test_tenancy.py runs the whole check, this surface included)."""
    from functools import partial

    from mlops.isolation import Scene, controls
    from mlops.isolation.decisions_writer import PROBES
    from mlops.isolation.outcomes import classify

    fraud, forecast = get_tenant(stack, ATTACKER), get_tenant(stack, TARGET)
    scene = Scene(stack, fraud, forecast, {})
    attempts = controls(stack, fraud, ["decisions-writer"])
    attempts += [classify(path, partial(probe, scene)) for path, probe in PROBES]
    return {attempt.path: f"{attempt.observed}: {attempt.detail}" for attempt in attempts}


def test_the_isolation_check_finds_the_writer_confined_and_a_widened_one_leaking(tenants_stack: Stack) -> None:
    """`mlops isolation-check`'s decisions-writer rows (mlops/isolation/decisions_writer.py): the control
    OK and every probe DENIED; the writer widened on purpose to every tenant bucket whole: every probe LEAK."""
    from mlops.isolation import DENIED, LEAK, OK
    from mlops.isolation.decisions_writer import OWN, PROBES

    controls, probes = [path for path, _ in OWN], [path for path, _ in PROBES]
    rows = _rows(tenants_stack)
    assert {path: row.split(":")[0] for path, row in rows.items()} == {
        **dict.fromkeys(controls, OK),
        **dict.fromkeys(probes, DENIED),
    }, rows
    write_s3_identities(tenants_stack, broadened_writers=frozenset({ATTACKER}))  # every tenant bucket, whole
    try:
        widened = _rows(tenants_stack)
    finally:
        write_s3_identities(tenants_stack)
    assert {path: row.split(":")[0] for path, row in widened.items()} == {
        **dict.fromkeys(controls, OK),
        **dict.fromkeys(probes, LEAK),
    }, widened
