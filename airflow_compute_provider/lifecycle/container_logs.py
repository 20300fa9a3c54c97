"""Container output in the task log, and the failed unit's last lines in its error.

The lifecycle (``base.py``) calls this module at three points of a try:

    while a blocking try waits   ``ContainerLogs.stream(units)`` from each poll, at most once per
                                 ``log_fetch_interval``: new lines of every watched unit
    when the try settles         ``ContainerLogs.stream(units, final=True)``: the rest, whatever
                                 the outcome (success, failure, timeout), blocking or resumed
                                 from the trigger; a deferred try reads nothing while deferred,
                                 so the shared pollers make no request for logs
    once the outcome is recorded ``ContainerLogs.close(outcome_at)``: the lines stamped up to the
                                 moment the store recorded the try's outcome (the
                                 database's clock), the boundary the next try starts after
    when a unit failed           ``ContainerLogs.with_last_lines(error, unit)``: the unit's error
                                 with its main container's last ``log_lines_on_failure`` lines
                                 (bounded in characters; on Kubernetes the pod's last events
                                 when it never started); ``failure.record_failure`` masks them
                                 with the rest of the error

Each line goes to the task log prefixed ``[unit N]`` (``[unit N/container]`` when several
containers are shown), through the operator's logger, masked first by Airflow's secrets masker
(``redact``: every secret registered with ``mask_secret``, as the launch request's are), which
not every task log path applies by itself (``dag.test()`` does not).

A ``LogCursor`` per (unit, generation, container) keeps a line from being printed twice within
the try. Across tries the boundary is the previous try's ``outcome_at``:
that try printed every line stamped up to it (``close``), the next prints only lines stamped
after it (``previous_read``), so a reattaching try neither repeats nor skips a line. Two limits,
both of clocks: the boundary is the database's time and the lines carry the kubelet's or
CloudWatch's, so a skew between them moves the boundary by that much; and a line CloudWatch
ingests after ``close`` read it, though stamped before the boundary, is not printed. A try that
ended without an outcome (a crashed worker) leaves no boundary: the next prints everything.

Whatever goes wrong with the logs (no log configuration, a missing stream or pod, a refused,
slow or faulted logs API) is a warning in the task log, printed once per try; the try's outcome
is what the compute said.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow_compute_provider.errors import ComputeError
from airflow_compute_provider.errors.model import ContainerOutput
from airflow_compute_provider.hooks.base import Unit
from airflow_compute_provider.hooks.container_logs import ContainerLogReader, LogCursor, LogLine, clean_line
from airflow_compute_provider.state.store import TenantStateStore

if TYPE_CHECKING:
    from airflow_compute_provider.lifecycle.arguments import ComputeArguments

#: the last lines a failed unit's error carries by default (KubernetesPodOperator shows 10 and
#: EcsRunTaskOperator 10; 20 gives a stack trace's head and tail a chance)
DEFAULT_LAST_LINES = 20
#: one line's bound inside an error, and all lines' together: an error travels through XCom,
#: the state store and the Compute Health page
ERROR_LINE_CHARS = 500
ERROR_OUTPUT_CHARS = 8000
#: the pod events an error carries for a pod that printed nothing
LAST_EVENTS = 5
#: seconds between two log reads of a blocking try, by default
DEFAULT_FETCH_INTERVAL = 10.0
#: one unit's read that took longer turns reading off for the rest of the try (a read takes
#: milliseconds; the readers' request timeouts are 5 s): a slow logs API costs one timeout, not
#: one per unit and poll
SLOW_READ_SECONDS = 4.0


def chosen_containers(value: Any) -> list[str] | bool | None:
    """``None`` (the main container), ``True`` (every container) or container names."""
    if value is None or value is True:
        return value  # type: ignore[no-any-return]
    if value is False:
        raise ValueError("use get_logs=False to read no container's output")
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not value or not all(isinstance(v, str) and v for v in value):
        raise ValueError("must be a container name, a list of them, or True for every container")
    return list(value)


class ContainerLogs:
    """One try's reading of its units' container output.

    :param reader: builds the provider's ``ContainerLogReader`` (once, when first needed)
    :param args: the try's validated arguments (``arguments.ComputeArguments``)
    :param log: the operator's logger: the task log
    :param since: where the previous try of this execution stopped reading (``previous_read``)
    """

    def __init__(
        self,
        reader: Callable[[], ContainerLogReader],
        args: ComputeArguments,
        log: Any,
        since: datetime | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._make_reader = reader
        self._reader: ContainerLogReader | None = None
        self.enabled = args.get_logs
        #: ``None``: the main container; ``True``: every one; else these names
        self._containers: Sequence[str] | bool | None = args.container_logs
        self._last_lines = args.log_lines_on_failure
        self._interval = args.log_fetch_interval
        self._log = log
        self._since = since
        #: lines stamped at ``since`` itself were the previous try's (it printed up to it)
        self._start = LogCursor(since, _EVERY_LINE) if since is not None else LogCursor()
        self._units: list[Unit] = []
        self._cursors: dict[tuple[int, int, str], LogCursor] = {}
        self._warned: set[str] = set()
        self._clock = clock
        self._last_read: float | None = None

    # -- the task log --------------------------------------------------------------------------

    def stream(self, units: Sequence[Unit], *, final: bool = False) -> None:
        """Print the units' new lines; unless ``final``, at most once per fetch interval."""
        if not self.enabled or not units:
            return
        now = self._clock()
        if not final and self._last_read is not None and now - self._last_read < self._interval:
            return
        self._last_read = now
        if final:
            self._units = list(units)
        self._read(units, until=None)

    def close(self, until: datetime | None) -> None:
        """After the try's outcome was recorded at ``until``: the units' lines stamped up to it
        (the next try prints those after it). ``None``: no outcome time known; nothing read."""
        if self.enabled and self._units and until is not None:
            self._read(self._units, until=until)
        self._units = []

    def _slow(self, started: float) -> bool:
        """Whether a read begun at ``started`` was slow; reading stops for the try if it was."""
        took = self._clock() - started
        if took <= SLOW_READ_SECONDS:
            return False
        self.enabled = False
        self._warn(
            f"reading container logs took {took:.0f}s; the logs API is slow, so this try reads no "
            "more of them"
        )
        return True

    def _read(self, units: Sequence[Unit], *, until: datetime | None) -> None:
        try:
            reader = self._get_reader()
        except NotImplementedError:
            return
        except Exception as exc:
            self._warn(f"cannot read container logs: {type(exc).__name__}: {str(exc)[:200]}")
            return
        for unit in sorted(units, key=lambda u: u.index):
            started = self._clock()
            self._stream_unit(reader, unit, until)
            if self._slow(started):
                return

    def _stream_unit(self, reader: ContainerLogReader, unit: Unit, until: datetime | None) -> None:
        since = self._oldest_cursor(unit) or self._since
        try:
            read = reader.read(unit, self._containers, since)
        except Exception as exc:  # a reader never should raise; a warning all the same
            self._warn(f"unit {unit.index}: cannot read its container logs: {type(exc).__name__}: {exc}")
            return
        for warning in read.warnings:
            self._warn(warning)
        chosen = self._containers
        several = chosen is True or (isinstance(chosen, list | tuple) and len(chosen) > 1)
        seen_at: dict[tuple[str, datetime | None], int] = {}
        for line in read.lines:
            key = (unit.index, unit.generation, line.container)
            if until is not None and line.at is not None and line.at > until:
                continue  # the next try's to print
            cursor = self._cursors.get(key) or self._start
            instant = (line.container, line.at)
            nth = seen_at.get(instant, 0)
            seen_at[instant] = nth + 1
            if not cursor.admits(line.at, nth):
                continue
            self._cursors[key] = cursor.after(line.at)
            self._print(unit, line, several)

    def _print(self, unit: Unit, line: LogLine, several: bool) -> None:
        where = f"{unit.index}/{line.container}" if several else str(unit.index)
        self._log.info("[unit %s] %s", where, _masked(line.text))

    def _oldest_cursor(self, unit: Unit) -> datetime | None:
        stamps = [
            c.at for (i, g, _), c in self._cursors.items() if (i, g) == (unit.index, unit.generation) and c.at
        ]
        return min(stamps) if stamps else None

    # -- the error -----------------------------------------------------------------------------

    def with_last_lines(self, error: ComputeError, unit: Unit, *, started: bool) -> ComputeError:
        """``error`` with the unit's main container's last lines; for a unit that never
        ``started`` (the provider gives it no start time) its last events instead. Unchanged when
        logs are off or there is nothing to show."""
        if not self.enabled or self._last_lines == 0 or error.output is not None:
            return error
        begun = self._clock()
        try:
            reader = self._get_reader()
        except NotImplementedError:
            return error
        except Exception as exc:
            self._warn(f"cannot read container logs: {type(exc).__name__}: {str(exc)[:200]}")
            return error
        try:
            container, read = reader.tail(unit, self._last_lines)
            quiet = read.lines or started or self._slow(begun)
            events = [] if quiet else reader.events(unit, LAST_EVENTS)
        except Exception as exc:
            self._warn(f"unit {unit.index}: cannot read its last lines: {type(exc).__name__}: {exc}")
            return error
        for warning in read.warnings:
            self._warn(warning)
        if not read.lines and not events:
            return error
        lines, truncated = _bounded([line.text for line in read.lines[-self._last_lines :]])
        output = ContainerOutput(container=container, lines=lines, truncated=truncated, events=events)
        return error.model_copy(update={"output": output})

    # -- plumbing ------------------------------------------------------------------------------

    def _get_reader(self) -> ContainerLogReader:
        if self._reader is None:
            try:
                self._reader = self._make_reader()
            except NotImplementedError:
                self.enabled = False  # an operator without container output (a test backend's)
                raise
        return self._reader

    def _warn(self, text: str) -> None:
        if text in self._warned:
            return
        self._warned.add(text)
        self._log.warning("container logs: %s", text)


