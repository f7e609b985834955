"""issue 31: docs/data-contract.md quotes each contract violation's error as the code words it
(components/data_contract.MESSAGES), every rule and no other, so the doc cannot drift from the code."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import cast

import pytest

from components.data_contract import MESSAGES
from tests.conftest import REPO

QUOTED = re.compile(r"^- `([a-z-]+)`: (.+) — fix: (.+)$", re.MULTILINE)


def test_the_doc_quotes_every_rule_as_the_code_words_it() -> None:
    """issue 31: each rule's (problem, fix) in the doc is the code's template, word for word."""
    quoted = {
        rule: (problem, fix) for rule, problem, fix in QUOTED.findall((REPO / "docs/data-contract.md").read_text())
    }
    assert quoted == MESSAGES


def test_the_doc_names_the_generator_error_as_the_code_words_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """issue 31: the `data.py` section's example is what pipelines/local.generator raises."""
    from components.errors import ComponentError
    from pipelines.declaration import PipelineDeclaration
    from pipelines.local import generator

    (tmp_path / "churn_pipeline").mkdir()
    (tmp_path / "churn_pipeline" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))

    class Declared:
        package, name = "churn_pipeline", "churn"

    with pytest.raises(ComponentError) as refused:
        generator(cast(PipelineDeclaration, Declared()))
    assert str(refused.value).split("\n  failure:")[0] in (REPO / "docs/data-contract.md").read_text()
    sys.modules.pop("churn_pipeline", None)
