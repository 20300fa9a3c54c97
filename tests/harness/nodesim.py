"""A node simulator: the part of a kubelet the tests need, with no container runtime.

The local control plane (``kubecluster``) has no kubelet. ``NodeSimulator`` stands in for one
per simulated node: it registers the ``Node`` objects (capacity, allocatable, ``Ready``), keeps them
alive with ``Lease`` renewals and status heartbeats (so the node-lifecycle controller never taints
them ``NotReady``), and drives every pod the scheduler binds to them through the phases a kubelet
reports, by patching the pod's ``status`` subresource. What happens to a pod is scripted per pod
in an annotation. The simulator polls the API server from a daemon thread (``start()`` /
``stop()``), or runs as a process: ``python -m tests.harness.nodesim --kubeconfig PATH``.

Script grammar (annotation ``sim.compute.test/script``; default ``run:1s,exit:0``)::

    script   := step ("," step)*
    step     := "pending:" DUR              waiting, reason ContainerCreating, for DUR
              | "waiting:" REASON [":" DUR] waiting with REASON (forever without DUR), e.g.
                                            ErrImagePull, ImagePullBackOff, CreateContainerConfigError,
                                            CreateContainerError, InvalidImageName, CrashLoopBackOff
              | "run:" (DUR | "forever")    running and Ready for DUR
              | "exit:" CODE                terminated with CODE (reason Completed for 0, Error else)
              | "reason:" REASON            sets the reason of the preceding exit (e.g. OOMKilled)
              | "evict" [":" RESOURCE]      the kubelet evicts the pod (phase Failed, reason Evicted,
                                            "The node was low on resource: RESOURCE." memory default)
    DUR      := NUMBER ("ms" | "s" | "m")?  seconds when no unit is given

Steps run in order from the moment the simulator first sees the pod bound to its node. A script
that ends with a finite ``run`` exits 0; one that ends with a finite wait keeps its last state.
Examples: ``run:2s,exit:0``; ``run:1s,exit:137,reason:OOMKilled``; ``waiting:ErrImagePull``;
``pending:1s,waiting:ErrImagePull:2s,waiting:ImagePullBackOff``; ``run:1s,evict``; ``run:forever``.

``sim.compute.test/script.<container>`` scripts one container of a multi-container pod (the pod
script applies to the others); ``sim.compute.test/message`` overrides the waiting / terminated
message (otherwise a realistic kubelet / containerd message is used, e.g. for ``ErrImagePull``
``rpc error: code = NotFound desc = failed to pull and unpack image "docker.io/library/x:latest":
...: not found``). Init containers complete at once with exit code 0.

Like a kubelet, the simulator also enforces ``spec.activeDeadlineSeconds`` (phase Failed, reason
``DeadlineExceeded``), finishes graceful deletions (containers terminated, then a delete with grace
period 0 and a UID precondition), and records ``Warning`` events for failures. Pod phase follows
the kubelet's rule for ``restartPolicy: Never``: all containers terminated -> Succeeded when every
exit code is 0, Failed otherwise; any container started -> Running; else Pending. Restarts
(``Always`` / ``OnFailure``) are not simulated. Pod and node IPs are loopback addresses: nothing
ever connects to them.

Container start times follow the Kubernetes API reference: ``state.running.startedAt`` is when
the container was last (re-)started (ContainerStateRunning), ``state.terminated.startedAt`` when
the run that ended started (ContainerStateTerminated); whole seconds, as the API server writes
them. A container that exits without a ``run`` step started at the moment it exited; one the
kubelet killed before it ever ran (evicted, past its deadline, or deleted while waiting) has no
``startedAt``, and ``status.startTime`` (when the kubelet took the pod, before any image pull)
stays the pod's start on the node either way.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import logging
import re
import signal
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

log = logging.getLogger(__name__)

SCRIPT_ANNOTATION = "sim.compute.test/script"
MESSAGE_ANNOTATION = "sim.compute.test/message"
DEFAULT_SCRIPT = "run:1s,exit:0"
NODE_LABEL = "sim.compute.test/node"
MERGE_PATCH = "application/merge-patch+json"
LEASE_NAMESPACE = "kube-node-lease"
LEASE_SECONDS = 40
LEASE_RENEW_EVERY = 10.0
NODE_STATUS_EVERY = 30.0
KUBELET_VERSION = "v1.20.2"


# --- the script -----------------------------------------------------------------------------------

StepKind = Literal["pending", "waiting", "run", "exit", "evict"]


@dataclass(frozen=True)
class Step:
    kind: StepKind
    duration: float | None = None  # None: forever (pending / waiting / run)
    reason: str = ""
    exit_code: int = 0


class ScriptError(ValueError):
    pass


def _duration(text: str) -> float | None:
    if text == "forever":
        return None
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)?", text)
    if not match:
        raise ScriptError(f"bad duration {text!r}")
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, None: 1.0}[match.group(2)]
    return float(match.group(1)) * scale


def parse_script(text: str) -> list[Step]:
    """Parse a pod script (grammar in the module docstring); raise ``ScriptError`` when malformed."""
    steps: list[Step] = []
    for raw in (part.strip() for part in text.split(",")):
        if not raw:
            continue
        word, _, arg = raw.partition(":")
        if word == "pending":
            steps.append(Step("pending", _duration(arg or "0"), reason="ContainerCreating"))
        elif word == "waiting":
            reason, _, dur = arg.partition(":")
            if not reason:
                raise ScriptError(f"waiting needs a reason: {raw!r}")
            steps.append(Step("waiting", _duration(dur) if dur else None, reason=reason))
        elif word == "run":
            steps.append(Step("run", _duration(arg or "forever")))
        elif word == "exit":
            if not re.fullmatch(r"-?\d+", arg):
                raise ScriptError(f"exit needs an integer code: {raw!r}")
            code = int(arg)
            steps.append(Step("exit", exit_code=code, reason="Completed" if code == 0 else "Error"))
        elif word == "reason":
            if not steps or steps[-1].kind != "exit" or not arg:
                raise ScriptError(f"reason must follow an exit step: {raw!r}")
            steps[-1] = Step("exit", exit_code=steps[-1].exit_code, reason=arg)
        elif word == "evict":
            steps.append(Step("evict", reason=arg or "memory"))
        else:
            raise ScriptError(f"unknown step {raw!r}")
    if not steps:
        raise ScriptError("empty script")
    return steps


@dataclass(frozen=True)
class ContainerMoment:
    """What one container looks like ``elapsed`` seconds after the pod started on its node."""

    state: Literal["waiting", "running", "terminated", "evicted"]
    reason: str = ""
    exit_code: int = 0
    since: float = 0.0  # when the current state began (seconds after the pod's start)
    started_at: float | None = None  # when it began running, if it ever did


def moment(steps: Sequence[Step], elapsed: float) -> ContainerMoment:
    """Walk the script to ``elapsed``: a pure function, so the status is the same on every tick."""
    t = 0.0
    started: float | None = None
    last_wait: ContainerMoment | None = None
    for step in steps:
        if step.kind in ("pending", "waiting"):
            last_wait = ContainerMoment("waiting", step.reason, since=t, started_at=started)
            if step.duration is None or elapsed < t + step.duration:
                return last_wait
            t += step.duration
        elif step.kind == "run":
            started = t
            if step.duration is None or elapsed < t + step.duration:
                return ContainerMoment("running", since=t, started_at=started)
            t += step.duration
            last_wait = None
        elif step.kind == "exit":
            # A process that exits ran, if only for an instant, even with no run step before.
            began = started if started is not None else t
            return ContainerMoment("terminated", step.reason, step.exit_code, since=t, started_at=began)
        else:  # evict
            return ContainerMoment("evicted", step.reason, 137, since=t, started_at=started)
    if last_wait is not None:
        return last_wait
    return ContainerMoment("terminated", "Completed", 0, since=t, started_at=started)


# --- realistic messages ---------------------------------------------------------------------------


def normalize_image(image: str) -> str:
    """``busybox`` -> ``docker.io/library/busybox:latest``, the way containerd names it."""
    name, _, digest = image.partition("@")
    first = name.split("/", 1)[0]
    if "/" not in name:
        name = f"docker.io/library/{name}"
    elif "." not in first and ":" not in first and first != "localhost":
        name = f"docker.io/{name}"
    if digest:
        return f"{name}@{digest}"
    if ":" not in name.rsplit("/", 1)[-1]:
        name += ":latest"
    return name


def _first_secret_ref(container: dict[str, Any]) -> str:
    for env in container.get("env") or []:
        ref = (env.get("valueFrom") or {}).get("secretKeyRef")
        if ref:
            return f'secret "{ref.get("name")}" not found'
        ref = (env.get("valueFrom") or {}).get("configMapKeyRef")
        if ref:
            return f'configmap "{ref.get("name")}" not found'
    for source in container.get("envFrom") or []:
        if source.get("secretRef"):
            return f'secret "{source["secretRef"].get("name")}" not found'
        if source.get("configMapRef"):
            return f'configmap "{source["configMapRef"].get("name")}" not found'
    return 'secret "missing-secret" not found'


def waiting_message(reason: str, container: dict[str, Any], pod_key: str) -> str:
    image = container.get("image", "")
    ref = normalize_image(image)
    messages = {
        "ContainerCreating": "",
        "ErrImagePull": (
            f'rpc error: code = NotFound desc = failed to pull and unpack image "{ref}": '
            f'failed to resolve reference "{ref}": {ref}: not found'
        ),
        "ImagePullBackOff": f'Back-off pulling image "{image}"',
        "CreateContainerConfigError": _first_secret_ref(container),
        "CreateContainerError": "context deadline exceeded",
        "InvalidImageName": (
            f'Failed to apply default image tag "{image}": couldn\'t parse image reference '
            f'"{image}": invalid reference format'
        ),
        "CrashLoopBackOff": (
            f"back-off 10s restarting failed container={container.get('name')} pod={pod_key}"
        ),
    }
    return messages.get(reason, "")


# --- the status a kubelet would report -------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    kind: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True)
class _PodFacts:
    """The parts of a pod that every container status needs."""

    uid: str
    key: str  # name_namespace(uid), as the kubelet names a pod in messages
    start: float  # epoch of the pod's start on the node
    message_override: str | None


def _container_script(annotations: dict[str, str], container: str) -> tuple[list[Step], str | None]:
    """The container's steps, and an error message when its script is malformed."""
    text = annotations.get(f"{SCRIPT_ANNOTATION}.{container}") or annotations.get(
        SCRIPT_ANNOTATION, DEFAULT_SCRIPT
    )
    try:
        return parse_script(text), None
    except ScriptError as err:
        # A malformed script is a test bug; show it on the pod, where the test looks, not in a log.
        return [Step("waiting", None, reason="CreateContainerError")], f"node simulator: {err}"


