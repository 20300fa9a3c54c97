"""A real, local Kubernetes control plane for the tests: etcd, kube-apiserver, kube-scheduler and
kube-controller-manager, all on 127.0.0.1 and free ports. Its nodes: one real node (``realnode``:
containerd and a kubelet, started on demand) and the node simulator's (``nodesim``).

    find_binaries()   the folder holding the binaries (the kubelet too); runs ``scripts/build-kube`` when no
                      cached build exists (``KUBE_BIN_DIR`` overrides the lookup)
    start_cluster()   generate certificates and two tokens, start the four processes, wait until
                      the API server is ready and the controller manager works, write kubeconfigs
    KubeCluster       what ``start_cluster`` returns: ``server``, ``token`` (the admin's),
                      ``kubeconfig`` (the admin's), ``restricted_kubeconfig``, ``ca_file``,
                      ``api_client()``, ``new_namespace()``, ``delete_namespace()``,
                      ``kubeconfig_for(user, server=None)``, ``grant(namespace, verbs)``,
                      ``stop()``; ``KubeCluster.load(run_dir)`` re-reads the state file so another
                      process (``scripts/test-cluster down``) can stop it

Why each part is there: the controller manager runs the quota controller (without it the
ResourceQuota admission plugin refuses every pod with "status unknown for quota"), the service
account and token controllers (each namespace's ``default`` ServiceAccount and its token secret),
namespace deletion and garbage collection; the scheduler gives unschedulable pods their real
``PodScheduled=False`` / ``Unschedulable`` condition.

Who may do what, as in a real cluster: authentication is static bearer tokens
(``--token-auth-file``), authorization is ``Node,RBAC`` and the ServiceAccount admission plugin is
on. Two users exist:

    ADMIN_USER        in group ``system:masters`` (RBAC allows it everything); the tests, the
                      scheduler, the controller manager and the node simulator all use its kubeconfig
    RESTRICTED_USER   no binding at all: every pod call is a real RBAC 403 ("User ... cannot
                      create resource "pods" ..."); ``grant(namespace, verbs)`` gives it a Role in
                      one namespace (e.g. read pods but not create or delete them)

Because the ServiceAccount admission plugin refuses pods in a namespace until its ``default``
ServiceAccount and that account's token exist, ``new_namespace()`` returns only once a dry-run pod
is admitted there; a pod naming a ServiceAccount that does not exist gets the real 403 "error
looking up service account". Every request is audited at the Metadata level
(``<run_dir>/logs/audit.log``), which makes 1.20 send the ``Audit-Id`` response header that newer
servers always send: our errors' request id.

Every process starts in its own session (process group) and logs to ``<run_dir>/logs``; ``stop()``
signals each group by id, waits, and removes the run directory. The etcd data directory lives in
``/dev/shm`` when that exists: a test database needs speed, not durability.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import secrets
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tests.harness.ports import LOOPBACK, free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "scripts" / "build-kube"
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet")
STATE_FILE = "cluster.json"
START_TIMEOUT = 90.0
ADMIN_USER = "compute-test-admin"
RESTRICTED_USER = "compute-test-restricted"
#: the real node (``realnode``): its name, and the user its kubelet authenticates as
REAL_NODE_NAME = "real-node-1"
REAL_NODE_USER = f"system:node:{REAL_NODE_NAME}"


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "airflow-compute-provider"


def _complete(bin_dir: Path) -> bool:
    return all(os.access(bin_dir / name, os.X_OK) for name in BINARIES)


def find_binaries(build: bool = True) -> Path:
    """The directory holding etcd and the three Kubernetes binaries, building them if needed."""
    override = os.environ.get("KUBE_BIN_DIR")
    if override:
        if not _complete(Path(override)):
            raise FileNotFoundError(f"KUBE_BIN_DIR={override} lacks one of {', '.join(BINARIES)}")
        return Path(override)
    cached = sorted(p for p in cache_root().glob("kube-*/bin") if _complete(p))
    if cached:
        return cached[-1]
    if not build:
        raise FileNotFoundError(f"no Kubernetes build under {cache_root()}; run {BUILD_SCRIPT}")
    # The build prints progress on stderr (left to the terminal) and the bin dir last on stdout.
    out = subprocess.run([str(BUILD_SCRIPT)], check=True, stdout=subprocess.PIPE, text=True).stdout
    bin_dir = Path(out.strip().splitlines()[-1])
    if not _complete(bin_dir):
        raise FileNotFoundError(f"{BUILD_SCRIPT} finished but {bin_dir} lacks the binaries")
    return bin_dir


# --- certificates ---------------------------------------------------------------------------------


def _key_pem(key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )


def _write_pki(pki: Path) -> None:
    """A CA (its key kept in ``pki`` for ``issue_certificate``), the API server's serving
    certificate for 127.0.0.1/localhost, its client certificate for the kubelet, and the
    service-account signing key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)
    validity = (now - dt.timedelta(hours=1), now + dt.timedelta(days=30))
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "compute-test-ca")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(validity[0])
        .not_valid_after(validity[1])
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    pki.mkdir(parents=True, exist_ok=True)
    (pki / "ca.crt").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    (pki / "ca.key").write_bytes(_key_pem(ca_key))
    (pki / "sa.key").write_bytes(_key_pem(sa_key))
    (pki / "sa.pub").write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    issue_certificate(
        pki, "apiserver", "kube-apiserver", hosts=["localhost", "kubernetes.default.svc", LOOPBACK]
    )
    # What the API server shows the real node's kubelet (--kubelet-client-certificate), for logs.
    issue_certificate(pki, "apiserver-kubelet-client", "kube-apiserver-kubelet-client", org="system:masters")


