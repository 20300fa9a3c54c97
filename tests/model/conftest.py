"""The lifecycle model's closing line (``lifecycle_model.TALLY``), printed whenever it ran, in
``tests/model`` alone as in the whole suite (``make test``)::

lifecycle model: <examples> examples, <steps> steps, <violations> violations
"""

from __future__ import annotations

from typing import Any

from tests.model.lifecycle_model import TALLY


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not TALLY.ran:
        return
    terminalreporter.section("lifecycle model")
    terminalreporter.write_line(TALLY.coverage())
    terminalreporter.write_line(TALLY.line())
