"""The launch-to-running timer of a deferred try, as a StatsD server receives it.

A deferrable operator never polls: the trigger watches its units, and with ``wait_for``
"completion" the event reports them succeeded, a phase the blocking wait never times. The try
that resumes (``execute_complete``) times every unit the event reports running or succeeded
that nobody timed yet, so each unit generation still counts once. The time ends at the task's
``startedAt`` as ECS reports it, not at the resume: every task keeps running for several of the
trigger's polls after it started, and the test compares each timing with the data itself, the
task's ``startedAt`` (read back from moto) minus its ledger row's ``created_at`` (read from the
state store the run wrote to), never with the machine's clock.

Like ``test_metrics.py``: real UDP packets on a loopback port from Airflow's own StatsD client,
a ``dag.test()`` run in a child process, and the moto ECS endpoint standing in for the AWS
cloud. Every task is scripted pending, running for six describes, then exit 0, seen only by the
trigger.
"""

from __future__ import annotations

import time

import pytest

from tests.harness.ecs_script import TaskScript
from tests.harness.statsd import StatsdReceiver
from tests.integration.ecs_dags import ecs_dag

pytestmark = pytest.mark.airflow

DAG_ID = "compute_metrics_deferred"


def _received(statsd: StatsdReceiver, name: str, at_least: int) -> None:
    """Give the receiving thread a moment for the last UDP packets of the run (no assertion)."""
    give_up = time.monotonic() + 5
    while len(statsd.packets(name)) < at_least and time.monotonic() < give_up:
        time.sleep(0.05)


def test_a_deferred_try_times_launch_to_running_for_units_the_trigger_saw(
    airflow_env, ecs_env, statsd, state_store
) -> None:
    # Running for six describes: the trigger sees each task start, then polls it five more
    # times before it stops, so the resume comes well after every start.
    ecs_env.script_tasks(TaskScript(running=6), count=None)
    source = ecs_dag(
        DAG_ID,
        network_configuration=ecs_env.network_configuration,
        tenant_id="m-deferred",
        count=2,
        deferrable=True,
    )
    child = airflow_env.run_dag_in_subprocess(
        source,
        DAG_ID,
        env=statsd.airflow_env(),
    )
    child.wait(timeout=240)
    assert child.record.task_states() == {"provision": "success"}, child.log_text()[-4000:]
    result = child.record.xcom("provision")
    assert [u["status"] for u in result["units"]] == ["succeeded", "succeeded"]

    assert statsd.total("airflow.compute.launches", provider="ecs") == 2
    _received(statsd, "airflow.compute.launch_to_running", 2)
    timings = statsd.packets("airflow.compute.launch_to_running")
    # one per unit: timed on resume, and not again when the try settles
    assert len(timings) == 2
    assert {p.kind for p in timings} == {"ms"}
    assert {p.tags["provider"] for p in timings} == {"ecs"}
    assert all(p.value > 0 for p in timings)
    named = statsd.packets("airflow.compute.launch_to_running.ecs")
    assert len(named) == 2

    # Each timing is the task's start as ECS reports it minus its launch intent, not the
    # resume: the ledger row (written just before RunTask) and the task moto describes.
    rows = state_store.list_resources(tenant_id="m-deferred")
    assert len(rows) == 2
    expected = []
    for row in rows:
        task = ecs_env.describe_task(str(row.resource_id))  # stopped: describing changes nothing
        assert task["lastStatus"] == "STOPPED"
        expected.append((task["startedAt"] - row.created_at).total_seconds() * 1000)
    assert all(ms > 0 for ms in expected)
    assert sorted(p.value for p in timings) == pytest.approx(sorted(expected), abs=0.01)
    assert sorted(p.value for p in named) == pytest.approx(sorted(expected), abs=0.01)