def _masked(text: str) -> str:
    from airflow.sdk.log import redact

    masked = redact(text)
    return masked if isinstance(masked, str) else text


#: ``LogCursor.same`` that admits no line at the cursor's instant
_EVERY_LINE = 2**62


def previous_read(
    store: TenantStateStore, tenant_id: str, execution_id: str, attempt: int
) -> datetime | None:
    """Where the execution's previous try stopped printing: when it recorded its outcome
    (``ContainerLogs.close`` printed every line stamped up to then). ``None`` for a first try,
    or when the previous one ended without an outcome (a crash): then everything is printed."""
    earlier = [
        op
        for op in store.operations(tenant_id)
        if op.execution_id == execution_id and op.attempt < attempt and op.outcome_at is not None
    ]
    if not earlier:
        return None
    return max(earlier, key=lambda op: op.attempt).outcome_at


def _bounded(lines: list[str]) -> tuple[list[str], bool]:
    """The newest lines that fit ``ERROR_OUTPUT_CHARS``, each cut at ``ERROR_LINE_CHARS``."""
    kept: list[str] = []
    total = 0
    truncated = False
    for text in reversed(lines):
        cut = clean_line(text, ERROR_LINE_CHARS)
        truncated = truncated or cut != text
        if total + len(cut) > ERROR_OUTPUT_CHARS:
            truncated = True
            break
        kept.append(cut)
        total += len(cut)
    return list(reversed(kept)), truncated


def outcome_time(store: TenantStateStore, tenant_id: str, execution_id: str, attempt: int) -> datetime | None:
    """When the store recorded try ``attempt``'s outcome (the database's clock)."""
    for op in store.operations(tenant_id):
        if op.execution_id == execution_id and op.attempt == attempt:
            return op.outcome_at
    return None


__all__ = [
    "DEFAULT_FETCH_INTERVAL",
    "DEFAULT_LAST_LINES",
    "ContainerLogs",
    "outcome_time",
    "previous_read",
]
