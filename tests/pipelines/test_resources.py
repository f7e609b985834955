"""Issue 31 item 4: each step's cpu, memory, GPU and ephemeral storage set in config.yaml, validated
when the config loads and against the GPU-memory admission policy and the tenant's quota when the
pipeline is rendered, and carried by every rendering (Argo, KFP, the TrainJob, the Katib trial).

Small and fast: the fraud declaration, its config with overrides, temporary policy and quota files."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.errors import ComponentError
from components.resource_settings import quantity
from pipelines import argo, kfp, resources, standard
from pipelines.fraud import pipeline as fraud
from pipelines.spec import GPU_RESOURCE, PipelineSpec, Resources, Step

REPO = Path(__file__).resolve().parents[2]


def _cfg(**overrides: Any) -> Any:
    return fraud.DECLARATION.config().with_overrides({f"resources.{key}": value for key, value in overrides.items()})


@pytest.mark.parametrize(
    ("setting", "value"), [("memory", "16GB"), ("cpu", "two"), ("ephemeral_storage", "-1Gi"), ("memory", "0")]
)
def test_a_bad_quantity_is_a_permanent_error_naming_the_step_the_setting_and_an_example(
    setting: str, value: str
) -> None:
    """issue 31: a size that is no Kubernetes quantity stops the config load, naming where and how."""
    with pytest.raises(ComponentError) as refused:
        _cfg(**{f"materialize.{setting}": value})
    message = str(refused.value)
    assert f"resources.materialize.{setting}" in message
    assert "for example" in message
    assert refused.value.exit_code == 2


def test_quantities_are_read_as_kubernetes_reads_them() -> None:
    assert quantity("16Gi") == 16 * 2**30
    assert quantity("500m") == Decimal("0.5")
    assert quantity("1.5G") == Decimal(1_500_000_000)
    cfg = _cfg(**{"train.cpu": 8, "train.memory": "24Gi"})
    assert cfg.resources["train"].cpu == "8"


def test_an_entry_for_a_step_the_pipeline_lacks_is_refused_naming_its_steps() -> None:
    """issue 31: a misspelt step name would be ignored; the names come from the declaration's spec."""
    cfg = _cfg(**{"materialise.memory": "16Gi"})
    with pytest.raises(ComponentError) as refused:
        resources.sized(fraud.DECLARATION.spec, cfg)
    assert "materialise" in str(refused.value)
    assert all(step.name in str(refused.value) for step in fraud.DECLARATION.spec.steps)


def test_config_overrides_the_declared_sizes_and_leaves_the_rest() -> None:
    """issue 31: resources were not settable in config.yaml."""
    spec = resources.sized(fraud.DECLARATION.spec, _cfg(**{"materialize.memory": "20Gi", "train.gpu": 0}))
    assert spec.step("materialize").resources == Resources(cpu="2", memory="20Gi")
    assert spec.step("train").resources.gpu == 0
    assert spec.step("validate").resources == fraud.DECLARATION.spec.step("validate").resources


def _policy(tmp_path: Path, prefixes: list[str]) -> Path:
    real = list(yaml.safe_load_all(resources.GPU_POLICY.read_text()))
    constraint = next(document for document in real if document["kind"] == resources.POLICY_KIND)
    constraint["spec"]["parameters"]["gpuResourcePrefixes"] = prefixes
    path = tmp_path / "gpu-memory-limit.yaml"
    path.write_text(yaml.safe_dump_all(real))
    return path


def _memoryless_step_spec() -> PipelineSpec:
    template = fraud.DECLARATION.spec.step("hold")
    step = Step(name="explain", component=template.component, retry=template.retry, resources=Resources(cpu="1"))
    return PipelineSpec(name="fraud", description="", image=standard.IMAGE, steps=(step,))


def test_a_gpu_step_without_a_memory_limit_is_refused_as_the_admission_policy_would(tmp_path: Path) -> None:
    """issue 31: the gpu-memory-limit Constraint refuses a GPU container with no memory limit; so does
    the config, with the rule read from the Constraint's parameters (a control policy whose prefixes
    do not name the rendered GPU resource admits the same step)."""
    assert any(GPU_RESOURCE.startswith(prefix) for prefix in resources.gpu_resource_prefixes() or ())
    cfg = _cfg(**{"explain.gpu": 1})
    with pytest.raises(ComponentError) as refused:
        resources.sized(_memoryless_step_spec(), cfg, policy=resources.GPU_POLICY)
    assert "resources.explain.memory" in str(refused.value)
    assert "gpu-memory-limit.yaml" in str(refused.value)
    admitted = resources.sized(_memoryless_step_spec(), cfg, policy=_policy(tmp_path, ["amd.com/gpu"]))
    assert admitted.step("explain").resources.gpu == 1
    sized = resources.sized(_memoryless_step_spec(), _cfg(**{"explain.gpu": 1, "explain.memory": "4Gi"}))
    assert sized.step("explain").resources.limits()["memory"] == "4Gi"


