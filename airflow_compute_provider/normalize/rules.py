"""The rule machinery every normalizer shares: flatten a failure into ``Facts``, then take the
first ``Rule`` of an ordered table whose matchers all hold.

    Facts            what one failure says: provider code, HTTP status, message, reason, exit
                     code, exception class names, flags (``text`` joins the words)
    Rule             one table row: matchers (every one given must hold) -> an ErrorCode, or
                     ``None`` for "this is not a failure" (a pod that is merely creating)
    first_match      the first rule of a table that matches one set of facts
    best_match       over several candidate facts, the match with the earliest rule
    any_of(...)      a regex for a set of exact provider codes
    NON_ZERO         an exit-code matcher for "exited, but not with 0"
    NON_ZERO_NOT_KILLED  ... and not 137 / 143 either (``KILLED``: stopped by a signal)

Tables are tuples of rules, ordered from specific to general: message rules first (throttling
wording wrapped in another code, quota wording in a 403), then code and status rules, then
fallbacks by HTTP status class (``STATUS_FALLBACKS``). Provider-specific tables live in
``ecs_rules``, ``kubernetes_rules`` and ``network_rules``; wording several providers share
(throttling, network trouble, image pulls) lives here.
"""

from __future__ import annotations

import re
from collections.abc import Container, Iterable
from dataclasses import dataclass, field

from airflow_compute_provider.errors import ErrorCode

# Matching looks at this much of a message; the root cause keeps what _read allows.
_MATCH_LIMIT = 8_000


@dataclass(frozen=True)
class Facts:
    """One failure, flattened to what the rules can match on."""

    provider_code: str | None = None
    http_status: int | None = None
    message: str | None = None
    reason: str | None = None
    exit_code: int | None = None
    types: tuple[str, ...] = ()
    flags: frozenset[str] = frozenset()

    @property
    def text(self) -> str:
        """Code, message and reason together, for rules that do not care where a word is."""
        return "\n".join(part for part in (self.provider_code, self.message, self.reason) if part)


class _NonZero(Container[int]):
    def __contains__(self, value: object) -> bool:
        return isinstance(value, int) and value != 0

    def __repr__(self) -> str:
        return "NON_ZERO"


class _NonZeroExcept(Container[int]):
    def __init__(self, excluded: frozenset[int]) -> None:
        self.excluded = excluded

    def __contains__(self, value: object) -> bool:
        return isinstance(value, int) and value != 0 and value not in self.excluded

    def __repr__(self) -> str:
        return f"NON_ZERO_EXCEPT{sorted(self.excluded)}"


NON_ZERO: Container[int] = _NonZero()
"""Matches any exit code except 0 (an exit code that is absent never matches)."""

KILLED = frozenset({137, 143})
"""128 + SIGKILL / SIGTERM: what a container exits with when something stopped it."""

NON_ZERO_NOT_KILLED: Container[int] = _NonZeroExcept(KILLED)
"""A failure exit the container chose itself (not 0, not a SIGKILL / SIGTERM)."""


def any_of(*names: str) -> str:
    """A pattern matching exactly one of ``names`` (for ``Rule.provider_code``)."""
    return "|".join(re.escape(name) for name in names)


def _compile(pattern: str | None) -> re.Pattern[str] | None:
    return re.compile(pattern, re.IGNORECASE) if pattern is not None else None


