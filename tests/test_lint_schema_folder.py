"""`make manifests` with no schema folder, or one without a kind's file, says exactly what is missing.

issue 28: with no folder set, `mlops lint manifests` said only "no schema folder", and a folder
without one CRD's file reported the kind as unknown. Now both name each file lint reads and the
`kubectl get crd` that exports it from the cluster (docs/install.md lists the same commands).
"""

from __future__ import annotations

from pathlib import Path

import pytest


def test_lint_without_a_schema_folder_names_every_file_and_its_export(monkeypatch: pytest.MonkeyPatch) -> None:
    """issue 28: with no schema folder, `make manifests` said only "no schema folder"; now it names
    each file lint reads and the command that exports it from a cluster."""
    from components.errors import ComponentError
    from mlops import lint

    monkeypatch.setenv("MLOPS_SCHEMAS_DIR", "/no/such/folder")
    with pytest.raises(ComponentError) as error:
        lint.schemas_dir()
    for (group, kind), file in lint.CRD_FILES.items():
        assert (
            f"kubectl get crd {lint.crd_name(group, kind)} -o yaml > $MLOPS_SCHEMAS_DIR/{file}" in error.value.problem
        )
    assert "katib_v1beta1.swagger.json" in error.value.problem
    assert "MLOPS_SCHEMAS_DIR names /no/such/folder" in error.value.problem


def test_lint_names_a_missing_schema_file(tmp_path: Path, schemas_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder without one kind's file: the object's finding names the file and its export
    (before, it read "unknown kind", as if the kind did not exist)."""
    from mlops import lint

    for file in schemas_dir.iterdir():
        if file.name != "cnpg_postgresql.cnpg.io_clusters.yaml":
            (tmp_path / file.name).symlink_to(file)
    monkeypatch.setenv("MLOPS_SCHEMAS_DIR", str(tmp_path))
    lint._crd_schema.cache_clear()
    cluster = {"apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster", "metadata": {"name": "c"}, "spec": {}}
    try:
        problem = lint.check(cluster)
    finally:
        lint._crd_schema.cache_clear()
    assert problem and "cnpg_postgresql.cnpg.io_clusters.yaml is missing" in problem
    assert "kubectl get crd clusters.postgresql.cnpg.io -o yaml" in problem
