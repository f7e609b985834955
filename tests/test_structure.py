"""The house rules a reader relies on, checked on the AST of every module (issue 30, items 2 and 3).

- Size: no module over 500 lines and no function (methods and nested functions included) over 120,
  so each file keeps one job; the failure names each offender with its line count.
- Public surfaces: a leading underscore means "this module's own": no `from x import _name` and no
  `x._name` on an imported module of ours, from any other module.
- Every module that another of ours imports from declares `__all__`, and every name the others take
  from it is in that `__all__`, so the public surface is written down where a reader looks.

Each rule has a positive control on a synthetic tree in tmp_path, so a checker that sees nothing fails.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import REPO

ROOTS = ("components", "pipelines", "mlops", "devstack", "benchmarks")
SKIPPED = ("feature_repo", "project_template")
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 120


@functools.cache
def parse(source: str) -> ast.Module:
    """One parse per distinct source text: the three rules walk the same files."""
    return ast.parse(source)


def modules(repo: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every module of ours (team-style feature repos and the template aside)."""
    found = {}
    for root in ROOTS:
        for path in sorted((repo / root).rglob("*.py")):
            parts = path.relative_to(repo).with_suffix("").parts
            if any(part in SKIPPED for part in parts):
                continue
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def oversized(repo: Path) -> list[str]:
    """'file: N lines' for each module over the limit, 'file:line name: N lines' for each function."""
    found = []
    for path in modules(repo).values():
        source = path.read_text()
        where = path.relative_to(repo)
        length = len(source.splitlines())
        if length > MAX_MODULE_LINES:
            found.append(f"{where}: {length} lines (module limit {MAX_MODULE_LINES})")
        for qualname, node in functions(parse(source)):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > MAX_FUNCTION_LINES:
                found.append(f"{where}:{node.lineno} {qualname}: {length} lines (function limit {MAX_FUNCTION_LINES})")
    return found


def functions(tree: ast.AST, prefix: str = "") -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield f"{prefix}{node.name}", node
            yield from functions(node, f"{prefix}{node.name}.")
        elif isinstance(node, ast.ClassDef):
            yield from functions(node, f"{prefix}{node.name}.")
        else:
            yield from functions(node, prefix)


@dataclass(frozen=True)
class Use:
    """One name a module takes from another module of ours: by `from m import name` or by `m.name`."""

    user: str
    line: int
    module: str
    name: str


def ours(module: str) -> bool:
    return module.split(".")[0] in ROOTS


def absolute(module: str | None, level: int, importer: str, is_package: bool) -> str:
    if level == 0:
        return module or ""
    package = importer.split(".")
    package = package if is_package else package[:-1]
    base = package[: len(package) - (level - 1)]
    return ".".join([*base, module] if module else base)


def uses(repo: Path) -> list[Use]:
    """Every name one module of ours takes from another (submodules taken as modules are not names)."""
    known = modules(repo)
    found: list[Use] = []
    for importer, path in known.items():
        tree = parse(path.read_text())
        is_package = path.name == "__init__.py"
        bound: dict[str, str] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if ours(alias.name):
                        if alias.asname:
                            bound[alias.asname] = alias.name
                        else:
                            bound[alias.name.split(".")[0]] = alias.name.split(".")[0]
            elif isinstance(node, ast.ImportFrom):
                source = absolute(node.module, node.level, importer, is_package)
                if not ours(source):
                    continue
                for alias in node.names:
                    if f"{source}.{alias.name}" in known:
                        bound[alias.asname or alias.name] = f"{source}.{alias.name}"
                    elif alias.name != "*":
                        found.append(Use(importer, node.lineno, source, alias.name))
        found.extend(Use(importer, line, module, name) for line, module, name in attributes(tree, bound, known))
    return [use for use in found if use.module != use.user]


def attributes(scope: ast.AST, bound: dict[str, str], known: dict[str, Path]) -> Iterator[tuple[int, str, str]]:
    """(line, module, name) of each `module.name` in the scope; a function that binds a module's
    name to something else (`drift = sub.add_parser("drift")`) shadows the module inside it."""
    for node in ast.iter_child_nodes(scope):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            shadowed = assigned(node)
            yield from attributes(node, {k: v for k, v in bound.items() if k not in shadowed}, known)
            continue
        if isinstance(node, ast.Attribute):
            module = resolve(node.value, bound, known)
            if module is not None and f"{module}.{node.attr}" not in known:
                yield node.lineno, module, node.attr
        yield from attributes(node, bound, known)


def assigned(function: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> set[str]:
    """The names a function binds itself (parameters, assignments, loop targets), imports aside."""
    arguments = function.args
    names = {a.arg for a in [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]}
    names |= {a.arg for a in (arguments.vararg, arguments.kwarg) if a is not None}
    body = function.body if isinstance(function.body, list) else [function.body]
    for statement in body:
        for node in ast.walk(statement):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
    return names


def resolve(node: ast.expr, bound: dict[str, str], known: dict[str, Path]) -> str | None:
    """The module of ours an expression names (`register`, `components.steps.register`), or None."""
    if isinstance(node, ast.Name):
        return bound.get(node.id)
    if isinstance(node, ast.Attribute):
        parent = resolve(node.value, bound, known)
        if parent is not None and f"{parent}.{node.attr}" in known:
            return f"{parent}.{node.attr}"
    return None


def private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_uses(repo: Path) -> list[str]:
    return sorted(
        f"{modules(repo)[use.user].relative_to(repo)}:{use.line} {use.module}.{use.name}"
        for use in uses(repo)
        if private(use.name)
    )


def declared_all(path: Path) -> list[str] | None:
    """The module's `__all__` as written (literal lists or tuples of strings, `=` then any `+=`), or None."""
    declared: list[str] | None = None
    for node in parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            declared = list(ast.literal_eval(node.value))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == "__all__":
            declared = list(ast.literal_eval(node.value)) if node.value is not None else []
        elif isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name) and node.target.id == "__all__":
            declared = [*(declared or []), *ast.literal_eval(node.value)]
    return declared


