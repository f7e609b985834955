"""Feast definitions of the fraud pipeline: one entity, one batch source, one feature view.

The transaction itself (amount, merchant category) arrives with the scoring request; what the
online store serves is the user's recent behaviour. The source reads what the materialize step
published for this run (components/platform/feature_definitions.py), so the same definitions serve a
laptop and the platform.
"""

from datetime import timedelta
from pathlib import Path

from feast import Entity, FeatureService, ValueType
from feast.types import Float64, Int64

from components.platform.feature_definitions import published_source, team_feature_view

user = Entity(
    name="user",
    join_keys=["user_id"],
    value_type=ValueType.INT64,
    description="Card holder; transactions are keyed by it.",
)

transactions_source = published_source(
    "transactions",
    sample=Path(__file__).parent / "data" / "transactions.parquet",
    description="Validated card transactions with velocity features as of each transaction.",
)

USER_TRANSACTION_FEATURES = {
    "txn_count_1h": Int64,
    "txn_count_24h": Int64,
    "amount_avg_7d": Float64,
    "seconds_since_last_txn": Float64,
}

user_transaction_stats = team_feature_view(
    name="user_transaction_stats",
    entity=user,
    source=transactions_source,
    ttl=timedelta(days=30),
    features=USER_TRANSACTION_FEATURES,
    team="fraud",
)

fraud_model_v1 = FeatureService(
    name="fraud_model_v1",
    features=[user_transaction_stats],
    description="Features the fraud model reads from the online store at scoring time.",
)
