"""Step cache keys: a step whose inputs are unchanged is not run again.

A step's key is the sha256 of what its result depends on, and of nothing else:
- the data's digest (the sha256 of the dataset's bytes, or the md5 a DVC pointer records), never
  its path: the same path with new bytes is new data;
- the step's own arguments (its section of the config), the keys of the steps it reads from, and
  the code (a fingerprint of components/, pipelines/ and mlops/, so an uncommitted edit counts),
  the image and the package versions; a team's step (pipelines/team_steps.py) adds the source of
  its own module, which lives outside these roots;
- the platform's non-secret settings, so a run against other stores does not reuse a result
  written into the old ones.
Only steps declared `caching=True` get a key (pipelines/standard.py: validate, materialize, train,
evaluate); drift reads the registry, register and promote write to it, so they always run.

On a cluster the data's digest is known only once a run has read the data: there the step that
reports `data_digest` (validate) always runs, and a cacheable step is cached only downstream of
it (`cluster_cached`), its key built from that output at run time (Argo's memoize key). KFP's
cluster cache is off: it lives in ML Metadata, which every tenant's pods reach (pipelines/kfp.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.declaration import PipelineDeclaration
from pipelines.spec import PipelineSpec, Step

if TYPE_CHECKING:
    from pipelines.contract import StepContract

__all__ = [
    "CACHE_CONFIGMAP",
    "CACHE_MAX_AGE",
    "DIGEST_OUTPUT",
    "IN_POD_VARIABLE",
    "NAMESPACE",
    "NAMESPACE_FILE",
    "NAMESPACE_VARIABLE",
    "ROOTS",
    "RUN_INPUT",
    "SHA256_SUFFIX",
    "SUFFIXES",
    "ancestors",
    "cache_key",
    "cluster_digest_source",
    "code_fingerprint",
    "output_digest_word",
    "reported",
    "require_namespace",
    "run_input_word",
    "step_keys",
]

ROOTS = ("components", "pipelines", "mlops")
"""The packages whose source a step's outputs depend on: code_fingerprint reads them all."""
SUFFIXES = {".py", ".json", ".yaml", ".yml"}
DIGEST_OUTPUT = "data_digest"
"""The output naming the bytes a run read (validate's): what cluster cache keys start from."""
SHA256_SUFFIX = "_sha256"
"""An output ending so is the sha256 of an artifact the step made or read (train's model_sha256):
a step that takes it holds it in its key."""
NAMESPACE = "{{workflow.namespace}}"
"""The tenant, in every memoized step's key."""


