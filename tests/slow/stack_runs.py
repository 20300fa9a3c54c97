"""What the slow tests need on top of the ``airflow_standalone`` fixture, in one place.

    StackWorkflows   one test's view of the shared stack: its ``aws_default`` connection pointed
                     at a fault proxy in front of this test's moto, DAG runs triggered and
                     awaited over REST, and the stack's compute state store
    StackRun         one finished DAG run: state, task instances, tries, XComs and task logs,
                     all through the public REST API (v2); the policy's stored decisions from
                     the metadata database (see ``policy_decisions``)

The stack runs its own scheduler, workers and triggerer: environment variables of this process
never reach them, so the connection is written through the REST API. moto runs in this process,
so scripting task outcomes (``ecs_env``) works as in every other ECS test.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from airflow_compute_provider.state.sql import SqlTenantStateStore
from tests.harness.airflow_env import StandaloneHandle
from tests.harness.airflow_stack import FINISHED_RUN_STATES, AirflowRestClient
from tests.harness.ecs import FAKE_CREDENTIALS, REGION, EcsEnv
from tests.harness.proxy import FaultProxy

DAGS = Path(__file__).resolve().parent / "dags"
#: botocore requests per ECS call: fixed, so a test knows how many throttles fail one try
BOTOCORE_ATTEMPTS = 2


@dataclass(frozen=True)
class PolicyDecision:
    """What Airflow stored for one failed try after asking the task's retry policy."""

    try_number: int
    state: str
    retry_delay: float | None
    retry_reason: str | None


@dataclass
class StackRun:
    client: AirflowRestClient
    dag_id: str
    run_id: str
    state: str
    metadata_url: str

    def _path(self, task_id: str = "") -> str:
        path = f"/dags/{self.dag_id}/dagRuns/{self.run_id}/taskInstances"
        return f"{path}/{task_id}" if task_id else path

    def task_states(self) -> dict[str, str | None]:
        return {ti["task_id"]: ti["state"] for ti in self.client.task_instances(self.dag_id, self.run_id)}

    def tries(self, task_id: str) -> list[dict[str, Any]]:
        """Every try of the task, oldest first (the tries endpoint: history plus the current)."""
        listed = self.client.request("GET", f"{self._path(task_id)}/tries")["task_instances"]
        return sorted(listed, key=lambda t: int(t["try_number"]))

    def xcom(self, task_id: str, key: str = "return_value") -> Any:
        return self.client.xcom(self.dag_id, self.run_id, task_id, key)

    def log_events(self, task_id: str, try_number: int) -> list[dict[str, Any]]:
        """The task log of one try as structured events (worker and triggerer alike)."""
        answer = self.client.request(
            "GET",
            f"{self._path(task_id)}/logs/{try_number}",
            params={"full_content": "true"},
            headers={"Accept": "application/json"},
        )
        content = answer["content"]
        return [event if isinstance(event, dict) else {"event": str(event)} for event in content]

    def logged(self, task_id: str, try_number: int, event: str) -> list[dict[str, Any]]:
        """The events of one try's log whose message is ``event``."""
        return [e for e in self.log_events(task_id, try_number) if e.get("event") == event]

    def policy_decisions(self, task_id: str) -> list[PolicyDecision]:
        """The retry delay and reason Airflow stored for each try of ``task_id``.

        Airflow 3.3 keeps them with the task instance (``retry_delay_override``,
        ``retry_reason``) but its public REST API does not return them, so they are read from
        the stack's metadata database: the same rows the scheduler acts on.
        """
        query = sa.text(
            "SELECT try_number, state, retry_delay_override, retry_reason FROM task_instance_history "
            "WHERE dag_id = :dag AND run_id = :run AND task_id = :task "
            "UNION ALL "
            "SELECT try_number, state, retry_delay_override, retry_reason FROM task_instance "
            "WHERE dag_id = :dag AND run_id = :run AND task_id = :task ORDER BY try_number"
        )
        engine = sa.create_engine(self.metadata_url)
        try:
            with engine.connect() as conn:
                rows = conn.execute(query, {"dag": self.dag_id, "run": self.run_id, "task": task_id}).all()
        finally:
            engine.dispose()
        return [PolicyDecision(int(r[0]), str(r[1]), r[2], r[3]) for r in rows]


class StackWorkflows:
    """One test's use of the shared stack (see the module docstring)."""

    def __init__(self, stack: StandaloneHandle, ecs_env: EcsEnv, proxy: FaultProxy) -> None:
        self.stack = stack
        self.client = stack.client
        self.ecs_env = ecs_env
        self.proxy = proxy
        self.home = stack.stack.home
        self.metadata_url = stack.stack.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        self._store: SqlTenantStateStore | None = None

    def point_aws_connection_at(self, endpoint_url: str) -> None:
        """Write the stack's ``aws_default``: this test's endpoint, fake credentials, and a fixed
        number of botocore attempts per call."""
        extra = {
            "endpoint_url": endpoint_url,
            "region_name": REGION,
            "config_kwargs": {"retries": {"mode": "standard", "total_max_attempts": BOTOCORE_ATTEMPTS}},
        }
        connection = {
            "connection_id": "aws_default",
            "conn_type": "aws",
            "login": FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            "password": FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            "extra": json.dumps(extra),
        }
        answer = self.client.request(
            "PATCH",
            "/connections",
            json={
                "actions": [
                    {"action": "create", "entities": [connection], "action_on_existence": "overwrite"}
                ]
            },
        )
        if answer["create"]["errors"]:
            raise RuntimeError(f"could not write aws_default: {answer['create']['errors']}")

    def start(self, dag_id: str) -> str:
        """Trigger ``dag_id`` with this test's subnet and security group in its conf."""
        network = self.ecs_env.network_configuration["awsvpcConfiguration"]
        conf = {"subnet_id": network["subnets"][0], "security_group_id": network["securityGroups"][0]}
        return self.client.trigger(dag_id, conf=conf)

    def wait(
        self,
        dag_id: str,
        run_id: str,
        *,
        each_poll: Callable[[], object] | None = None,
        timeout: float = 150.0,
    ) -> StackRun:
        """Wait until the run finished; ``each_poll`` is called between polls meanwhile."""
        deadline = time.monotonic() + timeout
        while True:
            run = self.client.dag_run(dag_id, run_id)
            if run["state"] in FINISHED_RUN_STATES:
                return StackRun(self.client, dag_id, run_id, run["state"], self.metadata_url)
            if time.monotonic() > deadline:
                raise TimeoutError(f"{dag_id}/{run_id} still {run['state']} after {timeout:.0f}s")
            if each_poll is not None:
                each_poll()
            time.sleep(0.2)

    def run(self, dag_id: str) -> StackRun:
        return self.wait(dag_id, self.start(dag_id))

    def task_instance(self, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
        """A task instance as it is now (while the run goes on)."""
        instance: dict[str, Any] = self.client.request(
            "GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"
        )
        return instance

    def store(self) -> SqlTenantStateStore:
        """The state store the stack's workers write: the embedded SQLite file of its home
        (LocalExecutor runs every task on this machine)."""
        if self._store is None:
            self._store = SqlTenantStateStore(f"sqlite:///{self.home}/compute_state.db")
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
