"""docs/install.md, run: every command in it that needs no cluster runs on a copy of the repository.

issue 28: there was no install guide (prerequisites, apply order, out-of-band Secrets, adding a
tenant, upgrading, `mlops doctor`, validating against the cluster's own CRDs), and with no schema
folder `make manifests` did not say what was missing.

The rule, stated in the guide itself: a command whose first word is `kubectl` (other than
`kubectl kustomize`) or `curl` needs a cluster or the network and is not run; one that ends in
`# exits N` must exit N; every other command must exit 0. Where the guide exports a CRD from the
cluster (`kubectl get crd NAME -o yaml > FILE`) or fetches Katib's swagger, the test stands in for
the cluster with the upstream file of the same name from the shared schema folder.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import yaml

from tests.conftest import REPO

GUIDE = REPO / "docs" / "install.md"
TABLE_START = "<!-- out-of-band-secrets:"
TABLE_END = "<!-- end out-of-band-secrets -->"


def sh_blocks(text: str) -> list[list[str]]:
    """The guide's ```sh blocks, each a list of commands (continuation lines joined, comments kept)."""
    blocks = []
    for body in re.findall(r"^```sh\n(.*?)^```", text, flags=re.M | re.S):
        commands, pending = [], ""
        for line in body.splitlines():
            pending += line.strip() if pending else line.rstrip()
            if pending.endswith("\\"):
                pending = pending[:-1].rstrip() + " "
                continue
            if pending.strip() and not pending.lstrip().startswith("#"):
                commands.append(pending.strip())
            pending = ""
        blocks.append(commands)
    return blocks


def program(command: str) -> list[str]:
    """The command's words after any leading NAME=value assignments."""
    words = shlex.split(command, comments=True)
    while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]) and len(words) > 1:
        words = words[1:]
    return words


def needs_cluster(command: str) -> bool:
    words = program(command)
    return bool(words) and (words[0] == "curl" or (words[0] == "kubectl" and words[1:2] != ["kustomize"]))


def expected_exit(command: str) -> int:
    match = re.search(r"#\s*exits (\d+)\s*$", command)
    return int(match.group(1)) if match else 0


def stand_in(command: str, schemas: Path) -> str | None:
    """For a CRD export or the swagger fetch, the shell that writes the upstream file in its place."""
    target = re.search(r">\s*(\S+)\s*$", command)
    if target and (command.startswith("kubectl get crd ") or command.startswith("curl ")):
        upstream = schemas / Path(target.group(1)).name
        assert upstream.is_file(), f"no upstream file stands in for: {command}"
        return f"cp {shlex.quote(str(upstream))} {target.group(1)}"
    return None


def script(blocks: list[list[str]], schemas: Path) -> tuple[str, list[str]]:
    """One bash script running the guide in order: each runnable command checked for its exit."""
    lines, skipped = ["set -u"], []
    for commands in blocks:
        for command in commands:
            shown = shlex.quote(command)
            if needs_cluster(command):
                skipped.append(command)
                replacement = stand_in(command, schemas)
                lines.append(f"printf 'SKIP (needs a cluster) %s\\n' {shown}")
                if replacement:
                    lines.append(f"{replacement} || exit 98")
                continue
            want = expected_exit(command)
            lines += [
                f"printf 'RUN %s\\n' {shown}",
                command,
                f"rc=$?; if [ $rc -ne {want} ]; then",
                f"  printf 'REFUSED (exit %s, not {want}): %s\\n' $rc {shown}; exit 97",
                "fi",
            ]
    return "\n".join(lines) + "\n", skipped


