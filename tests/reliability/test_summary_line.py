"""The suite's summary line: a pytest run of reliability tests ends with it, in exactly this form

    reliability: N operations, F faults, C crashes, I inputs, K canaries; lost 0, duplicated 0, leaked 0

A child ``pytest -m reliability`` runs one quick test of this suite (the fuzzed store keys: no
provider, no Airflow run) and its terminal output is read: the line must be there, after every
other summary section (the time per suite included), with the counts that test added (its
inputs) and nothing lost, duplicated or leaked.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.reliability

REPO = Path(__file__).resolve().parents[2]
PROBE = "tests/reliability/test_fuzz_inputs.py::test_fuzzed_tenant_and_execution_ids_never_reach_the_store"
LINE = re.compile(
    r"^reliability: (\d+) operations, (\d+) faults, (\d+) crashes, (\d+) inputs, (\d+) canaries; "
    r"lost (\d+), duplicated (\d+), leaked (\d+)$"
)


def test_a_reliability_run_ends_with_the_summary_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTEST_"))}
    child = subprocess.run(
        [sys.executable, "-m", "pytest", PROBE, "-m", "reliability", "-p", "no:cacheprovider", "-q"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert child.returncode == 0, child.stdout[-4000:] + child.stderr[-2000:]
    lines = child.stdout.splitlines()
    found = [(n, LINE.match(line)) for n, line in enumerate(lines) if LINE.match(line)]
    assert len(found) == 1, child.stdout[-3000:]
    (position, match) = found[0]
    operations, faults, crashes, inputs, canaries, lost, duplicated, leaked = map(int, match.groups())
    assert (operations, faults, crashes, canaries) == (0, 0, 0, 0)
    assert inputs > 0, "the probe's fuzzed inputs were not counted"
    assert (lost, duplicated, leaked) == (0, 0, 0)
    # the last summary of the run: only pytest's own closing line comes after it
    suites = next(n for n, line in enumerate(lines) if "time per suite" in line)
    assert suites < position
    assert [line for line in lines[position + 1 :] if line.strip()] == [lines[-1]]
    assert re.search(r"\d+ passed", lines[-1])