def _pod_ending(
    spec: dict[str, Any], moments: list[ContainerMoment], elapsed: float
) -> tuple[str, str, float]:
    """(reason, message, when) if the kubelet itself ends the pod (eviction, deadline); else ("", "", 0)."""
    evicted = next((m for m in moments if m.state == "evicted"), None)
    if evicted is not None:
        resource = evicted.reason
        usage = "524288Ki" if resource == "memory" else "1Gi"
        message = f"The node was low on resource: {resource}. " + "".join(
            f"Container {c['name']} was using {usage}, which exceeds its request of "
            f"{(c.get('resources') or {}).get('requests', {}).get(resource, '0')}. "
            for c in spec["containers"]
        )
        return "Evicted", message, evicted.since
    deadline = spec.get("activeDeadlineSeconds")
    if deadline is not None and elapsed >= float(deadline):
        return (
            "DeadlineExceeded",
            "Pod was active on the node longer than the specified deadline",
            float(deadline),
        )
    return "", "", 0.0


def _phase(moments: list[ContainerMoment], ended_by_kubelet: bool) -> str:
    if ended_by_kubelet or all(m.state == "terminated" for m in moments):
        failed = ended_by_kubelet or any(m.exit_code != 0 for m in moments)
        return "Failed" if failed else "Succeeded"
    if any(m.started_at is not None for m in moments):
        return "Running"
    return "Pending"


