"""The README and the pages of ``docs/`` say what the code does: checks that fail when they drift apart.

* the generated tables (``docs/tables.py``) are their sources': the error codes the catalog's,
  the operators' parameter tables their argument models';
* the parameter tables (``docs/concepts.md`` and the how-to guides) name every parameter of the
  operators and of the retry policy;
* the migration guide (``docs/howto/migrating.md``) names every parameter of the installed
  ``EcsRunTaskOperator`` and ``KubernetesPodOperator`` (a provider release that adds one makes
  this fail until the guide says where it went);
* the README's quickstart commands are Makefile targets, and ``.ci/run`` runs ``make test``;
* the example DAG table (``docs/example-dags.md``) lists every file of ``dags/``, with demo
  scenario keys that exist;
* every relative link of the README, of ``docs/`` and of ``tests/README.md`` points at a file
  of the repository.
"""

from __future__ import annotations

import importlib.util
import inspect
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()
DOCS = REPO / "docs"


def _page(relative: str) -> str:
    return (DOCS / relative).read_text()


def _section(title: str, level: int = 2, within: str = README) -> str:
    """The text of the first section of ``within`` whose heading starts with ``title``, up to the
    next heading of the same level or above."""
    heading = re.compile(rf"^{'#' * level} {re.escape(title)}.*$", re.M)
    match = heading.search(within)
    assert match is not None, f"no section {title!r}"
    end = re.compile(rf"^#{{1,{level}}} ", re.M).search(within, match.end())
    return within[match.end() : end.start() if end else len(within)]


def _mentioned(text: str) -> set[str]:
    """Every name written in backticks."""
    return set(re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)`", text))


def _own_parameters(cls: type, stop_at: tuple[type, ...] = ()) -> set[str]:
    """The keyword parameters of ``cls.__init__`` and its bases' up to (not including) ``stop_at``."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if klass in stop_at or klass is object:
            break
        if "__init__" in vars(klass):
            names |= {
                name
                for name, p in inspect.signature(klass.__init__).parameters.items()
                if name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
            }
    return names


def _load_docs_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("tables", REPO / "docs" / "tables.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_error_code_table_is_the_catalogs() -> None:
    from airflow_compute_provider.errors import CATALOG

    docs = _load_docs_module()
    assert docs.current("error-codes") == docs.table("error-codes"), (
        "docs/error-contract.md drifted from the catalog: run python docs/tables.py"
    )
    rows = [line for line in docs.table("error-codes").splitlines() if line.startswith("| `")]
    assert len(rows) == len(CATALOG)


@pytest.mark.parametrize("name", ["parameters", "ecs-parameters", "kubernetes-parameters"])
def test_the_parameter_tables_are_the_argument_models(name: str) -> None:
    docs = _load_docs_module()
    assert docs.current(name) == docs.table(name), (
        f"docs/{docs.TABLES[name][0]} drifted from its argument model: run python docs/tables.py"
    )