def issue_certificate(
    pki: Path, stem: str, common_name: str, *, hosts: Sequence[str] = (), org: str = ""
) -> tuple[Path, Path]:
    """A certificate signed by the cluster's CA in ``pki``: a serving one for ``hosts`` (DNS names
    and IPv4 addresses), a client one without. Writes ``<stem>.crt`` / ``<stem>.key``."""
    from ipaddress import ip_address

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    ca_cert = x509.load_pem_x509_certificate((pki / "ca.crt").read_bytes())
    ca_key = serialization.load_pem_private_key((pki / "ca.key").read_bytes(), password=None)
    assert isinstance(ca_key, rsa.RSAPrivateKey)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if org:
        subject.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    usage = ExtendedKeyUsageOID.SERVER_AUTH if hosts else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(subject))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(ca_cert.not_valid_before_utc)
        .not_valid_after(ca_cert.not_valid_after_utc)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if hosts:
        names: list[x509.GeneralName] = []
        for host in hosts:
            try:
                names.append(x509.IPAddress(ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    crt, key_file = pki / f"{stem}.crt", pki / f"{stem}.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(_key_pem(key))
    return crt, key_file


def _kubeconfig(server: str, ca_file: Path | None, user: str, token: str) -> dict[str, Any]:
    """A kubeconfig authenticating as ``user``; without ``ca_file`` the server is plain HTTP."""
    cluster: dict[str, Any] = {"server": server}
    if ca_file is not None:
        cluster["certificate-authority"] = str(ca_file)
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "compute-test", "cluster": cluster}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [
            {
                "name": "compute-test",
                "context": {"cluster": "compute-test", "user": user, "namespace": "default"},
            }
        ],
        "current-context": "compute-test",
    }


# --- processes ------------------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name, or None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()


