"""The Kubernetes rule tables: API errors, pod-level states and container states.

    API_RULES        facts of an ApiException: provider_code = Status.reason (or the HTTP
                     reason phrase), http_status, message = Status.message
    POD_RULES        facts of the pod as a whole: provider_code = status.reason or a
                     DisruptionTarget condition's reason (``PreemptionByScheduler``),
                     message = its message; flag ``deleted_while_active`` for a pod being
                     deleted before it finished
    SCHEDULING_RULES facts of the PodScheduled condition: provider_code = its reason
                     (``Unschedulable``), message = the scheduler's message
    CONTAINER_RULES  facts of one container status: provider_code = the waiting or terminated
                     reason, message, exit_code; reason / exit_code of the last termination
                     for ``CrashLoopBackOff``; flag ``deleting`` when the pod is being deleted

Sources (quoted in tests/unit/normalize/test_kubernetes.py next to each payload):
https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/status/,
https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/,
https://kubernetes.io/docs/concepts/scheduling-eviction/node-pressure-eviction/,
https://kubernetes.io/docs/concepts/cluster-administration/node-shutdown/,
https://kubernetes.io/docs/concepts/workloads/pods/disruptions/#pod-disruption-conditions,
https://kubernetes.io/docs/concepts/policy/resource-quotas/, and the messages the test
cluster's own kube-apiserver returns (tests/fixtures/kube_observed/).

Decisions on ambiguous cases (each is a rule below):
- Unschedulable: when any node lacks only room ("Insufficient cpu", "Too many pods", no free
  ports, cordoned or not-ready nodes, pod (anti-)affinity with running pods, topology spread),
  it is INSUFFICIENT_CAPACITY: capacity can appear. When the only obstacles are static
  properties of the nodes the pod asks for (an untolerated taint other than the node
  lifecycle ones, node affinity / selector, volume node affinity), it is
  INVALID_CONFIGURATION: no amount of waiting places it. Where the scheduler's per-node
  counts show the static reasons alone rule out every node ("10 node(s) didn't match node
  selector, 4 Insufficient cpu" out of 10), it is INVALID_CONFIGURATION as well.
- A 429 is PROVIDER_THROTTLED whatever its wording ("storage is (re)initializing"), except the
  eviction API's "would violate the pod's disruption budget", which is CONFLICT.
- A 403 "unable to create new content in namespace X because it is being terminated" is
  RESOURCE_NOT_FOUND: the namespace is going away.
- A 403 is PERMISSION_DENIED when it names a user and a verb (RBAC, the node authorizer) or
  carries no message; "<object> is forbidden: <anything else>" is an admission plugin refusing
  the object (SecurityContextDeny, PodSecurity, LimitRange), INVALID_CONFIGURATION; one that
  names something missing (a PriorityClass) is RESOURCE_NOT_FOUND, and "unable to validate
  against any pod security policy: []" (no policy granted at all) is PERMISSION_DENIED.
- A 410 Gone / Expired (a watch's resourceVersion is too old) is CONFLICT: a fresh read fixes it.
- A pod evicted for exceeding its own ephemeral-storage limit is CONTAINER_FAILED (the work
  did it, like an exit), not INFRASTRUCTURE_INTERRUPTED (node pressure).
- A kubelet ``NodeAffinity`` rejection (node labels changed under a scheduled pod, typically
  after a node restart) is INFRASTRUCTURE_INTERRUPTED, as is ``UnexpectedAdmissionError`` for
  unhealthy devices; one where device allocation failed is INSUFFICIENT_CAPACITY.
- ``CreateContainerConfigError`` (a missing Secret / ConfigMap or key) is
  INVALID_CONFIGURATION, as the design lists it.
"""

from __future__ import annotations

from airflow_compute_provider.errors import ErrorCode as C
from airflow_compute_provider.normalize.rules import (
    KILLED,
    NETWORK_WORDS,
    NON_ZERO,
    NON_ZERO_NOT_KILLED,
    Rule,
    any_of,
    image_pull_rules,
    status_fallbacks,
)

# --- API errors -----------------------------------------------------------------------------------

_TEMPORARY_WORDS = (
    r"etcdserver|the server is currently unable to handle the request"
    r"|unable to return a response in the time allotted|Timeout: request did not complete"
    r"|storage is \(?re\)?-?initializing|resource quota evaluation timed out|please try again later"
    r"|the server has been shut down|apiserver is shutting down|context deadline exceeded"
)

