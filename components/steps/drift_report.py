"""The drift step's outputs for people: the table (JSON), the HTML report and the PNG of the most drifted features.

Split from components/steps/drift.py (which compares and decides) so that file keeps one job: each is
written atomically (components.artifacts), from the comparison's result and the decision, and
the same writers serve the pipeline step, `mlops drift` and the drift benchmark.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from components import artifacts

if TYPE_CHECKING:
    from components.steps.drift import DriftResult, Reference

__all__ = ["sample_note", "table", "write_plot", "write_report"]


def _finite(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) or math.isinf(value) else value


def table(result: DriftResult | None, decision: dict[str, Any], reference: Reference | None) -> dict[str, Any]:
    """The JSON the step writes: per feature, the share, and the decision with its reason."""
    out: dict[str, Any] = {"decision": decision}
    if reference is not None:
        out["reference"] = {"model": reference.model, "version": reference.version, "run_id": reference.run_id}
    if result is not None:
        out |= {
            "drift_share": result.drift_share,
            "threshold": result.threshold,
            "detected": result.detected,
            "current_rows": result.current_rows,
            "reference_rows": result.reference_rows,
            # the rows compared when a seeded sample of a larger whole (components/steps/drift_data.py), else null
            "current_sampled": result.current_sampled,
            "reference_sampled": result.reference_sampled,
            "features": [
                {**asdict(f), "statistic": _finite(f.statistic), "p_value": _finite(f.p_value)} for f in result.features
            ],
        }
    return out


def write_plot(
    result: DriftResult | None, reference: Reference | None, current: pd.DataFrame | None, out: str, count: int
) -> None:
    """The most drifted features, reference against current: histograms, or category shares."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with artifacts.atomic_path(out, suffix=".png") as tmp:
        if result is None or reference is None or current is None:
            figure, axis = plt.subplots(figsize=(6, 2))
            axis.axis("off")
            axis.text(0.5, 0.5, "no champion to compare with", ha="center", va="center")
        else:
            chosen = result.most_drifted(count)
            figure, axes = plt.subplots(1, len(chosen), figsize=(4 * len(chosen), 3.2), squeeze=False)
            for axis, feature in zip(axes[0], chosen, strict=True):
                ref, cur = reference.frame[feature.feature].dropna(), current[feature.feature].dropna()
                if feature.method == "chisquare":
                    shares = pd.DataFrame(
                        {"reference": ref.value_counts(normalize=True), "current": cur.value_counts(normalize=True)}
                    ).fillna(0.0)
                    shares.sort_index().plot.bar(ax=axis, width=0.8)
                else:
                    low, high = np.nanquantile(np.concatenate([ref.to_numpy(), cur.to_numpy()]), [0.005, 0.995])
                    bins = np.linspace(low, high, 40) if high > low else 10
                    axis.hist(ref, bins=bins, density=True, alpha=0.5, label="reference")
                    axis.hist(cur, bins=bins, density=True, alpha=0.5, label="current")
                    axis.legend()
                axis.set_title(f"{feature.feature}\n{feature.method} p={feature.p_value:.2g}", fontsize=9)
            figure.tight_layout()
        figure.savefig(tmp, format="png", dpi=80)
        plt.close(figure)


def write_report(result: DriftResult | None, out: str, reason: str) -> None:
    with artifacts.atomic_path(out, suffix=".html") as tmp:
        if result is None:
            tmp.write_text(f"<html><body><h1>Drift</h1><p>{reason}</p></body></html>\n")
        elif len(result.snapshots) == 1:
            result.snapshots[0].save_html(str(tmp))
            if note := sample_note(result):
                tmp.write_text(tmp.read_text().replace("<body>", f"<body><p>{note}</p>", 1))
        else:
            tmp.write_text(_combined_report(result))


def sample_note(result: DriftResult) -> str:
    """What the report's figures were computed on, when a side was sampled; else empty."""
    sides = [
        f"{side}: a seeded uniform sample of {sampled:,} of its {rows:,} rows"
        for side, sampled, rows in (
            ("reference", result.reference_sampled, result.reference_rows),
            ("current", result.current_sampled, result.current_rows),
        )
        if sampled is not None
    ]
    return "Figures computed on " + "; ".join(sides) + " (components/steps/drift_data.py)." if sides else ""


def _combined_report(result: DriftResult) -> str:
    """One page over the groups' Evidently reports (each a whole document, embedded as is)."""
    import html

    frames = []
    with tempfile.TemporaryDirectory() as tmp:
        for index, snapshot in enumerate(result.snapshots):
            path = Path(tmp) / f"part-{index}.html"
            snapshot.save_html(str(path))
            frames.append(
                f'<iframe title="features, part {index + 1}" style="width:100%;height:1400px;border:0" '
                f'srcdoc="{html.escape(path.read_text(), quote=True)}"></iframe>'
            )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Data drift</title></head><body>"
        f"<h1>Data drift: {html.escape(result.summary())}</h1>"
        f"<p>Evidently's DataDriftPreset (KS, chi-squared), the features tested in {len(frames)} parallel groups."
        f" {html.escape(sample_note(result))}</p>" + "".join(frames) + "</body></html>\n"
    )
