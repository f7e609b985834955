"""The declaration of a pipeline: its steps and every fact about each, written once.

A Step names the component it runs, its inputs and outputs, its retry class, resources,
image, caching and the condition it runs under. The KFP and Argo renderings are derived from
these declarations, and a test checks that they agree.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = [
    "GPU_COMPUTE",
    "GPU_RESOURCE",
    "IDEMPOTENT_WRITE",
    "IO_BOUND",
    "ROLLOUT",
    "Condition",
    "PipelineSpec",
    "Resources",
    "RetryOn",
    "RetryPolicy",
    "Step",
]

RetryOn = Literal["Always", "OnFailure", "OnError", "OnTransientError"]


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How often and how patiently a failed step is tried again."""

    name: str
    """The retry class, e.g. io-bound; named so reviews talk about classes, not numbers."""
    limit: int
    """Retries after the first attempt."""
    retry_on: RetryOn
    backoff_seconds: int
    """Wait before the first retry."""
    factor: int
    """Each later wait is the previous one times this."""
    max_backoff_seconds: int
    """Cap on a single wait."""
    max_duration_seconds: int
    """Cap on the whole retry window. Argo counts pod start-up inside it (argo-workflows#2260),
    so it is set from the step's expected run time plus every backoff, not from the backoffs alone."""

    def wait_before(self, retry: int) -> int:
        """Seconds to wait before retry number `retry` (1-based): the backoff, grown and capped."""
        grown: int = self.backoff_seconds * self.factor ** (retry - 1)
        return min(grown, self.max_backoff_seconds)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RetryPolicy:
        data: dict[str, Any] = json.loads(text)
        return cls(**data)


# One retry class a paragraph, so the numbers read as a table.
# fmt: off
IO_BOUND = RetryPolicy(
    name="io-bound", limit=5, retry_on="Always",
    backoff_seconds=30, factor=2, max_backoff_seconds=300, max_duration_seconds=3600,
)
"""validate, materialize: I/O bound and failing on upstream drift or a flaky store: retry hard."""

GPU_COMPUTE = RetryPolicy(
    name="gpu-compute", limit=1, retry_on="OnFailure",
    backoff_seconds=60, factor=1, max_backoff_seconds=60, max_duration_seconds=6 * 3600,
)
"""train, evaluate: burn accelerator hours; one retry, then a human looks."""

IDEMPOTENT_WRITE = RetryPolicy(
    name="idempotent-write", limit=4, retry_on="Always",
    backoff_seconds=10, factor=2, max_backoff_seconds=120, max_duration_seconds=900,
)
"""register: safe to repeat because registration is keyed by the artifact's sha256."""

ROLLOUT = RetryPolicy(
    name="rollout", limit=2, retry_on="Always",
    backoff_seconds=20, factor=2, max_backoff_seconds=60, max_duration_seconds=900,
)
"""promote, notify: rendering and publishing are idempotent; two retries cover a flaky store."""
# fmt: on


GPU_RESOURCE = "nvidia.com/gpu"
"""The extended resource a step's GPUs are asked for under, in every rendering."""


@dataclass(frozen=True, kw_only=True)
class Resources:
    """A step's pod sizes: the declaration's defaults, which config.yaml's `resources` overrides
    (pipelines/resources.py). Limits and requests are the same, so a pod gets what it is sized for."""

    cpu: str
    memory: str | None = None
    """Memory limit; a GPU step must set one (the gpu-memory-limit admission policy refuses it otherwise)."""
    gpu: int = 0
    ephemeral_storage: str | None = None
    """Local scratch disk; unset leaves it to the namespace's defaults."""

    def limits(self) -> dict[str, str]:
        """The container's resource limits (and requests), as Kubernetes names them."""
        limits = {"cpu": self.cpu}
        if self.memory is not None:
            limits["memory"] = self.memory
        if self.gpu:
            limits[GPU_RESOURCE] = str(self.gpu)
        if self.ephemeral_storage is not None:
            limits["ephemeral-storage"] = self.ephemeral_storage
        return limits


@dataclass(frozen=True, kw_only=True)
class Condition:
    """Run the step only when an upstream output equals a value."""

    step: str
    output: str
    equals: bool


@dataclass(frozen=True, kw_only=True)
class Step:
    name: str
    component: str
    """The component function, as module:function under components/."""
    inputs: dict[str, str] = field(default_factory=dict)
    """Inputs from upstream outputs, artifacts or parameters: input name -> "step.output". What
    the step takes and gives is its op's signature (pipelines/contract.py), not written here."""
    after: tuple[str, ...] = ()
    """Ordering-only dependencies beyond those the inputs imply."""
    retry: RetryPolicy
    resources: Resources
    caching: bool = False
    """Reuse a previous result when the step's cache key is unchanged (pipelines/caching.py: the
    data's digest, the step's arguments, the code, the image); off for steps that read or write
    the registry, whose state is no input."""
    when: tuple[Condition, ...] = ()
    """Run only when every condition holds, outermost first: KFP nests one dsl.If per condition,
    Argo joins them with &&. A step below a conditional one repeats its conditions, so a
    skipped step's dependents are skipped too (Argo would run them otherwise)."""

    def upstream(self) -> tuple[str, ...]:
        sources = {reference.split(".")[0] for reference in self.inputs.values()}
        sources.update(condition.step for condition in self.when)
        return tuple(sorted(sources | set(self.after)))


@dataclass(frozen=True, kw_only=True)
class PipelineSpec:
    name: str
    description: str
    image: str
    """The component image every step runs in (the same code as the laptop)."""
    steps: tuple[Step, ...]

    def step(self, name: str) -> Step:
        for candidate in self.steps:
            if candidate.name == name:
                return candidate
        raise KeyError(name)

    def edges(self) -> set[tuple[str, str]]:
        return {(source, step.name) for step in self.steps for source in step.upstream()}
