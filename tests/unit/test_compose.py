"""``docker-compose.yml`` is a deployment that can work: valid, and its services agree with each other.

Docker cannot run on these machines, so nothing here starts a container. What is checked:

* the file against the Compose specification's JSON Schema (the copy ``check-jsonschema`` ships;
  never fetched at test time), with a bad variant to show the schema is strict;
* the Airflow services: one image built from this checkout by ``deploy/Dockerfile``, Airflow 3.3,
  every component there once, each command one Airflow's own CLI parser accepts, every
  ``AIRFLOW__SECTION__KEY`` an option Airflow's configuration knows;
* the wiring: database URLs against the postgres service and ``deploy/postgres-init.sql``, the
  Celery broker against the redis service, ``aws_default`` against the moto service's port,
  ``kubernetes_default`` against the kubeconfig ``deploy/k3s-setup.sh`` writes into a shared
  volume, ``compute_state_default`` turned into a SQLAlchemy URL by the package's own code;
* the plumbing: bind-mounted paths exist, named volumes are declared, dependencies exist, form no
  cycle, and one-shot services are not restarted.

``tests/integration/test_example_dags.py`` runs ``deploy/bootstrap_moto.py`` against a plain
moto server and an example DAG against what it created, with this file's ``aws_default``.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from importlib import resources
from importlib.metadata import version
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "deploy" / "Dockerfile"
POSTGRES_INIT = REPO / "deploy" / "postgres-init.sql"
K3S_SETUP = REPO / "deploy" / "k3s-setup.sh"

# Options the celery provider adds to Airflow's configuration; that provider is in the
# apache/airflow image but not in this environment.
CELERY_PROVIDER_OPTIONS = {("celery", "result_backend")}

AIRFLOW_COMPONENTS = {
    ("api-server",),
    ("scheduler",),
    ("dag-processor",),
    ("triggerer",),
    ("celery", "worker"),
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return loaded


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    vendored = resources.files("check_jsonschema") / "builtin_schemas" / "vendor" / "compose-spec.json"
    loaded: dict[str, Any] = json.loads(vendored.read_text())
    return loaded


def _services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = compose["services"]
    return services


def _airflow_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Services running an ``airflow`` command: the image's entrypoint takes ``airflow ARGS``."""
    return {name: s for name, s in _services(compose).items() if (s.get("command") or [None])[0] == "airflow"}


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    assert isinstance(env, dict), "environment is written as a mapping"
    return {k: str(v) for k, v in env.items()}


def _volumes(service: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for spec in service.get("volumes") or []:
        source, target, *_ = spec.split(":")
        yield source, target


# -- the specification ------------------------------------------------------------------------


def test_the_file_follows_the_compose_specification(compose: dict[str, Any], schema: dict[str, Any]) -> None:
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(compose)]
    assert errors == []

    broken = copy.deepcopy(compose)
    broken["services"]["airflow-scheduler"]["depends_on"]["postgres"]["condition"] = "service_ready"
    broken["services"]["redis"]["restart_policy"] = "always"
    assert len(list(validator.iter_errors(broken))) >= 2, "the schema checks values and unknown keys"


# -- the Airflow services ---------------------------------------------------------------------