@dataclass
class Proc:
    """One started process: its pid (also its process-group id), binary and kernel start time.

    The start time (field 22 of /proc/PID/stat, fixed at fork) tells our process from a later one
    that reused the pid, which matters when another process (``scripts/test-cluster down``) stops it.
    """

    name: str
    pid: int
    binary: str
    log: str
    start_ticks: str = ""

    def alive(self) -> bool:
        fields = _stat_fields(self.pid)
        # fields[0] is the state (Z: exited, waiting to be reaped); fields[19] the start time.
        return fields is not None and fields[0] != "Z" and fields[19] == self.start_ticks

    def signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, sig)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(Path(self.log).read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def spawn(name: str, argv: Sequence[str], log_dir: Path) -> Proc:
    log = log_dir / f"{name}.log"
    with open(log, "ab") as out:
        popen = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() signals the group by id
        )
    fields = _stat_fields(popen.pid)
    start_ticks = fields[19] if fields else ""
    return Proc(name=name, pid=popen.pid, binary=argv[0], log=str(log), start_ticks=start_ticks)


def stop_procs(procs: Sequence[Proc], timeout: float = 15.0) -> None:
    """SIGTERM each process group, wait for each process to be gone, SIGKILL what is left."""
    for proc in procs:
        if proc.alive():
            proc.signal_group(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in procs:
        while not _gone(proc) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not _gone(proc):
            proc.signal_group(signal.SIGKILL)
            kill_deadline = time.monotonic() + 5.0
            while not _gone(proc) and time.monotonic() < kill_deadline:
                time.sleep(0.05)


def _gone(proc: Proc) -> bool:
    """True once the process has exited and, if it is our child, has been reaped.

    A multi-threaded process shows as a zombie while its other threads still exit, and cannot be
    reaped until they have: so a child counts as gone only when ``waitpid`` collected it. If the
    caller is not its parent (``scripts/test-cluster down``), having exited is all we can see.
    """
    try:
        pid, _ = os.waitpid(proc.pid, os.WNOHANG)
    except ChildProcessError:
        return not proc.alive()
    return pid == proc.pid


@dataclass
class KubeCluster:
    """A running control plane; ``stop()`` ends its processes and removes ``run_dir``."""

    run_dir: Path
    server: str
    token: str
    kubeconfig: Path
    restricted_kubeconfig: Path
    ca_file: Path
    bin_dir: Path
    etcd_dir: Path
    #: user name -> bearer token, for ``ADMIN_USER`` and ``RESTRICTED_USER``
    tokens: dict[str, str] = field(default_factory=dict)
    procs: list[Proc] = field(default_factory=list)

    def api_client(self) -> Any:
        """A fresh ``kubernetes.client.ApiClient`` for this cluster (one per thread is safest)."""
        from kubernetes import config

        return config.new_client_from_config(config_file=str(self.kubeconfig))

    def kubeconfig_for(self, user: str, server: str | None = None) -> Path:
        """A kubeconfig file for ``user`` (``ADMIN_USER`` or ``RESTRICTED_USER``).

        ``server`` defaults to the API server itself (TLS, the cluster's CA); any other URL, such
        as a fault proxy's, is taken to speak plain HTTP. The file lives in the run directory.
        """
        if user not in self.tokens:
            raise KeyError(f"no such user in this cluster: {user!r} (known: {sorted(self.tokens)})")
        target = server or self.server
        ca_file = self.ca_file if target == self.server else None
        digest = hashlib.sha256(target.encode()).hexdigest()[:8]
        path = self.run_dir / "kubeconfigs" / f"{user}-{digest}.json"
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(_kubeconfig(target, ca_file, user, self.tokens[user]), indent=2))
        return path

    def new_namespace(self, prefix: str = "t") -> str:
        """Create a namespace with a unique name; return it once pods can be admitted there."""
        from kubernetes import client

        with self.api_client() as api:
            name = f"{prefix}-{secrets.token_hex(4)}"
            client.CoreV1Api(api).create_namespace({"metadata": {"name": name}})
        self.wait_for_pod_admission(name)
        return name

    def wait_for_pod_admission(self, namespace: str, timeout: float = 30.0) -> None:
        """Wait until the ServiceAccount admission plugin admits pods in ``namespace``.

        Until the controller manager has made the namespace's ``default`` ServiceAccount and its
        token secret, the plugin refuses every pod (a 403 "error looking up service account", or a
        500 "No API token found"). Seeing the account and its token through the API is not enough:
        the plugin reads them from its own informer cache, so the proof is a dry-run pod admitted.
        """
        from kubernetes import client
        from kubernetes.client.rest import ApiException

        probe = {
            "metadata": {"name": "admission-probe"},
            "spec": {"containers": [{"name": "probe", "image": "busybox:1.36"}]},
        }
        deadline = time.monotonic() + timeout
        with self.api_client() as api:
            core = client.CoreV1Api(api)
            while True:
                try:
                    account = core.read_namespaced_service_account("default", namespace)
                    if account.secrets:
                        core.create_namespaced_pod(namespace, probe, dry_run="All")
                        return
                except ApiException as err:
                    if err.status not in (403, 404, 500, 504):
                        raise
                if time.monotonic() > deadline:
                    raise TimeoutError(f"pods not admitted in namespace {namespace} after {timeout:.0f}s")
                time.sleep(0.1)

    def grant(
        self,
        namespace: str,
        verbs: Sequence[str],
        resources: Sequence[str] = ("pods",),
        user: str = RESTRICTED_USER,
    ) -> None:
        """Give ``user`` a Role in ``namespace`` allowing ``verbs`` on ``resources`` (core group).

        Returns once RBAC answers yes for each verb: the authorizer reads Roles and RoleBindings
        from its informer cache, so a binding just created is not in force at once.
        """
        from kubernetes import client

        name = f"{user}-{secrets.token_hex(3)}"
        role = {
            "metadata": {"name": name},
            "rules": [{"apiGroups": [""], "resources": list(resources), "verbs": list(verbs)}],
        }
        binding = {
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
        }
        with self.api_client() as api:
            rbac = client.RbacAuthorizationV1Api(api)
            rbac.create_namespaced_role(namespace, role)
            rbac.create_namespaced_role_binding(namespace, binding)
            authz = client.AuthorizationV1Api(api)

            def allowed(verb: str, resource: str) -> bool:
                review = {
                    "spec": {
                        "user": user,
                        "resourceAttributes": {"namespace": namespace, "verb": verb, "resource": resource},
                    }
                }
                return bool(authz.create_subject_access_review(review).status.allowed)

            deadline = time.monotonic() + 30.0
            while not all(allowed(v, r) for v in verbs for r in resources):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"RBAC did not allow {user} {list(verbs)} in {namespace}")
                time.sleep(0.1)

    def delete_namespace(self, name: str) -> None:
        """Start deleting a namespace (the namespace controller finishes it); a missing one is fine."""
        from kubernetes import client
        from kubernetes.client.rest import ApiException

        with self.api_client() as api:
            try:
                client.CoreV1Api(api).delete_namespace(name, propagation_policy="Background")
            except ApiException as err:
                if err.status != 404:
                    raise

    def save(self) -> None:
        data = asdict(self)
        data = {k: str(v) if isinstance(v, Path) else v for k, v in data.items()}
        (self.run_dir / STATE_FILE).write_text(json.dumps(data, indent=2))

    @classmethod
    def load(cls, run_dir: Path) -> KubeCluster:
        data = json.loads((run_dir / STATE_FILE).read_text())
        # A state file written before the restricted user existed can still be stopped.
        data.setdefault("restricted_kubeconfig", str(run_dir / "kubeconfig-restricted"))
        data.setdefault("tokens", {ADMIN_USER: data["token"]})
        return cls(
            run_dir=Path(data["run_dir"]),
            server=data["server"],
            token=data["token"],
            kubeconfig=Path(data["kubeconfig"]),
            restricted_kubeconfig=Path(data["restricted_kubeconfig"]),
            ca_file=Path(data["ca_file"]),
            bin_dir=Path(data["bin_dir"]),
            etcd_dir=Path(data["etcd_dir"]),
            tokens=dict(data["tokens"]),
            procs=[Proc(**p) for p in data["procs"]],
        )

    def check_alive(self) -> None:
        """Raise with the log tail of any control-plane process that has died."""
        for proc in self.procs:
            if not proc.alive():
                raise RuntimeError(f"{proc.name} (pid {proc.pid}) exited:\n{proc.log_tail()}")

    def stop(self, remove: bool = True) -> None:
        # A real node started on this cluster and not stopped (its owner died): its containers,
        # mounts, cgroups and bridge would outlive the run dir. Stopping a stopped node is harmless.
        if (self.run_dir / "node" / "node.json").exists():
            from tests.harness.realnode import RealNode

            RealNode.load(self.run_dir / "node").stop()
        # Clients first, storage last, so nothing logs errors about a vanished dependency.
        stop_procs(list(reversed(self.procs)))
        if remove:
            shutil.rmtree(self.etcd_dir, ignore_errors=True)
            shutil.rmtree(self.run_dir, ignore_errors=True)


