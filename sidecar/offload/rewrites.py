"""The documented list of every way a remote pod differs from the local one.

Paths use the notation of ``tests``' pod diff: dotted keys, ``{name}`` for an element of
a list of named objects (containers, volumes, env, mounts), ``[n]`` for other list
elements, and ``*`` as a wildcard. The README's table is generated from this list
(``python -m sidecar.offload.rewrites``) and a test keeps the two equal; the
integration tests check that every difference they observe is covered here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache


@dataclass(frozen=True, slots=True)
class Rewrite:
    patterns: tuple[str, ...]
    why: str


REWRITES: tuple[Rewrite, ...] = (
    Rewrite(("apiVersion", "kind"), "set to `v1` / `Pod` when the virtual kubelet left them out"),
    Rewrite(
        ("metadata.name", "metadata.namespace"),
        "remote naming: `<name>-<pod uid>` in `<namespace_prefix>-<namespace>`",
    ),
    Rewrite(
        ("metadata.labels.interlink.io*", "metadata.annotations.interlink.io/source.*"),
        "ownership labels and annotations (objects are found by label)",
    ),
    Rewrite(
        (
            "metadata.uid",
            "metadata.resourceVersion",
            "metadata.creationTimestamp",
            "metadata.deletionTimestamp",
            "metadata.deletionGracePeriodSeconds",
            "metadata.generation",
            "metadata.ownerReferences*",
            "metadata.managedFields*",
            "metadata.finalizers*",
            "metadata.selfLink",
            "metadata.generateName",
        ),
        "owned by the API server that stores the object",
    ),
    Rewrite(
        (
            "metadata.annotations.slurm-job.vk.io/pre-exec",
            "metadata.annotations.interlink.eu/wireguard-client-snippet",
        ),
        "carry the WireGuard private key: not copied (the mesh script goes to a Secret)",
    ),
    Rewrite(("status*",), "the remote pod's status is its own"),
    Rewrite(("spec.nodeName",), "the remote scheduler places the pod"),
    Rewrite(
        ("spec.tolerations*",),
        "the virtual node's toleration `virtual-node.interlink/no-schedule` removed; "
        "`offloading.node_tolerations` appended",
    ),
    Rewrite(
        ("spec.nodeSelector*",),
        "selectors of the virtual node (`virtual-node.interlink/type`, "
        "`kubernetes.io/hostname: <virtual node>`) removed; `offloading.node_selector` "
        "merged (its value wins on the same key)",
    ),
    Rewrite(
        ("spec.affinity*",), "node affinity requirements on the virtual node removed (others kept)"
    ),
    Rewrite(
        ("spec.serviceAccountName", "spec.serviceAccount", "spec.automountServiceAccountToken"),
        "the local service account does not exist remotely; the remote default one "
        "must not lend its token (the local token arrives as projected data)",
    ),
    Rewrite(
        ("spec.priority", "spec.overhead"),
        "computed by admission from the priority and runtime classes; the remote "
        "cluster computes its own",
    ),
    Rewrite(("spec.ephemeralContainers*",), "cannot be set when a pod is created"),
    Rewrite(
        ("spec.volumes{*}.configMap.name", "spec.volumes{*}.secret.secretName"),
        "renamed to the copies `<name>-<pod uid>`",
    ),
    Rewrite(
        ("spec.volumes{*}.projected*", "spec.volumes{*}.downwardAPI*"),
        "projected and downward-API data interLink resolved: projected from a copied "
        "Secret (service-account tokens) and ConfigMap (the rest), same paths and modes",
    ),
    Rewrite(
        (
            "spec.volumes{*}",
            "spec.*ontainers{*}.volumeMounts{*}",
            "spec.*ontainers{*}.volumeDevices{*}",
        ),
        "unsupported volumes (hostPath, nfs, csi, ..., PVCs not listed in "
        "`interlink.io/remote-pvc`) dropped with their mounts, with a warning",
    ),
    Rewrite(
        (
            "spec.*ontainers{*}.env{*}.valueFrom.*KeyRef.name",
            "spec.*ontainers{*}.envFrom[*].*Ref.name",
        ),
        "references to copied ConfigMaps/Secrets renamed",
    ),
    Rewrite(
        ("spec.*ontainers{*}.env{*}.valueFrom.fieldRef*", "spec.*ontainers{*}.env{*}.value"),
        "`fieldRef` to `metadata.name`/`namespace`/`uid` and `spec.serviceAccountName` "
        "replaced by the local value",
    ),
    Rewrite(
        (
            "spec.initContainers{mesh-setup}*",
            "spec.containers{mesh-setup}*",
            "spec.volumes{interlink-scratch}*",
            "spec.volumes{interlink-mesh-script}*",
        ),
        "mesh networking: the `mesh-setup` container and its volumes",
    ),
)


@cache
def _regex(pattern: str) -> re.Pattern[str]:
    """Only ``*`` is special (any characters); brackets and braces are literal."""
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")) + r"\Z")


def documented(path: str) -> Rewrite | None:
    """The rewrite that explains a difference at ``path``, or None."""
    for rewrite in REWRITES:
        if any(_regex(pattern).match(path) for pattern in rewrite.patterns):
            return rewrite
    return None


def markdown_table() -> str:
    lines = ["| fields | rewrite |", "| --- | --- |"]
    for rewrite in REWRITES:
        fields = ", ".join(f"`{p}`" for p in rewrite.patterns)
        lines.append(f"| {fields} | {rewrite.why} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown_table(), end="")