def _conditions(
    pod: dict[str, Any], names: list[str], moments: list[ContainerMoment], phase: str, start: float
) -> list[dict[str, Any]]:
    """The scheduler's conditions as they are, plus the three a kubelet owns."""
    ready = phase == "Running" and all(m.state == "running" for m in moments)
    changed = _ts(start + max((m.since for m in moments), default=0.0))
    readiness: dict[str, Any] = {"status": "True" if ready else "False"}
    if not ready and phase in ("Succeeded", "Failed"):
        readiness["reason"] = "PodCompleted"
    elif not ready:
        unready = " ".join(n for n, m in zip(names, moments, strict=True) if m.state != "running")
        readiness["reason"] = "ContainersNotReady"
        readiness["message"] = f"containers with unready status: [{unready}]"
    ours = {"Initialized", "Ready", "ContainersReady"}
    kept = [c for c in pod.get("status", {}).get("conditions") or [] if c["type"] not in ours]
    return [
        *kept,
        {"type": "Initialized", "status": "True", "lastProbeTime": None, "lastTransitionTime": _ts(start)},
        {"type": "Ready", "lastProbeTime": None, "lastTransitionTime": changed, **readiness},
        {"type": "ContainersReady", "lastProbeTime": None, "lastTransitionTime": changed, **readiness},
    ]


