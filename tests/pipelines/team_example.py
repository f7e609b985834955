"""Two steps a team might add, as a team writes them in its own package (issue 31, item 3): the
example tests/pipelines/test_team_steps.py declares, renders and runs.

Each is a plain function whose signature is its contract (pipelines/team_steps.py); KFP runs its
source alone, so its imports live inside it.
"""

from typing import NamedTuple

from kfp.dsl import Artifact, Dataset, Input, Model, Output

__all__ = ["engineer_features", "fairness", "scale_features", "undated_features"]


def engineer_features(
    raw_data: str,
    logical_date: str,
    engineered: Output[Dataset],
    numerator: str = "amount",
    denominator: str = "amount_avg_7d",
) -> NamedTuple("Outputs", [("data_uri", str), ("data_digest", str)]):  # type: ignore[valid-type]
    """A features step: the raw data plus one ratio column, the dataset materialize and drift read.
    A dated raw_data ({date}) is filled with the run's logical date (components/dated_inputs.py)."""
    import numpy as np

    from components import artifacts
    from components.dated_inputs import resolve
    from components.lineage import data_digest
    from components.tabular import read_parquet

    frame = read_parquet("engineer-features", resolve(raw_data, logical_date, step="engineer-features"), "raw data")
    below = frame[denominator].where(frame[denominator] != 0, np.nan)
    frame[f"{numerator}_ratio"] = (frame[numerator] / below).fillna(0.0)
    artifacts.write_parquet(engineered.path, frame)
    return (engineered.uri, data_digest(engineered.path))  # type: ignore[return-value]


def undated_features(raw_data: str, engineered: Output[Dataset]) -> NamedTuple(
    "Outputs", [("data_uri", str), ("data_digest", str)]
):  # type: ignore[valid-type]
    """A features step written before dated inputs: it reads raw_data as given, with no logical date."""
    from components import artifacts
    from components.lineage import data_digest
    from components.tabular import read_parquet

    artifacts.write_parquet(engineered.path, read_parquet("undated-features", raw_data, "raw data"))
    return (engineered.uri, data_digest(engineered.path))  # type: ignore[return-value]


def fairness(
    model: Input[Model],
    metadata: Input[Artifact],
    holdout_set: Input[Dataset],
    metrics: Output[Artifact],
    group_column: str = "merchant_category",
    decision_threshold: float = 0.5,
    max_gap: float = 0.2,
) -> NamedTuple("Outputs", [("passed", bool), ("positive_rate_gap", float)]):  # type: ignore[valid-type]
    """A check step: the candidate's positive rate in each group of `group_column` on the holdout
    set; it fails when the highest and the lowest differ by more than `max_gap` (demographic parity)."""
    import numpy as np

    from components import artifacts
    from components.handoffs import read_training_metadata
    from components.steps.model_formats import load_predictor
    from components.tabular import read_parquet

    trained = read_training_metadata(metadata.path)
    frame = read_parquet("fairness", holdout_set.path, "holdout set")
    scores = load_predictor(model.path, trained)(frame[trained["features"]].to_numpy(dtype=np.float32))
    rates = (scores >= decision_threshold).astype(float)
    by_group = {str(group): float(rates[(frame[group_column] == group).to_numpy()].mean())
                for group in sorted(frame[group_column].unique())}  # fmt: skip
    gap = max(by_group.values()) - min(by_group.values())
    gate = {"metric": "positive_rate_gap", "value": gap, "threshold": max_gap, "direction": "<="}
    artifacts.write_json(metrics.path, {"gate": gate, "holdout_rows": len(frame), "positive_rate": by_group})
    return (gap <= max_gap, gap)  # type: ignore[return-value]


def scale_features(raw_data: str, reference: Input[Dataset], scaled: Output[Dataset]) -> NamedTuple(
    "Outputs", [("data_uri", str), ("data_digest", str)]
):  # type: ignore[valid-type]
    """A features step that scales by a reference set's statistics: wired to a set materialize makes,
    it would wait on its own output (the cycle a declaration refuses)."""
    from components import artifacts
    from components.tabular import read_parquet

    frame = read_parquet("scale-features", raw_data, "raw data")
    mean = read_parquet("scale-features", reference.path, "reference set")["amount"].mean()
    frame["amount_scaled"] = frame["amount"] / mean
    artifacts.write_parquet(scaled.path, frame)
    return (scaled.uri, "")  # type: ignore[return-value]
