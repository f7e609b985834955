"""A tenant cannot forge its own decision evidence, on the real SeaweedFS of the tenancy stack.

The finding: a tenant's S3 key could write all of `decisions/<tenant>/`, the decision log the scoring
transformer writes and an auditor reads to learn which model made which decision; so the tenant could
put, overwrite or delete its own decisions. Its key now writes only `decisions/<tenant>/_outcomes/`
(components/platform/tenant_s3.py). Here, in the attacker's order:
- positive controls: the tenant's key stores its outcomes with the outcome writer's own code
  (`mlops outcomes ingest`'s) and reads its log; the decisions writer still writes the log;
- the forbidden paths: `mlops isolation-check`'s `decisions` rows, the self-forgery ones included,
  all DENIED;
- the control broken on purpose: the tenant given back the old Write on `decisions/<tenant>/*`
  (`write_s3_identities(writes_own_log=...)`), and the same rows report each forgery as a LEAK.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from components.config import load_config
from components.environment import temporary_env
from components.platform import outcomes
from components.platform.tenant_s3 import OUTCOMES_FOLDER
from components.serving.decision_log import DecisionLog, Identity, Offer, open_destination
from components.serving.decision_record import BUCKET, prefix
from devstack.stack import Stack
from devstack.tenants import get_tenant, write_s3_identities
from mlops.isolation import DENIED, LEAK, OK, Scene, check
from mlops.isolation.decisions import PROBES
from mlops.isolation.outcomes import classify
from tests.conftest import REPO

pytestmark = pytest.mark.integration
TENANT, OTHER = "fraud", "forecast"  # declared tenants (tests/integration/conftest.py tenants_stack)
SELF_FORGERY = [path for path, _ in PROBES if path.startswith("decisions own key ")]


def _logged(s3: Any, model: str) -> set[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=f"{TENANT}/model={model}/")
    return {item["Key"] for page in pages for item in page.get("Contents", [])}


def _self_forgery(stack: Stack) -> dict[str, str]:
    """The self-forgery rows (the tenant's key on its own log), each classified as the check does."""
    tenant = get_tenant(stack, TENANT)
    scene = Scene(stack, tenant, get_tenant(stack, OTHER), {})
    rows = [classify(path, partial(probe, scene)) for path, probe in PROBES if path in SELF_FORGERY]
    return {row.path: f"{row.observed}: {row.detail}" for row in rows}


def test_the_writer_logs_and_the_tenants_key_ingests_its_outcomes(tenants_stack: Stack, tmp_path: Path) -> None:
    """Positive controls, the real code paths: the transformer's sink logs a decision with the decisions
    writer; `mlops outcomes ingest`'s `ingest`, with the tenant's own key, joins a label to it and stores
    it under `decisions/<tenant>/_outcomes/`, and reads it back."""
    tenant = get_tenant(tenants_stack, TENANT)
    cfg = load_config(REPO / "pipelines" / "fraud" / "config.yaml")
    model, entity = cfg.register_.model_name, cfg.materialize.entity_column
    request = f"evidence-{time.time_ns()}"
    identity = Identity(TENANT, model, "e" * 64, "champion", "evidence-00001", entity, 0.5)
    offer = Offer(request, datetime.now(UTC), "1", [{entity: 7}], ["amount"], np.ones((1, 1), dtype=np.float32),
                  [False], np.full(1, 0.75, dtype=np.float32))  # fmt: skip
    writer = {"AWS_ACCESS_KEY_ID": tenant.decisions_access_key, "AWS_SECRET_ACCESS_KEY": tenant.decisions_secret_key}
    own = {"AWS_ACCESS_KEY_ID": tenant.access_key, "AWS_SECRET_ACCESS_KEY": tenant.secret_key}
    endpoint = {"AWS_ENDPOINT_URL": tenants_stack.s3_endpoint}
    root = f"s3://{BUCKET}/{prefix(TENANT)}"
    reader = tenants_stack.s3_client(tenant.access_key, tenant.secret_key)
    before = _logged(reader, model)
    with temporary_env({**writer, **endpoint}):
        filesystem, base = open_destination(root)
        sink = DecisionLog(identity, filesystem, base, spill_dir=tmp_path / "spill", flush_seconds=60)
        sink.offer(offer)
        sink.close()
    logged = _logged(reader, model) - before
    assert len(logged) == 1, logged  # read and listed with the tenant's own key
    labels = tmp_path / "labels.csv"
    pd.DataFrame({"decision_id": [f"{request}/0"], cfg.materialize.label_column: [1]}).to_csv(labels, index=False)
    summary: dict[str, Any] = {"files": []}
    try:
        with temporary_env({**own, **endpoint}):
            summary = outcomes.ingest(root, str(labels), cfg)
            stored = outcomes.read_outcomes(root, model)
    finally:
        for key in summary["files"]:  # its outcomes: the tenant's key removes them
            reader.delete_object(Bucket=BUCKET, Key=key.removeprefix(f"{BUCKET}/"))
        remover = tenants_stack.s3_client(tenant.decisions_access_key, tenant.decisions_secret_key)
        for key in logged:  # the log: only its writer may
            remover.delete_object(Bucket=BUCKET, Key=key)
    assert all(f.startswith(f"{BUCKET}/{TENANT}/{OUTCOMES_FOLDER}/model={model}/") for f in summary["files"]), summary
    assert (summary["joined"], summary["stored"]) == (1, 1), summary
    assert f"{request}/0" in set(stored["decision_id"]), stored


def test_the_tenant_cannot_rewrite_its_log_and_the_old_wide_grant_is_seen_forging_it(tenants_stack: Stack) -> None:
    """The decisions surface's control OK (the writer logs, the tenant reads it and writes its
    outcomes), every row of the whole decisions surface DENIED; then, with the old wide grant on
    purpose, every self-forgery row LEAK while another tenant's log stays closed."""
    tenant, other = get_tenant(tenants_stack, TENANT), get_tenant(tenants_stack, OTHER)
    attempts = check(tenants_stack, tenant, other, ["decisions"])
    assert {a.path: a.observed for a in attempts if a.expected == OK} == {"own: decision log in own prefix": OK}
    rows = {a.path: f"{a.observed}: {a.detail}" for a in attempts if a.expected != OK}
    assert len(rows) == len(PROBES) and set(SELF_FORGERY) <= set(rows), rows
    assert all(row.startswith(f"{DENIED}: ") for row in rows.values()), rows
    assert write_s3_identities(tenants_stack, writes_own_log=frozenset({TENANT})) == "reloaded"
    try:
        widened = check(tenants_stack, tenant, other, ["decisions"])
    finally:
        assert write_s3_identities(tenants_stack) == "reloaded"
    seen = {a.path: f"{a.observed}: {a.detail}" for a in widened}
    assert {path: row.split(":")[0] for path, row in seen.items()} == {
        "own: decision log in own prefix": OK,
        **{path: LEAK if path in SELF_FORGERY else DENIED for path, _ in PROBES},
    }, seen
    restored = {path: row.split(":")[0] for path, row in _self_forgery(tenants_stack).items()}
    assert restored == dict.fromkeys(SELF_FORGERY, DENIED), restored
