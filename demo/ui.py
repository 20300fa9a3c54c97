"""``--ui``: ``airflow standalone`` on the demo's home, so the web UI shows the runs just made.

The stack (api-server, scheduler, DAG processor, triggerer; LocalExecutor on the demo's
SQLite database) inherits the demo's environment: the same AIRFLOW_HOME and DAG folder, and
connections to the moto server and the Kubernetes cluster, which the demo process keeps
serving until Ctrl-C, so a DAG triggered from the UI runs against them too. The admin login is
fixed (``admin`` / ``admin``: a throwaway local stack) and the api-server listens on
127.0.0.1 only, on port 8080 or, when that is taken, a free one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.harness.ports import LOOPBACK, free_port, port_accepts

USERNAME = "admin"
PASSWORD = "admin"
START_TIMEOUT = 180.0


@dataclass
class Standalone:
    process: subprocess.Popen[bytes]
    base_url: str
    log_file: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            # its own process group: every component goes with it, by the group's id
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)


def start_standalone(home: Path) -> Standalone:
    port = 8080 if not port_accepts(8080) else free_port()
    base_url = f"http://{LOOPBACK}:{port}"
    passwords = home / "simple_auth_manager_passwords.json"
    passwords.write_text(json.dumps({USERNAME: PASSWORD}))
    env = {
        **os.environ,
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USERNAME}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__API__HOST": LOOPBACK,
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": base_url,
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base_url}/execution/",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        # the demo's modules (tests.harness) and the `airflow` command of this environment
        "PYTHONPATH": os.pathsep.join(filter(None, [str(Path.cwd()), os.environ.get("PYTHONPATH")])),
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    }
    log_file = home / "standalone.log"
    with open(log_file, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "airflow", "standalone"],
            env=env,
            cwd=home,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    stack = Standalone(process, base_url, log_file)
    try:
        _wait_until_healthy(stack)
    except Exception:
        stack.stop()
        raise
    return stack


def _wait_until_healthy(stack: Standalone) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if stack.process.poll() is not None:
            raise RuntimeError(
                f"airflow standalone exited with {stack.process.returncode}; see {stack.log_file}"
            )
        try:
            health = requests.get(f"{stack.base_url}/api/v2/monitor/health", timeout=5)
            body = health.json() if health.status_code == 200 else {}
        except (requests.RequestException, ValueError):
            body = {}
        parts = ("metadatabase", "scheduler", "triggerer")
        if body and all(body.get(part, {}).get("status") == "healthy" for part in parts):
            return
        time.sleep(1)
    raise TimeoutError(
        f"airflow standalone was not healthy within {START_TIMEOUT:.0f}s; see {stack.log_file}"
    )
