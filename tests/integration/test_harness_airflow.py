"""The Airflow harness: real ``dag.test()`` runs in an isolated AIRFLOW_HOME, in this process and in
a child process that can be killed, and the shared ``airflow standalone`` stack over REST."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.harness.airflow_dagrun import AirflowEnv
from tests.harness.airflow_env import AIRFLOW_HOME, TESTS_DAGS, StandaloneHandle

pytestmark = pytest.mark.airflow

FLAKY_DAG = """
from datetime import timedelta

import pendulum
from airflow.sdk import dag, get_current_context, task


@dag(dag_id="harness_flaky", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"))
def harness_flaky():
    @task(retries=1, retry_delay=timedelta(seconds=0))
    def flaky():
        if get_current_context()["ti"].try_number == 1:
            raise RuntimeError("first try fails")
        return "second try"

    flaky()


harness_flaky()
"""

WAITING_DAG = """
import time
from pathlib import Path

import pendulum
from airflow.sdk import dag, task

GO = Path({go!r})


@dag(dag_id="harness_waiting", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"))
def harness_waiting():
    @task
    def wait_for_go():
        while not GO.exists():
            time.sleep(0.1)
        return "went"

    wait_for_go()


harness_waiting()
"""


def test_process_airflow_home_is_isolated(airflow_home: Path) -> None:
    from airflow.configuration import conf

    assert os.environ["AIRFLOW_HOME"] == str(airflow_home) == str(AIRFLOW_HOME)
    assert conf.get("database", "sql_alchemy_conn") == f"sqlite:///{airflow_home}/airflow.db"
    assert conf.get("core", "dags_folder") == str(airflow_home / "dags")
    assert not conf.getboolean("core", "load_examples")


def test_run_dag_in_process_and_read_its_xcom(airflow_env: AirflowEnv) -> None:
    run = airflow_env.run_dag(TESTS_DAGS / "harness_hello.py", "harness_hello", conf={"who": "compute"})

    assert run.state() == "success"
    assert run.task_states() == {"hello": "success"}
    assert run.try_numbers() == {"hello": 1}
    assert run.xcom("hello") == {"greeting": "hello", "conf": {"who": "compute"}}


def test_retries_show_in_try_numbers(airflow_env: AirflowEnv) -> None:
    run = airflow_env.run_dag(FLAKY_DAG, "harness_flaky")

    assert run.state() == "success"
    assert run.try_numbers() == {"flaky": 2}
    [first] = run.history("flaky")
    assert (first.try_number, first.state) == (1, "failed")
    assert run.xcom("flaky") == "second try"


def test_killed_subprocess_run_is_resumed_by_a_rerun_of_the_same_logical_date(
    airflow_env: AirflowEnv, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    source = WAITING_DAG.format(go=str(go))
    when = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)

    child = airflow_env.run_dag_in_subprocess(source, "harness_waiting", logical_date=when)
    child.record.wait_for_task_state("wait_for_go", {"running"}, timeout=120)
    child.kill()
    assert child.record.state() == "running"  # nobody was left to finish it

    before = child.record.task_instances()
    go.touch()
    rerun = airflow_env.run_dag(source, "harness_waiting", logical_date=when)

    assert rerun == child.record  # same dag id and run id
    assert rerun.state() == "success"
    # dag.test() replaces the run of that logical date: the same run id, fresh task instances
    assert before[0].state == "running"
    assert rerun.try_numbers() == {"wait_for_go": 1}
    assert rerun.history("wait_for_go") == []
    assert rerun.xcom("wait_for_go") == "went"


@pytest.mark.slow
def test_standalone_stack_runs_a_dag_triggered_over_rest(airflow_standalone: StandaloneHandle) -> None:
    client = airflow_standalone.client
    client.wait_for_dag("harness_hello")

    run_id = client.trigger("harness_hello", conf={"who": "rest"})
    run = client.wait_for_run("harness_hello", run_id)

    assert run["state"] == "success"
    [instance] = client.task_instances("harness_hello", run_id)
    assert (instance["task_id"], instance["state"], instance["try_number"]) == ("hello", "success", 1)
    assert client.xcom("harness_hello", run_id, "hello") == {"greeting": "hello", "conf": {"who": "rest"}}