def test_a_parameter_table_follows_a_change_of_its_model() -> None:
    # The check above would pass on a frozen copy; the table must come from the model itself.
    from airflow_compute_provider.operators.ecs import EcsArguments

    docs = _load_docs_module()
    info = EcsArguments.model_fields["cluster"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(info, "description", "X.")
        assert docs.table("ecs-parameters") != docs.current("ecs-parameters")


def test_the_generated_table_follows_a_catalog_change() -> None:
    # The check above would pass on a frozen copy; the table must come from the catalog itself.
    from airflow_compute_provider.errors import catalog

    docs = _load_docs_module()
    entry = catalog.CATALOG[catalog.ErrorCode.CONFLICT]
    changed = {
        **catalog.CATALOG,
        catalog.ErrorCode.CONFLICT: catalog.CatalogEntry(entry.classification, "X."),
    }
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(catalog, "CATALOG", changed)
        from airflow_compute_provider import errors

        patch.setattr(errors, "CATALOG", changed)
        assert docs.table("error-codes") != docs.current("error-codes")


def test_the_reference_names_every_parameter() -> None:
    from airflow.sdk import BaseOperator

    from airflow_compute_provider.operators.base import BaseComputeOperator
    from airflow_compute_provider.operators.branch import ComputeErrorBranchOperator
    from airflow_compute_provider.operators.ecs import EcsComputeOperator
    from airflow_compute_provider.operators.kubernetes import KubernetesComputeOperator
    from airflow_compute_provider.policy import Abort, ComputeRetryPolicy, Retry

    # (page, section heading, level): the parameters its table must name
    tables: dict[tuple[str, str, int], set[str]] = {
        ("concepts.md", "Parameters both compute operators take", 2): _own_parameters(
            BaseComputeOperator, (BaseOperator,)
        )
        | {"retry_policy"},
        ("howto/ecs-operator.md", "Parameters", 2): _own_parameters(
            EcsComputeOperator, (BaseComputeOperator,)
        ),
        ("howto/kubernetes-operator.md", "Parameters", 2): _own_parameters(
            KubernetesComputeOperator, (BaseComputeOperator,)
        ),
        ("howto/retry-policy-and-branching.md", "`ComputeErrorBranchOperator`", 3): _own_parameters(
            ComputeErrorBranchOperator, (ComputeErrorBranchOperator.__mro__[1],)
        ),
        ("howto/retry-policy-and-branching.md", "`ComputeRetryPolicy`, `Retry`, `Abort`", 3): _own_parameters(
            ComputeRetryPolicy
        )
        | (set(Retry.model_fields) - {"action"})
        | (set(Abort.model_fields) - {"action"}),
    }
    for (page, title, level), parameters in tables.items():
        assert parameters, title
        missing = parameters - _mentioned(_section(title, level=level, within=_page(page)))
        assert not missing, f"docs/{page} {title!r} does not name {sorted(missing)}"


def _official_parameters(cls: Any) -> set[str]:
    from airflow.sdk import BaseOperator

    return _own_parameters(cls, (BaseOperator,))


def test_the_migration_guide_names_every_parameter_of_the_official_operators() -> None:
    from airflow.providers.amazon.aws.operators.ecs import EcsRunTaskOperator
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

    guide = _page("howto/migrating.md")
    for title, cls in (
        ("`EcsRunTaskOperator`", EcsRunTaskOperator),
        ("`KubernetesPodOperator`", KubernetesPodOperator),
    ):
        section = _section(title, level=2, within=guide)
        official = _official_parameters(cls)
        assert len(official) > 20, f"{cls.__name__}: the signature walk found too little"
        first_column = {m for line in section.splitlines() for m in _mentioned(line.split(" | ")[0])}
        missing = official - first_column
        assert not missing, (
            f"the migration guide from {cls.__name__} does not say where {sorted(missing)} went"
        )


def test_the_quickstart_commands_are_what_make_and_ci_run() -> None:
    quickstart = _section("Quickstart")
    makefile = (REPO / "Makefile").read_text()
    for target in ("demo", "test"):
        assert f"make {target}" in quickstart
        assert re.search(rf"^{target}:", makefile, re.M), f"the Makefile has no {target} target"
    assert re.search(r"^\s*exec make test\s*$", (REPO / ".ci" / "run").read_text(), re.M)
    assert "docker compose up" in quickstart
    assert (REPO / "docker-compose.yml").is_file()


def test_the_example_dag_table_lists_every_dag_and_real_demo_scenarios() -> None:
    from demo.scenarios import SCENARIOS

    section = _section("Example DAGs", level=1, within=_page("example-dags.md"))
    rows = [line for line in section.splitlines() if line.startswith("| [`")]
    files = {re.search(r"\(\.\./dags/([^)]+)\)", row).group(1) for row in rows}  # type: ignore[union-attr]
    assert files == {p.name for p in (REPO / "dags").glob("*.py")}
    keys = {k for row in rows for k in re.findall(r"`([a-z-]+)`", row.rsplit(" | ", 1)[-1])}
    assert keys == {s.key for s in SCENARIOS}


@pytest.mark.parametrize(
    "page",
    [REPO / "README.md", REPO / "tests" / "README.md", *sorted(DOCS.rglob("*.md"))],
    ids=lambda p: str(p.relative_to(REPO)),
)
def test_every_relative_link_points_at_a_file(page: Path) -> None:
    if "_build" in page.parts:
        return
    for target in re.findall(r"\]\(([^)#\s]+)\)", page.read_text()):
        if "://" in target:
            continue
        assert (page.parent / target).exists(), f"{page.name} links to {target}, which does not exist"
