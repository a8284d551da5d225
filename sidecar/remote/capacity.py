"""The virtual node's resources for the ping: summed from the remote nodes it stands for.

interLink applies ``PingResponse.resources`` to the virtual node verbatim, and a "0"
drains it (interLink#558), so a value that cannot be measured is left out rather than
reported as zero: no matching Ready node, or none of them reports the resource. Nodes
that are cordoned or not Ready do not count, nor nodes with a ``NoSchedule`` or
``NoExecute`` taint that ``offloading.node_tolerations`` does not tolerate (a
control-plane node, or a node kept for other work): offloaded pods cannot land there.
Extended resources (``nvidia.com/gpu``, any name with a ``/`` except ``hugepages-*``) are
reported as accelerators.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation

from sidecar.core.shape import JsonObject

_SUFFIXES = {
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)([a-zA-Z]*)$")
_BASIC = ("cpu", "memory", "pods")


def parse_quantity(text: object) -> Decimal | None:
    """A Kubernetes quantity ("500m", "128Gi", "1e3") as a number; None if unparseable."""
    match = _QUANTITY.match(str(text).strip())
    if not match or match.group(2) not in _SUFFIXES:
        return None
    try:
        return Decimal(match.group(1)) * _SUFFIXES[match.group(2)]
    except InvalidOperation:
        return None


def _format(resource: str, value: Decimal) -> str:
    if resource == "cpu":
        millis = int(value * 1000)
        return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"
    if resource == "memory":
        return f"{int(value // 2**20)}Mi" if value >= 2**20 else str(int(value))
    return str(int(value))


_BLOCKING_EFFECTS = ("NoSchedule", "NoExecute")  # PreferNoSchedule only discourages


def tolerates(toleration: Mapping[str, object], taint: Mapping[str, object]) -> bool:
    """Whether ``toleration`` tolerates ``taint``, by the scheduler's rules: an empty
    effect matches every effect; ``Exists`` with an empty key matches every taint,
    ``Exists`` matches the key whatever the value, ``Equal`` (the default) the key and
    the value."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    if (toleration.get("operator") or "Equal") == "Exists":
        return not key or key == taint.get("key")
    return key == taint.get("key") and (toleration.get("value") or "") == (taint.get("value") or "")


def _usable(node: JsonObject, tolerations: Iterable[Mapping[str, object]]) -> bool:
    spec = node.get("spec") or {}
    if spec.get("unschedulable"):
        return False
    for taint in spec.get("taints") or []:
        if taint.get("effect") in _BLOCKING_EFFECTS and not any(
            tolerates(t, taint) for t in tolerations
        ):
            return False
    conditions = (node.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _is_extended(resource: str) -> bool:
    return "/" in resource and not resource.startswith("hugepages-")


def selector_string(node_selector: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(node_selector.items()))


def ping_resources(
    nodes: list[JsonObject],
    pods: list[JsonObject] | None = None,
    *,
    tolerations: Iterable[Mapping[str, object]] = (),
) -> JsonObject:
    """``PingResponse.resources`` for ``nodes``; with ``pods``, free capacity (allocatable
    minus the requests of the unfinished pods bound to those nodes). ``tolerations``:
    ``offloading.node_tolerations`` (every offloaded pod carries them)."""
    tolerations = list(tolerations)
    usable = [n for n in nodes if _usable(n, tolerations)]
    names = {(n.get("metadata") or {}).get("name") for n in usable}
    totals: dict[str, Decimal] = {}
    for node in usable:
        for resource, quantity in ((node.get("status") or {}).get("allocatable") or {}).items():
            if resource in _BASIC or _is_extended(resource):
                value = parse_quantity(quantity)
                if value is not None:
                    totals[resource] = totals.get(resource, Decimal(0)) + value
    if pods is not None:
        for pod in pods:
            spec = pod.get("spec") or {}
            if spec.get("nodeName") not in names:
                continue
            if "pods" in totals:
                totals["pods"] -= 1
            for container in spec.get("containers") or []:
                requests = (container.get("resources") or {}).get("requests") or {}
                for resource, quantity in requests.items():
                    value = parse_quantity(quantity)
                    if resource in totals and value is not None:
                        totals[resource] -= value
    result: JsonObject = {}
    accelerators = []
    for resource, value in sorted(totals.items()):
        if value <= 0:
            continue  # never report "0": it would drain the virtual node
        if resource in _BASIC:
            result[resource] = _format(resource, value)
        else:
            accelerators.append({"resourceType": resource, "available": _format(resource, value)})
    if accelerators:
        result["accelerators"] = accelerators
    return result
