"""The example DAGs of ``dags/`` and the demo that runs them, for real.

* Every file of ``dags/`` imports into a DagBag with no import error and no warning, and says
  what it shows (the same import under Airflow 3.1 and 3.3 from the installed wheel is in
  ``tests/packaging/test_release.py``).
* Each of the demo's scenarios (``demo/scenarios.py``) runs its example DAG through
  ``dag.test()`` against the harness's moto server (through the fault proxy) or the local
  Kubernetes API server, and comes out as the scenario expects: DAG run state, error code, tries,
  tenant state, the branch followed, and the scenario's own check.
* ``python -m demo`` (what ``make demo`` runs) prints the table and exits 0 when the outcomes are
  the expected ones.
* ``deploy/bootstrap_moto.py`` (the compose stack's ``moto-bootstrap``) prepares a plain moto
  server so that an example DAG succeeds against it, through the ``aws_default`` connection
  written in ``docker-compose.yml``.

moto stands in for AWS itself, which cannot run here.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from demo.backends import AWS_CONN_ENV, EcsStage, KubeStage, aws_connection
from demo.runner import run_scenario
from demo.scenarios import SCENARIOS, Scenario
from tests.harness.airflow_dagrun import DagRunRecord, load_dag, run_dag_test
from tests.harness.airflow_env import AirflowEnv
from tests.harness.ecs import FAKE_CREDENTIALS, MotoServer

pytestmark = pytest.mark.airflow

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
#: the maintenance DAG (dags/compute_maintenance.py) is the recovery package's factory
MAINTENANCE_DAG_ID = "compute_maintenance"
EXAMPLE_DAG_IDS = {
    "tenant_provisioning_ecs",
    "tenant_provisioning_kubernetes",
    "compute_error_routing",
    "fleet_partial_failure",
    "long_running_reattach",
}


@pytest.fixture(autouse=True)
def fast_examples(monkeypatch: pytest.MonkeyPatch) -> None:
    """The example DAGs' timings in seconds, as ``make demo`` runs them."""
    monkeypatch.setenv("COMPUTE_EXAMPLES_FAST", "1")


def test_every_example_dag_imports_with_no_error_or_warning(airflow_home: Path) -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))

    assert bag.import_errors == {}
    assert bag.captured_warnings == {}
    assert set(bag.dag_ids) >= EXAMPLE_DAG_IDS | {MAINTENANCE_DAG_ID}
    for dag_id in EXAMPLE_DAG_IDS:
        dag = bag.dags[dag_id]
        assert "What it shows" in (dag.doc_md or ""), f"{dag_id} says what it shows"
        assert "example" in dag.tags
    for path in DAGS.glob("*.py"):
        assert ast.get_docstring(ast.parse(path.read_text())), f"{path.name} has a docstring"


def _unique(scenario: Scenario) -> Scenario:
    # a tenant of its own: the state store is shared by the whole test session
    return dataclasses.replace(scenario, tenant=f"ex-{scenario.tenant}")


def _assert_as_expected(scenario: Scenario, observed: Any) -> None:
    assert observed.problems == [], f"{scenario.key}: {observed.problems}"
    assert observed.verified is not None
    assert observed.verified.ok


@pytest.mark.parametrize(
    "scenario", [s for s in SCENARIOS if s.provider == "ecs"], ids=lambda s: str(getattr(s, "key", s))
)
def test_ecs_scenario_comes_out_as_expected(
    scenario: Scenario,
    airflow_env: AirflowEnv,
    ecs_env: Any,
    fault_proxy: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    proxy = fault_proxy(ecs_env.endpoint_url)
    monkeypatch.setenv(AWS_CONN_ENV, aws_connection(proxy.url))
    airflow_env.write_dag(DAGS / f"{scenario.dag_id}.py", scenario.dag_id)

    scenario = _unique(scenario)
    observed = run_scenario(scenario, EcsStage(ecs_env, proxy), airflow_env.dags_folder)

    _assert_as_expected(scenario, observed)


@pytest.mark.kube
@pytest.mark.parametrize(
    "scenario", [s for s in SCENARIOS if s.provider == "kubernetes"], ids=lambda s: str(getattr(s, "key", s))
)
def test_kubernetes_scenario_comes_out_as_expected(
    scenario: Scenario,
    airflow_env: AirflowEnv,
    kube_cluster: Any,
    node_simulator: Any,
    kube_airflow_conn: Any,
) -> None:
    airflow_env.write_dag(DAGS / f"{scenario.dag_id}.py", scenario.dag_id)

    scenario = _unique(scenario)
    stage = KubeStage(kube_cluster, kube_airflow_conn.namespace)
    observed = run_scenario(scenario, stage, airflow_env.dags_folder)

    _assert_as_expected(scenario, observed)


def test_make_demo_prints_the_table_and_exits_zero(tmp_path: Path) -> None:
    # Its own cache folder (so no Kubernetes build is found: --no-kube says so anyway) and none
    # of this session's Airflow settings: the demo sets up its own home.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env["XDG_CACHE_HOME"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "demo", "--no-kube", "--only", "success", "invalid"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    out = result.stdout
    log = tmp_path / "airflow-compute-provider" / "demo" / "demo.log"
    assert result.returncode == 0, out + result.stderr + (log.read_text()[-5000:] if log.exists() else "")
    assert "What happened" in out
    rows = [line for line in out.splitlines() if line.startswith("│")]
    assert len(rows) == 2
    assert all(row.startswith("│ ✓ ") for row in rows), "each row is marked as expected"
    assert "success" in rows[0]
    assert "ready" in rows[0]
    for text in ("failed", "INVALID_CONFIGURATION", "non_retriable", "needs_investigation"):
        assert text in rows[1]
    assert "2 of 2 scenarios came out as expected" in out
    assert "Task failed with exception" in log.read_text(), "Airflow's output went to the log"
    assert "Task failed with exception" not in out


def test_the_compose_bootstrap_prepares_plain_moto_for_the_example_dags(
    airflow_env: AirflowEnv, moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # No ecs_env here: moto answers as the plain server of the compose stack does.
    moto_server.reset()
    conf_file = tmp_path / "ecs-conf.json"
    bootstrap = subprocess.run(
        [sys.executable, str(REPO / "deploy" / "bootstrap_moto.py")],
        env={**os.environ, **FAKE_CREDENTIALS, "MOTO_ENDPOINT": moto_server.url, "CONF_FILE": str(conf_file)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert bootstrap.returncode == 0, bootstrap.stderr
    conf = json.loads(conf_file.read_text())
    assert json.dumps(conf) in bootstrap.stdout, "the conf is printed for the user"

    # aws_default exactly as docker-compose.yml writes it, with moto's address on this machine
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    connection = json.loads(compose["x-airflow-common"]["environment"][AWS_CONN_ENV])
    connection["extra"]["endpoint_url"] = moto_server.url
    monkeypatch.setenv(AWS_CONN_ENV, json.dumps(connection))
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")

    dag_file = airflow_env.write_dag(DAGS / "tenant_provisioning_ecs.py", "tenant_provisioning_ecs")
    dag = load_dag(dag_file, "tenant_provisioning_ecs", airflow_env.dags_folder)
    from datetime import UTC, datetime

    run_id = run_dag_test(dag, datetime.now(UTC), {**conf, "tenant": "compose-bootstrap"})
    record = DagRunRecord("tenant_provisioning_ecs", run_id)
    assert record.state() == "success", record.task_states()
    result = record.xcom("provision")
    assert [u["status"] for u in result["units"]] == ["succeeded"]
