# make demo: the example DAGs run for real, and a table of what happened.
# make test: everything CI runs.
# Both from a fresh machine: Python 3.11+ and apt are all they need.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
DEMO_ARGS ?=

.PHONY: demo test lint venv test-deps clean model docs soak

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

lint: venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

# Debian packages, the Kubernetes binaries the integration tests start (cached after one build)
# and the container images the real test node runs (built from Debian's busybox-static).
test-deps:
	scripts/ensure-postgres
	scripts/ensure-redis
	scripts/ensure-chromium
	scripts/ensure-containerd
	scripts/build-kube
	scripts/build-test-images

test: lint test-deps
	$(PY) -m pytest $(PYTEST_ARGS)

# The how-to guides and the API reference (Sphinx, MyST Markdown, autodoc) into docs/_build/html;
# a warning fails the build (tests/packaging/test_docs.py runs the same build in CI).
docs: venv
	$(PY) -m sphinx -W --keep-going -q -b html docs docs/_build/html

# The lifecycle model (tests/model), deep: MODEL_EXAMPLES random examples (CI runs a fixed 100).
MODEL_EXAMPLES ?= 20000
MODEL_STEPS ?= 20
model: venv
	MODEL_EXAMPLES=$(MODEL_EXAMPLES) MODEL_STEPS=$(MODEL_STEPS) $(PY) -m pytest -q -p no:cacheprovider \
		tests/model/test_lifecycle_model.py $(PYTEST_ARGS)

# The distributed soak (tests/distributed/test_soak.py) at full size on the CeleryExecutor stack:
# SOAK_OPS operations (CI runs the test's small default size as part of `make test`).
SOAK_OPS ?= 200
soak: venv test-deps
	SOAK_OPS=$(SOAK_OPS) $(PY) -m pytest -q -s -p no:cacheprovider tests/distributed/test_soak.py $(PYTEST_ARGS)

# The scenarios of dags/ through Airflow against moto (as ECS) and, when it is built or
# DEMO_ARGS=--kube asks, the local Kubernetes API server. DEMO_ARGS=--ui keeps a web UI running
# with the runs in it; DEMO_ARGS=--help lists the rest.
demo: venv
	$(PY) -m demo $(DEMO_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache docs/_build
