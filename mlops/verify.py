"""`mlops verify`'s walk: is every registered model version still whole? (issue 34 item 4)

The registry is where a bank proves what it served; its bytes live elsewhere (the artifact store, the
serving root, the data the lineage names), and nothing else notices when they change or go. Per version:
- the artifact: the model file under its run's `model/` exists and hashes to the version's registered
  `artifact_sha256` (the tag register wrote, components/platform/model_registry.py HASH_TAG);
- the serving copy: the Triton repository promote published, write-once, at
  `<serving root>/<model>/v<version>-<sha12>/` (components/steps/triton_repository.py published_location,
  the one spelling promote publishes by), serves a model file with that sha256 and says so in its config
  (`mlops_model_sha256`). A version that was never rolled out has none, and that is fine; a version the
  serving history names must have one;
- each dataset its lineage records (`mlops lineage`'s chain, mlops/cli/lineage.py): where the bytes are
  still there they must have the recorded digest (components/lineage.py verify). Data that is no longer
  there is NOT RETAINED: a raw extract's retention is its owner's decision, not corruption.
A version is OK, MISSING or CORRUPT (the worst of its checks), each check with the fix. A store or
registry that does not answer is raised, not reported (the caller exits 75).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from components import artifacts
from components.errors import ComponentError

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

__all__ = [
    "CORRUPT",
    "FAILED",
    "MISSING",
    "NOT_PUBLISHED",
    "NOT_READABLE",
    "NOT_RECORDED",
    "NOT_RETAINED",
    "OK",
    "STEP",
    "Check",
    "VersionReport",
    "refused",
    "verify_registry",
    "verify_version",
]

STEP = "verify"
OK, MISSING, CORRUPT = "OK", "MISSING", "CORRUPT"
NOT_RETAINED = "NOT RETAINED"
"""A dataset the lineage names that is no longer where it was read: reported, not a failure."""
NOT_PUBLISHED = "NOT PUBLISHED"
"""A version never rolled out has no serving copy: reported, not a failure."""
NOT_READABLE = "NOT READABLE"
"""A dataset outside what this identity may read (a team's raw bucket): reported, not a failure."""
NOT_RECORDED = "NOT RECORDED"
"""A version registered before lineage was recorded: no datasets to check, reported, not a failure."""
FAILED = (MISSING, CORRUPT)


@dataclass(frozen=True)
class Check:
    what: str
    status: str
    detail: str
    fix: str = ""


@dataclass
class VersionReport:
    model: str
    version: int
    checks: list[Check] = field(default_factory=list)

    @property
    def status(self) -> str:
        found = {check.status for check in self.checks}
        return CORRUPT if CORRUPT in found else MISSING if MISSING in found else OK

    def as_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "status": self.status,
            "checks": [vars(check) for check in self.checks],
        }


def refused(error: BaseException) -> bool:
    """Whether an S3 error is the store refusing this identity (403, AccessDenied), not a missing object."""
    response = getattr(error, "response", None)
    if not isinstance(response, dict):
        return False
    code = str(response.get("Error", {}).get("Code", ""))
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return status == 403 or code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch")


def _artifact(mlflow: MlflowClient, record: ModelVersion) -> tuple[Check, str]:
    """The artifact's check, and the model format it was registered in ("" when unknown)."""
    from mlflow.exceptions import MlflowException

    from components.platform.model_registry import HASH_TAG, MODEL_FILENAMES

    where = f"{record.name} v{record.version}"
    registered = (record.tags or {}).get(HASH_TAG, "")
    retrain = f"retrain and register it again (mlops run <pipeline>), and move any alias off v{record.version}"
    if not registered or not record.run_id:
        return Check("artifact", MISSING, f"{where} has no registered {HASH_TAG} or run", retrain), ""
    try:
        root = mlflow.get_run(record.run_id).info.artifact_uri
    except MlflowException as error:
        if getattr(error, "error_code", "") != "RESOURCE_DOES_NOT_EXIST":
            raise
        return Check("artifact", MISSING, f"{where}'s run {record.run_id} is gone from the tracking store", retrain), ""
    if urlsplit(root).scheme not in ("", "s3", "file"):  # mlflow-artifacts:/..., a proxied store
        raise ComponentError(
            STEP,
            f"{where}'s artifacts are at {root}, a scheme mlops verify does not read (s3:// or a file path)",
            "run the tracking server with --no-serve-artifacts and an s3:// artifact root, as the platform does",
        )
    restore = (
        f"restore the object (its previous object version, or a copy; docs/recovery.md) so it hashes to {registered}, "
        f"or {retrain}"
    )
    metadata = f"{root}/model/metadata.json"
    if not artifacts.exists(metadata):
        return Check("artifact", MISSING, f"{metadata} is gone", restore), ""
    model_format = str(artifacts.read_json(metadata)["format"])
    uri = f"{root}/model/{MODEL_FILENAMES[model_format]}"
    if not artifacts.exists(uri):
        return Check("artifact", MISSING, f"{uri} is gone (registered sha256 {registered})", restore), model_format
    found = artifacts.sha256_uri(uri)
    if found != registered:
        detail = f"{uri} has sha256 {found}, registered {registered}: changed after registration"
        return Check("artifact", CORRUPT, detail, restore), model_format
    return Check("artifact", OK, f"{uri} sha256 {found}"), model_format


