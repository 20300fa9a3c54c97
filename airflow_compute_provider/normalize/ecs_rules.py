"""The ECS rule tables: API errors, RunTask ``failures[]`` and stopped tasks.

    CLIENT_ERROR_RULES   facts of a botocore ClientError: provider_code = Error.Code,
                         message = Error.Message, http_status
    RUN_TASK_FAILURE_RULES
                         facts of one RunTask/StartTask ``failures[]`` entry:
                         provider_code = reason, message = detail
    STOPPED_TASK_RULES   facts of a stopped task: provider_code = stopCode, message =
                         stoppedReason, reason / exit_code = the failing container's

Sources (quoted in tests/unit/normalize/test_ecs.py next to each payload):
https://docs.aws.amazon.com/AmazonECS/latest/APIReference/CommonErrors.html,
https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_RunTask.html (Errors),
https://docs.aws.amazon.com/AmazonECS/latest/developerguide/api_failures_messages.html,
https://docs.aws.amazon.com/AmazonECS/latest/developerguide/stopped-task-error-codes.html,
https://docs.aws.amazon.com/AmazonECS/latest/developerguide/service-event-messages.html,
https://repost.aws/knowledge-center/ecs-task-stopped.

Decisions on ambiguous cases (each is a rule below):
- ``AGENT`` (the instance's agent is disconnected) and ``DRAINING`` are INSUFFICIENT_CAPACITY:
  at launch nothing was interrupted, there is just no usable instance right now.
- "No Container Instances were found in your cluster" is INVALID_CONFIGURATION: an EC2 launch
  into a cluster nothing registered with (with a capacity provider the task would wait in
  PROVISIONING instead); retrying does not add instances.
- ``ATTRIBUTE`` and ``LOCATION`` are INVALID_CONFIGURATION: the task definition or subnets ask
  for what the cluster's instances do not offer; retrying the same request does not help.
- "Timeout waiting for network interface provisioning to complete" is
  PROVIDER_TEMPORARILY_UNAVAILABLE: ECS gave up on its own side; the same request usually
  succeeds a little later.
- ``ResourceInitializationError`` that could not reach Secrets Manager / SSM / CloudWatch over
  the network is PROVIDER_UNREACHABLE, the registry-auth variant IMAGE_PULL_FAILED (both
  retriable); one that was refused is PERMISSION_DENIED; one whose secret or log group does
  not exist is RESOURCE_NOT_FOUND.
- A stop a person asked for ("Task stopped by user", "Container instance deregistration forced
  by user") is CANCELLED, even when it took the host away; a host that went away on its own
  (Spot, retirement, "Host EC2 (instance ...) terminated") is INFRASTRUCTURE_INTERRUPTED.
- Exit code 137 is OUT_OF_MEMORY only with an OOM reason; alone it is CONTAINER_FAILED. Of
  several failed essential containers, the one matched by the earliest rule explains the task,
  so an exit the container chose (1, 2, 139) beats the 137 / 143 of a sibling stopped after it.
"""

from __future__ import annotations

from airflow_compute_provider.errors import ErrorCode as C
from airflow_compute_provider.normalize.rules import (
    NETWORK_WORDS,
    NON_ZERO,
    NON_ZERO_NOT_KILLED,
    THROTTLE_WORDS,
    Rule,
    any_of,
    image_pull_rules,
    status_fallbacks,
)

# --- wording ECS wraps into other codes ----------------------------------------------------------

_PERMISSION_WORDS = (
    r"not authorized to perform|is not authorized|not authorized to|accessdenied|access denied"
    r"|unauthorizedoperation|unable to assume (?:the )?(?:service[- ]linked )?role"
    r"|does not have (?:the required )?permissions?|insufficient permissions|not permitted"
)
_QUOTA_WORDS = (
    r"reached the limit on the number of|above your limit|service quota|quota"
    r"|limit ?exceeded|limitexceeded|maximum number of .{0,60} (?:has been|was) reached"
)
_CAPACITY_WORDS = (
    r"capacity is unavailable|insufficient capacity|insufficientinstancecapacity"
    r"|no container instance met"
    r"|has insufficient (?:cpu|memory|gpu)|insufficient (?:cpu|memory|gpu) available"
    r"|not enough capacity"
)
_NOT_FOUND_WORDS = (
    r"not found|notfound|does not exist|doesn't exist|could not be found|cannot be found"
    r"|can't find|cannot find|unable to (?:find|describe)|no such|is inactive|was inactive"
    r"|(?:cluster|service|task definition) (?:is )?not active"
)
_TEMPORARY_WORDS = (
    r"internal (?:server )?(?:error|failure)|service (?:is )?(?:currently )?unavailable"
    r"|temporarily unavailable|please try again|try again later"
)

