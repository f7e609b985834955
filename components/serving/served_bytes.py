"""The predictor's load-time check: Triton starts only on the bytes the registry's version names.

Why (security review, MEDIUM 2): the published repository `models/<tenant>/.../v<N>-<sha12>/` is
write-once by convention and object-locked by version, but a tenant's S3 key can still PUT a new
object under the same name, model file and config.pbtxt together. Object lock keeps the old
*version*; the name now points at the forger's bytes, and their config can carry the forger's
`mlops_model_sha256`, which the decision log would then record. A pod restart would serve unsigned
bytes past the production sign-off.

The trust chain, from what the tenant key cannot write to what Triton loads:
1. `register` records the model file's sha256 as the version's `artifact_sha256`; `promote` refuses a
   model whose bytes differ from it (components/steps/promote.py).
2. `promote` renders that sha256, from the registration alone, into the InferenceService: the
   `artifact-sha256` annotation and the predictor's environment variable `MLOPS_ARTIFACT_SHA256`
   (`EXPECTED_SHA256_ENV`). The InferenceService lives in the Kubernetes API, which an S3 key cannot
   write; a production one is admitted only with its sign-off, and any one only with the variable
   equal to the annotation (manifests/policies/promotion-guard.yaml).
3. KServe's storage initializer downloads the storageUri into /mnt/models with the read-only key.
4. The runtime's command (manifests/base/serving/triton-runtime.yaml) is this file, copied into the
   Triton image (images/triton/Containerfile): before exec'ing tritonserver it hashes the one model
   file in the one version folder and reads the config's `mlops_model_sha256`; each must equal the
   pinned sha256, and the repository must hold exactly one model with one version of one file (a
   forged extra version would otherwise be served as the newest). Anything else exits 2 before
   Triton starts: the pod never turns ready, so the revision that serves keeps its traffic. There is
   no off switch: a predictor without `MLOPS_ARTIFACT_SHA256` refuses to start (fail closed).

Not covered here: a config.pbtxt edited in other fields (a FIL threshold) while keeping the model's
bytes and sha256; `mlops verify` compares the published objects with the registry for that.

It runs in the Triton image's own python3, so it imports nothing but the standard library.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = [
    "ARTIFACT_SHA256_ANNOTATION",
    "EXPECTED_SHA256_ENV",
    "PREDICTOR_MODEL_FIELDS",
    "REFUSED_EXIT_CODE",
    "ServedBytesError",
    "main",
    "verify_repository",
]

EXPECTED_SHA256_ENV = "MLOPS_ARTIFACT_SHA256"
"""The predictor's environment variable promote renders from the registration's artifact_sha256."""
ARTIFACT_SHA256_ANNOTATION = "artifact-sha256"
"""The InferenceService annotation (under the platform's prefix) promote renders from the same value;
the promotion guard admits a service only where the two are equal (manifests/policies/promotion-guard.yaml)."""
PREDICTOR_MODEL_FIELDS = ("name", "modelFormat", "runtime", "protocolVersion", "storageUri", "env", "resources",
                          "securityContext", "ports", "readinessProbe")  # fmt: skip
"""Every field promote's `render_inference_service` may set on a predictor's model; the promotion guard
refuses any other, since a `command`, `args` or `image` would replace this check of the bytes."""
REFUSED_EXIT_CODE = 2
"""components.errors.PERMANENT_EXIT_CODE (a restart gives the same answer); not imported: this file
runs alone in the Triton image."""
_SHA256 = re.compile(r"[0-9a-f]{64}")
# The config's mlops_model_sha256 parameter as components.serving.triton_config writes it.
_CONFIG_SHA256 = re.compile(r'key:\s*"mlops_model_sha256"\s*value:\s*\{\s*string_value:\s*"([^"]*)"\s*\}')
_FIX = (
    "do not serve this: run `mlops verify {model}` to see which published object differs from the "
    "registry, then restore the object's previous version with `mc cp --version-id <version id> "
    "<alias>/models/<key> <alias>/models/<key>` (docs/recovery.md, Immutable artifacts), or promote "
    "the registered version again; and rotate the tenant key that wrote it"
)


class ServedBytesError(Exception):
    """The repository on disk is not the registry's version; the message names what and the fix."""


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _only(entries: list[Path], what: str, where: Path, model: str) -> Path:
    if len(entries) != 1:
        names = sorted(entry.name for entry in entries)
        raise ServedBytesError(
            f"{where} holds {len(entries)} {what} {names}, promote publishes exactly one; " + _FIX.format(model=model)
        )
    return entries[0]


def verify_repository(repository: Path, expected_sha256: str | None) -> str:
    """Check the downloaded Triton repository against the registry's sha256; returns the model's name.
    Raises ServedBytesError naming the difference, `mlops verify` and the restore command."""
    if expected_sha256 is None or not _SHA256.fullmatch(expected_sha256):
        raise ServedBytesError(
            f"the predictor has no pinned model sha256 ({EXPECTED_SHA256_ENV}={expected_sha256!r}), so it cannot "
            "tell the registered bytes from others: promote the model again (mlops promote), which renders "
            f"{EXPECTED_SHA256_ENV} from the registration's artifact_sha256"
        )
    models = _only([p for p in repository.iterdir() if not p.name.startswith(".")], "models", repository, "<model>")
    model = models.name
    if models.is_symlink() or not models.is_dir():
        raise ServedBytesError(f"{models} is not a folder; " + _FIX.format(model=model))
    config_path = models / "config.pbtxt"
    versions = [p for p in models.iterdir() if p.name != "config.pbtxt"]
    version = _only(versions, "version folders", models, model)
    if version.is_symlink() or not version.is_dir() or not version.name.isdigit():
        raise ServedBytesError(f"{version} is not a version folder; " + _FIX.format(model=model))
    model_file = _only(list(version.iterdir()), "files", version, model)
    if model_file.is_symlink() or not model_file.is_file() or config_path.is_symlink() or not config_path.is_file():
        raise ServedBytesError(f"{model_file} or {config_path} is not a plain file; " + _FIX.format(model=model))
    served = _sha256_file(model_file)
    if served != expected_sha256:
        raise ServedBytesError(
            f"{model_file} has sha256 {served}, not {expected_sha256}, the registered artifact_sha256 the "
            f"InferenceService pins for {model} v{version.name}: these bytes were not signed off; "
            + _FIX.format(model=model)
        )
    recorded = _CONFIG_SHA256.findall(config_path.read_text(errors="replace"))
    if recorded != [expected_sha256]:
        raise ServedBytesError(
            f"{config_path} records mlops_model_sha256 {recorded or 'nowhere'}, not {expected_sha256} (the decision "
            f"log would record it for {model} v{version.name}); " + _FIX.format(model=model)
        )
    return model


def main(argv: Sequence[str] | None = None) -> int:
    """`served_bytes.py [--repository DIR] -- COMMAND...`: verify, then exec COMMAND (tritonserver)."""
    args = list(sys.argv[1:] if argv is None else argv)
    repository = Path("/mnt/models")
    if args[:1] and args[0].startswith("--repository="):
        repository = Path(args.pop(0).split("=", 1)[1])
    if args[:1] == ["--"]:
        args.pop(0)
    if not args:
        print("usage: served_bytes.py [--repository=DIR] -- tritonserver ARGS...", file=sys.stderr)
        return REFUSED_EXIT_CODE
    try:
        model = verify_repository(repository, os.environ.get(EXPECTED_SHA256_ENV))
    except (ServedBytesError, OSError) as error:
        print(f"served-bytes: refusing to start {args[0]}: {error}", file=sys.stderr, flush=True)
        return REFUSED_EXIT_CODE
    print(f"served-bytes: {model} matches {EXPECTED_SHA256_ENV}; starting {args[0]}", file=sys.stderr, flush=True)
    os.execvp(args[0], args)
    return REFUSED_EXIT_CODE  # not reached: execvp replaces the process or raises


if __name__ == "__main__":
    sys.exit(main())
