"""Feast definitions of the fraud pipeline: one entity, one batch source, one feature view.

The transaction itself (amount, merchant category) arrives with the scoring request; what the
online store serves is the user's recent behaviour. The offline source's location is set by
the materialize step through MLOPS_FEAST_SOURCE_URI (a local Parquet path or an s3:// URI),
so the same definitions serve a laptop and the platform.
"""

import os
from datetime import timedelta
from pathlib import Path

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.types import Float64, Int64

SOURCE_URI = os.environ.get("MLOPS_FEAST_SOURCE_URI", str(Path(__file__).parent / "data" / "transactions.parquet"))

user = Entity(
    name="user",
    join_keys=["user_id"],
    value_type=ValueType.INT64,
    description="Card holder; transactions are keyed by it.",
)

transactions_source = FileSource(
    name="transactions",
    path=SOURCE_URI,
    timestamp_field="event_timestamp",
    description="Validated card transactions with velocity features as of each transaction.",
)

user_transaction_stats = FeatureView(
    name="user_transaction_stats",
    entities=[user],
    ttl=timedelta(days=30),
    schema=[
        Field(name="txn_count_1h", dtype=Int64),
        Field(name="txn_count_24h", dtype=Int64),
        Field(name="amount_avg_7d", dtype=Float64),
        Field(name="seconds_since_last_txn", dtype=Float64),
    ],
    source=transactions_source,
    online=True,
    tags={"owner": "fraud", "pipeline": "fraud"},
)

fraud_model_v1 = FeatureService(
    name="fraud_model_v1",
    features=[user_transaction_stats],
    description="Features the fraud model reads from the online store at scoring time.",
)
