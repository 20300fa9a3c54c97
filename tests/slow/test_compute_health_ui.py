"""The Compute Health page in a real browser, on the real ``airflow standalone`` stack.

The stack loads the plugin through the package's ``airflow.plugins`` entry point (the package is
installed). A DAG with two compute tasks fails on the moto ECS endpoint behind the fault proxy
(moto stands in for the AWS cloud, which cannot run here):

    provision   an EC2 launch into a cluster without container instances: ECS refuses it as
                INVALID_CONFIGURATION, the tenant ``health-invalid`` needs investigation
    scale_out   two units; RunTask refuses unit 1 for memory, so the rollback stops unit 0, but
                StopTask is denied: CLEANUP_FAILED, the tenant ``health-cleanup`` needs
                investigation and its unit 0 waits for cleanup

Debian's chromium, headless and driven by selenium through Debian's chromedriver, opens the page
inside the Airflow UI (``/plugin/compute-health``) as the admin, finds both tenants with their
codes, the resource pending cleanup and the chart's series, saves a screenshot (a test artifact:
``build/test-artifacts/compute-health.png`` or ``$COMPUTE_TEST_ARTIFACTS``), and releases one
tenant through the page's form. Over plain HTTP: an anonymous caller and the read-only viewer
are refused.

Then access per DAG, with the stack's auth manager limiting the ``limited`` user (role "user")
to this DAG (``tests/harness/dag_auth.py``). Rows are added to the stack's state store the way
the operators write them: a tenant failed by another DAG (with a resource pending cleanup), one
whose rows predate recorded DAGs (no DAG id: administrators only), a hold by a task instance of
this DAG that Airflow does not know as finished (live), and a hold by the run's own finished
task instance (stale). Through the API and in the browser, the limited user sees this DAG's
tenants only (rows, counts, chart, cleanup, resource lookup), cannot release the other DAG's,
cannot force the live hold but may force the stale one; the administrator may force the live
one, and each release lands in the tenant's history with who and why. A change sent with the
session cookie alone, without the page's header, is refused as cross-site.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_compute_provider.errors import ComputeError, ErrorCode
from airflow_compute_provider.hooks.ecs_tags import TENANT_ID_TAG
from airflow_compute_provider.state import ResourceUpdate, TaskInstanceRef
from airflow_compute_provider.state.status import ResourceStatus, TenantEvent, TenantStatus
from tests.harness.airflow_env import StandaloneHandle
from tests.harness.airflow_stack import (
    LIMITED_DAGS,
    LIMITED_PASSWORD,
    LIMITED_USER,
    REPO_ROOT,
    VIEWER_PASSWORD,
    VIEWER_USER,
)
from tests.harness.ecs import CLUSTER_NAME, TASK_FAMILY, EcsEnv
from tests.harness.proxy_faults import ecs_error
from tests.slow.stack_runs import StackWorkflows

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# Without the background-networking flags Chromium reaches for Google's hosts, which the closed
# network here refuses (slowly).
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1440,1500",
)
ARTIFACTS = Path(os.environ.get("COMPUTE_TEST_ARTIFACTS") or REPO_ROOT / "build" / "test-artifacts")
DAG_ID = "compute_health_demo"
OTHER_DAG = "compute_health_other"
assert LIMITED_DAGS == (DAG_ID,)
WAIT = 30.0

_DAG = textwrap.dedent(
    f"""\
    from datetime import datetime

    from airflow.sdk import DAG

    from airflow_compute_provider.operators.ecs import EcsComputeOperator

    NETWORK = {{
        "awsvpcConfiguration": {{
            "subnets": ["{{{{ dag_run.conf['subnet_id'] }}}}"],
            "securityGroups": ["{{{{ dag_run.conf['security_group_id'] }}}}"],
        }}
    }}
    COMMON = dict(
        operation="provision",
        cluster={CLUSTER_NAME!r},
        task_definition={TASK_FAMILY!r},
        network_configuration=NETWORK,
        poll_interval=0.4,
        deferrable=False,
        retries=0,
    )

    with DAG({DAG_ID!r}, schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
        EcsComputeOperator(task_id="provision", tenant_id="health-invalid", launch_type="EC2", **COMMON)
        EcsComputeOperator(
            task_id="scale_out", tenant_id="health-cleanup", count=2, launch_type="FARGATE", **COMMON
        )
    """
)


def _scale_out_unit_1(body: Any) -> bool:
    tags = {t.get("key"): t.get("value") for t in body.get("tags", [])}
    return tags.get(TENANT_ID_TAG) == "health-cleanup" and "-u1-" in body.get("clientToken", "")


@pytest.fixture
def failed_run(
    airflow_standalone: StandaloneHandle, ecs_env: EcsEnv, fault_proxy: Any, tmp_path: Path
) -> Iterator[tuple[StackWorkflows, str]]:
    proxy = fault_proxy(ecs_env.moto_url)
    flows = StackWorkflows(airflow_standalone, ecs_env, proxy)
    flows.point_aws_connection_at(proxy.url)
    ecs_env.script_next_run_task(failures=[{"reason": "RESOURCE:MEMORY"}], where=_scale_out_unit_1)
    proxy.add_rule(
        ecs_error("AccessDeniedException", "User is not authorized to perform: ecs:StopTask"),
        operation="StopTask",
    )
    dag_file = tmp_path / f"{DAG_ID}.py"
    dag_file.write_text(_DAG)
    airflow_standalone.add_dag(dag_file)
    airflow_standalone.client.wait_for_dag(DAG_ID)
    run = flows.run(DAG_ID)
    assert run.state == "failed"
    yield flows, run.run_id
    flows.close()


@pytest.fixture
def browser() -> Iterator[Any]:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail("Debian's chromium and chromium-driver are missing; run scripts/ensure-chromium")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="compute-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    with pytest.MonkeyPatch.context() as env:
        # the driver and browser are given: selenium must not look for (or download) its own
        env.setenv("SE_OFFLINE", "true")
        env.setenv("SE_AVOID_STATS", "true")
        driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _token(base_url: str, username: str, password: str) -> str:
    answer = requests.post(
        f"{base_url}/auth/token", json={"username": username, "password": password}, timeout=30
    )
    answer.raise_for_status()
    token: str = answer.json()["access_token"]
    return token


def _log_in(driver: Any, stack: StandaloneHandle, username: str = "", password: str = "") -> None:
    """What the login page leaves behind: Airflow's ``_token`` session cookie."""
    driver.get(f"{stack.base_url}/api/v2/monitor/health")  # any page of the origin, to set a cookie on
    driver.delete_all_cookies()
    token = _token(stack.base_url, username or stack.username, password or stack.password)
    driver.add_cookie({"name": "_token", "value": token, "path": "/", "httpOnly": True})


def test_compute_health_page_api_and_links_on_a_failed_run(
    airflow_standalone: StandaloneHandle, failed_run: tuple[StackWorkflows, str], browser: Any
) -> None:
    """One failed run (the tenants it leaves need investigation) serves every check: the
    refusals come before the release, which changes what they would see."""
    _check_refusals(airflow_standalone, failed_run)
    _check_extra_link(airflow_standalone, failed_run)
    _check_page_and_release(airflow_standalone, failed_run, browser)
    _seed_other_tenants(failed_run)
    _check_access_per_dag(airflow_standalone, failed_run)
    _check_limited_page(airflow_standalone, failed_run, browser)


def _check_page_and_release(
    airflow_standalone: StandaloneHandle, failed_run: tuple[StackWorkflows, str], browser: Any
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    flows, run_id = failed_run
    wait = WebDriverWait(browser, WAIT)
    _log_in(browser, airflow_standalone)

    # The page as the Airflow UI shows it: its own route, the plugin's app in an iframe.
    browser.get(f"{airflow_standalone.base_url}/plugin/compute-health")
    wait.until(ec.frame_to_be_available_and_switch_to_it((By.TAG_NAME, "iframe")))
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "body[data-loaded=true]")))

    def row(tenant: str) -> Any:
        return browser.find_element(By.CSS_SELECTOR, f"#investigation tr[data-tenant='{tenant}']")

    invalid = row("health-invalid")
    assert invalid.find_element(By.CSS_SELECTOR, "[data-field=code]").text == "INVALID_CONFIGURATION"
    assert "non retriable" in invalid.text
    assert "needs investigation" in invalid.find_element(By.CSS_SELECTOR, "[data-field=status]").text
    task_link = invalid.find_element(By.CSS_SELECTOR, "[data-field=task-link]").get_attribute("href")
    assert task_link == (
        f"{airflow_standalone.base_url}/dags/{DAG_ID}/runs/{requests.utils.quote(run_id, safe='')}"
        "/tasks/provision"
    )
    execution = invalid.find_element(By.CSS_SELECTOR, "[data-field=execution]").text
    assert execution == f"{DAG_ID}:{run_id}:provision:-1 (try 1)"

    cleanup = row("health-cleanup")
    assert cleanup.find_element(By.CSS_SELECTOR, "[data-field=code]").text == "CLEANUP_FAILED"
    assert "requires manual intervention" in cleanup.text
    pending = browser.find_elements(By.CSS_SELECTOR, "#cleanup tbody tr")
    stuck = [e for e in flows.store().list_resources(tenant_id="health-cleanup") if e.resource_id]
    stuck = [e for e in stuck if e.status is ResourceStatus.PENDING_CLEANUP]
    assert [r.get_attribute("data-resource") for r in pending] == [stuck[0].resource_id]
    console = pending[0].find_element(By.TAG_NAME, "a").get_attribute("href")
    assert console.startswith(
        f"https://us-east-1.console.aws.amazon.com/ecs/v2/clusters/{CLUSTER_NAME}/tasks/"
    )

    legend = {e.get_attribute("data-series") for e in browser.find_elements(By.CSS_SELECTOR, "#legend li")}
    # This test's two failures are charted; other slow tests on the shared stack (the clear cycle,
    # the deadlines) may add their own timeouts to the admin's chart, so those are allowed too.
    assert {"ecs:INVALID_CONFIGURATION", "ecs:CLEANUP_FAILED"} <= legend
    assert legend <= {"ecs:INVALID_CONFIGURATION", "ecs:CLEANUP_FAILED"} | {
        f"{provider}:OPERATION_TIMEOUT" for provider in ("ecs", "kubernetes")
    }
    bars = {e.get_attribute("data-series") for e in browser.find_elements(By.CSS_SELECTOR, "#chart rect")}
    assert bars == legend

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.switch_to.default_content()
    assert browser.save_screenshot(str(ARTIFACTS / "compute-health.png"))
    browser.switch_to.frame(browser.find_element(By.TAG_NAME, "iframe"))

    # An authorized release through the page's form.
    row("health-invalid").find_element(By.CSS_SELECTOR, "[data-release-note]").send_keys(
        "ECS launch type fixed in the DAG"
    )
    row("health-invalid").find_element(By.CSS_SELECTOR, "[data-release]").click()
    wait.until(
        ec.presence_of_element_located(
            (By.CSS_SELECTOR, "#others tr[data-tenant='health-invalid'][data-status=ready]")
        )
    )
    released = flows.store().get_tenant("health-invalid")
    assert released is not None
    assert released.status is TenantStatus.READY
    assert released.note == "ECS launch type fixed in the DAG (released by admin on the Compute Health page)"
    assert browser.find_element(By.ID, "message").text == "Tenant health-invalid released."
    assert row("health-cleanup").is_displayed()


