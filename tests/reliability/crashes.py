"""Killing the process that runs a compute task at a chosen step of the lifecycle, for real.

Step            where the kill lands, told by the provider request the child just got an
                answer to (the proxy's ``after_forward`` hook runs once that answer is sent):

    before_launch   the reconcile's first look-up (ECS ListTasks, a pod list): the try has
                    begun in the state store, nothing is launched yet
    launch_unrecorded
                    the first launch request (RunTask, a pod create): the provider did the
                    work, the ledger has not recorded it
    waiting         the first status read after the launch (DescribeTasks, a pod list or
                    the trigger's list and watch)
    outcome         the last stop of a rollback (StopTask, a pod delete): the try is
                    settling its failure, the ledger still says ``stopping``

KillSwitch      an ``after_forward`` hook on a fault proxy that SIGKILLs the child's process
                group the first time its step's request has been answered, and remembers
                which request that was
child_database  a copy of the session's migrated Airflow metadata DB for one child, so that
                several ``dag.test()`` children run at once without sharing a SQLite file
"""

from __future__ import annotations

import enum
import re
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.harness.proxy import FaultProxy, RequestInfo


class Step(enum.StrEnum):
    BEFORE_LAUNCH = "before_launch"
    LAUNCH_UNRECORDED = "launch_unrecorded"
    WAITING = "waiting"
    OUTCOME = "outcome"


_POD_LIST = re.compile(r"/namespaces/[^/]+/pods\?")
_POD_CREATE = re.compile(r"/namespaces/[^/]+/pods$")
_POD_DELETE = re.compile(r"/namespaces/[^/]+/pods/[^/?]+")


def _is_launch(provider: str, info: RequestInfo) -> bool:
    if provider == "ecs":
        return info.operation == "RunTask"
    return info.method == "POST" and bool(_POD_CREATE.search(info.path))


def _is_read(provider: str, info: RequestInfo) -> bool:
    if provider == "ecs":
        return info.operation in ("ListTasks", "DescribeTasks")
    return info.method == "GET" and bool(_POD_LIST.search(info.path))


def _is_stop(provider: str, info: RequestInfo) -> bool:
    if provider == "ecs":
        return info.operation == "StopTask"
    return info.method == "DELETE" and bool(_POD_DELETE.search(info.path))


class KillSwitch:
    """SIGKILL the child once the request of ``step`` has been answered.

    ``stops`` is how many stop requests the rollback of the outcome step sends: the kill comes
    after the last, so the provider has done all of them and the ledger recorded none.
    """

    def __init__(self, proxy: FaultProxy, provider: str, step: Step, *, stops: int = 1) -> None:
        self.provider = provider
        self.step = step
        self.stops = stops
        self.fired: RequestInfo | None = None
        self._kill: Callable[[], None] | None = None
        self._launched = False
        self._stopped = 0
        self._lock = threading.Lock()
        proxy.after_forward(self._seen, times=None)

    def arm(self, kill: Callable[[], None]) -> None:
        self._kill = kill

    def _due(self, info: RequestInfo) -> bool:
        if self.step is Step.BEFORE_LAUNCH:
            return _is_read(self.provider, info)
        if self.step is Step.LAUNCH_UNRECORDED:
            return _is_launch(self.provider, info)
        if self.step is Step.WAITING:
            if _is_launch(self.provider, info):
                self._launched = True
                return False
            return self._launched and _is_read(self.provider, info)
        if _is_stop(self.provider, info):
            self._stopped += 1
        return self._stopped >= self.stops

    def _seen(self, info: RequestInfo, status: int) -> None:
        with self._lock:
            if self.fired is not None or self._kill is None or not self._due(info):
                return
            self.fired = info
            self._kill()


def child_database(airflow_home: Path, target: Path) -> str:
    """A copy of the session's Airflow metadata DB at ``target``; its SQLAlchemy URL."""
    source = sqlite3.connect(airflow_home / "airflow.db")
    copy = sqlite3.connect(target)
    try:
        source.backup(copy)
    finally:
        copy.close()
        source.close()
    return f"sqlite:///{target}"


def kill_group(child: Any) -> Callable[[], None]:
    """The kill a switch fires: the child's whole process group, SIGKILL, no waiting here
    (the proxy's thread must not block); the test waits for the child."""
    import os
    import signal

    def kill() -> None:
        if child.popen.poll() is None:
            os.killpg(child.popen.pid, signal.SIGKILL)

    return kill
