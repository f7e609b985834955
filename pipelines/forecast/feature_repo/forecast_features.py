"""Feast definitions of the forecast pipeline: store entity, daily demand history as features.

Day of week, promotion and price are known when the forecast is asked for and arrive with
the request; the online store serves each store's recent demand.
"""

from datetime import timedelta
from pathlib import Path

from feast import Entity, FeatureService, ValueType
from feast.types import Float64

from components.platform.feature_definitions import published_source, team_feature_view

store = Entity(name="store", join_keys=["store_id"], value_type=ValueType.INT64, description="A retail store.")

demand_source = published_source(
    "store_demand",
    sample=Path(__file__).parent / "data" / "demand.parquet",
    description="Validated daily demand per store with lags as of each day.",
)

store_demand_history = team_feature_view(
    name="store_demand_history",
    entity=store,
    source=demand_source,
    ttl=timedelta(days=2),
    features={name: Float64 for name in ("demand_lag_1", "demand_lag_7", "demand_mean_7d", "demand_mean_28d")},
    team="forecast",
)

forecast_model_v1 = FeatureService(
    name="forecast_model_v1",
    features=[store_demand_history],
    description="Demand history the forecaster reads from the online store.",
)