# --- codes ----------------------------------------------------------------------------------------

THROTTLING_CODES = any_of(
    # botocore's own list (retries/standard.py), less LimitExceededException: for ECS that is
    # a service limit, not a rate.
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "RequestThrottled",
    "SlowDown",
    "EC2ThrottledException",
)
SERVER_CODES = any_of(
    "ServerException",
    "ServiceUnavailableException",
    "ServiceUnavailable",
    "InternalFailure",
    "InternalServerError",
    "InternalServerException",
    "InternalError",
    "InternalException",
    "Unavailable",
    "RequestTimeout",
    "RequestTimeoutException",
    "PriorRequestNotComplete",
    "TransactionInProgressException",
)
AUTHENTICATION_CODES = any_of(
    "UnrecognizedClientException",
    "ExpiredTokenException",
    "ExpiredToken",
    "InvalidSignatureException",
    "IncompleteSignature",
    "IncompleteSignatureException",
    "RequestExpired",
    "MissingAuthenticationToken",
    "MissingAuthenticationTokenException",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "AuthFailure",
    "InvalidAccessKeyId",
    "InvalidToken",
    "TokenRefreshRequired",
    "UnauthorizedException",
)
PERMISSION_CODES = any_of(
    "AccessDeniedException",
    "AccessDenied",
    "UnauthorizedOperation",
    "BlockedException",
    "OptInRequired",
    "AuthorizationError",
    "ForbiddenException",
    "Forbidden",
)
QUOTA_CODES = any_of(
    "LimitExceededException",
    "LimitExceeded",
    "ServiceQuotaExceededException",
    "QuotaExceededException",
    "AttributeLimitExceededException",
)
CONFLICT_CODES = any_of(
    "ConflictException",
    "ResourceInUseException",
    "UpdateInProgressException",
    "ConcurrentModificationException",
    "ResourceConflictException",
    "IdempotentParameterMismatch",
    "IdempotentParameterMismatchException",
    "ClusterContainsServicesException",
    "ClusterContainsTasksException",
    "ClusterContainsContainerInstancesException",
    "ClusterContainsCapacityProviderException",
)
NOT_FOUND_CODES = (
    r"[\w.]*NotFound(?:Exception)?|[\w.]*\.NotFound|NoSuch\w*|\w*NotActiveException|MissingVersionException"
)
INVALID_CODES = (
    any_of(
        "ClientException",
        "InvalidParameterException",
        "ValidationException",
        "ValidationError",
        "MissingParameter",
        "MissingParameterException",
        "MalformedQueryString",
        "SerializationException",
        "UnknownOperationException",
        "UnsupportedFeatureException",
        "PlatformUnknownException",
        "PlatformTaskDefinitionIncompatibilityException",
        "BadRequestException",
        "TargetNotConnectedException",
        "NoUpdateAvailableException",
    )
    + r"|Invalid\w*|Malformed\w*|Unsupported\w*"
)

