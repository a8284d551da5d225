"""Starting and stopping one local control plane: etcd, kube-apiserver,
kube-controller-manager, kube-scheduler and kwok, on free 127.0.0.1 ports.

Contract: ``start()`` returns once the API server is ready, the kwok nodes are Ready and
the ``default`` ServiceAccount exists (so pods can be created) and, with
``sidecar_rbac``, the sidecar's ServiceAccount holds what that manifest grants, or raises
LocalClusterError naming the process that failed and the tail of its log, after
stopping whatever it had started. ``stop()`` stops every process by pid (SIGTERM, then
SIGKILL), in reverse start order, and is safe to call twice. Each child also gets
SIGKILL from the kernel if this process dies first (PR_SET_PDEATHSIG), so a killed test
run leaves nothing behind.

The sidecar's credentials (``sidecar_kubeconfig``) are those of the static token user
``sidecar`` in group system:masters, or, with ``sidecar_rbac`` (a YAML manifest holding
one ServiceAccount and its roles and bindings, e.g. manifests/rbac/remote-rbac.yaml),
a TokenRequest token of that ServiceAccount after the manifest is applied: the sidecar
then holds exactly the rights that manifest grants. ``sidecar_user`` is the user name
the API server (and its audit log) gives either identity.

This module is synchronous on purpose: it runs before the event loop (CLI) or in a
session fixture.
"""

from __future__ import annotations

import ctypes
import functools
import json
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from tests.localcluster import pki
from tests.localcluster.binaries import Binaries, LocalClusterError
from tests.localcluster.realnode import RealNode, unavailable_reason

_STAGES = Path(__file__).with_name("kwok-stages.yaml")
_PR_SET_PDEATHSIG = 1
NODE_ANNOTATION = "kwok.x-k8s.io/node"
# Keep the pod CIDR (kwok) and the service range apart.
SERVICE_CIDR = "10.96.0.0/16"
POD_CIDR = "10.244.0.1/16"


_STOP_ORDER = (
    "kubelet",
    "containerd",
    "kwok",
    "kube-scheduler",
    "kube-controller-manager",
    "kube-apiserver",
    "etcd",
)

# The kinds ``apply_manifest`` knows: kind -> (resource, namespaced).
_APPLY_KINDS = {
    "Namespace": ("namespaces", False),
    "ServiceAccount": ("serviceaccounts", True),
    "ClusterRole": ("clusterroles", False),
    "ClusterRoleBinding": ("clusterrolebindings", False),
    "Role": ("roles", True),
    "RoleBinding": ("rolebindings", True),
}
SIDECAR_TOKEN_SECONDS = 7 * 24 * 3600
"""Lifetime of the sidecar's ServiceAccount token (as long as the cluster's certificates)."""


_GIVEN_PORTS: set[int] = set()


