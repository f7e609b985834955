"""materialize's engine settings: Feast's single-node engine, or its Ray engine when one node is not enough.

Split from components/config.py (which imports them back, as it does train's): `materialize.engine`
picks the engine, `materialize.ray` sizes the Ray cluster. On a laptop and in tests the Ray engine
runs on a local Ray of `local_cpus` CPUs; on the cluster the step renders a KubeRay RayJob of one
head and `workers` worker pods, each sized as the materialize step is (`resources.materialize`),
so one declaration sizes both (components/steps/materialize_ray.py, docs/scale-out.md).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ENGINES", "Engine", "RaySettings"]

Engine = Literal["local", "ray"]
ENGINES: tuple[Engine, ...] = ("local", "ray")
"""local: DuckDB (the file store on S3) in the step's own process; ray: Feast's Ray offline store
for the point-in-time join (components/steps/materialize_ray.py)."""


class RaySettings(BaseModel):
    """The Ray cluster `materialize.engine: ray` runs on."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    workers: int = Field(
        2, ge=1, le=64, description="Worker pods of the RayJob on the cluster, each sized as resources.materialize."
    )
    local_cpus: int = Field(2, ge=1, le=256, description="CPUs of the local Ray a laptop or a test starts.")
