"""The isolation check's table: every surface, its positive controls and its probes, in the order run.

A surface is one shared service a tenant reaches with its own credentials. Its module holds the
probes as top-level functions, `OWN` (the attacker's positive controls: it uses its own data
there) and `PROBES` (paths into the target's), as `mlops/doctor.py` registers its checks. To add a
path: write the probe in its surface's module (or a new module for a new surface), list it there,
and, for a new surface, add a `Surface` row here. A probe takes the `Scene` and returns what
leaked, or raises `Denied`; anything else it raises is classified by `outcomes.classify`.

A surface whose service is not running (`available` names what to start) is not tried, and the
check says so in its summary: a row is never reported DENIED for a service that was not there.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from mlops.isolation import (
    decisions,
    decisions_writer,
    gate,
    online_store,
    pgbouncer,
    postgres,
    pushgateway,
    s3,
    side_doors,
    tracking,
    transformer_reader,
    writer_secret,
)
from mlops.isolation.outcomes import ERROR, LEAK, OK, Attempt, classify
from mlops.isolation.scene import Scene, as_tenant, seed

if TYPE_CHECKING:
    from devstack.stack import Stack
    from devstack.tenants import Tenant

__all__ = ["SURFACES", "Surface", "check", "controls", "not_tried"]

Control = tuple[str, Callable[["Stack", "Tenant"], str]]
Probe = tuple[str, Callable[[Scene], str]]


def _always(stack: Stack) -> str:
    return ""


@dataclass(frozen=True)
class Surface:
    """One shared service: its name (for `--surface`), controls, probes, and destructive last probes."""

    name: str
    own: tuple[Control, ...]
    probes: tuple[Probe, ...]
    last: tuple[Probe, ...] = ()
    available: Callable[[Stack], str] = _always
    """Empty when the surface's service runs on this stack; else what to start to try it."""


SURFACES: tuple[Surface, ...] = (
    Surface("s3", s3.OWN, s3.PROBES, last=s3.LAST),
    Surface("decisions", decisions.OWN, decisions.PROBES),  # the transformers' decision logs (issue 32)
    Surface("online-store", online_store.OWN, online_store.PROBES),
    Surface("tracking", tracking.OWN, tracking.PROBES),
    Surface("gate", gate.OWN, gate.PROBES),  # register takes only the bytes evaluate scored (issue 29)
    Surface("side-doors", s3.OWN, side_doors.PROBES),  # the object store's other ports: its control
    Surface("postgres", postgres.OWN, postgres.PROBES),
    Surface("transformer", transformer_reader.OWN, transformer_reader.PROBES),  # its reader (issue 29)
    Surface("decisions-writer", decisions_writer.OWN, decisions_writer.PROBES),  # its decision-log key (issue 32)
    # a member's Workflow loading the writer's key, before admission (security review)
    Surface("writer-secret", writer_secret.OWN, writer_secret.PROBES, available=writer_secret.available),
    Surface("pgbouncer", pgbouncer.OWN, pgbouncer.PROBES, available=pgbouncer.available),  # each tenant's own
    Surface("pushgateway", pushgateway.OWN, pushgateway.PROBES, available=pushgateway.available),
)


def _chosen(stack: Stack, surfaces: Collection[str] | None) -> list[Surface]:
    known = {surface.name for surface in SURFACES}
    unknown = sorted(set(surfaces or ()) - known)
    if unknown:
        raise ValueError(f"unknown surface(s) {unknown}: choose from {sorted(known)}")
    wanted = [surface for surface in SURFACES if surfaces is None or surface.name in surfaces]
    return [surface for surface in wanted if not surface.available(stack)]


def not_tried(stack: Stack, surfaces: Collection[str] | None = None) -> dict[str, str]:
    """The chosen surfaces whose service is not running here, each with what would start it."""
    wanted = [surface for surface in SURFACES if surfaces is None or surface.name in surfaces]
    return {surface.name: reason for surface in wanted if (reason := surface.available(stack))}


def controls(stack: Stack, tenant: Tenant, surfaces: Collection[str] | None = None) -> list[Attempt]:
    """Positive controls: the tenant uses its own data on every surface the probes attack (a
    control two surfaces share runs once)."""
    chosen = {path: control for surface in _chosen(stack, surfaces) for path, control in surface.own}
    attempts = []
    with as_tenant(tenant):
        for path, control in chosen.items():
            attempted = classify(path, partial(control, stack, tenant))
            observed = OK if attempted.observed == LEAK else ERROR  # a control's success reads as "got in"
            detail = attempted.detail if observed == OK else f"{attempted.detail} (the control failed)"
            attempts.append(Attempt(path, OK, observed, detail))
    return attempts


def check(stack: Stack, attacker: Tenant, target: Tenant, surfaces: Collection[str] | None = None) -> list[Attempt]:
    """The positive controls, then every probe of the chosen surfaces (default: all running ones);
    a row passes when observed == expected."""
    chosen = _chosen(stack, surfaces)
    own = controls(stack, attacker, surfaces)
    with as_tenant(target):
        planted = seed(stack, target)
    scene = Scene(stack, attacker, target, planted, own)
    ordered = [probe for surface in chosen for probe in surface.probes]
    ordered += [probe for surface in chosen for probe in surface.last]
    with as_tenant(attacker):
        return own + [classify(path, partial(probe, scene)) for path, probe in ordered]
