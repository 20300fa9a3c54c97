"""Launch benchmark: a burst of tries against ECS's RunTask rate limit.

    python bench/launch.py [--tries 50] [--units 10] [--processes 1,4] \\
        [--variants ours,today,adaptive,official] [--rate 20] [--burst 40] [--json FILE]

A fault proxy (``tests/harness/proxy.py``) in front of moto (``ecs_endpoint.py``) enforces a
token bucket on RunTask as ECS does per account and Region: ``--burst`` tokens at most, refilled
at ``--rate`` per second; a RunTask that finds the bucket empty gets ECS's 400
ThrottlingException "Rate exceeded" and never reaches moto. Every other operation passes.

For each variant and process count, on a fresh moto: ``--tries`` tries of ``--units`` units
each start together, spread over that many worker processes (``launch_worker.py``):

    ours      this tree's ``EcsComputeHook.launch``: one retry layer, the process-wide budget
    today     the same with the main branch's package (``git archive <ref>``, ``--today-ref``)
    adaptive  "today" with botocore's ``adaptive`` retry mode (client-side token bucket)
    official  the Amazon provider's ``EcsRunTaskOperator``, one task per operator

Then every task moto holds is read back (directly, not through the proxy) and grouped by unit
(our tags, or the official side's ``bench-unit`` tag): each unit must be there exactly once.
Reported per run: ``units`` (planned), ``launched`` (distinct units with a task),
``duplicates`` (tasks beyond the first of a unit), ``refused`` (by code), ``run_task_requests``,
``throttled`` (and their share), ``wall_s`` (first start to last worker done) and its ratio to
the ideal ``(units - burst) / rate`` (the floor a perfect client could reach) and to the
issue's round figure ``units / rate``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO_ROOT = BENCH.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
if str(BENCH) not in sys.path:
    sys.path.insert(1, str(BENCH))

from tests.harness.proxy import FaultProxy, RequestInfo  # noqa: E402
from tests.harness.proxy_faults import Fault, ecs_throttle  # noqa: E402

VARIANTS = ("ours", "today", "adaptive", "official")


def log(message: str) -> None:
    print(f"[launch {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class RunTaskBucket(FaultProxy):
    """The proxy as ECS's RunTask throttle: a token bucket of ``burst`` refilled at ``rate``/s."""

    def __init__(self, upstream_url: str, rate: float, burst: float) -> None:
        super().__init__(upstream_url)
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._at = time.monotonic()
        self._bucket_lock = threading.Lock()

    def refill(self) -> None:
        with self._bucket_lock:
            self._tokens = self.burst
            self._at = time.monotonic()

    def _choose_fault(self, info: RequestInfo) -> Fault | None:
        if info.operation != "RunTask":
            return super()._choose_fault(info)
        with self._bucket_lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return None
        return ecs_throttle()


def today_tree(ref: str, workdir: Path) -> Path:
    """The package as it is on ``ref``, unpacked under ``workdir`` (read from git, no checkout)."""
    target = workdir / "today"
    target.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "archive", ref, "airflow_compute_provider"],
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


def tasks_by_unit(endpoint_url: str, cluster: str, region: str) -> dict[str, int]:
    """Every task moto holds for the cluster, counted by unit ("try-index")."""
    import boto3

    from airflow_compute_provider.hooks.ecs_tags import EXECUTION_ID_TAG, UNIT_INDEX_TAG

    ecs = boto3.client("ecs", region_name=region, endpoint_url=endpoint_url)
    arns: list[str] = []
    for status in ("RUNNING", "STOPPED"):
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"cluster": cluster, "desiredStatus": status, "maxResults": 100}
            if token:
                kwargs["nextToken"] = token
            page = ecs.list_tasks(**kwargs)
            arns.extend(page["taskArns"])
            token = page.get("nextToken")
            if not token:
                break
    counts: Counter[str] = Counter()
    for start in range(0, len(arns), 100):
        described = ecs.describe_tasks(cluster=cluster, tasks=arns[start : start + 100], include=["TAGS"])
        for task in described["tasks"]:
            tags = {t["key"]: t["value"] for t in task.get("tags") or []}
            # "<run>-try-<n>" (ours: the execution id, and the unit index tag) or
            # "<run>-try-<n>-<index>" (the official side's own tag)
            if "bench-unit" in tags:
                counts[tags["bench-unit"]] += 1
            elif EXECUTION_ID_TAG in tags:
                counts[f"{tags[EXECUTION_ID_TAG]}-{tags[UNIT_INDEX_TAG]}"] += 1
    return dict(counts)


