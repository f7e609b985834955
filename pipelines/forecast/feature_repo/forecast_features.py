"""Feast definitions of the forecast pipeline: store entity, daily demand history as features.

Day of week, promotion and price are known when the forecast is asked for and arrive with
the request; the online store serves each store's recent demand.
"""

import os
from datetime import timedelta
from pathlib import Path

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.types import Float64

SOURCE_URI = os.environ.get("MLOPS_FEAST_SOURCE_URI", str(Path(__file__).parent / "data" / "demand.parquet"))

store = Entity(name="store", join_keys=["store_id"], value_type=ValueType.INT64, description="A retail store.")

demand_source = FileSource(
    name="store_demand",
    path=SOURCE_URI,
    timestamp_field="event_timestamp",
    description="Validated daily demand per store with lags as of each day.",
)

store_demand_history = FeatureView(
    name="store_demand_history",
    entities=[store],
    ttl=timedelta(days=2),
    schema=[
        Field(name="demand_lag_1", dtype=Float64),
        Field(name="demand_lag_7", dtype=Float64),
        Field(name="demand_mean_7d", dtype=Float64),
        Field(name="demand_mean_28d", dtype=Float64),
    ],
    source=demand_source,
    online=True,
    tags={"owner": "forecast", "pipeline": "forecast"},
)

forecast_model_v1 = FeatureService(
    name="forecast_model_v1",
    features=[store_demand_history],
    description="Demand history the forecaster reads from the online store.",
)