API_RULES: tuple[Rule, ...] = (
    Rule(
        C.PROVIDER_THROTTLED,
        message=r"too many requests|has asked us to try again later|rate limit",
        why="429 TooManyRequests / API priority and fairness",
    ),
    Rule(
        C.INVALID_CONFIGURATION,
        message=r"failed quota: .{0,200}must specify|must specify (?:limits|requests)",
        why="a ResourceQuota demands requests/limits the pod does not set (a 403, but not RBAC)",
    ),
    Rule(C.QUOTA_EXCEEDED, message=r"exceeded quota|quota exceeded|exceeds? quota", why="403 + quota"),
    Rule(
        C.RESOURCE_NOT_FOUND,
        message=r"error looking up service account|serviceaccounts? \"[^\"]*\" not found"
        r"|service ?account .{0,200}not found",
        why="403 'error looking up service account ns/x: serviceaccount \"x\" not found'",
    ),
    Rule(C.RESOURCE_NOT_FOUND, message=r"because it is being terminated|namespace .{0,100}is terminating"),
    Rule(
        C.PROVIDER_TEMPORARILY_UNAVAILABLE,
        message=r"failed calling webhook|failed to call webhook|webhook .{0,200}(?:timeout|timed out"
        r"|connection refused|no endpoints available|service unavailable)",
        why="an admission webhook that could not be reached (the request itself may be fine)",
    ),
    Rule(
        C.PERMISSION_DENIED,
        message=r"unable to validate against any (?:pod security policy|security context constraint): \[\]"
        r"|not usable by user or serviceaccount",
        why="no PodSecurityPolicy / SCC is granted to the user or service account at all: RBAC",
    ),
    Rule(
        C.INVALID_CONFIGURATION,
        message=r"denied the request|denied request|ValidatingAdmissionPolicy|violates PodSecurity"
        r"|PodSecurityPolicy|unable to validate against any pod security policy"
        r"|(?:maximum|minimum) \S+ usage per (?:Container|Pod)|LimitRange",
        why="admission (webhook, policy, Pod Security, LimitRange) refused the object",
    ),
    Rule(C.CONFLICT, message=r"disruption budget", why="a 429 from the eviction API: a PDB holds the pod"),
    Rule(
        C.PROVIDER_THROTTLED,
        http_status={429},
        why="the apiserver asks us to come back later, whatever it says why "
        "('storage is (re)initializing'); Retry-After is kept",
    ),
    Rule(C.PROVIDER_TEMPORARILY_UNAVAILABLE, message=_TEMPORARY_WORDS),
    Rule(C.CONFLICT, message=r"object has been modified|Operation cannot be fulfilled|already exists"),
    Rule(
        C.PERMISSION_DENIED,
        message=r"cannot (?:get|list|watch|create|update|patch|delete|deletecollection|impersonate"
        r"|use|bind|escalate) resource|is forbidden: User|User \"[^\"]*\" cannot|can only (?:get|create"
        r"|update|delete|modify)|not authorized|RBAC",
        why="RBAC and the node authorizer name the user and the verb it may not use",
    ),
    Rule(
        C.RESOURCE_NOT_FOUND,
        http_status={403},
        message=r"is forbidden: .{0,300}(?:not found|no \w+ with name .{0,120} was found|does not exist)",
        why="admission looked up something the pod names (PriorityClass, RuntimeClass) and failed",
    ),
    Rule(
        C.INVALID_CONFIGURATION,
        http_status={403},
        message=r"is forbidden: ",
        why="a 403 that names no user is an admission plugin refusing the object "
        "('pod.Spec.SecurityContext.RunAsUser is forbidden'), not RBAC",
    ),
    # Status.reason codes (StatusReason in k8s.io/apimachinery).
    Rule(C.AUTHENTICATION_FAILED, provider_code=any_of("Unauthorized")),
    Rule(C.PERMISSION_DENIED, provider_code=any_of("Forbidden")),
    Rule(C.RESOURCE_NOT_FOUND, provider_code=any_of("NotFound")),
    Rule(C.CONFLICT, provider_code=any_of("AlreadyExists", "Conflict", "Gone", "Expired")),
    Rule(
        C.INVALID_CONFIGURATION,
        provider_code=any_of(
            "Invalid",
            "BadRequest",
            "RequestEntityTooLarge",
            "UnsupportedMediaType",
            "NotAcceptable",
            "MethodNotAllowed",
        ),
    ),
    Rule(C.PROVIDER_THROTTLED, provider_code=any_of("TooManyRequests")),
    Rule(
        C.PROVIDER_TEMPORARILY_UNAVAILABLE,
        provider_code=any_of("InternalError", "ServiceUnavailable", "Timeout", "ServerTimeout"),
    ),
    *status_fallbacks(),
    Rule(C.CONFLICT, http_status={410}, why="Gone: the resourceVersion is too old; re-read"),
    # Status 0: the client never got an HTTP response (it wraps urllib3's SSLError that way).
    Rule(C.PROVIDER_UNREACHABLE, http_status={0}, text=(NETWORK_WORDS + r"|ssl|certificate",)),
)