def pod_status(
    pod: dict[str, Any], start: float, now: float, host_ip: str, pod_ip: str
) -> tuple[dict[str, Any], list[Event]]:
    """The full ``status`` a kubelet would report ``now`` for a pod that started at ``start``,
    and the events it would record. Pure: the same inputs give the same status."""
    meta, spec = pod["metadata"], pod["spec"]
    annotations = meta.get("annotations") or {}
    elapsed = now - start
    override = annotations.get(MESSAGE_ANNOTATION)
    moments = []
    for container in spec["containers"]:
        steps, script_error = _container_script(annotations, container["name"])
        override = script_error or override
        moments.append(moment(steps, elapsed))

    events: list[Event] = []
    reason, message, ended = _pod_ending(spec, moments, elapsed)
    if reason:
        # The kubelet kills whatever still runs: SIGKILL, exit code 137.
        moments = [
            m
            if m.state == "terminated" and m.since <= ended
            else ContainerMoment("terminated", "Error", 137, since=ended, started_at=m.started_at)
            for m in moments
        ]
        events.append(Event("Warning", reason, message))

    facts = _PodFacts(meta["uid"], f"{meta['name']}_{meta['namespace']}({meta['uid']})", start, override)
    statuses = []
    for container, m in zip(spec["containers"], moments, strict=True):
        statuses.append(container_status(container, m, facts))
        if m.state == "waiting" and m.reason != "ContainerCreating":
            events.append(Event("Warning", "Failed", f"Error: {m.reason}"))
            if m.reason == "ErrImagePull":
                pulled = statuses[-1]["state"]["waiting"].get("message", "")
                events.append(
                    Event("Warning", "FailedPull", f'Failed to pull image "{container["image"]}": {pulled}')
                )

    phase = _phase(moments, bool(reason))
    status: dict[str, Any] = {
        "phase": phase,
        "conditions": _conditions(pod, [c["name"] for c in spec["containers"]], moments, phase, start),
        "hostIP": host_ip,
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "startTime": _ts(start),
        "containerStatuses": statuses,
    }
    if spec.get("initContainers"):
        done = ContainerMoment("terminated", "Completed", 0, since=0.0, started_at=0.0)
        no_override = _PodFacts(facts.uid, facts.key, start, None)
        status["initContainerStatuses"] = [
            container_status(c, done, no_override) for c in spec["initContainers"]
        ]
    if reason:
        status["reason"] = reason
        status["message"] = message
    return status, events


