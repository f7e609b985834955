"""issue 29: a project made by `mlops new` installs only from the index it declares, with hashes.

The scaffold once wrote `pip install -c constraints.txt -e '.[test]'` (Makefile) with no index
and no hashes: whoever registers `private-mlops` on a public index runs code in every team's CI
(dependency confusion). Each pip install line rendered into the project (Makefile, CI workflow,
Containerfile) must either ask no index (`--no-index`) or name the project's index and check
hashes (`--index-url` with `--require-hashes`; the lock's resolve, `--dry-run`, installs nothing);
`--extra-index-url` is refused everywhere. The lock the Makefile installs is written by the
project's lock.py from pip's install report, shown here on a local index this test controls.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from string import Template
from types import ModuleType

import pytest

from components.errors import ComponentError
from pipelines import scaffold
from pipelines.scaffold import TEMPLATES, scaffold_project

INDEX = "https://pypi.team.internal/simple"
PIP_INSTALL = re.compile(r"\bpip(3)?\s+(--isolated\s+)?install\b")


def unbound_installs(text: str) -> list[str]:
    """The pip install commands (continuations joined, then split at &&, ||, ;, { and }, so each
    command of a shell line is judged alone) that may ask an index other than the project's."""
    joined = re.sub(r"\\\n\s*", " ", text).splitlines()
    commands = [part for line in joined for part in re.split(r"&&|\|\||;|(?<!\S)[{}](?!\S)", line)]
    lines = [line for line in commands if line.strip() and not line.lstrip().startswith("#")]
    bad = [line for line in lines if "--extra-index-url" in line or "PIP_EXTRA_INDEX_URL" in line]
    for line in lines:
        if not PIP_INSTALL.search(line) or "--no-index" in line:
            continue
        words = set(line.split())
        if "--index-url" not in words or not ({"--require-hashes", "--dry-run"} & words):
            bad.append(line.strip())  # no index named, or no hashes checked
        elif not {"PIP_CONFIG_FILE=/dev/null", "--isolated"} <= words:
            bad.append(line.strip())  # pip.conf or PIP_EXTRA_INDEX_URL could add an index beside it
    return bad


def test_the_install_check_sees_an_unbound_line() -> None:
    """Positive control, then the pre-fix Makefile line, an extra index, and a hashless index line."""
    bound = "PIP_CONFIG_FILE=/dev/null $(BIN)/pip --isolated install -q --index-url $(INDEX_URL) --require-hashes"
    assert unbound_installs(f"\t{bound} -r requirements.lock") == []
    assert unbound_installs("\t$(BIN)/pip install -q --index-url $(INDEX_URL) --require-hashes -r requirements.lock")
    assert unbound_installs("RUN pip install -q --no-index --no-deps /opt/x \\\n && pip check") == []
    assert unbound_installs("\t$(BIN)/pip install -q -c constraints.txt -e '.[test]'")  # before the fix
    assert unbound_installs("pip install --index-url https://i/simple --extra-index-url https://pypi.org/simple x")
    assert unbound_installs("python -m pip install --index-url https://i/simple private-mlops==1")
    assert unbound_installs("PIP_CONFIG_FILE=/dev/null pip --isolated install --index-url https://i/simple x==1")
    assert unbound_installs("RUN pip install -q \\\n  private-mlops")
    # issue 31: one shell line, two installs: the unbound one is not hidden by the other's --no-index
    two = "RUN a \\\n && pip install -q --no-deps -r /tmp/team.lock \\\n && pip install -q --no-index /opt/x"
    assert unbound_installs(two) == ["pip install -q --no-deps -r /tmp/team.lock"]
    grouped = (
        "RUN { ! grep -q . t || PIP_CONFIG_FILE=/dev/null pip --isolated install --index-url i --require-hashes -r t; }"
    )
    assert unbound_installs(grouped) == []
    assert unbound_installs(grouped.replace(" --require-hashes", ""))


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("scaffold") / "indexed"
    return scaffold_project("indexed", out, index_url=INDEX, owner="indexed-oncall@bank.internal")


def test_the_rendered_project_installs_only_from_its_index_with_hashes(project: Path) -> None:
    """issue 29: the scaffold invited dependency confusion (no index URL, no hashes)."""
    makefile = (project / "Makefile").read_text()
    assert f"INDEX_URL ?= {INDEX}\n" in makefile
    assert "--require-hashes" in makefile and "-r requirements.lock" in makefile
    installs = 0
    for relative in ("Makefile", ".github/workflows/ci.yml", "Containerfile", "README.md"):
        text = (project / relative).read_text()
        installs += len(PIP_INSTALL.findall(text))
        assert unbound_installs(text) == [], relative
    assert installs >= 4  # the lock, the locked packages, the package itself, the image's
    ci = (project / ".github/workflows/ci.yml").read_text()
    assert "make test" in ci and "requirements.lock" in ci and INDEX in ci
    assert (project / "lock.py").is_file()