def _https_get(url: str, token: str, ca_file: Path) -> tuple[int, str]:
    ctx = ssl.create_default_context(cafile=str(ca_file))
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, context=ctx, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")


def _wait(cluster: KubeCluster, what: str, check: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        cluster.check_alive()
        try:
            if check():
                return
        except (OSError, urllib.error.URLError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.2)


def _etcd_data_dir() -> Path:
    shm = Path("/dev/shm")
    base = str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None
    return Path(tempfile.mkdtemp(prefix="compute-etcd-", dir=base))


def start_cluster(run_dir: Path | None = None, bin_dir: Path | None = None) -> KubeCluster:
    """Start etcd, kube-apiserver, kube-controller-manager and kube-scheduler; wait until usable."""
    bin_dir = bin_dir or find_binaries()
    run_dir = Path(run_dir or tempfile.mkdtemp(prefix="compute-kube-"))
    run_dir.mkdir(parents=True, exist_ok=True)
    logs = run_dir / "logs"
    logs.mkdir(exist_ok=True)
    pki = run_dir / "pki"
    _write_pki(pki)

    tokens = {user: secrets.token_hex(24) for user in (ADMIN_USER, RESTRICTED_USER, REAL_NODE_USER)}
    token_file = run_dir / "tokens.csv"
    # token,user,uid,"group1,group2": the admin is a system:masters member, which RBAC allows
    # everything; the restricted user is in no group (the authenticator adds system:authenticated).
    token_file.write_text(
        f'{tokens[ADMIN_USER]},{ADMIN_USER},{ADMIN_USER},"system:masters"\n'
        f"{tokens[RESTRICTED_USER]},{RESTRICTED_USER},{RESTRICTED_USER}\n"
        # The real node's kubelet: the Node authorizer grants what a kubelet needs to this name
        # in this group, for the pods bound to that node.
        f'{tokens[REAL_NODE_USER]},{REAL_NODE_USER},{REAL_NODE_USER},"system:nodes"\n'
    )

    port = free_port()
    server = f"https://{LOOPBACK}:{port}"
    kubeconfig = run_dir / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(_kubeconfig(server, pki / "ca.crt", ADMIN_USER, tokens[ADMIN_USER]), indent=2)
    )
    restricted = run_dir / "kubeconfig-restricted"
    restricted.write_text(
        json.dumps(_kubeconfig(server, pki / "ca.crt", RESTRICTED_USER, tokens[RESTRICTED_USER]), indent=2)
    )
    cluster = KubeCluster(
        run_dir=run_dir,
        server=server,
        token=tokens[ADMIN_USER],
        kubeconfig=kubeconfig,
        restricted_kubeconfig=restricted,
        ca_file=pki / "ca.crt",
        bin_dir=bin_dir,
        etcd_dir=_etcd_data_dir(),
        tokens=tokens,
    )
    try:
        _start_processes(cluster, port, token_file, pki, logs)
    except BaseException:
        cluster.stop()
        raise
    cluster.save()
    return cluster


