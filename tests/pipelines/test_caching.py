"""Cache keys: the data's bytes, a step's arguments and its upstream keys; never a path alone."""

from __future__ import annotations

import shutil
from pathlib import Path

from pipelines.caching import SUFFIXES, code_fingerprint, step_keys
from pipelines.fraud.pipeline import DECLARATION as FRAUD
from tests.conftest import REPO


def _keys(data: Path, **overrides: object) -> dict[str, str]:
    cfg = FRAUD.config().with_overrides(dict(overrides)) if overrides else FRAUD.config()
    run = {
        "raw_data": str(data),
        "git_commit": "",
        "gate_threshold": 0.85,
        "force_retrain": True,
        "logical_date": "",
        "run_id": "r",
    }
    return step_keys(FRAUD, FRAUD.step_parameters(cfg, run), str(data))


def test_only_steps_that_touch_no_registry_are_keyed(tmp_path: Path) -> None:
    (tmp_path / "d.parquet").write_bytes(b"one")
    assert set(_keys(tmp_path / "d.parquet")) == {"validate", "materialize", "train", "evaluate"}


def test_new_bytes_at_the_same_path_change_every_key(tmp_path: Path) -> None:
    data = tmp_path / "d.parquet"
    data.write_bytes(b"one")
    before = _keys(data)
    assert _keys(data) == before  # deterministic
    data.write_bytes(b"onf")  # one byte
    after = _keys(data)
    assert all(before[step] != after[step] for step in before)


def test_a_config_change_re_keys_from_the_first_step_it_affects(tmp_path: Path) -> None:
    data = tmp_path / "d.parquet"
    data.write_bytes(b"one")
    before, after = _keys(data), _keys(data, **{"train.seed": 1})
    assert before["validate"] == after["validate"] and before["materialize"] == after["materialize"]
    assert before["train"] != after["train"] and before["evaluate"] != after["evaluate"]  # downstream of train


def _fingerprinted_copy(target: Path) -> Path:
    """The source files a step's outputs depend on (components/, pipelines/ and mlops/), copied below `target`."""
    for root in ("components", "pipelines", "mlops"):
        for path in sorted((REPO / root).rglob("*")):
            if path.is_file() and path.suffix in SUFFIXES and "__pycache__" not in path.parts:
                copy = target / path.relative_to(REPO)
                copy.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, copy)
    return target


def test_an_edit_to_any_fingerprinted_source_gives_a_new_code_key(tmp_path: Path) -> None:
    """issue 30: this test compared code_fingerprint() with itself, which cannot fail. On a copy of the
    sources: the untouched copy keys as this checkout does (positive control), and one edited byte in
    a step's code, in the pipeline code or in the CLI that runs distributed train's workers (mlops/,
    in on purpose: see code_fingerprint) gives a new key; undone, the key is the old one again."""
    copy = _fingerprinted_copy(tmp_path)
    original = code_fingerprint(copy)
    assert len(original) == 64 and original == code_fingerprint(REPO)
    step_code = next(p for p in sorted((copy / "components").rglob("train.py")))
    edited_files = [step_code, copy / "pipelines" / "caching.py", copy / "mlops" / "cli" / "run.py"]
    for edited in edited_files:
        text = edited.read_text()
        edited.write_text(text + "\n# one more line\n")
        assert code_fingerprint(copy) != original, edited.relative_to(copy)
        edited.write_text(text)
        assert code_fingerprint(copy) == original, edited.relative_to(copy)
    golden = next((copy / "pipelines").rglob("golden/*.yaml"))
    golden.write_text(golden.read_text() + "# an output, not code\n")
    assert code_fingerprint(copy) == original  # goldens are what the code renders, not its source


def _rendered_keys(cfg: object = None) -> dict[str, str]:
    """Each memoized task's cache-key argument in the rendered fraud WorkflowTemplate."""
    from pipelines.argo import render

    template = render(FRAUD, cfg or FRAUD.config())["WorkflowTemplate"]  # type: ignore[arg-type]
    spec = template["spec"]
    dag = next(t for t in spec["templates"] if t["name"] == spec["entrypoint"])["dag"]["tasks"]
    return {
        task["name"]: argument["value"]
        for task in dag
        for argument in task.get("arguments", {}).get("parameters", [])
        if argument["name"] == "cache-key"
    }


def _scope(namespace: str, model: str) -> dict[str, str]:
    return {
        "workflow.parameters.git-commit": "0f" * 20,
        "workflow.parameters.cache-salt": "",
        "workflow.parameters.logical-date": "2026-12-04",
        "workflow.parameters.gate-threshold": "0.85",
        "tasks.validate.outputs.parameters.data_digest": "sha256-" + "e3" * 32,
        "tasks.materialize.outputs.parameters.train_set_sha256": "ab" * 32,
        "tasks.train.outputs.parameters.model_sha256": model,
        "workflow.namespace": namespace,
    }


def test_evaluates_key_names_the_model_bytes_and_every_key_the_tenant() -> None:
    """issue 29: evaluate was memoized on a key without the model, so a rerun whose train made new
    bytes reused the old evaluate result; and no key named the tenant. Keys as Argo's controller
    substitutes them (the stand-in's rules): same model and tenant hit, another model or tenant misses."""
    from tests.integration.argo_controller_stand_in_rules import substitute

    keys = _rendered_keys()
    assert set(keys) == {"materialize", "train", "evaluate"}

    def resolved(namespace: str, model: str) -> dict[str, str]:
        return {name: substitute(key, _scope(namespace, model)) for name, key in keys.items()}

    first = resolved("fraud", "1" * 64)
    assert resolved("fraud", "1" * 64) == first  # positive control: a rerun on the same bytes hits
    retrained = resolved("fraud", "2" * 64)
    assert retrained["evaluate"] != first["evaluate"]  # new model bytes: evaluate runs again
    assert retrained["train"] == first["train"] and retrained["materialize"] == first["materialize"]
    other = resolved("pricing", "1" * 64)
    assert all(other[name] != first[name] for name in keys)  # another tenant never shares an entry
    # the control broken on purpose: the key as rendered before (no model, no namespace) hits across both
    old = (
        keys["evaluate"]
        .replace("-{{workflow.namespace}}", "")
        .replace("-{{=sprig.trunc(16, tasks.train.outputs.parameters.model_sha256)}}", "")
    )
    assert substitute(old, _scope("fraud", "1" * 64)) == substitute(old, _scope("pricing", "2" * 64))


