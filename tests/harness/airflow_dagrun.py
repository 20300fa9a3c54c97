"""Running DAGs with ``dag.test()`` in an isolated AIRFLOW_HOME, and reading what they left.

    AirflowEnv      writes DAG files into the home's DAG bundle folder and runs them:
                    ``run_dag`` in this process, ``run_dag_in_subprocess`` in a child process
                    (a test may SIGKILL it and rerun the same logical date: same run id)
    DagRunRecord    one run by (dag_id, run_id), read from the metadata DB on demand: run state,
                    task states, try numbers, XComs; ``wait_for_task_state`` for crash tests
    DagProcess      the child process of ``run_dag_in_subprocess``

Airflow 3.3 specifics handled here:
  * ``dag.test()`` only runs DAGs that sit in a file of a DAG bundle (it syncs the bundle to the
    DB first; a DAG defined in the test module fails with "dag is not serialized"), so the DAG
    source is written to ``AIRFLOW_HOME/dags`` and loaded from there with ``BundleDagBag``.
  * the run id is ``manual__<run_after>``, not the logical date: ``run_after`` is pinned to the
    logical date so a rerun of the same logical date gets the same run id. ``dag.test`` deletes
    the earlier run of that logical date first (task instances, XComs and all) and starts a
    fresh one: after a killed run, the rerun's task instances start again at try 1.
  * the first ``dag.test()`` in a process spends several seconds starting the in-process
    execution API; later ones take tens of milliseconds.

Run this module (``python -m tests.harness.airflow_dagrun FILE DAG_ID LOGICAL_DATE [CONF]``) to
run one DAG file the way ``run_dag`` does; ``run_dag_in_subprocess`` does exactly that.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
BUNDLE_NAME = "dags-folder"  # the name of Airflow's default local DAG bundle


def run_id_for(logical_date: datetime) -> str:
    """The run id ``dag.test`` gives a run whose run_after is its logical date."""
    return f"manual__{logical_date.isoformat()}"


def load_dag(dag_file: Path, dag_id: str, bundle_path: Path) -> Any:
    """Parse ``dag_file`` the way the DAG processor does and return the DAG ``dag_id``."""
    from airflow.dag_processing.dagbag import BundleDagBag

    bag = BundleDagBag(dag_folder=str(dag_file), bundle_path=str(bundle_path), bundle_name=BUNDLE_NAME)
    if bag.import_errors:
        raise RuntimeError(f"DAG file {dag_file} failed to import: {bag.import_errors}")
    if dag_id not in bag.dags:
        raise KeyError(f"{dag_file} defines {sorted(bag.dags)}, not {dag_id!r}")
    return bag.dags[dag_id]


def run_dag_test(dag: Any, logical_date: datetime, conf: dict[str, Any] | None) -> str:
    """``dag.test()`` with run_after pinned to the logical date; returns the run id."""
    dag_run = dag.test(logical_date=logical_date, run_after=logical_date, run_conf=conf)
    run_id: str = dag_run.run_id
    return run_id


@dataclass(frozen=True)
class TaskSnapshot:
    task_id: str
    map_index: int
    state: str | None
    try_number: int
    max_tries: int


@dataclass(frozen=True)
class DagRunRecord:
    """A DAG run in the metadata DB; every method reads the DB afresh."""

    dag_id: str
    run_id: str

    def state(self) -> str | None:
        from airflow.models.dagrun import DagRun
        from airflow.utils.session import create_session

        with create_session() as session:
            run = session.query(DagRun).filter_by(dag_id=self.dag_id, run_id=self.run_id).one_or_none()
            return None if run is None else _plain(run.state)

    def task_instances(self) -> list[TaskSnapshot]:
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.session import create_session

        with create_session() as session:
            rows = session.query(TaskInstance).filter_by(dag_id=self.dag_id, run_id=self.run_id).all()
            return sorted(
                (
                    TaskSnapshot(r.task_id, r.map_index, _plain(r.state), r.try_number, r.max_tries)
                    for r in rows
                ),
                key=lambda s: (s.task_id, s.map_index),
            )

    def history(self, task_id: str, map_index: int = -1) -> list[TaskSnapshot]:
        """Earlier attempts Airflow archived (``task_instance_history``), oldest first: a failed
        try that was retried, or a cleared one."""
        from airflow.models.taskinstancehistory import TaskInstanceHistory
        from airflow.utils.session import create_session

        with create_session() as session:
            rows = (
                session.query(TaskInstanceHistory)
                .filter_by(dag_id=self.dag_id, run_id=self.run_id, task_id=task_id, map_index=map_index)
                .order_by(TaskInstanceHistory.try_number)
                .all()
            )
            return [
                TaskSnapshot(r.task_id, r.map_index, _plain(r.state), r.try_number, r.max_tries) for r in rows
            ]

    def task_states(self) -> dict[str, str | None]:
        """``{task_id: state}``; mapped instances appear as ``task_id[index]``."""
        return {_label(s): s.state for s in self.task_instances()}

    def try_numbers(self) -> dict[str, int]:
        return {_label(s): s.try_number for s in self.task_instances()}

    def xcom(self, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session

        with create_session() as session:
            row = (
                session.query(XComModel)
                .filter_by(
                    dag_id=self.dag_id, run_id=self.run_id, task_id=task_id, key=key, map_index=map_index
                )
                .one_or_none()
            )
            if row is None:
                raise KeyError(f"no XCom {key!r} from {task_id}[{map_index}] in {self.run_id}")
            return XComModel.deserialize_value(row)

    def wait_for_task_state(
        self, task_id: str, states: Iterable[str], timeout: float = 60.0, map_index: int = -1
    ) -> str:
        wanted = set(states)
        deadline = time.monotonic() + timeout
        while True:
            for snapshot in self.task_instances():
                if (snapshot.task_id, snapshot.map_index) == (
                    task_id,
                    map_index,
                ) and snapshot.state in wanted:
                    return snapshot.state  # type: ignore[return-value]
            if time.monotonic() > deadline:
                raise TimeoutError(f"{task_id} never reached {sorted(wanted)}: {self.task_states()}")
            time.sleep(0.1)


def _plain(state: Any) -> str | None:
    return None if state is None else str(getattr(state, "value", state))


def _label(snapshot: TaskSnapshot) -> str:
    return snapshot.task_id if snapshot.map_index < 0 else f"{snapshot.task_id}[{snapshot.map_index}]"


@dataclass
class DagProcess:
    """A DAG run in a child process, in its own process group."""

    popen: subprocess.Popen[bytes]
    record: DagRunRecord
    log_path: Path

    def wait(self, timeout: float = 120.0) -> int:
        return self.popen.wait(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL the child and everything it started, as a crashed worker host would."""
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=30)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


