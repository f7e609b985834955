"""What a model was made from, recorded so that an incident can be traced back to the bytes.

Each dataset is described by where it came from and a digest of exactly what was read:
- a file or an S3 object: the sha256 of its bytes;
- a DVC pointer (`<data>.dvc`): the md5 DVC recorded for the data it points at, read from the
  pointer as YAML (DVC itself is not a dependency);
- a lakeFS object through its S3 gateway, `s3://<repository>/<commit>/<path>`: the sha256 of the
  bytes, and the commit, which pins them on the lakeFS side.
Beside the datasets: the Feast feature service (sha256 of its protobuf) and the point-in-time
join's parameters, the GX suite and the pipeline config (sha256 of canonical JSON), the git
commit, the component image, and the versions of the packages that shape the model.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import pandas as pd
import yaml

from components import artifacts
from components.environment import IMAGE_VARIABLE
from components.errors import ComponentError

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = [
    "CONTEXTS",
    "LAKEFS_COMMIT",
    "PACKAGES",
    "STEP",
    "DatasetRecord",
    "canonical_sha256",
    "data_digest",
    "data_location",
    "describe",
    "digest_word",
    "dvc_md5",
    "file_sha256",
    "image",
    "log_datasets",
    "package_versions",
    "raw_sha256",
    "read_dataset",
    "read_dvc_pointer",
    "record_on_run",
    "recorded_digest",
    "require_recorded",
    "verify",
]

STEP = "lineage"
LAKEFS_COMMIT = re.compile(r"^s3://(?P<repository>[^/]+)/(?P<commit>[0-9a-f]{64})/(?P<path>.+)$")
PACKAGES = (
    "xgboost-cpu",
    "xgboost",
    "lightgbm",
    "torch",
    "scikit-learn",
    "skl2onnx",
    "onnx",
    "onnxruntime",
    "feast",
    "mlflow",
    "great-expectations",
    "pandas",
    "numpy",
    "pyarrow",
    "evidently",
)


class DatasetRecord(TypedDict, total=False):
    name: str
    source: str
    """The URI the step read (for a DVC pointer: the pointer file)."""
    digest: str
    digest_kind: str
    """sha256 (of the bytes read) or dvc-md5 (what the pointer records)."""
    rows: int
    schema: dict[str, str]
    lakefs: dict[str, str]
    dvc: dict[str, Any]


def canonical_sha256(value: Any) -> str:
    """The sha256 of a JSON-able value in canonical form (sorted keys, no whitespace)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def file_sha256(path: str | os.PathLike[str]) -> str:
    return artifacts.sha256_uri(str(path))


def raw_sha256(uri: str) -> str:
    """The raw data's sha256 as validate records it: a file's bytes, a folder's files
    (components/raw_data.py raw_digest), so cache keys and reproduce agree with the run."""
    from components.raw_data import raw_digest

    return raw_digest(uri, step=STEP)