def _write_audit_policy(run_dir: Path) -> Path:
    """An audit policy recording every request at the Metadata level (no bodies)."""
    path = run_dir / "audit-policy.json"
    policy = {"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": [{"level": "Metadata"}]}
    path.write_text(json.dumps(policy))
    return path


def _start_processes(cluster: KubeCluster, port: int, token_file: Path, pki: Path, logs: Path) -> None:
    bin_dir = cluster.bin_dir
    client_port, peer_port = free_port(), free_port()
    etcd_url = f"http://{LOOPBACK}:{client_port}"
    peer_url = f"http://{LOOPBACK}:{peer_port}"
    cluster.procs.append(
        spawn(
            "etcd",
            [
                str(bin_dir / "etcd"),
                "--name=compute-test",
                f"--data-dir={cluster.etcd_dir}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=compute-test={peer_url}",
                "--logger=zap",
                "--log-level=warn",
            ],
            logs,
        )
    )
    _wait(cluster, "etcd", lambda: urllib.request.urlopen(f"{etcd_url}/health", timeout=2).status == 200, 30)

    cluster.procs.append(
        spawn(
            "kube-apiserver",
            [
                str(bin_dir / "kube-apiserver"),
                f"--etcd-servers={etcd_url}",
                f"--bind-address={LOOPBACK}",
                f"--advertise-address={LOOPBACK}",
                f"--secure-port={port}",
                "--insecure-port=0",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--cert-dir={pki}",
                f"--token-auth-file={token_file}",
                "--anonymous-auth=false",
                "--authorization-mode=Node,RBAC",
                # On by default in 1.20; named so that nobody turns it off by accident.
                "--enable-admission-plugins=ServiceAccount",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                "--service-cluster-ip-range=10.96.0.0/16",
                # The "kubernetes" Service endpoint cannot be a loopback address: do not reconcile it.
                "--endpoint-reconciler-type=none",
                "--allow-privileged=true",
                # Logs (pods/{name}/log) come from the real node's kubelet, over TLS both ways.
                f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
                f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
                f"--kubelet-certificate-authority={pki / 'ca.crt'}",
                "--kubelet-preferred-address-types=InternalIP",
                # Audited requests carry an Audit-Id response header (1.22 and later send it on
                # every response; 1.20 only when auditing is on), the request id of our errors.
                f"--audit-policy-file={_write_audit_policy(cluster.run_dir)}",
                f"--audit-log-path={logs / 'audit.log'}",
                "--audit-log-maxsize=20",
                "--audit-log-maxbackup=1",
                "--profiling=false",
                "--v=1",
            ],
            logs,
        )
    )
    _wait(
        cluster,
        "kube-apiserver /readyz",
        lambda: _https_get(f"{cluster.server}/readyz", cluster.token, cluster.ca_file)[0] == 200,
        START_TIMEOUT,
    )

    common = [f"--kubeconfig={cluster.kubeconfig}", "--leader-elect=false", "--v=1"]
    cluster.procs.append(
        spawn(
            "kube-controller-manager",
            [
                str(bin_dir / "kube-controller-manager"),
                *common,
                # Serve nothing: several clusters may run side by side on one machine.
                "--port=0",
                "--secure-port=0",
                f"--service-account-private-key-file={pki / 'sa.key'}",
                f"--root-ca-file={pki / 'ca.crt'}",
                # Every controller acts as the admin (system:masters) rather than as its own
                # service account: RBAC then has nothing to grant the controllers.
                "--use-service-account-credentials=false",
            ],
            logs,
        )
    )
    cluster.procs.append(
        spawn(
            "kube-scheduler",
            [str(bin_dir / "kube-scheduler"), *common, "--port=0", "--secure-port=0"],
            logs,
        )
    )
    # The controller manager is working once its service-account controller has filled "default".
    _wait(
        cluster,
        "kube-controller-manager (default service account)",
        lambda: (
            _https_get(
                f"{cluster.server}/api/v1/namespaces/default/serviceaccounts/default",
                cluster.token,
                cluster.ca_file,
            )[0]
            == 200
        ),
        START_TIMEOUT,
    )
    cluster.check_alive()
    cluster.wait_for_pod_admission("default", timeout=START_TIMEOUT)


