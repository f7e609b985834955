"""The cluster side of `mlops tune`: the pipeline's search space as a Katib Experiment (v1beta1).

Katib runs the trials: `tune.algorithm` (tpe or random; Katib's are hyperopt's), at most
`tune.parallel` at once and `tune.trials` in all, each a Job of the component image running
`mlops tune-trial` (pipelines/tune.py: the train and evaluate steps on sets already made), whose
`<metric>=<value>` lines Katib's StdOut collector reads. The objective is evaluate's gate
metric. `mlops lint` checks the rendering against Katib's swagger (its CRD has no field schema).
"""

from __future__ import annotations

from typing import Any

from components.config import PipelineConfig, SearchRange
from pipelines.cluster import TRAINING_POOL, secret_environment
from pipelines.resources import sized
from pipelines.spec import PipelineSpec
from pipelines.tune import direction

__all__ = ["API_VERSION", "PARAMETER_TYPES", "RESTRICTED", "experiment"]

API_VERSION = "kubeflow.org/v1beta1"
PARAMETER_TYPES = {"int": "int", "float": "double", "categorical": "categorical"}
RESTRICTED = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "runAsNonRoot": True}


def _parameter(name: str, bounds: SearchRange) -> dict[str, Any]:
    if bounds.type == "categorical":
        space: dict[str, Any] = {"list": [str(choice) for choice in bounds.choices or []]}
    else:
        number = int if bounds.type == "int" else float
        space = {"min": str(number(bounds.low or 0)), "max": str(number(bounds.high or 0))}
        if bounds.log:
            space["distribution"] = "logUniform"
    return {"name": name, "parameterType": PARAMETER_TYPES[bounds.type], "feasibleSpace": space}


def experiment(
    spec: PipelineSpec, cfg: PipelineConfig, *, name: str, train_set: str, holdout_set: str
) -> dict[str, Any]:
    """The Experiment of `cfg.tune` for the sets at `train_set` and `holdout_set` (object store URIs)."""
    from components.platform.settings import CONFIGMAP

    tune, metric = cfg.tune, cfg.evaluate.gate_metric
    if not tune.space:
        raise ValueError(f"{cfg.pipeline}: tune.space is empty; nothing to search")
    names = sorted(tune.space)
    step = sized(spec, cfg).step("train")  # each trial: the train step's sizes from config.yaml
    limits = step.resources.limits()
    command = [
        "mlops", "tune-trial", cfg.pipeline, "--train-set", train_set, "--holdout-set", holdout_set,
        *(part for parameter in names for part in ("--param", f"{parameter}=${{trialParameters.{parameter}}}")),
    ]  # fmt: skip
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        "serviceAccountName": cfg.cluster.service_account,
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [
            {
                "name": "trial",
                "image": spec.image,
                "command": command,
                "envFrom": [{"configMapRef": {"name": CONFIGMAP}}],
                "env": [
                    {"name": ref.env, "valueFrom": {"secretKeyRef": {"name": ref.secret, "key": ref.key}}}
                    for ref in secret_environment(cfg)
                ],
                "resources": {"limits": limits, "requests": limits},
                "securityContext": RESTRICTED,
            }
        ],
    }
    if step.resources.gpu:
        pod["nodeSelector"] = dict(TRAINING_POOL)
        pod["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    return {
        "apiVersion": API_VERSION,
        "kind": "Experiment",
        "metadata": {
            "name": name,
            "namespace": cfg.cluster.namespace,
            "labels": {
                "mlops.private-platform.io/pipeline": cfg.pipeline,
                "mlops.private-platform.io/team": cfg.cluster.team,
            },
        },
        "spec": {
            "objective": {"type": direction(metric), "objectiveMetricName": metric},
            "algorithm": {"algorithmName": tune.algorithm},
            "parallelTrialCount": tune.parallel,
            "maxTrialCount": tune.trials,
            "maxFailedTrialCount": tune.max_failed,
            "metricsCollectorSpec": {"collector": {"kind": "StdOut"}},
            "parameters": [_parameter(parameter, tune.space[parameter]) for parameter in names],
            "trialTemplate": {
                "primaryContainerName": "trial",
                "trialParameters": [
                    {"name": parameter, "reference": parameter, "description": f"train.params.{parameter}"}
                    for parameter in names
                ],
                "trialSpec": {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "spec": {"backoffLimit": 0, "template": {"spec": pod}},
                },
            },
        },
    }