def _quota(tmp_path: Path, hard: dict[str, str]) -> Path:
    folder = tmp_path / "fraud"
    folder.mkdir()
    document = {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q"}, "spec": {"hard": hard}}
    (folder / "quota.yaml").write_text(yaml.safe_dump(document))
    return tmp_path


def test_a_pod_that_can_never_fit_its_namespace_quota_is_refused_naming_both(tmp_path: Path) -> None:
    """issue 31: a step sized over the tenant's whole quota would wait unscheduled forever."""
    tenants = _quota(tmp_path, {"requests.cpu": "8", "limits.memory": "32Gi", "requests.nvidia.com/gpu": "1"})
    with pytest.raises(ComponentError) as refused:
        resources.sized(fraud.DECLARATION.spec, _cfg(**{"train.gpu": 2}), tenants=tenants)
    assert "resources.train.gpu" in str(refused.value)
    assert "requests.nvidia.com/gpu" in str(refused.value) and "namespace fraud" in str(refused.value)
    with pytest.raises(ComponentError, match=r"resources\.materialize\.memory is 40Gi.*limits\.memory"):
        resources.sized(fraud.DECLARATION.spec, _cfg(**{"materialize.memory": "40Gi"}), tenants=tenants)
    assert resources.sized(fraud.DECLARATION.spec, _cfg(**{"materialize.memory": "32Gi"}), tenants=tenants)
    # the rendered quota of the fraud tenant is the one read by default
    assert resources.namespace_quota("fraud") is not None


def _tables(text: str) -> list[tuple[list[str], list[list[str]]]]:
    """Each Markdown table of `text`: its header cells and its rows' cells."""
    tables: list[tuple[list[str], list[list[str]]]] = []
    lines = [line.strip() for line in text.splitlines()]
    for index, line in enumerate(lines[:-1]):
        if line.startswith("|") and re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", lines[index + 1]):
            rows = []
            for row in lines[index + 2 :]:
                if not row.startswith("|"):
                    break
                rows.append([cell.strip() for cell in row.strip("|").split("|")])
            tables.append(([cell.strip() for cell in line.strip("|").split("|")], rows))
    return tables


def _peaks_at_10m(text: str | None = None) -> dict[str, int]:
    """Peak RSS in MB at the largest measured scale, by step, from docs/performance.md, read by the
    tables' headers: the pipeline table (the steps in one process: the "peak RSS" column after "10M
    rows"), replaced by a step's "Memory against rows" row where it has one (the step alone in a
    fresh process, as its pod runs it): the larger of the first figures of its "10M rows" and "100M
    rows" cells (a pod runs the nightly at 100M rows too). Other tables (the floors) are not read."""
    peaks: dict[str, int] = {}
    alone: dict[str, int] = {}
    text = (REPO / "docs" / "performance.md").read_text() if text is None else text
    for header, rows in _tables(text):
        if "10M rows" not in header:
            continue
        at = header.index("10M rows")
        in_one_process = header[at + 1 : at + 2] == ["peak RSS"]
        target, columns = (peaks, [at + 1]) if in_one_process else (alone, [at])
        if not in_one_process and "100M rows" in header:
            columns.append(header.index("100M rows"))
        for cells in rows:
            for column in columns:
                if len(cells) > column and (figure := re.match(r"([\d,]+) MB", cells[column])):
                    step, value = cells[0].split()[0], int(figure.group(1).replace(",", ""))
                    target[step] = max(target.get(step, 0), value)
    return peaks | alone


def test_the_peaks_are_read_by_the_tables_headers() -> None:
    """Known cases for the reader: a four-column table of other figures (the 100M run's) is not a
    step's 10M peak, which it once was taken for; a "100M rows" column of the steps alone counts
    where it is larger, and a "not measured" cell does not."""
    text = """
| step | 1M rows | peak RSS | 10M rows | peak RSS |
|---|---|---|---|---|
| train | 4 s | 793 MB | 41 s | 6,328 MB |

| step | 1M rows | 10M rows | 100M rows | what bounds it |
|---|---|---|---|---|
| validate | 718 MB | 1,715 MB (was 3,249 MB) | 2,362 MB | batches |
| drift | 1,022 MB | 1,161 MB | not measured | a sample |

| step | seconds | peak RSS | goal 4 GB |
|---|---|---|---|
| validate | 1,094 s | 8,514 MB | MISSED |
"""
    assert [len(rows) for _, rows in _tables(text)] == [1, 2, 1]
    assert _peaks_at_10m(text) == {"train": 6328, "validate": 2362, "drift": 1161}


def test_each_default_holds_the_peak_docs_performance_measured() -> None:
    """issue 31: materialize was capped at 8Gi while 10M rows peaked at 14 GB."""
    peaks = _peaks_at_10m()
    assert {"validate", "materialize", "train", "evaluate", "register", "promote"} <= set(peaks)
    spec = fraud.DECLARATION.spec
    for step, peak in peaks.items():
        memory = spec.step(step).resources.memory
        assert memory is not None and quantity(memory) >= Decimal("1.1") * peak * 10**6, (step, memory, peak)


def _limits_of(template: dict[str, Any]) -> dict[str, str]:
    return {key: str(value) for key, value in template["container"]["resources"]["limits"].items()}


def test_argo_and_kfp_render_the_configured_sizes(tmp_path: Path) -> None:
    """issue 31: the sizes in config.yaml reach the Workflow's templates and the KFP IR."""
    cfg = _cfg(**{"materialize.memory": "20Gi", "materialize.cpu": "3", "materialize.ephemeral_storage": "30Gi"})
    templates = argo.render(fraud.DECLARATION, cfg)["WorkflowTemplate"]["spec"]["templates"]
    materialize = next(template for template in templates if template["name"] == "materialize")
    assert _limits_of(materialize) == {"cpu": "3", "memory": "20Gi", "ephemeral-storage": "30Gi"}
    with pytest.raises(ComponentError, match="ephemeral_storage"):
        kfp.compile_ir(fraud.DECLARATION, cfg, str(tmp_path / "refused.yaml"), cluster=True)
    cfg = _cfg(**{"materialize.memory": "20Gi", "materialize.cpu": "3"})
    kfp.compile_ir(fraud.DECLARATION, cfg, str(tmp_path / "fraud.yaml"), cluster=True)
    executors = next(yaml.safe_load_all((tmp_path / "fraud.yaml").read_text()))["deploymentSpec"]["executors"]
    sized = executors["exec-materialize"]["container"]["resources"]
    assert sized["resourceMemoryLimit"] == "20Gi" and sized["resourceCpuLimit"] == "3"


def test_the_trainjob_and_the_katib_trial_take_the_train_steps_sizes() -> None:
    """issue 31: distributed training and tuning trials are sized by resources.train too."""
    from pipelines.katib import experiment
    from pipelines.trainer import train_job

    distributed = {"workers": 2, "runtime": "xgboost-distributed"}
    space = {"max_depth": {"type": "int", "low": 2, "high": 6}}
    cfg = _cfg(**{"train.memory": "24Gi", "train.gpu": 2}).with_overrides(
        {"train.distributed": distributed, "tune.space": space}
    )
    spec = fraud.DECLARATION.spec
    job = train_job(spec, spec.step("train"), cfg, name="t", namespace="fraud", train_set="s3://a", model_out="s3://b",
                    metadata_out="s3://c", features="x")  # fmt: skip
    assert job["spec"]["trainer"]["resourcesPerNode"]["limits"] == {"cpu": "4", "memory": "24Gi", GPU_RESOURCE: "2"}
    document = experiment(spec, cfg, name="t", train_set="s3://a", holdout_set="s3://b")
    pod = document["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"]["limits"] == {"cpu": "4", "memory": "24Gi", GPU_RESOURCE: "2"}


def test_a_distributed_train_is_checked_against_the_quota_with_all_its_workers(tmp_path: Path) -> None:
    """issue 31: a TrainJob's N nodes each take the train step's size, all at once."""
    tenants = _quota(tmp_path, {"requests.nvidia.com/gpu": "4"})
    one = _cfg(**{"train.gpu": 2})
    assert resources.sized(fraud.DECLARATION.spec, one, tenants=tenants)
    three = one.with_overrides({"train.distributed": {"workers": 3, "runtime": "xgboost-distributed"}})
    with pytest.raises(ComponentError, match=r"resources\.train\.gpu is 2 on each of 3 train\.distributed workers"):
        resources.sized(fraud.DECLARATION.spec, three, tenants=tenants)
