"""Which tests share a worker when the suite runs on two (`make test`: pytest-xdist, `--dist loadgroup`).

Two workers halve the wall time only if nothing expensive is made twice: a session fixture made in
both workers would start a second stack of services, and a module fixture made in both would run
its module's pipeline twice. So every test gets an `xdist_group`, the union of:

- its module: a module's tests (and its module-scoped fixtures) stay on one worker;
- each fixture of `ONE_WORKER_FIXTURES` it uses, directly or through other fixtures: every module
  using the session's stack runs where that stack runs.

The groups are the connected parts of that graph, found per collection, so a new test that uses a
stack joins its group without anyone listing it. The groups holding the most of those fixtures are
queued first (xdist hands out whole groups in collection order, and the longest should not start
last); within a group, the collection order is kept.

Without xdist (`pytest` alone, a plugin-less run) this does nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Generator

import pytest

__all__ = ["ONE_WORKER_FIXTURES", "groups"]

ONE_WORKER_FIXTURES = frozenset(
    {
        "stack",  # tests/integration/conftest.py: PostgreSQL, PgBouncer, Redis, S3, MLflow
        "tenancy_stack",  # the same with MLflow's auth app; tenants_stack adds the declared tenants to it
        "tenants_stack",
        "lock_attack_stack",  # a tenancy stack of its own for the locked-bucket attacks
        "platform_run",  # the fraud pipeline on the stack
        "small_postgres",  # PostgreSQL with max_connections 10 and its PgBouncer
        "component_image",  # the component image, built once with podman
    }
)
"""Session fixtures that start services, run a pipeline or build an image: made on one worker only."""


def groups(uses: dict[str, set[str]]) -> dict[str, str]:
    """The group of each module, given the `ONE_WORKER_FIXTURES` its tests use."""
    parent: dict[str, str] = {}

    def root(node: str) -> str:
        parent.setdefault(node, node)
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for module, fixtures in uses.items():
        for fixture in sorted(fixtures & ONE_WORKER_FIXTURES):
            parent[root(module)] = root(f"fixture:{fixture}")
    return {module: root(module) for module in uses}


@pytest.hookimpl(wrapper=True)  # around xdist's worker hook, which reads the marks into the node ids
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> Generator[None, None, None]:
    # a worker has dist "no" and xdist's own loadgroup flag; the controller has dist "loadgroup"
    grouped = getattr(config.option, "loadgroup", False) or getattr(config.option, "dist", "no") == "loadgroup"
    if grouped:
        _group(items)
    yield
    if grouped:
        _carry_suffixes(items)


def _group(items: list[pytest.Item]) -> None:
    uses: dict[str, set[str]] = {}
    for item in items:
        uses.setdefault(item.nodeid.split("::")[0], set()).update(getattr(item, "fixturenames", ()))
    group = groups(uses)
    modules = Counter(group.values())
    shared = Counter(name for name in set(group.values()) for module, g in group.items() if g == name
                     for _ in uses[module] & ONE_WORKER_FIXTURES)  # fmt: skip
    order = {id(item): i for i, item in enumerate(items)}

    def queued(item: pytest.Item) -> tuple[int, int, int]:
        name = group[item.nodeid.split("::")[0]]
        return (-shared[name], -modules[name], order[id(item)])

    for item in items:
        item.add_marker(pytest.mark.xdist_group(group[item.nodeid.split("::")[0]]))
    items.sort(key=queued)


def _carry_suffixes(items: list[pytest.Item]) -> None:
    """xdist 3.8 writes `<node id>@<group>` to `item._nodeid`, which pytest 9 no longer reads (the id
    lives in `item._id`): without this, every group is silently split across the workers."""
    for item in items:
        suffixed = item.__dict__.get("_nodeid")
        if isinstance(suffixed, str) and suffixed != item.nodeid:
            item._id = type(item._id).parse(suffixed)  # type: ignore[attr-defined]
