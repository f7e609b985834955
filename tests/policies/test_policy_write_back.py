"""The one writer of generated policy fields (mlops.admission.write_back), through both syncs.

Issue 30 (repeated logic): `sync_workload_library` and `sync_parameters` each kept their own copy
of the ruamel round trip (handler settings, per-file loop, stale list, dump). They now share
`write_back`; these tests hold it to what `make golden` needs: a stale field repaired so that the
file is byte-identical to the committed one, nothing written when nothing changed, and write=False
only reporting.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from mlops import admission, admission_parameters

TRAINJOB = "trainjob-runtimes.yaml"
KUBEFLOW_KINDS = "      - {apiGroups: [kubeflow.org], kinds: [Experiment, Trial]}\n"
RUNTIME = "        name: torch-distributed\n"


def _policies(tmp_path: Path) -> Path:
    copy = tmp_path / "policies"
    copy.mkdir()
    for file in admission.POLICY_DIR.glob("*.yaml"):
        shutil.copy(file, copy / file.name)
    return copy


def test_both_syncs_repair_a_stale_constraint_byte_for_byte_through_write_back(tmp_path: Path) -> None:
    """issue 30: one write_back serves the workload-kinds sync and the parameters sync."""
    policies = _policies(tmp_path)
    committed = {file.name: file.read_bytes() for file in policies.glob("*.yaml")}
    # positive control: the committed files are current, and a round trip writes nothing
    assert admission.write_back(policies, lambda document: False) == []
    assert admission.sync_workload_library(policies) == []
    assert admission_parameters.sync_parameters(policies) == []
    assert {file.name: file.read_bytes() for file in policies.glob("*.yaml")} == committed

    stale = policies / TRAINJOB
    text = committed[TRAINJOB].decode()
    assert text.count(KUBEFLOW_KINDS) == 1 and text.count(RUNTIME) == 1
    broken = text.replace(KUBEFLOW_KINDS, "").replace(RUNTIME, "        name: not-a-platform-runtime\n")
    stale.write_text(broken)

    # write=False only reports
    assert admission.sync_workload_library(policies, write=False) == [stale]
    assert admission_parameters.sync_parameters(policies, write=False) == [stale]
    assert stale.read_text() == broken

    # each sync repairs its own field, and together the file is the committed one again
    assert admission.sync_workload_library(policies) == [stale]
    assert KUBEFLOW_KINDS in stale.read_text() and RUNTIME not in stale.read_text()
    assert admission_parameters.sync_parameters(policies) == [stale]
    assert {file.name: file.read_bytes() for file in policies.glob("*.yaml")} == committed


def test_write_back_writes_only_the_files_a_document_changed(tmp_path: Path) -> None:
    """issue 30: write_back keeps comments, quotes and flow style, and leaves unchanged files alone."""
    one = tmp_path / "one.yaml"
    two = tmp_path / "two.yaml"
    one.write_text("# kept\na: 'quoted'\nkinds:\n  - {apiGroups: [''], kinds: [Pod]}\n---\nb: 1\n")
    two.write_text("c: 2\n")

    def bump_b(document: dict[str, int]) -> bool:
        if "b" not in document:
            return False
        document["b"] += 1
        return True

    assert admission.write_back(tmp_path, bump_b, write=False) == [one]
    assert one.read_text().endswith("b: 1\n")
    assert admission.write_back(tmp_path, bump_b) == [one]
    assert one.read_text() == "# kept\na: 'quoted'\nkinds:\n  - {apiGroups: [''], kinds: [Pod]}\n---\nb: 2\n"
    assert two.read_text() == "c: 2\n"
