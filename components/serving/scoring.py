"""The request path's join: entity keys and request features in, the model's input matrix out.

    {"user_id": 42, "amount": 310.5, "merchant_category": 7}
        -> the feature service's online values for user 42 (Redis: one pipelined HMGET)
        -> [amount, merchant_category, txn_count_1h, ...] in the order the model's metadata records

The column order comes from the model's own metadata, never from a second list, and the stored
features from the same Feast feature service the training set was joined with: that is where
training/serving skew would otherwise come from. The scoring transformer and `mlops skew-check`
both go through this one class.

Errors a caller can act on: a missing, non-numeric or non-finite request feature (400, naming it and
the rule, never echoing the value), an entity the store holds nothing for when the config says reject
(404, naming the rows), the online store unreachable (transient: 503, the caller retries).
`OffLoopJoiner` runs the join on a bounded pool of worker threads, so a server's event loop keeps
answering while one large request waits on the store (issue 29).
"""

from __future__ import annotations

import asyncio
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from components.config import ScoringSettings
from components.errors import ComponentError

if TYPE_CHECKING:
    from feast import FeatureStore

__all__ = [
    "FLOAT32_MAX",
    "MAX_STRING_ID",
    "STEP",
    "Joined",
    "OffLoopJoiner",
    "RequestError",
    "RequestJoiner",
    "SdkReader",
    "UnknownEntity",
    "check_entity_id",
    "online_reader",
]

STEP = "scoring"
FLOAT32_MAX = float(np.finfo(np.float32).max)


class RequestError(ComponentError):
    """The request itself is wrong: the caller must fix it (HTTP 400)."""

    http_status: ClassVar[int] = 400


class UnknownEntity(ComponentError):
    """The online store holds nothing for an entity and the config says reject (HTTP 404)."""

    http_status: ClassVar[int] = 404


@dataclass
class Joined:
    matrix: np.ndarray
    """float32 [rows, model features], in the model's order."""
    values: dict[str, list[Any]]
    """Each model feature's values as used (stored values after defaults, request values)."""
    stored: dict[str, list[Any]]
    """The stored features as the online store returned them, before defaults (None: absent)."""
    unknown: list[bool]
    """Rows whose entity the online store holds nothing for (scored on the defaults)."""