def container_status(container: dict[str, Any], m: ContainerMoment, pod: _PodFacts) -> dict[str, Any]:
    """One entry of ``containerStatuses`` for container ``container`` in state ``m``."""
    image = container.get("image", "")
    started = m.started_at is not None
    status: dict[str, Any] = {
        "name": container["name"],
        "image": normalize_image(image) if started else image,
        "imageID": "",
        "ready": m.state == "running",
        "started": m.state == "running",
        "restartCount": 0,
        "lastState": {},
    }
    if m.started_at is not None:
        repository = normalize_image(image).rsplit(":", 1)[0]
        status["imageID"] = f"{repository}@sha256:{_hex_id('image', normalize_image(image))}"
        status["containerID"] = f"containerd://{_hex_id('container', pod.uid, container['name'])}"
    if m.state == "waiting":
        waiting: dict[str, Any] = {"reason": m.reason}
        message = pod.message_override or waiting_message(m.reason, container, pod.key)
        if message:
            waiting["message"] = message
        status["state"] = {"waiting": waiting}
    elif m.state == "running":
        status["state"] = {"running": {"startedAt": _ts(pod.start + m.since)}}
    else:
        terminated: dict[str, Any] = {
            "exitCode": m.exit_code,
            "reason": m.reason if m.state == "terminated" else "Error",
            "finishedAt": _ts(pod.start + m.since),
        }
        if m.started_at is not None:
            # killed before it ever ran: no start to report (the kubelet leaves it unset)
            terminated["startedAt"] = _ts(pod.start + m.started_at)
            terminated["containerID"] = status["containerID"]
        if pod.message_override:
            terminated["message"] = pod.message_override
        status["state"] = {"terminated": terminated}
    return status


def _stopped(container_status: dict[str, Any], now: float) -> dict[str, Any]:
    """A container status after the kubelet killed the container for a pod deletion."""
    state = container_status.get("state") or {}
    if "terminated" in state:
        return container_status
    terminated = {"exitCode": 137, "reason": "Error", "finishedAt": _ts(now)}
    started = state.get("running", {}).get("startedAt")
    if started:  # a container deleted while still waiting never ran
        terminated["startedAt"] = started
    return {**container_status, "ready": False, "started": False, "state": {"terminated": terminated}}


# --- the simulator --------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeSpec:
    name: str
    cpu: str = "4"
    memory: str = "8Gi"
    pods: str = "110"
    ephemeral_storage: str = "100Gi"

    @classmethod
    def parse(cls, text: str) -> NodeSpec:
        """``NAME[=CPU,MEMORY]``, e.g. ``sim-node-1=4,8Gi``."""
        name, _, rest = text.partition("=")
        if not rest:
            return cls(name)
        cpu, _, memory = rest.partition(",")
        return cls(name, cpu=cpu, memory=memory or "8Gi")


