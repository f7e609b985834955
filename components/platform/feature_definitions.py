"""What every pipeline's Feast repository declares the same way, written once.

A feature repo (pipelines/<name>/feature_repo) stays Feast's own definitions, which a team
forks and edits; these helpers hold the two facts the platform owns: where the batch source
reads (the offline-store location materialize publishes each run to, passed in
MLOPS_FEAST_SOURCE_URI, and its event-time column, the pipeline's materialize.timestamp_column,
passed in MLOPS_FEAST_TIMESTAMP_FIELD), and that a view is served online and tagged with its owning team.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

__all__ = ["SOURCE_URI_VARIABLE", "TIMESTAMP_FIELD_VARIABLE", "published_source", "team_feature_view"]

SOURCE_URI_VARIABLE = "MLOPS_FEAST_SOURCE_URI"
TIMESTAMP_FIELD_VARIABLE = "MLOPS_FEAST_TIMESTAMP_FIELD"


def published_source(name: str, sample: Path, description: str) -> Any:
    """The view's batch source: this run's published data and its timestamp column (both set by
    materialize from the pipeline's config), else `sample` and the setting's default (so `feast plan`
    in the repo folder works on a laptop)."""
    from feast import FileSource

    from components.config import MaterializeSettings

    default = MaterializeSettings.model_fields["timestamp_column"].default
    return FileSource(
        name=name,
        path=os.environ.get(SOURCE_URI_VARIABLE, str(sample)),
        timestamp_field=os.environ.get(TIMESTAMP_FIELD_VARIABLE, default),
        description=description,
    )


def team_feature_view(
    *, name: str, entity: Any, source: Any, ttl: timedelta, features: dict[str, Any], team: str
) -> Any:
    """An online feature view of `features` (name -> Feast type), owned by `team`."""
    from feast import FeatureView, Field

    return FeatureView(
        name=name,
        entities=[entity],
        ttl=ttl,
        schema=[Field(name=feature, dtype=dtype) for feature, dtype in features.items()],
        source=source,
        online=True,
        tags={"owner": team, "pipeline": team},
    )
