"""What a scaffolded pipeline still has to say: `TODO(mlops-new): ...` placeholders, found in its files.

`mlops new` leaves this token where only the team can write the answer (the model card's purpose
and known limits, the feature names, the label, the entity, the GE suite's columns, the data
loader), each followed by what to write there. The same scan serves twice, so the two lists never
disagree: `mlops new` prints it as the checklist of what is left to change, and
`mlops lint --pipeline` refuses a pipeline that still holds one (exit 2), naming each file:line.
The token is the one source: a placeholder is whatever line carries it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["SCANNED_SUFFIXES", "TOKEN", "Placeholder", "placeholders_in", "refuse_placeholders"]

TOKEN = "TODO(mlops-new):"
SCANNED_SUFFIXES = (".yaml", ".yml", ".json", ".py", ".md")


@dataclass(frozen=True)
class Placeholder:
    """One line of a pipeline package that still carries TOKEN, and what the team writes there."""

    path: Path
    line: int
    what: str

    def describe(self, root: Path) -> str:
        try:
            shown = self.path.relative_to(root)
        except ValueError:
            shown = self.path
        return f"{shown}:{self.line}: {self.what}"


def placeholders_in(folder: Path) -> list[Placeholder]:
    """Every TOKEN under `folder` (a pipeline package), in file then line order; golden/ is rendered, skipped."""
    found = []
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.suffix not in SCANNED_SUFFIXES or "golden" in path.relative_to(folder).parts:
            continue
        if "__pycache__" in path.parts:
            continue
        for number, text in enumerate(path.read_text(errors="replace").splitlines(), start=1):
            if TOKEN in text:
                what = text.split(TOKEN, 1)[1].strip().rstrip("\",'").strip()
                found.append(Placeholder(path, number, what))
    return found


def refuse_placeholders(name: str, folder: Path) -> None:
    """A permanent ComponentError listing each placeholder still in the pipeline `name`, or nothing."""
    from components.errors import ComponentError

    left = placeholders_in(folder)
    if left:
        where = "; ".join(item.describe(folder.parent) for item in left)
        raise ComponentError(
            "lint",
            f"pipeline {name} still holds {len(left)} `{TOKEN}` placeholder(s) from `mlops new`: {where}",
            "write what each one asks for in place of the placeholder (the whole line), then run "
            f"`mlops golden {name}` and `mlops lint --pipeline {name}` again",
        )
