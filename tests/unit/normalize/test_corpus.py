"""The normalizers against a corpus of real ECS and Kubernetes failures.

The corpus (``tests/fixtures/corpus/{ecs,kubernetes}.json``, built as its README says) holds
payloads quoted from public sources, each labelled from DESIGN.md's error catalog. This module

* checks every case's shape (id, https source, quote, codes that exist, classifications that
  agree with ``CATALOG``), and
* turns every case into the object the provider's client really hands us, runs the normalizer
  and compares code and classification with the label:

    client_error       botocore ``ClientError`` built from the parsed error response
    run_task_response  the RunTask response dict, one expected error per ``failures[]`` entry
    stopped_task       the DescribeTasks task dict
    api_exception      a loopback HTTP server answers with the case's status, reason, headers
                       and body; the official ``kubernetes`` and ``kubernetes_asyncio`` REST
                       clients turn that response into their own ``ApiException``
    pod                the pod dict, its status dict alone and the ``V1Pod`` the official
                       client deserializes from it
    exception          the real exception class built from its constructor arguments, through
                       both the package dispatcher and ``normalize.network``

A failing case means the normalizer disagrees with the catalog label; labels are never bent to
the code. Every clear-cut case must agree. A debatable case (its note says why reasonable people
disagree) may disagree only when ``DEBATABLE_DISAGREEMENTS`` lists its id: a new disagreement
fails, and so does a listed case that now agrees (take it off the list).
``test_corpus_size_and_pass_rate`` asserts both over the whole corpus and reports the pass rate.
"""

from __future__ import annotations

import asyncio
import builtins
import copy
import importlib
import json
import re
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlparse

import botocore.exceptions
import kubernetes.client
import kubernetes_asyncio.client
import pytest

from airflow_compute_provider.errors import CATALOG, Classification, ComputeError, ErrorCode

CORPUS_DIR = Path(__file__).resolve().parents[2] / "fixtures" / "corpus"
PROVIDERS = ("ecs", "kubernetes")
MIN_CASES_PER_PROVIDER = 40
KINDS = {
    "ecs": {"client_error", "run_task_response", "stopped_task", "exception"},
    "kubernetes": {"api_exception", "pod", "exception"},
}
KEBAB = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")

#: The debatable cases the normalizer knowingly disagrees with, by id, each with why it stays so.
DEBATABLE_DISAGREEMENTS: dict[str, str] = {
    "ecs-stopped-resource-init-ssm-network-timeout-tf-33044": (
        "a timeout reaching SSM reads as PROVIDER_UNREACHABLE (retriable); the label follows ECS, "
        "which points at the task's network configuration (INVALID_CONFIGURATION)"
    ),
}


def _load(provider: str) -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = json.loads((CORPUS_DIR / f"{provider}.json").read_text("utf-8"))
    return cases


CORPUS = {provider: _load(provider) for provider in PROVIDERS}
ALL_CASES = [(provider, case) for provider in PROVIDERS for case in CORPUS[provider]]
CASE_IDS = [case["id"] for _, case in ALL_CASES]


def _expected_list(case: dict[str, Any]) -> list[dict[str, str] | None]:
    expected = case["expected"]
    return expected if isinstance(expected, list) else [expected]


# ---------------------------------------------------------------------------- corpus shape


def test_case_ids_are_unique_across_the_corpus() -> None:
    duplicates = [case_id for case_id, count in Counter(CASE_IDS).items() if count > 1]
    assert not duplicates


@pytest.mark.parametrize(("provider", "case"), ALL_CASES, ids=CASE_IDS)
def test_case_shape(provider: str, case: dict[str, Any]) -> None:
    assert KEBAB.match(case["id"]), "ids are kebab-case"
    source = urlparse(case["source"])
    assert source.scheme == "https", "the source is an https URL"
    assert source.netloc, "the source names a host"
    assert isinstance(case["quote"], str)
    assert case["quote"].strip(), "the verbatim quote is not empty"
    assert case["input"]["kind"] in KINDS[provider]
    assert isinstance(case["clear_cut"], bool)
    if not case["clear_cut"]:
        assert case.get("note", "").strip(), "a debatable label explains itself in a note"
    expected = _expected_list(case)
    assert expected, "at least one expected result"
    if case["input"]["kind"] == "run_task_response":
        assert isinstance(case["expected"], list)
        assert len(expected) == len(case["input"]["response"]["failures"])
    for item in expected:
        if item is None:
            assert case["input"]["kind"] in {"stopped_task", "pod"}, "only a status can be healthy"
            continue
        code = ErrorCode(item["code"])
        assert Classification(item["classification"]) is CATALOG[code].classification


# ---------------------------------------------------------------------------- library objects


def _normalize() -> ModuleType:
    """The normalizer package, imported at test time so that its absence fails, not errors."""
    try:
        return importlib.import_module("airflow_compute_provider.normalize")
    except ImportError as exc:
        pytest.fail(f"airflow_compute_provider.normalize cannot be imported: {exc}")


