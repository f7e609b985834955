"""Request outcomes in the devstack's real S3 (SeaweedFS on loopback, the session's shared `stack`), as on the
cluster: the decision log's sink flushes decisions and request outcomes to s3://decisions/<namespace>/, the
outcomes under `_requests/model=/version=/date=/`; the canary analysis's reader
(components/platform/serving_figures.py) reads each version's figures back from S3, the decision reader
sees the decisions only, and a namespace with no outcomes reads as nothing there, not as an error."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from components.environment import temporary_env
from components.platform import decisions, serving_figures
from components.serving import decision_record
from components.serving.decision_log import DecisionLog, Identity, Offer, open_destination
from components.serving.request_log import RequestOutcome
from devstack.stack import Stack

pytestmark = pytest.mark.integration

MODEL = "request-outcomes-probe"  # its own model: the session's other tests log fraud-detector's decisions today
IDENTITY = Identity("fraud", MODEL, "e" * 64, "canary", "fraud-detector-predictor-00002", "user_id", 0.5)
AT = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)


def test_outcomes_land_beside_the_decisions_and_read_back_per_version(stack: Stack, tmp_path: Path) -> None:
    from components.platform import buckets

    buckets.ensure(stack.s3_client(), (decision_record.BUCKET,))
    codes = [200] * 45 + [503] * 5
    with temporary_env(stack.environment()):
        filesystem, root = open_destination(f"s3://{decision_record.BUCKET}/fraud/")
        sink = DecisionLog(IDENTITY, filesystem, root, spill_dir=tmp_path / "spill", flush_seconds=60)
        sink.offer(Offer("s3-outcomes", AT, "7", [{"user_id": 1}], ["amount"], np.ones((1, 1), dtype=np.float32),
                         [False], np.full(1, 0.7, dtype=np.float32)))  # fmt: skip
        for i, code in enumerate(codes):
            sink.offer(RequestOutcome(f"s3-{i}", AT, "7", "answer", code, 10.0 + i, 1))
        sink.offer(RequestOutcome("s3-none", AT, "", "none", 503, 3.0, 1))
        sink.close()
        since, until = AT - timedelta(minutes=1), AT + timedelta(minutes=1)
        figures = serving_figures.from_log(f"s3://{decision_record.BUCKET}/fraud/", MODEL, since, until)
        read = decisions.between(f"s3://{decision_record.BUCKET}/fraud/", MODEL, "2026-12-05", "2026-12-05")
        nothing = serving_figures.from_log(f"s3://{decision_record.BUCKET}/pricing/", MODEL, since, until)
    (version,) = figures.versions.values()
    assert list(figures.versions) == ["7"] and (version.requests, version.server_errors) == (50, 5)
    assert version.p99_ms == pytest.approx(float(np.quantile(10.0 + np.arange(50), 0.99)))
    assert (figures.unattributed.requests, figures.unattributed.server_errors) == (1, 1)
    assert figures.source == f"the decision log's request outcomes at s3://{decision_record.BUCKET}/fraud/_requests/"
    assert read.column("request_id").to_pylist() == ["s3-outcomes"]  # the decision reader never sees `_requests`
    assert nothing.versions == {} and nothing.missing, nothing
