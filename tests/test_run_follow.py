"""Argo's and KFP's wait follow a run through one loop (mlops.argo_client.follow).

Issue 30 (repeated logic): argo_client.wait and kfp_client.wait each kept the same poll loop
(report each change, return on a terminal state, a timeout error with how to follow the run). They
now share `follow`; the runs here come from scripted state lists (no Argo server, no KFP API).
"""

from __future__ import annotations

from typing import Any

import pytest

from components.errors import ComponentError
from mlops import argo_client, kfp_client


def _script(states: list[str], key: str) -> Any:
    remaining = list(states)

    def read(*_: Any, **__: Any) -> dict[str, Any]:
        state = remaining.pop(0) if len(remaining) > 1 else remaining[0]
        return {"status": {"phase": state}} if key == "phase" else {"state": state}

    return read


def test_follow_reports_each_change_and_returns_at_a_terminal_state() -> None:
    """issue 30: the one loop reports changes only and stops at the first terminal state."""
    states = iter(
        [({"n": 1}, "Pending"), ({"n": 2}, "Pending"), ({"n": 3}, "Running"), ({"n": 4}, "Done"), ({"n": 5}, "X")]
    )
    reported: list[str] = []
    final = argo_client.follow(
        "run-1", lambda: next(states), ("Done",), "hint", poll_seconds=0, timeout_seconds=60, report=reported.append
    )
    assert final == {"n": 4} and reported == ["run-1: Pending", "run-1: Running", "run-1: Done"]
    with pytest.raises(ComponentError, match=r"run-2 still Running after 0s") as caught:
        argo_client.follow(
            "run-2",
            lambda: ({}, "Running"),
            ("Done",),
            "watch it elsewhere",
            poll_seconds=0,
            timeout_seconds=0,
            report=reported.append,
        )
    assert "watch it elsewhere" in str(caught.value)


def test_argo_and_kfp_wait_go_through_follow(monkeypatch: pytest.MonkeyPatch) -> None:
    """issue 30: both engines' wait are `follow` with their own state field, terminal states and hint."""
    monkeypatch.setattr(argo_client, "get_workflow", _script(["", "Running", "Succeeded"], "phase"))
    reported: list[str] = []
    final = argo_client.wait(None, "wf", poll_seconds=0, report=reported.append)  # type: ignore[arg-type]
    assert final == {"status": {"phase": "Succeeded"}} and reported == ["wf: Pending", "wf: Running", "wf: Succeeded"]

    monkeypatch.setattr(kfp_client, "client", lambda connection: None)
    monkeypatch.setattr(kfp_client, "get_run", _script([None, "RUNNING", "FAILED"], "state"))  # type: ignore[list-item]
    reported.clear()
    final = kfp_client.wait(None, "r1", poll_seconds=0, report=reported.append)  # type: ignore[arg-type]
    assert final == {"state": "FAILED"} and reported == ["r1: PENDING", "r1: RUNNING", "r1: FAILED"]

    # each engine's timeout names its own way to keep following
    monkeypatch.setattr(kfp_client, "get_run", _script(["RUNNING"], "state"))
    with pytest.raises(ComponentError, match="--engine kfp"):
        kfp_client.wait(None, "r2", poll_seconds=0, timeout_seconds=0, report=reported.append)  # type: ignore[arg-type]
    monkeypatch.setattr(argo_client, "get_workflow", _script(["Running"], "phase"))
    with pytest.raises(ComponentError, match="mlops status wf2` or in the UI"):
        argo_client.wait(None, "wf2", poll_seconds=0, timeout_seconds=0, report=reported.append)  # type: ignore[arg-type]