def read_dvc_pointer(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The first output a `.dvc` file records: its md5, size and path (relative to the pointer)."""
    try:
        document = yaml.safe_load(Path(path).read_text())
        out = document["outs"][0]
        return {"md5": str(out["md5"]), "size": out.get("size"), "path": str(out["path"])}
    except (OSError, yaml.YAMLError, KeyError, IndexError, TypeError) as error:
        raise ComponentError(
            STEP,
            f"{path} is not a DVC pointer with an output and its md5 ({error})",
            "point at the .dvc file `dvc add` wrote, or at the data itself",
        ) from error


def dvc_md5(path: str | os.PathLike[str]) -> str:
    """DVC's md5 of a file: of its bytes (DVC hashes files as they are)."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def describe(uri: str, frame: pd.DataFrame | None, name: str, *, sha256: str = "") -> DatasetRecord:
    """The record of one dataset as it was read; `frame` gives its schema and rows, `sha256` the
    digest of the bytes when the caller hashed them while reading (read_dataset)."""
    record: DatasetRecord = {"name": name, "source": uri}
    if uri.endswith(".dvc"):
        pointer = read_dvc_pointer(uri)
        record |= {"digest": pointer["md5"], "digest_kind": "dvc-md5", "dvc": pointer}
    else:
        record |= {"digest": sha256 or raw_sha256(uri), "digest_kind": "sha256"}
        lakefs = LAKEFS_COMMIT.match(uri)
        if lakefs:
            record["lakefs"] = {"repository": lakefs["repository"], "commit": lakefs["commit"], "path": lakefs["path"]}
    if frame is not None:
        record |= {"rows": len(frame), "schema": {str(c): str(t) for c, t in frame.dtypes.items()}}
    return record


def digest_word(record: DatasetRecord) -> str:
    """The record's digest as one word (data_digest's form): `sha256-<hex>` or `dvc-md5-<hex>`."""
    return f"{record['digest_kind']}-{record['digest']}"


def read_dataset(
    step: str, uri: str, what: str, name: str, *, expected: str = ""
) -> tuple[pd.DataFrame, DatasetRecord]:
    """Read a dataset once: the frame, and its record with the digest of exactly the bytes parsed.

    A DVC pointer's data must still be what the pointer records; `expected` (a data_digest word,
    what an upstream step read) must match too, so a step never works on bytes other than those
    validated. Both refusals are permanent: the bytes will not change back on a retry.
    """
    from components.tabular import read_table

    pointer = read_dvc_pointer(uri) if uri.endswith(".dvc") else None
    table = read_table(step, data_location(uri), what, hash_with="md5" if pointer else "sha256")
    if pointer and table.digest != pointer["md5"]:
        raise ComponentError(
            step,
            f"{what} at {data_location(uri)} has md5 {table.digest[:12]}, but its pointer {uri} records "
            f"{pointer['md5'][:12]}",
            "`dvc checkout` (or `dvc pull`) the data its pointer names, or `dvc add` it again if it is new data",
        )
    record = describe(uri, table.frame, name, sha256="" if pointer else table.digest)
    if expected and digest_word(record) != expected:
        raise ComponentError(
            step,
            f"{what} at {uri} changed during the run: an earlier step read {expected[:19]}, this one "
            f"{digest_word(record)[:19]}",
            "something rewrote the data mid-run; write each extract to a new URI (or a lakeFS commit) and run again",
        )
    return table.frame, record


def recorded_digest(lineage_uri: str | os.PathLike[str], name: str) -> str:
    """The digest materialize's lineage record (its `lineage` output) holds for dataset `name`."""
    document = artifacts.read_json(lineage_uri)
    for record in document.get("datasets", []):
        if record.get("name") == name:
            return str(record["digest"])
    raise ComponentError(
        STEP,
        f"the lineage record at {lineage_uri} holds no dataset named {name!r}",
        "pass the lineage output of the materialize step that wrote the sets",
    )


def require_recorded(step: str, uri: str, what: str, recorded: str) -> str:
    """The sha256 of the bytes at `uri`, after checking it is the digest the lineage recorded.

    A set handed from one step to another by a key the tenant's own credentials can write (the
    TrainJob's training set) could be rewritten between them: a step trains on exactly the bytes
    materialize recorded, or refuses (permanent: the same bytes are there on a retry)."""
    found = artifacts.sha256_uri(uri)
    if found != recorded:
        raise ComponentError(
            step,
            f"the {what} at {uri} has sha256 {found}, but materialize's lineage record holds {recorded}: "
            "it was rewritten after materialize wrote it",
            "run again with a fresh cache (mlops submit --no-cache) so materialize writes and records the set "
            "anew; nothing else may write under the run's sets/ prefix",
        )
    return found


def data_location(uri: str) -> str:
    """Where the bytes are: the data beside a DVC pointer, else the URI itself."""
    if not uri.endswith(".dvc"):
        return uri
    pointer = read_dvc_pointer(uri)
    return str(Path(uri).parent / pointer["path"])


def verify(record: DatasetRecord) -> str:
    """The location of the recorded bytes, after checking they are still the recorded ones."""
    source = record["source"]
    location = data_location(source)
    from components.raw_data import present  # a folder (hive dataset) is present when it holds data files

    if not (artifacts.exists(location) if record["digest_kind"] == "dvc-md5" else present(location)):
        raise ComponentError(
            STEP,
            f"dataset {record['name']!r} is gone from {location}",
            "restore it (from the lakeFS commit or DVC remote recorded) or reproduce from a version whose data exists",
        )
    found = dvc_md5(location) if record["digest_kind"] == "dvc-md5" else raw_sha256(location)
    if found != record["digest"]:
        raise ComponentError(
            STEP,
            f"dataset {record['name']!r} at {location} has changed: {record['digest_kind']} {found[:12]}, "
            f"recorded {record['digest'][:12]}",
            "the bytes the model was trained on are not these; restore the recorded version of the data",
        )
    return location


def data_digest(uri: str) -> str:
    """One word naming a dataset's bytes, usable in cache keys and ConfigMap keys:
    `sha256-<hex>` of the bytes, or `dvc-md5-<hex>` for a DVC pointer."""
    return digest_word(describe(uri, None, "data"))


def package_versions() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def image() -> dict[str, str]:
    """The component image of this pod, and its digest when the reference pins one."""
    reference = os.environ.get(IMAGE_VARIABLE, "")
    if not reference:
        return {}
    digest = reference.split("@", 1)[1] if "@sha256:" in reference else ""
    return {"reference": reference, **({"digest": digest} if digest else {})}


CONTEXTS = {"raw": "source", "training": "training", "holdout": "holdout"}
"""The `mlflow.data.context` each recorded dataset is logged with."""


def _schema(record: DatasetRecord) -> Any:
    """The record's columns as MLflow's Schema (types as MLflow names them)."""
    from mlflow.types.utils import _infer_schema

    columns = record.get("schema") or {}
    empty = pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in columns.items()})
    return _infer_schema(empty) if columns else None