def test_every_template_that_installs_is_checked() -> None:
    """A new template with a pip install line cannot escape the check above."""
    values = {"name": "x", "package": "x_pipeline", "source": "fraud", "version": "0", "index_url": INDEX,
              "image": "i", "component_image": "c", "owner": "x@bank.internal", "model": "xgboost"}  # fmt: skip
    for template in TEMPLATES.glob("*.tmpl"):
        assert unbound_installs(Template(template.read_text()).substitute(values)) == [], template.name


def test_the_default_index_is_pips_and_none_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIP_INDEX_URL", "https://pip.configured.internal/simple")
    assert scaffold.index_url_for(None) == "https://pip.configured.internal/simple"
    assert scaffold.index_url_for(INDEX) == INDEX
    monkeypatch.delenv("PIP_INDEX_URL")
    monkeypatch.setattr(scaffold, "configured_index_url", lambda: None)
    with pytest.raises(ComponentError, match="--index-url"):
        scaffold_project("unbound", tmp_path / "p", owner="unbound@bank.internal")
    assert not (tmp_path / "p").exists()
    with pytest.raises(ComponentError, match="not an https, http or file URL"):
        scaffold.index_url_for("pypi.org/simple; curl evil")


def test_pip_config_index_url_is_the_default_and_extra_index_is_not(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PIP_INDEX_URL", raising=False)
    listed = "global.extra-index-url='https://pypi.org/simple'\nglobal.index-url='https://team.internal/simple'\n"

    def fake_run(*args: object, **kwargs: object) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess([], 0, stdout=listed, stderr="")

    monkeypatch.setattr(subprocess, "run", fake_run)
    assert scaffold.configured_index_url() == "https://team.internal/simple"
    listed = "global.extra-index-url='https://pypi.org/simple'\n"
    assert scaffold.configured_index_url() is None


def _lock_module(project: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("team_lock", project / "lock.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _pip(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "pip", "--isolated", "--disable-pip-version-check", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)


def test_the_lock_pins_what_the_index_serves_and_refuses_a_changed_file(project: Path, tmp_path: Path) -> None:
    """lock.py on pip's own install report from a local index; --require-hashes then accepts the
    lock, and refuses it once the index serves other bytes under the same name and version."""
    source = tmp_path / "src"
    (source / "teamdep").mkdir(parents=True)
    (source / "teamdep" / "__init__.py").write_text("VALUE = 1\n")
    (source / "pyproject.toml").write_text('[project]\nname = "teamdep"\nversion = "1.0"\n')
    built = _pip("wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(source))
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("teamdep-1.0-*.whl")
    simple = tmp_path / "simple" / "teamdep"
    simple.mkdir(parents=True)
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    (simple / "index.html").write_text(f'<a href="{wheel.as_uri()}#sha256={digest}">{wheel.name}</a>\n')
    index = (tmp_path / "simple").as_uri()
    report = tmp_path / "report.json"
    resolved = _pip("install", "-q", "--dry-run", "--ignore-installed", "--index-url", index,
                    "--report", str(report), "teamdep==1.0")  # fmt: skip
    assert resolved.returncode == 0, resolved.stderr
    lines = _lock_module(project).lock_lines(json.loads(report.read_text()), "indexed-pipeline")
    assert lines == [f"teamdep==1.0 --hash=sha256:{digest}"]
    lock = tmp_path / "requirements.lock"
    lock.write_text("\n".join(lines) + "\n")
    install = ("install", "-q", "--dry-run", "--no-deps", "--ignore-installed", "--index-url", index,
               "--require-hashes", "-r", str(lock))  # fmt: skip
    assert _pip(*install).returncode == 0
    (source / "teamdep" / "__init__.py").write_text("VALUE = 'somebody else's'\n")
    wheel.unlink()
    assert (
        _pip("wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(source)).returncode
        == 0
    )
    refused = _pip(*install)
    assert refused.returncode != 0 and "THESE PACKAGES DO NOT MATCH THE HASHES" in refused.stderr
    with pytest.raises(SystemExit, match="without a sha256"):
        _lock_module(project).lock_lines({"install": [{"metadata": {"name": "x", "version": "1"}}]}, "indexed-pipeline")
