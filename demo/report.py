"""What the demo shows on the terminal: a progress display while it works, a table at the end.

Airflow, moto and the Kubernetes control plane all print a lot. ``Terminal`` keeps the real
terminal for the demo's own output (a ``rich`` console on a copy of the original stdout) and
points the process's stdout and stderr, file descriptors included, at the demo's log file, so
whatever the libraries print lands there.

    Terminal.open(log_file)   the console, with everything else going to the log
    Steps                     one progress line per step (setup, then each scenario), with a
                              spinner and the time it took
    results_table()           scenario (marked when as expected), provider, outcome, error
                              code, classification, attempts, tenant state
    checks()                  below it, the fact each scenario checked, or what differed
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from demo.runner import Observed
from demo.scenarios import Scenario


@dataclass
class Terminal:
    console: Console
    log_file: Path
    _saved: tuple[int, int]
    _stream: TextIO

    @classmethod
    def open(cls, log_file: Path) -> Terminal:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        sys.stdout.flush()
        sys.stderr.flush()
        saved = os.dup(1), os.dup(2)
        stream = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8", errors="replace")
        # Not a terminal (CI, a pipe): wide enough for the table on one line per scenario.
        console = Console(file=stream, width=None if stream.isatty() else 170)
        with open(log_file, "wb") as log:
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
        return cls(console, log_file, saved, stream)

    def close(self) -> None:
        """Give stdout and stderr back to the terminal."""
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(self._saved[0], 1)
        os.dup2(self._saved[1], 2)
        self._stream.flush()


class Steps:
    """Progress lines: ``with steps.step("starting moto"):`` shows a spinner, then ✓ or ✗ and
    the time it took."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            SpinnerColumn(finished_text=""),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self._ok: dict[TaskID, bool] = {}

    def __enter__(self) -> Steps:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    @contextmanager
    def step(self, description: str) -> Iterator[TaskID]:
        task = self.progress.add_task(description, total=1)
        self._ok[task] = True
        try:
            yield task
        except BaseException:
            self._ok[task] = False
            self.note(task, f"{description}: failed", ok=False)
            raise
        finally:
            shown = next(t.description for t in self.progress.tasks if t.id == task)
            mark = "[green]✓[/] " if self._ok[task] else "[bold red]✗[/] "
            self.progress.update(task, description=mark + shown, completed=1)

    def note(self, task: TaskID, description: str, *, ok: bool = True) -> None:
        """Change a step's line; ``ok=False`` marks it ✗ when it ends."""
        self._ok[task] = ok
        self.progress.update(task, description=description)


_OUTCOME_STYLE = {"success": "green", "failed": "red"}
_CLASSIFICATION_STYLE = {
    "retriable": "yellow",
    "non_retriable": "red",
    "requires_manual_intervention": "magenta",
}


def results_table(results: Sequence[tuple[Scenario, Observed]]) -> Table:
    table = Table(title="What happened", title_justify="left")
    table.add_column("scenario")
    table.add_column("provider", no_wrap=True)
    table.add_column("outcome")
    table.add_column("error code")
    table.add_column("classification")
    table.add_column("attempts", justify="right", no_wrap=True)
    table.add_column("tenant state")
    for scenario, seen in results:
        outcome = Text(seen.dag_run or "?", style=_OUTCOME_STYLE.get(seen.dag_run or "", ""))
        if seen.route:
            outcome.append(f" -> {seen.route}")
        mark = Text("✓ ", style="green") if seen.as_expected else Text("✗ ", style="bold red")
        table.add_row(
            mark + Text(scenario.title),
            scenario.provider,
            outcome,
            seen.code or "-",
            Text(seen.classification or "-", style=_CLASSIFICATION_STYLE.get(seen.classification or "", "")),
            str(seen.attempts),
            seen.tenant,
        )
    return table


def checks(results: Sequence[tuple[Scenario, Observed]]) -> Text:
    """Below the table: what each scenario checked, or what differed from the expectation."""
    text = Text()
    for scenario, seen in results:
        if seen.as_expected:
            text.append("✓ ", style="green").append(f"{scenario.title}: ", style="bold")
            text.append(seen.verified.detail if seen.verified else "as expected")
        else:
            text.append("✗ ", style="bold red").append(f"{scenario.title}: ", style="bold")
            text.append("; ".join(seen.problems), style="red")
        text.append("\n")
    return text