def run_once(
    args: argparse.Namespace,
    variant: str,
    processes: int,
    *,
    endpoint: Any,
    proxy: RunTaskBucket,
    workdir: Path,
) -> dict[str, Any]:
    from ecs_endpoint import CREDENTIALS

    endpoint.reset()
    resources = endpoint.resources()
    proxy.reset_counts()
    proxy.refill()
    request = {
        "taskDefinition": resources["task_definition"],
        "launchType": "FARGATE",
        "networkConfiguration": {
            "awsvpcConfiguration": {
                "subnets": [resources["subnet"]],
                "securityGroups": [resources["security_group"]],
            }
        },
    }
    connection = {
        "conn_type": "aws",
        "login": CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "password": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        "extra": {"endpoint_url": proxy.url, "region_name": endpoint.region},
    }
    home = workdir / "airflow-home"
    home.mkdir(exist_ok=True)
    env = {
        **os.environ,
        **CREDENTIALS,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(connection),
    }
    if variant in ("today", "adaptive"):
        env["PYTHONPATH"] = str(args.today_path)
    tries = list(range(args.tries))
    start_at = time.time() + args.start_delay * processes  # every worker imported before the burst
    workers = []
    for p in range(processes):
        spec = {
            "variant": variant,
            # execution ids unique to the run: moto's reset does not clear the harness's memory
            # of clientTokens, and a token reused with new parameters would be a conflict
            "run_id": f"{variant}-{processes}",
            "tries": tries[p::processes],
            "units_per_try": args.units,
            "cluster": endpoint.cluster,
            "region": endpoint.region,
            "request": request,
            "start_at": start_at,
        }
        spec_path = workdir / f"{variant}-{processes}-{p}.json"
        spec_path.write_text(json.dumps(spec))
        log_path = workdir / f"{variant}-{processes}-{p}.log"
        with log_path.open("w") as log_file:
            workers.append(
                subprocess.Popen(
                    [sys.executable, str(BENCH / "launch_worker.py"), str(spec_path)],
                    stdout=subprocess.PIPE,
                    stderr=log_file,
                    env=env,
                    text=True,
                )
            )
    outcomes: dict[str, str] = {}
    started, ended = [], []
    for worker in workers:
        out, _ = worker.communicate(timeout=args.timeout)
        if worker.returncode != 0 or not out.strip():
            raise RuntimeError(f"a {variant} worker failed (code {worker.returncode}); see {workdir}")
        result = json.loads(out.strip().splitlines()[-1])
        outcomes.update(result["units"])
        started.append(result["started"])
        ended.append(result["ended"])
    counts = proxy.counts
    found = {
        unit: n
        for unit, n in tasks_by_unit(endpoint.url, endpoint.cluster, endpoint.region).items()
        if unit.startswith(f"{variant}-{processes}-")
    }
    planned = args.tries * args.units
    refused: Counter[str] = Counter(v for v in outcomes.values() if v != "launched")
    run_task = counts["RunTask"]
    throttled = counts.faulted.get("RunTask", 0)
    wall = max(ended) - min(started)
    ideal = max(planned - args.burst, 0) / args.rate
    return {
        "variant": variant,
        "processes": processes,
        "units": planned,
        "launched": len(found),
        "reported_launched": sum(1 for v in outcomes.values() if v == "launched"),
        "duplicates": sum(n - 1 for n in found.values() if n > 1),
        "refused": dict(refused),
        "run_task_requests": run_task,
        "throttled": throttled,
        "throttled_share": round(throttled / run_task, 4) if run_task else 0.0,
        "requests_by_operation": {op: counts[op] for op in sorted(counts.operations())},
        "wall_s": round(wall, 2),
        "wall_over_ideal": round(wall / ideal, 3) if ideal else None,
        "wall_over_units_per_rate": round(wall / (planned / args.rate), 3),
        "load_average": os.getloadavg(),
    }


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| variant | processes | launched / units | duplicates | refused | RunTask requests "
        "| throttled | share | wall s | wall / (units/rate) |",
        "| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        refused = ", ".join(f"{k} {v}" for k, v in sorted(r["refused"].items())) or "0"
        lines.append(
            f"| {r['variant']} | {r['processes']} | {r['launched']} / {r['units']} | {r['duplicates']} "
            f"| {refused} "
            f"| {r['run_task_requests']} | {r['throttled']} | {r['throttled_share']:.1%} | {r['wall_s']:.1f} "
            f"| {r['wall_over_units_per_rate']:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tries", type=int, default=50)
    parser.add_argument("--units", type=int, default=10)
    parser.add_argument("--processes", default="1,4")
    parser.add_argument("--variants", default="ours,today,official")
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--burst", type=float, default=40.0)
    parser.add_argument("--today-ref", default="main")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument(
        "--start-delay",
        type=float,
        default=12.0,
        help="seconds per worker process given to start and import before the burst",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    variants = [v for v in args.variants.split(",") if v]
    for variant in variants:
        if variant not in VARIANTS:
            parser.error(f"--variants: {variant!r} is not one of {', '.join(VARIANTS)}")
    process_counts = [int(p) for p in args.processes.split(",") if p]
    if any(p < 1 for p in process_counts):
        parser.error("--processes: every count must be at least 1")
    if args.tries < 1 or args.units < 1 or args.rate <= 0 or args.burst < 1:
        parser.error("--tries, --units, --burst must be at least 1 and --rate positive")

    from ecs_endpoint import CREDENTIALS, EcsEndpoint

    os.environ.update(CREDENTIALS)  # for reading moto's tasks back
    # Airflow's logging setup (the connection) would print the proxy's access log to stdout.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("botocore").setLevel(logging.WARNING)
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-launch-") as tmp:
        workdir = Path(tmp)
        if {"today", "adaptive"} & set(variants):
            args.today_path = today_tree(args.today_ref, workdir)
        log("starting moto")
        endpoint = EcsEndpoint.start()
        proxy = RunTaskBucket(endpoint.url, args.rate, args.burst)
        proxy.start()
        try:
            for variant in variants:
                for processes in process_counts:
                    log(f"{variant}, {processes} process(es): {args.tries} tries x {args.units} units")
                    result = run_once(
                        args, variant, processes, endpoint=endpoint, proxy=proxy, workdir=workdir
                    )
                    log(json.dumps(result))
                    results.append(result)
        finally:
            proxy.stop()
            endpoint.stop()
    output = {
        "rate": args.rate,
        "burst": args.burst,
        "tries": args.tries,
        "units_per_try": args.units,
        "runs": results,
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(output, indent=2) + "\n")
    sys.stdout.flush()
    print(table(results), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