def _client_error(spec: dict[str, Any]) -> botocore.exceptions.ClientError:
    # The dict botocore's parsers produce for a JSON-protocol error, as ClientError receives it.
    error = {"Code": spec["code"], "Message": spec["message"], **spec.get("extra", {})}
    metadata: dict[str, Any] = {"HTTPStatusCode": spec["http_status"], "HTTPHeaders": {}, "RetryAttempts": 0}
    if spec.get("request_id"):
        metadata["RequestId"] = spec["request_id"]
    return botocore.exceptions.ClientError({"Error": error, "ResponseMetadata": metadata}, spec["operation"])


def _resolve(dotted: str) -> Any:
    module_name, _, attribute = dotted.rpartition(".")
    module = builtins if module_name == "builtins" else importlib.import_module(module_name)
    return getattr(module, attribute)


def _construct(value: Any) -> Any:
    """Build ``{"$type": ..., "args": [...], "kwargs": {...}}`` values recursively."""
    if isinstance(value, list):
        return [_construct(item) for item in value]
    if isinstance(value, dict) and "$type" in value:
        args = [_construct(arg) for arg in value.get("args", [])]
        kwargs = {key: _construct(arg) for key, arg in value.get("kwargs", {}).items()}
        return _resolve(value["$type"])(*args, **kwargs)
    return value


def _exception(spec: dict[str, Any]) -> BaseException:
    built = _construct(
        {"$type": spec["type"], "args": spec.get("args", []), "kwargs": spec.get("kwargs", {})}
    )
    assert isinstance(built, BaseException)
    return built