@dataclass(frozen=True)
class Rule:
    """A row of a rule table. Every matcher that is set must hold; an unset one always does.

    ``provider_code`` and ``types`` must match in full, ``message``, ``reason`` and each
    pattern of ``text`` anywhere; all patterns are case-insensitive regexes. ``code=None``
    marks facts that are not a failure at all.
    """

    code: ErrorCode | None
    provider_code: str | None = None
    http_status: Container[int] | None = None
    message: str | None = None
    reason: str | None = None
    text: tuple[str, ...] = ()
    exit_code: Container[int] | None = None
    types: str | None = None
    flags: frozenset[str] = frozenset()
    why: str = ""

    _provider_code: re.Pattern[str] | None = field(init=False, repr=False, compare=False)
    _message: re.Pattern[str] | None = field(init=False, repr=False, compare=False)
    _reason: re.Pattern[str] | None = field(init=False, repr=False, compare=False)
    _text: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)
    _types: re.Pattern[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Compiled once, when the table module is imported; a bad pattern fails that import
        # (and the unit tests), never a normalization.
        object.__setattr__(self, "_provider_code", _compile(self.provider_code))
        object.__setattr__(self, "_message", _compile(self.message))
        object.__setattr__(self, "_reason", _compile(self.reason))
        object.__setattr__(self, "_text", tuple(re.compile(p, re.IGNORECASE) for p in self.text))
        object.__setattr__(self, "_types", _compile(self.types))

    def matches(self, facts: Facts) -> bool:
        if self._provider_code is not None and not (
            facts.provider_code and self._provider_code.fullmatch(facts.provider_code.strip())
        ):
            return False
        if self.http_status is not None and facts.http_status not in self.http_status:
            return False
        if self.exit_code is not None and facts.exit_code not in self.exit_code:
            return False
        if self.flags and not self.flags <= facts.flags:
            return False
        if self._types is not None and not any(self._types.fullmatch(name) for name in facts.types):
            return False
        if not _found(self._message, facts.message):
            return False
        if not _found(self._reason, facts.reason):
            return False
        if self._text:
            text = facts.text[:_MATCH_LIMIT]
            if not all(pattern.search(text) for pattern in self._text):
                return False
        return True


def _found(pattern: re.Pattern[str] | None, value: str | None) -> bool:
    if pattern is None:
        return True
    return bool(value) and pattern.search(value[:_MATCH_LIMIT]) is not None  # type: ignore[index]


def first_match(rules: Iterable[Rule], facts: Facts) -> Rule | None:
    """The first rule of ``rules`` whose matchers all hold for ``facts``."""
    for rule in rules:
        if rule.matches(facts):
            return rule
    return None


def best_match(rules: tuple[Rule, ...], candidates: Iterable[Facts]) -> tuple[Rule, Facts] | None:
    """Of several candidate facts (one per container, say), the one matched by the earliest
    rule; ties go to the earlier candidate. Table order is thus also priority across them:
    an ``OOMKilled`` container explains a failure better than its sidecar killed after it."""
    best: tuple[int, Rule, Facts] | None = None
    for facts in candidates:
        for index, rule in enumerate(rules):
            if best is not None and index >= best[0]:
                break
            if rule.matches(facts):
                best = (index, rule, facts)
                break
    return (best[1], best[2]) if best is not None else None


# --- wording several providers use -------------------------------------------------------------

THROTTLE_WORDS = (
    r"rate exceeded|request limit exceeded|rate limit(?:ed| exceeded)|throttl|too many requests"
    r"|toomanyrequests|requestlimitexceeded|slow ?down"
)
"""Throttling, whatever code it arrives under ("Request limit exceeded" in an
InvalidParameterException is EC2 throttling, not a bad parameter)."""

NETWORK_WORDS = (
    r"i/o timeout|timed? ?out|timeout|connection (?:reset|refused|aborted|closed)|broken pipe"
    r"|no such host|name or service not known|temporary failure in name resolution"
    r"|nodename nor servname|getaddrinfo|name resolution|network is unreachable"
    r"|no route to host|host is unreachable|dial tcp|tls handshake|handshake|certificate verify"
    r"|unexpected eof|\beof\b|x509|server misbehaving|could not connect|failed to establish"
    r"|max retries exceeded|remote end closed|server disconnected|connection error"
    r"|context deadline exceeded|context canceled|request canceled|connection issue"
)
"""The network failing between us (or the provider's agent) and an endpoint."""

INVALID_WORDS = (
    r"invalid|malformed|bad request|unknown field|required|must (?:be|have|not|specify|contain)"
    r"|not valid|cannot be|can not be|not supported|unsupported|validation|failed to decode"
    r"|could not (?:parse|decode)|unable to parse|parse error|not allowed"
)
"""How a provider says "your request is wrong" when its status is a bare 400 or 422."""


def status_fallbacks(invalid_words: str = INVALID_WORDS) -> tuple[Rule, ...]:
    """The last rules of every API table: classify by HTTP status class alone."""
    return (
        Rule(ErrorCode.PROVIDER_THROTTLED, http_status={429}, why="HTTP 429"),
        Rule(ErrorCode.PROVIDER_TEMPORARILY_UNAVAILABLE, http_status=range(500, 600), why="HTTP 5xx"),
        Rule(ErrorCode.PROVIDER_TEMPORARILY_UNAVAILABLE, http_status={408}, why="HTTP 408 timeout"),
        Rule(ErrorCode.AUTHENTICATION_FAILED, http_status={401}, why="HTTP 401"),
        Rule(ErrorCode.PERMISSION_DENIED, http_status={403}, why="HTTP 403"),
        Rule(ErrorCode.RESOURCE_NOT_FOUND, http_status={404}, why="HTTP 404"),
        Rule(ErrorCode.CONFLICT, http_status={409}, why="HTTP 409"),
        Rule(
            ErrorCode.INVALID_CONFIGURATION,
            http_status={400, 405, 406, 413, 415, 422},
            message=invalid_words,
            why="HTTP 400/422 where the provider says the request is invalid",
        ),
    )


def image_pull_rules(*, provider_code: str | None = None, context: str | None = None) -> tuple[Rule, ...]:
    """How an image pull failed, for facts already known to be about an image pull.

    ECS says so in the text (``CannotPullContainerError: ...``), Kubernetes in the waiting
    reason (``ErrImagePull``); the wording after that comes from the same container runtimes
    (Docker, containerd) and registries, so one list serves both.
    """
    ctx = (context,) if context else ()

    def rule(code: ErrorCode, pattern: str | None, why: str) -> Rule:
        return Rule(code, provider_code=provider_code, text=(*ctx, pattern) if pattern else ctx, why=why)

    return (
        # A rate limit first: Docker Hub's says "...by authenticating and upgrading", which
        # must not read as an authentication problem.
        rule(
            ErrorCode.IMAGE_PULL_FAILED,
            r"toomanyrequests|too many requests|pull rate limit|rate limit|\b429\b",
            "registry rate limit",
        ),
        rule(
            ErrorCode.INVALID_CONFIGURATION,
            r"invalid reference format|failed to normalize image reference|invalid image name"
            r"|repository name must|no matching manifest for|does not contain descriptor matching"
            r"|image platform .{0,80} does not match|failed to parse image",
            "the image reference is malformed or the image is for another platform",
        ),
        # Docker Hub answers the same for a repository that does not exist and one we may not
        # read ("pull access denied ... repository does not exist or may require 'docker
        # login'"); the design classes registry refusals as permission problems.
        rule(
            ErrorCode.PERMISSION_DENIED,
            r"pull access denied|access denied|accessdenied|denied: |requested access to the resource"
            r"|unauthorized|authentication required|no basic auth credentials|insufficient_scope"
            r"|\b401\b|\b403\b|forbidden|not authorized"
            # ECS documents this one, with no status after it, as "no access to the image".
            r"|failed open: unexpected status code(?![^\n]{0,300}\b(?:5\d\d|429)\b)",
            "the registry refused our credentials or access",
        ),
        rule(
            ErrorCode.IMAGE_NOT_FOUND,
            r"manifest unknown|manifest for .{0,200} not found|not found|notfound|name unknown"
            r"|does not exist|no such image|repository .{0,200} not found|\b404\b",
            "the image or tag does not exist",
        ),
        rule(
            ErrorCode.IMAGE_PULL_FAILED,
            NETWORK_WORDS + r"|context canceled|deadline exceeded|no space left on device"
            r"|signal: killed|\b50[0234]\b|service unavailable|internal server error|bad gateway"
            r"|has been retried",
            "the pull failed on the way (network, registry outage, host disk)",
        ),
        rule(ErrorCode.IMAGE_PULL_FAILED, None, "an image pull failed in a way no rule names"),
    )
