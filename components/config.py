"""The pipeline's step settings: typed settings of each step's contract, and the config composing them.

What one pipeline's config.yaml sets, step by step. Where the platform's services are (the same for
every pipeline of a namespace: the mlops-platform ConfigMap and Secrets) is the other settings
model, components.platform.settings.

A fork of a reference pipeline changes this file's YAML counterpart, never component code.
Loading validates every field, so an unknown model type or a threshold outside [0, 1] stops
the run before any step starts, with the field's path in the message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator, model_validator

from components.dated_inputs import check_template
from components.decision_log_settings import DecisionLogSettings
from components.drift_settings import DriftSettings
from components.errors import ComponentError
from components.outcome_settings import OutcomesSettings
from components.platform.readonly import reader_secret
from components.ray_settings import Engine, RaySettings
from components.resource_settings import ResourceSettings
from components.train_settings import (
    RUNTIME_OF_MODEL,
    DistributedSettings,
    EvaluateSettings,
    TrainSettings,
    check_gate_metric,
)

__all__ = [
    "RUNTIME_OF_MODEL",
    "Caller",
    "ClusterSettings",
    "DataSettings",
    "DecisionLogSettings",
    "DistributedSettings",
    "DriftSettings",
    "EvaluateSettings",
    "ExplainSettings",
    "MaterializeSettings",
    "ModelCardSettings",
    "PipelineConfig",
    "PromoteSettings",
    "RegisterSettings",
    "ScheduleSettings",
    "ScoringSettings",
    "SearchRange",
    "SettingsModel",
    "TrainSettings",
    "TransformerSettings",
    "TuneSettings",
    "ValidateSettings",
    "callers_field",
    "duration_seconds",
    "load_config",
    "parse_config",
    "parse_settings",
    "transformer_settings",
]


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
Caller = Annotated[str, StringConstraints(pattern=rf"^{_DNS_LABEL}/(\*|[a-z0-9]([-.a-z0-9]*[a-z0-9])?)$")]
"""A caller of a served model, `<namespace>/<serviceaccount>` or `<namespace>/*` (Istio principals)."""


def callers_field(who: str, then: str) -> Any:
    """The one declaration of a `list[Caller]` setting (promote's callers, explain's): none by
    default, and a description that names the format once: `<who>, as <format>; <then>`."""
    return Field(
        default_factory=list,
        description=f"{who}, as `<namespace>/<serviceaccount>` (`<namespace>/*`: any account there); {then}",
    )


class DataSettings(_Settings):
    rows: int = Field(50_000, ge=100, description="Rows of the synthetic dataset for local runs.")
    seed: int = Field(7, description="Seed of the synthetic dataset.")


class ValidateSettings(_Settings):
    suite: str = Field("expectations.json", description="GX suite JSON, relative to the pipeline folder.")


_DURATION = r"^[1-9][0-9]*[hd]$"


def duration_seconds(text: str) -> int:
    """Seconds in a duration such as `30d` or `36h` (the format DriftSettings.max_model_age takes)."""
    return int(text[:-1]) * (86400 if text.endswith("d") else 3600)


class MaterializeSettings(_Settings):
    project: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="Feast project name.")
    feature_repo: str = Field("feature_repo", description="Feast repo folder, relative to the pipeline folder.")
    feature_service: str
    entity_column: str
    timestamp_column: str = "event_timestamp"
    timezone: str | None = Field(
        None, description="IANA zone naive timestamps were written in (else they are refused): components/raw_data.py."
    )
    label_column: str
    request_features: list[str] = Field(
        default_factory=list, description="Features that arrive with the scoring request."
    )
    holdout_fraction: float = Field(0.2, gt=0.0, lt=0.9)
    fill: dict[str, float] = Field(
        default_factory=dict,
        description="Value a feature's missing entries are filled with, per feature (opt-in; an unlisted feature"
        " with a missing value is refused: docs/data-contract.md).",
    )
    label_delay: str | None = Field(
        None,
        pattern=_DURATION,
        description="How late labels may arrive (14d, 36h): an event newer than the data's newest event minus this"
        " may have a null label; it feeds the online store and drift but not training or the holdout. Unset:"
        " every row needs a label (docs/data-contract.md).",
    )
    engine: Engine = Field("local", description="local: one process; ray: Feast's Ray engine (docs/scale-out.md).")
    ray: RaySettings = Field(default_factory=RaySettings, description="engine ray's cluster (locally: its CPUs).")


class RegisterSettings(_Settings):
    model_name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=45)
    experiment: str
    alias: str = "challenger"


class SearchRange(_Settings):
    """One hyperparameter's range: integers or floats between low and high (log-uniform with
    `log`), or one of `choices`."""

    type: Literal["int", "float", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: list[str | int | float | bool] | None = None

    @model_validator(mode="after")
    def _bounded(self) -> SearchRange:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical range needs `choices`")
        elif self.low is None or self.high is None or self.low >= self.high:
            raise ValueError(f"an {self.type} range needs low < high, got low={self.low} high={self.high}")
        elif self.log and self.low <= 0:
            raise ValueError("a log range needs low > 0")
        return self


class TuneSettings(_Settings):
    """A hyperparameter search over `train.params`: Optuna on a laptop, Katib on the cluster."""

    algorithm: Literal["tpe", "random"] = Field("tpe", description="Optuna's sampler locally, Katib's on the cluster.")
    trials: int = Field(20, ge=1, le=1000, description="Trials in all (Katib: maxTrialCount).")
    parallel: int = Field(2, ge=1, le=64, description="Trials at once (Katib: parallelTrialCount).")
    max_failed: int = Field(3, ge=0, description="Failed trials that stop the search (Katib: maxFailedTrialCount).")
    space: dict[str, SearchRange] = Field(
        default_factory=dict, description="train.params names and their ranges; the rest of train.params stays fixed."
    )


class ModelCardSettings(_Settings):
    purpose: str
    owner: str
    known_limits: list[str] = Field(default_factory=list)


class PromoteSettings(_Settings):
    namespace: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    canary_percent: int = Field(10, ge=1, le=100)
    stage: Literal["staging", "production"] = "staging"
    runtime: str = "triton-fil"
    gpu: bool = True
    memory_limit: str = "4Gi"
    signed_off_by: str = ""
    min_replicas: int = Field(1, ge=1, description="Warm replicas (Knative minScale): never 0 for a GPU model.")
    container_concurrency: int = Field(
        8, ge=0, description="In-flight requests per replica before Knative routes to another (0: unlimited)."
    )
    readiness_initial_delay_seconds: int | None = Field(
        None, ge=0, description="Readiness delay; unset: twice the load time `mlops serve` measured, else 60 s."
    )
    service_account: str = Field(
        "model-puller",
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        description="The predictor's ServiceAccount: its annotated Secret lets KServe's storage initializer read"
        " the model from the tenant's serving prefix (manifests/tenants/*/model-puller.yaml).",
    )
    deployment_mode: Literal["Serverless", "RawDeployment"] = Field(
        "Serverless",
        description="KServe mode: a canary is canaryTrafficPercent in Serverless (Knative), a spec.canary entry"
        " beside the champion's predictor in RawDeployment (KServe 0.20+, which ignores canaryTrafficPercent).",
    )
    transformer: bool = Field(
        True,
        description="Put the scoring transformer in front of the predictor (entity keys and request features in,"
        " online features joined from Redis): the InferenceService's `transformer` component.",
    )
    expose: bool = Field(
        False,
        description="Serve outside the cluster through the ingress gateway; unset, the InferenceService is"
        " cluster-local (networking.knative.dev/visibility), reachable only from inside the mesh (issue 29).",
    )
    callers: list[Caller] = callers_field(
        "Who else may score the model",
        "the tenant's own namespace always may. Rendered into the InferenceService's Istio AuthorizationPolicy"
        " (issue 29: the shared proxies must not carry another tenant's requests).",
    )
    analysis_min_decisions: int = Field(
        500,
        ge=1,
        description="`mlops promote --analyze`: decisions each of the canary and the champion must have made in"
        " the canary window before a verdict; fewer, and the verdict is wait.",
    )
    analysis_max_ks: float = Field(
        0.1,
        gt=0.0,
        le=1.0,
        description="The largest two-sample Kolmogorov-Smirnov statistic between the canary's and the champion's"
        " scores that still promotes; above it, roll back.",
    )
    analysis_max_psi: float = Field(
        0.2,
        gt=0.0,
        description="The largest population stability index of the canary's scores on the champion's deciles"
        " that still promotes (0.1-0.2: a moderate shift; above 0.2: a large one); above it, roll back.",
    )
    analysis_min_labelled: int = Field(
        200,
        ge=1,
        description="Labelled decisions (mlops outcomes ingest) each version needs before its realized metrics"
        " count in the verdict; fewer, and they are reported, not judged.",
    )
    analysis_max_realized_drop: float = Field(
        0.02,
        ge=0.0,
        description="How much worse the canary's realized metric may be than the champion's and still promote:"
        " absolute for roc_auc, pr_auc and brier (classifiers), relative for mae (regressors).",
    )
    analysis_min_requests: int = Field(
        100,
        ge=1,
        description="Requests per version in the window before error rate and p99 are judged (else reported).",
    )
    analysis_max_error_rate_increase: float = Field(
        1.0, ge=0.0, le=100.0, description="Percentage points the canary's 5xx rate may exceed the champion's."
    )
    analysis_max_p99_ratio: float = Field(
        1.5, gt=0.0, description="The largest canary/champion ratio of p99 request latency that still promotes."
    )
    prometheus_url: str = Field(
        "", pattern=r"^(https?://\S+)?$", description="--analyze: error rate and p99 from this Prometheus, not the log."
    )
    canary_window: str = Field(
        "24h",
        pattern=_DURATION,
        description="How long a canary serves before the tenant's hourly canary-analysis CronWorkflow judges it"
        " (`mlops canary-analysis`, pipelines/canary_cron.py): 24h, 3d. Until then it is left alone.",
    )


class ExplainSettings(_Settings):
    """Who may see the stored feature values a score used (explain): nobody, unless the config says so."""

    enabled: bool = Field(False, description="Answer explain requests at all; off, they get 403 naming this setting.")
    callers: list[Caller] = callers_field(
        "Who may ask for explanations",
        "rendered into the AuthorizationPolicy's explain rule. Empty with enabled: the tenant's own namespace only.",
    )


class ScoringSettings(_Settings):
    """The request path: entity keys and request features in, the model's input vector out."""

    unknown_entity: Literal["defaults", "reject"] = Field(
        "defaults",
        description="An entity the online store holds nothing for: score it on the defaults (flagged in the"
        " response), or reject it (404).",
    )
    defaults: dict[str, float] = Field(
        default_factory=dict,
        description="A stored feature's value when the entity has none; unlisted: materialize.fill's value for it"
        " (what training filled it with), else 0.0.",
    )
    max_rows: int = Field(
        1000,
        ge=1,
        le=100_000,
        description="Most rows one request may score; past it the transformer answers 400 naming this setting"
        " (issue 29: one unbounded request could fill the transformer's memory).",
    )
    max_body_bytes: int = Field(
        1 << 20,
        ge=4096,
        le=64 << 20,
        description="Largest request body (HTTP) or message (gRPC) the transformer reads; past it, 400 naming this"
        " setting, before the body is parsed. Default 1 MiB: max_rows (1000) rows of a V1 instance, an entity id"
        " and a few request features, stay under ~1 KiB each with room to spare; raise it with max_rows.",
    )
    max_concurrent_joins: int = Field(
        4,
        ge=1,
        le=64,
        description="Online-store joins running at once, each on a worker thread off the event loop; more wait their"
        " turn, so one large request cannot stall the others (issue 29).",
    )
    explain: ExplainSettings = ExplainSettings()
    decision_log: DecisionLogSettings = DecisionLogSettings()