class SdkReader:
    """Feast's SDK read, for online stores other than Redis (the laptop's sqlite)."""

    def __init__(self, store: FeatureStore, feature_service: str) -> None:
        self._store, self._service = store, store.get_feature_service(feature_service)
        self.features = [f.name for p in self._service.feature_view_projections for f in p.features]
        views = [store.get_feature_view(p.name) for p in self._service.feature_view_projections]
        self.entity_types = {c.name: c.dtype.to_value_type().name for v in views for c in v.entity_columns}
        """Each join key's Feast value type by name: ids are checked against it before the read."""

    def get(self, entity_rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
        result: dict[str, list[Any]] = self._store.get_online_features(
            features=self._service, entity_rows=entity_rows
        ).to_dict()
        return result


def online_reader(store: FeatureStore, feature_service: str) -> Any:
    """The scoring path's reader: the pipelined HMGET on Redis, Feast's SDK on any other store."""
    if getattr(store.config.online_store, "type", "") == "redis":
        from components.serving.online_reader import OnlineFeatureReader

        return OnlineFeatureReader(store, feature_service)
    return SdkReader(store, feature_service)


class RequestJoiner:
    def __init__(
        self,
        reader: Any,
        *,
        model_features: list[str],
        entity_column: str,
        request_features: list[str],
        settings: ScoringSettings,
    ) -> None:
        self.reader, self.entity_column, self.settings = reader, entity_column, settings
        self.model_features, self.request_features = list(model_features), list(request_features)
        self.stored_features = [name for name in model_features if name not in request_features]
        stored_by_caller = [name for name in request_features if name in reader.features]
        if stored_by_caller:  # a caller's value would stand in for what the store holds (a forged feature)
            raise ComponentError(
                STEP,
                f"request feature(s) {stored_by_caller} are served by the feature service ({reader.features}): the"
                " store's value is read from the store, never taken from the caller",
                "list in --request-features (the pipeline's materialize.request_features) only what the request"
                " carries and the feature service does not",
            )
        unserved = [name for name in self.stored_features if name not in reader.features]
        if unserved:
            raise ComponentError(
                STEP,
                f"the model needs {unserved}, which neither the request ({request_features}) nor the feature "
                f"service ({reader.features}) provides",
                "serve the model with the feature service it was trained with (the pipeline's materialize section)",
            )

    def _request_value(self, row: dict[str, Any], name: str, index: int) -> float:
        if name not in row or row[name] is None:
            raise RequestError(STEP, f"row {index} lacks request feature {name!r}", f"send {name} with every row")
        value = row[name]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise RequestError(STEP, f"row {index}: {name} is not a number (got {type(value).__name__})",
                               f"send {name} as a number")  # fmt: skip
        number = float(value) if isinstance(value, float) or abs(value) <= FLOAT32_MAX else math.inf
        if not math.isfinite(number) or abs(number) > FLOAT32_MAX:
            raise RequestError(STEP, f"row {index}: {name} is not a finite float32 number",
                               f"send {name} between {-FLOAT32_MAX:.4g} and {FLOAT32_MAX:.4g}")  # fmt: skip
        return number

    def join(self, rows: list[dict[str, Any]], *, request: bool = True) -> Joined:
        """The model's matrix for `rows`; a request (the transformer's) is held to scoring.max_rows,
        a batch the platform joins itself (mlops skew-check) is not."""
        if not rows:
            raise RequestError(STEP, "the request holds no rows", "send at least one instance")
        if request and len(rows) > self.settings.max_rows:
            raise RequestError(STEP, f"the request holds {len(rows)} rows, over the limit of {self.settings.max_rows}",
                               "split the request, or raise scoring.max_rows in the pipeline config")  # fmt: skip
        for index, row in enumerate(rows):
            if row.get(self.entity_column) is None:
                raise RequestError(STEP, f"row {index} lacks the entity key {self.entity_column!r}",
                                   f"send {self.entity_column} with every row")  # fmt: skip
            kind = getattr(self.reader, "entity_types", {}).get(self.entity_column)
            if kind is not None:
                check_entity_id(self.entity_column, row[self.entity_column], kind, index)
        requested = {name: [self._request_value(row, name, i) for i, row in enumerate(rows)]
                     for name in self.request_features if name in self.model_features}  # fmt: skip
        found = self.reader.get([{self.entity_column: row[self.entity_column]} for row in rows])
        stored = {name: list(found[name]) for name in self.stored_features}
        unknown = [all(stored[name][i] is None for name in self.stored_features) for i in range(len(rows))]
        if any(unknown) and self.settings.unknown_entity == "reject":
            missing = [i for i, flag in enumerate(unknown) if flag]
            raise UnknownEntity(STEP, f"no online features for the {self.entity_column} of rows {missing[:10]}",
                                "materialize the entity first, or set scoring.unknown_entity: defaults")  # fmt: skip
        values: dict[str, list[Any]] = dict(requested)
        for name, column in stored.items():
            default = self.settings.defaults.get(name, 0.0)
            values[name] = [default if _absent(v) else v for v in column]
        matrix = np.asarray([values[name] for name in self.model_features], dtype=np.float32).T
        return Joined(matrix=np.ascontiguousarray(matrix), values=values, stored=stored, unknown=unknown)


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_STRING_ID = 256


def check_entity_id(field: str, value: Any, kind: str, index: int) -> None:
    """Refuses (400) an entity id that does not fit the Feast entity's value type: issue 29 found
    `"abc"` or 2**64 for an INT64 entity ended in a 500 inside the key encoder."""
    if kind == "INT64":
        if isinstance(value, bool) or not isinstance(value, int):
            raise RequestError(STEP, f"row {index}: {field} must be an integer (got {type(value).__name__})",
                               f"send {field} as a JSON integer")  # fmt: skip
        if not INT64_MIN <= value <= INT64_MAX:
            raise RequestError(STEP, f"row {index}: {field} is outside int64",
                               f"send {field} between {INT64_MIN} and {INT64_MAX}")  # fmt: skip
    elif kind == "STRING":
        if not isinstance(value, str):
            raise RequestError(STEP, f"row {index}: {field} must be a string (got {type(value).__name__})",
                               f"send {field} as a JSON string")  # fmt: skip
        if len(value) > MAX_STRING_ID:
            raise RequestError(STEP, f"row {index}: {field} is longer than {MAX_STRING_ID} characters",
                               f"send {field} of at most {MAX_STRING_ID} characters")  # fmt: skip


def _absent(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


class OffLoopJoiner:
    """The join, off the event loop: at most `settings.max_concurrent_joins` run at once, each on a
    worker thread, and the others wait their turn without blocking the loop. Issue 29: the join ran on
    the event loop, so one large request stalled every other request the server held."""

    def __init__(self, joiner: RequestJoiner) -> None:
        self.joiner = joiner
        self._pool = ThreadPoolExecutor(joiner.settings.max_concurrent_joins, thread_name_prefix="join")

    async def join(self, rows: list[dict[str, Any]]) -> Joined:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self.joiner.join, rows)
