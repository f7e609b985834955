"""A tenant cannot forge its own decision evidence: its S3 key reads and lists `decisions/<t>/` but writes
only `decisions/<t>/_outcomes/` (components/platform/tenant_s3.py), on the loopback stack (SeaweedFS
identity actions, devstack/tenants.py) and on the cluster (the MinIO policy the platform team attaches
to tenant-s3-credentials) alike. Both renderings are evaluated here on the same requests, as each server
matches them; the real SeaweedFS's answers are tests/integration/test_decision_evidence.py's.
"""

from __future__ import annotations

import fnmatch
import json
from typing import Any

import pytest
import yaml

from components.platform.buckets import DECISIONS, TENANT_BUCKETS
from components.platform.outcomes import outcomes_root
from components.platform.tenant_s3 import MINIO_ACTIONS, OUTCOMES_FOLDER, USAGE, main, minio_policy, tenant_write_prefix
from components.serving.decision_record import file_key
from devstack.tenants import s3_actions
from tests.conftest import REPO

DECISION = file_key("fraud", "fraud-detector", "3", "2026-12-05", part="abc")
OUTCOME = f"{outcomes_root('s3://decisions/fraud/').removeprefix('s3://decisions/')}model=fraud-detector/x.parquet"


def _seaweed_allows(actions: list[str], verb: str, bucket: str, key: str) -> bool:
    """SeaweedFS's identity check: an action ending in `*` grants every `<verb>:<bucket>/<key>` it is a
    prefix of; one without a `/` is the whole bucket."""
    target = f"{verb}:{bucket}/{key}"
    for action in actions:
        if action.endswith("*") and target.startswith(action[:-1]):
            return True
        if "/" not in action and action == f"{verb}:{bucket}":
            return True
    return False


def _minio_allows(policy: dict[str, Any], action: str, bucket: str, key: str) -> bool:
    """An IAM policy's Allow statements: the action named, the object's ARN matching a resource glob;
    ListBucket on the bucket's ARN with the listed prefix matching the `s3:prefix` condition."""
    for statement in policy["Statement"]:
        if statement["Effect"] != "Allow" or action not in statement["Action"]:
            continue
        if action == "s3:ListBucket":
            prefixes = statement["Condition"]["StringLike"]["s3:prefix"]
            if f"arn:aws:s3:::{bucket}" in statement["Resource"] and any(fnmatch.fnmatchcase(key, p) for p in prefixes):
                return True
        elif any(fnmatch.fnmatchcase(f"arn:aws:s3:::{bucket}/{key}", r) for r in statement["Resource"]):
            return True
    return False


REQUESTS = [  # (what, SeaweedFS verb, MinIO action, bucket, key, allowed)
    ("positive: writes its outcomes", "Write", "s3:PutObject", DECISIONS, OUTCOME, True),
    ("positive: deletes its outcomes", "Write", "s3:DeleteObject", DECISIONS, OUTCOME, True),
    ("positive: reads its decision log", "Read", "s3:GetObject", DECISIONS, DECISION, True),
    ("positive: lists its decision log", "List", "s3:ListBucket", DECISIONS, "fraud/", True),
    ("positive: writes its models", "Write", "s3:PutObject", "models", "fraud/m/v1/model.onnx", True),
    ("forbidden: puts a decision file", "Write", "s3:PutObject", DECISIONS, DECISION, False),
    ("forbidden: deletes a decision file", "Write", "s3:DeleteObject", DECISIONS, DECISION, False),
    ("forbidden: aborts the log's upload", "Write", "s3:AbortMultipartUpload", DECISIONS, DECISION, False),
    ("forbidden: tags a decision file", "Tagging", "s3:PutObjectTagging", DECISIONS, DECISION, False),
    ("forbidden: a file beside the log", "Write", "s3:PutObject", DECISIONS, "fraud/forged.parquet", False),
    ("forbidden: an outcomes-like name", "Write", "s3:PutObject", DECISIONS, "fraud/_outcomesx/a.parquet", False),
    ("forbidden: another's outcomes", "Write", "s3:PutObject", DECISIONS, "pricing/_outcomes/a.parquet", False),
    ("forbidden: another's log", "Read", "s3:GetObject", DECISIONS, "pricing/model=m/a.parquet", False),
]


