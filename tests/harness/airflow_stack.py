"""The full Airflow stack for the slow suite: ``airflow standalone`` and a small REST client.

    StandaloneStack   its own AIRFLOW_HOME, a PostgreSQL metadata DB (LocalExecutor with
                      several processes writing at once is what PostgreSQL is for), the
                      api-server on a free loopback port, small parallelism, every other port
                      moved off its default; started in its own process group and stopped by
                      that group's id; ``start_component("triggerer")`` starts one more
                      component (standalone never restarts one that died), stopped with it
    AirflowRestClient  JWT from ``/auth/token`` (the simple auth manager, limited per DAG by
                      ``dag_auth.DagLimitedAuthManager``; known admin password; a read-only
                      ``viewer`` and a ``limited`` user, who may edit ``LIMITED_DAGS`` only,
                      exist too),
                      then the public API v2: wait for a DAG to be parsed, trigger a run, wait
                      for it, list task instances with their try numbers, read XComs

The stack's environment is built here and handed to the child only; the test process keeps its
own (the SQLite home of ``airflow_env``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from tests.harness.ports import LOOPBACK, free_port, port_accepts, wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]
ADMIN_USER = "admin"
ADMIN_PASSWORD = "compute-admin"  # a throwaway local stack
#: a read-only user (the simple auth manager's viewer role), for authorization tests
VIEWER_USER = "viewer"
VIEWER_PASSWORD = "compute-viewer"
#: a user with the simple auth manager's "user" role (edits DAGs), but only on LIMITED_DAGS
LIMITED_USER = "limited"
LIMITED_PASSWORD = "compute-limited"
LIMITED_DAGS = ("compute_health_demo",)
START_TIMEOUT = 180.0
AUTH_MANAGER_VARIABLE = "COMPUTE_TEST_AUTH_MANAGER"
# ``airflow standalone`` forces the simple auth manager on its components (it rewrites
# AIRFLOW__CORE__AUTH_MANAGER in their environment). Every Airflow process imports
# $AIRFLOW_HOME/config/airflow_local_settings.py when it starts, before it creates its auth
# manager, and Airflow reads configuration from the environment when asked: so the components
# (the api-server among them) use the auth manager named in AUTH_MANAGER_VARIABLE.
_LOCAL_SETTINGS = f"""\
import os

if os.environ.get({AUTH_MANAGER_VARIABLE!r}):
    os.environ["AIRFLOW__CORE__AUTH_MANAGER"] = os.environ[{AUTH_MANAGER_VARIABLE!r}]
