"""Reproducible synthetic daily demand per store, for the forecast pipeline.

Each store has its own level, a weekly cycle (weekends busier), a slow trend, promotions that
lift demand and a price it responds to. Lag and rolling features are computed as of each day
from earlier days only, exactly what an online store could serve that morning.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd

DAYS = 180
BURN_IN = 28
DEFAULT_START = datetime(2026, 3, 1, tzinfo=UTC)
FEATURE_COLUMNS = ["demand_lag_1", "demand_lag_7", "demand_mean_7d", "demand_mean_28d"]


def generate(rows: int, seed: int, start: datetime = DEFAULT_START) -> pd.DataFrame:
    """About `rows` store-days (rounded down to whole stores of DAYS days), deterministic in seed."""
    if rows < DAYS:
        raise ValueError(f"rows must be at least {DAYS} (one store's history), got {rows}")
    rng = np.random.default_rng(seed)
    stores = rows // DAYS
    total = DAYS + BURN_IN  # a burn-in gives every kept day 28 days of real history
    day = np.arange(total) - BURN_IN
    level = rng.lognormal(mean=4.0, sigma=0.5, size=(stores, 1))
    weekday = (pd.Timestamp(start).dayofweek + day) % 7
    weekly = np.where(weekday >= 5, 1.35, 1.0) * (1.0 + 0.05 * np.sin(2 * np.pi * day / 7))
    trend = 1.0 + rng.normal(0.0, 0.001, size=(stores, 1)) * (day + BURN_IN)
    promo = (rng.random((stores, total)) < 0.12).astype(np.int64)
    base_price = rng.uniform(2.0, 8.0, size=(stores, 1))
    price = np.round(base_price * np.where(promo == 1, 0.8, 1.0) * rng.normal(1.0, 0.03, size=(stores, total)), 2)
    expected = level * weekly * trend * (1.0 + 0.6 * promo) * (base_price / price) ** 1.2
    demand = rng.gamma(shape=20.0, scale=expected / 20.0).round(1)

    frame = pd.DataFrame(
        {
            "store_id": np.repeat(np.arange(stores, dtype=np.int64), total),
            "event_timestamp": pd.to_datetime(start) + pd.to_timedelta(np.tile(day, stores), unit="D"),
            "day_of_week": np.tile(weekday, stores).astype(np.int64),
            "promo": promo.reshape(-1),
            "price": price.reshape(-1),
            "demand": demand.reshape(-1),
        }
    )
    by_store = frame.groupby("store_id")["demand"]
    frame["demand_lag_1"] = by_store.shift(1)
    frame["demand_lag_7"] = by_store.shift(7)
    frame["demand_mean_7d"] = by_store.transform(lambda s: s.shift(1).rolling(7, min_periods=1).mean())
    frame["demand_mean_28d"] = by_store.transform(lambda s: s.shift(1).rolling(28, min_periods=1).mean())
    frame = frame[frame["event_timestamp"] >= pd.Timestamp(start)].copy()
    frame[FEATURE_COLUMNS] = frame[FEATURE_COLUMNS].round(3)
    frame = frame.sort_values(["event_timestamp", "store_id"], kind="stable").reset_index(drop=True)
    return frame
