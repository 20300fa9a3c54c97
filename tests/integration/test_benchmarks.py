"""The two benchmarks of the scale work, run small in CI: their JSON's shape and its counts
(requests, launches, duplicates), never a time. The full runs are in bench/README.md."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def bench(script: str, *args: str, output: Path) -> dict[str, Any]:
    subprocess.run(
        [sys.executable, str(REPO / "bench" / script), *args, "--json", str(output)],
        check=True,
        timeout=300,
        capture_output=True,
    )
    result: dict[str, Any] = json.loads(output.read_text())
    return result


def test_the_launch_benchmark_launches_every_unit_exactly_once_under_the_bucket(tmp_path: Path) -> None:
    # 40 units against a bucket of 5 (burst 5) per second: the burst is throttled, the
    # budget learns the rate, and every unit still launches once.
    result = bench(
        "launch.py",
        *("--tries", "8", "--units", "5", "--rate", "5", "--burst", "5"),
        *("--processes", "1", "--variants", "ours", "--start-delay", "6"),
        output=tmp_path / "launch.json",
    )
    [run] = result["runs"]
    assert (run["variant"], run["processes"], run["units"]) == ("ours", 1, 40)
    assert run["launched"] == 40
    assert run["reported_launched"] == 40
    assert run["duplicates"] == 0
    assert run["refused"] == {}
    assert run["run_task_requests"] == 40 + run["throttled"]
    assert set(run["requests_by_operation"]) == {"RunTask"}
    for field in ("wall_s", "wall_over_units_per_rate", "throttled_share"):
        assert isinstance(run[field], int | float), field


def test_the_trigger_benchmark_with_events_reads_no_describe_tasks_while_waiting(tmp_path: Path) -> None:
    result = bench(
        "triggers.py",
        *(
            "--n",
            "30",
            "--interval",
            "2",
            "--intervals",
            "2",
            "--providers",
            "ecs",
            "--sides",
            "ours",
            "--events",
        ),
        output=tmp_path / "triggers.json",
    )
    ours = result["ecs"]["ours"]
    assert ours["fired_as_expected"] == 30
    assert ours["triggers"] == 30
    # The first read of every unit is one DescribeTasks (30 units); then only the queue is read
    # (the fallback comes every 10 intervals, after this window).
    assert ours["startup_requests_by_operation"]["DescribeTasks"] == 1
    assert "DescribeTasks" not in ours["requests_by_operation"]
    receives = [
        measured.get("AmazonSQS.ReceiveMessage", 0)
        for measured in (ours["startup_requests_by_operation"], ours["requests_by_operation"])
    ]
    assert sum(receives) >= 1
    for field in (
        "requests_per_interval",
        "cpu_seconds",
        "peak_rss_mb",
        "detect_delay_s",
        "detect_delay_p50_s",
    ):
        assert isinstance(ours[field], int | float), field
