"""issue 31 item 5: `mlops new` starts clean: the new team's owner and names, placeholders lint refuses.

`mlops new churn` once kept fraud's identity (fraud's on-call as owner, its model card, `team="fraud"`,
`fraud_model_v1`) and printed nothing of what was left to change. One project is scaffolded for the
module (about 6 s, the golden rendering); the placeholder scan is tested on small folders.
"""

from __future__ import annotations

import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from string import Template

import pytest
import yaml

from components.errors import ComponentError
from pipelines.placeholders import TOKEN, placeholders_in, refuse_placeholders
from pipelines.scaffold import TEMPLATES, scaffold_project
from tests.conftest import REPO

INDEX = "https://pypi.team.internal/simple"
OWNER = "churn-oncall@bank.internal"
TEMPLATE = TEMPLATES / "requirements.txt.tmpl"


@pytest.fixture(scope="module")
def retention(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("owner") / "retention"
    return scaffold_project("retention", out, index_url=INDEX, owner=OWNER, model="pytorch_mlp") / "retention_pipeline"


@pytest.mark.parametrize("owner", ["", "fraud", "churn@", "a b@bank.internal", "churn-oncall@bank"])
def test_an_owner_that_is_not_an_email_is_refused_before_anything_is_written(tmp_path: Path, owner: str) -> None:
    """issue 31: --owner is required and must be an email (the alerts page it); nothing half-written."""
    with pytest.raises(ComponentError, match="is not an email address") as refused:
        scaffold_project("attrition", tmp_path / "p", index_url=INDEX, owner=owner)
    assert "--owner churn-oncall@bank.internal" in refused.value.fix
    assert not (tmp_path / "p").exists()


def test_an_unknown_model_kind_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ComponentError, match="--model 'catboost' is not one of xgboost, pytorch_mlp"):
        scaffold_project("attrition", tmp_path / "p", index_url=INDEX, owner=OWNER, model="catboost")


def test_the_new_pipeline_is_the_new_teams_not_frauds(retention: Path) -> None:
    """issue 31: owner, model-card owner, team tag, feature service and model are churn's; fraud's text is gone."""
    config = yaml.safe_load((retention / "config.yaml").read_text())
    assert config["owner"] == config["model_card"]["owner"] == OWNER
    assert config["train"]["model_type"] == "pytorch_mlp"
    assert config["materialize"]["feature_service"] == "retention_model_v1"
    assert config["model_card"]["purpose"].startswith(TOKEN)
    assert all(limit.startswith(TOKEN) for limit in config["model_card"]["known_limits"])
    features = (retention / "feature_repo" / "retention_features.py").read_text()
    assert 'team="retention"' in features and 'name="retention_model_v1"' in features
    for path in [
        retention / "config.yaml",
        retention / "expectations.json",
        retention / "feature_repo" / "retention_features.py",
    ]:
        # what is left of fraud is the demo data's label column, each with a placeholder saying to change it
        leftover = [line for line in path.read_text().splitlines() if "fraud" in line.replace("is_fraud", "")]
        assert leftover == [], (path.name, leftover)
    assert "card transactions" not in (retention / "config.yaml").read_text()


def test_each_column_the_team_must_name_carries_a_placeholder(retention: Path) -> None:
    """issue 31: the label, entity, features, categorical features, suite columns and data loader are marked."""
    marked: dict[str, list[str]] = {}
    for item in placeholders_in(retention):
        marked.setdefault(item.path.name, []).append(item.path.read_text().splitlines()[item.line - 1])
    assert set(marked) == {"config.yaml", "data.py", "expectations.json", "retention_features.py"}
    config_lines = "\n".join(marked["config.yaml"])
    for setting in ("label_column: is_fraud", "entity_column:", "categorical_features:", "what the retention model",
                    "timestamp_column:", "request_features:"):  # fmt: skip
        assert setting in config_lines, setting
    assert "the data window" in (retention / "config.yaml").read_text()
    assert len(marked["retention_features.py"]) == 2  # the entity and the feature view