# --- a long-lived cluster for scripts/test-cluster -------------------------------------------------

READY_FILE = "ready"
SUPERVISOR_PID_FILE = "supervisor.pid"


def supervise(run_dir: Path, bin_dir: Path | None = None) -> int:
    """Start the cluster, its real node and the node simulator, then hold them until SIGTERM / SIGINT.

    Being the parent of every process, this process also reaps them on exit. ``<run_dir>/ready``
    holds the kubeconfig path once everything is up. Where a real node cannot run (not root, no
    containerd), the log says why and the cluster has only the simulator's nodes.
    """
    import threading

    from tests.harness.nodesim import NodeSimulator, default_nodes
    from tests.harness.realnode import RealNode, start_real_node, unavailable_reason

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda _sig, _frame: stop.set())
    signal.signal(signal.SIGINT, lambda _sig, _frame: stop.set())
    (run_dir / READY_FILE).unlink(missing_ok=True)
    cluster = start_cluster(run_dir=run_dir / "cluster", bin_dir=bin_dir)
    sim: NodeSimulator | None = None
    node: RealNode | None = None
    try:
        why_not = unavailable_reason(cluster.bin_dir)
        if why_not is None:
            node = start_real_node(cluster)
        else:
            print(f"no real node: {why_not}", flush=True)
        sim = NodeSimulator(cluster.kubeconfig, default_nodes()).start()
        (run_dir / READY_FILE).write_text(f"{cluster.kubeconfig}\n")
        print(
            f"cluster ready: {cluster.server} kubeconfig {cluster.kubeconfig}"
            f" (restricted user: {cluster.restricted_kubeconfig})"
            + (f"; real node {node.name}: pods need {json.dumps(node.placement())}" if node else ""),
            flush=True,
        )
        while not stop.wait(1.0):
            cluster.check_alive()
            if node is not None:
                node.check_alive()
    finally:
        if sim is not None:
            sim.stop()
        if node is not None:
            node.stop()
        cluster.stop()
        (run_dir / READY_FILE).unlink(missing_ok=True)
    return 0


