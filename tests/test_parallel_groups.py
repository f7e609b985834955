"""tests/parallel_groups.py on known graphs: modules sharing a one-worker fixture, directly or
through a chain of modules, share a group; a module using none has its own; a fixture outside
ONE_WORKER_FIXTURES (made cheaply in each worker) joins nothing. And the hook under real pytest-xdist
on a generated suite: a session stack made once, each module's fixture once, where plain `--dist
load` makes both twice."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO
from tests.parallel_groups import groups


def test_modules_sharing_a_stack_directly_or_through_a_chain_are_one_group() -> None:
    found = groups(
        {
            "a.py": {"stack", "tmp_path"},
            "b.py": {"stack", "tenancy_stack"},  # links a and c
            "c.py": {"tenancy_stack"},
            "d.py": {"component_image"},
            "e.py": {"materialized", "schemas_dir"},  # cheap session fixtures: made in each worker
            "f.py": {"materialized"},
        }
    )
    assert found["a.py"] == found["b.py"] == found["c.py"]
    assert len({found["a.py"], found["d.py"], found["e.py"], found["f.py"]}) == 4


FIXTURE = """
import os, pytest
from tests.parallel_groups import pytest_collection_modifyitems as pytest_collection_modifyitems

@pytest.fixture(scope="session")
def stack():
    with open(os.environ["MADE"], "a") as made:
        made.write(f"{os.getpid()}\\n")
    return "up"

@pytest.fixture(scope="module")
def module_state():
    with open(os.environ["MODULES"], "a") as made:
        made.write(f"{os.getpid()}\\n")
"""


def _run(tmp_path: Path, dist: str) -> tuple[int, int, str]:
    tree = tmp_path / dist
    tree.mkdir()
    (tree / "conftest.py").write_text(FIXTURE)
    for n in range(4):  # four modules on the stack, each test sleeping a little, and two without it
        body = "".join(f"def test_{t}(stack, module_state):\n    time.sleep(0.2)\n" for t in range(3))
        (tree / f"test_on_stack_{n}.py").write_text("import time\n" + body)
    for n in range(2):
        (tree / f"test_alone_{n}.py").write_text("def test_a():\n    pass\n")
    made, modules = tree / "made", tree / "modules"
    env = {**os.environ, "MADE": str(made), "MODULES": str(modules), "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2", "--dist", dist,
                           "--rootdir", str(tree), str(tree)], cwd=tree, env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return len(made.read_text().split()), len(modules.read_text().split()), done.stdout


def test_two_workers_make_a_stack_once_and_each_module_once(tmp_path: Path) -> None:
    """The hook on a generated suite under pytest-xdist: the session's stack is made by one worker and
    each module's fixture once. Control: the same suite under `--dist load` (no groups) makes both twice."""
    stacks, modules, said = _run(tmp_path, "loadgroup")
    assert (stacks, modules) == (1, 4), said
    stacks, modules, said = _run(tmp_path, "load")
    assert stacks == 2 and modules > 4, (stacks, modules, said)