def free_port() -> int:
    """A port nobody listens on right now (the kernel's choice for port 0), never one
    this process was given before: the kernel may offer a port again while the server
    it was chosen for has not bound it yet (kwok once got etcd's port)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port not in _GIVEN_PORTS:
            _GIVEN_PORTS.add(port)
            return port


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    # PR_SET_PDEATHSIG fires when the *thread* that forked the child ends, not the
    # process: spawn from a thread that lives as long as the cluster (never from
    # asyncio.to_thread, whose worker threads end when their pool is shut down).
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class LocalCluster:
    """One control plane in ``workdir``. Use as a context manager or call start/stop."""

    def __init__(
        self,
        workdir: Path,
        binaries: Binaries,
        *,
        nodes: int = 2,
        progress: Callable[[str], None] = lambda _line: None,
        apiserver_flags: tuple[str, ...] = (),
        sidecar_rbac: Path | None = None,
        real_node: bool = False,
    ) -> None:
        self.workdir = workdir
        self.binaries = binaries
        self.node_names = [f"kwok-node-{i}" for i in range(nodes)]
        self._progress = progress
        self._apiserver_flags = apiserver_flags
        """Extra kube-apiserver flags (tests of watch edge cases)."""
        self.sidecar_rbac = sidecar_rbac
        """RBAC manifest whose ServiceAccount the sidecar authenticates as (None: the
        static cluster-admin user ``sidecar``)."""
        self.want_real_node = real_node
        """Add a real node (kubelet + containerd): see tests/localcluster/realnode."""
        self.real_node: RealNode | None = None
        self._processes: list[tuple[str, subprocess.Popen[bytes], Path]] = []
        self._argv: dict[str, list[str]] = {}
        self.api_port = 0
        self.kwok_port = 0
        self.etcd_port = 0
        self.admin_token = ""
        self.kubeconfig = workdir / "admin.kubeconfig"
        self.sidecar_kubeconfig = workdir / "sidecar.kubeconfig"
        """Credentials of the sidecar (user ``sidecar_user``): give these to the sidecar
        so its requests can be told apart from the control plane's in the audit log."""
        self.sidecar_token = ""
        """The bearer token in ``sidecar_kubeconfig``."""
        self.sidecar_user = "sidecar"
        """The API server's user name for ``sidecar_kubeconfig``: ``sidecar``, or
        ``system:serviceaccount:<namespace>:<name>`` with ``sidecar_rbac``."""
        self.audit_log = workdir / "logs" / "audit.log"
        self.pod_log_file = workdir / "kwok" / "pod.log"
        """Every kwok pod's container log, in the CRI log format (see ``append_pod_log``)."""
        self.previous_pod_log_file = workdir / "kwok" / "pod-previous.log"
        """Every kwok container's log from before its last restart (``previous=true``)."""
        self.portforward_target_port = 0
        """Port-forwards to any kwok pod reach 127.0.0.1 on this port."""
        self._ssl: ssl.SSLContext | None = None
        self.ca_cert = workdir / "pki" / "ca.crt"
        """The cluster CA (written by ``start``), for clients of ``server``."""

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- processes ---------------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str]) -> None:
        self._argv[name] = argv
        log_path = self.workdir / "logs" / f"{name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                # Own session: a Ctrl-C in the terminal reaches this process, which then
                # stops the children in order, instead of killing them all at once.
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        self._processes.append((name, process, log_path))

    def _check_alive(self) -> None:
        for name, process, log_path in self._processes:
            if process.poll() is not None:
                tail = log_path.read_text(errors="replace").strip().splitlines()[-5:]
                raise LocalClusterError(
                    f"{name} exited with status {process.returncode}: "
                    + " | ".join(tail)
                    + f" (log: {log_path})"
                )

    def append_pod_log(
        self,
        line: str,
        *,
        stream: str = "stdout",
        at: datetime | None = None,
        previous: bool = False,
    ) -> None:
        """Append one line to every kwok container's log, stamped ``at`` (default: now);
        with ``previous``, to the log of the container's previous instance instead.

        kwok serves the file through the pod log API and parses it as the CRI log format
        that kubelets read: ``<RFC 3339 nano time> <stdout|stderr> F <message>``; time
        filters (sinceTime, sinceSeconds) use that stamp.
        """
        stamp = (at or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        path = self.previous_pod_log_file if previous else self.pod_log_file
        with path.open("a") as log:
            log.write(f"{stamp} {stream} F {line}\n")

    @staticmethod
    def _terminate(process: subprocess.Popen[bytes]) -> None:
        if process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def stop(self) -> None:
        """Stop every process, clients before servers (kwok, scheduler, controller-manager,
        API server, etcd): SIGTERM, up to 10 s each, then SIGKILL. The API server stops in
        about a second while etcd is still up, and hangs if etcd went first."""
        order = {name: rank for rank, name in enumerate(_STOP_ORDER)}
        entries = sorted(self._processes, key=lambda entry: order.get(entry[0], -1))
        self._processes.clear()
        for _name, process, _ in entries:
            self._terminate(process)
        if self.real_node is not None:
            self.real_node.release()
            self.real_node = None

    def _stop_one(self, name: str) -> None:
        for entry in list(self._processes):
            if entry[0] == name:
                self._terminate(entry[1])
                self._processes.remove(entry)

    def _start_again(self, name: str, *, timeout: float) -> None:
        """Start ``name`` again with its first argv; returns once the API server's
        /readyz (which checks etcd too) says ok."""
        self._spawn(name, self._argv[name])
        self._wait(
            "kube-apiserver /readyz",
            lambda: self.request("GET", "/readyz") == "ok",
            deadline=time.monotonic() + timeout,
        )

    def stop_apiserver(self) -> None:
        """Stop kube-apiserver only (a remote control-plane outage, for tests)."""
        self._stop_one("kube-apiserver")

    def start_apiserver(self, *, timeout: float = 60) -> None:
        """Start kube-apiserver again, same port and flags; returns once it is ready."""
        self._start_again("kube-apiserver", timeout=timeout)

    def spawn_apiserver(self) -> None:
        """Start kube-apiserver again, same port and flags, without waiting for it (call
        from the thread that started the cluster: see ``_die_with_parent``)."""
        self._spawn("kube-apiserver", self._argv["kube-apiserver"])

    def restart_controllers(self) -> None:
        """Stop and start kube-scheduler and kube-controller-manager again (same flags),
        without waiting: after a long API-server outage their informers can stay stale
        for minutes (the scheduler once bound a new pod 100 s late), and later tests
        need a scheduler that sees new pods. Call from the thread that started the
        cluster (see ``_die_with_parent``)."""
        for name in ("kube-scheduler", "kube-controller-manager"):
            self._stop_one(name)
            self._spawn(name, self._argv[name])

    def stop_etcd(self) -> None:
        """Stop etcd only: the API server keeps answering what needs no storage
        (``/version``, discovery, its own health endpoints) and fails or times out on
        reads and writes of objects (a remote storage outage, for tests)."""
        self._stop_one("etcd")

    def start_etcd(self, *, timeout: float = 60) -> None:
        """Start etcd again, same ports and data; returns once the API server is ready."""
        self._start_again("etcd", timeout=timeout)

    # --- API access (sync, for set-up only) ---------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        timeout: float = 10,
        token: str | None = None,
    ) -> Any:
        """One authenticated JSON request to the API server (PATCH: a merge patch), as
        admin or as the owner of ``token``. An error status raises urllib's HTTPError."""
        assert self._ssl is not None
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(  # https to our own server
            self.server + path,
            data=data,
            method=method,
            headers={
                "Authorization": f"Bearer {token or self.admin_token}",
                "Content-Type": (
                    "application/merge-patch+json" if method == "PATCH" else "application/json"
                ),
            },
        )
        with urllib.request.urlopen(req, timeout=timeout, context=self._ssl) as response:
            raw = response.read()
        return json.loads(raw) if raw.strip().startswith((b"{", b"[")) else raw.decode()

    def _wait(self, what: str, check: Callable[[], bool], *, deadline: float) -> None:
        while True:
            self._check_alive()
            try:
                if check():
                    return
            except (urllib.error.URLError, OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise LocalClusterError(f"timed out waiting for {what} (logs: {self.workdir}/logs)")
            time.sleep(0.2)  # polling a condition with a deadline

    # --- start ---------------------------------------------------------------------------

    def start(self, *, timeout: float = 120) -> None:
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise

    def _start(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        started = time.monotonic()
        self.workdir.mkdir(parents=True, exist_ok=True)
        # With an RBAC manifest, the static user ``sidecar`` is not cluster-admin either.
        groups = () if self.sidecar_rbac is not None else ("system:masters",)
        creds = pki.generate(self.workdir / "pki", sidecar_groups=groups)
        self.admin_token = creds.admin_token
        self.sidecar_token = creds.sidecar_token
        self.ca_cert = creds.ca_cert
        self._ssl = ssl.create_default_context(cafile=str(creds.ca_cert))
        self.etcd_port, etcd_peer = free_port(), free_port()
        self.api_port, self.kwok_port = free_port(), free_port()
        self.portforward_target_port = free_port()
        b = self.binaries

        self._progress(f"starting etcd on 127.0.0.1:{self.etcd_port}")
        etcd_url, peer_url = f"http://127.0.0.1:{self.etcd_port}", f"http://127.0.0.1:{etcd_peer}"
        self._spawn(
            "etcd",
            [
                str(b.etcd),
                "--name=local",
                f"--data-dir={self.workdir / 'etcd'}",
                "--unsafe-no-fsync",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=local={peer_url}",
                "--log-level=warn",
            ],
        )
        self._progress(f"starting kube-apiserver on {self.server}")
        self._spawn(
            "kube-apiserver",
            [
                str(b.kube_apiserver),
                f"--etcd-servers={etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.api_port}",
                f"--tls-cert-file={creds.serving_cert}",
                f"--tls-private-key-file={creds.serving_key}",
                f"--client-ca-file={creds.ca_cert}",
                f"--token-auth-file={creds.token_file}",
                "--authorization-mode=Node,RBAC",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={creds.service_account_key}",
                f"--service-account-signing-key-file={creds.service_account_key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--allow-privileged=true",
                "--kubelet-preferred-address-types=InternalIP",
                f"--kubelet-client-certificate={creds.kubelet_client_cert}",
                f"--kubelet-client-key={creds.kubelet_client_key}",
                "--profiling=false",
                "--enable-priority-and-fairness=false",
                f"--audit-policy-file={self._write_audit_policy()}",
                f"--audit-log-path={self.audit_log}",
                "--audit-log-format=json",
                "--audit-log-maxbackup=1",
                "--audit-log-maxsize=200",
                *self._apiserver_flags,
            ],
        )
        self.write_kubeconfig(self.kubeconfig, "admin", creds.admin_token)
        self.write_kubeconfig(self.sidecar_kubeconfig, "sidecar", creds.sidecar_token)
        self._wait(
            "kube-apiserver /readyz",
            lambda: self.request("GET", "/readyz") == "ok",
            deadline=deadline,
        )

        self._progress("starting kube-controller-manager, kube-scheduler and kwok")
        self._spawn(
            "kube-controller-manager",
            [
                str(b.kube_controller_manager),
                f"--kubeconfig={self.kubeconfig}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                "--secure-port=0",
                f"--service-account-private-key-file={creds.service_account_key}",
                f"--root-ca-file={creds.ca_cert}",
                "--use-service-account-credentials=false",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
            ],
        )
        self._spawn(
            "kube-scheduler",
            [
                str(b.kube_scheduler),
                f"--kubeconfig={self.kubeconfig}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                "--secure-port=0",
            ],
        )
        kwok_config = self._write_kwok_config()
        self._spawn(
            "kwok",
            [
                str(b.kwok),
                f"--kubeconfig={self.kubeconfig}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={NODE_ANNOTATION}=fake",
                "--node-ip=127.0.0.1",
                f"--node-port={self.kwok_port}",
                f"--server-address=127.0.0.1:{self.kwok_port}",
                f"--cidr={POD_CIDR}",
                f"--tls-cert-file={creds.serving_cert}",
                f"--tls-private-key-file={creds.serving_key}",
                f"--config={kwok_config}",
            ],
        )
        for name in self.node_names:
            self.request("POST", "/api/v1/nodes", self.node_body(name))
        self._wait(
            "the kwok nodes to be Ready",
            lambda: all(self._node_ready(name) for name in self.node_names),
            deadline=deadline,
        )
        self._wait(
            "the default ServiceAccount (kube-controller-manager)",
            lambda: bool(self.request("GET", "/api/v1/namespaces/default/serviceaccounts/default")),
            deadline=deadline,
        )
        if self.want_real_node:
            self._start_real_node(deadline)
        if self.sidecar_rbac is not None:
            self._progress(f"sidecar credentials: the ServiceAccount of {self.sidecar_rbac}")
            self._use_service_account(self.sidecar_rbac, deadline=deadline)
        self._progress(
            f"local cluster ready in {time.monotonic() - started:.1f} s: {self.server}, "
            f"{len(self.node_names)} kwok node(s)"
        )

    def _start_real_node(self, deadline: float) -> None:
        kubelet = self.binaries.kubelet
        reason = unavailable_reason(kubelet)
        if reason is not None or kubelet is None:
            raise LocalClusterError(f"no real node: {reason}")
        self.real_node = RealNode(
            self.workdir / "realnode",
            kubelet=kubelet,
            pki_dir=self.workdir / "pki",
            server=self.server,
            spawn=self._spawn,
            wait=lambda what, check, until: self._wait(what, check, deadline=until),
            request=self.request,
            progress=self._progress,
        )
        self.real_node.start(deadline=deadline, free_port=free_port)

    def _node_ready(self, name: str) -> bool:
        node = self.request("GET", f"/api/v1/nodes/{name}")
        conditions = (node.get("status") or {}).get("conditions") or []
        return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)

    @staticmethod
    def node_body(
        name: str,
        *,
        labels: dict[str, str] | None = None,
        allocatable: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """A Node that kwok manages, labelled as a real node would be."""
        resources = allocatable or {"cpu": "32", "memory": "128Gi", "pods": "110"}
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "annotations": {NODE_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
                "labels": {
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "type": "kwok",
                    **(labels or {}),
                },
            },
            "status": {"allocatable": resources, "capacity": resources},
        }

    def write_kubeconfig(self, path: Path, user: str, token: str) -> None:
        """A kubeconfig at ``path`` for this cluster with bearer ``token`` (user ``user``)."""
        pki.write_kubeconfig(
            path, server=self.server, ca_cert=self.ca_cert, user=user, credentials={"token": token}
        )

    # --- RBAC ----------------------------------------------------------------------------

    def apply_manifest(self, path: Path) -> list[dict[str, Any]]:
        """Create (or replace) every object of the YAML manifest ``path`` as admin, in
        file order; returns the objects read. Knows the kinds of an RBAC manifest
        (Namespace, ServiceAccount, (Cluster)Role, (Cluster)RoleBinding)."""
        objects = [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
        for obj in objects:
            kind, meta = obj.get("kind", ""), obj.get("metadata") or {}
            if kind not in _APPLY_KINDS:
                raise LocalClusterError(f"{path}: cannot apply kind {kind!r}")
            resource, namespaced = _APPLY_KINDS[kind]
            api_version = obj["apiVersion"]
            base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
            if namespaced:
                base += f"/namespaces/{meta.get('namespace', 'default')}"
            collection = f"{base}/{resource}"
            try:
                self.request("POST", collection, obj)
            except urllib.error.HTTPError as exc:
                if exc.code != 409:
                    raise LocalClusterError(f"{path}: {kind} {meta.get('name')}: {exc}") from None
                existing = self.request("GET", f"{collection}/{meta['name']}")
                replacement = json.loads(json.dumps(obj))
                replacement["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"]
                self.request("PUT", f"{collection}/{meta['name']}", replacement)
        return objects

    def service_account_token(
        self, namespace: str, name: str, *, seconds: int = SIDECAR_TOKEN_SECONDS
    ) -> str:
        """A token of ServiceAccount ``namespace/name`` (TokenRequest API, as admin)."""
        answer = self.request(
            "POST",
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"expirationSeconds": seconds},
            },
        )
        return str(answer["status"]["token"])

    def _use_service_account(self, manifest: Path, *, deadline: float) -> None:
        """Apply ``manifest``, then make its one ServiceAccount the sidecar's identity:
        a token in ``sidecar_kubeconfig``, once every granted rule is in effect."""
        objects = self.apply_manifest(manifest)
        accounts = [o["metadata"] for o in objects if o["kind"] == "ServiceAccount"]
        if len(accounts) != 1:
            found = len(accounts)
            raise LocalClusterError(f"{manifest}: expected one ServiceAccount, found {found}")
        namespace, name = accounts[0]["namespace"], accounts[0]["name"]
        token = self.service_account_token(namespace, name)
        # The RBAC authorizer learns new bindings from a watch: wait until it has.
        for attributes in _granted(objects, namespace, name):
            self._wait(
                f"RBAC to grant {attributes} to ServiceAccount {namespace}/{name}",
                functools.partial(self._allowed, token, attributes),
                deadline=deadline,
            )
        self.write_kubeconfig(self.sidecar_kubeconfig, name, token)
        self.sidecar_token = token
        self.sidecar_user = f"system:serviceaccount:{namespace}:{name}"

    def _allowed(self, token: str, attributes: dict[str, str]) -> bool:
        review = self.request(
            "POST",
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            {
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SelfSubjectAccessReview",
                "spec": {"resourceAttributes": attributes},
            },
            token=token,
        )
        return bool((review.get("status") or {}).get("allowed"))

    def _write_audit_policy(self) -> Path:
        """Log who asked what (no bodies): tests count the sidecar's own requests."""
        path = self.workdir / "pki" / "audit-policy.yaml"
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "audit.k8s.io/v1",
                    "kind": "Policy",
                    "omitStages": ["RequestReceived"],
                    "rules": [{"level": "Metadata"}],
                }
            )
        )
        return path

    def audit_events(self, *, user: str) -> list[dict[str, Any]]:
        """Audit log entries (ResponseComplete and friends) of requests made by ``user``."""
        events: list[dict[str, Any]] = []
        if not self.audit_log.exists():
            return events
        for line in self.audit_log.read_text().splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if (event.get("user") or {}).get("username") == user:
                events.append(event)
        return events

    def _write_kwok_config(self) -> Path:
        self.pod_log_file.parent.mkdir(parents=True, exist_ok=True)
        self.pod_log_file.touch()
        self.previous_pod_log_file.touch()
        extra = [
            {
                "apiVersion": "kwok.x-k8s.io/v1alpha1",
                "kind": "ClusterLogs",
                "metadata": {"name": "all-pods"},
                "spec": {
                    "logs": [
                        {
                            "containers": [],
                            "logsFile": str(self.pod_log_file),
                            "previousLogsFile": str(self.previous_pod_log_file),
                            "follow": True,
                        }
                    ]
                },
            },
            {
                "apiVersion": "kwok.x-k8s.io/v1alpha1",
                "kind": "ClusterPortForward",
                "metadata": {"name": "all-pods"},
                "spec": {
                    "forwards": [
                        {"target": {"address": "127.0.0.1", "port": self.portforward_target_port}}
                    ]
                },
            },
        ]
        documents = [_STAGES.read_text()] + [json.dumps(doc) for doc in extra]
        path = self.workdir / "kwok" / "kwok.yaml"
        path.write_text("\n---\n".join(documents))
        return path


