"""Redaction in the triggerer's own process: a ``ComputeStatusTrigger`` rebuilt from its
serialized arguments in a fresh Python process (as a triggerer does: nothing is registered with
Airflow's masker there, the worker's secrets are unknown), watching an ECS task while the ECS
endpoint (moto behind the fault proxy) answers DescribeTasks with errors that echo a secret of
the launch request: first as 503s (the shared poller and the trigger log a warning and poll
again), then as an AccessDenied (the trigger's error event). Neither the event nor any line the
process logged (this provider's loggers at DEBUG, the rest at INFO: botocore's DEBUG dumps
of response bodies are Airflow's masker's job, and ``masking.remember`` registers the secrets
with it too) holds the secret. ``secrets`` is the only way the secret reaches the
process (``triggers/masking.py``).
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from airflow_compute_provider.triggers.status import ComputeStatusTrigger
from tests.harness.ecs import EcsEnv
from tests.harness.proxy import FaultProxy
from tests.harness.proxy_faults import ecs_error
from tests.integration.test_shared_pollers import ecs_config, ecs_units

pytestmark = [pytest.mark.reliability]

#: the child: a trigger from (classpath, kwargs), its first event on stdout, its logs on stderr
_TRIGGERER = """
import asyncio, importlib, json, logging, sys
classpath, kwargs = json.loads(sys.stdin.read())
module, name = classpath.rsplit(".", 1)
trigger = getattr(importlib.import_module(module), name)(**kwargs)
# after Airflow's import, which configures logging its own way
logging.basicConfig(
    level=logging.INFO, stream=sys.stderr, format="%(name)s %(levelname)s %(message)s", force=True
)
logging.getLogger("airflow_compute_provider").setLevel(logging.DEBUG)
logging.getLogger("triggerer").info("running %r", trigger)
async def first():
    async for event in trigger.run():
        return event.payload
print(json.dumps(asyncio.run(asyncio.wait_for(first(), 120))))
"""


def test_a_trigger_masks_the_launch_secrets_in_its_own_process(
    ecs_env: EcsEnv, fault_proxy: Callable[[str], FaultProxy]
) -> None:
    canary = f"canary{secrets.token_hex(8)}trig"
    [unit] = ecs_units(ecs_env, 1)
    proxy = fault_proxy(ecs_env.endpoint_url)
    ecs_env.route_through(proxy.url)  # the child inherits the connection (AIRFLOW_CONN_AWS_DEFAULT)
    echoed = f"request rejected: environment TOKEN={canary} is not allowed"
    proxy.add_rule(ecs_error("ServiceUnavailableException", echoed, 503), operation="DescribeTasks", times=8)
    proxy.add_rule(ecs_error("AccessDeniedException", echoed), operation="DescribeTasks")
    trigger = ComputeStatusTrigger(
        provider="ecs",
        backend_config=ecs_config(ecs_env, retries={"max_attempts": 1}),
        units=[unit.to_dict()],
        deadline=(datetime.now(UTC) + timedelta(minutes=5)).isoformat(),
        poll_interval=0.2,
        secrets=[canary],
    )

    child = subprocess.run(
        [sys.executable, "-c", _TRIGGERER],
        input=json.dumps(trigger.serialize()),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )

    assert child.returncode == 0, child.stderr[-4000:]
    event: dict[str, Any] = json.loads(child.stdout.strip().splitlines()[-1])
    assert event["kind"] == "error", event
    assert event["error"]["code"] == "PERMISSION_DENIED", event
    assert "***" in json.dumps(event["error"]), event  # the echo arrived, masked
    # the poller and the trigger did warn about the 503s, masked too
    assert "status poll failed" in child.stderr.lower(), child.stderr[-4000:]
    assert canary not in child.stdout, "the trigger event carries the secret"
    leaked = [line for line in child.stderr.splitlines() if canary in line]
    assert not leaked, "the triggerer process logged the secret:\n" + "\n".join(leaked[:5])
