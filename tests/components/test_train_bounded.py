"""The XGBoost train step reading its Parquet set in bounded batches (issue 33) against the
in-memory path it replaced, computed here on its own: `xgb.train` on the whole pandas matrix.

Inputs shaped like a materialized training set (components/steps/point_in_time.py writes one
Parquet file, in row groups): a UTC event time, an entity id, float features with nulls, int
features (one with nulls, which pandas reads as float), a boolean feature, the label as int or
bool, and row groups smaller than a batch, so batches cross them.

Tolerance across batches: XGBoost sketches each feature's quantiles batch by batch and merges
the sketches, so with many batches a bin cut may sit elsewhere than with one (within the
sketch's rank error, about 1/max_bin of the rows): a split then sends a few rows of a bin to
the other side, which changes a leaf value slightly. The predictions on the training rows may
move, not the ranking quality: max abs difference in probability at most MAX_ABS, AUC
difference at most MAX_AUC. With one batch there is no merge, so the model bytes are equal.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import xgboost as xgb
from sklearn.metrics import roc_auc_score

from components.config import DistributedSettings, TrainSettings
from components.errors import ComponentError
from components.steps import train_batches
from components.steps.distributed import World, read_shard
from components.steps.train import train

FEATURES = ["amount", "merchant_category", "txn_count_1h", "amount_avg_7d", "seen_before", "seconds_since_last"]
LABEL = "is_fraud"
ROWS = 20_000
MAX_ABS = 0.05
MAX_AUC = 0.002
SETTINGS = TrainSettings(model_type="xgboost", device="cpu", params={"num_boost_round": 40, "max_depth": 5})


def _training_set(path: Path, *, rows: int = ROWS, label_bool: bool = False, seed: int = 3) -> Path:
    rng = np.random.default_rng(seed)
    amount = rng.lognormal(3.0, 1.2, rows)
    category = rng.integers(0, 20, rows)
    count = rng.poisson(2.0, rows)
    average = np.where(rng.random(rows) < 0.1, np.nan, amount * rng.uniform(0.5, 1.5, rows))
    seen = rng.random(rows) < 0.7
    since = rng.integers(0, 86_400, rows).astype(float)
    logit = -4.0 + 0.02 * amount + 0.4 * count - 1.0 * seen + 0.1 * (category % 5)
    label = rng.random(rows) < 1.0 / (1.0 + np.exp(-logit))
    start = pd.Timestamp("2026-06-01", tz="UTC")
    table = pa.table(
        {
            "event_timestamp": pa.array(start + pd.to_timedelta(np.sort(rng.integers(0, 10**7, rows)), unit="s")),
            "user_id": pa.array(rng.integers(0, 5_000, rows)),
            "amount": pa.array(amount),
            "merchant_category": pa.array(category),
            "txn_count_1h": pa.array(count, mask=rng.random(rows) < 0.05),  # int with nulls: float in pandas
            "amount_avg_7d": pa.array(average, from_pandas=True),  # NaN read as null
            "seen_before": pa.array(seen),
            "seconds_since_last": pa.array(since),
            LABEL: pa.array(label if label_bool else label.astype(np.int64)),
        }
    )
    pq.write_table(table, path, row_group_size=1_500)
    return path


def _step(train_set: Path, out: Path, batch_rows: int) -> tuple[xgb.Booster, dict[str, Any]]:
    out.mkdir()
    settings = SETTINGS.model_copy(update={"batch_rows": batch_rows})
    train(str(train_set), str(out / "model.json"), str(out / "metadata.json"), features=FEATURES,
          label_column=LABEL, settings=settings)  # fmt: skip
    booster = xgb.Booster()
    booster.load_model(str(out / "model.json"))
    return booster, json.loads((out / "metadata.json").read_text())


def _in_memory(train_set: Path, metadata: dict[str, Any], out: Path) -> tuple[xgb.Booster, Path]:
    """The path the step took before issue 33, written here from its parts: the whole frame,
    one float32 matrix, one QuantileDMatrix, the same parameters."""
    frame = pd.read_parquet(train_set)
    matrix = xgb.QuantileDMatrix(
        frame[FEATURES].to_numpy(dtype=np.float32),
        label=frame[LABEL].to_numpy(dtype=np.float32),
        feature_names=FEATURES,
    )
    params = {key: value for key, value in metadata["params"].items() if key != "num_boost_round"}
    booster = xgb.train(params, matrix, num_boost_round=metadata["params"]["num_boost_round"])
    booster.save_model(str(out))
    return booster, out


def _scores(booster: xgb.Booster, train_set: Path) -> tuple[np.ndarray, np.ndarray]:
    frame = pd.read_parquet(train_set)
    return booster.inplace_predict(frame[FEATURES].to_numpy(dtype=np.float32)), frame[LABEL].to_numpy(dtype=float)


def test_one_batch_gives_the_in_memory_paths_model_bytes_and_metadata(tmp_path: Path) -> None:
    train_set = _training_set(tmp_path / "train.parquet")
    _, metadata = _step(train_set, tmp_path / "step", batch_rows=ROWS)
    _, reference = _in_memory(train_set, metadata, tmp_path / "reference.json")
    assert (tmp_path / "step" / "model.json").read_bytes() == reference.read_bytes()
    frame = pd.read_parquet(train_set)
    stamps = frame["event_timestamp"]
    assert metadata["training_rows"] == ROWS
    assert metadata["positive_rate"] == pytest.approx(frame[LABEL].mean(), abs=1e-12)
    assert metadata["data_window"] == [stamps.min().isoformat(), stamps.max().isoformat()]
    assert metadata["params"]["scale_pos_weight"] == pytest.approx((ROWS - frame[LABEL].sum()) / frame[LABEL].sum())


def test_many_batches_across_row_groups_score_within_the_stated_tolerance(tmp_path: Path) -> None:
    train_set = _training_set(tmp_path / "train.parquet")
    batched, metadata = _step(train_set, tmp_path / "step", batch_rows=997)  # 21 batches, none on a row group edge
    whole, _ = _in_memory(train_set, metadata, tmp_path / "reference.json")
    scores, labels = _scores(batched, train_set)
    reference, _ = _scores(whole, train_set)
    assert np.abs(scores - reference).max() <= MAX_ABS
    assert abs(roc_auc_score(labels, scores) - roc_auc_score(labels, reference)) <= MAX_AUC
    assert metadata["training_rows"] == ROWS and metadata["passes"] == 40


def test_on_the_cpu_the_batches_do_not_move_a_single_cut(tmp_path: Path) -> None:
    """Measured, not promised by XGBoost: its CPU sketch takes the rows of every batch into one
    streaming summary per feature, in row order, so xgboost 3.2.0 gives the one-batch model bytes
    for any batch size (here and on the 8M-row fraud set). The tolerance test above is the
    contract; this one says when an upgrade changes the fact."""
    train_set = _training_set(tmp_path / "train.parquet")
    _step(train_set, tmp_path / "many", batch_rows=997)
    _step(train_set, tmp_path / "one", batch_rows=ROWS)
    assert (tmp_path / "many" / "model.json").read_bytes() == (tmp_path / "one" / "model.json").read_bytes()


def test_a_boolean_label_trains_as_its_zero_one_twin(tmp_path: Path) -> None:
    as_int = _training_set(tmp_path / "int.parquet")
    as_bool = _training_set(tmp_path / "bool.parquet", label_bool=True)
    _step(as_int, tmp_path / "a", batch_rows=4_000)
    _step(as_bool, tmp_path / "b", batch_rows=4_000)
    assert (tmp_path / "a" / "model.json").read_bytes() == (tmp_path / "b" / "model.json").read_bytes()


@pytest.mark.parametrize("size", [1, 2, 3, 7])
def test_each_workers_batches_are_its_shard_row_for_row(tmp_path: Path, size: int) -> None:
    train_set = _training_set(tmp_path / "train.parquet", rows=5_003)
    for rank in range(size):
        world = World("xgboost-distributed", rank, size)
        shard = train_batches.open_shard(train_set, str(train_set), world, "training set")
        parts = list(train_batches.batches(shard, [*FEATURES, LABEL], 640))
        assert all(part.num_rows == 640 for part in parts[:-1]) and 0 < parts[-1].num_rows <= 640
        expected = read_shard(str(train_set), world, "training set")
        got = pa.concat_tables(parts).to_pandas()
        pd.testing.assert_frame_equal(got, expected[[*FEATURES, LABEL]].reset_index(drop=True))
        matrix = np.concatenate([train_batches.feature_matrix(part, FEATURES) for part in parts])
        np.testing.assert_array_equal(matrix, expected[FEATURES].to_numpy(dtype=np.float32))
    with pytest.raises(ComponentError, match="got no rows"):
        train_batches.open_shard(train_set, str(train_set), World("x", 5_003, 5_004), "training set")


def test_the_in_memory_checks_refuse_what_they_refused(tmp_path: Path) -> None:
    train_set = _training_set(tmp_path / "train.parquet", rows=3_000)
    frame = pd.read_parquet(train_set)
    cases = {
        "text": (frame.assign(merchant_category=frame["merchant_category"].astype(str)), "not numeric"),
        "nulls": (frame.assign(is_fraud=frame[LABEL].astype(float).mask(frame.index < 3)), "has 3 nulls"),
        "three": (frame.assign(is_fraud=frame[LABEL].where(frame.index != 5, 2)), r"holds \[0, 1, 2\], not 0/1"),
        "one class": (frame.assign(is_fraud=0), "has a single class"),
        "no column": (frame.drop(columns=["amount"]), r"lacks column\(s\) \['amount'\]"),
        "bool nulls": (frame.assign(seen_before=frame["seen_before"].astype(object).mask(frame.index < 2)), "not num"),
    }
    for name, (bad, refusal) in cases.items():
        bad.to_parquet(tmp_path / f"{name}.parquet", index=False)
        with pytest.raises(ComponentError, match=refusal):
            _step(tmp_path / f"{name}.parquet", tmp_path / name, batch_rows=1_000)
            pytest.fail(f"{name} trained")
        assert not (tmp_path / name / "model.json").exists(), name
    (tmp_path / "empty.parquet").write_bytes(b"")
    with pytest.raises(ComponentError, match="empty file"):
        _step(tmp_path / "empty.parquet", tmp_path / "empty", batch_rows=1_000)
    frame.iloc[:0].to_parquet(tmp_path / "none.parquet", index=False)
    with pytest.raises(ComponentError, match="has no rows"):
        _step(tmp_path / "none.parquet", tmp_path / "none", batch_rows=1_000)
    # the control: the same frame unbroken trains
    frame.to_parquet(tmp_path / "good.parquet", index=False)
    assert _step(tmp_path / "good.parquet", tmp_path / "good", batch_rows=1_000)[1]["training_rows"] == 3_000


def test_two_workers_reading_their_shards_in_batches_train_the_one_batch_model(tmp_path: Path) -> None:
    """Each XGBoost worker (its own process, the collective's sketches and histograms summed)
    reads only its shard, here in 11 batches each: the same model bytes as one batch a worker."""
    train_set = _training_set(tmp_path / "train.parquet")
    models = []
    for batch_rows in (ROWS, 997):
        out = tmp_path / str(batch_rows)
        settings = SETTINGS.model_copy(
            update={
                "batch_rows": batch_rows,
                "distributed": DistributedSettings(workers=2, runtime="xgboost-distributed"),
            }
        )
        summary = train(str(train_set), str(out / "model.json"), str(out / "metadata.json"), features=FEATURES,
                        label_column=LABEL, settings=settings)  # fmt: skip
        assert summary["distributed"] == {"runtime": "xgboost-distributed", "workers": 2}
        assert summary["training_rows"] == ROWS
        models.append((out / "model.json").read_bytes())
    assert models[0] == models[1]


def test_the_mlp_trains_on_the_matrix_filled_batch_by_batch_as_on_the_pandas_one(tmp_path: Path) -> None:
    """pytorch_mlp still trains on one matrix in memory (its epochs shuffle over every row), now
    filled batch by batch without a pandas frame beside it: the same values in the same layout,
    so the same scaling bits and the same model bytes as `train_mlp` on the pandas matrix."""
    from components.steps.train import train_mlp

    train_set = _training_set(tmp_path / "train.parquet", rows=6_000)
    out = tmp_path / "step"
    settings = TrainSettings(model_type="pytorch_mlp", device="cpu", params={"epochs": 2}, batch_rows=997)
    train(str(train_set), str(out / "model.pt"), str(out / "metadata.json"), features=FEATURES, label_column=LABEL,
          settings=settings)  # fmt: skip
    frame = pd.read_parquet(train_set)
    features, labels = frame[FEATURES].to_numpy(dtype=np.float32), frame[LABEL].to_numpy(dtype=np.float32)
    train_mlp(features, labels, {"epochs": 2}, settings.seed, "cpu", str(tmp_path / "reference.pt"), "binary")
    assert (out / "model.pt").read_bytes() == (tmp_path / "reference.pt").read_bytes()