"""
FINISHED_RUN_STATES = frozenset({"success", "failed"})


@dataclass(frozen=True)
class StackInfo:
    base_url: str
    username: str
    password: str
    home: Path
    dags_folder: Path


class AirflowRestClient:
    """Just enough of the Airflow 3 public API (v2) for the slow tests."""

    def __init__(self, base_url: str, username: str, password: str) -> None:
        self.base_url = base_url.rstrip("/")
        self._credentials = {"username": username, "password": password}
        self._http = requests.Session()
        self._token_at = 0.0

    def _authorize(self) -> None:
        # tokens last 24 h by default; refresh every 10 minutes to stay clear of any setting
        if time.monotonic() - self._token_at < 600:
            return
        response = self._http.post(f"{self.base_url}/auth/token", json=self._credentials, timeout=30)
        response.raise_for_status()
        self._http.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
        self._token_at = time.monotonic()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        self._authorize()
        response = self._http.request(method, f"{self.base_url}/api/v2{path}", timeout=30, **kwargs)
        if response.status_code >= 400:
            raise RuntimeError(f"{method} {path} -> {response.status_code}: {response.text[:2000]}")
        return response.json() if response.content else None

    def wait_for_dag(self, dag_id: str, timeout: float = 120.0) -> dict[str, Any]:
        """Wait until the DAG processor has parsed ``dag_id``; fail early on its import error."""
        deadline = time.monotonic() + timeout
        while True:
            self._authorize()
            response = self._http.get(f"{self.base_url}/api/v2/dags/{dag_id}", timeout=30)
            if response.status_code == 200:
                dag: dict[str, Any] = response.json()
                return dag
            errors = self.request("GET", "/importErrors")["import_errors"]
            if errors:
                raise RuntimeError(f"DAG import errors: {json.dumps(errors)[:4000]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"DAG {dag_id} was not parsed within {timeout:.0f}s")
            time.sleep(1)

    def trigger(
        self, dag_id: str, conf: Mapping[str, Any] | None = None, logical_date: str | None = None
    ) -> str:
        self.request("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
        run = self.request(
            "POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": logical_date, "conf": dict(conf or {})}
        )
        run_id: str = run["dag_run_id"]
        return run_id

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        run: dict[str, Any] = self.request("GET", f"/dags/{dag_id}/dagRuns/{run_id}")
        return run

    def wait_for_run(
        self, dag_id: str, run_id: str, timeout: float = 180.0, states: Iterable[str] = FINISHED_RUN_STATES
    ) -> dict[str, Any]:
        wanted = set(states)
        deadline = time.monotonic() + timeout
        while True:
            run = self.dag_run(dag_id, run_id)
            if run["state"] in wanted:
                return run
            if time.monotonic() > deadline:
                raise TimeoutError(f"{dag_id}/{run_id} still {run['state']} after {timeout:.0f}s")
            time.sleep(0.5)

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """Every task instance of the run, each with ``task_id``, ``map_index``, ``state``,
        ``try_number``."""
        listed = self.request("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        instances: list[dict[str, Any]] = listed["task_instances"]
        return instances

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        entry = self.request(
            "GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}"
        )
        return entry["value"]


class StandaloneStack:
    def __init__(self, database_url: str, extra_env: Mapping[str, str] | None = None) -> None:
        self.home = Path(tempfile.mkdtemp(prefix="compute-airflow-standalone-"))
        self.dags_folder = self.home / "dags"
        self.dags_folder.mkdir()
        self.port = free_port()
        self.base_url = f"http://{LOOPBACK}:{self.port}"
        self.env = self._environment(database_url, dict(extra_env or {}))
        self._proc: subprocess.Popen[bytes] | None = None
        #: components started on their own after the stack (``start_component``)
        self._components: list[subprocess.Popen[bytes]] = []
        self.log_path = self.home / "standalone.log"

    def _environment(self, database_url: str, extra: dict[str, str]) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        (self.home / "config").mkdir(exist_ok=True)
        (self.home / "config" / "airflow_local_settings.py").write_text(_LOCAL_SETTINGS)
        passwords = self.home / "simple_auth_manager_passwords.json"
        passwords.write_text(
            json.dumps(
                {ADMIN_USER: ADMIN_PASSWORD, VIEWER_USER: VIEWER_PASSWORD, LIMITED_USER: LIMITED_PASSWORD}
            )
        )
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": "4",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                "AIRFLOW__CORE__FERNET_KEY": "8oEvcgbuJ6zd3CeIqN1ydzwq0qGDO4OcsHEZjP3JTLA=",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": (
                    f"{ADMIN_USER}:admin,{VIEWER_USER}:viewer,{LIMITED_USER}:user"
                ),
                # the simple auth manager, able to limit a user to some DAGs (tests/harness/dag_auth.py);
                # see _LOCAL_SETTINGS for why it is not AIRFLOW__CORE__AUTH_MANAGER itself
                AUTH_MANAGER_VARIABLE: "tests.harness.dag_auth.DagLimitedAuthManager",
                "COMPUTE_TEST_DAG_ACCESS": f"{LIMITED_USER}={'|'.join(LIMITED_DAGS)}",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database_url,
                "AIRFLOW__API__HOST": LOOPBACK,
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__API__BASE_URL": self.base_url,
                "AIRFLOW__API__SECRET_KEY": "compute-standalone-secret",
                "AIRFLOW__API_AUTH__JWT_SECRET": "compute-standalone-jwt-secret-of-enough-length",
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "2",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "2",
                "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
                "AIRFLOW__DAG_PROCESSOR__BUNDLE_REFRESH_CHECK_INTERVAL": "2",
                "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
                # standalone starts its components as `airflow ...` from PATH
                "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
            }
        )
        env.update(extra)
        return env

    def add_dag(self, source: Path) -> Path:
        target = self.dags_folder / source.name
        shutil.copyfile(source, target)
        return target

    def start(self) -> None:
        airflow = [sys.executable, "-m", "airflow"]
        migrate = subprocess.run(
            [*airflow, "db", "migrate"], env=self.env, capture_output=True, check=False, cwd=self.home
        )
        if migrate.returncode != 0:
            raise RuntimeError(
                f"airflow db migrate failed:\n{migrate.stdout[-4000:]!r}\n{migrate.stderr[-4000:]!r}"
            )
        with open(self.log_path, "wb") as log:
            # its own process group: stop() ends the whole tree (scheduler, workers, ...) by its id
            self._proc = subprocess.Popen(
                [*airflow, "standalone"],
                env=self.env,
                cwd=self.home,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            wait_until(self._api_ready, START_TIMEOUT, "the Airflow api-server")
        except Exception as exc:
            tail = self.log_tail()
            self.stop()
            raise RuntimeError(f"airflow standalone did not come up ({exc}); log tail:\n{tail}") from None

    @property
    def pid(self) -> int | None:
        """The ``airflow standalone`` process; its components are its children."""
        return self._proc.pid if self._proc is not None else None

    def start_component(
        self, command: str, extra_env: Mapping[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start one more component (``"triggerer"``: ``airflow standalone`` never restarts one
        that died) with the stack's environment; ``stop()`` ends it with the stack."""
        log = open(self.home / f"{command}-{len(self._components)}.log", "wb")  # noqa: SIM115
        process = subprocess.Popen(
            [sys.executable, "-m", "airflow", command],
            env={**self.env, **(extra_env or {})},
            cwd=self.home,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self._components.append(process)
        return process

    def _api_ready(self) -> bool:
        if self._proc is not None and self._proc.poll() is not None:
            raise RuntimeError(f"airflow standalone exited with {self._proc.returncode}")
        if not port_accepts(self.port):
            return False
        try:
            health = requests.get(f"{self.base_url}/api/v2/monitor/health", timeout=5)
        except requests.RequestException:
            return False
        if health.status_code != 200:
            return False
        body = health.json()
        return all(
            body.get(part, {}).get("status") == "healthy"
            for part in ("metadatabase", "scheduler", "triggerer")
        )

    def stop(self) -> None:
        for component in self._components:
            if component.poll() is None:
                os.killpg(component.pid, signal.SIGTERM)
                try:
                    component.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(component.pid, signal.SIGKILL)
                    component.wait(timeout=30)
        if self._proc is not None and self._proc.poll() is None:
            pgid = self._proc.pid  # start_new_session: the group id is the leader's pid
            os.killpg(pgid, signal.SIGTERM)
            try:
                self._proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(pgid, signal.SIGKILL)
                self._proc.wait(timeout=30)
            # children that outlived the leader
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
        shutil.rmtree(self.home, ignore_errors=True)

    def log_tail(self, chars: int = 6000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def info(self) -> StackInfo:
        return StackInfo(self.base_url, ADMIN_USER, ADMIN_PASSWORD, self.home, self.dags_folder)

    def client(self) -> AirflowRestClient:
        return AirflowRestClient(self.base_url, ADMIN_USER, ADMIN_PASSWORD)
