"""What every task of a pipeline gets on the cluster: environment, Secrets by reference, inputs.

Credentials are never literals in rendered YAML: they are Secret references (Argo
`secretKeyRef`, KFP through kfp-kubernetes). The plain settings close the failures the design
module lists: no S3 endpoint (clients assume public AWS), signature v2, boto3 waiting on a
metadata service that does not exist, and MLflow retrying a broken store for minutes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from components.config import PipelineConfig


@dataclass(frozen=True, kw_only=True)
class SecretRef:
    env: str
    secret: str
    key: str


def plain_environment(cfg: PipelineConfig) -> dict[str, str]:
    return {
        "MLFLOW_S3_ENDPOINT_URL": cfg.cluster.s3_endpoint,
        "AWS_ENDPOINT_URL": cfg.cluster.s3_endpoint,
        "S3_SIGNATURE_VERSION": "s3v4",
        "AWS_METADATA_SERVICE_TIMEOUT": "1",
        "AWS_METADATA_SERVICE_NUM_ATTEMPTS": "1",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "GX_ANALYTICS_ENABLED": "false",
        "MLOPS_HOME": "/work/.mlops",
    }


def secret_environment(cfg: PipelineConfig) -> list[SecretRef]:
    s3, mlflow = cfg.cluster.s3_credentials_secret, cfg.cluster.mlflow_credentials_secret
    return [
        SecretRef(env="AWS_ACCESS_KEY_ID", secret=s3, key="access-key"),
        SecretRef(env="AWS_SECRET_ACCESS_KEY", secret=s3, key="secret-key"),
        SecretRef(env="MLFLOW_TRACKING_USERNAME", secret=mlflow, key="username"),
        SecretRef(env="MLFLOW_TRACKING_PASSWORD", secret=mlflow, key="password"),
    ]


def run_inputs(cfg: PipelineConfig) -> dict[str, Any]:
    """Defaults of the pipeline inputs on the cluster (a submit may override each)."""
    return {
        "raw_data": cfg.cluster.raw_data,
        "feast_store_dir": f"{cfg.cluster.feast_store_dir.rstrip('/')}/{cfg.materialize.project}",
        "tracking_uri": cfg.cluster.tracking_uri,
        "artifact_root": "",
        "serving_root": cfg.cluster.serving_root,
        "git_commit": "",
        "gate_threshold": cfg.evaluate.threshold,
    }
