"""One error type for every step: what went wrong, and what to do about it."""

from __future__ import annotations


class ComponentError(Exception):
    """A step failed for a reason the user can fix.

    The CLI prints `problem` and `fix` and exits non-zero; orchestrators show the same text
    in the failed pod's log, so an on-call engineer reads the fix without opening code.
    """

    def __init__(self, step: str, problem: str, fix: str) -> None:
        self.step = step
        self.problem = problem
        self.fix = fix
        super().__init__(f"[{step}] {problem}\n  fix: {fix}")
