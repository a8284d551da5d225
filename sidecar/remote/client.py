"""Building the kubernetes_asyncio client for the remote cluster from the settings.

Fixes upstream's ``k8s.client_configuration`` bug: the configuration that the kubeconfig
was loaded into is the one the client uses (upstream loaded into one object and then
built the client from the library default, so every call went to http://localhost).
An inline kubeconfig (``k8s.kubeconfig``) is loaded from memory, never written to disk.
"""

from __future__ import annotations

from pathlib import Path

from kubernetes_asyncio import client, config

from sidecar.settings import K8sSettings


class KubeconfigError(Exception):
    """The remote cluster's credentials cannot be loaded; names the key to fix."""


def _kubeconfig_file(settings: K8sSettings) -> Path | None:
    """The kubeconfig file to load, or None to use the inline ``k8s.kubeconfig``."""
    path = Path(settings.kubeconfig_path)
    if path.is_file():
        return path
    if settings.kubeconfig is None:
        raise KubeconfigError(
            f"k8s.kubeconfig_path: {path} does not exist and k8s.kubeconfig is not set"
        )
    return None


async def make_api_client(settings: K8sSettings) -> client.ApiClient:
    """An ApiClient for the remote cluster. Raises KubeconfigError with the key to fix."""
    configuration = client.Configuration()
    path = _kubeconfig_file(settings)
    try:
        if path is not None:
            await config.load_kube_config(config_file=str(path), client_configuration=configuration)
        else:
            await config.load_kube_config_from_dict(
                config_dict=dict(settings.kubeconfig or {}), client_configuration=configuration
            )
    except Exception as exc:  # noqa: BLE001 - the loader raises many types; all mean "bad file"
        source = "k8s.kubeconfig" if path is None else f"k8s.kubeconfig_path ({path})"
        raise KubeconfigError(f"{source}: cannot load the kubeconfig: {exc}") from None
    for key, value in settings.client_configuration.items():
        setattr(configuration, key, value)
    return client.ApiClient(configuration=configuration)
