"""Describing a dataset as it was read: bytes by sha256, DVC pointers by their md5, lakeFS commits."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest

from components import lineage
from components.errors import ComponentError

COMMIT = "a" * 64


def _dataset(tmp_path: Path) -> tuple[Path, pd.DataFrame]:
    frame = pd.DataFrame({"user_id": [1, 2, 3], "amount": [1.5, 2.5, 3.5]})
    path = tmp_path / "data.parquet"
    frame.to_parquet(path, index=False)
    return path, frame


def test_a_file_is_described_by_the_sha256_of_its_bytes(tmp_path: Path) -> None:
    path, frame = _dataset(tmp_path)
    record = lineage.describe(str(path), frame, "raw")
    assert record["digest"] == hashlib.sha256(path.read_bytes()).hexdigest() and record["digest_kind"] == "sha256"
    assert record["rows"] == 3 and record["schema"] == {"user_id": "int64", "amount": "float64"}
    assert lineage.verify(record) == str(path)
    path.write_bytes(path.read_bytes()[:-1] + b"\x00")  # one byte
    with pytest.raises(ComponentError, match="has changed: sha256"):
        lineage.verify(record)
    path.unlink()
    with pytest.raises(ComponentError, match="is gone from"):
        lineage.verify(record)


def test_a_dvc_pointer_is_described_by_the_md5_dvc_recorded(tmp_path: Path) -> None:
    path, frame = _dataset(tmp_path)
    md5 = hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()
    pointer = tmp_path / "data.parquet.dvc"
    pointer.write_text(f"outs:\n- md5: {md5}\n  size: {path.stat().st_size}\n  hash: md5\n  path: data.parquet\n")
    record = lineage.describe(str(pointer), frame, "raw")
    assert record["digest"] == md5 and record["digest_kind"] == "dvc-md5"
    assert record["dvc"]["path"] == "data.parquet" and record["source"] == str(pointer)
    assert lineage.data_location(str(pointer)) == str(path)
    assert lineage.verify(record) == str(path)
    path.write_bytes(path.read_bytes() + b"\x00")
    with pytest.raises(ComponentError, match="has changed: dvc-md5"):
        lineage.verify(record)
    (tmp_path / "broken.dvc").write_text("outs: []\n")
    with pytest.raises(ComponentError, match="is not a DVC pointer"):
        lineage.describe(str(tmp_path / "broken.dvc"), None, "raw")


def test_a_lakefs_gateway_uri_keeps_its_commit() -> None:
    match = lineage.LAKEFS_COMMIT.match(f"s3://fraud-lake/{COMMIT}/transactions/2026-11-30.parquet")
    assert match and match["repository"] == "fraud-lake" and match["commit"] == COMMIT
    assert lineage.LAKEFS_COMMIT.match("s3://fraud-lake/main/transactions.parquet") is None  # a branch is no pin


def test_hashes_of_settings_ignore_key_order() -> None:
    assert lineage.canonical_sha256({"a": 1, "b": [1, 2]}) == lineage.canonical_sha256({"b": [1, 2], "a": 1})
    assert lineage.canonical_sha256({"a": 1}) != lineage.canonical_sha256({"a": 2})


def test_packages_and_image() -> None:
    versions = lineage.package_versions()
    assert "mlflow" in versions and "feast" in versions and "scikit-learn" in versions
    assert lineage.image() == {}  # no MLOPS_IMAGE on a laptop


def test_the_image_digest_is_kept_when_pinned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_IMAGE", f"registry.mlops.internal/c@sha256:{COMMIT}")
    assert lineage.image()["digest"] == f"sha256:{COMMIT}"
