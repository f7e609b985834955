from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.config import PromoteSettings, parse_settings
from components.errors import ComponentError
from components.platform.readonly import reader_secret
from components.serving.triton_config import config_pbtxt, parse_config
from components.steps.promote import annotation, promote
from mlops import lint
from tests.conftest import register_into


@pytest.fixture(scope="module")
def registration(
    trained: dict[str, Path], evaluated: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    home = tmp_path_factory.mktemp("registry")
    register_into(home, home, trained["model"], trained["metadata"], evaluated["metrics"], model_name="fraud-detector")
    return home / "registration.json"


def _strictly_valid(service: dict[str, Any]) -> None:
    """Held to what `mlops lint` holds it to (the KServe CRD, and no field it does not declare: an API
    server would prune one without a word), not plain jsonschema, which lets unknown fields pass."""
    problem = lint.check(service)
    assert problem is None, problem


def test_inference_service_is_valid_against_the_kserve_crd(
    registration: Path, trained: dict[str, Path], tmp_path: Path, schemas_dir: Path
) -> None:
    promote(
        str(registration),
        str(trained["model"]),
        str(tmp_path / "isvc.yaml"),
        str(tmp_path / "repo"),
        str(tmp_path / "authorization.yaml"),
        settings=PromoteSettings(namespace="fraud", canary_percent=10, signed_off_by="alice@bank.internal"),
        serving_root=(tmp_path / "serving").as_uri(),
    )
    service = yaml.safe_load((tmp_path / "isvc.yaml").read_text())
    _strictly_valid(service)
    # issue 29: the step wrote the InferenceService alone; who may call it is its own output now
    callers = list(yaml.safe_load_all((tmp_path / "authorization.yaml").read_text()))
    assert [c["kind"] for c in callers] == ["AuthorizationPolicy", "NetworkPolicy"]
    for obj in callers:
        _strictly_valid(obj)
        assert obj["metadata"]["namespace"] == "fraud" and obj["metadata"]["name"] == "fraud-detector-callers"
    reg = json.loads(registration.read_text())
    notes = service["metadata"]["annotations"]
    assert notes["serving.knative.dev/minScale"] == "1"
    assert notes["serving.kserve.io/deploymentMode"] == "Serverless"
    # issue 29: cluster-local unless promote.expose, and Knative's activator out of the request path
    assert service["metadata"]["labels"]["networking.knative.dev/visibility"] == "cluster-local"
    assert notes["autoscaling.knative.dev/target-burst-capacity"] == "0"
    assert notes[annotation("mlflow-run-id")] == reg["run_id"] and len(reg["run_id"]) == 32
    assert float(notes[annotation("holdout-auc")]) == pytest.approx(reg["holdout_metrics"]["roc_auc"])
    assert notes[annotation("holdout-metric")] == "roc_auc"
    assert float(notes[annotation("holdout-score")]) == pytest.approx(reg["gate"]["value"])
    assert notes[annotation("signed-off-by")] == "alice@bank.internal"
    assert notes[annotation("model-card-url")].endswith("model_card.md")
    predictor = service["spec"]["predictor"]
    assert predictor["canaryTrafficPercent"] == 10
    assert predictor["model"]["resources"]["limits"]["memory"] == "4Gi"
    assert predictor["model"]["storageUri"].endswith(f"v{reg['version']}-{reg['artifact_sha256'][:12]}")
    assert predictor["serviceAccountName"] == "model-puller", "the storage initializer's credentials come from it"
    assert "transformer" not in service["spec"]  # none described: the predictor alone, probed over HTTP
    assert predictor["model"]["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"


def test_the_pipelines_transformer_is_rendered_in_front_of_the_predictor(
    registration: Path, trained: dict[str, Path], tmp_path: Path, schemas_dir: Path
) -> None:
    from components.config import transformer_settings
    from pipelines.fraud import pipeline as fraud

    cfg = fraud.DECLARATION.config()
    described = transformer_settings(cfg, "registry.mlops.internal/private-mlops/components:1").model_dump(mode="json")
    promote(str(registration), str(trained["model"]), str(tmp_path / "isvc.yaml"), str(tmp_path / "repo"),
            settings=PromoteSettings(namespace="fraud"), serving_root=(tmp_path / "serving").as_uri(),
            transformer=described)  # fmt: skip
    service = yaml.safe_load((tmp_path / "isvc.yaml").read_text())
    _strictly_valid(service)
    (container,) = service["spec"]["transformer"]["containers"]
    assert container["image"] == "registry.mlops.internal/private-mlops/components:1"
    assert container["command"] == ["/opt/transformer/bin/python", "-m", "components.serving.transformer"]
    expected = {"--feature-service=fraud_model_v1", "--entity-column=user_id", "--predictor_protocol=grpc-v2",
                "--request-features=amount,merchant_category"}  # fmt: skip
    assert expected <= set(container["args"])
    assert container["envFrom"] == [{"configMapRef": {"name": "mlops-platform"}}]  # Redis and registry endpoints
    # issue 29: it logs in as the tenant's readers (username and password each), never its read-write identities
    logins = {e["name"]: (e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
              for e in container["env"] if "secretKeyRef" in e.get("valueFrom", {})}  # fmt: skip
    s3 = logins.pop("AWS_ACCESS_KEY_ID"), logins.pop("AWS_SECRET_ACCESS_KEY")  # its decision log (issue 32)
    writer = "tenant-decisions-credentials"  # a key that may only put decisions/<namespace>/*, not the tenant's own
    assert s3 == ((writer, "access-key"), (writer, "secret-key")) and writer != cfg.cluster.s3_credentials_secret
    feast, redis = (
        reader_secret(cfg.cluster.feast_credentials_secret),
        reader_secret(cfg.cluster.redis_credentials_secret),
    )
    assert logins == {
        "MLOPS_FEAST_REGISTRY_USERNAME": (feast, "username"),
        "MLOPS_FEAST_REGISTRY_PASSWORD": (feast, "password"),
        "MLOPS_FEAST_REDIS_USERNAME": (redis, "username"),
        "MLOPS_FEAST_REDIS_PASSWORD": (redis, "password"),
    }
    read_write = {cfg.cluster.feast_credentials_secret, cfg.cluster.redis_credentials_secret}
    assert not {name for name, _key in logins.values()} & read_write
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/models/fraud-detector/ready"
    model = service["spec"]["predictor"]["model"]
    assert model["ports"] == [{"name": "h2c", "containerPort": 9000, "protocol": "TCP"}]
    assert model["readinessProbe"]["grpc"] == {"port": 9000}
    off = PromoteSettings(namespace="fraud", transformer=False)
    promote(str(registration), str(trained["model"]), str(tmp_path / "off.yaml"), str(tmp_path / "repo-off"),
            settings=off, serving_root=(tmp_path / "serving").as_uri(), transformer=described)  # fmt: skip
    assert "transformer" not in yaml.safe_load((tmp_path / "off.yaml").read_text())["spec"]


def test_model_repository_layout_and_config_parse(registration: Path, trained: dict[str, Path], tmp_path: Path) -> None:
    promote(
        str(registration),
        str(trained["model"]),
        str(tmp_path / "isvc.yaml"),
        str(tmp_path / "repo"),
        settings=PromoteSettings(namespace="fraud", canary_percent=25),
        serving_root=(tmp_path / "serving").as_uri(),
    )
    reg = json.loads(registration.read_text())
    folder = tmp_path / "repo" / "fraud-detector"
    config = parse_config((folder / "config.pbtxt").read_text())
    assert config.backend == "fil" and config.input[0].dims == [6] and config.output[0].dims == [2]
    assert config.parameters["model_type"].string_value == "xgboost_json"
    assert (folder / str(reg["version"]) / "xgboost.json").read_bytes() == trained["model"].read_bytes()
    published = tmp_path / "serving" / "fraud-detector" / f"v{reg['version']}-{reg['artifact_sha256'][:12]}"
    before = (published / "fraud-detector" / "config.pbtxt").stat().st_mtime_ns
    promote(
        str(registration),
        str(trained["model"]),
        str(tmp_path / "isvc2.yaml"),
        str(tmp_path / "repo2"),
        settings=PromoteSettings(namespace="fraud", canary_percent=25),
        serving_root=(tmp_path / "serving").as_uri(),
    )
    assert (published / "fraud-detector" / "config.pbtxt").stat().st_mtime_ns == before  # write-once


def test_torchscript_config_parses_and_a_bad_one_does_not() -> None:
    config = parse_config(config_pbtxt("m", "torchscript", [f"f{i}" for i in range(6)], gpu=True))
    assert config.platform == "pytorch_libtorch" and config.input[0].name == "INPUT__0"
    with pytest.raises(Exception, match="KIND_TPU"):
        parse_config(
            config_pbtxt("m", "torchscript", [f"f{i}" for i in range(6)], gpu=True).replace("KIND_GPU", "KIND_TPU")
        )


def test_bad_canary_percent_and_wrong_model_are_refused(
    registration: Path, trained: dict[str, Path], tmp_path: Path
) -> None:
    with pytest.raises(ComponentError, match=r"promote\.canary_percent|canary_percent: Input should be"):
        parse_settings(PromoteSettings, {"namespace": "fraud", "canary_percent": 0}, "promote")
    (tmp_path / "other").write_bytes(b"{}")
    with pytest.raises(ComponentError, match="does not match the registration"):
        promote(
            str(registration),
            str(tmp_path / "other"),
            str(tmp_path / "isvc.yaml"),
            str(tmp_path / "repo"),
            settings=PromoteSettings(namespace="fraud", canary_percent=10),
        )
    assert not (tmp_path / "isvc.yaml").exists() and not (tmp_path / "repo").exists()


def test_the_strict_check_refuses_a_field_the_kserve_crd_does_not_declare(
    registration: Path, trained: dict[str, Path], tmp_path: Path, schemas_dir: Path
) -> None:
    """issue 28: these tests validated with plain jsonschema, which passes an unknown field (a real
    API server prunes it, so a misspelt setting is silently lost). Control: the rendered service
    passes; broken on purpose with a misspelt field, plain jsonschema still passes it, the check does not."""
    import jsonschema

    promote(str(registration), str(trained["model"]), str(tmp_path / "isvc.yaml"), str(tmp_path / "repo"),
            settings=PromoteSettings(namespace="fraud"), serving_root=(tmp_path / "serving").as_uri())  # fmt: skip
    service = yaml.safe_load((tmp_path / "isvc.yaml").read_text())
    _strictly_valid(service)
    service["spec"]["predictor"]["canaryTrafficPercnt"] = 10
    jsonschema.validate(service, lint.crd_schema(service["apiVersion"], service["kind"]))  # what the tests did
    assert lint.check(service) == "/spec/predictor/canaryTrafficPercnt: field not in the schema"


def test_the_transformer_holds_no_more_bodies_than_half_its_memory_limit() -> None:
    """issue 29 review, finding 10: the transformer had no containerConcurrency, and each request
    buffers up to scoring.max_body_bytes, so ~1000 parallel 1 MiB bodies exceeded its 1 Gi."""
    from components.config import ScoringSettings, TransformerSettings
    from components.steps.promote import TRANSFORMER_MEMORY_GIB, transformer_concurrency

    def transformer(max_body_bytes: int) -> TransformerSettings:
        scoring = ScoringSettings(max_body_bytes=max_body_bytes)
        return TransformerSettings.model_construct(scoring=scoring)

    half = (TRANSFORMER_MEMORY_GIB << 30) // 2
    unlimited = PromoteSettings(namespace="fraud", container_concurrency=0)
    assert transformer_concurrency(transformer(1 << 20), unlimited) * (1 << 20) <= half
    assert transformer_concurrency(transformer(64 << 20), unlimited) == half // (64 << 20)
    # promote.container_concurrency, when set, caps it further; never above what fits
    assert transformer_concurrency(transformer(1 << 20), PromoteSettings(namespace="fraud")) == 8
    # broken control: one more body than the bound would pass half the limit
    assert (transformer_concurrency(transformer(1 << 20), unlimited) + 1) * (1 << 20) > half


def test_the_transformer_is_told_where_to_log_its_decisions_and_in_which_role(schemas_dir: Path) -> None:
    """issue 32: the decision log's variables are derived, none written by hand: the namespace from
    the downward API, the URI under it in the decisions bucket (Kubernetes expands $(MLOPS_NAMESPACE),
    defined before it), canary while the revision takes a share below 100%, else champion."""
    from components.config import transformer_settings
    from components.serving.decision_record import BUCKET
    from components.steps.promote import render_inference_service
    from components.steps.serving_decisions import decision_log_environment, serving_role
    from pipelines.fraud import pipeline as fraud
    from tests.conftest import REGISTRATION

    cfg = fraud.DECLARATION.config()
    described = transformer_settings(cfg, "image:1")

    def environment(canary_percent: int | None) -> list[dict[str, Any]]:
        service = render_inference_service(dict(REGISTRATION), storage_uri="s3://models/x",  # type: ignore[arg-type]
                                           settings=PromoteSettings(namespace="fraud"), canary_percent=canary_percent,
                                           transformer=described)  # fmt: skip
        _strictly_valid(service)
        env: list[dict[str, Any]] = service["spec"]["transformer"]["containers"][0]["env"]
        return env

    env = environment(10)
    by_name = {e["name"]: e for e in env}
    from components.serving import decision_record  # what the transformer reads: the same names

    read = {decision_record.URI_VARIABLE, decision_record.NAMESPACE_VARIABLE, decision_record.ROLE_VARIABLE}
    assert read <= set(by_name) and {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= set(by_name)
    assert by_name["MLOPS_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert by_name["MLOPS_DECISION_LOG_URI"]["value"] == f"s3://{BUCKET}/$(MLOPS_NAMESPACE)/"
    names = [e["name"] for e in env]
    assert names.index("MLOPS_NAMESPACE") < names.index("MLOPS_DECISION_LOG_URI")  # else it is not expanded
    assert by_name["MLOPS_SERVING_ROLE"]["value"] == "canary"
    assert {e["name"]: e["value"] for e in environment(None) if e["name"] == "MLOPS_SERVING_ROLE"} == {
        "MLOPS_SERVING_ROLE": "champion"
    }
    assert [serving_role(p) for p in (None, 0, 1, 99, 100)] == ["champion", "canary", "canary", "canary", "champion"]
    with pytest.raises(ComponentError, match="unknown serving role 'shadow'"):
        decision_log_environment("shadow")