def _check_refusals(airflow_standalone: StandaloneHandle, failed_run: tuple[StackWorkflows, str]) -> None:
    flows, _ = failed_run
    api = f"{airflow_standalone.base_url}/compute-health/api"
    release = f"{api}/tenants/health-cleanup/release"
    body = {"note": "let me"}

    anonymous = requests.Session()
    assert anonymous.get(f"{api}/health", timeout=30).status_code == 401
    assert anonymous.get(f"{api}/resources", params={"resource_id": "x"}, timeout=30).status_code == 401
    assert anonymous.post(release, json=body, timeout=30).status_code == 401
    forged = anonymous.post(release, json=body, headers={"Authorization": "Bearer forged"}, timeout=30)
    assert forged.status_code == 403
    # the page itself sends an anonymous visitor to Airflow's login
    page = anonymous.get(f"{airflow_standalone.base_url}/compute-health/", allow_redirects=False, timeout=30)
    assert page.status_code == 303
    assert "/auth/login" in page.headers["location"]

    viewer = {"Authorization": f"Bearer {_token(airflow_standalone.base_url, VIEWER_USER, VIEWER_PASSWORD)}"}
    health = requests.get(f"{api}/health", headers=viewer, timeout=30)
    assert health.status_code == 200
    tenants = {t["tenant_id"]: t for t in health.json()["tenants"]}
    assert tenants["health-cleanup"]["status"] == "needs_investigation"
    assert tenants["health-cleanup"]["can_release"] is False
    refused = requests.post(release, json=body, headers=viewer, timeout=30)
    assert refused.status_code == 403
    assert f"task instances of DAG '{DAG_ID}'" in refused.json()["detail"]
    tenant = flows.store().get_tenant("health-cleanup")
    assert tenant is not None
    assert tenant.status is TenantStatus.NEEDS_INVESTIGATION


