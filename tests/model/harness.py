"""How the lifecycle model runs a try the way Airflow does, one provider or store call at a time.

    TaskInstance   what the lifecycle reads of Airflow's task instance: its DAG run, its try
                   number (Airflow's: it restarts at 1 in every DAG run) and the XCom it pushes
    ModelTry       one try as the *model* sees it, independently of the store: the process that
                   began it (a resumption carries its deferred try on), when the store accepted
                   its begin (``began``: the newest begin is the newest try, every older one a
                   zombie from then on), its last sign of life (a write the store accepted from
                   it) and, while deferred, the deadline it is alive until
    Process        one worker process running a try: ``execute`` (a new try, or the same try
                   run twice) or ``execute_complete`` (a deferred try resumed), then Airflow's
                   decision (the retry or failure callback). It runs in its own greenlet and
                   stops before every call to the store or the backend (a *gate*), so the model
                   decides what happens next: let it go on, crash it there (the try just stops),
                   raise the task's ``execution_timeout`` there, or run another process first
    Gated          the store or backend a process sees: every public call passes a gate first,
                   and what the store accepted is written down on the process's ``ModelTry``
    ModelClock     the one clock of the model: ``datetime.now`` in ``operators/base.py`` and
                   ``lifecycle/wait.py``, ``time.sleep`` in the blocking wait, the heartbeat's
                   ``time.monotonic`` (``lifecycle/tries.py``) and the database's clock
                   (``state/sql.py``'s ``database_now``). It moves only when a try sleeps
                   between polls, a trigger reaches its deadline or the model lets time pass
                   before a maintenance run. Time is simulated because a model cannot wait for
                   real minutes; everything else (the operator, the store on SQLite, the
                   reconciler) is the real code

A ``Crash`` is a ``BaseException``: nothing in the lifecycle catches it, exactly like a killed
worker that runs no more code.
"""

from __future__ import annotations

import itertools
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import greenlet

try:
    from airflow.sdk.exceptions import AirflowTaskTimeout, TaskDeferred
except ImportError:  # Airflow < 3.2
    from airflow.exceptions import AirflowTaskTimeout, TaskDeferred  # type: ignore[no-redef]

from airflow_compute_provider.lifecycle import tries as tries_module
from airflow_compute_provider.lifecycle import wait as wait_module
from airflow_compute_provider.operators import base as base_module
from airflow_compute_provider.state import sql as sql_module

#: the store's methods whose success is a try's sign of life (each names its try, ``by=``)
SIGNS_OF_LIFE = frozenset(
    {
        "begin_operation",
        "heartbeat",
        "record_intent",
        "record_resources",
        "record_outcome",
        "finish_operation",
    }
)


class Crash(BaseException):
    """The worker died here: no more code of this process runs."""


class ModelClock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=max(0.0, seconds))

    def at_least(self, moment: datetime) -> None:
        self.now = max(self.now, moment)


CLOCK = ModelClock()


class _ModelDatetime(datetime):
    @classmethod
    def now(cls, tz: Any = None) -> Any:
        return CLOCK.now if tz is not None else CLOCK.now.replace(tzinfo=None)


def _sleep(seconds: float) -> None:
    gate("sleep")
    CLOCK.advance(seconds)


def _database_now(_conn: Any) -> datetime:
    return CLOCK.now


def _monotonic() -> float:
    return CLOCK.now.timestamp()


@contextmanager
def model_time() -> Iterator[ModelClock]:
    """The lifecycle, its heartbeat and the store read the model's clock while this is open."""
    saved = (
        base_module.datetime,
        wait_module.datetime,
        wait_module.time,
        tries_module.time,
        sql_module.database_now,
    )
    base_module.datetime = _ModelDatetime  # type: ignore[misc]
    wait_module.datetime = _ModelDatetime  # type: ignore[misc]
    wait_module.time = types.SimpleNamespace(sleep=_sleep)  # type: ignore[assignment]
    tries_module.time = types.SimpleNamespace(monotonic=_monotonic)  # type: ignore[assignment]
    sql_module.database_now = _database_now  # type: ignore[assignment]
    try:
        yield CLOCK
    finally:
        (
            base_module.datetime,  # type: ignore[misc]
            wait_module.datetime,  # type: ignore[misc]
            wait_module.time,  # type: ignore[assignment]
            tries_module.time,  # type: ignore[assignment]
            sql_module.database_now,  # type: ignore[assignment]
        ) = saved


def gate(label: str) -> None:
    """Inside a process: hand control to the model until it says go on (or raises here)."""
    current = greenlet.getcurrent()
    if isinstance(current, _ProcessGreenlet):
        current.process.at = label
        current.parent.switch(("gate", label))


_begins = itertools.count(1)


