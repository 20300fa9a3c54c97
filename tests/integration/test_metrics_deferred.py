"""The launch-to-running timer of a deferred try, as a StatsD server receives it.

A deferrable operator never polls: the trigger watches its units, and with ``wait_for``
"completion" the event reports them succeeded, a phase the blocking wait never times. The try
that resumes (``execute_complete``) times every unit the event reports running or succeeded
that nobody timed yet, so each unit generation still counts once.

Like ``test_metrics.py``: real UDP packets on a loopback port from Airflow's own StatsD client,
a ``dag.test()`` run in a child process, and the moto ECS endpoint standing in for the AWS
cloud. Every task runs the default script (pending, running, then exit 0), seen only by the
trigger.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.harness.ports import LOOPBACK
from tests.integration.ecs_dags import ecs_dag
from tests.integration.test_metrics import StatsdReceiver

pytestmark = pytest.mark.airflow

DAG_ID = "compute_metrics_deferred"


@pytest.fixture
def statsd() -> Iterator[StatsdReceiver]:
    receiver = StatsdReceiver()
    yield receiver
    receiver.close()


def _received(statsd: StatsdReceiver, name: str, at_least: int) -> None:
    """Give the receiving thread a moment for the last UDP packets of the run (no assertion)."""
    give_up = time.monotonic() + 5
    while len(statsd.packets(name)) < at_least and time.monotonic() < give_up:
        time.sleep(0.05)


def test_a_deferred_try_times_launch_to_running_for_units_the_trigger_saw(
    airflow_env, ecs_env, statsd
) -> None:
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
        env={
            "AIRFLOW__METRICS__STATSD_ON": "True",
            "AIRFLOW__METRICS__STATSD_HOST": LOOPBACK,
            "AIRFLOW__METRICS__STATSD_PORT": str(statsd.port),
            "AIRFLOW__METRICS__STATSD_PREFIX": "airflow",
            "AIRFLOW__METRICS__STATSD_INFLUXDB_ENABLED": "True",
        },
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
    assert len(statsd.packets("airflow.compute.launch_to_running.ecs")) == 2
