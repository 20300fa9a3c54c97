"""Each part of the reliability suite, shown to fail when the protection it tests is removed.

    python -m tests.reliability.mutations            every mutation, one after the other
    python -m tests.reliability.mutations crashes    only the named ones (see MUTATIONS)
    python -m tests.reliability.mutations --list     what each one removes and which test must catch it

A mutation is one small edit to the product (or to the suite's own reporting, for the summary
line): a line of code that a protection rests on, replaced. Each runs in a throwaway clone of
this repository's HEAD, with the clone first on ``PYTHONPATH`` so that pytest, its ``dag.test()``
children and the ``airflow standalone`` stack all import the mutated code, and runs only the
tests that must catch it. A mutation passes when every one of those tests fails; one that is
not caught means the suite no longer proves what it claims.

The edit is found by its text, in the file named or, if a refactoring moved it, in any module
of the package; text that is no longer anywhere is reported as a stale mutation, not skipped.
Not part of ``.ci/run`` (about six minutes: the chaos and the triggerer tests dominate).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = "airflow_compute_provider"


@dataclass(frozen=True)
class Mutation:
    name: str
    part: str
    removes: str
    path: str
    old: str
    new: str
    #: test node ids, every one of which must fail
    caught_by: tuple[str, ...]


MUTATIONS = (
    Mutation(
        name="chaos",
        part="1 chaos",
        removes="the look for refused units the provider did start (a rollback then misses them)",
        path=f"{PACKAGE}/operators/reconcile.py",
        old="refused_keys = {(ul.index, ul.generation) for ul, _ in refused}",
        new="refused_keys: set[tuple[int, int]] = set()",
        caught_by=(
            "tests/reliability/test_chaos.py::test_kubernetes_operations_under_faults_end_as_their_scenarios_dictate",
        ),
    ),
    Mutation(
        name="crashes",
        part="2 crashes",
        removes="adoption of live units: a next try relaunches a unit that is pending or running",
        path=f"{PACKAGE}/operators/reconcile.py",
        old="status.phase in (UnitPhase.PENDING, UnitPhase.RUNNING, UnitPhase.SUCCEEDED)",
        new="status.phase is UnitPhase.SUCCEEDED",
        caught_by=(
            "tests/reliability/test_crashes.py::test_ecs_worker_killed_at_every_step_converges_on_the_next_try",
            "tests/reliability/test_crashes.py::test_kubernetes_worker_killed_at_every_step_converges_on_the_next_try",
        ),
    ),
    Mutation(
        name="triggerer",
        part="3 triggerer restart",
        removes="the describe of units a trigger never saw (it started after its deadline)",
        path=f"{PACKAGE}/operators/wait.py",
        old="if not unseen:",
        new="if True:",
        caught_by=(
            "tests/reliability/test_triggerer_restart.py::"
            "test_triggerer_killed_while_operations_wait_every_operation_completes_once",
        ),
    ),
    Mutation(
        name="fuzz",
        part="4 fuzzed input",
        removes="the lower bound of count (count=0 accepted)",
        path=f"{PACKAGE}/operators/arguments.py",
        old="Field(ge=1, le=1000)",
        new="Field(le=1000)",
        caught_by=(
            "tests/reliability/test_fuzz_inputs.py::test_fuzzed_operator_arguments_are_refused_by_name_before_any_request",
        ),
    ),
    Mutation(
        name="canaries",
        part="5 secret canaries",
        removes="the masking of registered secrets a provider echoes in its error",
        path=f"{PACKAGE}/observability.py",
        old="    data = error.to_json_dict()\n    masked = _masked(redact, data)\n",
        new="    data = error.to_json_dict()\n    masked = data\n",
        caught_by=(
            "tests/reliability/test_secret_canaries.py::test_no_canary_reaches_a_log_an_xcom_or_the_state_store",
        ),
    ),
    Mutation(
        name="isolation",
        part="6 tenant isolation",
        removes="the tenant id from the execution key (names, tokens, startedBy)",
        path=f"{PACKAGE}/hooks/base.py",
        old='f"{tenant_id}\\x00{execution_id}"',
        new='f"{execution_id}"',
        caught_by=(
            "tests/reliability/test_tenant_isolation.py::test_distinct_tenant_ids_stay_distinct_in_every_provider_side_name",
            "tests/reliability/test_tenant_isolation.py::test_ecs_tenants_with_colliding_execution_ids_never_touch_each_others_units",
            "tests/reliability/test_tenant_isolation.py::"
            "test_kubernetes_tenants_with_colliding_execution_ids_never_touch_each_others_units",
        ),
    ),
    Mutation(
        name="summary",
        part="7 summary line",
        removes="trylast from the hook that prints the line (it no longer ends the run's summaries)",
        path="tests/reliability/conftest.py",
        old="@pytest.hookimpl(trylast=True)\n",
        new="@pytest.hookimpl()\n",
        caught_by=(
            "tests/reliability/test_summary_line.py::test_a_reliability_run_ends_with_the_summary_line",
        ),
    ),
    Mutation(
        name="shared-budget",
        part="scale: launches under rate limits",
        removes="the process-wide request budget: every ECS hook gets a budget of its own",
        path=f"{PACKAGE}/hooks/budget.py",
        old="found = _budgets.get(key)",
        new="found = None",
        caught_by=(
            "tests/integration/test_ecs_budget.py::test_every_ecs_hook_of_the_process_shares_one_budget",
        ),
    ),
    Mutation(
        name="event-order",
        part="scale: ECS events",
        removes="the version check: a duplicated or late (older) ECS event overwrites newer state",
        path=f"{PACKAGE}/triggers/ecs_events.py",
        old="return version > current.version",
        new="return True",
        caught_by=(
            "tests/integration/test_ecs_events.py::test_lost_duplicated_or_reordered_events_change_nothing[duplicated]",
            "tests/integration/test_ecs_events.py::test_lost_duplicated_or_reordered_events_change_nothing[reordered]",
        ),
    ),
    Mutation(
        name="delete-after-apply",
        part="scale: ECS events",
        removes="delete-after-apply: an event that could not be applied is deleted from the queue anyway",
        path=f"{PACKAGE}/triggers/ecs_events.py",
        old="continue  # not applied: leave it for SQS to deliver again",
        new="outcome = False",
        caught_by=("tests/integration/test_ecs_events.py::test_an_event_is_deleted_only_once_applied",),
    ),
)


@dataclass(frozen=True)
class Outcome:
    mutation: Mutation
    edited: str
    failed: tuple[str, ...]
    seconds: float

    @property
    def caught(self) -> bool:
        return bool(self.edited) and set(self.mutation.caught_by) <= set(self.failed)


def _apply(clone: Path, mutation: Mutation) -> str:
    """Edit the clone; the path edited, or "" when the text is nowhere (a stale mutation)."""
    candidates = [clone / mutation.path, *sorted((clone / PACKAGE).rglob("*.py"))]
    for path in candidates:
        if not path.is_file():
            continue
        text = path.read_text()
        if text.count(mutation.old) == 1:
            path.write_text(text.replace(mutation.old, mutation.new))
            return str(path.relative_to(clone))
    return ""


def run(mutation: Mutation) -> Outcome:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"mutation-{mutation.name}-") as tmp:
        clone = Path(tmp) / "repo"
        subprocess.run(["git", "clone", "-q", "--shared", str(REPO), str(clone)], check=True)
        edited = _apply(clone, mutation)
        if not edited:
            return Outcome(mutation, "", (), time.monotonic() - started)
        env = {**os.environ, "PYTHONPATH": str(clone)}
        child = subprocess.run(
            [sys.executable, "-m", "pytest", *mutation.caught_by, "-p", "no:cacheprovider", "-q", "-rf"],
            cwd=clone,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        failed = tuple(re.findall(r"^FAILED (\S+)", child.stdout, flags=re.MULTILINE))
        return Outcome(mutation, edited, failed, time.monotonic() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="mutations to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTATIONS if not args.names or m.name in args.names]
    if args.list or not chosen:
        for m in MUTATIONS:
            print(
                f"{m.name:<10} part {m.part}: removes {m.removes}\n{'':<11}caught by {', '.join(m.caught_by)}"
            )
        return 0 if chosen or args.list else 2
    outcomes = []
    for mutation in chosen:
        outcome = run(mutation)
        outcomes.append(outcome)
        verdict = "caught" if outcome.caught else ("STALE" if not outcome.edited else "NOT CAUGHT")
        print(f"{verdict:<10} {mutation.part:<22} {outcome.seconds:6.0f} s  {mutation.removes}", flush=True)
        for test in outcome.failed:
            print(f"{'':<11}failed: {test}", flush=True)
    return 0 if all(o.caught for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
