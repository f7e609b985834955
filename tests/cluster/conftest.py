"""The rendered platform, once per overlay and module: every journey test checks against it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cluster.rendered_platform import Platform, load


@pytest.fixture(scope="module", params=["dev", "prod"])
def platform(request: pytest.FixtureRequest, schemas_dir: Path) -> Platform:
    return load(request.param)
