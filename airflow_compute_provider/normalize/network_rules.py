"""The network rule table: exceptions raised before any provider answered.

    EXCEPTION_RULES  facts of one exception of a cause chain: types = its MRO as
                     "module.Class" names, provider_code = the class name (or the errno name
                     of an OSError), message = str(exc), http_status when it carries one

Classes are named, never imported, so botocore, urllib3, aiohttp, requests, httpx and the
Kubernetes clients stay unimported until the caller imported them itself. Type rules come
before wording rules, and the best match over the whole cause chain wins (``best_match``), so
a ``ConnectionResetError`` deep in the chain beats a wrapper whose message merely says "failed".
"""

from __future__ import annotations

from airflow_compute_provider.errors import ErrorCode as C
from airflow_compute_provider.normalize.rules import (
    THROTTLE_WORDS,
    Rule,
    any_of,
    status_fallbacks,
)


def _classes(module: str, *names: str) -> str:
    """A ``types`` pattern for ``module.<one of names>`` (``module`` is a regex)."""
    return rf"(?:{module})\.(?:{any_of(*names)})"


_BOTOCORE = r"botocore\.exceptions"
_URLLIB3 = r"urllib3\.exceptions"
_AIOHTTP = r"aiohttp\.client_exceptions"
_REQUESTS = r"requests\.exceptions"
_HTTPX = r"httpx(?:\._exceptions)?"

NETWORK_ERRNOS = any_of(
    "ECONNREFUSED",
    "ECONNRESET",
    "ECONNABORTED",
    "ETIMEDOUT",
    "EHOSTUNREACH",
    "EHOSTDOWN",
    "ENETUNREACH",
    "ENETDOWN",
    "ENETRESET",
    "EPIPE",
    "ENOTCONN",
    "EADDRNOTAVAIL",
    "EAI_AGAIN",
    "EAI_NONAME",
    "EAI_FAIL",
)

