"""A real node for the test cluster: containerd (with its CRI plugin), runc, CNI and a kubelet.

Pods placed on it are real containers: their command runs and prints (``pods/{name}/log``
reaches the kubelet), they exit with their own code, the memory cgroup OOM-kills them at their
limit, the kubelet enforces ``activeDeadlineSeconds`` and reports ``CreateContainerConfigError``
and image pull failures in its own words. It sits beside the node simulator's nodes
(``nodesim``), which stay for what one machine cannot do for real (node loss, eviction under
node pressure, a Spot-style interruption, a preemption).

    start_real_node(cluster)   start containerd and the kubelet for ``cluster`` (``kubecluster``),
                               import the test images, wait until the Node is ``Ready``
    RealNode                   ``name``, ``placement()`` (the nodeSelector and toleration a pod
                               needs to run here), ``stop()``; ``RealNode.load(dir)`` re-reads
                               the state file so ``scripts/test-cluster down`` can stop it
    unavailable_reason()       why a real node cannot run on this machine, or None

Only pods that ask for it land here: the node is tainted ``compute.test/real-kubelet=true:
NoSchedule`` and labelled ``compute.test/real-kubelet=true``, so pods written for the simulator
(no toleration) never reach a kubelet that would try to pull ``busybox:1.36`` from a registry
this machine cannot reach. Images: ``scripts/build-test-images`` builds them from Debian's
``busybox-static`` (``IMAGE``; ``PAUSE_IMAGE`` is the sandbox), imported here into this node's
own containerd, so ``imagePullPolicy: IfNotPresent`` never pulls.

Networking: a bridge of the node's own with a /24 from ``10.200.0.0``-``10.247.255.0`` (chosen
from the run dir), host-local addresses, no masquerading (pods need no way out). The bridge's
own address (``.1``) is the node's IP: the kubelet refuses a loopback one, serves HTTPS there, and
the API server reaches it there for ``pods/{name}/log``.

Several clusters may run on one machine (parallel sessions, ``scripts/test-cluster`` beside
pytest): everything the node owns is its own. containerd's root, state, socket and network
namespaces live in ``<cluster run dir>/node``; the kubelet's root dir too; its pod cgroups go under
``/<cgroup root>`` (``--cgroup-root``, named after the run dir); the CNI bridge has its own name
and subnet. What is shared is what a kubelet hard-codes: ``/var/log/pods`` (per pod UID) and
``/var/lib/kubelet/device-plugins`` (unused), and the kernel settings every kubelet makes
(``vm.overcommit_memory=1``, ``kernel.panic=10``, ``kernel.panic_on_oops=1``).

Security, as far as a test needs it: the kubelet authenticates to the API server as
``system:node:<name>`` in group ``system:nodes`` (a token), which the Node authorizer accepts;
it serves HTTPS with a certificate from the cluster's CA (``issue_certificate``) and only accepts
clients with a certificate from that CA (the API server's kubelet client certificate),
authorizing them all (``AlwaysAllow``: no SubjectAccessReview round trip).

``stop()`` stops the kubelet, kills and deletes every container through containerd (``ctr``),
stops containerd and its shims, and removes what is left on the host: mounts under the node's
dir, its cgroups and its bridge.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tests.harness.kubecluster import (
    REAL_NODE_NAME,
    REAL_NODE_USER,
    KubeCluster,
    Proc,
    issue_certificate,
    spawn,
    stop_procs,
)
from tests.harness.ports import LOOPBACK, free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
IMAGES_SCRIPT = REPO_ROOT / "scripts" / "build-test-images"
IMAGE = "compute-test.invalid/busybox:1"
PAUSE_IMAGE = "compute-test.invalid/pause:1"
PLACEMENT_KEY = "compute.test/real-kubelet"
STATE_FILE = "node.json"
CNI_BIN_DIR = Path("/usr/lib/cni")
CGROUP_FS = Path("/sys/fs/cgroup")
POD_LOGS = Path("/var/log/pods")
CTR_NAMESPACE = "k8s.io"  # the namespace the CRI plugin keeps its images and containers in
READY_TIMEOUT = 90.0


def unavailable_reason(bin_dir: Path) -> str | None:
    """Why this machine cannot run the real node (None when it can)."""
    if os.geteuid() != 0:
        return "the kubelet and containerd need root"
    missing = [
        name
        for name in ("containerd", "containerd-shim-runc-v2", "runc", "ctr")
        if shutil.which(name) is None
    ]
    if missing:
        return f"missing {', '.join(missing)}: run `make test-deps` (Debian's containerd and runc)"
    if not (CNI_BIN_DIR / "bridge").exists():
        return f"no CNI plugins in {CNI_BIN_DIR}: install Debian's containernetworking-plugins"
    if not os.access(bin_dir / "kubelet", os.X_OK):
        return f"no kubelet in {bin_dir}: run scripts/build-kube"
    if not (CGROUP_FS / "memory").is_dir():
        return f"{CGROUP_FS} is not a cgroup v1 hierarchy with a memory controller"
    return None


def build_images() -> dict[str, Path]:
    """Image name -> OCI archive, built by ``scripts/build-test-images`` (cached after one run)."""
    out = subprocess.run([str(IMAGES_SCRIPT)], check=True, stdout=subprocess.PIPE, text=True).stdout
    folder = Path(out.strip().splitlines()[-1])
    index = json.loads((folder / "index.json").read_text())
    return {name: folder / filename for name, filename in index.items()}


@dataclass
class RealNode:
    """A running containerd + kubelet; ``stop()`` ends them and cleans the host."""

    name: str
    dir: Path
    socket: Path
    cgroup_root: str
    bridge: str
    subnet: str
    #: the bridge's own address: the node's InternalIP (the kubelet refuses a loopback one)
    node_ip: str
    kubelet_port: int
    procs: list[Proc] = field(default_factory=list)

    def placement(self) -> dict[str, Any]:
        """What a pod spec needs to be scheduled here (merge into ``spec``)."""
        return {
            "nodeSelector": {PLACEMENT_KEY: "true"},
            "tolerations": [{"key": PLACEMENT_KEY, "operator": "Exists", "effect": "NoSchedule"}],
        }

    def ctr(self, *args: str, check: bool = True, timeout: float = 30.0) -> str:
        """Run ``ctr`` against this node's containerd, in the CRI plugin's namespace."""
        argv = ["ctr", "--address", str(self.socket), "--namespace", CTR_NAMESPACE, *args]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
        return done.stdout

    def save(self) -> None:
        data = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}
        (self.dir / STATE_FILE).write_text(json.dumps(data, indent=2))

    @classmethod
    def load(cls, node_dir: Path) -> RealNode:
        data = json.loads((node_dir / STATE_FILE).read_text())
        procs = [Proc(**p) for p in data.pop("procs")]
        return cls(
            **{**data, "dir": Path(data["dir"]), "socket": Path(data["socket"]), "procs": procs},
        )

    def check_alive(self) -> None:
        for proc in self.procs:
            if not proc.alive():
                raise RuntimeError(f"{proc.name} (pid {proc.pid}) exited:\n{proc.log_tail()}")

    def stop(self) -> None:
        """Kubelet first (so it restarts nothing), then every container, containerd, the host bits."""
        pod_uids = [p.name for p in (self.dir / "kubelet" / "pods").glob("*")]
        kubelet = [p for p in self.procs if p.name == "kubelet"]
        containerd = [p for p in self.procs if p.name == "containerd"]
        stop_procs(kubelet)
        if any(p.alive() for p in containerd):
            self._remove_containers()
        stop_procs(containerd)
        self._kill_leftover_shims()
        self._unmount_all()
        self._remove_cgroups()
        subprocess.run(["ip", "link", "delete", self.bridge], capture_output=True, check=False)
        # The kubelet keeps container logs in /var/log/pods/<namespace>_<pod>_<uid> (hard-coded),
        # and removes them only when it garbage-collects the pod: remove this node's.
        for uid in pod_uids:
            for folder in POD_LOGS.glob(f"*_{uid}"):
                shutil.rmtree(folder, ignore_errors=True)

    def _remove_containers(self) -> None:
        """Kill every task (pod sandboxes and containers) and delete it, then the containers."""
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            remaining = set(self.ctr("tasks", "list", "-q").split())
            for task in remaining:
                self.ctr("tasks", "kill", "--all", "--signal", "SIGKILL", task, check=False)
            deadline = time.monotonic() + 10.0
            while remaining and time.monotonic() < deadline:
                for task in remaining:
                    self.ctr("tasks", "delete", task, check=False)
                remaining &= set(self.ctr("tasks", "list", "-q", check=False).split())
                time.sleep(0.1 if remaining else 0)
            for container in self.ctr("containers", "list", "-q", check=False).split():
                self.ctr("containers", "delete", container, check=False)

    def _kill_leftover_shims(self) -> None:
        """A shim outlives containerd; ours name our socket on their command line."""
        needle = str(self.socket).encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv and argv[0].endswith(b"containerd-shim-runc-v2") and needle in argv:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(entry.name), signal.SIGKILL)

    def _unmount_all(self) -> None:
        """Lazily unmount everything under the node's dir, deepest first (rootfs, netns, volumes)."""
        prefix = str(self.dir) + "/"
        for _ in range(3):
            points: list[str] = []
            with contextlib.suppress(OSError):
                for line in Path("/proc/self/mountinfo").read_text().splitlines():
                    point = line.split()[4].replace("\\040", " ")
                    if point.startswith(prefix) or point == str(self.dir):
                        points.append(point)
            if not points:
                return
            for point in sorted(set(points), key=len, reverse=True):
                subprocess.run(["umount", "-l", point], capture_output=True, check=False)

    def _remove_cgroups(self) -> None:
        """rmdir the node's cgroup tree in every v1 hierarchy (children before parents)."""
        for hierarchy in CGROUP_FS.iterdir():
            top = hierarchy / self.cgroup_root.strip("/")
            if not top.is_dir() or top.is_symlink():
                continue
            folders = sorted(
                (p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True
            )
            for folder in [*folders, top]:
                with contextlib.suppress(OSError):
                    folder.rmdir()


def _names(run_dir: Path) -> tuple[str, str, str, str]:
    """This node's cgroup root, bridge name, pod subnet and node IP: distinct per cluster run dir."""
    digest = hashlib.sha256(str(run_dir.resolve()).encode()).digest()
    tag = digest[:4].hex()
    # One /24 among 10.200.0.0 - 10.247.255.0, from the same digest; .1 is the bridge (gateway).
    prefix = f"10.{200 + digest[4] % 48}.{digest[5]}"
    return f"compute-test-{tag}", f"cxbr{tag}", f"{prefix}.0/24", f"{prefix}.1"


def _containerd_config(node: RealNode) -> str:
    root = node.dir / "containerd"
    cri = '[plugins."io.containerd.grpc.v1.cri"]'
    return f"""\
version = 2
root = "{root / "root"}"
state = "{root / "state"}"

[grpc]
  address = "{node.socket}"

[plugins."io.containerd.internal.v1.opt"]
  path = "{root / "opt"}"

{cri}
  sandbox_image = "{PAUSE_IMAGE}"
  stream_server_address = "{LOOPBACK}"
  stream_server_port = "0"
  # Network namespaces under our state dir, not /var/run/netns: stop() finds and unmounts them.
  netns_mounts_under_state_dir = true
  enable_selinux = false
  # The kubelet asks for -998 for sandboxes (and -997 for Guaranteed pods); lowering a score
  # needs CAP_SYS_RESOURCE, which a container-based CI host may withhold: runc's init then dies
  # ("can't get final child's PID from pipe: EOF"). Keep the scores at or above containerd's.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{node.dir / "cni" / "net.d"}"
"""


def _cni_config(node: RealNode) -> dict[str, Any]:
    """A bridge network with host-local addresses; no masquerading: pods need no way out."""
    return {
        "cniVersion": "0.4.0",
        "name": "compute-test",
        "plugins": [
            {
                "type": "bridge",
                "bridge": node.bridge,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": False,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": node.subnet}]],
                    "dataDir": str(node.dir / "cni" / "ipam"),
                },
            }
        ],
    }


