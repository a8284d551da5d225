"""An embedded Kubernetes control plane for tests and for trying the sidecar.

etcd (Debian ``etcd-server``), kube-apiserver, kube-controller-manager and
kube-scheduler (built from the Go module ``k8s.io/kubernetes``), and kwok as the nodes'
kubelet. Backs the pytest fixtures and ``interlink-k8s-sidecar --local-cluster``.
Everything listens on 127.0.0.1 and every process is stopped by pid.
"""

from sidecar.localcluster.binaries import Binaries, LocalClusterError, ensure_binaries
from sidecar.localcluster.cluster import LocalCluster

__all__ = ["Binaries", "LocalCluster", "LocalClusterError", "ensure_binaries"]