def _ts(epoch: float) -> str:
    return dt.datetime.fromtimestamp(int(epoch), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _micro_ts(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_ts(value: Any) -> float | None:
    if isinstance(value, dt.datetime):
        return value.timestamp()
    if isinstance(value, str) and value:
        return dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC).timestamp()
    return None


def _hex_id(*parts: str) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()


@dataclass
class _PodTrack:
    """What the simulator remembers about one pod it drives."""

    start: float  # wall-clock epoch of the pod's start on the node
    pod_ip: str
    last_status: str = ""  # JSON of the last status patched, to patch only on change
    events: set[str] = field(default_factory=set)  # reasons already recorded as events
    done: bool = False


class NodeSimulator:
    """Registers ``nodes`` and plays the kubelet for every pod bound to them, from a thread."""

    def __init__(self, kubeconfig: str | Path, nodes: Iterable[NodeSpec], interval: float = 0.2) -> None:
        self.kubeconfig = str(kubeconfig)
        self.nodes = list(nodes)
        self.interval = interval
        self.errors: list[str] = []  # unexpected API errors, newest last (kept short)
        self._node_ip = {node.name: f"127.0.{i + 1}.1" for i, node in enumerate(self.nodes)}
        self._ip_counter = {node.name: 0 for node in self.nodes}
        self._pods: dict[str, _PodTrack] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._registered_at = time.time()
        self._last_lease = 0.0
        self._last_node_status = 0.0
        self._api: Any = None

    # lifecycle

    def start(self) -> NodeSimulator:
        """Register the nodes (synchronously, so they exist on return) and start the thread."""
        from kubernetes import config

        self._api = config.new_client_from_config(config_file=self.kubeconfig)
        self.register_nodes()
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="node-simulator", daemon=True)
        self._thread.start()
        return self

    def stop(self, delete_nodes: bool = False) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if delete_nodes and self._api is not None:
            from kubernetes import client

            core = client.CoreV1Api(self._api)
            for node in self.nodes:
                self._ignore_gone(core.delete_node, node.name)
        if self._api is not None:
            self._api.close()
            self._api = None

    def run_forever(self, ready_file: str | Path | None = None) -> None:
        """Register the nodes, then run the loop in this thread until ``request_stop()``."""
        from kubernetes import config

        self._api = config.new_client_from_config(config_file=self.kubeconfig)
        self.register_nodes()
        if ready_file:
            Path(ready_file).write_text(" ".join(n.name for n in self.nodes) + "\n")
        self._loop()

    def request_stop(self) -> None:
        """Ask the loop to end after the current tick (safe from a signal handler)."""
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception as err:  # the simulator must outlive a failed call; retry next tick
                self._note_error(f"tick failed: {err!r}")
            self._stop.wait(self.interval)

    def _note_error(self, text: str) -> None:
        log.warning("node simulator: %s", text)
        self.errors = [*self.errors[-49:], text]

    # nodes

    def _node_status(self, node: NodeSpec, now: float) -> dict[str, Any]:
        resources = {
            "cpu": node.cpu,
            "memory": node.memory,
            "pods": node.pods,
            "ephemeral-storage": node.ephemeral_storage,
        }
        healthy = [
            (
                "MemoryPressure",
                "False",
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available",
            ),
            ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
        ]
        return {
            "capacity": resources,
            "allocatable": resources,
            "conditions": [
                {
                    "type": kind,
                    "status": status,
                    "reason": reason,
                    "message": message,
                    "lastHeartbeatTime": _ts(now),
                    "lastTransitionTime": _ts(self._registered_at),
                }
                for kind, status, reason, message in healthy
            ],
            "addresses": [
                {"type": "InternalIP", "address": self._node_ip[node.name]},
                {"type": "Hostname", "address": node.name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
            "nodeInfo": {
                "machineID": _hex_id("machine", node.name)[:32],
                "systemUUID": _hex_id("uuid", node.name)[:32],
                "bootID": _hex_id("boot", node.name)[:32],
                "kernelVersion": "6.1.0-sim",
                "osImage": "Node simulator",
                "containerRuntimeVersion": "containerd://1.6.20",
                "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": KUBELET_VERSION,
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        }

    def register_nodes(self) -> None:
        from kubernetes import client
        from kubernetes.client.rest import ApiException

        core = client.CoreV1Api(self._api)
        now = time.time()
        self._registered_at = now
        for node in self.nodes:
            body = {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": node.name,
                    "labels": {
                        "kubernetes.io/hostname": node.name,
                        "kubernetes.io/os": "linux",
                        "kubernetes.io/arch": "amd64",
                        NODE_LABEL: "true",
                    },
                },
                "spec": {},
                "status": self._node_status(node, now),
            }
            try:
                core.create_node(body)
            except ApiException as err:
                if err.status != 409:
                    raise
            # Creation may drop the status; the status subresource is authoritative.
            core.patch_node_status(
                node.name, {"status": self._node_status(node, now)}, _content_type=MERGE_PATCH
            )
        self._renew_leases(now)
        self._last_node_status = now

    def _renew_leases(self, now: float) -> None:
        from kubernetes import client
        from kubernetes.client.rest import ApiException

        coordination = client.CoordinationV1Api(self._api)
        for node in self.nodes:
            spec = {
                "holderIdentity": node.name,
                "leaseDurationSeconds": LEASE_SECONDS,
                "renewTime": _micro_ts(now),
            }
            try:
                coordination.patch_namespaced_lease(
                    node.name, LEASE_NAMESPACE, {"spec": spec}, _content_type=MERGE_PATCH
                )
            except ApiException as err:
                if err.status != 404:
                    raise
                body = {"metadata": {"name": node.name, "namespace": LEASE_NAMESPACE}, "spec": spec}
                coordination.create_namespaced_lease(LEASE_NAMESPACE, body)
        self._last_lease = now

    def _heartbeat(self, now: float) -> None:
        from kubernetes import client

        if now - self._last_lease >= LEASE_RENEW_EVERY:
            self._renew_leases(now)
        if now - self._last_node_status >= NODE_STATUS_EVERY:
            core = client.CoreV1Api(self._api)
            for node in self.nodes:
                core.patch_node_status(
                    node.name, {"status": self._node_status(node, now)}, _content_type=MERGE_PATCH
                )
            self._last_node_status = now

    # pods

    def tick(self) -> None:
        """One pass: heartbeat, then bring every pod on our nodes to its scripted state."""
        from kubernetes import client

        now = time.time()
        self._heartbeat(now)
        core = client.CoreV1Api(self._api)
        # Raw JSON, not the client's models: the status is rebuilt from the spec as plain dicts.
        response = core.list_pod_for_all_namespaces(_preload_content=False)
        pods = json.loads(response.data)["items"]
        seen: set[str] = set()
        for pod in pods:
            if pod["spec"].get("nodeName") not in self._node_ip:
                continue
            uid = pod["metadata"]["uid"]
            seen.add(uid)
            try:
                self._drive(core, pod, now)
            except Exception as err:
                self._note_error(f"pod {pod['metadata']['namespace']}/{pod['metadata']['name']}: {err!r}")
        for uid in list(self._pods):
            if uid not in seen:
                del self._pods[uid]

    def _track(self, pod: dict[str, Any], now: float) -> _PodTrack:
        uid = pod["metadata"]["uid"]
        track = self._pods.get(uid)
        if track is None:
            node = pod["spec"]["nodeName"]
            # A pod this simulator (or an earlier run of it) already started keeps its clock.
            start = _parse_ts(pod.get("status", {}).get("startTime")) or now
            ip = pod.get("status", {}).get("podIP")
            if not ip:
                self._ip_counter[node] += 1
                n = self._ip_counter[node]
                ip = f"127.{list(self._node_ip).index(node) + 1}.{n // 250}.{n % 250 + 1}"
            track = self._pods[uid] = _PodTrack(start=start, pod_ip=ip)
        return track

    def _drive(self, core: Any, pod: dict[str, Any], now: float) -> None:
        meta = pod["metadata"]
        track = self._track(pod, now)
        if meta.get("deletionTimestamp"):
            self._finish_deletion(core, pod, track, now)
            return
        if track.done or pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            track.done = True
            return
        status, events = pod_status(
            pod, track.start, now, host_ip=self._node_ip[pod["spec"]["nodeName"]], pod_ip=track.pod_ip
        )
        encoded = json.dumps(status, sort_keys=True)
        if encoded != track.last_status:
            self._patch_status(core, pod, status)
            track.last_status = encoded
        for event in events:
            if event.reason not in track.events:
                track.events.add(event.reason)
                self._record_event(core, pod, event, now)
        if status["phase"] in ("Succeeded", "Failed"):
            track.done = True

    def _patch_status(self, core: Any, pod: dict[str, Any], status: dict[str, Any]) -> None:
        from kubernetes.client.rest import ApiException

        meta = pod["metadata"]
        try:
            core.patch_namespaced_pod_status(
                meta["name"], meta["namespace"], {"status": status}, _content_type=MERGE_PATCH
            )
        except ApiException as err:
            if err.status not in (404, 409):  # deleted meanwhile: the next tick forgets it
                raise

    def _finish_deletion(self, core: Any, pod: dict[str, Any], track: _PodTrack, now: float) -> None:
        """A graceful delete: the kubelet stops the containers, then removes the pod for good."""
        from kubernetes import client
        from kubernetes.client.rest import ApiException

        meta = pod["metadata"]
        if pod.get("status", {}).get("phase") not in ("Succeeded", "Failed"):
            statuses = [_stopped(cs, now) for cs in pod.get("status", {}).get("containerStatuses") or []]
            if statuses:
                self._patch_status(core, pod, {"containerStatuses": statuses})
            self._record_event(core, pod, Event("Normal", "Killing", "Stopping container"), now)
        options = client.V1DeleteOptions(
            grace_period_seconds=0, preconditions=client.V1Preconditions(uid=meta["uid"])
        )
        try:
            core.delete_namespaced_pod(meta["name"], meta["namespace"], body=options)
        except ApiException as err:
            # 404: already gone; 409: the UID precondition failed, a new pod took the name.
            if err.status not in (404, 409):
                raise
        self._pods.pop(meta["uid"], None)

    def _record_event(self, core: Any, pod: dict[str, Any], event: Event, now: float) -> None:
        from kubernetes.client.rest import ApiException

        meta = pod["metadata"]
        name = f"{meta['name']}.{_hex_id(meta['uid'], event.reason)[:16]}"
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": meta["namespace"]},
            "involvedObject": {
                "kind": "Pod",
                "namespace": meta["namespace"],
                "name": meta["name"],
                "uid": meta["uid"],
                "apiVersion": "v1",
                "resourceVersion": meta.get("resourceVersion"),
            },
            "reason": event.reason,
            "message": event.message,
            "type": event.kind,
            "source": {"component": "kubelet", "host": pod["spec"]["nodeName"]},
            "firstTimestamp": _ts(now),
            "lastTimestamp": _ts(now),
            "count": 1,
            "reportingComponent": "kubelet",
            "reportingInstance": pod["spec"]["nodeName"],
        }
        try:
            core.create_namespaced_event(meta["namespace"], body)
        except ApiException as err:
            # 409: recorded already; 403/404: the namespace is being deleted.
            if err.status not in (403, 404, 409):
                raise

    @staticmethod
    def _ignore_gone(call: Any, *args: Any) -> None:
        from kubernetes.client.rest import ApiException

        try:
            call(*args)
        except ApiException as err:
            if err.status != 404:
                raise


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Simulate kubelet nodes against a Kubernetes API server.")
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument(
        "--node",
        action="append",
        default=[],
        help="NAME[=CPU,MEMORY], repeatable (default: sim-node-1=4,8Gi and sim-node-2=4,8Gi)",
    )
    parser.add_argument("--ready-file", help="written once the nodes are registered")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    nodes = [NodeSpec.parse(n) for n in args.node] or default_nodes()
    sim = NodeSimulator(args.kubeconfig, nodes)

    signal.signal(signal.SIGTERM, lambda _sig, _frame: sim.request_stop())
    signal.signal(signal.SIGINT, lambda _sig, _frame: sim.request_stop())
    log.info("simulating nodes %s", ", ".join(n.name for n in nodes))
    sim.run_forever(ready_file=args.ready_file)
    return 0


def default_nodes() -> list[NodeSpec]:
    """The two nodes every test cluster gets: 4 CPUs and 8 GiB each."""
    return [NodeSpec("sim-node-1"), NodeSpec("sim-node-2")]


if __name__ == "__main__":
    raise SystemExit(main())
