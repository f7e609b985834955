"""Deprecated: components.feature_definitions moved to components.platform.feature_definitions.

Kept for one release (issue 30): team repositories made by the previous release import it from
their feature_repo/. It re-exports the same functions and warns, naming the new path.
"""

from __future__ import annotations

import warnings

from components.platform.feature_definitions import SOURCE_URI_VARIABLE, published_source, team_feature_view

__all__ = ["SOURCE_URI_VARIABLE", "published_source", "team_feature_view"]

warnings.warn(
    "components.feature_definitions is deprecated and goes in the next release: import "
    "components.platform.feature_definitions instead",
    DeprecationWarning,
    stacklevel=2,
)