def _serving(model: str, version: int, sha: str, model_format: str, served: bool, serving_root: str) -> Check:
    from components.serving.triton_config import parse_config, sha256_of
    from components.steps.triton_repository import model_file_name, published_location

    target = published_location(serving_root, model, version, sha)
    config_uri = f"{target}/{model}/config.pbtxt"
    republish = f"delete {target}/ and publish it again: mlops promote {model} --version {version}"
    if not artifacts.exists(config_uri):
        if served:
            detail = f"the serving history rolled v{version} out, but {config_uri} is gone"
            return Check("serving copy", MISSING, detail, republish)
        return Check("serving copy", NOT_PUBLISHED, f"never rolled out: nothing at {target}/")
    uri = f"{target}/{model}/{version}/{model_file_name(model_format)}"
    if not artifacts.exists(uri):
        return Check("serving copy", MISSING, f"{uri} is gone", republish)
    found = artifacts.sha256_uri(uri)
    declared = sha256_of(parse_config(artifacts.read_bytes(config_uri).decode()))
    if found != sha or declared not in (None, sha):
        detail = f"{uri} has sha256 {found} (config says {declared}), the version's is {sha}"
        return Check("serving copy", CORRUPT, detail, republish)
    return Check("serving copy", OK, f"{uri} sha256 {found}")


def _datasets(model: str, version: int) -> list[Check]:
    from components import lineage
    from components.raw_data import present
    from mlops.cli.lineage import read_lineage

    try:
        chain = read_lineage(model, version=version)
    except ComponentError as error:
        return [Check("lineage", NOT_RECORDED, error.problem)]  # registered before lineage was recorded
    checks = []
    for record in chain["datasets"]:
        what = f"dataset {record['name']}"
        try:
            location = lineage.data_location(record["source"])
            there = artifacts.exists(location) if record["digest_kind"] == "dvc-md5" else present(location)
        except ComponentError:  # a DVC pointer that is gone
            there, location = False, record["source"]
        except Exception as error:
            if not refused(error):
                raise
            detail = f"{record['source']}: this identity may not read it ({error})"
            checks.append(Check(what, NOT_READABLE, detail, "run mlops verify with a key that may read the data"))
            continue
        if not there:
            checks.append(Check(what, NOT_RETAINED, f"{location} is no longer there (recorded {record['digest']})"))
            continue
        try:
            lineage.verify(record)  # type: ignore[arg-type]  # the chain's entries are DatasetRecords
        except ComponentError as error:
            checks.append(Check(what, CORRUPT, error.problem, error.fix))
            continue
        checks.append(Check(what, OK, f"{location} {record['digest_kind']} {record['digest']}"))
    return checks


def verify_version(mlflow: MlflowClient, record: ModelVersion, serving_root: str, served: bool) -> VersionReport:
    """One version's checks; `served`: the serving history rolled it out, so it must have a serving copy."""
    from components.platform.model_registry import HASH_TAG

    version = int(record.version)
    report = VersionReport(record.name, version)
    artifact, model_format = _artifact(mlflow, record)
    report.checks.append(artifact)
    sha = (record.tags or {}).get(HASH_TAG, "")
    if sha and model_format:
        report.checks.append(_serving(record.name, version, sha, model_format, served, serving_root))
    if record.run_id:
        report.checks.extend(_datasets(record.name, version))
    return report


def _versions(mlflow: MlflowClient, model: str) -> list[ModelVersion]:
    found: list[ModelVersion] = []
    token = None
    while True:
        page = mlflow.search_model_versions(f"name = '{model}'", max_results=200, page_token=token)
        found.extend(page)
        token = page.token
        if not token:
            return sorted(found, key=lambda record: int(record.version))


def _verify_model(mlflow: MlflowClient, model: str, serving_root: str) -> list[VersionReport]:
    from components.platform.model_registry import history

    served = {entry.to_version for entry in history(mlflow, model)}
    return [
        verify_version(mlflow, record, serving_root, int(record.version) in served)
        for record in _versions(mlflow, model)
    ]


def verify_registry(model: str | None = None, serving_root: str | None = None) -> list[VersionReport]:
    """Every version of `model` (or of every registered model), checked; an unknown model is refused."""
    from components.platform import model_registry, services

    mlflow = model_registry.client()
    root = serving_root or services.serving_root(STEP)
    if model is not None:
        model_registry.registered_model(mlflow, model)  # unknown: a ComponentError (exit 2)
        names = [model]
    else:
        names = model_registry.model_names(mlflow)
    try:
        return [report for name in sorted(names) for report in _verify_model(mlflow, name, root)]
    except Exception as error:
        if not refused(error):
            raise
        raise ComponentError(
            STEP,
            f"the object store refused this identity while reading the registry's artifacts: {error}",
            "run it with the tenant's S3 key (tenant-s3-credentials), which may read its prefixes of "
            "mlflow-artifacts and models",
        ) from error