def run(text: str, cwd: Path, schemas: Path, env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    body, skipped = script(sh_blocks(text), schemas)
    done = subprocess.run(
        ["bash", "-c", body], cwd=cwd, env=env, capture_output=True, text=True, timeout=900, check=False
    )
    return done, skipped


def copy_of_the_repository(tmp: Path) -> Path:
    """The working tree's files (tracked and new, not ignored), with the real .venv linked in."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout.decode()
    copy = tmp / "repo"
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy / name)  # mtimes kept: make sees the installed stamp as fresh
    (copy / ".venv").symlink_to(REPO / ".venv")
    return copy


def environment(copy: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MLOPS_SCHEMAS_DIR"}
    env.update(
        PATH=f"{copy / '.venv' / 'bin'}:{env['PATH']}",
        PYTHONPATH=str(copy),  # the copy's packages, not the editable install's checkout
        MAKEFLAGS="-o .venv/.installed-stamp",  # never reinstall the shared environment
        MLOPS_HOME=str(copy / ".mlops"),
    )
    return env


# --- the runner, on guides whose answers are known ---------------------------------------------


def test_the_runner_runs_what_needs_no_cluster_and_fails_on_a_refused_command(tmp_path: Path) -> None:
    env = dict(os.environ)
    ok = "```sh\necho one > out.txt\nkubectl apply -f x.yaml\nfalse  # exits 1\n```\n"
    done, skipped = run(ok, tmp_path, tmp_path, env)
    assert done.returncode == 0, done.stdout + done.stderr  # positive control
    assert (tmp_path / "out.txt").read_text() == "one\n" and skipped == ["kubectl apply -f x.yaml"]
    refused = "```sh\ntrue\nls no-such-file\necho never > after.txt\n```\n"
    done, _ = run(refused, tmp_path, tmp_path, env)
    assert done.returncode == 97 and "REFUSED (exit 2, not 0): ls no-such-file" in done.stdout
    assert not (tmp_path / "after.txt").exists()
    wrong_exit = "```sh\ntrue  # exits 2\n```\n"
    assert run(wrong_exit, tmp_path, tmp_path, env)[0].returncode == 97


def test_the_visible_rule_sorts_commands() -> None:
    assert needs_cluster("kubectl -n mlops get pods") and needs_cluster("curl -fsSL https://x > y")
    assert not needs_cluster("kubectl kustomize manifests/overlays/prod > build/p.yaml")
    assert not needs_cluster("MLOPS_SCHEMAS_DIR=x mlops lint manifests  # exits 2")
    assert expected_exit("MLOPS_SCHEMAS_DIR=x mlops lint manifests  # exits 2") == 2
    assert sh_blocks("```sh\na \\\n  b\n# note\n\nc\n```\n") == [["a b", "c"]]


# --- the guide ---------------------------------------------------------------------------------


def test_every_command_the_guide_gives_that_needs_no_cluster_runs(tmp_path: Path, schemas_dir: Path) -> None:
    """issue 28: the install guide, run as written (section by section) on a copy of the repository."""
    copy = copy_of_the_repository(tmp_path)
    env = environment(copy)
    where = subprocess.run(
        ["python", "-c", "import pipelines; print(pipelines.__file__)"],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
    )
    assert where.stdout.startswith(str(copy)), where  # nothing the guide runs writes into the checkout
    done, skipped = run(GUIDE.read_text(), copy, schemas_dir, env)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    from mlops.lint import CRD_FILES

    assert sum(c.startswith("kubectl get crd ") for c in skipped) == len(CRD_FILES)  # each stood in for
    assert any(c.startswith("kubectl apply --server-side") for c in skipped), skipped
    assert (copy / "build" / "platform.yaml").stat().st_size > 0


def test_the_guides_secrets_table_is_the_out_of_band_list() -> None:
    """issue 28: the install guide lists the Secrets created out of band, with their keys: the
    table is manifests/out-of-band-secrets.yaml, row for row (paste the expected table to fix)."""
    rows = yaml.safe_load((REPO / "manifests" / "out-of-band-secrets.yaml").read_text())["secrets"]
    expected = ["| namespace | Secret | keys | created by | read by |", "|---|---|---|---|---|"]
    expected += [
        f"| {r['namespace']} | `{r['name']}` | {keys} | {r['created_by']} | {r['why']} |"
        for r in rows
        for keys in [", ".join(f"`{k}`" for k in r["keys"])]
    ]
    text = GUIDE.read_text()
    table = text.split(TABLE_START, 1)[1].split("\n", 1)[1].split(TABLE_END, 1)[0].strip().splitlines()
    assert table == expected, "\n".join(expected)


def test_the_guide_exports_exactly_the_schemas_lint_reads(schemas_dir: Path) -> None:
    """The CRD exports the guide lists are lint's own (mlops.lint.needed_schemas), and the CRD name
    lint derives for each file is the name the upstream CRD carries."""
    from mlops.lint import CRD_FILES, crd_name, export_command

    exports = [c for block in sh_blocks(GUIDE.read_text()) for c in block if c.startswith("kubectl get crd ")]
    assert exports == [export_command(group, kind) for group, kind in CRD_FILES]
    for (group, kind), file in CRD_FILES.items():
        header = (schemas_dir / file).read_text().split("\nspec:\n", 1)[0]  # the MB-sized schema left unparsed
        assert yaml.safe_load(header)["metadata"]["name"] == crd_name(group, kind), file


def test_the_guide_applies_server_side_as_the_platforms_field_manager() -> None:
    """issue 28: Argo's settings merge only when applied server-side by the platform's own field
    manager (tests/manifests/test_argo_settings.py); every apply and diff in the guide does so."""
    from pipelines.argo_settings import FIELD_MANAGER
    from pipelines.standard import IMAGE

    commands = [c for block in sh_blocks(GUIDE.read_text()) for c in block]
    applies = [c for c in commands if program(c)[:2] in (["kubectl", "apply"], ["kubectl", "diff"])]
    assert len(applies) >= 4
    assert all(f"--server-side --field-manager={FIELD_MANAGER} -k manifests/" in c for c in applies), applies
    assert f"IMAGE={IMAGE}" in commands  # the live doctor runs the component image the pipelines run


def test_the_guides_gatekeeper_row_names_every_constraint_the_platform_installs() -> None:
    """issue 29: the Gatekeeper row named four of the policies and not serving-labels or
    trainjob-runtimes, so an install that left them out looked complete. The row is checked against
    the Constraints `manifests/policies` renders; control: a name the row lacks is seen."""
    from tests.rendered_manifests import render

    constraints = {
        obj["metadata"]["name"]
        for obj in render(REPO / "manifests" / "policies")
        if obj["apiVersion"].startswith("constraints.gatekeeper.sh/")
    }
    row = next(line for line in GUIDE.read_text().splitlines() if line.startswith("| Gatekeeper |"))

    def undocumented(row: str) -> set[str]:
        return constraints - set(re.findall(r"`([a-z0-9-]+)`", row))

    assert {"serving-labels-from-serving-controllers-only", "trainjobs-on-platform-runtimes"} <= constraints
    assert undocumented(row) == set()
    assert undocumented(row.replace("`trainjobs-on-platform-runtimes`", "")) == {"trainjobs-on-platform-runtimes"}
