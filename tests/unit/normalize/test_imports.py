"""Importing the contract and the normalizers loads no provider SDK (DAG parsing stays cheap).

Run in a fresh interpreter: this test process has long since imported botocore and the
Kubernetes clients for other tests.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("boto3", "botocore", "aiobotocore", "kubernetes", "kubernetes_asyncio")


@pytest.mark.parametrize("module", ["airflow_compute_provider.errors", "airflow_compute_provider.normalize"])
def test_import_loads_no_provider_sdk(module: str) -> None:
    script = (
        f"import json, sys, {module}; "
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})))"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