PLACEMENT_BLOCKS_EVERY_NODE = "placement_blocks_every_node"
"""Flag kubernetes.py sets when the scheduler's per-node counts put every node out of reach
for static reasons (taints, selectors), whatever else it lists."""

# --- the pod as a whole ---------------------------------------------------------------------------

# Taints the node lifecycle controller and kubelet set and lift again by themselves.
_TRANSIENT_TAINTS = (
    r"node\.kubernetes\.io/(?:not-ready|unreachable|unschedulable|memory-pressure|disk-pressure"
    r"|pid-pressure|network-unavailable|out-of-service)|node\.cloudprovider\.kubernetes\.io/shutdown"
    r"|ToBeDeletedByClusterAutoscaler|karpenter\.sh/disrupt"
)
ROOM_WORDS = (
    r"Insufficient \S+|Too many pods|free ports|were unschedulable|(?:was|were) not ready"
    r"|(?:didn't|did not) (?:match|satisfy) (?:pod|existing pods) (?:anti-)?affinity"
    r"|(?:didn't|did not) satisfy existing pods anti-affinity|topology spread constraints"
    r"|no nodes available|^0/0 nodes|exceed max volume count|max volume count"
    r"|(?:untolerated taint|had taint)\s*\{(?:" + _TRANSIENT_TAINTS + ")"
)
PLACEMENT_WORDS = (
    r"untolerated taint|had taint|node affinity|node selector|nodeSelector|volume node affinity"
    r"|didn't match Pod's node|didn't find available persistent volumes to bind"
)

POD_RULES: tuple[Rule, ...] = (
    Rule(
        C.CONTAINER_FAILED,
        message=r"ephemeral local storage usage exceeds|exceeded its local ephemeral storage limit"
        r"|emptyDir (?:volume .{0,120})?(?:usage )?exceeds",
        why="the pod exceeded its own storage limit",
    ),
    Rule(C.DEADLINE_EXCEEDED, provider_code=any_of("DeadlineExceeded")),
    Rule(
        C.INFRASTRUCTURE_INTERRUPTED,
        provider_code=any_of("Evicted"),
        why="'The node was low on resource: memory.' (node-pressure eviction)",
    ),
    Rule(
        C.INFRASTRUCTURE_INTERRUPTED,
        provider_code=any_of(
            "Preempting",
            "Preempted",
            "PreemptionByScheduler",
            "PreemptionByKubeScheduler",
            "NodeLost",
            "Shutdown",
            "Terminated",
            "NodeShutdown",
            "DeletionByTaintManager",
            "DeletionByPodGC",
            "EvictionByEvictionAPI",
            "TerminationByKubelet",
        ),
        why="preemption, a lost or shut-down node, a drain (DisruptionTarget reasons)",
    ),
    Rule(
        C.INFRASTRUCTURE_INTERRUPTED,
        message=r"preempt|which was running the pod is unresponsive|imminent node shutdown"
        r"|node shutdown|node is shutting down|node .{0,100} (?:is )?(?:lost|unreachable)",
    ),
    Rule(C.INSUFFICIENT_CAPACITY, provider_code=r"OutOf.+", why="kubelet admission: OutOfcpu, OutOfmemory"),
    Rule(
        C.INFRASTRUCTURE_INTERRUPTED,
        provider_code=any_of("UnexpectedAdmissionError"),
        message=r"unhealthy|is lost|rpc (?:failed|error)|device plugin .{0,120}(?:failed|error)|nvml",
        why="the node's devices or device plugin are broken ('nvml: GPU is lost')",
    ),
    Rule(
        C.INSUFFICIENT_CAPACITY,
        provider_code=any_of("UnexpectedAdmissionError"),
        message=r"Allocate failed|unavailable|insufficient|Requested: \d+, Available"
        r"|unable to find .{0,40}device",
        why="the kubelet had no device (GPU) to hand the pod at admission",
    ),
    Rule(
        C.INFRASTRUCTURE_INTERRUPTED,
        provider_code=any_of("UnexpectedAdmissionError", "NodeAffinity", "InvalidNodeInfo"),
    ),
    Rule(
        C.INVALID_CONFIGURATION,
        provider_code=any_of(
            "SysctlForbidden",
            "PodOSNotSupported",
            "PodOSSelectorNodeLabelDoesNotMatch",
            "AppArmor",
            "UnknownSysctl",
            "NodeSelectorMismatching",
        ),
    ),
    Rule(C.CANCELLED, flags=frozenset({"deleted_while_active"}), why="deleted before it finished"),
)

