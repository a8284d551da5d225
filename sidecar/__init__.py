"""interlink-k8s-sidecar: the InterLink plugin that runs pods in a remote Kubernetes cluster."""

__version__ = "0.1.0"
