"""The readiness probe of a promoted InferenceService is worked out in one place (render_inference_service).

Issue 30 (repeated logic): promote and `mlops rollout` each computed the probe's delay
(readiness_delay of the configured value and the registration's measured load time) and passed it
in. Now they ask for the probe (`probe_readiness=True`) and the renderer reads both itself.
"""

from __future__ import annotations

from typing import Any

from components.config import PromoteSettings
from components.steps.promote import UNMEASURED_READINESS_DELAY_S, render_inference_service
from tests.conftest import REGISTRATION


def _probe(settings: PromoteSettings, **registration: Any) -> Any:
    service = render_inference_service(
        {**REGISTRATION, **registration},  # type: ignore[arg-type, typeddict-item]
        storage_uri="s3://models/x",
        settings=settings,
        canary_percent=None,
        probe_readiness=True,
    )
    return service["spec"]["predictor"]["model"].get("readinessProbe")


def test_the_probe_waits_the_configured_delay_else_twice_the_measured_load_else_a_minute() -> None:
    """issue 30: one reading of the delay for promote and rollout, from the settings and the registration."""
    settings = PromoteSettings(namespace="fraud")
    assert _probe(settings, load_seconds=20.2)["initialDelaySeconds"] == 41
    assert _probe(settings, load_seconds=0.5)["initialDelaySeconds"] == 5
    assert _probe(settings)["initialDelaySeconds"] == UNMEASURED_READINESS_DELAY_S
    configured = settings.model_copy(update={"readiness_initial_delay_seconds": 7})
    assert _probe(configured, load_seconds=20.2)["initialDelaySeconds"] == 7
    # control: without probe_readiness the renderer adds no probe at all
    plain = render_inference_service(
        dict(REGISTRATION),  # type: ignore[arg-type]
        storage_uri="s3://models/x",
        settings=settings,
        canary_percent=None,
    )
    assert "readinessProbe" not in plain["spec"]["predictor"]["model"]
