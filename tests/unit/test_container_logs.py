"""The pure parts of container logs: how a raw line is made safe, and the cursor that keeps a
line from being printed twice. What the readers and the lifecycle do with them is proved end to
end (``tests/integration/test_container_logs_*.py``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from airflow_compute_provider.errors import ComputeConfigError
from airflow_compute_provider.hooks.container_logs import LogCursor, clean_line
from airflow_compute_provider.lifecycle.arguments import ComputeArguments, validate_arguments
from airflow_compute_provider.lifecycle.container_logs import _bounded

T0 = datetime(2026, 12, 6, 11, 0, tzinfo=UTC)


def test_a_line_is_cut_and_marked_and_control_characters_are_escaped() -> None:
    assert clean_line("plain\n") == "plain"
    assert clean_line("x" * 10, limit=4) == "xxxx [... line cut at 4 characters]"
    assert clean_line("bell\x07 and \x1b[31mred") == "bell\\x07 and \\x1b[31mred"
    assert clean_line("tab\tkept") == "tab\tkept"


def test_a_line_of_mostly_bytes_is_named_not_printed() -> None:
    assert clean_line(bytes(range(0, 32)) * 2) == "[binary output: 64 bytes not shown]"
    assert clean_line("caf\xe9".encode("latin-1")) == "caf\ufffd"  # one odd byte: still text


def test_the_cursor_prints_each_line_once_also_at_the_same_instant() -> None:
    cursor = LogCursor()
    assert cursor.admits(T0, 0)
    cursor = cursor.after(T0).after(T0)  # two lines at T0 printed
    assert not cursor.admits(T0, 0)
    assert not cursor.admits(T0, 1)
    assert cursor.admits(T0, 2)  # a third line at T0, read later
    assert cursor.admits(T0 + timedelta(microseconds=1), 0)
    assert not cursor.admits(T0 - timedelta(seconds=1), 0)
    assert cursor.admits(None, 0)  # no timestamp: never held back


def test_the_errors_lines_are_bounded_newest_kept() -> None:
    lines, truncated = _bounded([f"{i:04d}" + "y" * 600 for i in range(40)])
    assert truncated
    assert all(len(line) <= 500 + len(" [... line cut at 500 characters]") for line in lines)
    assert lines[-1].startswith("0039")
    assert sum(len(line) for line in lines) <= 8000
    assert _bounded(["a", "b"]) == (["a", "b"], False)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("get_logs", "yes please"),
        ("container_logs", False),
        ("container_logs", ["main", ""]),
        ("log_lines_on_failure", -1),
        ("log_lines_on_failure", True),
        ("log_fetch_interval", 0),
    ],
)
def test_bad_log_arguments_are_refused_by_name(name: str, value: object) -> None:
    with pytest.raises(ComputeConfigError) as caught:
        validate_arguments(ComputeArguments, {name: value}, skip_templates=False)
    assert caught.value.argument == name
