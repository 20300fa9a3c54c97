"""``python -m airflow_compute_provider.state``: tables, JSON, filters, release, exit codes."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pytest

from airflow_compute_provider.errors import ErrorCode
from airflow_compute_provider.state import ResourceUpdate, SqlTenantStateStore, TenantStatus
from airflow_compute_provider.state.cli import main
from tests.unit.state.support import EXEC, error, state_url_fixture, store_fixture

state_url = state_url_fixture()
store = store_fixture()


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def seeded(store: SqlTenantStateStore) -> SqlTenantStateStore:
    """acme needs investigation with a unit marked for cleanup; globex is ready."""
    store.begin_operation("acme", EXEC, "provision", "ecs", 1)
    store.record_intent(
        "acme",
        EXEC,
        provider="ecs",
        conn_id="aws_default",
        locator={"region": "eu-west-1", "cluster": "batch"},
        unit_index=0,
        generation=1,
        idempotency_token="cx0-u0-g1",
    )
    store.record_resources(
        "acme",
        EXEC,
        [
            ResourceUpdate(
                0, 1, "pending_cleanup", resource_id="task/0", error=error(ErrorCode.CLEANUP_FAILED)
            )
        ],
    )
    store.finish_operation("acme", EXEC, error(ErrorCode.CLEANUP_FAILED), will_retry=False)
    store.begin_operation("globex", EXEC, "provision", "kubernetes", 1)
    store.finish_operation("globex", EXEC, None, will_retry=False)
    return store


def test_tenants_prints_a_table_and_filters_by_status(seeded: SqlTenantStateStore, state_url: str) -> None:
    code, out, err = run("tenants", "--url", state_url)
    assert (code, err) == (0, "")
    header, *rows = out.splitlines()
    assert header.split()[:3] == ["TENANT", "STATUS", "EXECUTION"]
    assert [row.split()[:2] for row in rows] == [["acme", "needs_investigation"], ["globex", "ready"]]
    code, out, _ = run("tenants", "--status", "needs_investigation", "--url", state_url)
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["acme"]
    code, out, _ = run("tenants", "--status", "retry_pending", "--url", state_url)
    assert out == "(no tenants)\n"


def test_tenants_as_json(seeded: SqlTenantStateStore, state_url: str) -> None:
    code, out, _ = run("tenants", "--json", "--url", state_url)
    assert code == 0
    tenants = json.loads(out)
    assert [(t["tenant_id"], t["status"], t["execution_id"]) for t in tenants] == [
        ("acme", "needs_investigation", EXEC),
        ("globex", "ready", EXEC),
    ]


def test_resources_waiting_for_cleanup(seeded: SqlTenantStateStore, state_url: str) -> None:
    code, out, _ = run("resources", "--status", "pending_cleanup", "--url", state_url)
    assert code == 0
    [row] = out.splitlines()[1:]
    assert "task/0" in row
    assert "cluster=batch,region=eu-west-1" in row
    assert "CLEANUP_FAILED" in row
    code, out, _ = run("resources", "--status", "pending_cleanup", "--json", "--url", state_url)
    [entry] = json.loads(out)
    assert (entry["resource_id"], entry["status"], entry["last_error"]["code"]) == (
        "task/0",
        "pending_cleanup",
        "CLEANUP_FAILED",
    )
    assert run("resources", "--status", "cleaned", "--url", state_url)[1] == "(no resources)\n"


def test_operations_newest_first(seeded: SqlTenantStateStore, state_url: str) -> None:
    code, out, _ = run("operations", "--json", "--url", state_url)
    assert code == 0
    assert [(o["tenant_id"], o["status"]) for o in json.loads(out)] == [
        ("globex", "succeeded"),
        ("acme", "failed"),
    ]
    code, out, _ = run("operations", "--tenant", "acme", "--url", state_url)
    assert "CLEANUP_FAILED" in out
    assert "needs_investigation" in out


def test_release_frees_the_tenant_and_keeps_the_note(seeded: SqlTenantStateStore, state_url: str) -> None:
    code, out, err = run("release", "acme", "--note", "stopped task/0 by hand", "--url", state_url)
    assert (code, err) == (0, "")
    assert out == "released tenant acme: needs_investigation -> ready (note: stopped task/0 by hand)\n"
    tenant = seeded.get_tenant("acme")
    assert tenant is not None
    assert (tenant.status, tenant.note) == (TenantStatus.READY, "stopped task/0 by hand")


def test_release_refusals_exit_1_with_the_reason(seeded: SqlTenantStateStore, state_url: str) -> None:
    code, out, err = run("release", "globex", "--note", "why not", "--url", state_url)
    assert (code, out) == (1, "")
    assert err.startswith("error: ")
    assert "ready" in err
    code, _, err = run("release", "Not_A_Tenant", "--note", "x", "--url", state_url)
    assert code == 1
    assert "tenant_id" in err
    code, _, err = run("release", "nobody", "--note", "x", "--url", state_url)
    assert code == 1
    assert "not known" in err


def test_release_with_force_and_json(store: SqlTenantStateStore, state_url: str) -> None:
    store.begin_operation("acme", EXEC, "provision", "ecs", 1)
    assert run("release", "acme", "--note", "worker gone", "--url", state_url)[0] == 1
    code, out, _ = run("release", "acme", "--note", "worker gone", "--force", "--json", "--url", state_url)
    assert code == 0
    released = json.loads(out)
    assert released["tenant"]["status"] == "ready"
    assert (released["transition"]["event"], released["transition"]["from_status"]) == (
        "force_release",
        "operation_in_progress",
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["tenants", "--status", "on_fire"],
        ["resources", "--status", "lost"],
        ["release", "acme"],  # --note is required
        ["frobnicate"],
    ],
)
def test_bad_usage_exits_2(argv: list[str], state_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as usage:
        main([*argv, "--url", state_url])
    assert usage.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_the_module_runs_as_a_program(seeded: SqlTenantStateStore, state_url: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "airflow_compute_provider.state", "tenants", "--url", state_url],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert result.returncode == 0, result.stderr
    assert [line.split()[0] for line in result.stdout.splitlines()] == ["TENANT", "acme", "globex"]
