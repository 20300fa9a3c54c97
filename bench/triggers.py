"""Benchmark: our shared-poller ``ComputeStatusTrigger`` against the official ECS and Kubernetes
triggers, on the real endpoints, in one run.

    python bench/triggers.py --n 1000 --intervals 3 --json results.json
        [--providers ecs,kubernetes] [--sides ours,official] [--interval SECONDS]
        [--warmup INTERVALS]

For each provider it starts the endpoint (a moto server; etcd + kube-apiserver + scheduler +
controller manager with the node simulator), puts a counting proxy in front of it
(``CountingProxy``: the tests' ``FaultProxy`` with no faults), and measures each side in turn:

    1. N units that keep running (ECS tasks; pods, one execution each)
    2. a child process (``runner.py``) starts N triggers in one event loop: ours
       (``ComputeStatusTrigger``, one unit each) or the official ones (``TaskDoneTrigger``,
       ``KubernetesPodTrigger``), all polling every ``--interval`` seconds
    3. warm-up: until every trigger made its first request (a thousand official triggers take
       a minute or more to build their clients), then ``--warmup`` more intervals
    4. ``--intervals`` intervals are measured: requests through the proxy (all operations),
       and the child's CPU time (a Kubernetes list and the opening of a watch
       are one request each, told apart in ``requests_by_operation``)
    5. the units are finished in ten batches spread over one interval (so that finish times
       fall all over the poll cycle), the time of each finish recorded; the child reports when
       each trigger fired, its total CPU time and its peak RSS

The two sides never run at the same time and each watches its own fresh N units (ECS: moto is
reset in between; Kubernetes: a namespace per side). Printed: a table per provider with the
ratios ours / official; written (``--json``): ``{"ecs": {"ours": M, "official": M},
"kubernetes": {...}}`` for the providers run, where each M has ``requests_per_interval``,
``cpu_seconds`` (the child's CPU from the triggers' start until the last one fired),
``peak_rss_mb``, ``detect_delay_s`` (the slowest unit: its trigger firing minus its finish) and
a few more details (see README.md).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO_ROOT = BENCH.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tests.harness.proxy import FaultProxy, RequestInfo  # noqa: E402

SIDES = ("ours", "official")
STARTUP_TIMEOUT = 900.0
FINISH_BATCHES = 10
REQUIRED = ("requests_per_interval", "cpu_seconds", "peak_rss_mb", "detect_delay_s")
WATCH_QUERY = re.compile(r"[?&]watch=(true|1)(&|$)", re.IGNORECASE)  # kubernetes_asyncio sends "True"


class CountingProxy(FaultProxy):
    """The harness's proxy, also telling a Kubernetes watch from a list.

    The proxy names an operation by method and path without the query, so a list of pods and
    the opening of a watch on them (``?watch=true``) are both ``GET .../pods``. Both count as
    one request when they arrive (a watch stays open for minutes, one request); this keeps
    apart how many of them were watches."""

    def __init__(self, upstream_url: str) -> None:
        super().__init__(upstream_url)
        self._watch_lock = threading.Lock()
        self._watches: Counter[str] = Counter()

    def _choose_fault(self, info: RequestInfo) -> Any:
        # Called once for every request as it arrives, with the query.
        if WATCH_QUERY.search(info.path):
            with self._watch_lock:
                self._watches[info.operation] += 1
        return super()._choose_fault(info)

    def reset_counts(self) -> None:
        with self._watch_lock:
            self._watches.clear()
        super().reset_counts()

    def watches(self) -> dict[str, int]:
        with self._watch_lock:
            return dict(self._watches)


# -- one side -----------------------------------------------------------------------------------


class Runner:
    """The child process running one side's triggers; JSON lines both ways."""

    def __init__(self, spec: Mapping[str, Any], env: Mapping[str, str], workdir: Path) -> None:
        spec_path = workdir / f"{spec['provider']}-{spec['side']}.json"
        spec_path.write_text(json.dumps(spec))
        self.log_path = workdir / f"{spec['provider']}-{spec['side']}.log"
        with self.log_path.open("w") as log_file:
            self.process = subprocess.Popen(
                [sys.executable, str(BENCH / "runner.py"), str(spec_path)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log_file,
                env={**os.environ, **env},
                text=True,
            )

    def read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            tail = "\n".join(self.log_path.read_text(errors="replace").splitlines()[-30:])
            raise RuntimeError(f"the runner exited early (code {self.process.wait()}):\n{tail}")
        result: dict[str, Any] = json.loads(line)
        return result

    def ask(self, command: Mapping[str, Any]) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        return self.read()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


def measure(
    *,
    spec: dict[str, Any],
    env: Mapping[str, str],
    proxy: CountingProxy,
    finish: Callable[[Sequence[str]], Mapping[str, float]],
    args: argparse.Namespace,
    workdir: Path,
) -> dict[str, Any]:
    """Run one side (see the module docstring) and return its measurements."""
    units: list[str] = spec["units"]
    interval: float = spec["interval"]
    label = f"{spec['provider']}/{spec['side']}"
    runner = Runner(spec, env, workdir)
    try:
        imported = runner.read()
        proxy.reset_counts()
        runner.read()  # every trigger started
        # Warm up: every trigger's first poll made (the official triggers build a client each
        # first, which takes a while for a thousand), then ``--warmup`` intervals of routine.
        first = spec["first_requests"]
        log(f"{label}: {len(units)} triggers started; waiting for their first {first} request(s)")
        wait_until(lambda: proxy.counts.total >= first, timeout=STARTUP_TIMEOUT)
        log(f"{label}: warming up for {args.warmup} interval(s)")
        time.sleep(args.warmup * interval)
        startup_counts, startup_watches = proxy.counts, proxy.watches()
        proxy.reset_counts()
        before = runner.ask({"op": "mark"})
        time.sleep(args.intervals * interval)
        counts, watches = proxy.counts, proxy.watches()
        after = runner.ask({"op": "mark"})
        log(f"{label}: {counts.total} requests in {args.intervals} interval(s); finishing every unit")
        finished = finish_spread(finish, units, spread=interval)
        result = runner.ask({"op": "collect", "timeout": 3 * interval + 120})
    finally:
        runner.close()
    fired: dict[str, list[Any]] = result["fired"]
    delays = sorted(fired[u][0] - finished[u] for u in units if u in fired and u in finished)
    return {
        "requests_per_interval": counts.total / args.intervals,
        "cpu_seconds": round(result["cpu"], 3),
        "peak_rss_mb": round(result["peak_rss_mb"], 1),
        "detect_delay_s": round(delays[-1], 3) if delays else None,
        # details
        "detect_delay_p50_s": round(statistics.median(delays), 3) if delays else None,
        "cpu_seconds_per_interval": round((after["cpu"] - before["cpu"]) / args.intervals, 4),
        "rss_after_imports_mb": round(imported["rss_mb"], 1),
        "startup_requests": startup_counts.total,
        "startup_requests_by_operation": by_operation(startup_counts, startup_watches),
        "requests_by_operation": by_operation(counts, watches),
        "triggers": len(units),
        "fired": len(fired),
        "fired_as_expected": sum(1 for value in fired.values() if value[1]),
        "interval_s": interval,
        "intervals": args.intervals,
    }


def by_operation(counts: Any, watches: Mapping[str, int]) -> dict[str, int]:
    """Requests per operation; Kubernetes paths with the namespace and pod name left out, and
    the opening of a watch (``?watch=true``) apart from a plain list."""
    grouped: dict[str, int] = {}

    def add(kind: str, n: int) -> None:
        kind = re.sub(r"/namespaces/[^/]+", "/namespaces/{ns}", kind)
        kind = re.sub(r"/pods/[^/]+", "/pods/{name}", kind)
        if n:
            grouped[kind] = grouped.get(kind, 0) + n

    for operation in counts.operations():
        opened = watches.get(operation, 0)
        add(operation, counts[operation] - opened)
        add(f"{operation}?watch", opened)
    return dict(sorted(grouped.items()))


# -- providers ----------------------------------------------------------------------------------


def bench_ecs(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    from ecs_endpoint import CREDENTIALS, EcsEndpoint

    from airflow_compute_provider.hooks.ecs import EcsComputeHook

    log("ecs: starting moto")
    endpoint = EcsEndpoint.start()
    proxy = CountingProxy(endpoint.url)
    proxy.start()
    try:
        connection = {
            "conn_type": "aws",
            "login": CREDENTIALS["AWS_ACCESS_KEY_ID"],
            "password": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            "extra": {"endpoint_url": proxy.url, "region_name": endpoint.region},
        }
        env = {**CREDENTIALS, **airflow_env(workdir), "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(connection)}
        os.environ.update(env)  # the hook below reads the connection to name its region
        config = EcsComputeHook(cluster=endpoint.cluster, region_name=endpoint.region).backend_config()
        results = {}
        for side in args.sides:
            endpoint.reset()
            n = side_n(args, side)
            log(f"ecs/{side}: creating {n} running tasks")
            arns = endpoint.running(n)
            env.pop("AIRFLOW__COMPUTE__ECS_EVENTS_QUEUES", None)
            if args.events and side == "ours":
                queue_url = endpoint.events()
                env["AIRFLOW__COMPUTE__ECS_EVENTS_QUEUES"] = json.dumps({endpoint.cluster: queue_url})
            spec = {
                "provider": "ecs",
                "side": side,
                "units": arns,
                "interval": args.interval,
                "config": config,
                "locator": {"region": endpoint.region, "cluster": endpoint.cluster},
                "first_requests": first_requests("ecs", side, n),
                **get_logs_spec(args),
            }
            results[side] = measure(
                spec=spec, env=env, proxy=proxy, finish=endpoint.finish, args=args, workdir=workdir
            )
        return results
    finally:
        proxy.stop()
        endpoint.stop()


def bench_kubernetes(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    from kube_endpoint import KubeEndpoint

    log("kubernetes: starting the control plane and the node simulator")
    endpoint = KubeEndpoint.start(pods_per_node=2 * max(side_n(args, s) for s in args.sides) + 10)
    proxy = CountingProxy(endpoint.server)
    proxy.start()
    try:
        kubeconfig = workdir / "proxied-kubeconfig"
        kubeconfig.write_text(json.dumps(proxied_kubeconfig(proxy.url, endpoint.token)))
        connection = {"conn_type": "kubernetes", "extra": {"kube_config_path": str(kubeconfig)}}
        env = {**airflow_env(workdir), "AIRFLOW_CONN_KUBERNETES_DEFAULT": json.dumps(connection)}
        results = {}
        for side in args.sides:
            n = side_n(args, side)
            log(f"kubernetes/{side}: creating {n} running pods")
            namespace, names = endpoint.running(n)
            spec = {
                "provider": "kubernetes",
                "side": side,
                "units": names,
                "interval": args.interval,
                "config": {"kubernetes_conn_id": "kubernetes_default", "namespace": namespace},
                "locator": {"namespace": namespace},
                "first_requests": first_requests("kubernetes", side, n),
                **get_logs_spec(args),
            }

            def finish(units: Sequence[str], namespace: str = namespace) -> Mapping[str, float]:
                return endpoint.finish(namespace, units)

            results[side] = measure(
                spec=spec, env=env, proxy=proxy, finish=finish, args=args, workdir=workdir
            )
        return results
    finally:
        proxy.stop()
        endpoint.stop()


def proxied_kubeconfig(server: str, token: str) -> dict[str, Any]:
    """The proxy speaks plain HTTP on loopback; the cluster's bearer token goes through it."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "bench", "cluster": {"server": server}}],
        "users": [{"name": "bench", "user": {"token": token}}],
        "contexts": [{"name": "bench", "context": {"cluster": "bench", "user": "bench"}}],
        "current-context": "bench",
    }


def airflow_env(workdir: Path) -> dict[str, str]:
    home = workdir / "airflow-home"
    home.mkdir(exist_ok=True)
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        # Both sides log at WARNING: the benchmark measures polling, not log formatting.
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
    }


# -- reporting ----------------------------------------------------------------------------------

COLUMNS = (
    ("requests_per_interval", "requests/interval", "{:.1f}"),
    ("cpu_seconds", "CPU s", "{:.2f}"),
    ("cpu_seconds_per_interval", "CPU s/interval", "{:.3f}"),
    ("peak_rss_mb", "peak RSS MB", "{:.0f}"),
    ("detect_delay_s", "detect max s", "{:.2f}"),
    ("detect_delay_p50_s", "detect p50 s", "{:.2f}"),
)


PER_TRIGGER = frozenset({"requests_per_interval", "cpu_seconds", "cpu_seconds_per_interval"})


def table(results: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> str:
    header = ["provider", "side", *(title for _, title, _ in COLUMNS), "fired ok"]
    rows = [header]
    for provider, sides in results.items():
        for side in SIDES:
            if side not in sides:
                continue
            m = sides[side]
            cells = [_cell(fmt, m.get(key)) for key, _, fmt in COLUMNS]
            rows.append([provider, side, *cells, f"{m['fired_as_expected']}/{m['triggers']}"])
        if set(SIDES) - set(sides):
            continue
        # Sides of different sizes (--official-n) are compared per trigger where a cost grows
        # with the triggers (requests, CPU); memory and delays are compared as they are.
        scale = sides["official"]["triggers"] / sides["ours"]["triggers"]
        ratios = [
            _ratio(
                sides["ours"].get(key) * scale
                if key in PER_TRIGGER and sides["ours"].get(key) is not None
                else sides["ours"].get(key),
                sides["official"].get(key),
            )
            for key, _, _ in COLUMNS
        ]
        rows.append([provider, "ours/official" if scale == 1 else "ours/official per trigger", *ratios, ""])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows)


def _cell(fmt: str, value: Any) -> str:
    return "-" if value is None else fmt.format(value)


def _ratio(ours: Any, official: Any) -> str:
    if ours is None or not official:
        return "-"
    return f"{ours / official:.4f}"


def finish_spread(
    finish: Callable[[Sequence[str]], Mapping[str, float]],
    units: Sequence[str],
    spread: float,
    batches: int = FINISH_BATCHES,
) -> dict[str, float]:
    """Finish the units in ``batches`` evenly spaced over ``spread`` seconds: finish times then
    fall all over the poll cycle, as real work's do, for ours and the official triggers alike."""
    finished: dict[str, float] = {}
    start = time.monotonic()
    for batch in range(batches):
        time.sleep(max(0.0, start + spread * batch / batches - time.monotonic()))
        finished.update(finish(units[batch::batches]))
    return finished


def wait_until(check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("the triggers did not make their first requests in time")
        time.sleep(0.2)


def get_logs_spec(args: argparse.Namespace) -> dict[str, Any]:
    """``{"get_logs": bool}`` when ``--get-logs`` was given (the runner then builds our triggers
    as the operator does), else nothing."""
    return {} if args.get_logs is None else {"get_logs": args.get_logs == "on"}


def side_n(args: argparse.Namespace, side: str) -> int:
    """Triggers of one side: ``--n``, or ``--official-n`` for the official side when given (the
    official triggers cannot run 10,000 in one process: about 1.9 GB per 1,000 for ECS)."""
    if side == "official" and args.official_n is not None:
        return int(args.official_n)
    return int(args.n)


def first_requests(provider: str, side: str, n: int) -> int:
    """Requests that show every trigger has polled once: ours read every unit in their first
    round (DescribeTasks takes 100 tasks; one pod list), the official ones one request each."""
    if side == "official":
        return n
    return math.ceil(n / 100) if provider == "ecs" else 1


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, required=True, help="triggers (and units) per side")
    parser.add_argument("--intervals", type=int, default=3, help="poll intervals measured")
    parser.add_argument(
        "--interval",
        type=int,
        default=None,
        help="poll interval in whole seconds (the official ECS trigger takes an int); "
        "default: N/50, at least 2, so that the endpoints can answer N requests per interval",
    )
    parser.add_argument(
        "--warmup", type=float, default=1.0, help="intervals after every trigger's first poll"
    )
    parser.add_argument("--providers", default="ecs,kubernetes", help="comma-separated: ecs, kubernetes")
    parser.add_argument(
        "--sides",
        default=",".join(SIDES),
        help="comma-separated: ours, official (one side alone: a long window without the "
        "official triggers' cost; no ratios then)",
    )
    parser.add_argument(
        "--official-n",
        type=int,
        default=None,
        help="triggers of the official side when not --n (ratios are then per trigger: see README)",
    )
    parser.add_argument(
        "--events",
        action="store_true",
        help="ECS: our side reads task state change events from an SQS queue (the ECS harness "
        "sends them); DescribeTasks only as the fallback",
    )
    parser.add_argument(
        "--get-logs",
        choices=("on", "off"),
        default=None,
        help="our side's triggers built as the compute operator defers (lifecycle.wait."
        "status_trigger) with get_logs on or off, instead of directly",
    )
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    if args.interval is None:
        args.interval = max(2, math.ceil(args.n / 50))
    providers = [p.strip() for p in args.providers.split(",") if p.strip()]
    unknown = set(providers) - {"ecs", "kubernetes"}
    if unknown:
        parser.error(f"unknown providers: {', '.join(sorted(unknown))}")
    args.sides = [s for s in SIDES if s in {p.strip() for p in args.sides.split(",")}]
    if not args.sides:
        parser.error(f"--sides: one or both of {', '.join(SIDES)}")

    results: dict[str, Any] = {}
    # Airflow's logging setup (imported with the hooks) would print the proxy's access log.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="bench-triggers-") as tmp:
        workdir = Path(tmp)
        if "ecs" in providers:
            results["ecs"] = bench_ecs(args, workdir)
        if "kubernetes" in providers:
            results["kubernetes"] = bench_kubernetes(args, workdir)
    print(f"N = {args.n}, poll interval {args.interval}s, {args.intervals} interval(s) measured")
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
