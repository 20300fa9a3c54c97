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
Not part of ``.ci/run`` (about thirty minutes in all: the chaos and the triggerer tests dominate,
the lifecycle protections of issue 16 add about two minutes each, and the Compute Health access
mutations start the standalone stack, about four minutes each).
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
        path=f"{PACKAGE}/lifecycle/reconcile.py",
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
        path=f"{PACKAGE}/lifecycle/reconcile.py",
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
        path=f"{PACKAGE}/lifecycle/wait.py",
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
        path=f"{PACKAGE}/lifecycle/arguments.py",
        old="Field(ge=1, le=1000)",
        new="Field(le=1000)",
        caught_by=(
            "tests/reliability/test_fuzz_inputs.py::test_fuzzed_operator_arguments_are_refused_by_name_before_any_request",
        ),
    ),
    Mutation(
        name="arguments-together",
        part="issue 20 argument models",
        removes="the rules across arguments (max_timeout below timeout, neither image nor pod_template)",
        path=f"{PACKAGE}/lifecycle/arguments.py",
        old="    model.check_together(validated)\n",
        new="",
        caught_by=(
            "tests/unit/lifecycle/test_arguments.py::"
            "test_rules_across_arguments_name_the_argument[BaseComputeOperator-values0-max_timeout]",
            "tests/unit/lifecycle/test_arguments.py::"
            "test_rules_across_arguments_name_the_argument[KubernetesComputeOperator-values3-image]",
        ),
    ),
    Mutation(
        name="arguments-template-given",
        part="issue 20 argument models",
        removes="a templated argument counting as given at parse time (a templated image fails the import)",
        path=f"{PACKAGE}/lifecycle/arguments.py",
        old="            validated[name] = value  # given, checked once rendered\n",
        new="",
        caught_by=(
            "tests/unit/lifecycle/test_arguments.py::test_a_template_is_left_for_the_render_and_checked_after_it",
        ),
    ),
    Mutation(
        name="echo",
        part="4 fuzzed input",
        removes="the rule that a refused value is never echoed (the message quotes it again)",
        path=f"{PACKAGE}/lifecycle/arguments.py",
        old='f"{_first_problem(exc)} (got {_kind(value)})"',
        new='f"{_first_problem(exc)} (got {value!r})"',
        caught_by=(
            "tests/reliability/test_fuzz_inputs.py::test_a_refused_value_is_never_echoed_by_its_error",
            "tests/reliability/test_fuzz_inputs.py::test_templated_canaries_reach_no_message_xcom_row_or_log",
        ),
    ),
    Mutation(
        name="health-dags",
        part="7 compute health access",
        removes="the DAG filter of the health page's reads (every recorded DAG shown to everyone)",
        path=f"{PACKAGE}/plugins/queries.py",
        old="known = op.c.dag_id.in_(sorted(vis.dag_ids))",
        new="known = op.c.dag_id.is_not(None)",
        caught_by=(
            "tests/integration/test_compute_health_queries.py::"
            "test_rows_of_unreadable_dags_are_absent_from_lists_counts_chart_and_lookups[sqlite]",
            "tests/slow/test_compute_health_ui.py::test_compute_health_page_api_and_links_on_a_failed_run",
        ),
    ),
    Mutation(
        name="health-force",
        part="7 compute health access",
        removes="the administrator's right for forcing a live hold (every hold treated as stale)",
        path=f"{PACKAGE}/plugins/api.py",
        old="if access.hold_is_stale(holding.task_instance if holding else None):",
        new="if True:",
        caught_by=(
            "tests/slow/test_compute_health_ui.py::test_compute_health_page_api_and_links_on_a_failed_run",
        ),
    ),
    Mutation(
        name="health-csrf",
        part="7 compute health access",
        removes="the cross-site refusal of a release sent with the session cookie alone",
        path=f"{PACKAGE}/plugins/api.py",
        old="if not request.headers.get(CSRF_HEADER) or foreign:",
        new="if False:",
        caught_by=(
            "tests/slow/test_compute_health_ui.py::test_compute_health_page_api_and_links_on_a_failed_run",
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
            "tests/reliability/test_tenant_isolation.py::"
            "test_tenants_with_colliding_execution_ids_never_touch_each_others_units[ecs]",
            "tests/reliability/test_tenant_isolation.py::"
            "test_tenants_with_colliding_execution_ids_never_touch_each_others_units[kubernetes]",
        ),
    ),
    Mutation(
        name="newest-try",
        part="issue 16: clears",
        removes="the newest-try rule: a cleared try starts fresh when ANY earlier try succeeded",
        path=f"{PACKAGE}/lifecycle/launch.py",
        old="return newest is not None and newest.status is OperationStatus.SUCCEEDED",
        new="return any(op.status is OperationStatus.SUCCEEDED for op in earlier)",
        caught_by=(
            "tests/model/test_model_scenarios.py::test_after_a_clear_a_retry_relaunches_only_the_failed_unit",
            "tests/integration/test_tries_ecs.py::test_after_a_clear_a_retry_relaunches_only_the_failed_unit",
        ),
    ),
    Mutation(
        name="fresh-start-live",
        part="issue 16: clears",
        removes="the live-unit guard of a fresh start: a clear after success relaunches a running unit",
        path=f"{PACKAGE}/lifecycle/reconcile.py",
        old="if fresh_start and not _live(status) and not _never_sent(entry, status):",
        new="if fresh_start and not _never_sent(entry, status):",
        caught_by=(
            "tests/unit/lifecycle/test_reconcile.py::test_a_cleared_task_after_success_adopts_a_unit_still_running",
        ),
    ),
    Mutation(
        name="store-numbered-tries",
        part="issue 16: tries",
        removes="the store's numbering of tries: Airflow's try number is the attempt again",
        path=f"{PACKAGE}/state/sql.py",
        old="attempt = newest.attempt + 1 if newest is not None else 1",
        new="attempt = request.attempt or 1",
        caught_by=(
            "tests/model/test_model_scenarios.py::test_a_new_dag_run_of_the_execution_is_its_next_try_and_adopts",
            "tests/integration/test_state_tries.py::test_tries_are_numbered_per_execution_and_keep_airflows_try_number[sqlite]",
            "tests/integration/test_tries.py::test_a_new_dag_run_of_a_custom_execution_id_adopts_what_the_last_run_left[ecs]",
        ),
    ),
    Mutation(
        name="zombie-writes",
        part="issue 16: zombies",
        removes="the refusal of writes from a try that is no longer the newest (an older attempt)",
        path=f"{PACKAGE}/state/sql.py",
        old="if op.attempt == by.attempt and (op.try_token is None or op.try_token == by.token):",
        new="if op.attempt != by.attempt or (op.try_token is None or op.try_token == by.token):",
        caught_by=(
            "tests/model/test_model_scenarios.py::test_a_zombie_try_is_refused_and_changes_nothing",
            "tests/integration/test_state_tries.py::test_a_zombie_try_cannot_write_anything[sqlite-record_intent]",
            "tests/integration/test_state_tries.py::test_a_zombie_cannot_release_the_tenant_a_newer_try_holds[sqlite]",
        ),
    ),
    Mutation(
        name="double-run",
        part="issue 16: double runs",
        removes="the token check: the older process of a double run (same attempt) may still launch",
        path=f"{PACKAGE}/state/sql.py",
        old="if op.attempt == by.attempt and (op.try_token is None or op.try_token == by.token):",
        new="if op.attempt == by.attempt:",
        caught_by=(
            "tests/model/test_model_scenarios.py::test_a_double_run_of_one_try_launches_once",
            "tests/integration/test_state_tries.py::test_a_double_run_the_newest_begin_takes_the_try_over[sqlite]",
            "tests/integration/test_state_tries.py::test_racing_begins_of_one_try_leave_exactly_one_owner[sqlite]",
        ),
    ),
    Mutation(
        name="heartbeat-staleness",
        part="issue 16: clocks",
        removes="the heartbeat in stale-hold detection: a try is judged by its start again",
        path=f"{PACKAGE}/recovery/outcomes.py",
        old="stamps = [op.heartbeat_at, op.live_until, op.finished_at]",
        new="stamps = [op.started_at, op.finished_at]",
        caught_by=(
            "tests/model/test_model_scenarios.py::"
            "test_a_deferred_try_alive_until_its_deadline_keeps_its_hold_after_its_units_ended",
            "tests/integration/test_state_tries.py::"
            "test_a_try_that_started_long_ago_but_renews_its_heartbeat_is_not_stale[sqlite]",
            "tests/integration/test_state_tries.py::test_a_deferred_try_is_alive_until_its_deadline[sqlite]",
        ),
    ),
    Mutation(
        name="intent-lookup",
        part="issue 16 reconciler",
        removes="the reconciler's look-up of intents and refusals (it reads them as never launched)",
        path=f"{PACKAGE}/recovery/outcomes.py",
        old="    if entry.resource_id:\n        return False\n    if entry.status is R.INTENDED:",
        new="    if True:\n        return False\n    if entry.status is R.INTENDED:",
        caught_by=(
            "tests/model/test_model_scenarios.py::"
            "test_a_try_that_dies_after_its_intent_is_found_by_the_next_stale_reconciler_run",
            "tests/model/test_lifecycle_steps.py::test_a_try_that_died_after_its_intent_is_found_followed_and_finished",
            "tests/model/test_lifecycle_steps.py::"
            "test_a_refused_launch_that_did_start_is_found_and_cleaned_up_once_the_try_failed",
        ),
    ),
    Mutation(
        name="late-launch",
        part="issue 16 reconciler",
        removes="the ledger's keeping of a launch reported after its row was settled (dropped as stale)",
        path=f"{PACKAGE}/state/sql.py",
        old="    if _late_launch(row, update, target):",
        new="    if False:",
        caught_by=(
            "tests/model/test_model_scenarios.py::"
            "test_a_launch_sent_after_the_reconciler_gave_up_on_its_try_is_recorded_and_cleaned",
        ),
    ),
    Mutation(
        name="resend-never-launched",
        part="issue 16 reconciler",
        removes="the re-send of an intent the reconciler closed as never launched (a new generation instead)",
        path=f"{PACKAGE}/lifecycle/reconcile.py",
        old="if (entry.status is ResourceStatus.INTENDED and not entry.resource_id) or entry.never_launched:",
        new="if entry.status is ResourceStatus.INTENDED and not entry.resource_id:",
        caught_by=(
            "tests/model/test_model_scenarios.py::"
            "test_a_zombies_launch_after_the_newer_try_launched_does_not_add_a_generation",
        ),
    ),
    Mutation(
        name="refused-resend",
        part="issue 16 reconciler",
        removes="the re-send of a refused re-sent intent where a refusal frees its token (a new generation)",
        path=f"{PACKAGE}/lifecycle/reconcile.py",
        old=(
            "    if refusal_frees_token and entry.refused_resend and not _token_held(entry):\n"
            '        return "resend"\n'
        ),
        new="",
        caught_by=(
            "tests/model/test_model_scenarios.py::test_a_refused_resend_of_a_zombies_intent_keeps_its_token",
            "tests/unit/lifecycle/test_reconcile.py::"
            "test_a_refused_resend_is_resent_with_its_token_where_a_refusal_frees_it",
        ),
    ),
    Mutation(
        name="token-held",
        part="issue 16 reconciler",
        removes="the next generation after a re-send refused because something not ours holds the token",
        path=f"{PACKAGE}/lifecycle/reconcile.py",
        old="entry.refused_resend and not _token_held(entry):",
        new="entry.refused_resend:",
        caught_by=(
            "tests/model/test_model_scenarios.py::"
            "test_a_resend_refused_because_a_stranger_holds_the_token_goes_on_as_the_next_generation",
            "tests/unit/lifecycle/test_reconcile.py::"
            "test_a_refused_resend_is_the_next_generation_where_a_stranger_holds_the_token",
        ),
    ),
    Mutation(
        name="adopt-late-launch",
        part="issue 16 reconciler",
        removes="the ledger following a unit adopted after its row was closed as never launched",
        path=f"{PACKAGE}/state/sql.py",
        old="    if row.never_launched and live_try and update.resource_id is not None:",
        new="    if False:",
        caught_by=(
            "tests/model/test_model_scenarios.py::"
            "test_a_unit_started_by_a_launch_that_outlived_its_lookup_is_adopted_and_followed",
        ),
    ),
    Mutation(
        name="try-ended",
        part="issue 16 reconciler",
        removes="the CONFLICT (try_ended) a try gets when its operation was ended without it",
        path=f"{PACKAGE}/state/sql.py",
        old='                raise _ended(message, op, by, "record_outcome")',
        new="                pass",
        caught_by=(
            "tests/model/test_model_scenarios.py::"
            "test_a_launch_sent_after_the_reconciler_gave_up_on_its_try_is_recorded_and_cleaned",
        ),
    ),
    Mutation(
        name="resume-own-try",
        part="issue 16: deadline",
        removes="a ledger resume writing as the try that deferred (it took the execution's newest try)",
        path=f"{PACKAGE}/operators/base.py",
        old="if ti is None or (op.airflow_ti == ti.key and op.airflow_try_number == airflow_try)",
        new="if True",
        caught_by=(
            "tests/model/test_model_scenarios.py::test_a_deferral_timeout_resume_of_an_older_try_writes_nothing",
        ),
    ),
    Mutation(
        name="resume-deferred-process",
        part="issue 16: deadline",
        removes="a ledger resume's check that the try's current process is the one that deferred",
        path=f"{PACKAGE}/operators/base.py",
        old="deferred = mine is not None and mine.live_until is not None",
        new="deferred = True",
        caught_by=(
            "tests/model/test_model_scenarios.py::"
            "test_a_deferral_timeout_resume_after_a_double_run_took_the_try_over_writes_nothing",
        ),
    ),
    Mutation(
        name="deadline",
        part="issue 16: deadline",
        removes="execution_timeout from a deferred try's deadline (Airflow 3.3 does not bound it)",
        path=f"{PACKAGE}/operators/base.py",
        old="execution_timeout=self.execution_timeout if self.deferrable else None,",
        new="execution_timeout=None,",
        caught_by=(
            "tests/integration/test_deadlines.py::"
            "test_a_deferred_try_ends_at_its_execution_timeout_with_its_work_left_running",
        ),
    ),
    Mutation(
        name="deferral-timeout",
        part="issue 16: deadline",
        removes="the handling of a resume with TaskDeferralTimeout (an Airflow that enforces it)",
        path=f"{PACKAGE}/operators/base.py",
        old="        except TaskDeferralTimeout:\n            if next_method != TRIGGER_FAIL_REPR:",
        new="        except ZeroDivisionError:\n            if next_method != TRIGGER_FAIL_REPR:",
        caught_by=(
            "tests/integration/test_deadlines.py::"
            "test_a_resume_with_task_deferral_timeout_ends_the_try_like_its_execution_timeout",
        ),
    ),
    Mutation(
        name="pending-deadline",
        part="issue 16: deadline",
        removes="the failure of a unit still stuck pending at the deadline (a bare timeout instead)",
        path=f"{PACKAGE}/triggers/progress.py",
        old="if at_deadline or since is None or now - since >= pending_grace_period:",
        new="if since is None or now - since >= pending_grace_period:",
        caught_by=(
            "tests/unit/lifecycle/test_deadline.py::"
            "test_a_unit_stuck_at_the_deadline_fails_with_its_own_error_within_its_grace[IMAGE_NOT_FOUND-non_retriable]",
            "tests/integration/test_deadlines.py::"
            "test_a_pod_stuck_at_the_deadline_ends_the_try_with_its_own_error[image-not-found-deferrable]",
        ),
    ),
    Mutation(
        name="invalid-holds",
        part="issue 16: requirement 2.2",
        removes="the hold of the tenant for arguments our own validation refused",
        path=f"{PACKAGE}/operators/base.py",
        old="            self._hold_for_invalid_arguments(context, error)\n",
        new="",
        caught_by=(
            "tests/integration/test_ecs_operator.py::test_invalid_argument_fails_before_any_call_and_holds_the_tenant",
            "tests/integration/test_invalid_arguments_hold.py::"
            "test_an_invalid_argument_of_a_known_tenant_holds_it_without_touching_its_history",
        ),
    ),
    Mutation(
        name="malformed",
        part="issue 16: malformed answers",
        removes="the check that a RunTask answer's task has a taskArn",
        path=f"{PACKAGE}/hooks/ecs.py",
        old="if isinstance(arn, str) and arn:",
        new="if True:",
        caught_by=(
            "tests/integration/test_malformed_answers.py::"
            "test_an_ecs_answer_without_a_task_arn_refuses_only_its_own_unit",
        ),
    ),
    Mutation(
        name="malformed-event",
        part="issue 16: malformed answers",
        removes="execute_complete's guard against a trigger event without its resume part",
        path=f"{PACKAGE}/operators/base.py",
        old="if not _usable_resume(resume):",
        new="if False:",
        caught_by=(
            "tests/integration/test_malformed_answers.py::"
            "test_a_trigger_event_without_its_resume_part_settles_from_the_ledger",
        ),
    ),
    Mutation(
        name="rollback-final",
        part="issue 16: retry_failed",
        removes="the rollback of what retry_failed left running when no retry follows",
        path=f"{PACKAGE}/lifecycle/decisions.py",
        old="        error = roll_back_left_running(opened, t, error, make_backend)\n",
        new="        pass\n",
        caught_by=(
            "tests/integration/test_retry_failed_final.py::"
            "test_retry_failed_without_a_retry_rolls_back_what_it_left_running",
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
        name="connection-read-again",
        part="distributed: a database restart",
        removes="reading again after a connection lookup failed (the wait ends, the tenant is held)",
        path=f"{PACKAGE}/normalize/__init__.py",
        old="        or error.root_cause.provider_code == _CONNECTION_NOT_FETCHED\n",
        new="",
        caught_by=("tests/unit/test_pollers.py::test_a_connection_that_could_not_be_fetched_is_read_again",),
    ),
    Mutation(
        name="connection-lookup-patience",
        part="distributed: a database restart",
        removes="reading a connection again when a client is built (a launch fails as misconfigured)",
        path=f"{PACKAGE}/hooks/connection_lookup.py",
        old="retry=tenacity.retry_if_exception(connection_not_fetched),",
        new="retry=tenacity.retry_never,",
        caught_by=(
            "tests/integration/test_kubernetes_hook.py::"
            "test_a_connection_airflow_cannot_fetch_for_a_moment_is_read_again",
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
    Mutation(
        name="logs-boundary",
        part="container logs",
        removes="the boundary between tries: a reattaching try prints again what the earlier try printed",
        path=f"{PACKAGE}/operators/base.py",
        old="since = previous_read(self._store, t.tenant_id, t.execution_id, t.attempt)",
        new="since = None",
        caught_by=(
            "tests/integration/test_container_logs_kubernetes.py::test_a_reattaching_try_prints_no_line_twice[blocking]",
            "tests/integration/test_container_logs_ecs.py::test_a_reattaching_try_prints_no_line_twice[deferrable]",
        ),
    ),
    Mutation(
        name="logs-mask",
        part="container logs",
        removes="masking of container lines: a secret the container prints reaches the task log",
        path=f"{PACKAGE}/lifecycle/container_logs.py",
        old='self._log.info("[unit %s] %s", where, _masked(line.text))',
        new='self._log.info("[unit %s] %s", where, line.text)',
        caught_by=(
            "tests/integration/test_container_logs_kubernetes.py::test_success_prints_every_line_once_with_secrets_masked[blocking]",
            "tests/integration/test_container_logs_ecs.py::test_success_prints_every_line_once_with_secrets_masked[deferrable]",
        ),
    ),
    Mutation(
        name="logs-last-lines",
        part="container logs",
        removes="the failed unit's last lines in its error",
        path=f"{PACKAGE}/operators/base.py",
        old="logs.with_last_lines(err, s.unit, started=bool(s.running_since))",
        new="err",
        caught_by=(
            "tests/integration/test_container_logs_kubernetes.py::test_a_failed_pod_carries_its_last_lines_in_its_error[deferrable]",
            "tests/integration/test_container_logs_ecs.py::test_a_failed_task_carries_its_last_lines_in_its_error[blocking]",
        ),
    ),
    Mutation(
        name="logs-cut",
        part="container logs",
        removes="the bound of one line: an enormous line reaches the task log and the error whole",
        path=f"{PACKAGE}/hooks/container_logs.py",
        old="if len(cleaned) > limit:",
        new="if False:",
        caught_by=(
            "tests/integration/test_container_logs_kubernetes.py::test_enormous_and_binary_lines_are_cut_and_marked",
        ),
    ),
    Mutation(
        name="logs-binary",
        part="container logs",
        removes="the binary check: a line of raw bytes reaches the task log as noise",
        path=f"{PACKAGE}/hooks/container_logs.py",
        old="if odd * 4 > len(text):",
        new="if False:",
        caught_by=(
            "tests/integration/test_container_logs_kubernetes.py::test_enormous_and_binary_lines_are_cut_and_marked",
        ),
    ),
    Mutation(
        name="logs-slow",
        part="container logs",
        removes="the stop after a slow read: a slow logs API costs its timeout at every read",
        path=f"{PACKAGE}/lifecycle/container_logs.py",
        old="if took <= SLOW_READ_SECONDS:",
        new="if True:",
        caught_by=(
            "tests/integration/test_container_logs_kubernetes.py::test_a_refused_or_faulted_log_api_is_a_warning[slow]",
            "tests/integration/test_container_logs_ecs.py::test_a_refused_or_faulted_logs_api_is_a_warning[slow]",
        ),
    ),
    Mutation(
        name="contract-v1-1",
        part="container logs",
        removes="leaving an unset output out of the JSON: every error stops being a valid v1 error",
        path=f"{PACKAGE}/errors/model.py",
        old="exclude_if=lambda value: value is None,",
        new="",
        caught_by=("tests/unit/test_errors.py::test_v1_1_is_additive_an_error_without_output_is_a_v1_error",),
    ),
    Mutation(
        name="triggerer-masking",
        part="distributed: triggerer redaction",
        removes="masking by value in the triggerer's process: events and poller warnings keep the secrets",
        path=f"{PACKAGE}/triggers/masking.py",
        old="text = text.replace(secret, REDACTED)",
        new="pass",
        caught_by=(
            "tests/distributed/test_triggerer_masking.py::test_a_trigger_masks_the_launch_secrets_in_its_own_process",
        ),
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