def test_a_cpu_trained_kind_asks_no_gpu_for_training(retention: Path, tmp_path: Path) -> None:
    """issue 31 (the newcomer's read): `--model lightgbm` kept the standard DAG's one-GPU train pod,
    which holds a GPU idle for a fit that runs on CPU; a GPU-trained kind keeps its GPU (the control)."""
    from components.config import load_config
    from pipelines.resources import step_resources
    from pipelines.standard import training_pipeline

    train = next(step for step in training_pipeline(name="x", description="x").steps if step.name == "train")
    project = scaffold_project("lgbm", tmp_path / "lgbm", index_url=INDEX, owner=OWNER, model="lightgbm")
    cpu = load_config(project / "lgbm_pipeline" / "config.yaml")
    assert cpu.train.model_type == "lightgbm" and step_resources(train, cpu).gpu == 0
    assert set(cpu.tune.space) == {"max_depth", "learning_rate", "num_boost_round"}  # LightGBM's params too
    # a kind whose params the source's search ranges do not name gets no ranges, not ranges it ignores
    sklearn = scaffold_project("skl", tmp_path / "skl", index_url=INDEX, owner=OWNER, model="sklearn")
    assert load_config(sklearn / "skl_pipeline" / "config.yaml").tune.space == {}
    assert load_config(retention / "config.yaml").tune.space == {}  # pytorch_mlp: epochs, not tree depth
    assert step_resources(train, load_config(retention / "config.yaml")).gpu == train.resources.gpu == 1


def test_lint_refuses_each_placeholder_by_file_and_line_until_it_is_written(tmp_path: Path) -> None:
    """issue 31: a pipeline holding `TODO(mlops-new):` is refused (exit 2), naming file:line and what to write."""
    package = tmp_path / "churn_pipeline"
    (package / "feature_repo").mkdir(parents=True)
    (package / "config.yaml").write_text(f"owner: a@b.internal\nmodel_card:\n  purpose: '{TOKEN} say what it scores'\n")
    (package / "feature_repo" / "f.py").write_text(f"x = 1\n# {TOKEN} name the features\n")
    (package / "golden").mkdir()
    (package / "golden" / "w.yaml").write_text(f"# {TOKEN} rendered, not the team's to write\n")
    with pytest.raises(ComponentError) as refused:
        refuse_placeholders("churn", package)
    assert refused.value.exit_code == 2
    assert "churn_pipeline/config.yaml:3: say what it scores" in refused.value.problem
    assert "churn_pipeline/feature_repo/f.py:2: name the features" in refused.value.problem
    assert "golden" not in refused.value.problem and "2 `TODO(mlops-new):` placeholder(s)" in refused.value.problem
    (package / "config.yaml").write_text("owner: a@b.internal\nmodel_card:\n  purpose: Scores churn risk.\n")
    (package / "feature_repo" / "f.py").write_text("x = 1\n")
    refuse_placeholders("churn", package)  # written: passes


def _lock(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "lock.py", *args], cwd=project, capture_output=True, text=True, check=False)