def _check_extra_link(airflow_standalone: StandaloneHandle, failed_run: tuple[StackWorkflows, str]) -> None:
    flows, run_id = failed_run
    links = airflow_standalone.client.request(
        "GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/scale_out/links"
    )
    task_arn = next(
        e.resource_id
        for e in flows.store().list_resources(tenant_id="health-cleanup")
        if e.status is ResourceStatus.PENDING_CLEANUP
    )
    task_id = task_arn.rsplit("/", 1)[-1]
    assert links["extra_links"] == {
        "ECS task": (
            f"https://us-east-1.console.aws.amazon.com/ecs/v2/clusters/{CLUSTER_NAME}/tasks/{task_id}"
            "/configuration?region=us-east-1"
        )
    }, json.dumps(links)


# -- access per DAG ---------------------------------------------------------------------------------

OTHER_RESOURCE = "arn:aws:ecs:us-east-1:123456789012:task/other/0123456789abcdef"


def _seed_other_tenants(failed_run: tuple[StackWorkflows, str]) -> None:
    """What the operators write for tries of other task instances (see the module docstring)."""
    flows, run_id = failed_run
    store = flows.store()
    denied = ComputeError(code=ErrorCode.PERMISSION_DENIED, message="not authorized to perform ecs:RunTask")
    other = TaskInstanceRef(OTHER_DAG, "manual__other", "provision")
    store.begin_operation("health-other", "other:1", "provision", "ecs", 1, task_instance=other)
    store.record_intent(
        "health-other",
        "other:1",
        provider="ecs",
        conn_id="aws_default",
        locator={"cluster": CLUSTER_NAME, "region": "us-east-1"},
        unit_index=0,
        generation=0,
        idempotency_token="other-u0-g0",
    )
    store.record_resources(
        "health-other",
        "other:1",
        [ResourceUpdate(0, 0, ResourceStatus.PENDING_CLEANUP, resource_id=OTHER_RESOURCE, error=denied)],
    )
    store.record_outcome("health-other", "other:1", denied)
    store.finish_operation("health-other", "other:1", denied, will_retry=False)
    # a try recorded before operations named their task instance
    store.begin_operation("health-legacy", "legacy:1", "provision", "ecs", 1)
    store.record_outcome("health-legacy", "legacy:1", denied)
    store.finish_operation("health-legacy", "legacy:1", denied, will_retry=False)
    # held by a task instance of this DAG that Airflow does not know as finished
    live = TaskInstanceRef(DAG_ID, "manual__still_running", "provision")
    store.begin_operation("health-live", f"{DAG_ID}:live", "provision", "ecs", 1, task_instance=live)
    # held by the run's own task instance, which failed: stale
    stale = TaskInstanceRef(DAG_ID, run_id, "provision")
    store.begin_operation("health-stale", f"{DAG_ID}:stale", "provision", "ecs", 1, task_instance=stale)