def _kubelet_argv(cluster: KubeCluster, node: RealNode, kubeconfig: Path) -> list[str]:
    pki = cluster.run_dir / "pki"
    return [
        str(cluster.bin_dir / "kubelet"),
        f"--kubeconfig={kubeconfig}",
        f"--hostname-override={node.name}",
        f"--node-ip={node.node_ip}",
        f"--node-labels={PLACEMENT_KEY}=true",
        f"--register-with-taints={PLACEMENT_KEY}=true:NoSchedule",
        f"--root-dir={node.dir / 'kubelet'}",
        f"--cert-dir={node.dir / 'kubelet' / 'pki'}",
        f"--volume-plugin-dir={node.dir / 'kubelet' / 'volume-plugins'}",
        "--container-runtime=remote",
        f"--container-runtime-endpoint=unix://{node.socket}",
        f"--image-service-endpoint=unix://{node.socket}",
        f"--containerd=unix://{node.socket}",
        "--runtime-request-timeout=2m",
        f"--pod-infra-container-image={PAUSE_IMAGE}",  # kept out of image garbage collection
        # Serving: HTTPS on the node IP with a certificate from the cluster's CA; clients need one too.
        f"--address={node.node_ip}",
        f"--port={node.kubelet_port}",
        "--read-only-port=0",
        "--healthz-port=0",
        f"--tls-cert-file={node.dir / 'kubelet.crt'}",
        f"--tls-private-key-file={node.dir / 'kubelet.key'}",
        f"--client-ca-file={pki / 'ca.crt'}",
        "--anonymous-auth=false",
        "--authorization-mode=AlwaysAllow",
        # Cgroup v1 through cgroupfs (no systemd here), pods under a root of their own.
        "--cgroup-driver=cgroupfs",
        f"--cgroup-root=/{node.cgroup_root}",
        "--cgroups-per-qos=true",
        "--enforce-node-allocatable=pods",
        "--fail-swap-on=false",
        # A shared test machine: never evict for pressure, never garbage-collect our images, never
        # touch the host's iptables.
        "--eviction-hard=memory.available<1Mi,nodefs.available<1%,imagefs.available<1%",
        "--image-gc-high-threshold=100",
        "--image-gc-low-threshold=99",
        "--make-iptables-util-chains=false",
        "--kube-api-qps=50",
        "--kube-api-burst=100",
        "--serialize-image-pulls=false",
        "--v=1",
    ]