def test_a_team_dependency_that_would_move_a_library_pin_fails_make_lock_naming_both(retention: Path) -> None:
    """issue 31 item 3: the team's requirements.txt installs on top of the library's pins, never instead.

    `make lock` (and the image build, which runs the same `lock.py check`) fails, exit 2, naming the
    package, the team's requirement and the library's pin; a range holding the pin is accepted."""
    project = retention.parent
    pinned = dict(
        line.split("==", 1) for line in (project / "constraints.txt").read_text().splitlines() if "==" in line
    )
    pandas = pinned["pandas"]
    (project / "requirements.txt").write_text("# ours\nchurn-extras==0.1\npandas==2.2.3\n")
    locked = subprocess.run(["make", "lock", f"PYTHON={sys.executable}"], cwd=project, capture_output=True, text=True,
                            timeout=120, check=False)  # fmt: skip
    assert locked.returncode != 0
    assert f"requirements.txt asks for pandas==2.2.3 but private-mlops pins pandas=={pandas}" in locked.stderr
    assert not (project / "requirements.lock").exists() and ".lock-report.json" not in os.listdir(project)
    (project / "requirements.txt").write_text(f"churn-extras==0.1\npandas>=2,<={pandas}\n")
    assert _lock(project, "check", "requirements.txt", "constraints.txt").returncode == 0
    # pip obeys options inside requirements.txt, and a URL requirement names no version: each is refused
    (project / "more.txt").write_text("pandas==2.2.3\n")
    for line, named in (
        ("--extra-index-url https://pypi.org/simple", "is a pip option"),
        ("-r more.txt", "is a pip option"),
        ("-e ../churn_extras", "is a pip option"),
        ("Pandas @ https://x.example/pandas-1.0-py3-none-any.whl", "asks for pandas from https://x"),
    ):
        (project / "requirements.txt").write_text(f"churn-extras==0.1\n{line}\n")
        refused = _lock(project, "check", "requirements.txt", "constraints.txt")
        assert refused.returncode == 2 and named in refused.stderr, (line, refused.stderr)
    (project / "more.txt").unlink()
    (project / "requirements.txt").write_text(Template(TEMPLATE.read_text()).substitute(name="retention"))


def test_the_image_adds_only_the_teams_packages_and_refuses_a_moved_pin(retention: Path, tmp_path: Path) -> None:
    """issue 31 item 3: the image installs the lock's packages the library does not pin, then checks
    every pinned package is still at its pin (a moved one is named with both versions)."""
    project = retention.parent
    pins = (project / "constraints.txt").read_text()
    pandas = next(line for line in pins.splitlines() if line.startswith("pandas=="))
    lock = tmp_path / "requirements.lock"
    lock.write_text(f"# header\n{pandas} --hash=sha256:{'a' * 64}\nchurn-extras==0.1 --hash=sha256:{'b' * 64}\n")
    extras = _lock(project, "extras", str(lock), "constraints.txt")
    assert extras.returncode == 0 and extras.stdout.split() == ["churn-extras==0.1", f"--hash=sha256:{'b' * 64}"]
    assert _lock(project, "verify", "constraints.txt").returncode == 0  # this venv is the library's
    moved = tmp_path / "constraints.txt"
    moved.write_text("pandas==1.0.0\n")
    refused = _lock(project, "verify", str(moved))
    installed = metadata.version("pandas")
    assert refused.returncode == 2
    assert f"pandas: private-mlops pins 1.0.0, the image has {installed}" in refused.stderr


def test_the_image_build_runs_the_pin_check_before_the_teams_install_and_verifies_after(retention: Path) -> None:
    """issue 31 item 3 (test audit): the lock script's checks are tested above; this pins that the
    Containerfile runs them where they guard: `check` before anything installs, only the lock's extras
    installed, `verify` and `pip check` after every install, in one RUN (a failing one fails the build),
    against the component image's own pins (the attacker's read: the project's constraints.txt is the
    team's to edit, and holds only what the laptop that ran `mlops new` had installed)."""
    containerfile = (retention.parent / "Containerfile").read_text()
    component = (REPO / "images" / "component" / "Containerfile").read_text()
    assert "WORKDIR /opt/private-mlops" in component and "COPY constraints.txt" in component
    (run,) = [block for block in containerfile.split("\nRUN ")[1:] if "lock.py" in block]
    order = [
        run.index("python lock.py check requirements.txt /opt/private-mlops/constraints.txt"),
        run.index("python lock.py extras requirements.lock /opt/private-mlops/constraints.txt > /tmp/team.lock"),
        run.index("--require-hashes -r /tmp/team.lock"),
        run.index("pip install -q --no-index --no-deps"),
        run.index("python lock.py verify /opt/private-mlops/constraints.txt"),
        run.index("pip check"),
    ]
    assert order == sorted(order)
    steps = [part.strip() for part in run.replace("\\\n", " ").split("&&")]
    assert all((not step.endswith(";") and "||" not in step) or "grep -q" in step for step in steps)