def _headers(stack: StandaloneHandle, user: str, password: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {_token(stack.base_url, user, password)}"}


def _release(stack: StandaloneHandle, headers: dict[str, str], tenant: str, **body: Any) -> requests.Response:
    return requests.post(
        f"{stack.base_url}/compute-health/api/tenants/{tenant}/release",
        json={"note": "checked by hand", **body},
        headers=headers,
        timeout=30,
    )


def _check_access_per_dag(stack: StandaloneHandle, failed_run: tuple[StackWorkflows, str]) -> None:
    flows, _ = failed_run
    store = flows.store()
    api = f"{stack.base_url}/compute-health/api"
    admin = _headers(stack, stack.username, stack.password)
    limited = _headers(stack, LIMITED_USER, LIMITED_PASSWORD)
    viewer = _headers(stack, VIEWER_USER, VIEWER_PASSWORD)

    def health(headers: dict[str, str]) -> dict[str, Any]:
        answer = requests.get(f"{api}/health", headers=headers, timeout=30)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    def lookup(headers: dict[str, str]) -> list[dict[str, Any]]:
        answer = requests.get(
            f"{api}/resources", params={"resource_id": OTHER_RESOURCE}, headers=headers, timeout=30
        )
        assert answer.status_code == 200, answer.text
        entries: list[dict[str, Any]] = answer.json()["entries"]
        return entries

    ours = {"health-invalid", "health-cleanup", "health-live", "health-stale"}
    everyone = health(admin)
    # (other slow tests share the stack: their tenants may be listed too)
    assert {t["tenant_id"] for t in everyone["tenants"]} >= ours | {"health-other", "health-legacy"}
    assert {s["code"] for s in everyone["errors"]["series"]} >= {"PERMISSION_DENIED"}
    assert [r["resource_id"] for r in everyone["pending_cleanup"]].count(OTHER_RESOURCE) == 1
    assert len(lookup(admin)) == 1

    # the limited user: this DAG's rows only, in the lists, the counts, the chart and the ledger
    seen = health(limited)
    assert {t["tenant_id"] for t in seen["tenants"]} == ours
    assert seen["tenants_page"]["total"] == len(ours)
    assert seen["counts"]["needs_investigation"] == 1  # health-cleanup (health-invalid was released)
    assert seen["counts"]["operation_in_progress"] == 2
    assert "PERMISSION_DENIED" not in {s["code"] for s in seen["errors"]["series"]}
    assert OTHER_RESOURCE not in {r["resource_id"] for r in seen["pending_cleanup"]}
    assert lookup(limited) == []
    # the viewer reads every DAG, but not rows without a recorded DAG
    read_by_viewer = {t["tenant_id"] for t in health(viewer)["tenants"]}
    assert read_by_viewer >= ours | {"health-other"}
    assert "health-legacy" not in read_by_viewer

    # the limited user cannot release the other DAG's tenant: to them it does not exist
    refused = _release(stack, limited, "health-other")
    assert refused.status_code == 404, refused.text
    assert _release(stack, limited, "health-legacy").status_code == 404
    # a viewer cannot release what they see
    refused = _release(stack, viewer, "health-other")
    assert refused.status_code == 403, refused.text
    assert f"task instances of DAG '{OTHER_DAG}'" in refused.json()["detail"]
    for tenant in ("health-other", "health-legacy"):
        state = store.get_tenant(tenant)
        assert state is not None
        assert state.status is TenantStatus.NEEDS_INVESTIGATION

    # force: the live hold needs an administrator, the stale one the DAG's edit right
    refused = _release(stack, limited, "health-live", force=True)
    assert refused.status_code == 403, refused.text
    assert "needs an administrator" in refused.json()["detail"]
    assert store.get_tenant("health-live").status is TenantStatus.OPERATION_IN_PROGRESS  # type: ignore[union-attr]
    forced = _release(stack, limited, "health-stale", force=True, note="its worker is gone")
    assert forced.status_code == 200, forced.text
    [move, *_] = store.transitions("health-stale")
    assert move.event is TenantEvent.FORCE_RELEASE
    assert move.note == (
        f"its worker is gone (force-released (its task instance had finished) by {LIMITED_USER} "
        "on the Compute Health page)"
    )
    forced = _release(stack, admin, "health-live", force=True, note="the run was deleted")
    assert forced.status_code == 200, forced.text
    [move, *_] = store.transitions("health-live")
    assert move.note is not None
    assert move.note.startswith(
        "the run was deleted (force-released while its task instance may still run by admin"
    )

    # cross-site: the session cookie alone, without the page's header, changes nothing
    cookie = {"Cookie": f"_token={limited['Authorization'].removeprefix('Bearer ')}"}
    forged = _release(stack, cookie, "health-cleanup")
    assert forged.status_code == 403, forged.text
    assert "cross-site" in forged.json()["detail"]
    other_origin = {**cookie, "X-Compute-Health-Request": "1", "Origin": "https://evil.example"}
    assert _release(stack, other_origin, "health-cleanup").status_code == 403
    assert store.get_tenant("health-cleanup").status is TenantStatus.NEEDS_INVESTIGATION  # type: ignore[union-attr]


def _check_limited_page(
    airflow_standalone: StandaloneHandle, failed_run: tuple[StackWorkflows, str], browser: Any
) -> None:
    """The limited user's page: this DAG's tenants only, and a release through the form."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    flows, _ = failed_run
    wait = WebDriverWait(browser, WAIT)
    _log_in(browser, airflow_standalone, LIMITED_USER, LIMITED_PASSWORD)
    browser.get(f"{airflow_standalone.base_url}/plugin/compute-health")
    wait.until(ec.frame_to_be_available_and_switch_to_it((By.TAG_NAME, "iframe")))
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "body[data-loaded=true]")))

    shown = {
        r.get_attribute("data-tenant") for r in browser.find_elements(By.CSS_SELECTOR, "tr[data-tenant]")
    }
    assert shown == {"health-invalid", "health-cleanup", "health-live", "health-stale"}
    counts = browser.find_element(By.CSS_SELECTOR, "[data-count=needs_investigation] strong").text
    assert counts == "1"
    legend = {e.get_attribute("data-series") for e in browser.find_elements(By.CSS_SELECTOR, "#legend li")}
    assert "ecs:PERMISSION_DENIED" not in legend
    pending = {
        r.get_attribute("data-resource") for r in browser.find_elements(By.CSS_SELECTOR, "#cleanup tbody tr")
    }
    assert OTHER_RESOURCE not in pending
    assert f"· {LIMITED_USER}" in browser.find_element(By.ID, "generated").text

    row = browser.find_element(By.CSS_SELECTOR, "#investigation tr[data-tenant='health-cleanup']")
    row.find_element(By.CSS_SELECTOR, "[data-release-note]").send_keys("stopped the task by hand")
    row.find_element(By.CSS_SELECTOR, "[data-release]").click()
    wait.until(
        ec.presence_of_element_located(
            (By.CSS_SELECTOR, "#others tr[data-tenant='health-cleanup'][data-status=ready]")
        )
    )
    released = flows.store().get_tenant("health-cleanup")
    assert released is not None
    assert (
        released.note == f"stopped the task by hand (released by {LIMITED_USER} on the Compute Health page)"
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.switch_to.default_content()
    assert browser.save_screenshot(str(ARTIFACTS / "compute-health-limited.png"))
