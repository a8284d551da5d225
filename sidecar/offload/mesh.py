"""Mesh networking: the virtual kubelet's mesh script run by a ``mesh-setup`` container.

With interLink's full mesh on, the virtual kubelet prepends a heredoc to the pod
annotation ``slurm-job.vk.io/pre-exec``: ``cat <<'EOFMESH' > $TMPDIR/mesh.sh`` ... ``EOFMESH``
(no newline after the terminator; user pre-exec text follows). The script sets up
wstunnel + WireGuard and must run next to the pod's containers. As upstream, it runs in a
privileged ``mesh-setup`` container: a native sidecar (init container with
``restartPolicy: Always``) by default, or a regular container.

Fixed from upstream (upstream-plugin.md §14.4):

* the script carries the WireGuard private key: it is stored in a Secret and mounted,
  never put in container args, and the annotations that carry keys are not copied to
  the remote pod;
* the image is configurable and pinned (``mesh.image``), not ``alpine:latest``;
* the setup shell runs with ``set -eu``, so a failed package install stops it;
* the Slurm adaptation's heredoc terminator is at column 0 (upstream's was indented,
  so the shell swallowed the rest of the script);
* the startup probe is only added to the native sidecar (on a regular container it
  would hold a Job open for ever).
"""

from __future__ import annotations

import shlex

from sidecar.core import naming
from sidecar.core.pods import PodRef
from sidecar.core.shape import JsonObject
from sidecar.offload.ownership import owned_metadata
from sidecar.offload.plan import OffloadPlan
from sidecar.settings import MeshSettings

PRE_EXEC_ANNOTATION = "slurm-job.vk.io/pre-exec"
# Annotations that carry the WireGuard private key or tunnel secrets.
SECRET_ANNOTATIONS = (PRE_EXEC_ANNOTATION, "interlink.eu/wireguard-client-snippet")
HEREDOC_START = "cat <<'EOFMESH' > $TMPDIR/mesh.sh"
HEREDOC_END = "EOFMESH"
CONTAINER_NAME = "mesh-setup"
SCRATCH_VOLUME = "interlink-scratch"
SCRATCH_PATH = "/tmp/interlink"
SCRIPT_VOLUME = "interlink-mesh-script"
SCRIPT_PATH = "/etc/interlink-mesh"
READY_FILE = f"{SCRATCH_PATH}/mesh-ready"


def extract_mesh_script(pre_exec: str) -> str | None:
    """The body of the EOFMESH heredoc, or None when there is none (or it is empty)."""
    start = pre_exec.find(HEREDOC_START)
    if start < 0:
        return None
    body_start = pre_exec.find("\n", start)
    if body_start < 0:
        return None
    body_start += 1
    end = pre_exec.find("\n" + HEREDOC_END, body_start - 1)
    body = pre_exec[body_start:] if end < 0 else pre_exec[body_start : end + 1]
    return body if body.strip() else None


def _setup_script(settings: MeshSettings) -> str:
    lines = ["set -eu"]
    if settings.packages:
        lines.append("apk add --no-cache " + " ".join(shlex.quote(p) for p in settings.packages))
    lines += [
        'mkdir -p "$TMPDIR"',
        f'cp {SCRIPT_PATH}/mesh.sh "$TMPDIR/mesh.sh"',
        'chmod 0700 "$TMPDIR/mesh.sh"',
        'cd "$TMPDIR"',
    ]
    if not settings.slurm_setup_script:
        lines.append('exec bash "$TMPDIR/mesh.sh"')
        return "\n".join(lines) + "\n"
    # The stock template targets Slurm: adapt it to a pod (no unshare, no slirp4netns,
    # job control) and give it a "job" that marks readiness and keeps the sidecar up.
    lines += [
        "sed -i -e 's/^\\(\\s*\\)fg 1$/\\1fg %1/' "
        "-e 's#unshare $UNSHARE_FLAGS --net --mount $TMPDIR/slirp.sh#$TMPDIR/slirp.sh#' "
        "-e 's#^\\(\\s*\\)\\./slirp4netns#\\1: ./slirp4netns#' \"$TMPDIR/mesh.sh\"",
        "cat > \"$TMPDIR/job-fake.sh\" <<'EOFWRAPPER'",
        "#!/bin/sh",
        'echo "mesh ready: $(ip -brief address 2>/dev/null | tr "\\n" " ")"',
        f"touch {READY_FILE}",
        "exec sleep infinity",
        "EOFWRAPPER",  # at column 0: the shell only ends a heredoc on an exact line
        'chmod 0700 "$TMPDIR/job-fake.sh"',
        "export SLURM_JOB_ID=1 SLURM_PROCID=0 SLURM_TMPDIR=/tmp",
        'exec bash "$TMPDIR/mesh.sh" "$TMPDIR/job-fake.sh"',
    ]
    return "\n".join(lines) + "\n"


def strip_secret_annotations(annotations: JsonObject) -> None:
    for key in SECRET_ANNOTATIONS:
        annotations.pop(key, None)


def add_mesh(
    spec: JsonObject, *, annotations: JsonObject, settings: MeshSettings, plan: OffloadPlan
) -> bool:
    """Add the mesh-setup container if the pod carries a mesh script; True if added."""
    pre_exec = annotations.get(PRE_EXEC_ANNOTATION)
    if not isinstance(pre_exec, str):
        return False
    script = extract_mesh_script(pre_exec)
    ref: PodRef = plan.ref
    if script is None:
        plan.warnings.append(
            f"pod {ref.namespace}/{ref.name}: {PRE_EXEC_ANNOTATION} has no mesh heredoc; "
            "pre-exec commands are not run remotely"
        )
        return False
    secret_name = naming.scoped_name("mesh", ref.uid)
    plan.secrets.append(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": owned_metadata(name=secret_name, namespace=plan.namespace, ref=ref),
            "stringData": {"mesh.sh": script},
        }
    )
    spec["volumes"] = [
        *(spec.get("volumes") or []),
        {"name": SCRATCH_VOLUME, "emptyDir": {}},
        {"name": SCRIPT_VOLUME, "secret": {"secretName": secret_name, "defaultMode": 0o500}},
    ]
    container: JsonObject = {
        "name": CONTAINER_NAME,
        "image": settings.image,
        "command": ["/bin/sh", "-c"],
        "args": [_setup_script(settings)],
        "env": [{"name": "TMPDIR", "value": SCRATCH_PATH}],
        "volumeMounts": [
            {"name": SCRATCH_VOLUME, "mountPath": SCRATCH_PATH},
            {"name": SCRIPT_VOLUME, "mountPath": SCRIPT_PATH, "readOnly": True},
        ],
        # wireguard-go needs /dev/net/tun and to configure interfaces and routes.
        "securityContext": {
            "privileged": True,
            "capabilities": {"add": ["SYS_ADMIN", "NET_ADMIN", "SYS_CHROOT"]},
        },
    }
    if settings.init_container:
        container["restartPolicy"] = "Always"
        if settings.startup_probe:
            container["startupProbe"] = {
                "exec": {"command": ["test", "-f", READY_FILE]},
                "periodSeconds": 2,
                "failureThreshold": 60,
            }
        # ``null`` is an empty list on the wire (Go's nil slice): never append to None.
        spec["initContainers"] = [*(spec.get("initContainers") or []), container]
    else:
        spec["containers"] = [*(spec.get("containers") or []), container]
    return True
