"""``python -m demo``: run the example DAGs' scenarios and print what happened (see ``demo/__init__``).

Exit status: 0 when every scenario that ran came out as expected, 1 when one did not, 2 when
the demo could not set itself up.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from demo.home import cache_root
from demo.report import Steps, Terminal, checks, results_table


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m demo",
        description="Run the example DAGs for real (Airflow dag.test, moto as ECS, a local "
        "Kubernetes API server) and print what happened.",
    )
    kube = parser.add_mutually_exclusive_group()
    kube.add_argument(
        "--kube",
        action="store_true",
        help="run the Kubernetes scenarios, building the local API server first if needed "
        "(default: run them only when it is already built)",
    )
    kube.add_argument("--no-kube", action="store_true", help="skip the Kubernetes scenarios")
    parser.add_argument(
        "--ui",
        action="store_true",
        help="afterwards keep an `airflow standalone` UI running with the demo's runs in it (Ctrl-C stops)",
    )
    parser.add_argument("--only", nargs="+", metavar="KEY", help="run only these scenarios (see --list)")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # Nothing that imports Airflow may be imported before prepare_home() has set AIRFLOW_HOME.
    from demo.scenarios import SCENARIOS, by_key

    if args.list:
        for s in SCENARIOS:
            print(f"{s.key:<14} {s.provider:<11} {s.title}  (dags/{s.dag_id}.py)")
        return 0
    try:
        chosen = by_key(args.only) if args.only else list(SCENARIOS)
    except KeyError as exc:
        print(exc.args[0], file=sys.stderr)
        return 2
    root = cache_root()
    terminal = Terminal.open(root / "demo.log")
    try:
        return _run(args, chosen, terminal)
    except Exception:
        traceback.print_exc()  # into the log
        terminal.console.print(f"[bold red]The demo could not run; the log says why: {terminal.log_file}")
        return 2
    finally:
        terminal.close()


def _run(args: argparse.Namespace, chosen: list[Any], terminal: Terminal) -> int:
    from demo.home import prepare_home

    console = terminal.console
    console.print(
        "[bold]airflow-compute-provider demo[/]: the example DAGs of dags/ run through Airflow against "
        "moto (as ECS) and a local Kubernetes API server.\n"
        f"Everything Airflow prints goes to {terminal.log_file}\n"
    )
    backends: dict[str, Any] = {}
    results: list[tuple[Any, Any]] = []
    try:
        with Steps(console) as steps:
            with steps.step("isolated AIRFLOW_HOME with a SQLite metadata DB"):
                home = prepare_home()
            from demo.backends import EcsBackend, KubeBackend, kube_binaries_built

            with steps.step("moto server as the ECS endpoint, behind a fault proxy"):
                backends["ecs"] = EcsBackend()
            use_kube = args.kube or (not args.no_kube and kube_binaries_built())
            kube_reason = "--no-kube was given" if args.no_kube else "the local API server is not built"
            if use_kube and any(s.provider == "kubernetes" for s in chosen):
                what = "local Kubernetes API server and node simulator"
                with steps.step(what + (" (building it first, once)" if not kube_binaries_built() else "")):
                    backends["kubernetes"] = KubeBackend(build=True)
            skipped = [s for s in chosen if s.provider not in backends]
            for scenario in (s for s in chosen if s.provider in backends):
                results.append((scenario, _run_one(steps, scenario, backends[scenario.provider])))
        console.print()
        console.print(results_table(results))
        console.print(checks(results))
        failed = [s for s, seen in results if not seen.as_expected]
        _summary(console, results, skipped, kube_reason, terminal.log_file)
        if args.ui:
            _serve_ui(console, home, backends)
        return 1 if failed else 0
    finally:
        for backend in backends.values():
            backend.stop()


def _run_one(steps: Steps, scenario: Any, backend: Any) -> Any:
    from demo.runner import Observed, run_scenario

    label = f"{scenario.provider:<10} {scenario.title}  [dim](dags/{scenario.dag_id}.py)"
    with steps.step(label) as task:
        try:
            with backend.stage() as stage:
                seen = run_scenario(scenario, stage)
        except Exception as exc:
            traceback.print_exc()  # into the log
            seen = Observed(None, None, None, 0, "?", None, None, [f"crashed: {type(exc).__name__}: {exc}"])
        mark = "[green]as expected" if seen.as_expected else "[bold red]NOT as expected"
        steps.note(task, f"{label}  {mark}", ok=seen.as_expected)
    return seen


def _summary(console: Any, results: list[Any], skipped: list[Any], kube_reason: str, log_file: Path) -> None:
    failed = sum(1 for _, seen in results if not seen.as_expected)
    style = "green" if not failed else "bold red"
    console.print(f"[{style}]{len(results) - failed} of {len(results)} scenarios came out as expected.[/]")
    if skipped:
        console.print(
            f"Skipped {len(skipped)} Kubernetes scenario(s): {kube_reason}. `make demo DEMO_ARGS=--kube` "
            "runs them, building the API server from Debian's source package first (a few minutes, once)."
        )
    console.print(f"Airflow's own output: {log_file}")


def _serve_ui(console: Any, home: Any, backends: dict[str, Any]) -> None:
    from demo.ui import PASSWORD, USERNAME, start_standalone

    with console.status("starting airflow standalone (api-server, scheduler, dag-processor, triggerer)"):
        stack = start_standalone(home.path)
    console.print(
        f"\n[bold]Airflow UI:[/] {stack.base_url}   login [bold]{USERNAME}[/] / [bold]{PASSWORD}[/]"
    )
    ecs = backends.get("ecs")
    if ecs is not None:
        with ecs.stage() as stage:
            conf = {"tenant": "acme", **stage.params()}
        console.print(
            "The demo's runs are in it. To trigger an ECS example yourself, use this conf "
            f"(the resources exist in the demo's moto):\n  {json.dumps(conf)}"
        )
    console.print("Ctrl-C stops the UI, moto and the cluster.")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.is_set() and stack.process.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
