"""The indexes the docs keep of the code, generated from the code (issue 30 item 4): hand-kept, they drifted.

Three indexes, each written into a marked block of a file that a reader opens anyway:
- `cli`: the command groups in mlops/cli/__init__.py's docstring, from the parsers each group module
  registers (`register(sub, argv)`) and the summary on its docstring's first line;
- `steps`: the pipeline's steps in components/steps/__init__.py's docstring and in
  docs/architecture.md, from pipelines/kfp_components.OPS, which pipelines/contract.py reads (one
  contract per step): a step is a module of components/steps with an op, the op names its functions;
- `rooms`: the rooms of components/ in docs/architecture.md, from its subpackages and the first line
  of each one's docstring.

A block starts after its marker line (`MARKER` with the index's name) and an optional blank line, and
ends at the next blank line. `python -m mlops.docs_index` rewrites every block; `--check` changes
nothing and exits 1 naming each stale file (tests/test_indexes.py runs the check). Layering: only
this module, in mlops/, reads pipelines to write a components/ docstring; components imports nothing.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "INDEXES",
    "MARKER",
    "REGENERATE",
    "REPO",
    "Index",
    "cli_commands",
    "main",
    "render_cli",
    "render_rooms",
    "render_steps_docstring",
    "render_steps_markdown",
    "replace_block",
    "rooms",
    "stale",
    "steps",
]

REPO = Path(__file__).resolve().parents[1]
MARKER = "generated from the code by `python -m mlops.docs_index`: {name}"
REGENERATE = "python -m mlops.docs_index (make golden runs it), then review and commit the diff"


def _summary(module_doc: str | None) -> str:
    """The text after `mlops a`, `b`: on a docstring's first line, the group's summary."""
    first = (module_doc or "").strip().splitlines()[0] if module_doc else ""
    return first.split("`: ", 1)[-1].rstrip(".;")


def cli_commands() -> dict[str, tuple[list[str], str]]:
    """Per command group module (mlops/cli/<group>.py): the commands it registers, and its summary."""
    from mlops.cli import GROUPS

    parser = argparse.ArgumentParser(prog="mlops")
    sub = parser.add_subparsers(dest="command")
    groups: dict[str, tuple[list[str], str]] = {}
    for group in GROUPS:
        before = set(sub.choices)
        module = importlib.import_module(f"mlops.cli.{group}")
        module.register(sub, [])
        groups[group] = ([name for name in sub.choices if name not in before], _summary(module.__doc__))
    return groups


def render_cli() -> str:
    lines = []
    for group, (commands, summary) in cli_commands().items():
        lines.append(f"    {group + '.py':<15}{', '.join(commands)}")
        lines.append(f"    {'':<15}{summary}")
    return "\n".join(lines)


def steps() -> dict[str, list[str]]:
    """Each step module of components/steps that has an op, and the op functions it runs (in OPS order)."""
    from pipelines.kfp_components import OPS

    found: dict[str, list[str]] = {}
    for reference in OPS:
        module, function = reference.split(":")
        found.setdefault(module.rsplit(".", 1)[-1], []).append(function)
    return found


def _first_line(path: Path) -> str:
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def _step_summary(module: str) -> str:
    """The step module's docstring's first line, less its leading `<module>: `."""
    first = _first_line(REPO / "components" / "steps" / f"{module}.py")
    return first.removeprefix(f"{module}: ")


def _named(module: str, functions: list[str]) -> str:
    return module if functions == [module] else f"{module} (ops {', '.join(functions)})"


def render_steps_docstring() -> str:
    return "\n".join(f"- {_named(module, functions)}: {_step_summary(module)}" for module, functions in steps().items())


def render_steps_markdown() -> str:
    lines = ["| Step | Module | What it does |", "|---|---|---|"]
    for module, functions in steps().items():
        what = _step_summary(module).replace("|", "\\|")
        lines.append(f"| {_named(module, functions)} | `components/steps/{module}.py` | {what} |")
    return "\n".join(lines)


def rooms() -> dict[str, str]:
    """Each subpackage of components/ and its docstring's first line: where it runs."""
    return {
        package.name: _first_line(package / "__init__.py")
        for package in sorted((REPO / "components").iterdir())
        if (package / "__init__.py").is_file()
    }


def render_rooms() -> str:
    lines = ["| Room | What it is, where it runs |", "|---|---|"]
    lines.append(f"| `components/` (top) | {_first_line(REPO / 'components' / '__init__.py')} |")
    lines += [f"| `components/{name}/` | {what} |" for name, what in rooms().items()]
    return "\n".join(lines)


@dataclass(frozen=True)
class Index:
    name: str
    path: str
    """Relative to the repository root."""
    render: Callable[[], str]


INDEXES = (
    Index("cli", "mlops/cli/__init__.py", render_cli),
    Index("steps", "components/steps/__init__.py", render_steps_docstring),
    Index("steps", "docs/architecture.md", render_steps_markdown),
    Index("rooms", "docs/architecture.md", render_rooms),
)


def replace_block(text: str, name: str, block: str) -> str:
    """`text` with the block after its `name` marker replaced by `block`; ValueError when no marker."""
    if "\n\n" in block or not block.strip():
        raise ValueError(f"index {name}: a generated block must be non-empty and hold no blank line")
    lines = text.split("\n")
    marker = MARKER.format(name=name)
    starts = [number for number, line in enumerate(lines) if marker in line]
    if len(starts) != 1:
        raise ValueError(f"{len(starts)} lines hold the marker {marker!r}; there must be exactly one")
    start = starts[0] + 1
    if start < len(lines) and not lines[start].strip():
        start += 1
    end = start
    while end < len(lines) and lines[end].strip():
        end += 1
    return "\n".join([*lines[:start], *block.split("\n"), *lines[end:]])


def stale(repo: Path = REPO, write: bool = False) -> list[str]:
    """The files whose generated blocks differ from a fresh rendering (rewritten when `write`)."""
    texts: dict[str, str] = {}
    for index in INDEXES:
        current = texts.get(index.path, (repo / index.path).read_text())
        texts[index.path] = replace_block(current, index.name, index.render())
    changed = [path for path, text in texts.items() if (repo / path).read_text() != text]
    if write:
        for path in changed:
            (repo / path).write_text(texts[path])
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlops.docs_index", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 naming each stale file")
    args = parser.parse_args(argv)
    changed = stale(write=not args.check)
    for path in changed:
        print(f"{path}: generated index {'out of date' if args.check else 'rewritten'}")
    if args.check and changed:
        print(f"  run `{REGENERATE}`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