def stop_run_dir(run_dir: Path, timeout: float = 30.0) -> bool:
    """Stop what ``supervise`` started in ``run_dir``; True when something was running."""
    pid_file = run_dir / SUPERVISOR_PID_FILE
    stopped = False
    if pid_file.exists():
        pid, start_ticks = pid_file.read_text().split()
        supervisor = Proc("supervisor", int(pid), "", "", start_ticks)
        if supervisor.alive():
            stopped = True
            with contextlib.suppress(ProcessLookupError):
                os.kill(supervisor.pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while supervisor.alive() and time.monotonic() < deadline:
                time.sleep(0.1)
        pid_file.unlink(missing_ok=True)
    # A supervisor that died hard leaves its children behind: stop them by their recorded ids.
    node_state = run_dir / "cluster" / "node"
    if (node_state / "node.json").exists():
        from tests.harness.realnode import RealNode

        leftover_node = RealNode.load(node_state)
        stopped = stopped or any(p.alive() for p in leftover_node.procs)
        leftover_node.stop()
    state = run_dir / "cluster" / STATE_FILE
    if state.exists():
        leftover = KubeCluster.load(state.parent)
        stopped = stopped or any(p.alive() for p in leftover.procs)
        leftover.stop()
    (run_dir / READY_FILE).unlink(missing_ok=True)
    return stopped


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Run the local Kubernetes test cluster.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("supervise", help="start cluster, real node, node simulator; hold until SIGTERM")
    run.add_argument("--run-dir", type=Path, required=True)
    down = sub.add_parser("stop", help="stop what 'supervise' started in a run dir")
    down.add_argument("--run-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "supervise":
        args.run_dir.mkdir(parents=True, exist_ok=True)
        fields = _stat_fields(os.getpid())
        (args.run_dir / SUPERVISOR_PID_FILE).write_text(f"{os.getpid()} {fields[19] if fields else ''}\n")
        return supervise(args.run_dir)
    print("stopped" if stop_run_dir(args.run_dir) else "nothing was running")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