def test_a_backfilled_date_hits_its_own_cache_entry_and_no_other_dates() -> None:
    """A backfill is idempotent: the same date again (same bytes, same code) gives the same keys, so
    Argo answers it from the cache; another date misses materialize even on the same bytes, since
    its lineage records the date (components/dated_inputs.py)."""
    from tests.integration.argo_controller_stand_in_rules import substitute

    keys = _rendered_keys()

    def resolved(day: str) -> dict[str, str]:
        scope = _scope("fraud", "1" * 64) | {"workflow.parameters.logical-date": day}
        return {name: substitute(key, scope) for name, key in keys.items()}

    first = resolved("2026-12-01")
    assert resolved("2026-12-01") == first
    assert resolved("2026-12-02")["materialize"] != first["materialize"]
    assert "{{" not in first["materialize"]  # every variable resolved (the stand-in refuses an unknown one)


def test_a_step_that_reads_a_trainjobs_output_is_not_memoized() -> None:
    """issue 29: with train.distributed the TrainJob is not memoized and reports no model_sha256, so
    evaluate, which reads its model, could only be keyed without the bytes: it is not memoized."""
    cfg = FRAUD.config().with_overrides({"train.distributed": {"runtime": "xgboost-distributed", "workers": 2}})
    keys = _rendered_keys(cfg)
    assert set(keys) == {"materialize"}  # train (a TrainJob) and evaluate (reads its model) run every time
    assert set(_rendered_keys()) == {"materialize", "train", "evaluate"}  # in one pod all three are memoized


def test_a_cached_step_refuses_to_run_outside_the_tenant_its_key_names(tmp_path: Path) -> None:
    """issue 29: a step compiled for one tenant takes its `namespace` as an argument and refuses to run
    (and so to write under that tenant's name) in another's namespace."""
    import pytest

    from components.errors import ComponentError
    from pipelines.caching import require_namespace

    served = tmp_path / "namespace"
    served.write_text("fraud\n")
    require_namespace("train", "fraud", served, environ={})  # positive control
    require_namespace("train", "pricing", tmp_path / "absent", environ={})  # a local run: no pod, no account
    with pytest.raises(ComponentError, match="compiled for namespace 'pricing'") as refused:
        require_namespace("train", "pricing", served, environ={})
    assert refused.value.exit_code == 2 and "cluster.namespace: fraud" in str(refused.value)


def test_a_pod_that_cannot_learn_its_namespace_is_refused(tmp_path: Path) -> None:
    """issue 29 review finding 11: require_namespace passed when the service account's namespace
    file was missing (a pod with automountServiceAccountToken: false), so a step compiled for fraud
    ran unchecked in pricing's pod. A pod (the kubelet sets KUBERNETES_SERVICE_HOST) that can learn
    its namespace neither from the downward API nor from that file is refused, exit 2, naming the fix."""
    import pytest

    from components.errors import ComponentError
    from pipelines.caching import IN_POD_VARIABLE, NAMESPACE_VARIABLE, require_namespace

    absent = tmp_path / "absent"
    in_pod = {IN_POD_VARIABLE: "10.96.0.1"}
    require_namespace("train", "fraud", absent, environ={})  # the local run the old check was for still runs
    with pytest.raises(ComponentError, match="cannot learn the namespace its pod runs in") as refused:
        require_namespace("train", "fraud", absent, environ=in_pod)
    assert refused.value.exit_code == 2 and not refused.value.retryable
    assert f"set {NAMESPACE_VARIABLE}" in refused.value.fix and "mlops compile" in refused.value.fix
    require_namespace("train", "fraud", absent, environ={**in_pod, NAMESPACE_VARIABLE: "fraud"})  # told, it runs


def test_a_pod_learns_its_namespace_from_the_downward_api(tmp_path: Path) -> None:
    """issue 29 review finding 11: the KFP render sets MLOPS_POD_NAMESPACE from `metadata.namespace`
    (pipelines/kfp.py), so a pod without a mounted token still knows its namespace; the variable is
    read before the file, and a mismatch is refused as with the file."""
    import pytest

    from components.errors import ComponentError
    from pipelines.caching import IN_POD_VARIABLE, NAMESPACE_VARIABLE, require_namespace

    absent = tmp_path / "absent"
    require_namespace("train", "fraud", absent, environ={IN_POD_VARIABLE: "x", NAMESPACE_VARIABLE: "fraud"})
    with pytest.raises(ComponentError, match="runs in 'pricing'") as refused:
        require_namespace("train", "fraud", absent, environ={IN_POD_VARIABLE: "x", NAMESPACE_VARIABLE: "pricing"})
    assert refused.value.exit_code == 2
    served = tmp_path / "namespace"
    served.write_text("fraud\n")  # the file agrees, the pod's own namespace does not: the variable wins
    with pytest.raises(ComponentError, match="runs in 'pricing'"):
        require_namespace("train", "fraud", served, environ={NAMESPACE_VARIABLE: "pricing"})
