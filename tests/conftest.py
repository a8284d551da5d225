"""Shared fixtures: the real control plane, a real sshd, and the sidecar as a process."""

pytest_plugins = [
    "tests.fixtures.controlplane",
    "tests.fixtures.sshd",
    "tests.fixtures.sidecar_process",
]
