"""tests/rendered_manifests.py: a checked-in kustomization renders once per session, each caller
gets objects of its own, and a folder outside manifests/ is rendered afresh every time."""

from __future__ import annotations

import shutil
from pathlib import Path

from mlops.lint import render as kustomize
from tests.conftest import REPO
from tests.rendered_manifests import checked_in, render

TENANT = REPO / "manifests" / "tenants" / "fraud"


def test_achecked_in_kustomization_renders_once_and_as_kubectl_does() -> None:
    """issue 30 (the suite's time budget): the same five kustomizations were rendered 79 times."""
    first = render(TENANT)
    hits = checked_in.cache_info().hits
    second = render(TENANT)
    assert checked_in.cache_info().hits == hits + 1  # the second call ran no kubectl
    assert first == second == kustomize(TENANT)
    first[0]["metadata"]["name"] = "edited by one caller"
    assert render(TENANT)[0]["metadata"]["name"] != "edited by one caller"  # each caller has its own copy


def test_a_folder_outside_manifests_is_rendered_every_time(tmp_path: Path) -> None:
    shutil.copytree(REPO / "manifests", tmp_path / "manifests")
    copied = tmp_path / "manifests" / "tenants" / "fraud"
    before = render(copied)
    (copied / "kustomization.yaml").write_text(
        (copied / "kustomization.yaml").read_text() + "commonAnnotations:\n  probe: edited\n"
    )
    after = render(copied)
    assert all("probe" not in o["metadata"].get("annotations", {}) for o in before)
    assert all(o["metadata"]["annotations"]["probe"] == "edited" for o in after)