# The PodScheduled condition, on its own: the scheduler's message mentions preemption ("3
# Preemption is not helpful for scheduling") without anything having been preempted.
SCHEDULING_RULES: tuple[Rule, ...] = (
    Rule(None, provider_code=any_of("SchedulingGated"), why="waiting for its gates: normal"),
    Rule(
        C.INVALID_CONFIGURATION,
        provider_code=any_of("Unschedulable"),
        flags=frozenset({PLACEMENT_BLOCKS_EVERY_NODE}),
        why="'0/10 nodes are available: 10 node(s) didn't match node selector, 4 Insufficient cpu': "
        "not one node would take the pod even empty",
    ),
    Rule(C.INSUFFICIENT_CAPACITY, provider_code=any_of("Unschedulable"), message=ROOM_WORDS),
    Rule(
        C.RESOURCE_NOT_FOUND,
        provider_code=any_of("Unschedulable"),
        message=r"persistentvolumeclaim \"[^\"]*\" not found|not found",
    ),
    Rule(C.INVALID_CONFIGURATION, provider_code=any_of("Unschedulable"), message=PLACEMENT_WORDS),
    Rule(C.INSUFFICIENT_CAPACITY, provider_code=any_of("Unschedulable"), why="unschedulable, no detail"),
    Rule(C.PROVIDER_TEMPORARILY_UNAVAILABLE, provider_code=any_of("SchedulerError")),
)

# --- one container --------------------------------------------------------------------------------

_IMAGE_PULL = any_of("ErrImagePull", "ImagePullBackOff", "RegistryUnavailable", "PullImageError")

CONTAINER_RULES: tuple[Rule, ...] = (
    Rule(C.OUT_OF_MEMORY, provider_code=any_of("OOMKilled")),
    Rule(C.OUT_OF_MEMORY, reason=r"^OOMKilled$", why="CrashLoopBackOff after an OOM kill"),
    Rule(C.INVALID_CONFIGURATION, provider_code=any_of("InvalidImageName")),
    Rule(C.IMAGE_NOT_FOUND, provider_code=any_of("ErrImageNeverPull"), why="pull policy Never, not on node"),
    *image_pull_rules(provider_code=_IMAGE_PULL),
    Rule(
        C.INVALID_CONFIGURATION,
        provider_code=any_of("CreateContainerConfigError"),
        why="secret / configmap / key not found, runAsNonRoot with a root image",
    ),
    Rule(
        C.CONTAINER_START_FAILED,
        provider_code=any_of(
            "CreateContainerError",
            "RunContainerError",
            "StartError",
            "ContainerCannotRun",
            "PreStartHookError",
            "PostStartHookError",
            "PreCreateHookError",
            "ImageInspectError",
        ),
    ),
    Rule(C.CONTAINER_START_FAILED, provider_code=any_of("CrashLoopBackOff"), reason=r"StartError|CannotRun"),
    Rule(
        C.CONTAINER_FAILED,
        provider_code=any_of("CrashLoopBackOff"),
        why="restarting after failures; the last termination's exit code is in the root cause",
    ),
    Rule(C.INFRASTRUCTURE_INTERRUPTED, provider_code=any_of("ContainerStatusUnknown")),
    Rule(C.DEADLINE_EXCEEDED, provider_code=any_of("DeadlineExceeded")),
    Rule(
        C.CANCELLED,
        exit_code=KILLED,
        flags=frozenset({"deleting"}),
        why="SIGTERM / SIGKILL while the pod was being deleted: the deletion stopped it",
    ),
    Rule(C.CONTAINER_FAILED, exit_code=NON_ZERO_NOT_KILLED, why="the container exited on its own"),
    Rule(C.CONTAINER_FAILED, exit_code=NON_ZERO, why="137 without OOMKilled is a kill, not OOM"),
    Rule(None, exit_code={0}, why="completed"),
    Rule(None, provider_code=any_of("ContainerCreating", "PodInitializing"), why="starting normally"),
)