def start_real_node(cluster: KubeCluster) -> RealNode:
    """Start containerd and the kubelet for ``cluster``; return once the Node is Ready."""
    reason = unavailable_reason(cluster.bin_dir)
    if reason:
        raise RuntimeError(f"cannot start the real node: {reason}")
    images = build_images()
    node_dir = cluster.run_dir / "node"
    node_dir.mkdir(parents=True, exist_ok=True)
    logs = cluster.run_dir / "logs"
    cgroup_root, bridge, subnet, node_ip = _names(cluster.run_dir)
    node = RealNode(
        name=REAL_NODE_NAME,
        dir=node_dir,
        socket=node_dir / "containerd.sock",
        cgroup_root=cgroup_root,
        bridge=bridge,
        subnet=subnet,
        node_ip=node_ip,
        kubelet_port=free_port(),
    )
    try:
        _start(cluster, node, images, logs)
    except BaseException:
        node.stop()
        raise
    return node


def _start(cluster: KubeCluster, node: RealNode, images: dict[str, Path], logs: Path) -> None:
    # The bridge exists before any pod, with the gateway address the CNI plugin would give it:
    # that address is the node's IP, which the kubelet serves on and the API server calls.
    _ip("link", "add", node.bridge, "type", "bridge")
    _ip("addr", "add", f"{node.node_ip}/24", "dev", node.bridge)
    _ip("link", "set", node.bridge, "up")
    issue_certificate(cluster.run_dir / "pki", "kubelet", node.name, hosts=[node.node_ip, node.name])
    for suffix in ("crt", "key"):
        shutil.move(cluster.run_dir / "pki" / f"kubelet.{suffix}", node.dir / f"kubelet.{suffix}")
    config = node.dir / "containerd.toml"
    config.write_text(_containerd_config(node))
    cni_dir = node.dir / "cni" / "net.d"
    cni_dir.mkdir(parents=True, exist_ok=True)
    (cni_dir / "10-compute-test.conflist").write_text(json.dumps(_cni_config(node), indent=2))
    # --cgroup-root must exist in every hierarchy before the kubelet starts.
    for hierarchy in CGROUP_FS.iterdir():
        if hierarchy.is_dir() and not hierarchy.is_symlink() and (hierarchy / "cgroup.procs").exists():
            (hierarchy / node.cgroup_root).mkdir(exist_ok=True)

    node.procs.append(spawn("containerd", ["containerd", f"--config={config}"], logs))
    node.save()
    _wait_for(node, "containerd", lambda: node.ctr("version", check=False, timeout=5) != "", 30)
    for archive in images.values():
        node.ctr("images", "import", str(archive), timeout=120)

    kubeconfig = cluster.kubeconfig_for(REAL_NODE_USER)
    node.procs.append(spawn("kubelet", _kubelet_argv(cluster, node, kubeconfig), logs))
    node.save()
    _wait_for(node, f"node {node.name} Ready", lambda: _node_ready(cluster, node.name), READY_TIMEOUT)


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {done.stderr.strip()}")


def _node_ready(cluster: KubeCluster, name: str) -> bool:
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    with cluster.api_client() as api:
        try:
            found = client.CoreV1Api(api).read_node(name)
        except ApiException as err:
            if err.status == 404:
                return False
            raise
    conditions = found.status.conditions or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def _wait_for(node: RealNode, what: str, check: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        node.check_alive()
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            if check():
                return
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {p.name}:\n{p.log_tail()}" for p in node.procs)
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}\n{tails}")
        time.sleep(0.2)
