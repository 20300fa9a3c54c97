"""DescribeTasks answers read as plain JSON on the shared poller's async client.

A shared poller reads every deferred ECS task once per interval: 10,000 tasks are 100
DescribeTasks answers of 100 tasks each. botocore turns each answer into Python by walking the
response shape member by member and turning every timestamp into a ``datetime`` with a local
time zone: about two thirds of the poller's CPU at N = 1,000 (cProfile, bench/README.md). The
JSON 1.1 protocol's body already is the answer: the same member names, timestamps as epoch
seconds. So the async client of ``EcsComputeHook.adescribe`` reads DescribeTasks bodies with
``json.loads`` alone; everything else (errors, other operations, sync clients) goes through
botocore's parser unchanged. ``ecs_status`` accepts both forms of a timestamp.

    lean_describe_tasks(client)   switch an aiobotocore ECS client to the lean DescribeTasks read

It replaces the client's endpoint's parser factory (``_endpoint._response_parser_factory``, not
a public attribute): if a future aiobotocore moves it, the client keeps botocore's parser, which
is slower but right; ``tests/integration/test_ecs_hook.py::test_adescribe_matches_describe``
checks that both reads give the same statuses.
"""

from __future__ import annotations

import logging
from typing import Any

from aiobotocore.parsers import AioJSONParser, AioResponseParserFactory

log = logging.getLogger(__name__)

LEAN_SHAPES = frozenset({"DescribeTasksResponse"})


class _LeanJSONParser(AioJSONParser):  # type: ignore[misc]
    def _handle_json_body(self, raw_body: bytes, shape: Any) -> Any:
        if shape is not None and getattr(shape, "name", None) in LEAN_SHAPES:
            return self._parse_body_as_json(raw_body)
        return super()._handle_json_body(raw_body, shape)


class _LeanParserFactory(AioResponseParserFactory):  # type: ignore[misc]
    def create_parser(self, protocol_name: str) -> Any:
        if protocol_name == "json":
            return _LeanJSONParser(**self._defaults)
        return super().create_parser(protocol_name)


def lean_describe_tasks(client: Any) -> bool:
    """Read this client's DescribeTasks answers as plain JSON; ``False`` when it cannot be done
    (the client keeps botocore's parser)."""
    endpoint = getattr(client, "_endpoint", None)
    factory = getattr(endpoint, "_response_parser_factory", None)
    if endpoint is None or not isinstance(factory, AioResponseParserFactory):
        log.debug("aiobotocore client without the expected parser factory; DescribeTasks parsed by botocore")
        return False
    lean = _LeanParserFactory()
    lean._defaults = dict(factory._defaults)
    endpoint._response_parser_factory = lean
    return True