class _ApiServerStub(BaseHTTPRequestHandler):
    """Answers ``GET /corpus/<case id>`` with the case's recorded status, headers and body."""

    responses: dict[str, dict[str, Any]] = {}

    def do_GET(self) -> None:
        spec = self.responses[self.path.rsplit("/", 1)[-1]]
        body = spec["body"].encode("utf-8")
        self.send_response(spec["status"], spec["reason"])
        for name, value in spec.get("headers", {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass


@pytest.fixture(scope="module")
def apiserver_stub() -> Iterator[str]:
    """A loopback HTTP server replaying the corpus' Kubernetes API error responses."""
    _ApiServerStub.responses = {
        case["id"]: case["input"] for case in CORPUS["kubernetes"] if case["input"]["kind"] == "api_exception"
    }
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ApiServerStub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _sync_api_exception(base_url: str, case_id: str) -> kubernetes.client.ApiException:
    configuration = kubernetes.client.Configuration(host=base_url)
    # urllib3 would otherwise honour a 429's Retry-After by sleeping and asking again; the
    # exception raised from the final response is the same, only slower.
    configuration.retries = False
    client = kubernetes.client.ApiClient(configuration)
    try:
        client.rest_client.GET(f"{base_url}/corpus/{case_id}")
    except kubernetes.client.ApiException as exc:
        return exc
    finally:
        client.close()
    pytest.fail("the official client accepted an error response")


def _async_api_exception(base_url: str, case_id: str) -> kubernetes_asyncio.client.ApiException:
    async def fetch() -> kubernetes_asyncio.client.ApiException:
        configuration = kubernetes_asyncio.client.Configuration(host=base_url)
        async with kubernetes_asyncio.client.ApiClient(configuration) as client:
            try:
                await client.rest_client.GET(f"{base_url}/corpus/{case_id}")
            except kubernetes_asyncio.client.ApiException as exc:
                return exc
        pytest.fail("the asyncio client accepted an error response")

    return asyncio.run(fetch())


def _v1_pod(pod: dict[str, Any]) -> kubernetes.client.V1Pod:
    # What CoreV1Api.read_namespaced_pod returns for this JSON.
    pod_object: kubernetes.client.V1Pod = kubernetes.client.ApiClient()._ApiClient__deserialize(
        copy.deepcopy(pod), "V1Pod"
    )
    return pod_object


# ---------------------------------------------------------------------------- running a case


def _results(
    provider: str, case: dict[str, Any], base_url: str | None
) -> list[tuple[str, list[ComputeError | None]]]:
    """Every (variant, results) the case's input gives through the normalizer."""
    normalize = _normalize()
    spec = case["input"]
    kind = spec["kind"]
    if kind == "client_error":
        return [("ClientError", [normalize.ecs.from_client_error(_client_error(spec))])]
    if kind == "run_task_response":
        return [
            ("RunTask response", list(normalize.ecs.from_run_task_response(copy.deepcopy(spec["response"]))))
        ]
    if kind == "stopped_task":
        return [("DescribeTasks task", [normalize.ecs.from_stopped_task(copy.deepcopy(spec["task"]))])]
    if kind == "api_exception":
        assert base_url is not None
        return [
            (
                "kubernetes ApiException",
                [normalize.kubernetes.from_api_exception(_sync_api_exception(base_url, case["id"]))],
            ),
            (
                "kubernetes_asyncio ApiException",
                [normalize.kubernetes.from_api_exception(_async_api_exception(base_url, case["id"]))],
            ),
        ]
    if kind == "pod":
        pod = spec["pod"]
        return [
            ("pod dict", [normalize.kubernetes.from_pod(copy.deepcopy(pod))]),
            ("pod status dict", [normalize.kubernetes.from_pod(copy.deepcopy(pod["status"]))]),
            ("V1Pod", [normalize.kubernetes.from_pod(_v1_pod(pod))]),
        ]
    if kind == "exception":
        return [
            ("normalize.from_exception", [normalize.from_exception(_exception(spec))]),
            ("normalize.network.from_exception", [normalize.network.from_exception(_exception(spec))]),
        ]
    raise AssertionError(f"unknown input kind {kind!r}")


def _mismatches(provider: str, case: dict[str, Any], base_url: str | None) -> list[str]:
    expected = _expected_list(case)
    problems: list[str] = []
    for variant, results in _results(provider, case, base_url):
        if len(results) != len(expected):
            problems.append(f"{variant}: {len(results)} results, expected {len(expected)}")
            continue
        for index, (result, want) in enumerate(zip(results, expected, strict=True)):
            where = f"{variant}[{index}]" if len(expected) > 1 else variant
            if want is None:
                if result is not None:
                    problems.append(f"{where}: expected no error, got {result.code.value}")
                continue
            if not isinstance(result, ComputeError):
                problems.append(f"{where}: expected {want['code']}, got {result!r}")
                continue
            got = (result.code.value, result.classification.value)
            if got != (want["code"], want["classification"]):
                problems.append(
                    f"{where}: expected {want['code']}/{want['classification']}, got {got[0]}/{got[1]}"
                )
            elif case["input"]["kind"] != "exception" and result.provider != provider:
                problems.append(f"{where}: provider {result.provider!r}, expected {provider!r}")
    return problems


@pytest.fixture
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # aiohttp honours proxy variables (trust_env); loopback must never be proxied.
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, "127.0.0.1,localhost")


@pytest.mark.parametrize(("provider", "case"), ALL_CASES, ids=CASE_IDS)
def test_normalizer_agrees_with_the_catalog_label(
    provider: str, case: dict[str, Any], apiserver_stub: str, no_proxy: None
) -> None:
    problems = _mismatches(provider, case, apiserver_stub)
    if case["id"] in DEBATABLE_DISAGREEMENTS:
        assert not case["clear_cut"], f"{case['id']} is clear-cut: it must agree, not be listed"
        assert problems, f"{case['id']} agrees now: take it off DEBATABLE_DISAGREEMENTS"
        # Reasonable people disagree on this one (the case's note and the list say why).
        pytest.xfail(f"known debatable disagreement: {'; '.join(problems)}")
    assert not problems, (
        f"{case['id']} ({'clear-cut' if case['clear_cut'] else 'debatable'}; {case['source']}):\n  "
        + "\n  ".join(problems)
        + (f"\n  note: {case['note']}" if case.get("note") else "")
    )


def test_corpus_size_and_pass_rate(
    apiserver_stub: str, no_proxy: None, request: pytest.FixtureRequest
) -> None:
    for provider in PROVIDERS:
        assert len(CORPUS[provider]) >= MIN_CASES_PER_PROVIDER, f"{provider}: too few cases"
    _normalize()
    failed: dict[str, list[str]] = {provider: [] for provider in PROVIDERS}
    for provider, case in ALL_CASES:
        try:
            problems = _mismatches(provider, case, apiserver_stub)
        except Exception as exc:  # a normalizer that raises counts as a miss, not a crash of the report
            problems = [f"raised {type(exc).__name__}: {exc}"]
        if problems:
            failed[provider].append(case["id"])
    lines = []
    for provider in PROVIDERS:
        total = len(CORPUS[provider])
        passed = total - len(failed[provider])
        clear = [case["id"] for case in CORPUS[provider] if case["clear_cut"]]
        clear_passed = len([case_id for case_id in clear if case_id not in failed[provider]])
        lines.append(
            f"{provider}: {passed}/{total} cases agree with the catalog label ({passed / total:.0%}); "
            f"clear-cut {clear_passed}/{len(clear)}"
        )
        if failed[provider]:
            lines.append(f"  disagreeing: {', '.join(failed[provider])}")
    report = "\n".join(lines)
    request.node.user_properties.append(("corpus_pass_rate", report))
    # Shown even under output capture, so the rate is in every run's log.
    terminal = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if terminal is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            terminal.write_line("\n[normalizer corpus] " + report)
    clear_failed = [c["id"] for p, c in ALL_CASES if c["clear_cut"] and c["id"] in failed[p]]
    assert not clear_failed, f"clear-cut cases disagree: {clear_failed}"
    disagreeing = {case_id for ids in failed.values() for case_id in ids}
    assert disagreeing == set(DEBATABLE_DISAGREEMENTS), (
        f"new disagreements: {sorted(disagreeing - set(DEBATABLE_DISAGREEMENTS))}; "
        f"listed but agreeing now: {sorted(set(DEBATABLE_DISAGREEMENTS) - disagreeing)}"
    )