CLIENT_ERROR_RULES: tuple[Rule, ...] = (
    # Wording first: ECS wraps EC2 and IAM trouble into InvalidParameterException and
    # ClientException ("Error retrieving security group information for [sg-...]: Request
    # limit exceeded. (ErrorCode: RequestLimitExceeded)").
    Rule(C.PROVIDER_THROTTLED, text=(THROTTLE_WORDS,), why="throttling wording, whatever the code"),
    Rule(
        C.AUTHENTICATION_FAILED,
        provider_code=AUTHENTICATION_CODES,
        why="credentials unknown, expired or badly signed (checked before permission wording)",
    ),
    Rule(C.PERMISSION_DENIED, message=_PERMISSION_WORDS, why="IAM refusal wrapped in another code"),
    Rule(C.CONFLICT, message=r"too many concurrent attempts|concurrent (?:modification|update)s?"),
    Rule(
        C.INVALID_CONFIGURATION,
        message=r"no container instances? (?:were|was) found",
        why="an EC2 launch into a cluster with no instances registered: a setup problem (a "
        "capacity provider would have kept the task PROVISIONING instead)",
    ),
    Rule(C.INSUFFICIENT_CAPACITY, message=_CAPACITY_WORDS, why="no instance or Fargate capacity"),
    Rule(C.QUOTA_EXCEEDED, message=_QUOTA_WORDS, why="a service quota, whatever the code"),
    Rule(
        C.INVALID_CONFIGURATION,
        provider_code=any_of(
            "PlatformUnknownException",
            "PlatformTaskDefinitionIncompatibilityException",
            "UnsupportedFeatureException",
        ),
        why="a platform version that does not exist or does not fit is a configuration mistake",
    ),
    Rule(
        C.RESOURCE_NOT_FOUND,
        provider_code=INVALID_CODES,
        message=_NOT_FOUND_WORDS,
        why="ClientException / InvalidParameterException naming something missing "
        "('TaskDefinition not found.', 'The subnet ID ... does not exist')",
    ),
    # Codes.
    Rule(C.PROVIDER_THROTTLED, provider_code=THROTTLING_CODES),
    Rule(C.PROVIDER_TEMPORARILY_UNAVAILABLE, provider_code=SERVER_CODES),
    Rule(C.PERMISSION_DENIED, provider_code=PERMISSION_CODES),
    Rule(C.QUOTA_EXCEEDED, provider_code=QUOTA_CODES),
    Rule(C.CONFLICT, provider_code=CONFLICT_CODES),
    Rule(C.RESOURCE_NOT_FOUND, provider_code=NOT_FOUND_CODES),
    Rule(C.INVALID_CONFIGURATION, provider_code=INVALID_CODES),
    # No code we know: the wording, then the HTTP status.
    Rule(C.PROVIDER_TEMPORARILY_UNAVAILABLE, message=_TEMPORARY_WORDS),
    Rule(C.RESOURCE_NOT_FOUND, message=_NOT_FOUND_WORDS, http_status={400, 404}),
    *status_fallbacks(),
)

RUN_TASK_FAILURE_RULES: tuple[Rule, ...] = (
    Rule(C.INSUFFICIENT_CAPACITY, provider_code=r"RESOURCE:.*", why="RESOURCE:CPU/MEMORY/PORTS_*/ENI/GPU"),
    Rule(C.PROVIDER_THROTTLED, text=(THROTTLE_WORDS,)),
    Rule(C.QUOTA_EXCEEDED, text=(r"reached the limit on the number of|above your limit|quota",)),
    Rule(C.INSUFFICIENT_CAPACITY, text=(_CAPACITY_WORDS,)),
    Rule(
        C.INSUFFICIENT_CAPACITY,
        provider_code=any_of("AGENT", "DRAINING"),
        why="the instance cannot take tasks now (agent disconnected, draining): no usable capacity",
    ),
    Rule(C.INVALID_CONFIGURATION, provider_code=any_of("ATTRIBUTE", "LOCATION")),
    Rule(C.RESOURCE_NOT_FOUND, provider_code=any_of("MISSING", "INACTIVE")),
    Rule(C.PERMISSION_DENIED, text=(_PERMISSION_WORDS,)),
    Rule(C.CONFLICT, text=(r"too many concurrent attempts|concurrent (?:modification|update)",)),
    Rule(C.RESOURCE_NOT_FOUND, text=(_NOT_FOUND_WORDS,)),
    Rule(C.PROVIDER_TEMPORARILY_UNAVAILABLE, text=(_TEMPORARY_WORDS,)),
    Rule(C.INVALID_CONFIGURATION, text=(r"invalid|not supported|unsupported|incompatible",)),
)

_PULL = r"CannotPullContainerError|(?:pull|pulling) (?:the )?(?:container )?image|image pull"
_INIT = r"ResourceInitializationError"

