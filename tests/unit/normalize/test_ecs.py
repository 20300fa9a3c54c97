"""ECS normalizers, rule by rule, on payloads quoted from public sources.

Every case runs through real botocore ``ClientError`` objects. The source of each payload is
the URL in the comment above it; where a source shows only a fragment, the case adds only the
fields ECS always sends (HTTP status, request id).
"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from airflow_compute_provider.errors import Classification, ErrorCode
from airflow_compute_provider.normalize import ecs
from airflow_compute_provider.normalize.ecs_rules import (
    CLIENT_ERROR_RULES,
    RUN_TASK_FAILURE_RULES,
    STOPPED_TASK_RULES,
)

C = ErrorCode
AWS_ERRORS = "https://docs.aws.amazon.com/AmazonECS/latest/APIReference/CommonErrors.html"
RUN_TASK_ERRORS = (
    "https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_RunTask.html#API_RunTask_Errors"
)


def client_error(
    code: str, message: str, status: int = 400, operation: str = "RunTask", **extra: Any
) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": message, **extra},
            "ResponseMetadata": {"HTTPStatusCode": status, "RequestId": "7b0e6c1e-req"},
        },
        operation,
    )


CLIENT_ERRORS = [
    # https://github.com/dask/dask-cloudprovider/issues/56 (EC2 throttling wrapped by ECS)
    pytest.param(
        "InvalidParameterException",
        "Error retrieving security group information for [sg-05937427457b61ff5]: Request limit "
        "exceeded. (ErrorCode: RequestLimitExceeded)",
        400,
        C.PROVIDER_THROTTLED,
        id="invalid-parameter-wrapping-ec2-request-limit",
    ),
    # https://github.com/aws/aws-sdk/issues (botocore: "An error occurred (ThrottlingException)
    # when calling the RunTask operation (reached max retries: 4): Rate exceeded")
    pytest.param("ThrottlingException", "Rate exceeded", 400, C.PROVIDER_THROTTLED, id="throttling"),
    pytest.param("TooManyRequestsException", "Too many requests", 429, C.PROVIDER_THROTTLED, id="too-many"),
    # AWS_ERRORS: ServerException "These errors are usually caused by a server issue."
    pytest.param(
        "ServerException",
        "Service encountered an unexpected error",
        500,
        C.PROVIDER_TEMPORARILY_UNAVAILABLE,
        id="server",
    ),
    pytest.param(
        "ServiceUnavailableException",
        "Service unavailable",
        503,
        C.PROVIDER_TEMPORARILY_UNAVAILABLE,
        id="unavailable",
    ),
    # AWS_ERRORS: AccessDeniedException "You don't have sufficient access to perform this action."
    pytest.param(
        "AccessDeniedException",
        "User: arn:aws:iam::123456789012:user/dev is not authorized to perform: ecs:RunTask on "
        "resource: arn:aws:ecs:us-east-1:123456789012:task-definition/app:3",
        400,
        C.PERMISSION_DENIED,
        id="access-denied",
    ),
    # https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-iam-roles.html (PassRole)
    pytest.param(
        "ClientException",
        "ECS was unable to assume the role 'arn:aws:iam::123456789012:role/app' that was provided "
        "for this task. Please verify that the role being passed has the proper trust relationship "
        "and permissions and that your IAM user has permissions to pass this role.",
        400,
        C.PERMISSION_DENIED,
        id="client-exception-assume-role",
    ),
    pytest.param("BlockedException", "Your account is blocked", 400, C.PERMISSION_DENIED, id="blocked"),
    # AWS_ERRORS: UnrecognizedClientException / ExpiredTokenException / InvalidSignatureException
    pytest.param(
        "UnrecognizedClientException",
        "The security token included in the request is invalid.",
        400,
        C.AUTHENTICATION_FAILED,
        id="unrecognized-client",
    ),
    pytest.param(
        "ExpiredTokenException",
        "The security token included in the request is expired",
        400,
        C.AUTHENTICATION_FAILED,
        id="expired-token",
    ),
    pytest.param(
        "InvalidSignatureException",
        "The request signature we calculated does not match the signature you provided.",
        400,
        C.AUTHENTICATION_FAILED,
        id="invalid-signature",
    ),
    pytest.param(
        "IncompleteSignature",
        "Authorization header requires 'Credential'",
        400,
        C.AUTHENTICATION_FAILED,
        id="incomplete-signature",
    ),
    pytest.param(
        "MissingAuthenticationToken",
        "Missing Authentication Token",
        403,
        C.AUTHENTICATION_FAILED,
        id="missing-token",
    ),
    pytest.param(
        "RequestExpired", "Request has expired.", 400, C.AUTHENTICATION_FAILED, id="request-expired"
    ),
    # RUN_TASK_ERRORS: ClusterNotFoundException "The specified cluster wasn't found."
    pytest.param(
        "ClusterNotFoundException", "Cluster not found.", 400, C.RESOURCE_NOT_FOUND, id="cluster-not-found"
    ),
    pytest.param(
        "ServiceNotFoundException", "Service not found.", 400, C.RESOURCE_NOT_FOUND, id="service-not-found"
    ),
    pytest.param(
        "TaskSetNotFoundException",
        "The specified task set wasn't found",
        400,
        C.RESOURCE_NOT_FOUND,
        id="taskset",
    ),
    pytest.param(
        "ResourceNotFoundException",
        "The specified resource wasn't found.",
        400,
        C.RESOURCE_NOT_FOUND,
        id="resource",
    ),
    pytest.param(
        "NamespaceNotFoundException",
        "The specified namespace wasn't found.",
        400,
        C.RESOURCE_NOT_FOUND,
        id="namespace",
    ),
    # https://stackoverflow.com/q/44917592 "ClientException ... TaskDefinition not found."
    pytest.param(
        "ClientException",
        "TaskDefinition not found.",
        400,
        C.RESOURCE_NOT_FOUND,
        id="task-definition-not-found",
    ),
    pytest.param(
        "ClientException",
        "Unable to describe task definition.",
        400,
        C.RESOURCE_NOT_FOUND,
        id="unable-to-describe",
    ),
    # https://github.com/eddmann/serverless-fargate/issues/20
    pytest.param(
        "InvalidParameterException",
        "Error retrieving subnet information for [birdzview]: The subnet ID 'birdzview' does not "
        "exist (ErrorCode: InvalidSubnetID.NotFound)",
        400,
        C.RESOURCE_NOT_FOUND,
        id="subnet-does-not-exist",
    ),
    # RUN_TASK_ERRORS: InvalidParameterException / PlatformUnknownException / ...Incompatibility
    pytest.param(
        "InvalidParameterException",
        "Task definition does not support launch_type FARGATE.",
        400,
        C.INVALID_CONFIGURATION,
        id="launch-type",
    ),
    pytest.param(
        "InvalidParameterException",
        "Fargate requires task definition to have execution role ARN to support log driver awslogs.",
        400,
        C.INVALID_CONFIGURATION,
        id="fargate-needs-execution-role",
    ),
    pytest.param(
        "PlatformUnknownException",
        "The specified platform version doesn't exist.",
        400,
        C.INVALID_CONFIGURATION,
        id="platform-unknown",
    ),
    pytest.param(
        "PlatformTaskDefinitionIncompatibilityException",
        "The specified platform version doesn't satisfy the required capabilities of the task definition.",
        400,
        C.INVALID_CONFIGURATION,
        id="platform-incompatible",
    ),
    pytest.param(
        "UnsupportedFeatureException",
        "The specified task isn't supported in this Region.",
        400,
        C.INVALID_CONFIGURATION,
        id="unsupported",
    ),
    # RUN_TASK_ERRORS: ConflictException (a reused clientToken)
    pytest.param(
        "ConflictException",
        "The RunTask request could not be processed due to conflicts. The provided clientToken is "
        "already in use with a different RunTask request.",
        400,
        C.CONFLICT,
        id="conflict-client-token",
    ),
    # https://github.com/aws/containers-roadmap/issues/1244 "Too many concurrent attempts to
    # create a new revision of the specified family."
    pytest.param(
        "ClientException",
        "Too many concurrent attempts to create a new revision of the specified family.",
        400,
        C.CONFLICT,
        id="concurrent-revisions",
    ),
    # AWS_ERRORS: LimitExceededException "The limit for the resource was exceeded."
    pytest.param(
        "LimitExceededException",
        "The limit for the resource was exceeded.",
        400,
        C.QUOTA_EXCEEDED,
        id="limit",
    ),
    # https://repost.aws/questions/QUiWCpad5jReKxxTiWjKfeyA
    pytest.param(
        "ClientException",
        "You've reached the limit on the number of tasks you can run concurrently",
        400,
        C.QUOTA_EXCEEDED,
        id="concurrent-task-limit",
    ),
    # https://docs.aws.amazon.com/AmazonECS/latest/developerguide/service-event-messages.html
    pytest.param(
        "InvalidParameterException",
        "No Container Instances were found in your cluster.",
        400,
        C.INVALID_CONFIGURATION,
        id="no-container-instances",
    ),
    # Unknown codes fall back on the status class.
    pytest.param(
        "SomethingNew", "Gateway timeout", 504, C.PROVIDER_TEMPORARILY_UNAVAILABLE, id="unknown-5xx"
    ),
    pytest.param("SomethingNew", "nope", 403, C.PERMISSION_DENIED, id="unknown-403"),
    pytest.param(
        "SomethingNew", "The parameter is invalid", 400, C.INVALID_CONFIGURATION, id="unknown-400-invalid"
    ),
    pytest.param("SomethingNew", "something happened", 400, C.UNKNOWN_PROVIDER_ERROR, id="unknown-400"),
]


@pytest.mark.parametrize(("code", "message", "status", "expected"), CLIENT_ERRORS)
def test_client_errors(code: str, message: str, status: int, expected: ErrorCode) -> None:
    error = ecs.from_client_error(client_error(code, message, status))
    assert error.code is expected
    assert error.classification is expected.classification
    assert error.provider == "ecs"
    assert error.operation == "RunTask"
    root = error.root_cause
    assert (root.provider, root.provider_code, root.provider_message) == ("ecs", code, message)
    assert (root.http_status, root.request_id) == (status, "7b0e6c1e-req")


def test_client_error_message_is_a_short_sentence_naming_the_operation() -> None:
    error = ecs.from_client_error(client_error("ThrottlingException", "Rate exceeded"))
    assert error.message == "ECS RunTask was throttled: Rate exceeded"


def test_conflict_keeps_the_resource_ids_it_names() -> None:
    arn = "arn:aws:ecs:us-east-1:123456789012:task/c/0123456789abcdef"
    error = ecs.from_client_error(client_error("ConflictException", "conflict", resourceIds=[arn]))
    assert error.code is C.CONFLICT
    assert error.root_cause.resource_id == arn


RUN_TASK_FAILURES = [
    # https://docs.aws.amazon.com/AmazonECS/latest/developerguide/api_failures_messages.html
    pytest.param(
        {"arn": "arn:aws:ecs:us-east-1:1:container-instance/c/i1", "reason": "RESOURCE:MEMORY"},
        C.INSUFFICIENT_CAPACITY,
        id="memory",
    ),
    pytest.param({"reason": "RESOURCE:CPU"}, C.INSUFFICIENT_CAPACITY, id="cpu"),
    pytest.param({"reason": "RESOURCE:PORTS_TCP"}, C.INSUFFICIENT_CAPACITY, id="ports"),
    pytest.param({"reason": "RESOURCE:ENI"}, C.INSUFFICIENT_CAPACITY, id="eni"),
    pytest.param({"reason": "RESOURCE:GPU"}, C.INSUFFICIENT_CAPACITY, id="gpu"),
    pytest.param({"reason": "AGENT"}, C.INSUFFICIENT_CAPACITY, id="agent"),
    pytest.param({"reason": "DRAINING"}, C.INSUFFICIENT_CAPACITY, id="draining"),
    pytest.param({"reason": "ATTRIBUTE"}, C.INVALID_CONFIGURATION, id="attribute"),
    pytest.param({"reason": "LOCATION"}, C.INVALID_CONFIGURATION, id="location"),
    pytest.param({"reason": "MISSING"}, C.RESOURCE_NOT_FOUND, id="missing"),
    pytest.param({"reason": "INACTIVE"}, C.RESOURCE_NOT_FOUND, id="inactive"),
    # https://docs.aws.amazon.com/AmazonECS/latest/developerguide/service-event-messages.html
    pytest.param(
        {
            "reason": "Capacity is unavailable at this time. Please try again later or in a "
            "different availability zone"
        },
        C.INSUFFICIENT_CAPACITY,
        id="fargate-capacity",
    ),
    pytest.param(
        {"reason": "You've reached the limit on the number of tasks you can run concurrently"},
        C.QUOTA_EXCEEDED,
        id="concurrent-tasks",
    ),
    pytest.param(
        {"reason": "The requested CPU configuration is above your limit."}, C.QUOTA_EXCEEDED, id="cpu-limit"
    ),
    pytest.param({"reason": "Something brand new"}, C.UNKNOWN_PROVIDER_ERROR, id="unknown"),
]


@pytest.mark.parametrize(("failure", "expected"), RUN_TASK_FAILURES)
def test_run_task_failures(failure: dict[str, Any], expected: ErrorCode) -> None:
    [error] = ecs.from_run_task_response({"tasks": [], "failures": [failure]})
    assert error.code is expected
    assert error.operation == "RunTask"
    assert error.root_cause.provider_code == failure["reason"]
    assert error.root_cause.resource_id == failure.get("arn")


def test_run_task_response_gives_one_error_per_failure_and_none_without() -> None:
    response = {"tasks": [{"taskArn": "t"}], "failures": [{"reason": "RESOURCE:CPU"}, {"reason": "AGENT"}]}
    assert [e.code for e in ecs.from_run_task_response(response)] == [
        C.INSUFFICIENT_CAPACITY,
        C.INSUFFICIENT_CAPACITY,
    ]
    assert ecs.from_run_task_response({"tasks": [{"taskArn": "t"}], "failures": []}) == []


TASK_ARN = "arn:aws:ecs:us-east-1:123456789012:task/prod/0b69d5c0d4bb4b9a8e1e3fd36a2ae3b1"


def task(stop_code: str | None, reason: str | None, *containers: dict[str, Any]) -> dict[str, Any]:
    return {
        "taskArn": TASK_ARN,
        "lastStatus": "STOPPED",
        "stopCode": stop_code,
        "stoppedReason": reason,
        "containers": [{"name": f"c{i}", "lastStatus": "STOPPED", **c} for i, c in enumerate(containers)],
    }


ESSENTIAL_EXITED = "Essential container in task exited"
PULL_ERROR = "CannotPullContainerError: "

STOPPED_TASKS = [
    # https://repost.aws/knowledge-center/ecs-task-stopped ("Essential container in task exited")
    pytest.param(
        task("EssentialContainerExited", ESSENTIAL_EXITED, {"exitCode": 1}),
        C.CONTAINER_FAILED,
        1,
        id="exit-1",
    ),
    pytest.param(
        task(
            "EssentialContainerExited",
            ESSENTIAL_EXITED,
            {"exitCode": 137, "reason": "OutOfMemoryError: Container killed due to memory usage"},
        ),
        C.OUT_OF_MEMORY,
        137,
        id="oom",
    ),
    pytest.param(
        task("EssentialContainerExited", ESSENTIAL_EXITED, {"exitCode": 137}),
        C.CONTAINER_FAILED,
        137,
        id="137-no-oom",
    ),
    # The app failed with 2; the sidecar was killed (137) after it: the 2 explains the task.
    pytest.param(
        task("EssentialContainerExited", ESSENTIAL_EXITED, {"exitCode": 137}, {"exitCode": 2}),
        C.CONTAINER_FAILED,
        2,
        id="first-failure-not-the-kill",
    ),
    # https://github.com/aws/aws-sdk-go ... "StopCode: TerminationNotice, StoppedReason: Host EC2
    # (instance i-03dba81187d65ce7e) terminated."
    pytest.param(
        task("TerminationNotice", "Host EC2 (instance i-03dba81187d65ce7e) terminated.", {"exitCode": 143}),
        C.INFRASTRUCTURE_INTERRUPTED,
        143,
        id="termination-notice",
    ),
    pytest.param(
        task("SpotInterruption", "Your Spot Task was interrupted.", {"exitCode": 137}),
        C.INFRASTRUCTURE_INTERRUPTED,
        137,
        id="spot",
    ),
    pytest.param(
        task(None, "Host EC2 (instance i-06aab15feb4568492) stopped.", {"exitCode": 143}),
        C.INFRASTRUCTURE_INTERRUPTED,
        143,
        id="host-stopped",
    ),
    pytest.param(
        task("UserInitiated", "Task stopped by user", {"exitCode": 143}), C.CANCELLED, 143, id="user"
    ),
    # https://github.com/... ECS task state change event: "Scaling activity initiated by
    # (deployment ecs-svc/8646900195280463695)", stopCode ServiceSchedulerInitiated
    pytest.param(
        task(
            "ServiceSchedulerInitiated",
            "Scaling activity initiated by (deployment ecs-svc/8646900195280463695)",
            {"exitCode": 143},
        ),
        C.CANCELLED,
        143,
        id="deployment",
    ),
    # https://docs.aws.amazon.com/AmazonECS/latest/developerguide/service-event-messages.html
    pytest.param(
        task(
            "ServiceSchedulerInitiated",
            "Task failed ELB health checks in (target-group arn:aws:elasticloadbalancing:us-west-2:"
            "123456789012:targetgroup/alb-target-group/856238e446c9a134)",
            {"exitCode": 137},
        ),
        C.CONTAINER_FAILED,
        137,
        id="elb-health",
    ),
    pytest.param(
        task("ServiceSchedulerInitiated", "Task failed container health checks", {"exitCode": 137}),
        C.CONTAINER_FAILED,
        137,
        id="container-health",
    ),
    # https://docs.aws.amazon.com/AmazonECS/latest/developerguide/stopped-task-error-codes.html
    pytest.param(
        task(
            "TaskFailedToStart",
            PULL_ERROR + 'ref pull has been retried 5 time(s): failed to resolve reference "x:latest": '
            "x:latest: not found",
            {},
        ),
        C.IMAGE_NOT_FOUND,
        None,
        id="pull-not-found",
    ),
    pytest.param(
        task(
            "TaskFailedToStart",
            "Task failed to start",
            {
                "reason": PULL_ERROR + "inspect image has been retried 1 time(s): failed to resolve "
                'ref "262429377270.dkr.ecr.ap-northeast-2.amazonaws.com/keyword-dev:latest": '
                "262429377270.dkr.ecr.ap-northeast-2.amazonaws.com/keyword-dev:latest: not found"
            },
        ),
        C.IMAGE_NOT_FOUND,
        None,
        id="pull-not-found-in-container-reason",
    ),
    pytest.param(
        task(
            "TaskFailedToStart",
            PULL_ERROR
            + "Error response from daemon: manifest for app:v9 not found: manifest unknown: manifest unknown",
            {},
        ),
        C.IMAGE_NOT_FOUND,
        None,
        id="manifest-unknown",
    ),
    pytest.param(
        task(
            "TaskFailedToStart",
            PULL_ERROR + "Error response from daemon: pull access denied for private/app, repository "
            "does not exist or may require 'docker login': denied: requested access to the resource "
            "is denied",
            {},
        ),
        C.PERMISSION_DENIED,
        None,
        id="pull-access-denied",
    ),
    pytest.param(
        task(
            "TaskFailedToStart",
            PULL_ERROR + 'inspect image has been retried 5 time(s): failed to resolve ref "docker.io/library/'
            'nginx:latest": failed to do request: Head https://registry-1.docker.io/v2/library/nginx/'
            "manifests/latest: dial tcp 52.72.252.48:443: i/o timeout",
            {},
        ),
        C.IMAGE_PULL_FAILED,
        None,
        id="pull-io-timeout",
    ),
    pytest.param(
        task(
            "TaskFailedToStart",
            PULL_ERROR + "Error response from daemon: toomanyrequests: You have reached your pull rate "
            "limit. You may increase the limit by authenticating and upgrading: "
            "https://www.docker.com/increase-rate-limit",
            {},
        ),
        C.IMAGE_PULL_FAILED,
        None,
        id="pull-rate-limit",
    ),
    pytest.param(
        task("TaskFailedToStart", PULL_ERROR + "context canceled", {}),
        C.IMAGE_PULL_FAILED,
        None,
        id="context-canceled",
    ),
    # https://github.com/ (CDK notes) — registry auth over a network that cannot reach ECR
    pytest.param(
        task(
            "TaskFailedToStart",
            "ResourceInitializationError: unable to pull secrets or registry auth: execution resource "
            "retrieval failed: unable to retrieve ecr registry auth: service call has been retried 3 "
            'time(s): RequestError: send request failed caused by: Post "https://api.ecr.us-west-2.'
            'amazonaws.com/": dial tcp 34.223.27.162:443: i/o timeout. Please check your task '
            "network configuration.",
            {},
        ),
        C.IMAGE_PULL_FAILED,
        None,
        id="registry-auth-timeout",
    ),
    pytest.param(
        task(
            "TaskFailedToStart",
            "ResourceInitializationError: unable to pull secrets or registry auth: execution resource "
            "retrieval failed: unable to retrieve secret from asm: service call has been retried 1 "
            "time(s): AccessDeniedException: User: arn:aws:sts::123456789012:assumed-role/"
            "ecsTaskExecutionRole/abc is not authorized to perform: secretsmanager:GetSecretValue on "
            "resource: arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf",
            {},
        ),
        C.PERMISSION_DENIED,
        None,
        id="secrets-access-denied",
    ),
    pytest.param(
        task(
            "TaskFailedToStart",
            "ResourceInitializationError: unable to pull secrets or registry auth: execution resource "
            "retrieval failed: unable to retrieve secrets from ssm: service call has been retried 5 "
            "time(s): RequestError: send request failed caused by: Post "
            "https://ssm.us-east-1.amazonaws.com/: "
            "dial tcp 10.0.0.5:443: i/o timeout",
            {},
        ),
        C.PROVIDER_UNREACHABLE,
        None,
        id="secrets-network",
    ),
    pytest.param(
        task(
            "TaskFailedToStart",
            "ResourceInitializationError: failed to validate logger args: create stream has been "
            "retried 1 times: failed to create Cloudwatch log stream: ResourceNotFoundException: The "
            "specified log group does not exist.",
            {},
        ),
        C.RESOURCE_NOT_FOUND,
        None,
        id="log-group-missing",
    ),
    pytest.param(
        task(
            "TaskFailedToStart",
            "CannotStartContainerError: Error response from daemon: failed to create shim task: OCI "
            'runtime create failed: runc create failed: unable to start container process: exec: "app": '
            "executable file not found in $PATH: unknown",
            {},
        ),
        C.CONTAINER_START_FAILED,
        None,
        id="cannot-start",
    ),
    pytest.param(
        task(
            "TaskFailedToStart",
            "CannotCreateContainerError: Error response from daemon: devmapper: Thin Pool has 4350 "
            "free data blocks",
            {},
        ),
        C.CONTAINER_START_FAILED,
        None,
        id="cannot-create",
    ),
    pytest.param(
        task(
            "TaskFailedToStart",
            "ContainerRuntimeTimeoutError: Could not transition to running; timed out after waiting 1m",
            {},
        ),
        C.CONTAINER_START_FAILED,
        None,
        id="runtime-timeout",
    ),
    # https://github.com/dagster-io/dagster (treats this stop reason as transient)
    pytest.param(
        task("TaskFailedToStart", "Timeout waiting for network interface provisioning to complete.", {}),
        C.PROVIDER_TEMPORARILY_UNAVAILABLE,
        None,
        id="eni-timeout",
    ),
    pytest.param(
        task("TaskFailedToStart", 'InternalError: failed to normalize image reference "my image"', {}),
        C.INVALID_CONFIGURATION,
        None,
        id="bad-image-ref",
    ),
]


STOPPED_TASKS += [
    # https://github.com/aws/amazon-ecs-agent/issues/3021
    pytest.param(
        task(
            "EssentialContainerExited",
            ESSENTIAL_EXITED,
            {
                "reason": "CannotStartContainerError: Error response from daemon: OCI runtime create failed: "
                "container_linux.go:380: starting container process caused: container init was "
                "OOM-killed (memory limit too low?): unknown"
            },
        ),
        C.OUT_OF_MEMORY,
        None,
        id="init-oom-killed",
    ),
    # https://github.com/Rayraegah/terraform-aws-hasura/issues/25
    pytest.param(
        task(
            "EssentialContainerExited",
            ESSENTIAL_EXITED,
            {
                "reason": "CannotStartContainerError: Error response from daemon: failed to initialize "
                "logging driver: failed to create Cloudwatch log stream: ResourceNotFoundException: The "
                "specified log group does not exist. status code: 400"
            },
        ),
        C.RESOURCE_NOT_FOUND,
        None,
        id="start-log-group-missing",
    ),
    # https://docs.aws.amazon.com/AmazonECS/latest/developerguide/stopped-task-errors.html
    pytest.param(
        task(None, "Container instance deregistration forced by user", {"exitCode": 143}),
        C.CANCELLED,
        143,
        id="deregistration-by-user",
    ),
    pytest.param(
        task(None, "Stopped due to user requested container instance deregistration", {"exitCode": 143}),
        C.CANCELLED,
        143,
        id="user-requested-deregistration",
    ),
    # https://github.com/aws/containers-roadmap/issues/1545
    pytest.param(
        task("TaskFailedToStart", "Unable to attach network interface to unused device index.", {}),
        C.INSUFFICIENT_CAPACITY,
        None,
        id="eni-device-index",
    ),
    # https://github.com/hashicorp/terraform-provider-aws/issues/33044 (the brief: secrets that
    # cannot be fetched over the network are retriable)
    pytest.param(
        task(
            "TaskFailedToStart",
            "ResourceInitializationError: unable to pull secrets or registry auth: execution resource "
            "retrieval failed: unable to retrieve secrets from ssm: service call has been retried 5 "
            "time(s): RequestCanceled: request context canceled caused by: context deadline exceeded. "
            "Please check your task network configuration.",
            {},
        ),
        C.PROVIDER_UNREACHABLE,
        None,
        id="secrets-deadline",
    ),
    # https://github.com/awsdocs/amazon-ecs-developer-guide/blob/master/doc_source/task_cannot_pull_image.md
    # ("it's because there is no access to the image")
    pytest.param(
        task(
            "TaskFailedToStart",
            PULL_ERROR + "ref pull has been retried 1 time(s): failed to copy: httpReaderSeeker: failed "
            "open: unexpected status code",
            {},
        ),
        C.PERMISSION_DENIED,
        None,
        id="failed-open-no-access",
    ),
    pytest.param(
        task(
            "TaskFailedToStart",
            PULL_ERROR + "failed to copy: httpReaderSeeker: failed open: unexpected status code "
            "https://1.dkr.ecr.us-east-1.amazonaws.com/v2/app/blobs/sha256:ab: 503 Service Unavailable",
            {},
        ),
        C.IMAGE_PULL_FAILED,
        None,
        id="failed-open-503",
    ),
]


@pytest.mark.parametrize(("payload", "expected", "exit_code"), STOPPED_TASKS)
def test_stopped_tasks(payload: dict[str, Any], expected: ErrorCode, exit_code: int | None) -> None:
    error = ecs.from_stopped_task(payload)
    assert error is not None
    assert error.code is expected
    assert error.root_cause.exit_code == exit_code
    assert error.root_cause.resource_id == TASK_ARN
    assert error.root_cause.provider_code == payload["stopCode"]
    assert error.root_cause.provider_message == (payload["stoppedReason"] or error.root_cause.reason)


def test_a_task_whose_essential_containers_exited_0_did_not_fail() -> None:
    assert ecs.from_stopped_task(task("EssentialContainerExited", ESSENTIAL_EXITED, {"exitCode": 0})) is None
    # A non-essential sidecar's failure does not fail the task.
    done = task(
        "EssentialContainerExited", ESSENTIAL_EXITED, {"exitCode": 0}, {"exitCode": 1, "essential": False}
    )
    assert ecs.from_stopped_task(done) is None


def test_a_running_task_has_not_failed() -> None:
    assert ecs.from_stopped_task({"taskArn": TASK_ARN, "lastStatus": "RUNNING", "containers": []}) is None


def test_oom_message_names_the_container_reason() -> None:
    oom = task(
        "EssentialContainerExited",
        ESSENTIAL_EXITED,
        {"exitCode": 137, "reason": "OutOfMemoryError: Container killed due to memory usage"},
    )
    error = ecs.from_stopped_task(oom)
    assert error is not None
    assert error.classification is Classification.NON_RETRIABLE
    assert error.message == (
        "ECS task 0b69d5c0d4bb4b9a8e1e3fd36a2ae3b1 ran out of memory (exit code 137): "
        "OutOfMemoryError: Container killed due to memory usage"
    )


@pytest.mark.parametrize("table", [CLIENT_ERROR_RULES, RUN_TASK_FAILURE_RULES, STOPPED_TASK_RULES])
def test_every_rule_says_which_code_it_gives(table: tuple[Any, ...]) -> None:
    assert table
    assert all(rule.code is None or isinstance(rule.code, ErrorCode) for rule in table)


def test_a_log_group_the_task_cannot_reach_is_a_network_problem() -> None:
    # https://github.com/ (Terraform VPC endpoint notes quoting the stop reason)
    reason = (
        "ResourceInitializationError: failed to validate logger args: The task cannot find the Amazon "
        "CloudWatch log group defined in the task definition. There is a connection issue between the "
        "task and Amazon CloudWatch. Check your network configuration. : signal: killed"
    )
    error = ecs.from_stopped_task(task("TaskFailedToStart", reason, {}))
    assert error is not None
    assert error.code is C.PROVIDER_UNREACHABLE
