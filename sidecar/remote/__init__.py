"""The remote Kubernetes cluster: client set-up and the calls the plugin makes."""
