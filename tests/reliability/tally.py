"""The suite's counters, filled by the tests and printed once at the end of the run.

    TALLY           the one ``Tally`` of this pytest process
    Tally.add(...)  a test adds what it did (operations run, faults injected on the wire,
                    processes killed, fuzzed inputs checked, canaries planted) and what its
                    audit found (units lost, duplicated, leaked: zero when the test passes)
    summary_line()  ``reliability: N operations, F faults, C crashes, I inputs, K canaries;
                    lost 0, duplicated 0, leaked 0``

``conftest.py`` prints the line from ``pytest_terminal_summary`` whenever a reliability test ran.
The counts are what the tests did, not what they meant to do: a test that failed half way
contributes what it got through.
"""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass
class Tally:
    tests: int = 0
    operations: int = 0
    faults: int = 0
    crashes: int = 0
    inputs: int = 0
    canaries: int = 0
    lost: int = 0
    duplicated: int = 0
    leaked: int = 0

    def add(self, **counts: int) -> None:
        known = {f.name for f in fields(self)}
        for name, value in counts.items():
            if name not in known:
                raise KeyError(f"no counter {name!r}")
            setattr(self, name, getattr(self, name) + int(value))

    def summary_line(self) -> str:
        return (
            f"reliability: {self.operations} operations, {self.faults} faults, {self.crashes} crashes, "
            f"{self.inputs} inputs, {self.canaries} canaries; "
            f"lost {self.lost}, duplicated {self.duplicated}, leaked {self.leaked}"
        )


TALLY = Tally()