class TransformerSettings(_Settings):
    """The scoring transformer's wiring, derived from a pipeline's materialize, scoring and cluster
    sections and its image (`transformer_settings`): never a second copy written by hand."""

    image: str = Field(description="The component image: its /opt/transformer environment runs the transformer.")
    project: str
    feature_service: str
    entity_column: str
    request_features: list[str]
    scoring: ScoringSettings = ScoringSettings()
    feast_credentials_secret: str = Field(
        description="The reader Secret of the Feast registry (username, password): a role that may only SELECT"
        " the tenant's registry, never its owner (issue 29; components/platform/readonly.py)."
    )
    redis_credentials_secret: str = Field(
        description="The reader Secret of the online store (username, password): a Redis user that may only"
        " read hashes, never the tenant's read-write user (issue 29; components/platform/readonly.py)."
    )


class ScheduleSettings(_Settings):
    cron: str = Field("0 2 * * *", description="Nightly retraining schedule (CronWorkflow schedules).")
    timezone: str = "UTC"
    starting_deadline_seconds: int = Field(
        3600, ge=60, description="Run a schedule missed while the controller was down, if within this window."
    )
    successful_history: int = Field(3, ge=0)
    failed_history: int = Field(5, ge=0)


class ClusterSettings(_Settings):
    """Where the pipeline runs on the cluster: what a platform team sets once per tenant.

    Where the services are is not here: every pod reads it from its namespace's
    `mlops-platform` ConfigMap (components/platform/settings.py), so a fork never copies an endpoint.
    """

    namespace: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    team: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    service_account: str = "pipeline-runner"
    artifact_repository_key: str = Field("default-v1", description="Key in the artifact-repositories ConfigMap.")
    active_deadline_seconds: int = Field(8 * 3600, ge=60)
    raw_data: str = Field(
        description="The dataset's URI on the cluster (s3://...), the default of the raw-data input; it may be a "
        "template on the run's logical date, s3://churn-data/{date}/extract.parquet (components/dated_inputs.py)."
    )
    s3_credentials_secret: str = Field("tenant-s3-credentials", description="Secret with access-key, secret-key.")
    mlflow_credentials_secret: str = Field("tenant-mlflow-credentials", description="Secret with username, password.")
    feast_credentials_secret: str = Field(
        "tenant-feast-credentials", description="Secret with the Feast registry role's password."
    )
    redis_credentials_secret: str = Field(
        "tenant-redis-credentials", description="Secret with the Redis online store's password."
    )
    schedule: ScheduleSettings = Field(default_factory=ScheduleSettings)

    @field_validator("raw_data")
    @classmethod
    def _dated(cls, value: str) -> str:
        return check_template(value)  # only the date placeholders: components/dated_inputs.py


