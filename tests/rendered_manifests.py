"""`kubectl kustomize` of the checked-in manifests, once per test session.

Each render is a kubectl process; the manifest, policy and cluster tests rendered the same five
kustomizations (two overlays, three tenants) 79 times in one session. A folder under manifests/ is
rendered once, by mlops.lint's own render, and each caller gets its own deep copy to edit; any
other folder (a test's copy under tmp_path) is rendered every time, as mlops.lint.render does.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

from tests.conftest import REPO

__all__ = ["checked_in", "render"]

MANIFESTS = REPO / "manifests"


@functools.cache
def checked_in(kustomization: Path) -> list[dict[str, Any]]:
    from mlops.lint import render as kustomize

    return kustomize(kustomization)


def render(kustomization: Path) -> list[dict[str, Any]]:
    """mlops.lint.render's objects; a checked-in kustomization's from this session's one render."""
    from mlops.lint import render as kustomize

    path = Path(kustomization).resolve()
    if not path.is_relative_to(MANIFESTS.resolve()):
        return kustomize(kustomization)
    return copy.deepcopy(checked_in(path))
