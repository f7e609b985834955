"""Every `mlops` command line the documentation shows is one the CLI accepts (issue 28: config, CLI
and docs disagreed; the ModelDriftDetected runbook's `mlops promote <model> --version N` was refused).

Where command lines are read: README.md, docs/**/*.md (the runbooks included), every file of
pipelines/project_template/ (what `mlops new` writes into a team's repository) and the alert rules'
annotations (manifests/monitoring/prometheus-rules.yaml).

What counts as a command line:
- in Markdown, a code span or a line of a fenced block that starts with `mlops` (also
  `.venv/bin/mlops`, `$(BIN)/mlops`), or that has it after `&&`, `;` or `|`;
- in other files, the same inside backticks, or `mlops` at a shell command's position (the start
  of a line, after `run:`, `RUN`, environment assignments, `&&`, `;` or `|`);
- it ends at the code span's end, the line's end, a ` #` comment, `;`, `&&`, `|`, a ` >`
  redirection, or a run of three spaces (a column of explanation beside it, as in
  docs/serving.md's table);
- `[--flag VALUE]` (a synopsis' optional part) is checked as if given;
- `mlops <command>` alone names a command, and a line ending in a `...` word is a synopsis whose
  rest is left out: for both, the command and what is given are checked (parsed up to `--help`),
  not that every required argument is there.

Placeholders are substituted by the visible rule PLACEHOLDERS below before the line is split as a
shell would; an unknown `<...>` becomes the word `placeholder`. Each line is then parsed with the
CLI's own parser (`mlops.cli.build_parser(argv).parse_args`) and, where the command has one, its
`validate(args)` runs: the checks its handler makes on the flags alone, with no side effects.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

from components.errors import ComponentError
from tests.conftest import REPO

PLACEHOLDERS = {
    "<model>": "fraud-detector",
    "M": "fraud-detector",
    "<pipeline>": "fraud",
    "<workflow>": "fraud-nightly-x7k2p",
    "<ns>": "fraud",
    "<step>": "train",
    "<namespace>": "fraud",
    "<tenant>": "fraud",
    "N": "2",
    "$name": "churn",
    "$package": "churn_pipeline",
    "$source": "fraud",
    "$version": "0.1.0",
}
"""Whole words (or `<...>` tokens) replaced before parsing; any other `<...>` becomes `placeholder`."""
START = re.compile(r"(?<![\w./$-])(?:\.venv/bin/|\$\$?\(BIN\)/)?mlops(?=[ \t]+[a-z])")
SHELL_POSITION = re.compile(r"^\s*(?:\$\s+|-\s*)?(?:run:|RUN)?\s*(?:[A-Za-z_][A-Za-z0-9_]*=\S*\s+)*$|(?:&&|;|\|)\s*$")
END = re.compile(r"\s#|;|&&|\||\s>|\s{3,}|\n")


@dataclass(frozen=True)
class Line:
    where: str
    command: str

    def argv(self) -> list[str]:
        text = re.sub(r"<[^<>]+>", lambda m: PLACEHOLDERS.get(m.group(0), "placeholder"), self.command)
        text = re.sub(r"\[(-[^\[\]]*)\]", r"\1", text)
        words = shlex.split(text)
        return [PLACEHOLDERS.get(word, word) for word in words[1:]]


def _commands(text: str, line_of: int, where: str, anywhere: bool) -> list[Line]:
    """Command lines in `text` (a code span or block, or a whole non-Markdown file when not `anywhere`)."""
    found = []
    for match in START.finditer(text):
        before = text[text.rfind("\n", 0, match.start()) + 1 : match.start()]
        if not anywhere and not SHELL_POSITION.search(before):
            continue
        rest = text[match.end() :]
        end = END.search(rest)
        command = match.group(0) + (rest[: end.start()] if end else rest)
        found.append(Line(f"{where}:{line_of + text.count(chr(10), 0, match.start())}", command.strip()))
    return found


def extract(path: Path, text: str | None = None) -> list[Line]:
    text = path.read_text() if text is None else text
    where = str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)
    found: list[Line] = []
    markdown = path.name.endswith((".md", ".md.tmpl"))
    fenced = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
    for block in fenced.finditer(text) if markdown else []:
        found += _commands(block.group(1), text.count("\n", 0, block.start(1)) + 1, where, anywhere=False)
    prose = fenced.sub(lambda m: "\n" * m.group(0).count("\n"), text) if markdown else text
    for span in re.finditer(r"(?<!`)`((?:[^`\n]|\n(?!\s*\n))+)`(?!`)", prose):  # within a paragraph
        inner = " ".join(span.group(1).split())
        if inner.startswith(("mlops ", ".venv/bin/mlops ")):
            found += _commands(inner, prose.count("\n", 0, span.start()) + 1, where, anywhere=True)
    if not markdown:
        found += _commands(text, 1, where, anywhere=False)
    return sorted(set(found), key=lambda line: (int(line.where.rsplit(":", 1)[1]), line.command))


def sources() -> list[Path]:
    return sorted(
        [REPO / "README.md", *REPO.glob("docs/**/*.md"), REPO / "manifests/monitoring/prometheus-rules.yaml"]
        + [p for p in (REPO / "pipelines/project_template").rglob("*") if p.is_file()]
    )


def refusal(line: Line) -> str | None:
    """Why the CLI would refuse the line, or None."""
    from mlops.cli import build_parser

    argv = line.argv()
    if len(argv) == 1 or argv[-1] == "...":  # names a command, or a synopsis: parsed up to --help
        argv = [word for word in argv if word != "..."] + ["--help"]
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors), contextlib.redirect_stdout(io.StringIO()):
            args = build_parser(argv).parse_args(argv)
    except SystemExit as exit:
        return None if exit.code == 0 else errors.getvalue().strip().splitlines()[-1]
    validate = getattr(args, "validate", None)
    if validate is not None:
        try:
            validate(args)
        except ComponentError as error:
            return f"{error.problem} ({error.fix})"
    return None


def test_every_documented_mlops_command_line_is_accepted_by_the_cli() -> None:
    lines = [line for path in sources() for line in extract(path)]
    assert len(lines) > 40, f"the extraction found only {len(lines)} command lines: is it still reading the docs?"
    refused = [f"{line.where}: {line.command}\n    -> {why}" for line in lines if (why := refusal(line))]
    assert not refused, "documented command lines the CLI refuses:\n" + "\n".join(refused)


def test_the_extraction_and_the_check_on_known_cases(tmp_path: Path) -> None:
    """Positive control, then lines that must be refused, each named by file:line."""
    doc = tmp_path / "known.md"
    doc.write_text(
        "Serve it: `mlops serve fraud-detector --version N`, then see `mlops history`.\n"
        "```\n"
        "$ .venv/bin/mlops promote <model> --canary 10 --version 2   # v2 takes 10%\n"
        "mlops promote M --canary 10 --promote ; mlops history M\n"
        "mlops promote M --rollback --version 3        a column of prose\n"
        "mlops tune fraud --katib --train-set s3://b/t --holdout-set s3://b/h > experiment.yaml\n"
        "mlops task <pipeline> <step> ...\n"
        "mlops doctor [--manifests PATH]\n"
        "```\n"
        "The mlops namespace and `mlops-platform` are no commands; `mlops promote <model>\n"
        "--canary 150` spans two lines; `mlops task <pipeline> <step>` misses --outputs-dir.\n"
    )
    lines = extract(doc)
    assert [(line.where.rsplit(":", 1)[1], line.command) for line in lines] == [
        ("1", "mlops history"),
        ("1", "mlops serve fraud-detector --version N"),
        ("3", ".venv/bin/mlops promote <model> --canary 10 --version 2"),
        ("4", "mlops history M"),
        ("4", "mlops promote M --canary 10 --promote"),
        ("5", "mlops promote M --rollback --version 3"),
        ("6", "mlops tune fraud --katib --train-set s3://b/t --holdout-set s3://b/h"),
        ("7", "mlops task <pipeline> <step> ..."),
        ("8", "mlops doctor [--manifests PATH]"),
        ("10", "mlops promote <model> --canary 150"),
        ("11", "mlops task <pipeline> <step>"),
    ]
    verdicts = {line.command: refusal(line) for line in lines}
    assert [command for command, why in verdicts.items() if why is None] == [
        "mlops history",
        "mlops serve fraud-detector --version N",
        ".venv/bin/mlops promote <model> --canary 10 --version 2",
        "mlops history M",
        "mlops tune fraud --katib --train-set s3://b/t --holdout-set s3://b/h",
        "mlops task <pipeline> <step> ...",
        "mlops doctor [--manifests PATH]",
    ]
    assert "required: --outputs-dir" in str(verdicts["mlops task <pipeline> <step>"])
    assert "choose at most one" in str(verdicts["mlops promote M --canary 10 --promote"])  # validate(), not argparse
    assert "takes no --version" in str(verdicts["mlops promote M --rollback --version 3"])
    assert "--canary must be 1..99" in str(verdicts["mlops promote <model> --canary 150"])
    assert "invalid choice" in str(refusal(Line("x:1", "mlops promot fraud-detector")))  # argparse's own refusal


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("Makefile.tmpl", "demo:\n\tMLOPS_HOME=$$(CURDIR)/.mlops $$(BIN)/mlops run $name\n", ["mlops run $name"]),
        (
            "ci.yml.tmpl",
            "      - run: .venv/bin/mlops golden $name --check   # drift fails\n",
            [".venv/bin/mlops golden $name --check"],
        ),
        (
            "Containerfile.tmpl",
            "RUN pip install x \\\n && mlops golden $name --check\n",
            ["mlops golden $name --check"],
        ),
        (
            "pyproject.toml.tmpl",
            "# How `mlops` finds it (`mlops run $name`); private-mlops runs\n",
            ["mlops run $name"],
        ),
    ],
)
def test_command_positions_outside_markdown(name: str, text: str, expected: list[str]) -> None:
    commands = [line.command for line in extract(REPO / "pipelines/project_template" / name, text)]
    assert [c.replace("$$(BIN)/", "") for c in commands] == expected