class PipelineConfig(_Settings):
    pipeline: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    owner: str
    data: DataSettings = DataSettings()
    validate_: ValidateSettings = Field(ValidateSettings(), alias="validate")
    materialize: MaterializeSettings
    train: TrainSettings = TrainSettings()
    evaluate: EvaluateSettings = EvaluateSettings()
    register_: RegisterSettings = Field(alias="register")
    model_card: ModelCardSettings
    drift: DriftSettings = DriftSettings()
    tune: TuneSettings = TuneSettings()
    scoring: ScoringSettings = ScoringSettings()
    promote: PromoteSettings
    outcomes: OutcomesSettings = OutcomesSettings()  # components/outcome_settings.py
    cluster: ClusterSettings
    resources: ResourceSettings = Field(default_factory=dict)  # components/resource_settings.py

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _gate_fits_the_objective(self) -> PipelineConfig:
        check_gate_metric(self.train, self.evaluate)
        return self

    def with_overrides(self, overrides: dict[str, Any]) -> PipelineConfig:
        """A copy with dotted-key overrides applied (`train.model_type`: `pytorch_mlp`), revalidated."""
        data = self.model_dump(by_alias=True)
        for dotted, value in overrides.items():
            cursor = data
            *parents, leaf = dotted.split(".")
            for key in parents:
                cursor = cursor.setdefault(key, {})
            cursor[leaf] = value
        return parse_config(data, source="overrides")