def _granted(objects: list[dict[str, Any]], namespace: str, name: str) -> Iterator[dict[str, str]]:
    """SelfSubjectAccessReview attributes for the first verb of every rule that the
    manifest's bindings give ServiceAccount ``namespace/name`` (resource rules only)."""
    roles = {
        (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]): o
        for o in objects
        if o["kind"] in ("ClusterRole", "Role")
    }
    for binding in objects:
        if binding["kind"] not in ("ClusterRoleBinding", "RoleBinding"):
            continue
        subjects = binding.get("subjects") or []
        if not any(
            s.get("kind") == "ServiceAccount"
            and s.get("name") == name
            and s.get("namespace") == namespace
            for s in subjects
        ):
            continue
        scope = binding["metadata"].get("namespace", "")
        ref = binding["roleRef"]
        role = roles.get((ref["kind"], "" if ref["kind"] == "ClusterRole" else scope, ref["name"]))
        for rule in (role or {}).get("rules") or []:
            for group in rule.get("apiGroups") or []:
                for resource in rule.get("resources") or []:
                    base, _, sub = resource.partition("/")
                    attributes = {"verb": rule["verbs"][0], "group": group, "resource": base}
                    if sub:
                        attributes["subresource"] = sub
                    if scope:
                        attributes["namespace"] = scope
                    yield attributes