EXCEPTION_RULES: tuple[Rule, ...] = (
    Rule(
        C.AUTHENTICATION_FAILED,
        types=_classes(
            _BOTOCORE,
            "NoCredentialsError",
            "PartialCredentialsError",
            "CredentialRetrievalError",
            "NoAuthTokenError",
            "TokenRetrievalError",
            "UnauthorizedSSOTokenError",
            "SSOTokenLoadError",
            "SSOError",
            "LoginError",
            "LoginRefreshRequired",
            "LoginTokenLoadError",
            "UnknownCredentialError",
            "RefreshWithMFAUnsupportedError",
            "ProfileNotFound",
            "MetadataRetrievalError",
        ),
        why="no usable AWS credentials",
    ),
    Rule(
        C.AUTHENTICATION_FAILED,
        types=r"google\.auth\.exceptions\.(?:RefreshError|DefaultCredentialsError|TransportError)"
        r"|azure\.identity\.\w*CredentialUnavailableError|azure\.core\.exceptions\.ClientAuthenticationError",
        why="a cluster's exec / auth-provider plugin could not get a token",
    ),
    Rule(
        C.INVALID_CONFIGURATION,
        types=_classes(
            _BOTOCORE,
            "ParamValidationError",
            "ValidationError",
            "NoRegionError",
            "UnknownServiceError",
            "UnknownRegionError",
            "InvalidRegionError",
            "UnknownParameterError",
            "UnknownEndpointError",
            "InvalidConfigError",
            "ConfigParseError",
            "EndpointResolutionError",
            "ServiceNotInRegionError",
        ),
        why="the client was configured or called wrongly",
    ),
    Rule(
        C.INVALID_CONFIGURATION,
        types=r"kubernetes(?:_asyncio)?\.config\.config_exception\.ConfigException"
        r"|kubernetes(?:_asyncio)?\.client\.exceptions\.(?:ApiValueError|ApiTypeError|ApiKeyError)"
        r"|urllib3\.exceptions\.(?:LocationValueError|LocationParseError|ProxySchemeUnknown)"
        r"|requests\.exceptions\.(?:InvalidURL|MissingSchema|InvalidSchema)"
        r"|aiohttp\.client_exceptions\.InvalidURL|httpx(?:\._exceptions)?\.UnsupportedProtocol",
    ),
    Rule(
        C.OPERATION_TIMEOUT,
        types=_classes(_BOTOCORE, "WaiterError"),
        message=r"Max attempts exceeded",
        why="a botocore waiter gave up: the work outlived the wait, it did not fail",
    ),
    Rule(
        C.PROVIDER_TEMPORARILY_UNAVAILABLE,
        types=_classes(_BOTOCORE, "CapacityNotAvailableError"),
        why="botocore's retry quota ran dry: the endpoint kept failing",
    ),
    Rule(
        C.PROVIDER_TEMPORARILY_UNAVAILABLE,
        message=r"too many (?:5\d\d )?error responses",
        why="urllib3 ResponseError: retries on 5xx exhausted",
    ),
    Rule(C.PROVIDER_THROTTLED, message=r"too many 429 error responses"),
    Rule(
        C.PROVIDER_UNREACHABLE,
        types=_classes(
            _BOTOCORE,
            "EndpointConnectionError",
            "ConnectTimeoutError",
            "ReadTimeoutError",
            "ConnectionClosedError",
            "SSLError",
            "ProxyConnectionError",
            "ConnectionError",
            "HTTPClientError",
            "ResponseStreamingError",
            "IncompleteReadError",
        ),
    ),
    Rule(
        C.PROVIDER_UNREACHABLE,
        types=_classes(
            _URLLIB3,
            "MaxRetryError",
            "NewConnectionError",
            "ConnectTimeoutError",
            "ReadTimeoutError",
            "TimeoutError",
            "ProtocolError",
            "SSLError",
            "ProxyError",
            "NameResolutionError",
            "ConnectionError",
            "IncompleteRead",
            "ClosedPoolError",
            "EmptyPoolError",
        ),
    ),
    Rule(
        C.PROVIDER_UNREACHABLE,
        types=_classes(
            _AIOHTTP,
            "ClientConnectorError",
            "ClientConnectorCertificateError",
            "ClientConnectorSSLError",
            "ClientConnectorDNSError",
            "ClientSSLError",
            "ClientProxyConnectionError",
            "ServerDisconnectedError",
            "ServerTimeoutError",
            "ServerConnectionError",
            "ServerFingerprintMismatch",
            "ConnectionTimeoutError",
            "SocketTimeoutError",
            "ClientOSError",
            "ClientConnectionError",
            "ClientConnectionResetError",
            "ClientPayloadError",
        ),
    ),
    Rule(
        C.PROVIDER_UNREACHABLE,
        types=_classes(
            _REQUESTS,
            "ConnectionError",
            "ConnectTimeout",
            "ReadTimeout",
            "Timeout",
            "SSLError",
            "ProxyError",
            "ChunkedEncodingError",
        ),
    ),
    Rule(
        C.PROVIDER_UNREACHABLE,
        types=_classes(
            _HTTPX,
            "TransportError",
            "TimeoutException",
            "NetworkError",
            "ConnectError",
            "ConnectTimeout",
            "ReadTimeout",
            "WriteTimeout",
            "PoolTimeout",
            "ReadError",
            "WriteError",
            "CloseError",
            "RemoteProtocolError",
            "ProxyError",
        ),
    ),
    Rule(
        C.PROVIDER_UNREACHABLE,
        types=r"websocket\._exceptions\.(?:WebSocketConnectionClosedException|WebSocketTimeoutException"
        r"|WebSocketAddressException|WebSocketBadStatusException)",
    ),
    Rule(
        C.PROVIDER_UNREACHABLE,
        types=r"builtins\.(?:ConnectionError|TimeoutError)|socket\.(?:gaierror|herror|timeout)"
        r"|http\.client\.(?:IncompleteRead|RemoteDisconnected|BadStatusLine|LineTooLong)"
        r"|ssl\.(?:SSLError|CertificateError|SSLCertVerificationError|SSLEOFError|SSLZeroReturnError"
        r"|SSLSyscallError)|asyncio\.exceptions\.(?:TimeoutError|IncompleteReadError)"
        r"|concurrent\.futures\._base\.TimeoutError",
        why="ConnectionResetError, ConnectionRefusedError, BrokenPipeError, asyncio / socket timeouts",
    ),
    Rule(C.PROVIDER_UNREACHABLE, provider_code=NETWORK_ERRNOS, why="an OSError with a network errno"),
    # An HTTP client error that carries a status (aiohttp ClientResponseError, requests HTTPError).
    *status_fallbacks(),
    # Wording only, for wrappers that kept the words but not the type.
    Rule(C.PROVIDER_THROTTLED, message=THROTTLE_WORDS),
    Rule(
        C.PROVIDER_UNREACHABLE,
        message=r"connection (?:reset|refused|aborted)|timed out|name or service not known"
        r"|temporary failure in name resolution|nodename nor servname|network is unreachable"
        r"|no route to host|certificate verify failed|ssl: |tls handshake|failed to establish a new"
        r"|could not connect to the endpoint|max retries exceeded|server disconnected"
        r"|remote end closed connection|\bi/o timeout|dial tcp|getaddrinfo failed",
        why="wording only: kept narrow, since any exception may arrive here",
    ),
)