def transformer_settings(cfg: PipelineConfig, image: str) -> TransformerSettings:
    """What promote renders the scoring transformer from: the feature service the model was trained on."""
    m = cfg.materialize
    return TransformerSettings(
        image=image,
        project=m.project,
        feature_service=m.feature_service,
        entity_column=m.entity_column,
        request_features=list(m.request_features),
        scoring=cfg.scoring.model_copy(update={"defaults": {**m.fill, **cfg.scoring.defaults}}),
        feast_credentials_secret=reader_secret(cfg.cluster.feast_credentials_secret),
        redis_credentials_secret=reader_secret(cfg.cluster.redis_credentials_secret),
    )


def _explain(error: ValidationError, source: str) -> ComponentError:
    lines = []
    for issue in error.errors():
        where = (
            ".".join(str(part) for part in issue["loc"])
            .replace("validate_", "validate")
            .replace("register_", "register")
        )
        lines.append(f"  - {where}: {issue['msg']} (got {issue.get('input')!r})")
    return ComponentError(
        "config",
        f"pipeline config {source} is invalid:\n" + "\n".join(lines),
        "correct the fields named above; each step's settings are documented in components/config.py",
    )


SettingsModel = TypeVar("SettingsModel", bound=BaseModel)


def parse_settings(model: type[SettingsModel], data: Any, step: str) -> SettingsModel:
    """A step's settings from a plain mapping (a task's JSON parameter), refused by field if invalid."""
    if isinstance(data, model):
        return data
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise _explain(error, f"of the {step} step") from error


def parse_config(data: Any, source: str) -> PipelineConfig:
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as error:
        raise _explain(error, source) from error


def load_config(path: str | Path) -> PipelineConfig:
    file = Path(path)
    if not file.is_file():
        raise ComponentError("config", f"pipeline config not found at {file}", "pass the pipeline's config.yaml")
    try:
        data = yaml.safe_load(file.read_text())
    except yaml.YAMLError as error:
        raise ComponentError(
            "config", f"pipeline config {file} is not valid YAML: {error}", "fix the YAML syntax"
        ) from error
    return parse_config(data, source=str(file))
