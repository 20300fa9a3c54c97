"""One scenario, run for real through Airflow, and what it left behind.

``run_scenario`` arranges the cloud, loads the scenario's example DAG from ``dags/`` the way
the DAG processor does, runs it with ``dag.test()`` (scheduler loop, task runner, triggers and
retry policy all in this process) and reads the outcome back from where Airflow and the
provider keep it:

    the DAG run's state, the compute task's tries   Airflow's metadata DB
    the ComputeError                                XCom ``compute_error`` of the last try; when a
                                                    retry recovered (XComs are cleared per try),
                                                    the error the state store kept with that try
    the tenant's state                              the tenant state store
    the branch followed                             which handler task succeeded

What Airflow prints goes wherever stdout is; ``__main__`` sends it to the demo's log file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from demo.home import DAGS_FOLDER
from demo.scenarios import UNTOUCHED, Finished, Scenario, Verified
from tests.harness.airflow_dagrun import DagRunRecord, load_dag, run_dag_test


@dataclass(frozen=True)
class Observed:
    dag_run: str | None
    code: str | None
    classification: str | None
    attempts: int
    tenant: str
    route: str | None
    verified: Verified | None
    problems: list[str] = field(default_factory=list)

    @property
    def as_expected(self) -> bool:
        return not self.problems


def run_scenario(scenario: Scenario, stage: Any, dags_folder: Path = DAGS_FOLDER) -> Observed:
    """Run ``scenario`` on ``stage`` (an ``EcsStage`` or ``KubeStage``); ``dags_folder`` is the
    DAG bundle Airflow is configured with, holding the example DAG's file."""
    scenario.arrange(stage)
    conf = {"tenant": scenario.tenant, **stage.params(), **scenario.params}
    print(f"\n===== scenario {scenario.key}: {scenario.title} ({scenario.dag_id}) =====", flush=True)
    dag = load_dag(dags_folder / f"{scenario.dag_id}.py", scenario.dag_id, dags_folder)
    run_id = run_dag_test(dag, datetime.now(UTC), conf)
    record = DagRunRecord(scenario.dag_id, run_id)
    return observe(scenario, record, Finished(stage, scenario.tenant, record))


def observe(scenario: Scenario, record: DagRunRecord, finished: Finished) -> Observed:
    from airflow_compute_provider.state.config import open_state_store

    store = open_state_store()
    tries = {s.task_id: s.try_number for s in record.task_instances()}
    error = _last_error(record, scenario, store)
    tenant = store.get_tenant(scenario.tenant)
    states = record.task_states()
    followed = [h for h in scenario.handlers if states.get(h) == "success"]
    observed = Observed(
        dag_run=record.state(),
        code=error.get("code") if error else None,
        classification=error.get("classification") if error else None,
        attempts=tries.get(scenario.compute_task, 0),
        tenant=tenant.status.value if tenant is not None else UNTOUCHED,
        route=", ".join(followed) if followed else None,
        verified=scenario.verify(finished) if scenario.verify else None,
    )
    return Observed(**{**observed.__dict__, "problems": compare(scenario, observed)})


def compare(scenario: Scenario, observed: Observed) -> list[str]:
    """What differs from the scenario's expectation, in words."""
    want = scenario.expected
    pairs = [
        ("DAG run", want.dag_run, observed.dag_run),
        ("error code", want.code, observed.code),
        ("attempts", want.attempts, observed.attempts),
        ("tenant", want.tenant, observed.tenant),
    ]
    if scenario.handlers:
        pairs.append(("route", want.route, observed.route))
    problems = [f"{what}: expected {w}, got {o}" for what, w, o in pairs if w != o]
    if observed.verified is not None and not observed.verified.ok:
        problems.append(f"check failed: {observed.verified.detail}")
    return problems


def _last_error(record: DagRunRecord, scenario: Scenario, store: Any) -> dict[str, Any] | None:
    from airflow_compute_provider.lifecycle.xcom import XCOM_ERROR_KEY

    try:
        error: dict[str, Any] = record.xcom(scenario.compute_task, key=XCOM_ERROR_KEY)
        return error
    except KeyError:
        pass
    # Newest try first: the error of the latest try that failed.
    for operation in store.operations(scenario.tenant):
        if operation.error is not None:
            return {
                "code": operation.error.code.value,
                "classification": operation.error.classification.value,
            }
    return None
