"""Reproducible synthetic card transactions for the fraud pipeline.

The shape follows real card data: a few users transact a lot, amounts are log-normal around
each user's habit, and fraud arrives in bursts (a stolen card is used several times within
minutes, for larger amounts, at risky merchants). Velocity features are computed as of each
transaction, from that user's earlier transactions only, so they are exactly what an online
store could have served at that moment. The label rate lands near 2%.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "DEFAULT_START",
    "FEATURE_COLUMNS",
    "MERCHANT_CATEGORIES",
    "RISKY_CATEGORIES",
    "WINDOW_DAYS",
    "data_window",
    "generate",
    "main",
]

WINDOW_DAYS = 90
MERCHANT_CATEGORIES = 15
RISKY_CATEGORIES = np.array([4, 7, 11])  # electronics, gift cards, online gaming
DEFAULT_START = datetime(2026, 6, 1, tzinfo=UTC)
FEATURE_COLUMNS = ["txn_count_1h", "txn_count_24h", "amount_avg_7d", "seconds_since_last_txn"]


def _window_counts_and_sums(key: np.ndarray, amount: np.ndarray, window: float) -> tuple[np.ndarray, np.ndarray]:
    """Count and sum of earlier rows of the same user within `window` seconds.

    `key` is user_id * span + seconds, sorted ascending, so one searchsorted finds each
    window's start without crossing into another user's rows.
    """
    start = np.searchsorted(key, key - window, side="left")
    position = np.arange(len(key))
    cumulative = np.concatenate([[0.0], np.cumsum(amount)])
    count = position - start
    total = cumulative[position] - cumulative[start]
    return count, total


def generate(rows: int, seed: int, start: datetime = DEFAULT_START) -> pd.DataFrame:
    """Build `rows` transactions (exactly) deterministically from `seed`."""
    if rows < 100:
        raise ValueError(f"rows must be at least 100 to hold any fraud, got {rows}")
    rng = np.random.default_rng(seed)
    n_users = max(rows // 10, 10)
    span = WINDOW_DAYS * 86400.0

    user_weight = rng.lognormal(0.0, 0.8, n_users)
    user_weight /= user_weight.sum()
    user_base_amount = rng.lognormal(mean=3.4, sigma=0.7, size=n_users)
    user_favourite = rng.integers(0, MERCHANT_CATEGORIES, size=(n_users, 3))

    fraud_target = int(rows * 0.02)
    burst_len = rng.integers(2, 7, size=max(fraud_target // 4 + 1, 1))
    burst_len = burst_len[np.cumsum(burst_len) <= fraud_target]
    n_fraud = int(burst_len.sum())
    n_normal = rows - n_fraud

    normal_user = rng.choice(n_users, size=n_normal, p=user_weight)
    normal_ts = rng.uniform(0.0, span, size=n_normal)
    normal_amount = user_base_amount[normal_user] * rng.lognormal(0.0, 0.5, size=n_normal)
    habitual = rng.random(n_normal) < 0.8
    normal_category = np.where(
        habitual,
        user_favourite[normal_user, rng.integers(0, 3, size=n_normal)],
        rng.integers(0, MERCHANT_CATEGORIES, size=n_normal),
    )
    # A sliver of label noise: chargebacks filed on ordinary purchases.
    normal_label = (rng.random(n_normal) < 0.002).astype(np.int64)

    burst_user = rng.choice(n_users, size=len(burst_len), p=user_weight)
    burst_start = rng.uniform(0.0, span - 3600.0, size=len(burst_len))
    fraud_user = np.repeat(burst_user, burst_len)
    fraud_ts = np.repeat(burst_start, burst_len) + rng.uniform(0.0, 1800.0, size=n_fraud)
    fraud_amount = user_base_amount[fraud_user] * rng.lognormal(1.0, 0.6, size=n_fraud)
    fraud_category = np.where(
        rng.random(n_fraud) < 0.7,
        rng.choice(RISKY_CATEGORIES, size=n_fraud),
        rng.integers(0, MERCHANT_CATEGORIES, size=n_fraud),
    )

    user = np.concatenate([normal_user, fraud_user]).astype(np.int64)
    seconds = np.concatenate([normal_ts, fraud_ts])
    amount = np.round(np.concatenate([normal_amount, fraud_amount]), 2)
    category = np.concatenate([normal_category, fraud_category]).astype(np.int64)
    label = np.concatenate([normal_label, np.ones(n_fraud, dtype=np.int64)])

    # Microsecond timestamps: a user's transactions never share one, so point-in-time joins
    # on (user_id, event_timestamp) are unambiguous.
    micros = np.round(seconds * 1e6).astype(np.int64)
    order = np.lexsort((micros, user))
    user, micros, amount, category, label = (a[order] for a in (user, micros, amount, category, label))
    duplicate = np.concatenate([[False], (user[1:] == user[:-1]) & (micros[1:] == micros[:-1])])
    micros = micros + np.cumsum(duplicate)  # nudge the rare tie by one microsecond

    key = user.astype(np.float64) * (span * 10) + micros / 1e6
    count_1h, _ = _window_counts_and_sums(key, amount, 3600.0)
    count_24h, _ = _window_counts_and_sums(key, amount, 86400.0)
    count_7d, sum_7d = _window_counts_and_sums(key, amount, 7 * 86400.0)
    same_user_before = np.concatenate([[False], user[1:] == user[:-1]])
    gap = np.concatenate([[0.0], np.diff(micros) / 1e6])
    seconds_since_last = np.where(same_user_before, gap, 30 * 86400.0)
    amount_avg_7d = np.where(count_7d > 0, sum_7d / np.maximum(count_7d, 1), amount)

    timestamps = pd.to_datetime(micros, unit="us", utc=True) + pd.Timedelta(start - datetime(1970, 1, 1, tzinfo=UTC))
    frame = pd.DataFrame(
        {
            "transaction_id": np.arange(rows, dtype=np.int64),
            "user_id": user,
            "event_timestamp": timestamps,
            "amount": amount,
            "merchant_category": category,
            "txn_count_1h": count_1h.astype(np.int64),
            "txn_count_24h": count_24h.astype(np.int64),
            "amount_avg_7d": np.round(amount_avg_7d, 4),
            "seconds_since_last_txn": np.round(seconds_since_last, 3),
            "is_fraud": label,
        }
    )
    frame = frame.sort_values("event_timestamp", kind="stable").reset_index(drop=True)
    frame["transaction_id"] = np.arange(rows, dtype=np.int64)
    return frame


def data_window(frame: pd.DataFrame) -> tuple[datetime, datetime]:
    return frame["event_timestamp"].min().to_pydatetime(), frame["event_timestamp"].max().to_pydatetime()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write synthetic fraud transactions to Parquet.")
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    frame = generate(args.rows, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(args.out, index=False)
    print(json.dumps({"rows": len(frame), "fraud_rate": float(frame["is_fraud"].mean()), "out": str(args.out)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