def undeclared(repo: Path) -> list[str]:
    """Each module others import from without `__all__`, and each name taken that its `__all__` leaves out."""
    known = modules(repo)
    taken: dict[str, dict[str, list[str]]] = {}
    for use in uses(repo):
        if use.module in known and not use.name.startswith("_"):
            where = f"{known[use.user].relative_to(repo)}:{use.line}"
            taken.setdefault(use.module, {}).setdefault(use.name, []).append(where)
    found = []
    for module, names in sorted(taken.items()):
        path = known[module].relative_to(repo)
        public = declared_all(known[module])
        if public is None:
            found.append(f"{path}: no __all__, yet others import {sorted(names)}")
            continue
        found.extend(
            f"{path}: {name} is not in __all__, yet {users[0]} imports it"
            for name, users in sorted(names.items())
            if name not in public
        )
    return found


def test_no_module_over_500_lines_and_no_function_over_120() -> None:
    """issue 30: files doing two jobs (mlops/isolation.py 684 lines with a 449-line check, devstack/stack.py 674)."""
    offenders = oversized(REPO)
    assert offenders == [], "split these:\n" + "\n".join(offenders)


def test_no_private_name_crosses_a_module() -> None:
    """issue 30: register._experiment_id, register._client, online._redis_client, run._parse_overrides, ..."""
    offenders = private_uses(REPO)
    assert offenders == [], "make these public or move them where they are used:\n" + "\n".join(offenders)


def test_every_module_others_import_declares_what_they_take_in_all() -> None:
    """issue 30: two modules defined __all__, so nothing said which names were a module's public surface."""
    offenders = undeclared(REPO)
    assert offenders == [], "declare these in __all__:\n" + "\n".join(offenders)


def tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_size_checker_names_each_offender_positive_control(tmp_path: Path) -> None:
    fits = "def fits():\n" + "".join(f"    x{i} = {i}\n" for i in range(119))
    inner = "".join(f"            y{i} = {i}\n" for i in range(120))
    repo = tree(
        tmp_path,
        {
            "components/__init__.py": "",
            "components/long.py": "x = 1\n" * 501,
            "components/fits.py": "x = 1\n" * (MAX_MODULE_LINES - 120) + fits,
            "mlops/nested.py": "class C:\n    def m(self):\n        def inner():\n"
            f"{inner}            return 1\n        return inner\n",
            "pipelines/project_template/huge.py": "x = 1\n" * 900,
        },
    )
    assert oversized(repo) == [
        "components/long.py: 501 lines (module limit 500)",
        "mlops/nested.py:2 C.m: 124 lines (function limit 120)",
        "mlops/nested.py:3 C.m.inner: 122 lines (function limit 120)",
    ]


def test_private_import_checker_sees_each_form_positive_control(tmp_path: Path) -> None:
    repo = tree(
        tmp_path,
        {
            "components/__init__.py": "",
            "components/register.py": "_client = 1\nclient = 2\n_own = _client\n",
            "pipelines/__init__.py": "",
            "pipelines/tune.py": (
                "from components.register import _client, client\n"
                "from components import register\n"
                "import components.register\n"
                "import components.register as reg\n"
                "def f():\n"
                "    return register._experiment_id, components.register._c, reg._d, register.__file__\n"
            ),
            "pipelines/inner.py": "from . import tune\nfrom .tune import _helper\nx = tune._y\n",
            "mlops/cli.py": (  # a local variable named like a module is not the module: no use, no finding
                "from components import register\n"
                "def f(sub):\n"
                "    register = sub.add_parser('register')\n"
                "    return register._private_of_argparse\n"
            ),
        },
    )
    assert private_uses(repo) == [
        "pipelines/inner.py:2 pipelines.tune._helper",
        "pipelines/inner.py:3 pipelines.tune._y",
        "pipelines/tune.py:1 components.register._client",
        "pipelines/tune.py:6 components.register._c",
        "pipelines/tune.py:6 components.register._d",
        "pipelines/tune.py:6 components.register._experiment_id",
    ]


def test_all_checker_sees_a_missing_all_and_a_missing_name_positive_control(tmp_path: Path) -> None:
    files = {
        "components/__init__.py": "",
        "components/register.py": "client = 1\nrun = 2\n",
        "components/errors.py": "__all__ = ['Permanent']\nPermanent = 1\nTransient = 2\n",
        "mlops/doctor.py": (
            "from components import errors, register\nx = register.client\ny = errors.Transient, errors.Permanent\n"
        ),
    }
    assert undeclared(tree(tmp_path, files)) == [
        "components/errors.py: Transient is not in __all__, yet mlops/doctor.py:3 imports it",
        "components/register.py: no __all__, yet others import ['client']",
    ]
    files["components/register.py"] = "__all__ = ['client']\nclient = 1\nrun = 2\n"
    files["components/errors.py"] = "__all__ = ['Permanent', 'Transient']\nPermanent = 1\nTransient = 2\n"
    assert undeclared(tree(tmp_path, files)) == []
