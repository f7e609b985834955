"""Cache keys: the data's bytes, a step's arguments and its upstream keys; never a path alone."""

from __future__ import annotations

from pathlib import Path

from pipelines.caching import code_fingerprint, step_keys
from pipelines.fraud.pipeline import DECLARATION as FRAUD


def _keys(data: Path, **overrides: object) -> dict[str, str]:
    cfg = FRAUD.config().with_overrides(dict(overrides)) if overrides else FRAUD.config()
    run = {"raw_data": str(data), "git_commit": "", "gate_threshold": 0.85, "force_retrain": True, "run_id": "r"}
    return step_keys(FRAUD, FRAUD.step_parameters(cfg, run), str(data))


def test_only_steps_that_touch_no_registry_are_keyed(tmp_path: Path) -> None:
    (tmp_path / "d.parquet").write_bytes(b"one")
    assert set(_keys(tmp_path / "d.parquet")) == {"validate", "materialize", "train", "evaluate"}


def test_new_bytes_at_the_same_path_change_every_key(tmp_path: Path) -> None:
    data = tmp_path / "d.parquet"
    data.write_bytes(b"one")
    before = _keys(data)
    assert _keys(data) == before  # deterministic
    data.write_bytes(b"onf")  # one byte
    after = _keys(data)
    assert all(before[step] != after[step] for step in before)


def test_a_config_change_re_keys_from_the_first_step_it_affects(tmp_path: Path) -> None:
    data = tmp_path / "d.parquet"
    data.write_bytes(b"one")
    before, after = _keys(data), _keys(data, **{"train.seed": 1})
    assert before["validate"] == after["validate"] and before["materialize"] == after["materialize"]
    assert before["train"] != after["train"] and before["evaluate"] != after["evaluate"]  # downstream of train


def test_the_code_fingerprint_is_stable() -> None:
    assert code_fingerprint() == code_fingerprint() and len(code_fingerprint()) == 64
