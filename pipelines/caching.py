"""Step cache keys: a step whose inputs are unchanged is not run again.

A step's key is the sha256 of what its result depends on, and of nothing else:
- the data's digest (the sha256 of the dataset's bytes, or the md5 a DVC pointer records), never
  its path: the same path with new bytes is new data;
- the step's own arguments (its section of the config), the keys of the steps it reads from, and
  the code (a fingerprint of components/ and pipelines/, so an uncommitted edit counts), the image
  and the package versions;
- the platform's non-secret settings, so a run against other stores does not reuse a result
  written into the old ones.
Only steps declared `caching=True` get a key (pipelines/standard.py: validate, materialize, train,
evaluate); drift reads the registry, register and promote write to it, so they always run.

On a cluster the data's digest is known only once a run has read the data: there the step that
reports `data_digest` (validate) always runs, and a cacheable step is cached only downstream of
it (`cluster_cached`), its key built from that output at run time (Argo's memoize key, KFP's
fingerprint of the inputs).
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

ROOTS = ("components", "pipelines")
SUFFIXES = {".py", ".json", ".yaml", ".yml"}
DIGEST_OUTPUT = "data_digest"
"""The output naming the bytes a run read (validate's): what cluster cache keys start from."""


def code_fingerprint() -> str:
    """sha256 over the source of components/ and pipelines/ (paths and bytes, in a fixed order)."""
    repo = Path(__file__).resolve().parents[1]
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
    from components.settings import environment, from_environment

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
        keys[step.name] = lineage.canonical_sha256(
            {
                "base": base,
                "step": step.name,
                "component": step.component,
                "parameters": parameters[step.name],
                "upstream": upstream,
            }
        )
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
    spec: PipelineSpec, step: Step, parameters: Mapping[str, Mapping[str, Any]], contracts: Mapping[str, StepContract]
) -> str | None:
    """The memoization key of a cacheable step, the same facts as a local run's (step_keys):
    the data's digest (an output of the step that read the data), the commit, the run inputs the
    step reads, and a hash of its own and its ancestors' components and arguments and the image.
    The URI of the data is not in it: new bytes at the same URI are new data."""
    source = cluster_digest_source(spec, step, contracts)
    if source is None:
        return None
    lineage = [step, *ancestors(spec, step)]
    static = {s.name: {"component": s.component, "parameters": parameters[s.name]} for s in lineage}
    text = json.dumps({"steps": static, "image": spec.image}, sort_keys=True)
    inputs = sorted(set(RUN_INPUT.findall(json.dumps(parameters[step.name]))) - {"raw-data", "git-commit"})
    parts = [
        step.name,
        hashlib.sha256(text.encode()).hexdigest()[:16],
        f"{{{{tasks.{source}.outputs.parameters.{DIGEST_OUTPUT}}}}}",
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
