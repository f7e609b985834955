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


def test_a_dataset_is_read_once_and_recorded_as_read(tmp_path: Path) -> None:
    """read_dataset hashes the bytes it parses: the record names exactly what the step used."""
    path, frame = _dataset(tmp_path)
    read, record = lineage.read_dataset("validate", str(path), "raw dataset", "raw")
    pd.testing.assert_frame_equal(read, frame)
    assert record == lineage.describe(str(path), frame, "raw")
    assert lineage.digest_word(record) == lineage.data_digest(str(path)) == f"sha256-{record['digest']}"


def test_bytes_other_than_an_earlier_step_read_are_refused(tmp_path: Path) -> None:
    """materialize gets validate's digest: data rewritten between the two steps is not used."""
    path, _ = _dataset(tmp_path)
    validated = lineage.data_digest(str(path))
    lineage.read_dataset("materialize", str(path), "validated dataset", "raw", expected=validated)  # control
    pd.DataFrame({"user_id": [9], "amount": [9.5]}).to_parquet(path, index=False)
    with pytest.raises(ComponentError, match="changed during the run") as refused:
        lineage.read_dataset("materialize", str(path), "validated dataset", "raw", expected=validated)
    assert refused.value.step == "materialize"


def test_dvc_data_that_no_longer_matches_its_pointer_is_refused(tmp_path: Path) -> None:
    path, frame = _dataset(tmp_path)
    md5 = hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()
    pointer = tmp_path / "data.parquet.dvc"
    pointer.write_text(f"outs:\n- md5: {md5}\n  path: data.parquet\n")
    _, record = lineage.read_dataset("validate", str(pointer), "raw dataset", "raw")  # control
    assert lineage.digest_word(record) == f"dvc-md5-{md5}"
    frame.assign(amount=frame["amount"] + 1).to_parquet(path, index=False)
    with pytest.raises(ComponentError, match=r"but its pointer .* records") as refused:
        lineage.read_dataset("validate", str(pointer), "raw dataset", "raw")
    assert "dvc checkout" in refused.value.fix


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