@dataclass(eq=False)
class ModelTry:
    """One try, as the model tracks it (see the module docstring)."""

    run: int
    try_number: int
    #: the order of the store's accepted begin among every try's (``None``: not begun)
    began: int | None = None
    #: the attempt number the store gave it
    attempt: int | None = None
    #: the last write of this try the store accepted (on the model's clock)
    last_sign: datetime | None = None
    #: a deferred try's deadline, which it said it is alive until
    live_until: datetime | None = None

    def accepted(self, write: str, kwargs: dict[str, Any], result: Any) -> None:
        """The store accepted ``write`` from this try: a sign of life (and a begin, a number)."""
        if write == "begin_operation":
            self.began = next(_begins)  # the store now knows this try as the newest
            self.attempt = result.attempt
        self.last_sign = CLOCK.now
        if kwargs.get("live_until") is not None:
            self.live_until = kwargs["live_until"]

    def idle(self, now: datetime) -> timedelta | None:
        """How long the try showed no sign of life; ``None`` if it never began."""
        stamps = [s for s in (self.last_sign, self.live_until) if s is not None]
        return now - max(stamps) if stamps else None


class Gated:
    """``target`` with a gate before every public method call; ``after(process, name, kwargs,
    result)`` is told of every call a process made that returned (the model's bookkeeping)."""

    def __init__(self, target: Any, name: str, after: Callable[..., None] | None = None) -> None:
        self._target = target
        self._name = name
        self._after = after

    def __getattr__(self, attr: str) -> Any:
        value = getattr(self._target, attr)
        if attr.startswith("_") or not callable(value):
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            gate(f"{self._name}.{attr}")
            result = value(*args, **kwargs)
            current = greenlet.getcurrent()
            if isinstance(current, _ProcessGreenlet):
                if self._name == "store" and attr in SIGNS_OF_LIFE:
                    current.process.model_try.accepted(attr, kwargs, result)
                if self._after is not None:
                    self._after(current.process, f"{self._name}.{attr}", kwargs, result)
            return result

        return call


class _ProcessGreenlet(greenlet.greenlet):
    process: Process


class TaskInstance:
    """What the lifecycle reads of Airflow's task instance, and the XCom it pushes."""

    dag_id = "model"
    task_id = "model"
    map_index = -1

    def __init__(self, run: int, try_number: int) -> None:
        self.run_id = f"run-{run}"
        self.try_number = try_number
        self.max_tries = 100
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


class Process:
    """One worker process running one try (or its resumption), then Airflow's decision.

    ``result`` once it ends: ``("succeeded", xcom)``, ``("deferred", trigger)``,
    ``("failed", exception)`` or ``("crashed", where)``; ``callback_error`` is what the retry /
    failure callback raised, if anything (Airflow logs it and goes on).
    """

    def __init__(
        self,
        pid: int,
        model_try: ModelTry,
        op: Any,
        body: Callable[[dict[str, Any]], Any],
        will_retry: bool,
    ) -> None:
        self.pid = pid
        self.model_try = model_try
        self.op = op
        self.will_retry = will_retry
        self.ti = TaskInstance(model_try.run, model_try.try_number)
        self.context: dict[str, Any] = {"ti": self.ti, "task": op}
        self.at = "start"
        self.in_execute = True
        self.result: tuple[str, Any] | None = None
        self.callback_error: BaseException | None = None
        #: a resume with ``TaskDeferralTimeout`` (set by the model)
        self.deferral_timeout = False
        self._body = body
        self._greenlet = _ProcessGreenlet(self._run)
        self._greenlet.process = self

    @property
    def alive(self) -> bool:
        return self.result is None

    def _run(self) -> None:
        try:
            value = self._body(self.context)
        except TaskDeferred as deferred:
            self.result = ("deferred", deferred.trigger)
            return
        except Crash:
            self.result = ("crashed", self.at)
            return
        except BaseException as exc:
            self._decide(exc)
            return
        self.result = ("succeeded", value)

    def _decide(self, exc: BaseException) -> None:
        """Airflow's decision, then the callback the operator added (``decisions.py``)."""
        self.in_execute = False
        self.context["exception"] = exc
        aborted = type(exc).__name__ == "ComputeTaskAborted"
        will_retry = self.will_retry and not aborted
        try:
            self.op.finish_after_decision(self.context, will_retry=will_retry)
        except Crash:
            self.result = ("crashed", self.at)
            return
        except Exception as callback_error:  # Airflow logs a failing callback and goes on
            self.callback_error = callback_error
        self.result = ("failed", exc)

    def step(self) -> None:
        """Run to the next gate (or to the end)."""
        if self.alive:
            self._greenlet.switch()

    def throw(self, exc: BaseException) -> None:
        """Raise ``exc`` where the process waits (it must have started)."""
        if self.alive and self._greenlet:
            self._greenlet.throw(exc)

    def kill(self) -> None:
        if not self.alive:
            return
        if not self._greenlet:  # never started: nothing ran
            self.result = ("crashed", "start")
            return
        self.throw(Crash())


__all__ = [
    "CLOCK",
    "AirflowTaskTimeout",
    "Crash",
    "Gated",
    "ModelTry",
    "Process",
    "TaskInstance",
    "gate",
    "model_time",
]
