"""The indexes the docs keep of the code follow the code (issue 30 item 4: hand-kept, they drifted:
the CLI's command table left out `golden`, `score` and `skew-check`, docs/architecture.md's step list
left out drift, components/__init__ said six steps where there were eight).

Each index is read back from its file and compared with the code itself (the CLI's own parser, the
ops pipelines/contract.py reads, the subpackages of components/), not with the generator's output
alone; each has a control: the same file with one row taken out is caught.
"""

from __future__ import annotations

import argparse
import ast
import re
import shutil
from pathlib import Path

import pytest

from mlops.cli import GROUPS
from mlops.docs_index import INDEXES, MARKER, REGENERATE, stale
from tests.conftest import REPO

ARCHITECTURE = REPO / "docs" / "architecture.md"
CLI_INIT = REPO / "mlops" / "cli" / "__init__.py"
STEPS_INIT = REPO / "components" / "steps" / "__init__.py"


def block(text: str, name: str) -> list[str]:
    """The lines of the generated block after the `name` marker (what a reader sees)."""
    lines = text.split("\n")
    start = next(number for number, line in enumerate(lines) if MARKER.format(name=name) in line) + 1
    if not lines[start].strip():
        start += 1
    end = start
    while end < len(lines) and lines[end].strip():
        end += 1
    return lines[start:end]


def cli_table_commands(text: str) -> set[str]:
    """The commands the docstring's table names: the comma list after each `<group>.py`."""
    names: set[str] = set()
    for line in block(text, "cli"):
        found = re.match(r"\s+\w+\.py\s+(.+)$", line)
        if found:
            names |= {name.strip() for name in found.group(1).split(",")}
    return names


def registered_commands() -> set[str]:
    from mlops.cli import build_parser

    parser = build_parser([])
    actions = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    return set(actions[0].choices)


def table_column(text: str, name: str) -> set[str]:
    """The first column of a generated Markdown table, less its header and decoration."""
    rows = [line.split("|")[1].strip() for line in block(text, name)[2:]]
    return {re.sub(r"[`/]|components| \(.*\)", "", row).strip() for row in rows}


def contract_steps() -> set[str]:
    """Each step module with an op, through the contract pipelines/contract.py reads."""
    from pipelines.contract import contract_of
    from pipelines.kfp_components import OPS

    return {contract_of(reference).op and reference.split(":")[0].rsplit(".", 1)[-1] for reference in OPS}


def docstring_steps(text: str) -> set[str]:
    doc = ast.get_docstring(ast.parse(text)) or ""
    return {re.match(r"- (\w+)", line).group(1) for line in block(doc, "steps") if re.match(r"- (\w+)", line)}


def subpackages() -> set[str]:
    return {path.parent.name for path in (REPO / "components").glob("*/__init__.py")}


def drop_row(text: str, name: str, row: str) -> str:
    """`text` with the generated `name` block's row holding `row` taken out (the control's doc)."""
    lines = block(text, name)
    victim = next(line for line in lines if row in line)
    return text.replace(victim + "\n", "", 1)


def test_generated_indexes_are_current() -> None:
    """issue 30 item 4: each generated block equals a fresh rendering, and the failure says how to fix it."""
    assert stale(REPO) == [], f"generated indexes out of date: run `{REGENERATE}`"


def test_stale_sees_a_missing_row_control(tmp_path: Path) -> None:
    """The check above fails on a doc that lost a row: `golden` out of the CLI table, drift out of the steps."""
    for path in {index.path for index in INDEXES}:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / path, tmp_path / path)
    assert stale(tmp_path) == []
    architecture = tmp_path / "docs" / "architecture.md"
    architecture.write_text(drop_row(architecture.read_text(), "steps", "components/steps/drift.py"))
    cli = tmp_path / "mlops" / "cli" / "__init__.py"
    cli.write_text(cli.read_text().replace("compile, golden, submit", "compile, submit"))
    assert sorted(stale(tmp_path)) == ["docs/architecture.md", "mlops/cli/__init__.py"]
    assert stale(tmp_path, write=True) and stale(tmp_path) == []


def test_cli_table_names_every_registered_command() -> None:
    """issue 30: the CLI's command table left out golden, score and skew-check; now it is the parser's."""
    commands = registered_commands()
    assert {"golden", "score", "skew-check"} <= commands
    assert cli_table_commands(CLI_INIT.read_text()) == commands
    broken = CLI_INIT.read_text().replace("serve, score, promote", "serve, promote")
    assert commands - cli_table_commands(broken) == {"score"}, "control: a table without score is caught"


@pytest.mark.parametrize("group", GROUPS)
def test_each_group_docstring_names_its_commands(group: str) -> None:
    """issue 30: mlops/cli/cluster.py's docstring left out golden and serving.py's score; the first
    line of each group module names exactly the commands it registers (the table's summary is read from it)."""
    from mlops.docs_index import cli_commands

    commands, _ = cli_commands()[group]
    first = (REPO / "mlops" / "cli" / f"{group}.py").read_text().split("\n")[0]
    named = re.findall(r"`(?:mlops )?([\w-]+)`", first.split("`: ")[0] + "`")
    assert set(named) == set(commands)


def test_step_lists_name_every_step_with_a_contract() -> None:
    """issue 30: docs/architecture.md's step list left out drift, components/__init__ said six steps;
    both lists now hold each step module that has an op (one contract per step)."""
    steps = contract_steps()
    assert "drift" in steps and len(steps) == 8
    assert table_column(ARCHITECTURE.read_text(), "steps") == steps
    assert docstring_steps(STEPS_INIT.read_text()) == steps
    broken = drop_row(ARCHITECTURE.read_text(), "steps", "components/steps/drift.py")
    assert steps - table_column(broken, "steps") == {"drift"}, "control: a list without drift is caught"
    broken_doc = drop_row(STEPS_INIT.read_text(), "steps", "- drift")
    assert steps - docstring_steps(broken_doc) == {"drift"}, "control: a docstring without drift is caught"


def test_architecture_lists_every_room() -> None:
    """issue 30 item 5: docs/architecture.md lists each room (subpackage) of components/, and names the
    test that enforces what each may import."""
    rooms = table_column(ARCHITECTURE.read_text(), "rooms") - {""}
    assert rooms == subpackages() == {"steps", "serving", "platform"}
    broken = drop_row(ARCHITECTURE.read_text(), "rooms", "`components/serving/`")
    assert subpackages() - (table_column(broken, "rooms") - {""}) == {"serving"}, "control: a missing room"
    assert "test_each_room_imports_only_what_runs_where_it_runs" in ARCHITECTURE.read_text()
