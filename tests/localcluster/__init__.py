"""An embedded Kubernetes control plane for tests and for trying the sidecar.

etcd (Debian ``etcd-server``), kube-apiserver, kube-controller-manager and
kube-scheduler (built from the Go module ``k8s.io/kubernetes``), and kwok as the nodes'
kubelet. Backs the pytest fixtures and ``make run`` (``python -m tests.localcluster``).
Everything listens on 127.0.0.1 and every process is stopped by pid. Development tooling:
not part of the package or the image (the product never imports ``tests``).
"""

from tests.localcluster.binaries import Binaries, LocalClusterError, ensure_binaries
from tests.localcluster.cluster import LocalCluster

__all__ = ["Binaries", "LocalCluster", "LocalClusterError", "ensure_binaries"]
