"""The lifecycle model's closing line (``lifecycle_model.TALLY``), printed whenever it ran::

lifecycle model: <examples> examples, <steps> steps, <violations> violations
"""

from __future__ import annotations

from typing import Any

from tests.model.lifecycle_model import TALLY


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not TALLY.ran:
        return
    terminalreporter.section("lifecycle model")
    for key, trace in TALLY.first_known.items():
        terminalreporter.write_line(f"known violation {key}; first seen after:")
        terminalreporter.write_line("    " + trace.replace("\n", "\n    "))
    terminalreporter.write_line(TALLY.line())
