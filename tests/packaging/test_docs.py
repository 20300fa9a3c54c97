"""The documentation builds as ``make docs`` builds it, with no warning, and lists every guide.

* Sphinx (MyST Markdown, autodoc of the public API) builds ``docs/`` with ``-W``: a broken link
  between pages, a heading anchor that is gone, a docstring autodoc cannot render, or a page in
  no table of contents fails;
* every how-to guide of ``docs/howto/`` is in ``get_provider_info()``'s ``how-to-guide`` list
  (as Airflow providers publish theirs), in the index's table of contents, and in the README.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"


def test_make_docs_builds_without_a_warning(tmp_path: Path) -> None:
    makefile = (REPO / "Makefile").read_text()
    recipe = re.search(r"^docs:.*\n\t\$\(PY\) (-m sphinx .*)$", makefile, re.M)
    assert recipe is not None, "the Makefile has no docs target running sphinx"
    assert " -W " in recipe.group(1), "make docs must treat warnings as errors"
    done = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(DOCS), str(tmp_path)],
        check=False,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    api = (tmp_path / "api.html").read_text()
    for documented in (
        "operators.ecs.EcsComputeOperator",
        "operators.kubernetes.KubernetesComputeOperator",
        "policy.ComputeRetryPolicy",
        "errors.ComputeError",
    ):
        assert f'id="airflow_compute_provider.{documented}"' in api, f"autodoc left out {documented}"


def test_every_how_to_guide_is_listed_where_airflow_and_readers_look() -> None:
    from airflow_compute_provider.get_provider_info import get_provider_info

    on_disk = {f"/docs/howto/{p.name}" for p in (DOCS / "howto").glob("*.md")}
    assert len(on_disk) >= 8
    info = get_provider_info()
    listed = {guide for integration in info["integrations"] for guide in integration.get("how-to-guide", [])}
    assert listed == on_disk
    index = (DOCS / "index.md").read_text()
    readme = (REPO / "README.md").read_text()
    for guide in on_disk:
        stem = guide.removeprefix("/docs/").removesuffix(".md")
        assert f"\n{stem}\n" in index, f"docs/index.md's table of contents lacks {stem}"
        assert f"]({guide.lstrip('/')})" in readme, f"README does not link {guide}"
