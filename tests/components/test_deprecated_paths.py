"""Module paths kept for one release after the rooms split (issue 30 item 1).

Team repositories made by the previous release import `components.feature_definitions` in their
feature_repo/ (the reference pipelines' feature repos, which `mlops new` copies, did). It still
works, re-exporting components.platform.feature_definitions, and warns naming the new path.
"""

from __future__ import annotations

import importlib
import runpy
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

OLD = "components.feature_definitions"
NEW = "components.platform.feature_definitions"


def _import_old() -> object:
    sys.modules.pop(OLD, None)
    with pytest.warns(DeprecationWarning, match=NEW.replace(".", r"\.")):
        return importlib.import_module(OLD)


def test_the_old_feature_definitions_path_re_exports_the_new_one_and_warns() -> None:
    """issue 30: components.feature_definitions keeps working for one release, with a DeprecationWarning."""
    new = importlib.import_module(NEW)
    old = _import_old()
    for name in ("SOURCE_URI_VARIABLE", "published_source", "team_feature_view"):
        assert getattr(old, name) is getattr(new, name)


def test_a_feature_repo_of_the_previous_release_still_loads(tmp_path: Path) -> None:
    """issue 30: a team's feature repo as the previous release wrote it (the old import line) defines
    the same views as today's."""
    today = (REPO / "pipelines" / "fraud" / "feature_repo" / "fraud_features.py").read_text()
    assert f"from {NEW} import" in today
    previous = tmp_path / "fraud_features.py"
    previous.write_text(today.replace(f"from {NEW} import", f"from {OLD} import"))
    (tmp_path / "data").mkdir()
    sys.modules.pop(OLD, None)
    with pytest.warns(DeprecationWarning, match=NEW.replace(".", r"\.")):
        names = runpy.run_path(str(previous))
    views = {value.name for value in names.values() if type(value).__name__ == "FeatureView"}
    assert views and views == {
        value.name
        for value in runpy.run_path(str(REPO / "pipelines" / "fraud" / "feature_repo" / "fraud_features.py")).values()
        if type(value).__name__ == "FeatureView"
    }
