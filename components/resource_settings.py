"""The `resources` section of a pipeline's config.yaml: each step's cpu, memory, GPU and ephemeral storage.

A step's entry overrides the sizes its declaration gives (pipelines/standard.py, sized from
docs/performance.md); a setting left out keeps the declared one. Each size is a Kubernetes
quantity, checked here when the config loads, so a typo stops the run before anything is
submitted, naming the step, the setting and an example. Which step names exist, and whether the
sizes pass the GPU-memory admission policy and fit the tenant's quota, is known only next to the
declaration: pipelines/resources.py checks that when the pipeline is rendered or linted.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["EXAMPLES", "ResourceSettings", "StepResources", "quantity"]

_SUFFIX = {
    "": Decimal(1),
    "m": Decimal("0.001"),
    "k": Decimal(10**3),
    "M": Decimal(10**6),
    "G": Decimal(10**9),
    "T": Decimal(10**12),
    "P": Decimal(10**15),
    "E": Decimal(10**18),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}
_QUANTITY = re.compile(r"^(?P<number>[0-9]+(\.[0-9]+)?)(?P<suffix>[kMGTPE]i?|Ki|m)?$")

EXAMPLES = {"cpu": '"2" or "500m"', "memory": "16Gi", "ephemeral_storage": "20Gi"}
"""What each setting looks like, for the message refusing a bad one."""


def quantity(text: str) -> Decimal:
    """A Kubernetes quantity's value (`16Gi` -> 17179869184, `500m` -> 0.5); ValueError if it is none.

    The plain decimal and binary suffixes Kubernetes accepts; exponent forms (`1e3`) are refused,
    as nobody sizes a pod that way and the rendered manifests stay readable.
    """
    found = _QUANTITY.match(text.strip()) if isinstance(text, str) else None
    if found is None:
        raise ValueError(f"{text!r} is not a Kubernetes quantity")
    return Decimal(found["number"]) * _SUFFIX[found["suffix"] or ""]


class StepResources(BaseModel):
    """One step's sizes; unset keeps the declaration's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cpu: str | None = Field(None, description='CPU limit (and request): "4", "500m".')
    memory: str | None = Field(None, description="Memory limit (and request): 16Gi. A GPU step must have one.")
    gpu: int | None = Field(None, ge=0, description="GPUs (nvidia.com/gpu); 0 runs on CPU nodes.")
    ephemeral_storage: str | None = Field(None, description="Local disk for the step's scratch files: 20Gi.")

    @field_validator("cpu", "memory", "ephemeral_storage", mode="before")
    @classmethod
    def _a_quantity(cls, value: Any, info: Any) -> Any:
        if value is None:
            return None
        setting = str(info.field_name)
        text = str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value
        try:
            amount = quantity(text)
        except ValueError:
            raise ValueError(
                f"{setting} must be a Kubernetes quantity, for example {EXAMPLES[setting]}; got {value!r}"
            ) from None
        if amount <= 0:
            raise ValueError(f"{setting} must be more than zero, for example {EXAMPLES[setting]}; got {value!r}")
        if setting != "cpu" and amount != amount.to_integral_value():
            raise ValueError(f"{setting} must be a whole number of bytes, for example {EXAMPLES[setting]}")
        return text

    def overrides(self) -> dict[str, Any]:
        """The settings this entry sets, as the declaration's Resources names them."""
        return {name: value for name, value in self.model_dump().items() if value is not None}


ResourceSettings = dict[str, StepResources]
"""config.yaml's `resources`: step name -> its sizes (`resources.materialize.memory: 16Gi`)."""
