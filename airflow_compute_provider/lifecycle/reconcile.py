"""Reconcile before launch: which units of an execution to adopt, and which to (re)launch.

A try never launches blindly. It first gathers what already exists for its execution (units
the provider finds by tag or label, plus every unit the ledger knows a resource id for),
describes them, and then decides per unit index, looking only at the unit's newest generation:

    newest generation pending, running or succeeded      adopt it (nothing is launched)
    newest generation failed, refused, stopped, vanished  launch generation + 1
    only an intent in the ledger, nothing on the provider re-send the same generation: the
    (or one the reconciler closed as never launched)      request carries the same idempotency
                                                          token, so a request that did arrive
                                                          before a crash, or a stalled one that
                                                          goes out later, is not doubled
    nothing known                                         launch generation 1

A try whose execution's newest earlier try succeeded (a task cleared after success) launches a
new generation of every unit whose newest generation ended: the DAG author asked for the work
to run again. A unit still live (pending, running) is adopted even then: never two live
generations of one unit. Any other try adopts, however many clears came before.

After the launch, ``claim_started_refusals`` looks for the refused units on the provider: a request whose
answer was lost may have started its unit, whatever its retry was told. One it finds is
launched, not refused, so the try waits for it, or stops it when it rolls back; left out, it
would run on unseen.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from airflow_compute_provider.errors import ComputeError, ComputeOperationError, ErrorCode
from airflow_compute_provider.hooks.base import (
    TOKEN_HELD,
    ComputeBackend,
    ExecutionRef,
    Unit,
    UnitLaunch,
    UnitPhase,
    UnitStatus,
)
from airflow_compute_provider.state.models import LedgerEntry
from airflow_compute_provider.state.status import ResourceStatus

log = logging.getLogger(__name__)

FIRST_GENERATION = 1

_LEDGER_DONE = frozenset({ResourceStatus.SUCCEEDED})
_LEDGER_FAILED = frozenset(
    {
        ResourceStatus.FAILED,
        ResourceStatus.STOPPING,
        ResourceStatus.STOPPED,
        ResourceStatus.PENDING_CLEANUP,
        ResourceStatus.CLEANED,
    }
)


@dataclass(frozen=True)
class ReconcilePlan:
    #: units that already exist and may still succeed (or did), with their current status
    adopted: Sequence[UnitStatus] = ()
    #: unit generations to launch, new ones and re-sent ones alike
    to_launch: Sequence[UnitLaunch] = ()
    #: unit indexes of ``to_launch`` that re-send an intent already in the ledger
    resent: frozenset[int] = field(default_factory=frozenset)


def known_units(ledger: Iterable[LedgerEntry], found: Iterable[Unit]) -> list[Unit]:
    """Every unit generation worth describing: found on the provider, or launched per the ledger."""
    units = {(u.index, u.generation): u for u in found}
    for entry in ledger:
        key = (entry.unit_index, entry.generation)
        if key not in units and entry.resource_id:
            units[key] = Unit(entry.unit_index, entry.generation, entry.resource_id, dict(entry.locator))
    return sorted(units.values(), key=lambda u: (u.index, u.generation))


def plan_units(
    count: int,
    ledger: Sequence[LedgerEntry],
    statuses: Sequence[UnitStatus],
    *,
    fresh_start: bool = False,
    refusal_frees_token: bool = False,
) -> ReconcilePlan:
    """Decide, per unit index in ``range(count)``, between adopting and launching.

    ``refusal_frees_token`` (the backend's): a refused re-sent intent is re-sent again with its
    own token, never replaced by a new generation. Its first sender may still be on its way (a
    zombie stalled before its launch call), and where a refusal leaves the token free that
    late request would start the old generation beside the new one; with the same token it
    starts the unit the lifecycle launches, once. A refusal because something not ours holds
    the token (``TOKEN_HELD``) is the exception: a re-send could never start it, so the unit
    goes on as the next generation (the stalled request is refused too while the holder stays)."""
    adopted: list[UnitStatus] = []
    to_launch: list[UnitLaunch] = []
    resent: set[int] = set()
    for index in range(count):
        entries = [e for e in ledger if e.unit_index == index]
        seen = [s for s in statuses if s.unit.index == index]
        newest = max([e.generation for e in entries] + [s.unit.generation for s in seen], default=0)
        if newest == 0:
            to_launch.append(UnitLaunch(index, FIRST_GENERATION))
            continue
        entry = next((e for e in entries if e.generation == newest), None)
        status = next((s for s in seen if s.unit.generation == newest), None)
        if fresh_start and not _live(status) and not _never_sent(entry, status):
            to_launch.append(UnitLaunch(index, newest + 1))
            continue
        decision = _decide(entry, status, refusal_frees_token=refusal_frees_token)
        if decision == "adopt":
            assert status is not None or entry is not None
            adopted.append(status if _usable(status) else _from_ledger(entry))  # type: ignore[arg-type]
        elif decision == "resend":
            to_launch.append(UnitLaunch(index, newest))
            resent.add(index)
        else:
            to_launch.append(UnitLaunch(index, newest + 1))
    return ReconcilePlan(adopted=adopted, to_launch=to_launch, resent=frozenset(resent))


def _decide(entry: LedgerEntry | None, status: UnitStatus | None, *, refusal_frees_token: bool) -> str:
    if status is not None and status.phase in (UnitPhase.PENDING, UnitPhase.RUNNING, UnitPhase.SUCCEEDED):
        # A unit stuck pending with an error is adopted too: the wait applies its grace period.
        return "adopt"
    if status is not None and status.phase is UnitPhase.FAILED:
        return "relaunch"
    # Vanished or never seen: the ledger knows best.
    if entry is None:
        return "relaunch"
    if entry.status in _LEDGER_DONE:
        return "adopt"  # finished long ago; the provider may have forgotten it
    if (entry.status is ResourceStatus.INTENDED and not entry.resource_id) or entry.never_launched:
        return "resend"
    if refusal_frees_token and entry.refused_resend and not _token_held(entry):
        return "resend"
    if entry.status in _LEDGER_FAILED:
        return "relaunch"
    # Launched or running per the ledger but gone from the provider: it will not come back.
    return "relaunch"


def _token_held(entry: LedgerEntry) -> bool:
    return entry.last_error is not None and entry.last_error.root_cause.reason == TOKEN_HELD


def _never_sent(entry: LedgerEntry | None, status: UnitStatus | None) -> bool:
    """Nothing of this generation ever ran: its intent is re-sent, even by a fresh start."""
    return status is None and entry is not None and entry.never_launched


def _live(status: UnitStatus | None) -> bool:
    return status is not None and status.phase in (UnitPhase.PENDING, UnitPhase.RUNNING)


def _usable(status: UnitStatus | None) -> bool:
    return status is not None and status.phase is not UnitPhase.VANISHED


def _from_ledger(entry: LedgerEntry) -> UnitStatus:
    unit = Unit(entry.unit_index, entry.generation, entry.resource_id or "", dict(entry.locator))
    return UnitStatus(unit=unit, phase=UnitPhase.SUCCEEDED)


def may_have_launched(error: ComputeError) -> bool:
    """Whether a launch refused with ``error`` may have started its unit all the same: the
    provider never answered (unreachable, no HTTP status), so the request may have arrived."""
    return error.code is ErrorCode.PROVIDER_UNREACHABLE and error.root_cause.http_status is None


def claim_started_refusals(
    backend: ComputeBackend,
    execution: ExecutionRef,
    launched: Sequence[Unit],
    refused: Sequence[tuple[UnitLaunch, ComputeError]],
) -> tuple[list[Unit], list[tuple[UnitLaunch, ComputeError]]]:
    """Move the refusals whose unit the provider did start into ``launched``.

    A refusal does not prove that nothing started. A request whose answer was lost may have
    started its unit, and the hook's retry of it can then be refused for a reason of its own:
    Kubernetes checks a namespace's quota before the pod's name, so the retry of a create that
    did land meets 403 "exceeded quota" where a 409 would have said "already there". So any
    refusal costs one ``find``; a refused unit found there, with this execution's labels or
    tags and this generation, is one this try started. If the find fails too, the refusals
    stand: their ledger rows stay intents when no answer came, which the next try re-sends with
    the same token or adopts, and the reconciler lists.
    """
    refused_keys = {(ul.index, ul.generation) for ul, _ in refused}
    if not refused_keys:
        return list(launched), list(refused)
    try:
        found = {
            (u.index, u.generation): u
            for u in backend.find(execution)
            if (u.index, u.generation) in refused_keys
        }
    except (ComputeOperationError, OSError):
        log.warning("Could not look for the refused units on the provider", exc_info=True)
        return list(launched), list(refused)
    if found:
        log.info(
            "Launches that were refused or unanswered did start: %s",
            sorted(u.resource_id for u in found.values()),
        )
    claimed = [found[(ul.index, ul.generation)] for ul, _ in refused if (ul.index, ul.generation) in found]
    still_refused = [(ul, err) for ul, err in refused if (ul.index, ul.generation) not in found]
    return [*launched, *claimed], still_refused
