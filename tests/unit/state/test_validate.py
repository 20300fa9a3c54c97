"""Argument checks: tenant ids follow the label rule exactly; errors name the argument."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_compute_provider.errors import ComputeConfigError, ErrorCode
from airflow_compute_provider.state import TenantStatus
from airflow_compute_provider.state import validate as v

#: the issue's pattern, verbatim; ``\Z`` where the issue's ``$`` means "end of string"
ISSUE_PATTERN = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\Z")


@given(st.text(alphabet=st.sampled_from("ab9-Z_.\n\x00é "), max_size=70))
def test_tenant_ids_are_accepted_exactly_when_they_match_the_issues_pattern(candidate: str) -> None:
    if ISSUE_PATTERN.match(candidate):
        assert v.tenant_id(candidate) == candidate
    else:
        with pytest.raises(ComputeConfigError) as refused:
            v.tenant_id(candidate)
        assert refused.value.argument == "tenant_id"


@given(st.from_regex(ISSUE_PATTERN))
def test_every_id_of_the_pattern_is_accepted(candidate: str) -> None:
    assert v.tenant_id(candidate) == candidate


@pytest.mark.parametrize("bad", ["canary-acme\n", "canary\x00b", "canary-" + "x" * 64, "Canary-Secret"])
def test_the_message_names_the_rule_never_the_value(bad: str) -> None:
    """A tenant id may be templated from anything: the message reaches XCom and the log before
    any masking, so it says what is wrong without quoting the value."""
    with pytest.raises(ComputeConfigError) as refused:
        v.tenant_id(bad)
    message = str(refused.value)
    assert "anary" not in message
    assert "tenant_id" in message
    assert "1 to 63 characters" in message
    assert refused.value.error.code is ErrorCode.INVALID_CONFIGURATION


def test_unknown_statuses_name_the_known_ones() -> None:
    with pytest.raises(ComputeConfigError) as refused:
        v.member(TenantStatus, "broken", "status")
    assert refused.value.argument == "status"
    assert "needs_investigation" in str(refused.value)
    assert v.member(TenantStatus, "ready", "status") is TenantStatus.READY


@pytest.mark.parametrize("bad", [0, -1, True, 1.0, "1", None])
def test_attempts_are_positive_integers(bad: object) -> None:
    with pytest.raises(ComputeConfigError) as refused:
        v.positive_int(bad, "attempt")
    assert refused.value.argument == "attempt"


def test_notes_may_span_lines_but_carry_no_other_control_characters() -> None:
    assert v.note("  stopped it by hand\n\tticket OPS-1  ") == "stopped it by hand\n\tticket OPS-1"
    for bad in ("", "  ", "bell\x07", "x" * (v.NOTE_MAX + 1)):
        with pytest.raises(ComputeConfigError):
            v.note(bad)


def test_locators_are_flat_string_pairs() -> None:
    assert v.locator({"namespace": "team-a"}) == {"namespace": "team-a"}
    for bad in ({"cluster": 3}, {"": "x"}, ["region"], {"region": {"nested": "no"}}):
        with pytest.raises(ComputeConfigError) as refused:
            v.locator(bad)
        assert (refused.value.argument or "").startswith("locator")