def _recorded(base: Any) -> Any:
    """MetaDataset with the record's row count and full digest as its profile (MLflow's own
    MetaDataset has none, and its digest field holds 36 characters)."""

    class RecordedDataset(base):  # type: ignore[misc]
        def __init__(self, *args: Any, profile: dict[str, Any], **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._recorded_profile = profile

        @property
        def profile(self) -> dict[str, Any]:
            return self._recorded_profile

        def to_dict(self) -> dict[str, str]:
            return {**super().to_dict(), "profile": json.dumps(self._recorded_profile)}

    return RecordedDataset


def log_datasets(client: MlflowClient, run_id: str, records: list[DatasetRecord]) -> None:
    """Each dataset on the run through MLflow's dataset API (MetaDataset, one input per context)."""
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.entities import DatasetInput, InputTag

    inputs = []
    for record in records:
        source = record["source"]
        try:
            resolved = resolve_dataset_source(source)
        except Exception:  # a scheme MLflow has no resolver for: keep it as text on an HTTP-style source
            from mlflow.data.http_dataset_source import HTTPDatasetSource

            resolved = HTTPDatasetSource(source)  # type: ignore[no-untyped-call]
        profile = {"num_rows": record.get("rows"), "digest": record["digest"], "digest_kind": record["digest_kind"]}
        dataset = _recorded(MetaDataset)(
            resolved, name=record["name"], digest=record["digest"][:36], schema=_schema(record), profile=profile
        )
        entity = dataset._to_mlflow_entity()
        context = InputTag(key="mlflow.data.context", value=CONTEXTS.get(record["name"], record["name"]))
        inputs.append(DatasetInput(dataset=entity, tags=[context]))
    client.log_inputs(run_id, datasets=inputs)


def record_on_run(
    client: MlflowClient,
    run_id: str,
    *,
    materialized: dict[str, Any],
    suite_path: str | None,
    config: dict[str, Any] | None,
    git_commit: str | None,
    model_sha256: str,
    scratch: Path,
) -> dict[str, Any]:
    """The whole lineage on the training run: datasets as inputs, the rest as lineage/lineage.json,
    the config as lineage/config.json, and the digests as `mlops.lineage.*` tags for search."""
    document: dict[str, Any] = {
        **materialized,
        "suite": {"name": Path(suite_path).name, "sha256": file_sha256(suite_path)} if suite_path else None,
        "config": {"sha256": canonical_sha256(config)} if config is not None else None,
        "git_commit": git_commit or "",
        "image": image(),
        "packages": package_versions(),
        "model_sha256": model_sha256,
    }
    log_datasets(client, run_id, materialized.get("datasets", []))
    folder = scratch / "lineage"
    folder.mkdir(exist_ok=True)
    (folder / "lineage.json").write_text(json.dumps(document, indent=2, sort_keys=True, default=str))
    if config is not None:
        (folder / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
    client.log_artifacts(run_id, str(folder), "lineage")
    raw = next((d for d in materialized.get("datasets", []) if d["name"] == "raw"), None)
    tags = {
        "mlops.lineage.config_sha256": (document["config"] or {}).get("sha256", ""),
        "mlops.lineage.suite_sha256": (document["suite"] or {}).get("sha256", ""),
        "mlops.lineage.feature_service_sha256": (materialized.get("feature_service") or {}).get("sha256", ""),
        "mlops.lineage.data_digest": raw["digest"] if raw else "",
        "mlops.lineage.data_source": raw["source"] if raw else "",
        "mlops.lineage.logical_date": str(materialized.get("logical_date") or ""),
        "mlops.lineage.image": document["image"].get("reference", ""),
    }
    for key, value in tags.items():
        if value:
            client.set_tag(run_id, key, value[:5000])
    return document