def code_fingerprint(repo: Path | None = None) -> str:
    """sha256 over the source of ROOTS below `repo` (this checkout by default): paths and bytes, in a
    fixed order, goldens aside (they are outputs). mlops/ is in on purpose: a distributed train's
    workers run the step as `python -m mlops.cli step train` (components' train launch), so the CLI's
    flag parsing is part of what makes a step's outputs. Left out, an edit there would reuse a result
    the new code would not make (a stale hit); in, an edit to the CLI costs at most one rerun."""
    repo = repo or Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for root in ROOTS:
        for path in sorted((repo / root).rglob("*")):
            if path.suffix in SUFFIXES and "__pycache__" not in path.parts and "golden" not in path.parts:
                digest.update(str(path.relative_to(repo)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def step_keys(
    declaration: PipelineDeclaration, parameters: Mapping[str, Mapping[str, Any]], raw_data: str
) -> dict[str, str]:
    """The cache key of each cacheable step of one run."""
    from components import lineage
    from components.environment import IMAGE_VARIABLE
    from components.platform.settings import environment, from_environment
    from pipelines.team_steps import is_team_component, module_fingerprint

    base = {
        "data": lineage.data_digest(raw_data),
        "code": code_fingerprint(),
        "image": os.environ.get(IMAGE_VARIABLE, ""),
        "packages": lineage.package_versions(),
        "platform": environment(from_environment()),
    }
    keys: dict[str, str] = {}
    for step in declaration.spec.steps:
        if not step.caching:
            continue
        upstream = {name: keys.get(name, "not cached") for name in step.upstream()}
        facts = {
            "base": base,
            "step": step.name,
            "component": step.component,
            "parameters": parameters[step.name],
            "upstream": upstream,
        }
        if is_team_component(step.component):  # a team's step: its own module's code too
            facts["team_code"] = module_fingerprint(step.component)
        keys[step.name] = lineage.canonical_sha256(facts)
    return keys


def ancestors(spec: PipelineSpec, step: Step) -> list[Step]:
    """Every step `step` waits on, directly or not, in name order."""
    seen: dict[str, Step] = {}
    pending = list(step.upstream())
    while pending:
        name = pending.pop()
        if name not in seen:
            seen[name] = spec.step(name)
            pending.extend(seen[name].upstream())
    return [seen[name] for name in sorted(seen)]


def cluster_digest_source(spec: PipelineSpec, step: Step, contracts: Mapping[str, StepContract]) -> str | None:
    """The step whose `data_digest` output keys `step`'s cache on a cluster, or None when `step` is
    not cached there: not declared cacheable, or not downstream of the step that reads the data
    (its only key would be the data's URI, and new bytes at an old URI would hit)."""
    sources = [name for name, contract in contracts.items() if DIGEST_OUTPUT in contract.parameter_outputs]
    if not step.caching or not sources:
        return None
    upstream = {s.name for s in ancestors(spec, step)}
    return sources[0] if sources[0] in upstream else None


CACHE_CONFIGMAP = "mlops-step-cache"
"""Argo's memoization cache in each pipelines namespace (rendered into manifests/ by make golden)."""
CACHE_MAX_AGE = "720h"
RUN_INPUT = re.compile(r"\{\{workflow\.parameters\.([\w-]+)\}\}")


def cache_key(
    spec: PipelineSpec,
    step: Step,
    parameters: Mapping[str, Mapping[str, Any]],
    contracts: Mapping[str, StepContract],
    unkeyed: frozenset[str] = frozenset(),
) -> str | None:
    """The memoization key of a cacheable step, the same facts as a local run's (step_keys):
    the tenant (the workflow's namespace), the data's digest (an output of the step that read the
    data), the digest of each artifact an upstream step reports with it (`*_sha256` outputs such as
    train's `model_sha256`: evaluate's result is of the model's bytes, not of train's arguments),
    the commit, the run inputs the step reads, and a hash of its own and its ancestors' components
    and arguments and the image. The URI of the data is not in it: new bytes at the same URI are
    new data. `unkeyed` names steps that are not memoized (a TrainJob): a step that reads what one
    made is not memoized either, as its key could not name the bytes that step makes anew."""
    source = cluster_digest_source(spec, step, contracts)
    if source is None or any(ref.split(".")[0] in unkeyed for ref in step.inputs.values()):
        return None
    lineage = [step, *ancestors(spec, step)]
    static = {s.name: {"component": s.component, "parameters": parameters[s.name]} for s in lineage}
    text = json.dumps({"steps": static, "image": spec.image}, sort_keys=True)
    inputs = sorted(set(RUN_INPUT.findall(json.dumps(parameters[step.name]))) - {"raw-data", "git-commit"})
    digests = sorted(ref for ref in step.inputs.values() if ref.endswith(SHA256_SUFFIX) and ref in reported(contracts))
    parts = [
        step.name,
        hashlib.sha256(text.encode()).hexdigest()[:16],
        NAMESPACE,
        f"{{{{tasks.{source}.outputs.parameters.{DIGEST_OUTPUT}}}}}",
        *(output_digest_word(ref) for ref in digests),
        "{{workflow.parameters.git-commit}}",
        *(run_input_word(name) for name in inputs),
        "{{workflow.parameters.cache-salt}}",  # `mlops submit --no-cache`: a new one runs everything again
    ]
    return "-".join(parts)


def run_input_word(name: str) -> str:
    """A run input as a word Argo's memoization cache accepts: it refuses a key outside
    `[a-zA-Z0-9][-a-zA-Z0-9]*` ("invalid cache key", the node errors), so a value such as a gate
    threshold of 0.85 enters the key as the first 16 hex digits of its sha256 (an expression tag)."""
    return f"{{{{=sprig.trunc(16, sprig.sha256sum(workflow.parameters['{name}']))}}}}"


def reported(contracts: Mapping[str, StepContract]) -> set[str]:
    """Every `step.output` a step reports as a parameter."""
    return {f"{name}.{output}" for name, contract in contracts.items() for output in contract.parameter_outputs}


def output_digest_word(reference: str) -> str:
    """An upstream step's reported sha256 (`step.output`) as a key word: its first 16 hex digits
    (an expression tag, so the key stays within a ConfigMap key's 253 characters)."""
    source, output = reference.split(".")
    return f"{{{{=sprig.trunc(16, tasks.{source}.outputs.parameters.{output})}}}}"


NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
NAMESPACE_VARIABLE = "MLOPS_POD_NAMESPACE"
"""The pod's namespace from the downward API (`metadata.namespace`), set on every task the KFP
render places on a cluster (pipelines/kfp.py): known even where no service account token is mounted."""
IN_POD_VARIABLE = "KUBERNETES_SERVICE_HOST"
"""Set by the kubelet in every pod: a step that sees it runs on a cluster, not in a local run."""


def require_namespace(
    step: str,
    namespace: str,
    namespace_file: Path = NAMESPACE_FILE,
    environ: Mapping[str, str] | None = None,
) -> None:
    """Refuse to run a step compiled for one tenant anywhere but in that tenant's namespace.

    The `namespace` argument is the tenant the pipeline was compiled for, not the namespace a run
    is in: a pipeline compiled for fraud and run by pricing would write under fraud's name. The pod
    learns its namespace from the downward API (NAMESPACE_VARIABLE), else from its service
    account's namespace file. A pod that can learn neither (automountServiceAccountToken: false on
    an IR without the variable) is refused, exit 2, rather than trusted: issue 29 review finding 11.
    A local run (no kubelet variables, no service account) is nobody else's and runs."""
    from components.errors import ComponentError

    env = os.environ if environ is None else environ
    actual = env.get(NAMESPACE_VARIABLE, "").strip()
    if not actual and namespace_file.exists():
        actual = namespace_file.read_text().strip()
    if not actual:
        if IN_POD_VARIABLE not in env:
            return
        raise ComponentError(
            step,
            f"this step was compiled for namespace {namespace!r} but cannot learn the namespace its pod runs in "
            f"(no {NAMESPACE_VARIABLE} and no {namespace_file})",
            f"compile the pipeline again with this release (mlops compile), whose tasks set {NAMESPACE_VARIABLE} "
            f"from the downward API, and submit that (a local run inside a pod: export "
            f"{NAMESPACE_VARIABLE}=<namespace>)",
        )
    if actual != namespace:
        raise ComponentError(
            step,
            f"this step was compiled for namespace {namespace!r} but runs in {actual!r}",
            f"compile the pipeline with cluster.namespace: {actual} (mlops compile) and submit that",
        )
