"""promote: render the canary release of a registered model.

Two outputs, both derived from the registration alone:
- the Triton model repository for the version, published once to a content-addressed,
  write-once location (the immutable artifact the InferenceService points at), and copied
  into the run's output folder for review;
- the KServe InferenceService: in Serverless mode a canary is canaryTrafficPercent; in Standard
  (RawDeployment) mode, where KServe ignores it, a spec.canary entry (promote_canary); a warm
  replica (`minScale: "1"`: a GPU model that scales to zero answers its first request after
  minutes), and the promotion annotations that the admission
  policy checks: holdout AUC, model card URL, MLflow run id, who trained and who signed off.
Applying it to a cluster is the CLI's job, not this step's.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import yaml

from components import artifacts
from components.config import PromoteSettings, TransformerSettings
from components.errors import ComponentError
from components.handoffs import PromoteResult, Registration, read_registration
from components.model_kinds import kind_of_format
from components.platform import services
from components.platform.readonly import READER_VARIABLES
from components.platform.settings import CONFIGMAP
from components.serving.served_bytes import ARTIFACT_SHA256_ANNOTATION, EXPECTED_SHA256_ENV
from components.serving.triton_config import RepositoryError, backend_of, parse_config
from components.steps import serving_authorization as authz
from components.steps.promote_canary import STANDARD_MODES, check_step_split, is_standard, stable_service
from components.steps.serving_authorization import TARGET_BURST_CAPACITY, serving_objects, visibility_labels
from components.steps.serving_decisions import decision_log_environment, serving_role
from components.steps.triton_repository import model_file_name, published_location, write_repository

__all__ = [
    "ANNOTATION_PREFIX",
    "CLUSTER_BACKENDS",
    "COMPONENT_UID",
    "DNS_LABEL",
    "MODEL_PULLER",
    "PLATFORM_CONFIGMAP",
    "RAW_DEPLOYMENT",
    "READINESS_PATH",
    "RUN_ID",
    "SCORING_FLAG",
    "SERVING_RUNTIMES",
    "STEP",
    "TRANSFORMER_MEMORY_GIB",
    "TRANSFORMER_PYTHON",
    "TRITON_GRPC_PORT",
    "TRITON_HTTP_PORT",
    "TRITON_UID",
    "UNMEASURED_READINESS_DELAY_S",
    "annotation",
    "check_replicas",
    "check_runtime",
    "check_servable",
    "check_traffic_split",
    "promote",
    "publish_repository",
    "readiness_delay",
    "render_inference_service",
    "render_transformer",
    "transformer_concurrency",
]

STEP = "promote"
ANNOTATION_PREFIX = "mlops.private-platform.io"
RUN_ID = re.compile(r"[a-f0-9]{32}")  # always fullmatch: "$" also matches before a final newline
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def annotation(name: str) -> str:
    return f"{ANNOTATION_PREFIX}/{name}"


def _publish(repository: Path, serving_root: str, model_name: str, version: int, sha: str) -> str:
    """Copy the repository to <serving_root>/<model>/v<version>-<sha12>/ unless already there."""
    target = published_location(serving_root, model_name, version, sha)
    marker = f"{target}/{model_name}/config.pbtxt"
    if artifacts.exists(marker):
        return target
    if artifacts.is_s3(target):
        for path in sorted(p for p in repository.rglob("*") if p.is_file()):
            with artifacts.atomic_path(f"{target}/{path.relative_to(repository).as_posix()}") as tmp:
                shutil.copyfile(path, tmp)
        return target
    with artifacts.atomic_dir(target) as tmp:
        shutil.copytree(repository, tmp, dirs_exist_ok=True)
    return artifacts.local_path(target).as_uri()


READINESS_PATH = "/v2/health/ready"
TRITON_HTTP_PORT = 8080  # the serving image's --http-port
TRITON_UID = 1000  # triton-server in NGC 24.x; any non-root uid works (world-readable server, model volume by fsGroup)
UNMEASURED_READINESS_DELAY_S = 60
SERVERLESS, RAW_DEPLOYMENT = "Serverless", "RawDeployment"
MODEL_PULLER = "model-puller"
SCORING_FLAG = "--scoring"  # the scoring section as JSON: the promotion guard reads the decision log's switch in it
TRITON_GRPC_PORT = 9000  # the serving image's --grpc-port: the transformer calls the predictor there
TRANSFORMER_PYTHON = "/opt/transformer/bin/python"  # the component image's transformer environment
COMPONENT_UID = 65532  # the component image's user (images/component/Containerfile)
PLATFORM_CONFIGMAP = CONFIGMAP  # the namespace's ConfigMap of where the stores are (platform settings)
TRANSFORMER_MEMORY_GIB = 1  # the transformer container's memory limit


def transformer_concurrency(transformer: TransformerSettings, settings: PromoteSettings) -> int:
    """The transformer's containerConcurrency (issue 29 review, finding 10): it buffers each request
    body whole (components/serving/request_guard.py, up to scoring.max_body_bytes), so in-flight requests
    are held to what fits in half its memory limit (the rest: the server, the parsed rows, the
    join), and to promote.container_concurrency when that is set (0 is Knative's unlimited)."""
    fits = max(1, (TRANSFORMER_MEMORY_GIB << 30) // 2 // transformer.scoring.max_body_bytes)
    return min(fits, settings.container_concurrency) if settings.container_concurrency else fits


def readiness_delay(configured: int | None, load_seconds: float | None) -> int:
    """The readiness probe's initial delay: as configured, else twice the load time `mlops serve`
    measured (at least 5 s), else a conservative minute."""
    if configured is not None:
        return configured
    if load_seconds is not None:
        return max(5, math.ceil(2 * load_seconds))
    return UNMEASURED_READINESS_DELAY_S


def check_traffic_split(deployment_mode: str, canary_percent: int | None) -> None:
    """Refuse a mode promote cannot render. A canary is `canaryTrafficPercent` in Serverless mode and a
    `spec.canary` entry in Standard (RawDeployment) mode (components/steps/promote_canary.py: KServe
    ignores canaryTrafficPercent there, kserve#5335; 0.20 added spec.canary, kserve PR #5672)."""
    if deployment_mode not in (SERVERLESS, *STANDARD_MODES):
        choices = f"use {SERVERLESS} or {RAW_DEPLOYMENT}"
        raise ComponentError(STEP, f"unknown deployment mode {deployment_mode!r}", choices)


SERVING_RUNTIMES: dict[str, frozenset[str]] = {"triton-fil": frozenset({"fil", "pytorch", "onnxruntime", "python"})}
"""Each KServe ClusterServingRuntime the platform ships (manifests/base/serving/, named there) and
the Triton backends its image carries: triton-fil is the NGC tritonserver, with FIL (XGBoost,
LightGBM), libtorch (TorchScript), onnxruntime (ONNX) and python. A model kind names its backend
(components.model_kinds, `triton_backend`); promote.runtime must name a runtime that has it."""


def check_runtime(runtime: str, backend: str, model_format: str) -> None:
    """Refuse, naming promote.runtime, a runtime that cannot load the model's Triton backend."""
    if backend in SERVING_RUNTIMES.get(runtime, frozenset()):
        return
    able = sorted(name for name, backends in SERVING_RUNTIMES.items() if backend in backends)
    known = f"the platform's runtimes are {sorted(SERVING_RUNTIMES)}"
    raise ComponentError(
        STEP,
        f"promote.runtime {runtime!r} cannot serve this {model_format} model (Triton backend {backend}); {known}",
        f"set promote.runtime: {' or '.join(able)} in the pipeline's config.yaml"
        if able
        else f"no runtime of the platform has the {backend} backend: serve the model through one of "
        + ", ".join(sorted({b for backends in SERVING_RUNTIMES.values() for b in backends})),
    )


CLUSTER_BACKENDS = ("fil", "pytorch", "onnxruntime")
"""The backends promote writes a cluster Triton repository for (triton_repository.write_repository)."""


def check_servable(model_format: str) -> None:
    """Refuse a model whose kind is served by a backend promote has no repository for: Triton's
    python backend would need the kind's package inside the serving image, which has only the library's."""
    try:
        kind = kind_of_format(model_format)
    except ComponentError:
        return  # no installed kind reads it: write_repository refuses the format itself
    if kind.triton_backend not in CLUSTER_BACKENDS:
        raise ComponentError(
            STEP,
            f"model kind {kind.name!r} is served by Triton's {kind.triton_backend} backend, which has no cluster "
            f"repository (the serving image lacks the kind's package); nothing was published",
            f"save the model in a format a cluster backend reads ({', '.join(CLUSTER_BACKENDS)}): export it to "
            "ONNX (the sklearn kind's format) or a FIL-readable tree file (XGBoost JSON, LightGBM text)",
        )


def check_replicas(min_replicas: int, gpu: bool) -> None:
    """A GPU model that scales to zero answers its first request after minutes (model load)."""
    if gpu and min_replicas < 1:
        raise ComponentError(
            STEP,
            f"a GPU InferenceService must keep a warm replica (min_replicas {min_replicas})",
            "set promote.min_replicas to 1 or more",
        )


def render_transformer(
    model_name: str, transformer: TransformerSettings, settings: PromoteSettings, role: str = "champion"
) -> dict[str, Any]:
    """The InferenceService's `transformer`: the component image's scoring transformer
    (components/serving/transformer.py). KServe adds --model_name, --predictor_host and --http_port; the
    rest says which feature service to join. Where Redis and the Feast registry are comes from the
    namespace's mlops-platform ConfigMap; who it logs in as, from the reader Secrets (username and
    password each, over the ConfigMap's Redis user): it reads, never writes (issue 29). Its decision
    log (issue 32) goes to its tenant's prefix of the decisions bucket: `decision_log_environment`."""
    args = [
        "--predictor_protocol=grpc-v2",
        f"--feature-project={transformer.project}",
        f"--feature-service={transformer.feature_service}",
        f"--entity-column={transformer.entity_column}",
        f"--request-features={','.join(transformer.request_features)}",
        f"{SCORING_FLAG}={json.dumps(transformer.scoring.model_dump(mode='json'), sort_keys=True)}",
    ]
    reader = {"registry": transformer.feast_credentials_secret, "redis": transformer.redis_credentials_secret}
    secrets = {name: (reader[store], key) for name, (store, key) in READER_VARIABLES.items()}
    container = {
        "name": "kserve-container",
        "image": transformer.image,
        "command": [TRANSFORMER_PYTHON, "-m", "components.serving.transformer"],
        "args": args,
        "envFrom": [{"configMapRef": {"name": PLATFORM_CONFIGMAP}}],
        "env": [
            {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}
            for name, (secret, key) in secrets.items()
        ]
        + decision_log_environment(role),
        # Ready only once it has read the predictor's config and resolved the feature service.
        "readinessProbe": {
            "httpGet": {"path": f"/v2/models/{model_name}/ready", "port": authz.TRANSFORMER_PORT},
            "initialDelaySeconds": 5,
            "periodSeconds": 5,
            "failureThreshold": 3,
        },
        "resources": {
            "requests": {"cpu": "500m", "memory": "512Mi"},
            "limits": {"cpu": "1", "memory": f"{TRANSFORMER_MEMORY_GIB}Gi"},
        },
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
    }
    if is_standard(settings.deployment_mode):  # Knative names the port itself (user-port) and refuses other names
        container["ports"] = [{"name": authz.TRANSFORMER_PORT_NAME, "containerPort": authz.TRANSFORMER_PORT}]
    return {
        "minReplicas": max(settings.min_replicas, 1),
        "containerConcurrency": transformer_concurrency(transformer, settings),
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": COMPONENT_UID,
            "runAsGroup": COMPONENT_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
    }


def render_inference_service(
    registration: Registration,
    *,
    storage_uri: str,
    settings: PromoteSettings,
    canary_percent: int | None,
    probe_readiness: bool = False,
    transformer: TransformerSettings | None = None,
    trained_by: str = "",
) -> dict[str, Any]:
    """The InferenceService for one registered version, everything else from the promote settings.

    canary_percent None leaves traffic to KServe's default (the latest revision takes all); an
    empty memory_limit sets none (which the GPU admission rule then refuses). With a transformer
    (and promote.transformer on), the predictor is reached over gRPC (h2c, Triton's 9000) and
    probed there with gRPC's health protocol, which Triton answers. With `probe_readiness` (what
    promote and rollout apply), that readiness probe waits `readiness_delay`: the configured delay,
    else one from the load time `mlops serve` measured and the registration records."""
    with_transformer = transformer is not None and settings.transformer
    namespace, signed_off_by, stage = settings.namespace, settings.signed_off_by, settings.stage
    runtime, gpu, memory_limit = settings.runtime, settings.gpu, settings.memory_limit
    min_replicas = settings.min_replicas
    container_concurrency, deployment_mode = settings.container_concurrency, settings.deployment_mode
    service_account = settings.service_account
    name = registration["model_name"]
    annotations = {
        "serving.kserve.io/deploymentMode": deployment_mode,
        annotation("holdout-metric"): registration["gate"]["metric"],
        annotation("holdout-score"): f"{registration['gate']['value']:.6f}",
        annotation("model-card-url"): registration["model_card_uri"],
        annotation("mlflow-run-id"): registration["run_id"],
        annotation(ARTIFACT_SHA256_ANNOTATION): registration["artifact_sha256"],
        annotation("registered-model"): f"{name}/{registration['version']}",
    }
    if deployment_mode == SERVERLESS:
        annotations["serving.knative.dev/minScale"] = str(max(min_replicas, 1))
        # with a warm replica, keeps Knative's shared activator out of the request path (issue 29):
        # components/steps/serving_authorization.py
        annotations[TARGET_BURST_CAPACITY] = "0"
    if "roc_auc" in registration["holdout_metrics"]:
        annotations[annotation("holdout-auc")] = f"{registration['holdout_metrics']['roc_auc']:.6f}"
    annotations |= {annotation(k): v for k, v in (("trained-by", trained_by), ("signed-off-by", signed_off_by)) if v}
    limits: dict[str, str] = {"cpu": "2"}
    requests: dict[str, str] = {"cpu": "1"}
    if memory_limit:
        limits["memory"] = requests["memory"] = memory_limit
    if gpu:
        limits["nvidia.com/gpu"] = "1"
    model: dict[str, Any] = {
        "modelFormat": {"name": "triton"},
        "runtime": runtime,
        "protocolVersion": "v2",
        "storageUri": storage_uri,
        # what the predictor checks the downloaded bytes against before Triton starts (served_bytes)
        "env": [{"name": EXPECTED_SHA256_ENV, "value": registration["artifact_sha256"]}],
        "resources": {"requests": requests, "limits": limits},
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
    }
    if with_transformer:
        # Knative exposes one port per container: h2c, so the transformer's gRPC calls reach Triton.
        model["ports"] = [{"name": "h2c", "containerPort": TRITON_GRPC_PORT, "protocol": "TCP"}]
    if probe_readiness:  # after the configured delay, else one from the load time `mlops serve` measured
        check: dict[str, Any] = (
            {"grpc": {"port": TRITON_GRPC_PORT}}
            if with_transformer
            else {"httpGet": {"path": READINESS_PATH, "port": TRITON_HTTP_PORT}}
        )
        model["readinessProbe"] = {
            **check,
            "initialDelaySeconds": readiness_delay(
                settings.readiness_initial_delay_seconds, registration.get("load_seconds")
            ),
            "periodSeconds": 5,
            "failureThreshold": 3,
        }
    # The ServiceAccount's annotated Secret is how KServe's storage initializer gets the endpoint
    # and the read-only key for storageUri; without it the model never downloads.
    predictor: dict[str, Any] = {
        "minReplicas": max(min_replicas, 1),
        "serviceAccountName": service_account,
        # Pod Security `restricted`, which the serving namespaces enforce. A numeric user: the
        # Triton image's USER is a name (triton-server, uid 1000), which runAsNonRoot cannot verify.
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": TRITON_UID,
            "runAsGroup": TRITON_UID,
            "fsGroup": TRITON_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    if canary_percent is not None and not is_standard(deployment_mode):  # ignored there: spec.canary splits
        predictor["canaryTrafficPercent"] = canary_percent
    if container_concurrency is not None:
        predictor["containerConcurrency"] = container_concurrency
    predictor["model"] = model
    if gpu:
        predictor["nodeSelector"] = {"mlops.private-platform.io/pool": "inference-gpu"}
        predictor["tolerations"] = [{"key": "kserve-gpu", "operator": "Exists", "effect": "NoSchedule"}]
        predictor["priorityClassName"] = "production-inference"
    spec: dict[str, Any] = {"predictor": predictor}
    if with_transformer and transformer is not None:
        spec["transformer"] = render_transformer(name, transformer, settings, serving_role(canary_percent))
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {
                annotation("stage"): stage,
                annotation("model-version"): str(registration["version"]),
                **visibility_labels(settings),
            },
            "annotations": annotations,
        },
        "spec": spec,
    }


def publish_repository(
    reg: Registration,
    model_bytes: bytes,
    serving_root: str,
    *,
    gpu: bool,
    decision_threshold: float = 0.5,
    copy_to: str | None = None,
    runtime: str | None = None,
) -> str:
    """Write the version's Triton repository (checked: config and Treelite; with `runtime`, that
    the runtime has the config's backend) and publish it, write-once, under
    <serving_root>/<model>/v<version>-<sha12>; returns the storage URI."""
    check_servable(reg["model_format"])
    with tempfile.TemporaryDirectory() as tmp:
        repository = Path(tmp) / "repository"
        try:
            write_repository(
                repository,
                reg["model_name"],
                int(reg["version"]),
                reg["model_format"],
                model_bytes,
                reg["features"],
                gpu=gpu,
                threshold=decision_threshold,
                regression=reg.get("objective") == "regression",
            )
        except RepositoryError as error:
            raise ComponentError(
                STEP,
                f"the Triton repository for {reg['model_name']} v{reg['version']} would not load: {error}",
                "a config error is a bug in the repository template (report it with the model format); "
                "a model Treelite refuses needs an XGBoost/Treelite pairing the serving image's FIL accepts",
            ) from error
        if runtime is not None:
            config = parse_config((repository / reg["model_name"] / "config.pbtxt").read_text())
            check_runtime(runtime, backend_of(config), reg["model_format"])
        storage_uri = _publish(repository, serving_root, reg["model_name"], int(reg["version"]), reg["artifact_sha256"])
        if copy_to is not None:
            with artifacts.atomic_dir(copy_to) as out:
                shutil.copytree(repository, out, dirs_exist_ok=True)
    return storage_uri


def promote(
    registration: str,
    model: str,
    inference_service_out: str,
    model_repository_out: str,
    serving_authorization_out: str | None = None,
    *,
    settings: PromoteSettings,
    decision_threshold: float = 0.5,
    serving_root: str | None = None,
    transformer: dict[str, Any] | None = None,
) -> PromoteResult:
    """Render the Triton repository and the InferenceService for a registered version (with the
    scoring transformer the pipeline describes, `components.config.transformer_settings`), and who
    may call it: its AuthorizationPolicy and NetworkPolicy, two YAML documents in
    `serving_authorization_out`, applied with the service (issue 29, serving_authorization)."""
    reg = read_registration(registration)
    canary_percent, stage, gpu = settings.canary_percent, settings.stage, settings.gpu
    if not 1 <= canary_percent <= 100:
        raise ComponentError(
            STEP,
            f"canary percent must be 1..100, got {canary_percent}",
            "set promote.canary_percent in the pipeline config (100 means full rollout)",
        )
    check_traffic_split(settings.deployment_mode, canary_percent)
    check_step_split(settings.deployment_mode, canary_percent)
    check_replicas(settings.min_replicas, gpu)
    if not RUN_ID.fullmatch(reg.get("run_id", "")):
        raise ComponentError(
            STEP,
            f"registration carries run id {reg.get('run_id')!r}, not 32 hex characters",
            "pass the registration JSON written by register",
        )
    if not DNS_LABEL.fullmatch(reg["model_name"]) or len(reg["model_name"]) > 45:
        raise ComponentError(
            STEP,
            f"model name {reg['model_name']!r} is not a valid InferenceService name",
            "use lowercase letters, digits and '-', at most 45 characters",
        )
    if stage not in ("staging", "production"):
        raise ComponentError(STEP, f"unknown stage {stage!r}", "use staging or production")
    model_bytes = artifacts.read_bytes(model)
    if artifacts.sha256_file_bytes(model_bytes) != reg["artifact_sha256"]:
        raise ComponentError(
            STEP,
            "the model artifact does not match the registration's sha256",
            "pass the model that register registered",
        )
    root = serving_root or services.serving_root(STEP)
    storage_uri = publish_repository(
        reg,
        model_bytes,
        root,
        gpu=gpu,
        decision_threshold=decision_threshold,
        copy_to=model_repository_out,
        runtime=settings.runtime,
    )
    described = TransformerSettings.model_validate(transformer) if transformer else None
    service = render_inference_service(
        reg,
        storage_uri=storage_uri,
        settings=settings,
        canary_percent=canary_percent,
        probe_readiness=True,
        transformer=described,
    )
    if is_standard(settings.deployment_mode):
        service = stable_service(service, int(reg["version"]))
    artifacts.write_bytes(inference_service_out, yaml.safe_dump(service, sort_keys=False).encode())
    if serving_authorization_out is not None:
        callers = serving_objects(service, settings, described)[1:]
        text = "---\n".join(yaml.safe_dump(obj, sort_keys=False) for obj in callers)
        artifacts.write_bytes(serving_authorization_out, text.encode())
    return {
        "step": STEP,
        "inference_service": reg["model_name"],
        "namespace": settings.namespace,
        "canary_percent": canary_percent,
        "storage_uri": storage_uri,
        "model_file": f"{reg['model_name']}/{reg['version']}/{model_file_name(reg['model_format'])}",
    }