STOPPED_TASK_RULES: tuple[Rule, ...] = (
    Rule(
        C.OUT_OF_MEMORY,
        text=(r"OutOfMemory|OOM[- ]?kill|out of memory|killed due to memory usage|memory limit exceeded",),
        why="OutOfMemoryError: Container killed due to memory usage",
    ),
    Rule(C.INFRASTRUCTURE_INTERRUPTED, provider_code=any_of("SpotInterruption", "TerminationNotice")),
    Rule(
        C.CANCELLED,
        message=r"\bby (?:the )?user\b|user[- ]requested|requested by (?:the )?user",
        why="'Task stopped by user', 'Container instance deregistration forced by user': a person",
    ),
    Rule(
        C.INFRASTRUCTURE_INTERRUPTED,
        message=r"Host EC2 \(instance [^)]*\)|spot (?:task )?(?:was )?interrupt|retire|maintenance"
        r"|instance .{0,40}(?:was )?(?:stopped|terminated|deregistered)|instance deregistration"
        r"|underlying host"
        r"|agent (?:was |is )?disconnected",
        why="the instance or Fargate host under the task went away",
    ),
    Rule(
        C.CANCELLED,
        provider_code=any_of("UserInitiated"),
        why="StopTask by someone else (the lifecycle knows its own stops before it asks us)",
    ),
    Rule(
        C.CONTAINER_FAILED,
        message=r"health ?checks?|unhealthy",
        why="Task failed ELB / container health checks (arrives as ServiceSchedulerInitiated)",
    ),
    Rule(
        C.CANCELLED,
        message=r"Scaling activity initiated by|circuit breaker|stopped by user|Task stopped by"
        r"|deployment .{0,80} (?:stopped|replaced)",
    ),
    Rule(C.CANCELLED, provider_code=any_of("ServiceSchedulerInitiated")),
    Rule(
        C.PROVIDER_THROTTLED,
        text=(r"rate limit exceeded while|request limit exceeded|rate exceeded|throttl",),
        why="'Rate limit exceeded while preparing network interface to be attached to instance'",
    ),
    Rule(
        C.PROVIDER_TEMPORARILY_UNAVAILABLE,
        text=(r"Timeout waiting for (?:network interface|EphemeralStorage|.{0,40}) provisioning",),
    ),
    Rule(
        C.INSUFFICIENT_CAPACITY,
        text=(
            r"attach network interface|unused device index|no (?:free|available) (?:eni|network interface)",
        ),
        why="'Unable to attach network interface to unused device index.': the host's ENI slots",
    ),
    *image_pull_rules(context=_PULL),
    # Secrets, registry auth, log drivers, env files and volumes the agent sets up first.
    Rule(C.PERMISSION_DENIED, text=(_INIT, _PERMISSION_WORDS)),
    Rule(C.IMAGE_PULL_FAILED, text=(_INIT, r"ecr registry auth|api\.ecr\.", NETWORK_WORDS)),
    # Before "cannot find": "The task cannot find the Amazon CloudWatch log group ... There is
    # a connection issue between the task and Amazon CloudWatch."
    Rule(C.PROVIDER_UNREACHABLE, text=(_INIT, NETWORK_WORDS)),
    Rule(
        C.RESOURCE_NOT_FOUND,
        text=(_INIT, r"does not exist|not found|notfound|can't find|cannot find|ParameterNotFound"),
    ),
    Rule(C.PROVIDER_TEMPORARILY_UNAVAILABLE, text=(_INIT, r"signal: killed|internal error|unavailable")),
    Rule(C.INVALID_CONFIGURATION, text=(r"invalid reference format|failed to normalize image reference",)),
    Rule(
        C.RESOURCE_NOT_FOUND,
        text=(
            r"ResourceNotFoundException|(?:log group|log stream|secret|parameter|file ?system"
            r"|access point|bucket|role|key|volume)\b.{0,60}(?:does not exist|doesn't exist|not found"
            r"|could not be found)",
        ),
        why="a start failure whose message names a missing resource (a log group, a secret)",
    ),
    Rule(
        C.CONTAINER_START_FAILED,
        text=(
            r"CannotStartContainerError|CannotCreateContainerError|CannotInspectContainerError"
            r"|CannotCreateVolumeError|ContainerRuntimeError|ContainerRuntimeTimeoutError"
            r"|DockerTimeoutError|ResourceInitializationError|executable file not found"
            r"|exec format error|OCI runtime",
        ),
    ),
    Rule(C.PROVIDER_TEMPORARILY_UNAVAILABLE, text=(r"\bInternalError\b|internal error",)),
    # Plain exits. SIGKILL / SIGTERM (137 / 143) come after other exit codes so that, of
    # several failed containers, the one that failed first explains the task.
    Rule(C.CONTAINER_FAILED, exit_code=NON_ZERO_NOT_KILLED, why="the container exited on its own"),
    Rule(C.CONTAINER_FAILED, exit_code=NON_ZERO, why="137 without an OOM reason is a kill, not OOM"),
    Rule(C.CONTAINER_FAILED, message=r"Essential container in task exited"),
    Rule(C.CONTAINER_START_FAILED, provider_code=any_of("TaskFailedToStart")),
    Rule(C.CONTAINER_FAILED, provider_code=any_of("EssentialContainerExited")),
)