def test_every_airflow_component_runs_once_from_one_image_built_from_this_checkout(
    compose: dict[str, Any],
) -> None:
    airflow = _airflow_services(compose)
    commands = sorted(tuple(s["command"][1:]) for s in airflow.values())
    assert commands == sorted([*AIRFLOW_COMPONENTS, ("db", "migrate")])

    builds = {json.dumps(s.get("build"), sort_keys=True) for s in airflow.values()}
    images = {s.get("image") for s in airflow.values()}
    assert len(builds) == 1
    assert len(images) == 1
    build = next(iter(airflow.values()))["build"]
    assert (REPO / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE

    wanted = build["args"]["AIRFLOW_VERSION"]
    assert re.fullmatch(r"3\.3\.\d+", wanted), "the compose file deploys Airflow 3.3"
    assert next(iter(images)).endswith(f":{wanted}")
    dockerfile = DOCKERFILE.read_text()
    assert f"ARG AIRFLOW_VERSION={wanted}" in dockerfile
    assert re.search(r"^FROM apache/airflow:\$\{AIRFLOW_VERSION\}", dockerfile, re.M)
    # the package from the checkout, with the image's Airflow pinned
    assert "COPY --chown=airflow:root airflow_compute_provider /opt/compute-provider/" in dockerfile
    assert (
        'pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" /opt/compute-provider' in dockerfile
    )
    for copied in re.findall(r"^COPY \S+ (.+) /opt/compute-provider/", dockerfile, re.M):
        for path in copied.split():
            assert (REPO / path).exists(), f"the Dockerfile copies {path}, which is not in the repository"


def test_each_airflow_command_is_one_airflows_cli_accepts(compose: dict[str, Any]) -> None:
    from airflow.cli.cli_parser import get_parser

    parser = get_parser()
    for name, service in _airflow_services(compose).items():
        args = service["command"][1:]
        if args[0] == "celery":
            # The celery provider is in the apache/airflow image, not in this environment.
            assert _env(service)["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
            continue
        parsed = parser.parse_args(args)
        assert callable(parsed.func), f"{name}: {args}"


def test_every_airflow_setting_is_an_option_airflow_knows(compose: dict[str, Any]) -> None:
    from airflow.configuration import conf

    known = conf.configuration_description
    for name, service in _airflow_services(compose).items():
        for variable in _env(service):
            if not variable.startswith("AIRFLOW__"):
                continue
            section, option = variable.removeprefix("AIRFLOW__").lower().split("__", 1)
            if (section, option) in CELERY_PROVIDER_OPTIONS:
                continue
            assert option in known.get(section, {}).get("options", {}), f"{name}: unknown setting {variable}"


def test_every_airflow_service_has_the_same_settings_and_the_dags_where_airflow_reads_them(
    compose: dict[str, Any],
) -> None:
    airflow = _airflow_services(compose)
    settings = {json.dumps(_env(s), sort_keys=True) for s in airflow.values()}
    assert len(settings) == 1
    env = _env(next(iter(airflow.values())))
    for name, service in airflow.items():
        mounts = dict((target, source) for source, target in _volumes(service))
        assert mounts.get(env["AIRFLOW__CORE__DAGS_FOLDER"]) == "./dags", name
        passwords = env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]
        folder, file = passwords.rsplit("/", 1)
        assert (REPO / mounts[folder] / file).is_file(), f"{name}: {passwords} is not mounted"


# -- the wiring ---------------------------------------------------------------------------------


def _airflow_env(compose: dict[str, Any]) -> dict[str, str]:
    return _env(next(iter(_airflow_services(compose).values())))


def test_the_databases_are_the_postgres_services(compose: dict[str, Any]) -> None:
    postgres = _env(_services(compose)["postgres"])
    env = _airflow_env(compose)
    for variable in ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CELERY__RESULT_BACKEND"):
        url = urlsplit(env[variable])
        assert (url.hostname, url.username, url.password, url.path.lstrip("/")) == (
            "postgres",
            postgres["POSTGRES_USER"],
            postgres["POSTGRES_PASSWORD"],
            postgres["POSTGRES_DB"],
        ), variable

    from airflow.models import Connection

    from airflow_compute_provider.state.config import DEFAULT_CONN_ID, connection_url

    state = Connection.from_json(env[f"AIRFLOW_CONN_{DEFAULT_CONN_ID.upper()}"], conn_id=DEFAULT_CONN_ID)
    url = urlsplit(
        connection_url(
            state.conn_type,
            host=state.host,
            login=state.login,
            password=state.password,
            port=state.port,
            schema=state.schema,
            extra=state.extra_dejson,
        )
    )
    assert url.scheme.startswith("postgresql")
    assert url.hostname == "postgres"
    init = POSTGRES_INIT.read_text()
    assert f"CREATE ROLE {url.username} LOGIN PASSWORD '{url.password}';" in init
    assert f"CREATE DATABASE {url.path.lstrip('/')} OWNER {url.username};" in init
    mounted = dict((target, source) for source, target in _volumes(_services(compose)["postgres"]))
    assert any(
        t.startswith("/docker-entrypoint-initdb.d/") and s == "./deploy/postgres-init.sql"
        for t, s in mounted.items()
    )


def test_the_celery_broker_is_the_redis_service(compose: dict[str, Any]) -> None:
    broker = urlsplit(_airflow_env(compose)["AIRFLOW__CELERY__BROKER_URL"])
    assert broker.scheme == "redis"
    assert broker.hostname in _services(compose)
    assert _services(compose)[broker.hostname]["image"].startswith("redis:")


def test_aws_default_is_the_moto_service(compose: dict[str, Any]) -> None:
    from airflow.models import Connection

    conn = Connection.from_json(_airflow_env(compose)["AIRFLOW_CONN_AWS_DEFAULT"], conn_id="aws_default")
    assert conn.conn_type == "aws"
    endpoint = urlsplit(conn.extra_dejson["endpoint_url"])
    moto = _services(compose)[endpoint.hostname]
    assert moto["image"].startswith("motoserver/moto:")
    assert moto["command"][moto["command"].index("-p") + 1] == str(endpoint.port)
    # the moto the tests run against, by major version
    assert moto["image"].split(":")[1].split(".")[0] == version("moto").split(".")[0]
    bootstrap = _services(compose)["moto-bootstrap"]
    assert urlsplit(_env(bootstrap)["MOTO_ENDPOINT"]).netloc == endpoint.netloc


def test_kubernetes_default_reads_the_kubeconfig_k3s_setup_writes(compose: dict[str, Any]) -> None:
    from airflow.models import Connection

    services = _services(compose)
    conn = Connection.from_json(
        _airflow_env(compose)["AIRFLOW_CONN_KUBERNETES_DEFAULT"], conn_id="kubernetes_default"
    )
    path = conn.extra_dejson["kube_config_path"]
    folder, file = path.rsplit("/", 1)
    for name, service in _airflow_services(compose).items():
        assert folder in {target for _, target in _volumes(service)}, name
    airflow_volume = next(
        s for s, t in _volumes(next(iter(_airflow_services(compose).values()))) if t == folder
    )

    setup = services["k3s-setup"]
    setup_mounts = {t: s for s, t in _volumes(setup)}
    script = K3S_SETUP.read_text()
    written = re.search(r"^TARGET=(\S+)$", script, re.M)
    assert written is not None
    target_folder, target_file = written.group(1).rsplit("/", 1)
    assert (setup_mounts[target_folder], target_file) == (airflow_volume, file)
    # the script runs from the mounted deploy/ folder, reads what k3s writes, fixes its address
    assert setup["entrypoint"][-1] == f"/deploy/{K3S_SETUP.name}"
    assert setup_mounts["/deploy"] == "./deploy"
    k3s = services["k3s"]
    source = re.search(r"^SOURCE=(\S+)$", script, re.M)
    assert source is not None
    output_folder = source.group(1).rsplit("/", 1)[0]
    assert f"--write-kubeconfig={source.group(1)}" in k3s["command"]
    assert {t: s for s, t in _volumes(k3s)}[output_folder] == setup_mounts[output_folder]
    assert "--tls-san=k3s" in k3s["command"]
    assert "https://k3s:6443" in script
    assert conn.extra_dejson["namespace"] == _env(setup)["TENANTS_NAMESPACE"]
    assert setup["image"] == k3s["image"], "kubectl of the same k3s release"


# -- the plumbing -------------------------------------------------------------------------------


def test_mounts_volumes_and_dependencies_exist(compose: dict[str, Any]) -> None:
    services = _services(compose)
    declared = set(compose.get("volumes") or {})
    for name, service in services.items():
        for source, _ in _volumes(service):
            if source.startswith("./"):
                assert (REPO / source).exists(), f"{name} mounts {source}, which is not in the repository"
            else:
                assert source in declared, f"{name} uses volume {source!r}, which is not declared"
        for dependency, how in (service.get("depends_on") or {}).items():
            assert dependency in services, f"{name} depends on unknown service {dependency!r}"
            if how["condition"] == "service_completed_successfully":
                assert "restart" not in services[dependency], f"{dependency} is one-shot: never restarted"
            if how["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], f"{dependency} has no healthcheck to wait for"
    for script in ("deploy/bootstrap_moto.py", f"deploy/{K3S_SETUP.name}"):
        assert (REPO / script).is_file()


def test_dependencies_form_no_cycle(compose: dict[str, Any]) -> None:
    services = _services(compose)
    started: set[str] = set()
    pending = dict(services)
    while pending:
        ready = [n for n, s in pending.items() if set(s.get("depends_on") or {}) <= started]
        assert ready, f"a dependency cycle among {sorted(pending)}"
        for name in ready:
            started.add(name)
            del pending[name]
