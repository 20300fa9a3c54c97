"""Compute metrics through Airflow's own stats client (StatsD, Datadog, OpenTelemetry).

The lifecycle (``operators/base.py``) calls one function per event; each emits one metric
under Airflow's ``[metrics]`` configuration (prefix, allow / block lists, tags):

    compute.errors              counter   a failed try: tags code, classification, provider
    compute.launches            counter   units launched (count = units), tag provider
    compute.adoptions           counter   units found already launched and adopted, tag provider
    compute.rollbacks           counter   units a rollback stopped, tag provider
    compute.cleanups            counter   units marked for cleanup (action=marked) or cleaned
                                          up later (action=cleaned), tags provider, action
    compute.launch_to_running   timer     from a unit's launch request to its start as the
                                          provider reports it (ECS ``startedAt``, the main
                                          container's ``startedAt``), in milliseconds, tag
                                          provider

Tags reach tag-aware backends (Datadog, OpenTelemetry, StatsD with ``statsd_influxdb_enabled``);
plain StatsD drops them. So, the way Airflow itself does with its own metrics, each metric is
also emitted under a name carrying its tag values (``compute.errors.<provider>.<code>``,
``compute.launches.<provider>``...) while ``[metrics] legacy_names_on`` is true (Airflow's
default); turn it off where tags arrive and the named copies are noise.

Metrics never break the work: an exception from the stats client is logged and dropped.
Airflow 3.3 has the stats client in ``airflow.sdk.observability``; before that it is
``airflow.stats.Stats`` (``_stats()`` picks whichever exists).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from datetime import timedelta
from functools import cache
from typing import Any

from airflow_compute_provider.errors import ComputeError

log = logging.getLogger(__name__)

ERRORS = "compute.errors"
LAUNCHES = "compute.launches"
ADOPTIONS = "compute.adoptions"
ROLLBACKS = "compute.rollbacks"
CLEANUPS = "compute.cleanups"
LAUNCH_TO_RUNNING = "compute.launch_to_running"


def error(error: ComputeError, *, provider: str) -> None:
    """One failed try, counted by its code, classification and provider."""
    code, classification = error.code.value, error.classification.value
    tags = {"code": code, "classification": classification, "provider": provider}
    _incr(ERRORS, 1, tags, named=(provider, code))


def launched(provider: str, units: int) -> None:
    if units > 0:
        _incr(LAUNCHES, units, {"provider": provider}, named=(provider,))


def adopted(provider: str, units: int) -> None:
    if units > 0:
        _incr(ADOPTIONS, units, {"provider": provider}, named=(provider,))


def rolled_back(provider: str, units: int) -> None:
    """Units a rollback stopped (the ones it could not stop are ``cleanup(..., "marked")``)."""
    if units > 0:
        _incr(ROLLBACKS, units, {"provider": provider}, named=(provider,))


def cleanup(provider: str, units: int, action: str) -> None:
    """``action``: ``marked`` (left for the cleanup operator) or ``cleaned`` (it cleaned them)."""
    if units > 0:
        _incr(CLEANUPS, units, {"provider": provider, "action": action}, named=(provider, action))


def launch_to_running(provider: str, elapsed: timedelta) -> None:
    try:
        stats = _stats()
        tags = {"provider": provider}
        stats.timing(LAUNCH_TO_RUNNING, elapsed, tags=tags)
        if _named_copies():
            stats.timing(f"{LAUNCH_TO_RUNNING}.{provider}", elapsed)
    except Exception:
        log.warning("could not emit %s", LAUNCH_TO_RUNNING, exc_info=True)


def _incr(stat: str, count: int, tags: Mapping[str, str], *, named: tuple[str, ...]) -> None:
    try:
        stats = _stats()
        stats.incr(stat, count, tags=dict(tags))
        if _named_copies():
            stats.incr(".".join([stat, *(_name_part(part) for part in named)]), count)
    except Exception:
        log.warning("could not emit %s", stat, exc_info=True)


@cache
def _stats() -> Any:
    try:
        from airflow.sdk.observability import stats
    except ImportError:  # Airflow before 3.3
        from airflow.stats import Stats as stats
    return stats


def _name_part(value: str) -> str:
    """A tag value as one segment of a StatsD name: a dot would split it in two, and StatsD
    names keep to letters, digits and ``_ - .``."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", value)


@cache
def _named_copies() -> bool:
    try:
        from airflow.sdk.configuration import conf
    except ImportError:  # Airflow before 3.3
        from airflow.configuration import conf
    return bool(conf.getboolean("metrics", "legacy_names_on", fallback=True))


__all__ = [
    "ADOPTIONS",
    "CLEANUPS",
    "ERRORS",
    "LAUNCHES",
    "LAUNCH_TO_RUNNING",
    "ROLLBACKS",
    "adopted",
    "cleanup",
    "error",
    "launch_to_running",
    "launched",
    "rolled_back",
]