class AirflowEnv:
    """One test's view of the isolated AIRFLOW_HOME; removes the DAG files it wrote."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.dags_folder = home / "dags"
        self._written: list[Path] = []
        self._children: list[DagProcess] = []

    def write_dag(self, source: str | Path, dag_id: str) -> Path:
        """Put a DAG into the bundle folder: ``source`` is a file (Path) or its text (str)."""
        if isinstance(source, Path):
            target = self.dags_folder / source.name
            text = source.read_text()
        else:
            target = self.dags_folder / f"{dag_id}.py"
            text = source
        target.write_text(text)
        if target not in self._written:
            self._written.append(target)
        return target

    def run_dag(
        self,
        source: str | Path,
        dag_id: str,
        conf: dict[str, Any] | None = None,
        logical_date: datetime | None = None,
    ) -> DagRunRecord:
        """Run the DAG to completion in this process (its tasks run here too)."""
        dag_file = self.write_dag(source, dag_id)
        dag = load_dag(dag_file, dag_id, self.dags_folder)
        run_id = run_dag_test(dag, logical_date or _now(), conf)
        return DagRunRecord(dag_id, run_id)

    def run_dag_in_subprocess(
        self,
        source: str | Path,
        dag_id: str,
        conf: dict[str, Any] | None = None,
        logical_date: datetime | None = None,
        env: dict[str, str] | None = None,
    ) -> DagProcess:
        """Start the run in a child process and return at once; ``.wait()`` or ``.kill()`` it.
        The child inherits this process's environment (connections, AIRFLOW_HOME) plus ``env``."""
        dag_file = self.write_dag(source, dag_id)
        when = logical_date or _now()
        log_path = self.home / "logs" / f"subprocess-{dag_id}-{len(self._children)}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "tests.harness.airflow_dagrun", str(dag_file), dag_id, when.isoformat()]
        if conf is not None:
            argv.append(json.dumps(conf))
        child_env = {**os.environ, **(env or {})}
        child_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), child_env.get("PYTHONPATH")]))
        with open(log_path, "wb") as log:
            popen = subprocess.Popen(
                argv,
                cwd=REPO_ROOT,
                env=child_env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        process = DagProcess(popen, DagRunRecord(dag_id, run_id_for(when)), log_path)
        self._children.append(process)
        return process

    def cleanup(self) -> None:
        for child in self._children:
            child.kill()
        for path in self._written:
            path.unlink(missing_ok=True)


def _now() -> datetime:
    return datetime.now(UTC)


def main(argv: list[str]) -> int:
    dag_file, dag_id, logical_date = Path(argv[0]), argv[1], datetime.fromisoformat(argv[2])
    conf = json.loads(argv[3]) if len(argv) > 3 else None
    dag = load_dag(dag_file, dag_id, dag_file.parent)
    run_id = run_dag_test(dag, logical_date, conf)
    state = DagRunRecord(dag_id, run_id).state()
    print(f"dag run {run_id} finished: {state}", flush=True)
    return 0 if state == "success" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