@pytest.mark.parametrize(("what", "verb", "action", "bucket", "key", "allowed"), REQUESTS, ids=[r[0] for r in REQUESTS])
def test_the_tenant_key_writes_its_outcomes_and_cannot_change_its_decision_log(
    what: str, verb: str, action: str, bucket: str, key: str, allowed: bool
) -> None:
    assert _seaweed_allows(s3_actions("fraud"), verb, bucket, key) is allowed, (what, s3_actions("fraud"))
    assert _minio_allows(minio_policy("fraud"), action, bucket, key) is allowed, (what, minio_policy("fraud"))


def test_the_old_wide_grant_is_seen_forging_the_log() -> None:
    """The control broken on purpose: the grant before the fix, Write on all of `decisions/<t>/`, lets
    the tenant's key put and delete decision files in both renderings' evaluation."""
    wide = s3_actions("fraud", writes_own_log=True)
    assert "Write:decisions/fraud/*" in wide and "Write:decisions/fraud/*" not in s3_actions("fraud")
    assert _seaweed_allows(wide, "Write", DECISIONS, DECISION)
    assert _minio_allows(minio_policy("fraud", writes_own_log=True), "s3:DeleteObject", DECISIONS, DECISION)


def test_the_grant_is_where_the_outcome_writer_writes_and_nowhere_else_changes() -> None:
    """One constant: the outcomes' root (components/platform/outcomes.py) is the grant's prefix; every
    other tenant bucket stays writable in the tenant's whole prefix, as before."""
    assert outcomes_root("s3://decisions/fraud/") == f"s3://{DECISIONS}/{tenant_write_prefix(DECISIONS, 'fraud')}"
    assert tenant_write_prefix(DECISIONS, "fraud") == f"fraud/{OUTCOMES_FOLDER}/"
    changes = {action for action in s3_actions("fraud") if action.startswith(("Write:", "Tagging:"))}
    assert changes == {
        f"{verb}:{bucket}/{tenant_write_prefix(bucket, 'fraud')}*"
        for bucket in TENANT_BUCKETS
        for verb in ("Write", "Tagging")
    }
    assert {a for a in changes if a.startswith("Write:") and DECISIONS not in a} == {
        f"Write:{bucket}/fraud/*" for bucket in TENANT_BUCKETS if bucket != DECISIONS
    }
    written = {a for s in minio_policy("fraud")["Statement"] if "s3:PutObject" in s["Action"] for a in s["Resource"]}
    assert f"arn:aws:s3:::{DECISIONS}/fraud/*" not in written
    assert f"arn:aws:s3:::{DECISIONS}/fraud/{OUTCOMES_FOLDER}/*" in written
    assert set(MINIO_ACTIONS) == {action.split(":")[0] for action in s3_actions("fraud")}


def test_the_platform_team_is_given_the_policy_and_told_what_it_allows(capsys: pytest.CaptureFixture[str]) -> None:
    """The out-of-band row of tenant-s3-credentials names the command that prints the MinIO policy and
    the one writable place in the decision log; the command prints exactly minio_policy, and refuses a
    name that cannot be a prefix (exit 2, saying how)."""
    rows = yaml.safe_load((REPO / "manifests" / "out-of-band-secrets.yaml").read_text())["secrets"]
    (row,) = [r for r in rows if r["name"] == "tenant-s3-credentials"]
    assert f"{USAGE} {{tenant}}" in row["why"], row["why"]
    assert f"decisions/{{tenant}}/{OUTCOMES_FOLDER}/" in row["why"], row["why"]
    assert main(["pricing"]) == 0
    assert json.loads(capsys.readouterr().out) == minio_policy("pricing")
    assert main(["fraud/*"]) == 2
    assert f"{USAGE} fraud" in capsys.readouterr().err
