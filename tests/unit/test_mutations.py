"""Every mutation of ``tests/reliability/mutations.py`` still has something to mutate.

The mutations run outside CI (half an hour); a refactoring that moves or rewrites a line one of
them edits would otherwise make it stale unnoticed until the next full run. Here each one's text
must stand exactly once in the file it names, and each test it names must exist.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability.mutations import MUTATIONS, REPO, Mutation


@pytest.mark.parametrize("mutation", MUTATIONS, ids=lambda m: m.name)
def test_the_mutation_finds_its_text_once_where_it_says(mutation: Mutation) -> None:
    text = (REPO / mutation.path).read_text()
    assert text.count(mutation.old) == 1, f"{mutation.name}: its text is not once in {mutation.path}"


@pytest.mark.parametrize("mutation", MUTATIONS, ids=lambda m: m.name)
def test_the_tests_that_must_catch_it_exist(mutation: Mutation) -> None:
    for node in mutation.caught_by:
        path, _, name = node.partition("::")
        function = name.split("[", 1)[0]
        assert f"def {function}(" in Path(REPO / path).read_text(), f"{mutation.name}: no test {node}"
